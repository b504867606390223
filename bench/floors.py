"""Two reference ASGI apps on hypercorn, the floors the gateway is compared with.

- ``bare``: hypercorn (uvloop) answering a fixed chat completion: what the HTTP server alone
  costs per request.
- ``proxy``: hypercorn forwarding the body to the upstream with one shared ``aiohttp`` session
  and answering with what came back: the least any hypercorn + aiohttp gateway can cost.
- ``proxy-stream``: the same, relaying the upstream's answer chunk by chunk as it arrives
  (chunked transfer encoding, the upstream's ``content-type``): the least a streaming hypercorn +
  aiohttp gateway can add to the time to first token.

``python -m bench.floors bare|proxy|proxy-stream PORT [UPSTREAM_URL]``; used by
:mod:`bench.instructions` and :mod:`bench.floor_lane`.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp
import uvloop
from hypercorn.asyncio import serve
from hypercorn.config import Config

from bench.upstream import openai_answer

__all__ = ["KINDS", "bare_app", "main", "proxy_app", "proxy_stream_app"]

Message = MutableMapping[str, Any]
App = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]

_ANSWER = openai_answer("gpt-4o-mini")


async def _read(receive: Callable[[], Awaitable[Message]]) -> bytes:
    parts = []
    while True:
        message = await receive()
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(parts)


async def _answer(send: Callable[[Message], Awaitable[None]], body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def bare_app() -> App:
    """Reads the request, answers a fixed chat completion."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await _read(receive)
        await _answer(send, _ANSWER)

    return app


def proxy_app(upstream: str, client: aiohttp.ClientSession | None = None) -> App:
    """Forwards every request body to ``upstream`` (one keep-alive session, ``client`` or its
    own) and relays the answer."""
    session: list[aiohttp.ClientSession] = [client] if client is not None else []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await _read(receive)
        if not session:
            session.append(aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)))
        async with session[0].post(
            upstream, data=body, headers={"content-type": "application/json"}
        ) as response:
            answer = await response.read()
        await _answer(send, answer)

    return app


def proxy_stream_app(upstream: str, client: aiohttp.ClientSession | None = None) -> App:
    """Forwards every request body to ``upstream`` (one keep-alive session, ``client`` or its
    own) and relays the answer's body chunk by chunk, each as soon as it arrives."""
    session: list[aiohttp.ClientSession] = [client] if client is not None else []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await _read(receive)
        if not session:
            session.append(aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)))
        async with session[0].post(
            upstream, data=body, headers={"content-type": "application/json"}
        ) as response:
            kind = response.headers.get("content-type", "application/json").encode("latin-1")
            start = {"type": "http.response.start", "status": response.status}
            await send(start | {"headers": [(b"content-type", kind)]})
            async for chunk in response.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


KINDS: dict[str, Callable[[str], App]] = {
    "bare": lambda _upstream: bare_app(),
    "proxy": proxy_app,
    "proxy-stream": proxy_stream_app,
}
"""Each reference app by the name ``main`` takes, built from the upstream URL."""


def main(argv: list[str] | None = None) -> int:
    """Serve one of the reference apps (:data:`KINDS`) until killed."""
    args = sys.argv[1:] if argv is None else argv
    kind, port = args[0], int(args[1])
    upstream = args[2] if len(args) > 2 else ""
    app = KINDS[kind](upstream)
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.include_server_header = False
    uvloop.run(serve(app, config))  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main())
