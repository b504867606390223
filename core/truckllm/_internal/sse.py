"""An incremental Server-Sent Events parser and frame builders, for provider plugins.

Handles what real upstreams send: LF, CRLF or CR line ends (Gemini separates events with
``\\r\\n\\r\\n``), events split across reads at any byte, multi-line ``data:`` fields (joined
with ``\\n``), ``:`` comment and keep-alive lines, ``event:`` names (Anthropic), and streams that
end without ``[DONE]``. Lines that are not SSE fields (Gemini sends a raw JSON error object
mid-stream) are gathered into a ``raw`` event.

Whole events are cut out a block at a time (the bytes up to the last blank line, split on blank
lines) when they use one kind of line end; an event split across reads, and mixed or bare-CR line
ends, are read line by line. Each read returns the events a line-by-line reading would, and any
split of a stream gives the same events. A byte order mark is not stripped (no upstream sends
one): the line that starts with it is not an SSE field.
"""

from __future__ import annotations

from msgspec import Struct

__all__ = ["SSEEvent", "SSEParser", "data_frame", "event_frame"]

_FIELDS = (b"data", b"event", b"id", b"retry")


class SSEEvent(Struct):
    """One event: its ``event`` name (or ``None``), ``data`` bytes, and the exact bytes it came in.

    ``raw`` is true for text that was not SSE-framed (``data`` then holds that text).
    """

    event: str | None
    data: bytes
    raw: bool = False
    frame: bytes = b""


class SSEParser:
    """Feed bytes as they arrive; get complete events back.

    The whole events in hand (up to the last blank line, when they use one kind of line end) are
    cut out and read one block at a time; the rest (an event split across reads, mixed or bare-CR
    line ends) is read line by line, to the same events.
    """

    __slots__ = ("_buf", "_data", "_event", "_frame", "_raw")

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[bytes] = []
        self._event: str | None = None
        self._raw: list[bytes] = []
        self._frame: list[bytes] = []  # empty exactly between events

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Parse ``chunk``; return the events it completed (possibly none)."""
        buf = self._buf + chunk if self._buf else chunk
        events: list[SSEEvent] = []
        start = 0 if self._frame else self._whole(buf, 0, events)
        whole = True  # blocks may still be cut out after a line-by-line event
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
            line = buf[start:end]
            self._line(line, buf[start:nxt], events)
            start = nxt
            if not line and whole:  # an event ended: what follows may be whole events again
                after = self._whole(buf, start, events)
                whole, start = after != start, after
        self._buf = buf[start:]
        return events

    def _whole(self, buf: bytes, start: int, events: list[SSEEvent]) -> int:
        """Read the whole events of ``buf`` from ``start`` (at an event boundary) up to its last
        blank line, if they all end their lines with LF or all with CRLF; return where they end
        (``start`` if nothing was read)."""
        end = buf.rfind(b"\n\n", start)
        if end >= 0 and buf.find(b"\r", start, end) < 0:
            sep, eol, step = b"\n\n", b"\n", 1
        else:
            end = buf.rfind(b"\r\n\r\n", start)
            if end < 0:
                return start
            lf = buf.count(b"\n", start, end)
            if buf.count(b"\r", start, end) != lf or buf.count(b"\r\n", start, end) != lf:
                return start
            sep, eol, step = b"\r\n\r\n", b"\r\n", 2
        for block in buf[start:end].split(sep):
            if block[:6] == b"data: ":
                if b"\n" not in block:  # one data line: the usual event
                    events.append(SSEEvent(None, block[6:], False, block + sep))
                    continue
            elif block[:7] == b"event: ":
                name_end = block.find(eol)
                at = name_end + step
                if name_end > 0 and block[at : at + 6] == b"data: " and block.find(b"\n", at) < 0:
                    name = block[7:name_end].decode("utf-8", "replace")  # event + one data line
                    events.append(SSEEvent(name, block[at + 6 :], False, block + sep))
                    continue
            for line in block.split(eol):
                self._line(line, line + eol, events)
            self._line(b"", eol, events)
        return end + 2 * step

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
