"""Failover keeps its promise with real processes (issue 23): two gateway workers on Redis, eight
keys on a fake OpenAI upstream, 200 concurrent clients, and three keys flipping to 429
(``Retry-After: 30``) in the middle of the run. No client sees an error, and once the gateway
knew, no flipped key is sent anything for its Retry-After."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.serving import free_port, redis_prefix, serving
from truckllm_testing.fakes import FakeOpenAI, Fault

pytestmark = pytest.mark.redis

KEYS = tuple(f"sk-flip-{i}-{'x' * 24}" for i in range(8))
FLIPPED = KEYS[2:5]
CLIENTS = 200
RUN = 6.0  # seconds of load
FLIP_AT = 2.0
GRACE = 0.5
"""Requests a worker had already sent (or was sending) to a key when the key flipped reach it
after its first 429 (each is answered 429 and fails over; the store pushes the mark to the other
worker within a millisecond or so). Past this grace after the
first 429, the key must receive nothing."""


def config(port: int, base_url: str, prefix: str) -> str:
    keys = "\n".join(f"      - {{name: k{i}, value: {key}}}" for i, key in enumerate(KEYS))
    return f"""
server: {{listen: "127.0.0.1:{port}", workers: 2}}
admin: {{token: adm-0123456789abcdef}}
store: {{type: redis, addr: "127.0.0.1:6379", prefix: "{prefix}", flush_interval: 200ms, timeout: 2s}}
providers:
  oa:
    type: openai
    base_url: {base_url}
    keys:
{keys}
models:
  big: {{deployments: [{{provider: oa, model: gpt-4o-mini}}]}}
"""


async def load(url: str, until: float, flip: asyncio.Event, fake: FakeOpenAI) -> Counter[int]:
    statuses: Counter[int] = Counter()
    body = {"model": "big", "messages": [{"role": "user", "content": "hi"}]}
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            while time.monotonic() < until:
                async with session.post(url + "/v1/chat/completions", json=body) as response:
                    await response.read()
                    statuses[response.status] += 1

        async def flipper() -> None:
            await asyncio.sleep(FLIP_AT)
            for key in FLIPPED:
                fake.inject(Fault(status=429, kind="rate_limit", retry_after=30, key=key, times=-1))
            flip.set()

        await asyncio.gather(flipper(), *(client() for _ in range(CLIENTS)))
    return statuses


def test_three_keys_flip_to_429_under_load_and_no_client_sees_it(tmp_path: Path) -> None:
    fake = FakeOpenAI(keys=KEYS)
    port = free_port()
    with redis_prefix() as prefix, fake.running(), serving(tmp_path, config(port, fake.base_url, prefix), port) as url:
        statuses = asyncio.run(load(url, time.monotonic() + RUN, asyncio.Event(), fake))
    assert sum(statuses.values()) > 1000
    assert statuses == Counter({200: sum(statuses.values())})
    received = list(fake.requests)
    for key in FLIPPED:
        limited = [r for r in received if r.api_key == key and r.status == 429]
        assert limited, f"{key} was never sent a request after it flipped"
        told = min(r.finished or r.started for r in limited)
        late = [r for r in received if r.api_key == key and told + GRACE < r.started < told + 30]
        assert late == [], f"{key}: {len(late)} requests inside its Retry-After"
    healthy = Counter(r.api_key for r in received if r.status == 200)
    assert all(healthy[k] > 0 for k in KEYS if k not in FLIPPED)
