"""Two gateways in one process on one Redis: each has its own poller (the ``batches`` component,
per gateway, rebuilt on reload); an Anthropic batch's usage is charged once when both pollers and
a client's retrieve see it finished at the same moment; many creates at once across both
gateways are all registered, all polled and each charged once."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
import redis
import truckllm_batches
import truckllm_provider_anthropic
import truckllm_store_redis
from truckllm_batches import registry
from truckllm_batches.poller import Poller

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


def _config(fake: FakeAnthropic, prefix: str, poll: str = "{poll_interval: 0}") -> str:
    price = {"input": 3.0, "output": 15.0}
    return f"""
keys: [{{name: team, value: {TEAM}}}]
store: {{type: redis, addr: "127.0.0.1:6379", prefix: "{prefix}", flush_interval: 100ms, timeout: 2s}}
providers:
  ant: {{type: anthropic, base_url: {fake.base_url}, keys: [{{name: a1, value: test-key}}]}}
models:
  claude: {{deployments: [{{provider: ant, model: claude-sonnet-4-5, price: {json.dumps(price)}}}]}}
loggers: [{{batches: {poll}}}]
"""


_PLUGINS = (truckllm_batches, truckllm_provider_anthropic, truckllm_store_redis)


def _poller(gw: GatewayServer) -> Poller:
    assert gw.gateway is not None
    component = gw.gateway.view.component(truckllm_batches.BatchPoller)
    assert component is not None and component.poller is not None
    return component.poller


def _line(i: int) -> bytes:
    body = {"model": "claude", "messages": [{"role": "user", "content": f"hello there {i}"}]}
    return json.dumps(
        {"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}
    ).encode()


def _billed(records: Any) -> list[Any]:
    return [r for r in records.records if r.endpoint == "batches.usage" and r.usage is not None]


def _results_reads(fake: FakeAnthropic, batch_id: str) -> int:
    return sum(1 for r in fake.requests if r.method == "GET" and r.path.endswith(f"/{batch_id}/results"))


def _together(*jobs: Callable[[], None]) -> None:
    """Run ``jobs`` in threads released at one barrier; re-raise the first failure."""
    start = threading.Barrier(len(jobs))
    failures: list[BaseException] = []

    def run(job: Callable[[], None]) -> None:
        start.wait()
        try:
            job()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    if failures:
        raise failures[0]


async def _idle() -> None:
    for _ in range(30):
        await asyncio.sleep(0.01)


def test_two_gateways_two_pollers_and_a_retrieve_charge_once(prefix: str, records: Any) -> None:
    plugins = (*_PLUGINS, records)
    records.records.clear()
    with (
        FakeAnthropic(keys=["test-key"]).running() as fake,
        GatewayServer(_config(fake, prefix), autoload=False, extra_plugins=plugins) as one,
        GatewayServer(_config(fake, prefix), autoload=False, extra_plugins=plugins) as two,
    ):
        first = openai.OpenAI(api_key=TEAM, base_url=one.url + "/v1", max_retries=0)
        second = openai.OpenAI(api_key=TEAM, base_url=two.url + "/v1", max_retries=0)
        file = first.files.create(file=("in.jsonl", _line(1)), purpose="batch")
        batch = second.batches.create(  # the other gateway reads the file from Redis
            input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        assert second.files.content(file.id).content == _line(1)
        fake.end_batch(batch.id)
        pollers = [_poller(gw) for gw in (one, two)]
        _together(
            lambda: one.call(pollers[0].poll_once()),
            lambda: two.call(pollers[1].poll_once()),
            lambda: first.batches.retrieve(batch.id) and None,
        )
        for gw, poller in zip((one, two), pollers, strict=True):  # and again, after: still once
            gw.call(poller.poll_once())
        second.batches.retrieve(batch.id)
        wait_for(lambda: len(_billed(records)) >= 1, what="the usage record")
        one.call(_idle())
        two.call(_idle())
        assert len(_billed(records)) == 1
        assert _billed(records)[0].usage.prompt_tokens == fake.message_usage_of(batch.id)[0]
        assert fake.violations == []


def test_many_creates_at_once_on_two_gateways_all_polled_and_charged_once(prefix: str, records: Any) -> None:
    plugins = (*_PLUGINS, records)
    records.records.clear()
    with (
        FakeAnthropic(keys=["test-key"]).running() as fake,
        GatewayServer(_config(fake, prefix), autoload=False, extra_plugins=plugins) as one,
        GatewayServer(_config(fake, prefix), autoload=False, extra_plugins=plugins) as two,
    ):
        gateways = (one, two)
        clients = [openai.OpenAI(api_key=TEAM, base_url=gw.url + "/v1", max_retries=0) for gw in gateways]
        count = 24
        files = [
            clients[i % 2].files.create(file=("in.jsonl", _line(i)), purpose="batch") for i in range(count)
        ]
        created: dict[int, str] = {}

        def create(i: int) -> Callable[[], None]:
            def job() -> None:
                batch = clients[i % 2].batches.create(
                    input_file_id=files[i].id, endpoint="/v1/chat/completions", completion_window="24h"
                )
                created[i] = batch.id

            return job

        _together(*(create(i) for i in range(count)))  # every create at the same moment, both gateways
        ids = set(created.values())
        assert len(ids) == count

        async def registered() -> list[Any]:
            assert one.gateway is not None
            shared = one.gateway.view.local_call("batches", None).shared
            assert shared is not None
            day = registry.day_of(__import__("time").time())
            return [await registry.read_slot(shared, day, n) for n in range(count + 1)]

        slots = one.call(registered())
        assert [s for s in slots if isinstance(s, tuple)] == slots[:count] and slots[count] is False
        assert {s[1] for s in slots[:count] if isinstance(s, tuple)} == ids  # every one, no hole

        for batch_id in ids:
            fake.end_batch(batch_id)
        pollers = [_poller(gw) for gw in gateways]
        _together(
            *(
                lambda gw=gw, p=p: gw.call(p.poll_once()) and None
                for gw, p in zip(gateways, pollers, strict=True)
            )
        )
        for gw, poller in zip(gateways, pollers, strict=True):
            gw.call(poller.poll_once())  # and again: nothing more
        wait_for(lambda: len(_billed(records)) >= count, what="every batch's usage record")
        one.call(_idle())
        two.call(_idle())
        assert len(_billed(records)) == count
        assert {b: _results_reads(fake, b) for b in ids} == {b: 1 for b in ids}  # each output read once
        assert fake.violations == []


def test_each_gateway_runs_its_own_poller_and_a_reload_replaces_it(prefix: str) -> None:
    with (
        FakeAnthropic(keys=["test-key"]).running() as fake,
        GatewayServer(
            _config(fake, prefix, "{poll_interval: 1h}"), autoload=False, extra_plugins=_PLUGINS
        ) as one,
        GatewayServer(
            _config(fake, prefix, "{poll_interval: 2h}"), autoload=False, extra_plugins=_PLUGINS
        ) as two,
    ):
        first, second = _poller(one), _poller(two)
        assert first is not second
        assert first.view is one.gateway.view and second.view is two.gateway.view  # type: ignore[union-attr]
        assert (first.settings.interval, second.settings.interval) == (3600.0, 7200.0)
        assert first.running and second.running
        assert one.gateway is not None
        one.call(_reload(one, _config(fake, prefix, "{poll_interval: 30m, poll_max: 2h}")))
        replaced = _poller(one)
        assert replaced is not first and (replaced.settings.interval, replaced.settings.most) == (
            1800.0,
            7200.0,
        )
        wait_for(lambda: not first.running, what="the old poller stopped")
        assert replaced.running and second.running and _poller(two) is second  # the other gateway's own
    assert not replaced.running and not second.running  # stopped at shutdown


async def _reload(gw: GatewayServer, text: str) -> None:
    assert gw.gateway is not None
    gw.gateway.reload(text)
    await _idle()
