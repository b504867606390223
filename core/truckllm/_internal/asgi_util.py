"""Small pure-ASGI helpers for the hot path: reading capped bodies, sending responses."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from truckllm._internal.deadline import deadline as within
from truckllm.errors import GatewayError

__all__ = ["Receive", "Scope", "Send", "header", "read_body", "request_id", "request_id_of", "send_bytes"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")


class ClientGone(Exception):
    """The client disconnected while the request body was being read."""


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of header ``name`` (lower-case bytes), decoded as latin-1."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def headers_dict(scope: Scope, drop: frozenset[bytes] = frozenset()) -> dict[str, str]:
    """All request headers but ``drop`` (lower-case names; repeated ones joined with ``, ``)."""
    out: dict[str, str] = {}
    for key, value in scope["headers"]:
        if key in drop:
            continue
        name = key.decode("latin-1")
        text = value.decode("latin-1")
        out[name] = f"{out[name]}, {text}" if name in out else text
    return out


def request_id(scope: Scope) -> str:
    """The client's ``X-Request-Id`` when it is sane, else a new one."""
    return _sane_id(header(scope, b"x-request-id"))


def request_id_of(headers: dict[str, str]) -> str:
    """:func:`request_id` from the headers :func:`headers_dict` read (a repeated ``X-Request-Id``,
    joined there, is not sane: a new one)."""
    return _sane_id(headers.get("x-request-id"))


def _sane_id(given: str | None) -> str:
    if given and _SAFE_ID.match(given):
        return given
    return "req_" + os.urandom(12).hex()


async def read_body(scope: Scope, receive: Receive, limit: int, deadline: float | None = None) -> bytes:
    """The whole request body; 413 as soon as it is known to exceed ``limit`` bytes.

    :param deadline: seconds the client may take to send the body (408 past it).
    """
    _check_declared(scope, limit)
    first = _queued(receive)
    if first is not None and first["type"] == "http.request" and not first.get("more_body", False):
        return _whole(first.get("body", b""), limit)  # it came with the head: no wait, no timer
    if deadline:
        try:
            with within(deadline):
                return await _read_body(receive, limit, first)
        except TimeoutError:
            raise GatewayError(
                408, f"The request body was not sent within {deadline:g}s.", code="request_timeout"
            ) from None
    return await _read_body(receive, limit, first)


def _queued(receive: Receive) -> Message | None:
    """The next ASGI message when the server has already queued it, taken without awaiting.

    hypercorn's ``receive`` is its request queue's ``get``: a small body that arrived with the
    head is queued before the app runs, and reading it then needs neither a coroutine nor a
    timer. With any other server, or an empty queue, None (the caller awaits ``receive()``).
    """
    queue = getattr(receive, "__self__", None)
    if queue.__class__ is asyncio.Queue and receive.__name__ == "get" and not queue.empty():
        message: Message = queue.get_nowait()
        return message
    return None


def _whole(body: bytes, limit: int) -> bytes:
    if len(body) > limit:
        raise GatewayError(413, f"Request body too large: over {limit} bytes.", code="request_too_large")
    return body


def _check_declared(scope: Scope, limit: int) -> None:
    """413 when the declared ``Content-Length`` is over ``limit``; 400 when it is not a number."""
    length = header(scope, b"content-length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise GatewayError(400, "Invalid Content-Length header.") from None
        if declared > limit:
            raise GatewayError(
                413,
                f"Request body too large: {declared} bytes; the limit is {limit} bytes.",
                code="request_too_large",
            )


async def _read_body(receive: Receive, limit: int, first: Message | None = None) -> bytes:
    parts: list[bytes] = []
    size = 0
    while True:
        if first is not None:
            message, first = first, None
        else:
            message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise GatewayError(
                    413, f"Request body too large: over {limit} bytes.", code="request_too_large"
                )
            parts.append(chunk)
        if not message.get("more_body", False):
            break
    return parts[0] if len(parts) == 1 else b"".join(parts)


async def send_bytes(send: Send, status: int, headers: dict[str, str], body: bytes) -> None:
    """Send a whole response."""
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
