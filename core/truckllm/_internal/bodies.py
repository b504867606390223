"""Request and answer bodies kept in a request's record, where the gateway key or the alias opts
in (``log_bodies: true``).

While the request runs, :class:`BodyCapture` only keeps references and copies at most the first
``limit`` bytes of the answer plus a margin (a stream's frames as they are sent). After the
response, off the request path, :meth:`BodyCapture.bodies` decodes, scrubs every configured secret
and credential from the WHOLE captured text, and only then cuts each to ``limit`` UTF-8 bytes: a
secret straddling the cut is removed before the cut could leave a piece of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from truckllm.types import RecordBodies

if TYPE_CHECKING:
    from truckllm._internal.scrub import Scrubber

__all__ = ["MARGIN", "BodyCapture", "cut_utf8"]

MARGIN = 4096
"""Bytes captured past the limit, so that a secret across the limit is seen whole by the scrubber."""


def cut_utf8(text: str, limit: int) -> tuple[str, bool]:
    """``text`` cut to at most ``limit`` UTF-8 bytes on a character boundary; and whether it was."""
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= limit:
        return text, False
    return raw[:limit].decode("utf-8", "ignore"), True


@dataclass(slots=True)
class BodyCapture:
    """One request's bodies while it runs.

    :ivar limit: ``server.log_bodies_max_bytes``.
    :ivar request: the client's body as received.
    :ivar response: the answer's first ``limit + margin`` bytes.
    :ivar response_size: the answer's whole size.
    """

    limit: int
    request: bytes = b""
    response: bytearray = field(default_factory=bytearray)
    response_size: int = 0
    margin: int = MARGIN

    def add(self, chunk: bytes) -> None:
        """Bytes sent to the client (a whole answer, or one stream frame)."""
        self.response_size += len(chunk)
        room = self.limit + self.margin - len(self.response)
        if room > 0:
            self.response += chunk[:room]

    def bodies(self, scrubber: Scrubber) -> RecordBodies:
        """The record's bodies: decoded, scrubbed, then cut (see the module docstring)."""
        keep = self.limit + self.margin
        request, request_cut = self._text(self.request[:keep], scrubber, len(self.request) > self.limit)
        response, response_cut = self._text(bytes(self.response), scrubber, self.response_size > self.limit)
        return RecordBodies(
            request=request,
            response=response,
            request_truncated=request_cut,
            response_truncated=response_cut,
        )

    def _text(self, raw: bytes, scrubber: Scrubber, longer: bool) -> tuple[str, bool]:
        text = scrubber.text(raw.decode("utf-8", "replace"))
        cut, was_cut = cut_utf8(text, self.limit)
        return cut, was_cut or longer
