"""Helpers to read what went over the wire in tests: SSE frames and events."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["SSEEvent", "parse_sse", "sse_frames"]

_SEPARATOR = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE = re.compile(r"\r\n|\r|\n")


@dataclass
class SSEEvent:
    """One dispatched server-sent event."""

    event: str | None
    """The ``event:`` name, if any."""
    data: str
    """The ``data:`` lines joined with ``\\n``."""
    id: str | None = None
    """The ``id:`` field, if any."""

    def json(self) -> Any:
        """``data`` decoded as JSON."""
        return json.loads(self.data)


def sse_frames(raw: bytes) -> list[bytes]:
    """Split a body on blank lines (``\\n\\n``, ``\\r\\n\\r\\n``), keeping each frame's bytes.

    A trailing piece without a blank line after it is returned as the last frame.
    """
    frames = _SEPARATOR.split(raw)
    if frames and frames[-1] == b"":
        frames.pop()
    return frames


def parse_sse(raw: bytes | str) -> list[SSEEvent]:
    """Parse a complete SSE body as the HTML spec does (CRLF/LF/CR line ends, ``:``
    comments, multi-line ``data``).  An unterminated last event is not dispatched."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    events: list[SSEEvent] = []
    name: str | None = None
    event_id: str | None = None
    data: list[str] = []
    lines = _LINE.split(text)
    for line in lines[:-1]:  # the last piece has no line end: incomplete
        if line == "":
            if data:
                events.append(SSEEvent(name, "\n".join(data), event_id))
            name, data = None, []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            data.append(value)
        elif field == "event":
            name = value
        elif field == "id":
            event_id = value
    return events
