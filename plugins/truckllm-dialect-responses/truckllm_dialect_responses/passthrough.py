"""Streams the dialect watches to remember their final Response.

- :class:`Watch`: an upstream's own Responses API event stream (an OpenAI deployment, passed
  through), relayed frame for frame, unchanged; the response of its terminal event
  (``response.completed`` / ``response.incomplete``) is handed to ``on_final`` as soon as that
  event is complete.
- :class:`Remembering`: a translator (chat-completion chunks to Responses events) whose
  ``final`` Response is handed to ``on_final`` as soon as the translator made it.

``on_final`` runs (once) inside the ``feed()`` (or ``close()``) that returns the terminal event,
and the kernel writes what a translator queued before it sends the bytes that call returned: a
client that acts on ``response.completed`` (a follow-up, a ``GET``) finds the turn stored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from truckllm.errors import GatewayError

from .errors import error_event

__all__ = ["Remembering", "Translator", "Watch", "error_frames"]

_TERMINAL = (b"response.completed", b"response.incomplete")
_SNAPSHOTS = (b"response.created", b"response.in_progress", *_TERMINAL)
_frame_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])


class Translator(Protocol):
    """A stream translator with the Responses object it built (B1's ``ChatToResponses``)."""

    @property
    def final(self) -> dict[str, Any] | None:
        """The Response once :meth:`close` ran."""

    def feed(self, frames: bytes) -> bytes:
        """Translate complete frames."""

    def close(self) -> bytes:
        """The closing frames."""

    def error(self, error: GatewayError) -> bytes:
        """The frames that end the stream after a failure."""


def error_frames(error: GatewayError, sequence_number: int, response: dict[str, Any] | None) -> bytes:
    """OpenAI's end of a failed Responses stream: an ``error`` event, then ``response.failed``
    (when the response object is known) with ``status: failed`` and the error."""
    out = error_event(error, sequence_number)
    if response is not None:
        code = "rate_limit_exceeded" if error.status == 429 else "server_error"  # ResponseError's codes
        failed = {**response, "status": "failed", "error": {"code": code, "message": error.message}}
        event = {"type": "response.failed", "response": failed, "sequence_number": sequence_number + 1}
        out += b"event: response.failed\ndata: " + msgspec.json.encode(event) + b"\n\n"
    return out


class Watch:
    """A pass-through Responses stream: the frames unchanged; its final response remembered.

    :param on_final: called once, from the :meth:`feed` (or :meth:`close`) that sees the
        terminal event, with the JSON of its response object (that of ``response.completed`` or
        ``response.incomplete``; the first, should an upstream send two).
    """

    def __init__(self, on_final: Callable[[bytes], None]) -> None:
        self.on_final = on_final
        self.events = 0
        self.final: bytes | None = None
        self.snapshot: bytes | None = None
        self._tail = b""

    def feed(self, frames: bytes) -> bytes:
        """The frames as they came; each complete one is looked at."""
        buffer = self._tail + frames
        *complete, self._tail = buffer.replace(b"\r\n", b"\n").split(b"\n\n")
        for frame in complete:
            if frame.strip():
                self._look(frame)
        return frames

    def _look(self, frame: bytes) -> None:
        self.events += 1
        if not any(kind in frame for kind in _SNAPSHOTS):
            return
        data = b"".join(line[5:].lstrip() for line in frame.split(b"\n") if line.startswith(b"data:"))
        try:
            fields = _frame_decoder.decode(data)
            kind = msgspec.json.decode(fields["type"])
            response = fields["response"]
        except (msgspec.DecodeError, msgspec.ValidationError, KeyError):
            return
        if kind in ("response.created", "response.in_progress"):
            self.snapshot = bytes(response)
        elif kind in ("response.completed", "response.incomplete") and self.final is None:
            self.final = bytes(response)
            self.on_final(self.final)

    def close(self) -> bytes:
        """Nothing to add; a terminal event left without its blank line is looked at."""
        if self._tail.strip():
            self._look(self._tail)
            self._tail = b""
        return b""

    def error(self, error: GatewayError) -> bytes:
        """An ``error`` event and ``response.failed``, numbered after the events relayed."""
        snapshot = msgspec.json.decode(self.snapshot) if self.snapshot is not None else None
        return error_frames(error, self.events, snapshot if isinstance(snapshot, dict) else None)


class Remembering:
    """A translator whose ``final`` Response is handed to ``on_final`` (once) by the call that
    made it."""

    def __init__(self, inner: Translator, on_final: Callable[[bytes], None]) -> None:
        self.inner = inner
        self.on_final = on_final
        self._remembered = False

    def feed(self, frames: bytes) -> bytes:
        """The inner translator's frames (its final Response remembered once it is made)."""
        out = self.inner.feed(frames)
        self._remember()
        return out

    def close(self) -> bytes:
        """The inner translator's closing frames; its final Response remembered."""
        out = self.inner.close()
        self._remember()
        return out

    def _remember(self) -> None:
        final = self.inner.final
        if final is not None and not self._remembered:
            self._remembered = True
            self.on_final(msgspec.json.encode(final))

    def error(self, error: GatewayError) -> bytes:
        """The inner translator's failure frames (nothing is remembered)."""
        return self.inner.error(error)
