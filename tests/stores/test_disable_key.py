"""``POST /admin/v1/providers/{provider}/keys/{key}/disable``: out here at once, and in every
process sharing the store within one cooldown sync, until an enable (the console's button)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import httpx2 as httpx
import pytest
import redis

from truckllm._internal.gateway import DISABLED_MARK, OPERATOR_DISABLED, Gateway
from truckllm._internal.store import CooldownMark
from truckllm_testing.fakes import FakeOpenAI
from truckllm_testing.server import GatewayServer

T = TypeVar("T")
ADMIN = {"authorization": "Bearer admin-token"}
KEYS = ("sk-test-aaaaaaaaaaaaaaaaaaaa", "sk-test-bbbbbbbbbbbbbbbbbbbb")
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def config(base_url: str, store: str) -> str:
    return f"""
admin: {{token: admin-token}}
store: {store}
providers:
  oa:
    type: openai
    base_url: {base_url}
    keys:
      - {{name: first, value: {KEYS[0]}}}
      - {{name: second, value: {KEYS[1]}}}
models:
  gpt-4o:
    deployments: [{{provider: oa, model: gpt-4o}}]
"""


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    upstream = FakeOpenAI(keys=KEYS)
    with upstream.running():
        yield upstream


@pytest.fixture
def redis_section() -> Iterator[str]:
    prefix = f"truckllm-test-{uuid.uuid4().hex[:12]}:"
    yield f"{{type: redis, addr: '127.0.0.1:6379', prefix: '{prefix}', timeout: 1s}}"
    client = redis.Redis(host="127.0.0.1", port=6379)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


def on_loop(gw: GatewayServer, coro: Coroutine[Any, Any, T]) -> T:
    assert gw.loop is not None
    return asyncio.run_coroutine_threadsafe(coro, gw.loop).result(10)


def states(gw: GatewayServer) -> dict[str, str]:
    answer = httpx.get(gw.url + "/admin/v1/providers", headers=ADMIN).json()
    (provider,) = answer["providers"]
    return {k["name"]: k["state"] for k in provider["keys"]}


@pytest.mark.redis
def test_disable_reaches_every_process_and_enable_brings_it_back(
    fake: FakeOpenAI, redis_section: str
) -> None:
    text = config(fake.base_url, redis_section)
    with GatewayServer(text) as one, GatewayServer(text) as other:
        answer = httpx.post(one.url + "/admin/v1/providers/oa/keys/first/disable", headers=ADMIN)
        assert answer.status_code == 200
        assert answer.json() == {"disabled": True, "provider": "oa", "key": "first", "shared": "marked"}
        assert states(one)["first"] == "disabled"  # here: at once
        other_gw = other.gateway
        assert isinstance(other_gw, Gateway)
        on_loop(other, other_gw.sync_cooldowns())  # what its sync loop does every second
        assert states(other)["first"] == "disabled"
        for _ in range(6):  # every request goes to the other key, in both processes
            for gw in (one, other):
                reply = httpx.post(
                    gw.url + "/v1/chat/completions", headers={"authorization": "Bearer x"}, json=CHAT
                )
                assert reply.status_code == 200
                assert fake.requests[-1].headers["authorization"] == f"Bearer {KEYS[1]}"
        on_loop(other, other_gw.sync_cooldowns())  # a later sync keeps it out (not a cooldown that ends)
        assert states(other)["first"] == "disabled"

        enabled = httpx.post(other.url + "/admin/v1/providers/oa/keys/first/enable", headers=ADMIN)
        assert enabled.status_code == 200 and enabled.json()["shared"] == "cleared"
        one_gw = one.gateway
        assert isinstance(one_gw, Gateway)
        on_loop(one, one_gw.sync_cooldowns())
        assert states(one)["first"] in ("ok", "recovering")
        assert states(other)["first"] in ("ok", "recovering")


def test_disable_without_a_shared_store_and_unknown_keys(fake: FakeOpenAI) -> None:
    with GatewayServer(config(fake.base_url, "{type: memory}")) as gw:
        gateway = gw.gateway
        assert isinstance(gateway, Gateway)
        answer = httpx.post(gw.url + "/admin/v1/providers/oa/keys/second/disable", headers=ADMIN)
        assert answer.json()["shared"] == "marked"
        on_loop(gw, gateway.sync_cooldowns())  # its own mark, read back: still out, not "shared" cooldown
        assert states(gw) == {"first": "ok", "second": "disabled"}
        assert (
            httpx.post(gw.url + "/admin/v1/providers/oa/keys/nope/disable", headers=ADMIN).status_code == 404
        )
        assert httpx.post(gw.url + "/admin/v1/providers/oa/keys/first/disable").status_code == 401
        assert (
            httpx.post(gw.url + "/admin/v1/providers/oa/keys/second/enable", headers=ADMIN).status_code == 200
        )
        on_loop(gw, gateway.sync_cooldowns())
        assert states(gw)["second"] in ("ok", "recovering")


async def test_a_failing_store_still_disables_here() -> None:
    gw = Gateway("<w>", config_text=config("http://127.0.0.1:9/v1", "{type: memory}"), watch_interval=0)

    class Broken:
        async def mark_cooldown(self, mark: CooldownMark) -> None:
            raise ConnectionError("down")

    gw.store = Broken()  # type: ignore[assignment]
    gw.disable_key("oa", "first")
    with pytest.raises(ConnectionError):
        await gw.share_disable("oa", "first")
    assert gw.health.key("oa", "first").state(gw.clock()) == "disabled"


async def test_a_disable_mark_is_not_clamped_like_a_retry_after() -> None:
    """A cooldown mark is clamped to max_retry_after; a disable lasts until an enable."""
    gw = Gateway("<w>", config_text=config("http://127.0.0.1:9/v1", "{type: memory}"), watch_interval=0)
    mark = CooldownMark(provider="oa", key="first", until=time.time() + 10 * 86400, reason=DISABLED_MARK)
    assert gw.apply_mark(mark)
    state = gw.health.key("oa", "first")
    assert state.disabled == OPERATOR_DISABLED
    assert state.available_at(gw.clock()) == float("inf")
    # a 401's disable is not ended by the mark disappearing
    other = gw.health.key("oa", "second")
    other.disabled = "the provider refused the key (401)"
    gw._unmark(other, gw.clock())
    assert other.disabled
