"""The replicas lane's fake upstream: OpenAI chat completions that count who asked.

A raw asyncio protocol (uvloop when installed) answering ``POST /r<replica>/v1/chat/completions``
with one fixed completion (8 prompt tokens, 16 completion tokens). Each gateway replica is
configured with its own ``/r<i>`` path prefix, so the upstream knows which replica sent each
request; the API key (``Authorization: Bearer ...``) says which provider key it came on.

Control endpoints (for the lane, on the same port):

- ``POST /control/poison/<api key>``: from now on, every request on that key is answered
  ``429`` with ``Retry-After: 60``; the moment of the first such answer and of every later hit on
  the key are kept (``time.monotonic_ns()``, shared by every process on the machine).
- ``GET /control/counts``: JSON ``{"hits": {"<replica>|<key>|<status>": n}, "poisoned_at_ns",
  "first_429_ns", "after_429": [[ns, replica], ...]}``.

``python -m bench.replicas_upstream --port 8000`` serves until stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import cast

__all__ = ["COMPLETION_TOKENS", "PROMPT_TOKENS", "Counts", "main", "serve"]

PROMPT_TOKENS = 8
"""Prompt tokens of every answer's usage."""
COMPLETION_TOKENS = 16
"""Completion tokens of every answer's usage (the lane's ``max_tokens``, so reservations are exact)."""

_ANSWER = json.dumps(
    {
        "id": "chatcmpl-replicas",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "replicas-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
        },
    },
    separators=(",", ":"),
).encode()
_LIMITED = json.dumps(
    {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}
).encode()


def _response(status: bytes, body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\ncontent-type: application/json\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\n"
        + extra
        + b"\r\n"
        + body
    )


_OK = _response(b"200 OK", _ANSWER)
_429 = _response(b"429 Too Many Requests", _LIMITED, b"retry-after: 60\r\n")
_NOT_FOUND = _response(b"404 Not Found", b"{}")


@dataclass
class Counts:
    """What the upstream saw."""

    hits: dict[str, int] = field(default_factory=dict)
    poisoned: set[bytes] = field(default_factory=set)
    poisoned_at_ns: int | None = None
    first_429_ns: int | None = None
    after_429: list[tuple[int, str]] = field(default_factory=list)

    def as_json(self) -> bytes:
        """The counts as the ``/control/counts`` body."""
        return json.dumps(
            {
                "hits": self.hits,
                "poisoned_at_ns": self.poisoned_at_ns,
                "first_429_ns": self.first_429_ns,
                "after_429": self.after_429,
            }
        ).encode()


class _Conn(asyncio.Protocol):
    """One keep-alive connection: parse requests, answer each at once."""

    def __init__(self, counts: Counts) -> None:
        self.counts = counts
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end]
            length = 0
            auth = b""
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                lname = name.strip().lower()
                if lname == b"content-length":
                    length = int(value.strip())
                elif lname == b"authorization":
                    auth = value.strip().removeprefix(b"Bearer ").removeprefix(b"bearer ")
            if len(self.buf) < end + 4 + length:
                return
            self.buf = self.buf[end + 4 + length :]
            request_line = head.split(b"\r\n", 1)[0].split(b" ")
            assert self.transport is not None
            self.transport.write(self._answer(request_line[0], request_line[1], auth))

    def _answer(self, method: bytes, path: bytes, auth: bytes) -> bytes:
        counts = self.counts
        if path.startswith(b"/control/poison/"):
            counts.poisoned.add(path.removeprefix(b"/control/poison/"))
            counts.poisoned_at_ns = time.monotonic_ns()
            return _response(b"200 OK", b"{}")
        if path == b"/control/counts":
            return _response(b"200 OK", counts.as_json())
        if method != b"POST" or not path.endswith(b"/v1/chat/completions"):
            return _NOT_FOUND
        replica = path.split(b"/", 2)[1].decode()
        key = auth.decode()
        if auth in counts.poisoned:
            stamp = time.monotonic_ns()
            if counts.first_429_ns is None:
                counts.first_429_ns = stamp
            counts.after_429.append((stamp, replica))
            status, answer = "429", _429
        else:
            status, answer = "200", _OK
        name = f"{replica}|{key}|{status}"
        counts.hits[name] = counts.hits.get(name, 0) + 1
        return answer


async def serve(host: str, port: int) -> None:
    """Answer on ``host:port`` until cancelled."""
    counts = Counts()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Conn(counts), host, port, backlog=4096)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.replicas_upstream --port P``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.run(serve(args.host, args.port))
    except ImportError:
        asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
