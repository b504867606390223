"""Two gateways on one Redis: an Anthropic batch's usage is charged once when both gateways'
pollers and a client's retrieve see it finished at the same moment."""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import redis
import truckllm_batches
import truckllm_provider_anthropic
import truckllm_store_redis

from truckllm_testing.conformance import wait_for
from truckllm_testing.fakes import FakeAnthropic
from truckllm_testing.server import GatewayServer

pytestmark = pytest.mark.redis

TEAM = "team-secret"


@pytest.fixture
def prefix() -> Iterator[str]:
    """A Redis key prefix of this test's own, removed after."""
    value = f"truckllm-test-{uuid.uuid4().hex[:8]}:"
    yield value
    client = redis.Redis(host="127.0.0.1", port=6379)
    keys = list(client.scan_iter(match=f"{value}*"))
    if keys:
        client.delete(*keys)
    client.close()


def _config(fake: FakeAnthropic, prefix: str) -> str:
    price = {"input": 3.0, "output": 15.0}
    return f"""
keys: [{{name: team, value: {TEAM}}}]
store: {{type: redis, addr: "127.0.0.1:6379", prefix: "{prefix}", flush_interval: 100ms, timeout: 2s}}
providers:
  ant: {{type: anthropic, base_url: {fake.base_url}, keys: [{{name: a1, value: test-key}}]}}
models:
  claude: {{deployments: [{{provider: ant, model: claude-sonnet-4-5, price: {json.dumps(price)}}}]}}
"""


def test_two_gateways_two_pollers_and_a_retrieve_charge_once(prefix: str, records: Any) -> None:
    os.environ["TRUCKLLM_BATCHES_POLL_INTERVAL"] = "0"  # the test drives both pollers
    plugins = (truckllm_batches, truckllm_provider_anthropic, truckllm_store_redis, records)
    try:
        with (
            FakeAnthropic(keys=["test-key"]).running() as fake,
            GatewayServer(_config(fake, prefix), autoload=False, extra_plugins=plugins) as one,
            GatewayServer(_config(fake, prefix), autoload=False, extra_plugins=plugins) as two,
        ):
            line = {"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions"}
            line["body"] = {"model": "claude", "messages": [{"role": "user", "content": "hello there"}]}
            first = openai.OpenAI(api_key=TEAM, base_url=one.url + "/v1", max_retries=0)
            second = openai.OpenAI(api_key=TEAM, base_url=two.url + "/v1", max_retries=0)
            file = first.files.create(file=("in.jsonl", json.dumps(line).encode()), purpose="batch")
            batch = second.batches.create(  # the other gateway reads the file from Redis
                input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
            assert second.files.content(file.id).content == json.dumps(line).encode()
            fake.end_batch(batch.id)
            pollers = [truckllm_batches._RUNNING[id(gw.gateway.view)] for gw in (one, two)]  # type: ignore[union-attr]
            start = threading.Barrier(3)

            def poll(gw: GatewayServer, poller: Any) -> None:
                start.wait()
                gw.call(poller.poll_once())

            def retrieve() -> None:
                start.wait()
                first.batches.retrieve(batch.id)

            threads = [
                threading.Thread(target=poll, args=(gw, p)) for gw, p in zip((one, two), pollers, strict=True)
            ]
            threads.append(threading.Thread(target=retrieve))
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            for gw, poller in zip((one, two), pollers, strict=True):  # and again, after: still once
                gw.call(poller.poll_once())
            second.batches.retrieve(batch.id)

            def billed() -> list[Any]:
                return [r for r in records.records if r.endpoint == "batches.usage" and r.usage is not None]

            wait_for(lambda: len(billed()) >= 1, what="the usage record")
            one.call(_idle())
            two.call(_idle())
            assert len(billed()) == 1
            assert billed()[0].usage.prompt_tokens == fake.message_usage_of(batch.id)[0]
            assert fake.violations == []
    finally:
        os.environ.pop("TRUCKLLM_BATCHES_POLL_INTERVAL", None)


async def _idle() -> None:
    import asyncio

    for _ in range(30):
        await asyncio.sleep(0.01)
