"""The part every Bedrock stream translator shares: reading the AWS event stream.

:class:`EventStreamReader` decodes the upstream bytes (split anywhere) into event-stream
messages and hands each to the subclass's ``_message``; a broken stream, bytes that are no event
stream, or a stream that ends before its last event are clean :class:`UpstreamFailure` (frames
already made stay in ``pending``), never a hang.
"""

from __future__ import annotations

from truckllm.errors import UpstreamFailure
from truckllm.kit.openai_wire import upstream_error

from .eventstream import EventDecoder, EventMessage, EventStreamError

__all__ = ["EventStreamReader", "bad_stream"]


def bad_stream(message: str) -> UpstreamFailure:
    """A Bedrock stream that is not what Bedrock sends (502 ``bad_response``)."""
    return UpstreamFailure(upstream_error(502, message, kind="bad_response", type="server_error"))


class EventStreamReader:
    """Reads one event-stream answer; a subclass turns each message into frames.

    :cvar last_event: what ends the stream, as the failure names it (``message_stop``...).
    :ivar done: the last event arrived; later bytes are ignored.
    """

    last_event = "its last event"

    def __init__(self) -> None:
        self.done = False
        self._decoder = EventDecoder()
        self._seen = False

    def feed(self, chunk: bytes) -> bytes:
        """Frames to send for this chunk of upstream bytes (possibly none)."""
        out: list[bytes] = []
        try:
            if self.done:
                return b""
            try:
                messages = self._decoder.feed(chunk)
            except EventStreamError as exc:
                raise bad_stream(f"Bedrock sent a broken event stream ({exc})") from None
            for message in messages:
                self._message(message, out)
                if self.done:
                    break
        except UpstreamFailure as failure:
            failure.pending = b"".join(out)
            raise
        return b"".join(out)

    def close(self) -> bytes:
        """The upstream ended: nothing more to send, or :class:`UpstreamFailure` if it was cut short."""
        if self.done:
            return b""
        if self._decoder.pending and not self._decoder.started:
            raise bad_stream("Bedrock's stream ended with bytes that are no event-stream message")
        if self._seen or self._decoder.pending:
            raise UpstreamFailure(
                upstream_error(502, f"Bedrock stream ended before {self.last_event}", kind="stream")
            )
        raise bad_stream("Bedrock answered a stream with no event")

    def _message(self, message: EventMessage, out: list[bytes]) -> None:
        """Append the frames of one message to ``out`` (set ``_seen``; ``done`` at the last event)."""
        raise NotImplementedError
