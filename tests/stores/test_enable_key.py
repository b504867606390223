"""``POST /admin/v1/providers/{provider}/keys/{key}/enable`` clears the shared cooldown in the store too.

The finding (issue 13): the gateway applies the store's cooldown marks every second, so an enable
that cleared only this process's state was undone within a second by the mark still in the store.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import httpx2 as httpx
import pytest
import redis

from truckllm._internal.gateway import Gateway
from truckllm._internal.store import CooldownMark
from truckllm_testing.fakes import FakeOpenAI
from truckllm_testing.server import GatewayServer

T = TypeVar("T")
ADMIN = {"authorization": "Bearer admin-token"}
KEYS = ("sk-test-aaaaaaaaaaaaaaaaaaaa", "sk-test-bbbbbbbbbbbbbbbbbbbb")


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


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def store_section(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "memory":
        yield "{type: memory}"
        return
    prefix = f"truckllm-test-{uuid.uuid4().hex[:12]}:"
    yield f"{{type: redis, addr: '127.0.0.1:6379', prefix: '{prefix}', timeout: 1s}}"
    client = redis.Redis(host="127.0.0.1", port=6379)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


def on_loop(gw: GatewayServer, coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the gateway's own event loop."""
    assert gw.loop is not None
    return asyncio.run_coroutine_threadsafe(coro, gw.loop).result(10)


def key_state(gw: GatewayServer, key: str) -> str:
    answer = httpx.get(gw.url + "/admin/v1/providers", headers=ADMIN).json()
    (provider,) = answer["providers"]
    return {k["name"]: k["state"] for k in provider["keys"]}[key]


def test_enable_clears_the_shared_cooldown(fake: FakeOpenAI, store_section: str) -> None:
    with GatewayServer(config(fake.base_url, store_section)) as gw:
        gateway = gw.gateway
        assert isinstance(gateway, Gateway) and gateway.store is not None
        store = gateway.store
        until = time.time() + 600
        for key in ("first", "second"):  # marked by another process
            on_loop(gw, store.mark_cooldown(CooldownMark(provider="oa", key=key, until=until, reason="429")))
        on_loop(gw, gateway.sync_cooldowns())
        assert key_state(gw, "first") == key_state(gw, "second") == "cooldown"

        answer = httpx.post(gw.url + "/admin/v1/providers/oa/keys/first/enable", headers=ADMIN)
        assert answer.status_code == 200
        assert answer.json() == {"enabled": True, "provider": "oa", "key": "first", "shared": "cleared"}
        assert [m.key for m in on_loop(gw, store.cooldowns())] == ["second"]
        on_loop(gw, gateway.sync_cooldowns())  # what the sync loop does every second
        assert key_state(gw, "first") == "recovering"  # back in rotation (slow start), not undone by the store
        assert key_state(gw, "second") == "cooldown"
        reply = httpx.post(
            gw.url + "/v1/chat/completions",
            headers={"authorization": "Bearer anything"},
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert reply.status_code == 200  # "second" still cools down: only "first" can answer
        assert fake.requests[-1].headers["authorization"] == f"Bearer {KEYS[0]}"

        missing = httpx.post(gw.url + "/admin/v1/providers/oa/keys/nope/enable", headers=ADMIN)
        assert missing.status_code == 404
        assert httpx.post(gw.url + "/admin/v1/providers/oa/keys/first/enable").status_code == 401


def test_enable_with_a_store_that_cannot_clear_still_enables_here(fake: FakeOpenAI) -> None:
    """A third-party store written before ``clear_cooldown`` existed: the local enable stands and the
    answer says the shared mark could not be cleared."""
    with GatewayServer(config(fake.base_url, "{type: memory}")) as gw:
        gateway = gw.gateway
        assert isinstance(gateway, Gateway) and gateway.store is not None

        async def broken(provider: str, key: str) -> None:
            raise RuntimeError("backend says no")

        gateway.store.clear_cooldown = broken  # type: ignore[method-assign]
        gateway.health.key("oa", "first").cool(gateway.clock(), 600, "429")
        answer = httpx.post(gw.url + "/admin/v1/providers/oa/keys/first/enable", headers=ADMIN)
        assert answer.status_code == 200 and answer.json()["shared"] == "failed"
        assert key_state(gw, "first") == "recovering"
        gateway.store.clear_cooldown = None  # type: ignore[assignment]  # a store without the method
        answer = httpx.post(gw.url + "/admin/v1/providers/oa/keys/first/enable", headers=ADMIN)
        assert answer.status_code == 200 and answer.json()["shared"] == "unsupported"


class _Marks:
    """A store's cooldown marks, shared by two gateways (two workers) in one test."""

    def __init__(self) -> None:
        self.marks: dict[tuple[str, str], CooldownMark] = {}
        self.reading: asyncio.Event | None = None  # set: cooldowns() waits for it (a slow read)

    async def mark_cooldown(self, mark: CooldownMark) -> None:
        self.marks[(mark.provider, mark.key)] = mark

    async def clear_cooldown(self, provider: str, key: str) -> None:
        self.marks.pop((provider, key), None)

    async def cooldowns(self) -> list[CooldownMark]:
        marks = list(self.marks.values())
        if self.reading is not None:
            await self.reading.wait()
        return marks


def _worker(store: _Marks) -> Gateway:
    gw = Gateway("<w>", config_text=config("http://127.0.0.1:9/v1", "{type: memory}"), watch_interval=0)
    gw.store = store
    return gw


async def test_an_enable_in_one_worker_ends_the_shared_cooldown_in_the_others() -> None:
    store = _Marks()
    one, other = _worker(store), _worker(store)
    await store.mark_cooldown(CooldownMark(provider="oa", key="first", until=time.time() + 600, reason="rate_limit"))
    other.health.key("oa", "second").cool(other.clock(), 600, "rate_limit")  # its own 429: not from a mark
    await other.sync_cooldowns()
    assert other.health.key("oa", "first").state(other.clock()) == "cooldown"
    one.health.key("oa", "first").enable(one.clock())  # what the enable handler does, then:
    await store.clear_cooldown("oa", "first")
    await other.sync_cooldowns()
    assert other.health.key("oa", "first").available_at(other.clock()) <= other.clock()
    assert other.health.key("oa", "second").state(other.clock()) == "cooldown"  # untouched


async def test_a_sync_that_read_the_store_before_an_enable_does_not_undo_it() -> None:
    store = _Marks()
    gw = _worker(store)
    await store.mark_cooldown(CooldownMark(provider="oa", key="first", until=time.time() + 600, reason="rate_limit"))
    store.reading = asyncio.Event()
    sync = asyncio.ensure_future(gw.sync_cooldowns())
    await asyncio.sleep(0)  # the read has the mark and waits
    gw.health.key("oa", "first").enable(gw.clock())
    await store.clear_cooldown("oa", "first")
    store.reading.set()
    await sync
    state = gw.health.key("oa", "first")
    assert state.available_at(gw.clock()) <= gw.clock()


async def test_marks_apply_only_to_configured_keys() -> None:
    """A mark (polled or pushed) for a key this config does not have is ignored: anyone who can
    write the store must not grow the health registry without end."""
    store = _Marks()
    gw = _worker(store)
    until = time.time() + 600
    for i in range(50):
        await store.mark_cooldown(CooldownMark(provider="oa", key=f"made-up-{i}", until=until, reason="x"))
    await store.mark_cooldown(CooldownMark(provider="nobody", key="first", until=until, reason="x"))
    await store.mark_cooldown(CooldownMark(provider="oa", key="first", until=until, reason="rate_limit"))
    await gw.sync_cooldowns()
    assert set(gw.health.keys) <= {("oa", "first"), ("oa", "second")}
    assert gw.health.key("oa", "first").state(gw.clock()) == "cooldown"


async def test_a_key_less_provider_shares_its_cooldown() -> None:
    store = _Marks()
    gw = Gateway("<w>", config_text="providers: {demo: {type: mock}}\nmodels: {m: {deployments: [{provider: demo, model: echo}]}}\n", watch_interval=0)
    gw.store = store
    await store.mark_cooldown(CooldownMark(provider="demo", key="-", until=time.time() + 600, reason="rate_limit"))
    await gw.sync_cooldowns()
    assert gw.health.key("demo", "-").state(gw.clock()) == "cooldown"


async def test_a_marks_reason_from_the_store_is_never_shown_as_given() -> None:
    """A mark's reason ends up in client error messages: only the kernel's own words pass."""
    store = _Marks()
    gw = _worker(store)
    until = time.time() + 600
    await store.mark_cooldown(CooldownMark(provider="oa", key="first", until=until, reason="<script>evil"))
    await store.mark_cooldown(CooldownMark(provider="oa", key="second", until=until, reason="quota"))
    await gw.sync_cooldowns()
    assert gw.health.key("oa", "first").cooldown_reason == "shared"
    assert gw.health.key("oa", "second").cooldown_reason == "quota"
