"""Two gateway processes on one Redis: limits, budgets, cooldowns and usage are global.

This is the README's "several workers and replicas" set-up, tried as a user would:
``truckllm serve`` with ``workers: 2`` and the redis store.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import httpx2 as httpx
import pytest

from tests.e2e.serving import free_port, redis_prefix, serving

pytestmark = pytest.mark.redis

ADMIN = {"authorization": "Bearer adm"}


@pytest.fixture
def prefix() -> Iterator[str]:
    with redis_prefix() as value:
        yield value


@pytest.fixture
def cluster(tmp_path: Path, prefix: str) -> Iterator[str]:
    port = free_port()
    config = f"""
server: {{listen: "127.0.0.1:{port}", workers: 2}}
admin: {{token: adm}}
store: {{type: redis, addr: "127.0.0.1:6379", prefix: "{prefix}", flush_interval: 200ms, timeout: 2s}}
providers:
  demo: {{type: mock}}
models:
  demo: {{deployments: [{{provider: demo, model: echo, price: {{input: 0, output: 1000}}}}]}}
keys:
  - {{name: limited, value: limited-key-123, rpm: 10}}
  - {{name: spender, value: spender-key-123, budget: {{usd: 10, period: month}}}}
  - {{name: plain, value: plain-key-123}}
"""
    with serving(tmp_path, config, port) as url:
        yield url


def chat(url: str, key: str, **body: object) -> httpx.Response:
    with httpx.Client() as client:  # a new connection each time: either worker may answer
        return client.post(url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                           json={"model": "demo", "messages": [{"role": "user", "content": "hi"}], **body})


def test_rpm_limit_holds_across_both_workers(cluster: str) -> None:
    answers = [chat(cluster, "limited-key-123") for _ in range(16)]
    assert [a.status_code for a in answers].count(200) == 10  # a burst of `rpm` (GCRA), not 10 per worker
    assert {a.headers.get("x-truckllm-worker") for a in answers} == {"0", "1"}
    refused = [a for a in answers if a.status_code == 429]
    assert all(int(a.headers["retry-after"]) >= 1 for a in refused)


def test_concurrent_requests_never_overspend_a_budget(cluster: str) -> None:
    async def burst() -> list[int]:
        async def one() -> int:
            async with aiohttp.ClientSession() as session, session.post(
                cluster + "/v1/chat/completions",
                # each answer takes 1.5 s, so all 50 are admitted while none has settled yet
                headers={"authorization": "Bearer spender-key-123", "x-mock-fault": "latency=1.5"},
                json={"model": "demo", "max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}]},
            ) as response:
                await response.read()
                return response.status

        return await asyncio.gather(*(one() for _ in range(50)))

    statuses = asyncio.run(burst())
    # each request reserves its worst case ($1: 1000 tokens at $1000 per million) against $10
    assert statuses.count(200) <= 10 and statuses.count(200) >= 1
    assert set(statuses) <= {200, 429}


def test_cooldown_and_usage_are_shared(cluster: str) -> None:
    limited = chat(cluster, "plain-key-123")
    assert limited.status_code == 200
    with httpx.Client() as client:
        hit = client.post(cluster + "/v1/chat/completions",
                          headers={"authorization": "Bearer plain-key-123", "x-mock-fault": "status=429,retry_after=30"},
                          json={"model": "demo", "messages": [{"role": "user", "content": "hi"}]})
    assert hit.status_code == 429
    time.sleep(1.5)  # the other worker polls shared cooldowns every second
    after = [chat(cluster, "plain-key-123") for _ in range(8)]
    assert {a.status_code for a in after} == {429}  # whichever worker answers, the key is cooling
    assert {a.headers.get("x-truckllm-worker") for a in after} == {"0", "1"}
    time.sleep(0.6)  # usage batches are flushed every 200 ms
    totals = [httpx.get(cluster + "/admin/v1/usage?group_by=key", headers=ADMIN).json() for _ in range(4)]
    plain = [next(r for r in t["rows"] if r["group"]["key"] == "plain") for t in totals]
    assert all(p == plain[0] for p in plain)  # both workers read the same totals
    assert plain[0]["requests"] == 10 and plain[0]["errors"] == 9
