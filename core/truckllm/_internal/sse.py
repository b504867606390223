"""An incremental Server-Sent Events parser and frame builders, for provider plugins.

Handles what real upstreams send: LF, CRLF or CR line ends (Gemini separates events with
``\\r\\n\\r\\n``), events split across reads at any byte, multi-line ``data:`` fields (joined
with ``\\n``), ``:`` comment and keep-alive lines, ``event:`` names (Anthropic), and streams that
end without ``[DONE]``. Lines that are not SSE fields (Gemini sends a raw JSON error object
mid-stream) are gathered into a ``raw`` event.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SSEEvent", "SSEParser", "data_frame", "event_frame"]

_FIELDS = (b"data", b"event", b"id", b"retry")


@dataclass(slots=True)
class SSEEvent:
    """One event: its ``event`` name (or ``None``), ``data`` bytes, and the exact bytes it came in.

    ``raw`` is true for text that was not SSE-framed (``data`` then holds that text).
    """

    event: str | None
    data: bytes
    raw: bool = False
    frame: bytes = b""


class SSEParser:
    """Feed bytes as they arrive; get complete events back."""

    __slots__ = ("_buf", "_data", "_event", "_frame", "_raw")

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[bytes] = []
        self._event: str | None = None
        self._raw: list[bytes] = []
        self._frame: list[bytes] = []

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Parse ``chunk``; return the events it completed (possibly none)."""
        buf = self._buf + chunk if self._buf else chunk
        events: list[SSEEvent] = []
        start = 0
        size = len(buf)
        while start < size:
            nl = buf.find(b"\n", start)
            cr = buf.find(b"\r", start, nl if nl >= 0 else size)
            if cr >= 0:
                if cr + 1 == size:  # a CR at the end may be half of CRLF: wait for more
                    break
                end, nxt = cr, (cr + 2 if buf[cr + 1 : cr + 2] == b"\n" else cr + 1)
            elif nl >= 0:
                end, nxt = nl, nl + 1
            else:
                break
            self._line(buf[start:end], buf[start:nxt], events)
            start = nxt
        self._buf = buf[start:]
        return events

    def close(self) -> list[SSEEvent]:
        """The stream ended: return a last event left without its blank line, if any."""
        events: list[SSEEvent] = []
        if self._buf:
            rest, self._buf = self._buf, b""
            self._line(rest.rstrip(b"\r"), rest, events)
        self._dispatch(events)
        return events

    @property
    def pending(self) -> bool:
        """True while part of an event is buffered."""
        return bool(self._buf or self._data or self._raw or self._event)

    def _line(self, line: bytes, with_end: bytes, events: list[SSEEvent]) -> None:
        if not line:
            self._frame.append(with_end)
            self._dispatch(events)
            return
        if line[:1] == b":":
            return
        name, sep, value = line.partition(b":")
        if name in _FIELDS and (sep or name == b"data"):
            if self._raw:
                self._dispatch(events)
            if value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                self._data.append(value)
            elif name == b"event":
                self._event = value.decode("utf-8", "replace")
            self._frame.append(with_end)
        else:
            if self._data or self._event is not None:
                self._dispatch(events)
            self._raw.append(line)
            self._frame.append(with_end)

    def _dispatch(self, events: list[SSEEvent]) -> None:
        frame = b"".join(self._frame)
        self._frame = []
        if self._raw:
            events.append(SSEEvent(event=None, data=b"\n".join(self._raw), raw=True, frame=frame))
            self._raw = []
        elif self._data:
            data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
            events.append(SSEEvent(event=self._event, data=data, frame=frame))
        self._data = []
        self._event = None


def data_frame(payload: bytes) -> bytes:
    """``data: <payload>\\n\\n``."""
    return b"data: " + payload + b"\n\n"


def event_frame(name: str, payload: bytes) -> bytes:
    """``event: <name>\\ndata: <payload>\\n\\n``."""
    return b"event: " + name.encode() + b"\ndata: " + payload + b"\n\n"
