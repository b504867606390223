"""Reading a request body (``asgi_util.read_body``): the queued fast path and the awaited one agree.

hypercorn's ``receive`` is its request queue's ``get``; a body already queued is taken without
awaiting (no coroutine, no timer). Every case below runs against such a queue (``hypercorn``)
and against a plain coroutine function (``other``: any other server), with the messages queued
before the read and, for the queue, also arriving after the read began: the outcome is the same.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from truckllm._internal.asgi_util import ClientGone, read_body
from truckllm.errors import GatewayError

LIMIT = 100

Message = dict[str, Any]


def _req(body: bytes, more: bool = False) -> Message:
    return {"type": "http.request", "body": body, "more_body": more}


CASES: list[tuple[str, list[Message], dict[bytes, bytes], object]] = [
    ("whole", [_req(b'{"a": 1}')], {}, b'{"a": 1}'),
    ("empty", [_req(b"")], {}, b""),
    ("two parts", [_req(b"ab", True), _req(b"cd")], {}, b"abcd"),
    ("an empty last part", [_req(b"ab", True), _req(b"")], {}, b"ab"),
    ("exactly the limit", [_req(b"x" * LIMIT)], {}, b"x" * LIMIT),
    ("over the limit whole", [_req(b"x" * (LIMIT + 1))], {}, 413),
    ("over the limit in parts", [_req(b"x" * 60, True), _req(b"x" * 60)], {}, 413),
    ("declared over the limit", [_req(b"x")], {b"content-length": str(LIMIT + 1).encode()}, 413),
    ("declared nonsense", [_req(b"x")], {b"content-length": b"ten"}, 400),
    ("gone first", [{"type": "http.disconnect"}], {}, ClientGone),
    ("gone midway", [_req(b"ab", True), {"type": "http.disconnect"}], {}, ClientGone),
]


def _scope(headers: dict[bytes, bytes]) -> dict[str, Any]:
    return {"type": "http", "headers": list(headers.items())}


async def _outcome(scope: dict[str, Any], receive: Any) -> object:
    try:
        return await read_body(scope, receive, LIMIT, deadline=5.0)
    except GatewayError as exc:
        return exc.status
    except ClientGone:
        return ClientGone


@pytest.mark.parametrize(("name", "messages", "headers", "expected"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("server", ["hypercorn queued", "hypercorn arriving", "other"])
async def test_every_way_to_receive_a_body_gives_the_same_outcome(
    name: str, messages: list[Message], headers: dict[bytes, bytes], expected: object, server: str
) -> None:
    scope = _scope(headers)
    if server == "other":
        pending = list(messages)

        async def receive() -> Message:
            return pending.pop(0)

        assert await _outcome(scope, receive) == expected
        return
    queue: asyncio.Queue[Message] = asyncio.Queue()
    if server == "hypercorn queued":
        for message in messages:
            queue.put_nowait(message)
        assert await _outcome(scope, queue.get) == expected
        assert queue.empty() or expected in (400, 413)  # nothing left behind but after an error
        return
    reading = asyncio.ensure_future(_outcome(scope, queue.get))
    for message in messages:
        await asyncio.sleep(0)  # the read is waiting on the queue when each message arrives
        queue.put_nowait(message)
    assert await reading == expected


async def test_a_body_that_never_comes_is_a_408_even_when_part_was_queued() -> None:
    queue: asyncio.Queue[Message] = asyncio.Queue()
    queue.put_nowait(_req(b"ab", True))  # the rest never arrives
    with pytest.raises(GatewayError) as caught:
        await read_body(_scope({}), queue.get, LIMIT, deadline=0.01)
    assert caught.value.status == 408
