"""A cooldown learned by one worker reaches the other within one store round trip (issue 23,
point 2), with real processes: ``truckllm serve`` with 2 workers on the Redis store, whose
cooldown marks are pushed (``watch_cooldowns``) instead of waiting for each worker's
once-a-second poll.

Keys are tried in config order (``strategy: priority``), so every worker's first choice is the
first key not known to be cooling down. Each round, that key starts answering 429 with
``Retry-After: 30``; one request through some worker (A) meets the 429 and fails over. A shares
the mark in the background (its client's answer does not wait for Redis), so the test waits until
the mark is in Redis: it follows the push channel itself, an event with a timeout. Then, at
once, requests go until the other worker (B) answers one. B must not send anything to the key:
the key receives exactly one request (A's). Without the push, B learns only at its next poll,
which falls inside the few milliseconds between the mark and B's request well under one time in
a hundred: over :data:`ROUNDS` rounds, a gateway without the push cannot pass.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis
from truckllm_store_redis.push import decode_push

from tests.e2e.serving import free_port, redis_prefix, serving
from truckllm_testing.fakes import FakeOpenAI, Fault

pytestmark = pytest.mark.redis

ROUNDS = 5
KEYS = tuple(f"sk-push-{i}-{'x' * 24}" for i in range(ROUNDS + 1))
WITHIN = 0.3
"""Seconds from the mark's push to B's request: well inside B's 1 s poll."""
BODY = {"model": "big", "messages": [{"role": "user", "content": "hi"}]}


def config(port: int, base_url: str, prefix: str) -> str:
    keys = "\n".join(f"      - {{name: k{i}, value: {key}}}" for i, key in enumerate(KEYS))
    return f"""
server: {{listen: "127.0.0.1:{port}", workers: 2}}
admin: {{token: adm-0123456789abcdef}}
store: {{type: redis, addr: "127.0.0.1:6379", prefix: "{prefix}", timeout: 2s}}
providers:
  oa:
    type: openai
    base_url: {base_url}
    keys:
{keys}
models:
  big: {{strategy: priority, deployments: [{{provider: oa, model: gpt-4o-mini}}]}}
"""


async def chat(url: str) -> tuple[int, str, float]:
    """One request on a connection of its own (either worker may take it): status, the worker
    that answered, and when it was sent (``time.monotonic()``, the fake's clock)."""
    sent = time.monotonic()
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session,
        session.post(url + "/v1/chat/completions", json=BODY) as response,
    ):
        await response.read()
        return response.status, response.headers.get("x-truckllm-worker", "?"), sent


async def until_worker(url: str, worker: str, deadline: float) -> tuple[str, float]:
    """Requests, four at a time, until ``worker`` answers one: the worker and when its request
    was sent. Every answer must be a 200."""
    while time.monotonic() < deadline:
        answers = await asyncio.gather(*(chat(url) for _ in range(4)))
        assert {status for status, _, _ in answers} == {200}, answers
        sent = [at for _, who, at in answers if who == worker]
        if sent:
            return worker, min(sent)
    raise AssertionError(f"worker {worker} answered no request")


def requests_on(fake: FakeOpenAI, key: str) -> list[tuple[int | None, float]]:
    return [(r.status, r.started) for r in list(fake.requests) if r.api_key == key]


async def pushed(pubsub: aioredis.client.PubSub, key: str) -> float:
    """When the mark of provider key ``key`` was pushed (``time.monotonic()``, seen here)."""
    async with asyncio.timeout(5):
        while True:
            message = await pubsub.get_message(timeout=5)
            if message is not None and message["type"] == "message":
                mark = decode_push(message["data"])
                if mark is not None and mark.key == key and mark.until > 0:
                    return time.monotonic()


async def rounds(url: str, fake: FakeOpenAI, prefix: str) -> list[float]:
    """Each round's delay from the push of the mark to the other worker's request."""
    for worker in ("0", "1"):  # both workers up and serving
        await until_worker(url, worker, time.monotonic() + 20)
    delays = []
    client = aioredis.Redis(host="127.0.0.1", port=6379)
    try:
        async with client.pubsub() as pubsub:
            await pubsub.subscribe(f"{prefix}{{cooldowns}}:push")
            for i in range(ROUNDS):
                key = KEYS[i]
                before = len(requests_on(fake, key))
                fake.inject(Fault(status=429, kind="rate_limit", retry_after=30, key=key, times=-1))
                status, a, _ = await chat(url)
                assert status == 200  # worker A met the 429 and failed over to the next key
                limited = requests_on(fake, key)[before:]
                assert [s for s, _ in limited] == [429], f"round {i}: {limited}"
                marked = await pushed(pubsub, f"k{i}")
                b, sent = await until_worker(url, "1" if a == "0" else "0", time.monotonic() + 5)
                assert requests_on(fake, key)[before:] == limited, f"round {i}: worker {b} sent to {key}"
                delays.append(sent - marked)
    finally:
        await client.aclose()
    return delays


def test_a_429_through_one_worker_is_known_to_the_other_before_its_poll(tmp_path: Path) -> None:
    fake = FakeOpenAI(keys=KEYS)
    port = free_port()
    with (
        redis_prefix() as prefix,
        fake.running(),
        serving(tmp_path, config(port, fake.base_url, prefix), port) as url,
    ):
        delays = asyncio.run(rounds(url, fake, prefix))
        for key in KEYS[:ROUNDS]:  # nor in any later round: each cooled key met one request
            assert [s for s, _ in requests_on(fake, key)].count(429) == 1
    assert max(delays) < WITHIN, delays
