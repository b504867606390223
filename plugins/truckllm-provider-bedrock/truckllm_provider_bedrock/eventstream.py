"""An incremental decoder of AWS's binary event stream (``application/vnd.amazon.eventstream``).

Each message is: total length and headers length (4 bytes each, big-endian), the CRC32 of those
8 bytes, the headers, the payload, and the CRC32 of everything before it. :class:`EventDecoder`
takes bytes split anywhere and returns whole messages as they complete; a bad length, CRC or
header is :class:`EventStreamError` at once (never a wait for bytes that cannot come).
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass

__all__ = ["MAX_HEADERS", "MAX_MESSAGE", "EventDecoder", "EventMessage", "EventStreamError"]

MAX_MESSAGE = 16 * 1024 * 1024 + 128 * 1024
"""The largest message accepted (AWS: 16 MiB of payload, 128 KiB of headers)."""
MAX_HEADERS = 128 * 1024
"""The largest headers section accepted."""
_PRELUDE = 12
_MINIMUM = _PRELUDE + 4
# header value type -> fixed size (None: 2-byte length prefix)
_FIXED = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}


class EventStreamError(ValueError):
    """The bytes are not a valid event stream (the message says what is wrong)."""


@dataclass(frozen=True)
class EventMessage:
    """One message: its string headers (``:event-type``, ``:message-type``...) and payload."""

    headers: dict[str, str]
    payload: bytes


def _headers(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    i = 0
    while i < len(data):
        size = data[i]
        name_end = i + 1 + size
        if size == 0 or name_end >= len(data):
            raise EventStreamError("a header name runs past the headers")
        name = data[i + 1 : name_end].decode("utf-8", "replace")
        kind = data[name_end]
        i = name_end + 1
        fixed = _FIXED.get(kind)
        if fixed is not None:
            value_end = i + fixed
            value = None
        elif kind in (6, 7):
            if i + 2 > len(data):
                raise EventStreamError("a header value length runs past the headers")
            (length,) = struct.unpack_from("!H", data, i)
            value_end = i + 2 + length
            value = data[i + 2 : value_end] if kind == 7 else None
        else:
            raise EventStreamError(f"unknown header value type {kind}")
        if value_end > len(data):
            raise EventStreamError("a header value runs past the headers")
        if value is not None:
            try:
                out[name] = value.decode()
            except UnicodeDecodeError:
                raise EventStreamError("a string header is not UTF-8") from None
        i = value_end
    return out


class EventDecoder:
    """Feeds on bytes split anywhere; returns each message once it is whole and checked."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def started(self) -> bool:
        """The bytes held begin with a valid prelude: a message was cut short (not garbage)."""
        return len(self._buffer) >= _PRELUDE

    @property
    def pending(self) -> int:
        """Bytes held of a message not yet whole."""
        return len(self._buffer)

    def feed(self, chunk: bytes) -> list[EventMessage]:
        """The messages ``chunk`` completes, in order.

        :raises EventStreamError: at the first invalid prelude, CRC or header.
        """
        buffer = self._buffer
        buffer += chunk
        messages: list[EventMessage] = []
        while len(buffer) >= _PRELUDE:
            total, head, crc = struct.unpack_from("!III", buffer, 0)
            if binascii.crc32(buffer[:8]) != crc:
                raise EventStreamError("prelude CRC mismatch")
            if total < _MINIMUM or total > MAX_MESSAGE or head > MAX_HEADERS or head > total - _MINIMUM:
                raise EventStreamError(f"impossible message lengths (total {total}, headers {head})")
            if len(buffer) < total:
                break
            message = bytes(buffer[:total])
            del buffer[:total]
            (expected,) = struct.unpack_from("!I", message, total - 4)
            if binascii.crc32(message[:-4]) != expected:
                raise EventStreamError("message CRC mismatch")
            headers = _headers(message[_PRELUDE : _PRELUDE + head])
            messages.append(EventMessage(headers, message[_PRELUDE + head : -4]))
        return messages
