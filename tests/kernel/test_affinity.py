"""Affinity routing (issue 17): a conversation stays on the key holding its prompt cache.

In-process gateways on virtual time, one alias over four keys of a ``sim`` provider that
answers with the key it was called with, ordered by a ``rotate`` strategy (the next key first on
every call), so that without a pin consecutive requests of one conversation land on different
keys. Pins: keep a conversation on one key, slide and expire with their TTL (per provider),
move when their key cools down, is ejected or is over its rpm or tpm, respect the share cap, survive a
restart through a shared file store, and yield to an affinity set by a dialect.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest
from starlette.requests import Request

from tests.kernel.simkit import SimPlugin
from tests.kernel.virtual_time import VirtualTime
from truckllm import hookimpl
from truckllm._internal.admin import ROUTES
from truckllm._internal.admin.affinity import affinity as affinity_route
from truckllm._internal.affinity import affinity_key
from truckllm._internal.components import build_store
from truckllm._internal.config.loader import parse_config
from truckllm._internal.dialect_state import MemoryState
from truckllm._internal.gateway import Gateway
from truckllm._internal.openai_api import OPENAI
from truckllm._internal.openai_wire import chat_completion, upstream_error
from truckllm._internal.pipeline import serve
from truckllm._internal.plugins import make_plugin_manager
from truckllm._internal.request import RequestContext
from truckllm._internal.schemas.openai import ChatCompletionRequest
from truckllm._internal.store import Store
from truckllm.types import (
    Affinity,
    Candidate,
    ChatRequest,
    Provider,
    ProviderResult,
    SelectionContext,
    StrategySpec,
    UpstreamRequest,
    UpstreamResponse,
    Usage,
)

KEYS = 4


class Sim(SimPlugin):
    """Provider ``sim`` (answers with the key's value; 429 for keys in ``limited``) and ``rotate``."""

    __name__ = "affinity-sim"

    def __init__(self, vt: VirtualTime | None) -> None:
        self.vt = vt
        self.limited: set[str] = set()
        self.calls: list[str] = []

    @hookimpl
    def register_strategies(self, register: Any) -> None:
        register(StrategySpec(name="rotate"))

    @hookimpl
    def select_provider(
        self, strategy: str, candidates: Sequence[Candidate], context: SelectionContext
    ) -> list[Candidate] | None:
        if strategy != "rotate":
            return None
        turn = int(str(context.state.get("turn", 0)))
        context.state["turn"] = turn + 1
        start = turn % len(candidates)
        return [*candidates[start:], *candidates[:start]]

    @hookimpl
    def transform_request(self, provider: Provider, model: str, request: ChatRequest, api_key: str) -> Any:
        if provider.type != "sim":
            return None
        self.calls.append(api_key)
        status = 429 if api_key in self.limited else 200

        async def local() -> UpstreamResponse:
            if self.vt is not None:
                await self.vt.sleep(0.1)
            body = chat_completion(
                model=model,
                choices=[
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": api_key},
                        "finish_reason": "stop",
                    }
                ],
                usage=Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2),
            )
            return UpstreamResponse(
                status=status, headers={"retry-after": "60"} if status == 429 else {}, body=body
            )

        return UpstreamRequest(url="sim://", local=local)

    @hookimpl
    def transform_response(self, provider: Provider, request: ChatRequest, response: UpstreamResponse) -> Any:
        if provider.type != "sim":
            return None
        if response.status >= 400:
            return ProviderResult(error=upstream_error(response.status, "sim", retry_after=60.0))
        return ProviderResult(body=response.body)

    @hookimpl
    def parse_usage(self, provider: Provider, request: ChatRequest, body: bytes) -> Usage | None:
        return Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2) if provider.type == "sim" else None


def config(affinity: str = "{enabled: true}", key_extra: str = "") -> str:
    keys = ", ".join(f"{{name: k{i}, value: k{i}{key_extra}}}" for i in range(KEYS))
    return f"""
affinity: {affinity}
providers:
  p: {{type: sim, keys: [{keys}]}}
models:
  m: {{strategy: rotate, deployments: [{{provider: p, model: x}}]}}
"""


def gateway(vt: VirtualTime | None, sim: Sim, text: str) -> Gateway:
    if vt is None:  # real time (a store doing file I/O in threads cannot run on virtual time)
        return Gateway("<sim>", config_text=text, extra_plugins=(sim,), autoload=False, watch_interval=0)
    return Gateway(
        "<sim>",
        config_text=text,
        extra_plugins=(sim,),
        autoload=False,
        clock=vt,
        wall_clock=vt,
        rng=random.Random(7),
        sleep=vt.sleep,
        watch_interval=0,
    )


def chat(
    session: str | None = None,
    *,
    turn: int = 0,
    field: str = "prompt_cache_key",
    headers: dict[str, str] | None = None,
) -> ChatRequest:
    body: dict[str, Any] = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "first"},
            *({"role": "assistant", "content": f"a{i}"} for i in range(turn)),
        ],
    }
    if session is not None:
        body[field] = session
    raw = msgspec.json.encode(body)
    return ChatRequest(
        endpoint="chat",
        body=raw,
        model="m",
        typed=msgspec.json.decode(raw, type=ChatCompletionRequest),
        headers=headers or {},
    )


async def ask(gw: Gateway, request: ChatRequest) -> str:
    """The key that answered (a client error raises)."""
    outcome = await serve(gw, gw.runtime, request, RequestContext(request_id="r", dialect=OPENAI))  # type: ignore[arg-type]
    assert outcome.status == 200 and outcome.body is not None
    content: str = msgspec.json.decode(outcome.body)["choices"][0]["message"]["content"]
    return content


def run(vt: VirtualTime, work: Any) -> Any:
    return asyncio.run(vt.run([work]))[0]


def test_a_conversation_stays_on_one_key_and_without_affinity_it_does_not() -> None:
    for enabled, expect_one in (("{enabled: true}", True), ("{}", False)):
        vt = VirtualTime()
        sim = Sim(vt)
        gw = gateway(vt, sim, config(enabled))

        async def work(gw: Gateway = gw, vt: VirtualTime = vt) -> dict[str, set[str]]:
            seen: dict[str, set[str]] = {}
            for turn in range(5):
                for s in range(10):  # 10 over 4 keys: without a pin a conversation alternates
                    seen.setdefault(f"s{s}", set()).add(await ask(gw, chat(f"s{s}", turn=turn)))
                    await vt.sleep(1)
            return seen

        seen = run(vt, work())
        assert all(len(keys) == 1 for keys in seen.values()) is expect_one, (enabled, seen)
        if expect_one:  # and the ten conversations were spread over the four keys
            assert Counter(next(iter(keys)) for keys in seen.values()) == {"k0": 3, "k1": 3, "k2": 2, "k3": 2}


def test_affinity_is_off_by_default() -> None:
    vt = VirtualTime()
    gw = gateway(vt, Sim(vt), config("{}"))
    assert gw.runtime.config.affinity.enabled is False
    assert gw.runtime.config.affinity.ttl == 300.0


def test_the_key_comes_from_the_first_source_present() -> None:
    assert affinity_key(chat("c1", headers={"x-truckllm-session": "h"})) == "pck:c1"
    assert (
        affinity_key(chat(headers={"x-claude-code-session-id": "cc", "session_id": "codex"})) == "session:cc"
    )
    assert affinity_key(chat(headers={"session-id": "codex"})) == "session:codex"
    assert affinity_key(chat("u1", field="user", headers={"conversation_id": "conv"})) == "session:conv"
    assert affinity_key(chat("u1", field="user")) == "user:u1"
    meta = chat()
    meta.body = msgspec.json.encode({**msgspec.json.decode(meta.body), "metadata": {"user_id": "m1"}})
    meta._fields = None
    assert affinity_key(meta) == "user:m1"
    # the stable prefix: later turns do not change it, another system prompt does
    first, later = affinity_key(chat(turn=0)), affinity_key(chat(turn=3))
    assert first is not None and first.startswith("prefix:") and first == later
    other = chat()
    assert other.typed is not None
    other.typed.messages[0].content = "be verbose"  # type: ignore[union-attr]
    assert affinity_key(other) != first


def test_a_pin_slides_with_use_and_expires_after_its_providers_ttl() -> None:
    vt = VirtualTime()
    sim = Sim(vt)
    gw = gateway(vt, sim, config("{enabled: true, ttl: 1h, provider_ttl: {p: 10s}}"))

    async def work() -> list[str]:
        keys = [await ask(gw, chat("s"))]
        for _ in range(4):  # every 8 s: within the TTL each time, so the pin slides
            await vt.sleep(8)
            keys.append(await ask(gw, chat("s")))
        await vt.sleep(11)  # past the TTL: a new pin, by the strategy's next choice
        keys.append(await ask(gw, chat("s")))
        return keys

    keys = run(vt, work())
    assert len(set(keys[:5])) == 1
    assert keys[5] != keys[0]
    moves = gw.affinity.moves
    assert moves["new"] == 2 and moves["refresh"] >= 2  # written at half TTL, not on every request


def test_a_pin_moves_off_a_key_that_is_rate_limited_with_no_client_error() -> None:
    vt = VirtualTime()
    sim = Sim(vt)
    gw = gateway(vt, sim, config())

    async def work() -> list[str]:
        keys = [await ask(gw, chat("s")), await ask(gw, chat("s"))]
        sim.limited.add(keys[0])  # the pinned key starts answering 429
        for _ in range(3):
            keys.append(await ask(gw, chat("s")))  # failover within the request, then a new pin
        return keys

    keys = run(vt, work())
    assert keys[0] == keys[1] and keys[2] != keys[0]
    assert keys[2] == keys[3] == keys[4]  # the conversation settled on its new key
    assert sim.calls.count(keys[0]) == 3  # the 429 was seen once; then the key is cooling down
    moves = gw.affinity.moves
    assert moves["failover"] == 1 and moves["moved"] == 0  # the pin followed the failover at once


def test_a_pin_moves_off_an_ejected_key_and_a_key_over_its_rpm() -> None:
    vt = VirtualTime()
    sim = Sim(vt)
    gw = gateway(vt, sim, config(key_extra=", rpm: 3"))

    async def work() -> list[str]:
        keys = [await ask(gw, chat("s")) for _ in range(3)]  # the third fills the key's rpm
        keys.append(await ask(gw, chat("s")))
        gw.health.key("p", keys[-1]).ejected_until = vt() + 100
        keys.append(await ask(gw, chat("s")))
        return keys

    keys = run(vt, work())
    assert keys[0] == keys[1] == keys[2] != keys[3]
    assert keys[4] not in (keys[0], keys[3])


def test_a_pin_moves_off_a_key_over_its_tpm_with_no_client_error() -> None:
    """Each answer takes 2 tokens (``parse_usage``): a key with tpm 6 is full after three; the
    fourth request of the conversation moves (reason ``moved``), with no client error, and stays
    on its new key while that one has room."""
    vt = VirtualTime()
    sim = Sim(vt)
    gw = gateway(vt, sim, config(key_extra=", tpm: 6"))

    async def work() -> list[str]:
        return [await ask(gw, chat("s")) for _ in range(5)]

    keys = run(vt, work())
    assert keys[0] == keys[1] == keys[2] != keys[3]  # the third filled the key's tpm
    assert keys[3] == keys[4]  # the conversation settled on its new key
    assert sim.calls.count(keys[0]) == 3  # a full key is never called: the pin moved first
    moves = gw.affinity.moves
    assert moves["new"] == 1 and moves["moved"] == 1 and moves["failover"] == 0


class First(Sim):
    """``rotate`` orders the candidates as the config lists them: k0 always first."""

    @hookimpl
    def select_provider(
        self, strategy: str, candidates: Sequence[Candidate], context: SelectionContext
    ) -> list[Candidate] | None:
        return list(candidates) if strategy == "rotate" else None


class Shuffled(Sim):
    """``rotate`` orders the candidates at random (seeded): like a round-robin that also turns
    for the pinned requests, the first choice of a new conversation is any key."""

    def __init__(self, vt: VirtualTime | None) -> None:
        super().__init__(vt)
        self.rng = random.Random(3)

    @hookimpl
    def select_provider(
        self, strategy: str, candidates: Sequence[Candidate], context: SelectionContext
    ) -> list[Candidate] | None:
        if strategy != "rotate":
            return None
        ordered = list(candidates)
        self.rng.shuffle(ordered)
        return ordered


@pytest.mark.parametrize("strategy", [First, Shuffled], ids=["first", "shuffled"])
def test_new_pins_keep_every_keys_share_within_max_skew_of_even(strategy: type[Sim]) -> None:
    vt = VirtualTime()
    sim = strategy(vt)
    gw = gateway(vt, sim, config("{enabled: true, max_skew: 0.15}"))
    sessions = 200

    async def work() -> Counter[str]:
        return Counter([await ask(gw, chat(f"s{s}")) for s in range(sessions)])

    spread = run(vt, work())
    even = sessions / KEYS
    assert sum(spread.values()) == sessions and len(spread) == KEYS
    assert max(spread.values()) <= even * 1.15 + 1, spread  # no key above its share of live pins
    assert min(spread.values()) >= even * 0.85 - 1, spread  # and none starved
    assert gw.affinity.moves["capped"] > 0


def test_the_share_bounds_never_move_a_pin_to_another_deployment() -> None:
    """The strategy chooses the deployment (here the first listed, as a priority strategy
    would): the bounds even out that deployment's keys and never send pins to the fallback."""
    vt = VirtualTime()
    sim = First(vt)
    text = config("{enabled: true, max_skew: 0.15}").replace(
        "models:",
        "  q: {type: sim, keys: [{name: q0, value: q0}, {name: q1, value: q1}]}\nmodels:",
    )
    text = text.replace(
        "deployments: [{provider: p, model: x}]",
        "deployments: [{provider: p, model: x}, {provider: q, model: y}]",
    )
    gw = gateway(vt, sim, text)

    async def work() -> Counter[str]:
        return Counter([await ask(gw, chat(f"s{s}")) for s in range(40)])

    spread = run(vt, work())
    assert set(spread) == {"k0", "k1", "k2", "k3"}, spread  # no pin on the fallback's q0, q1
    assert max(spread.values()) - min(spread.values()) <= 2, spread


async def _admin_affinity(gw: Gateway) -> dict[str, Any]:
    """What ``GET /admin/v1/affinity`` answers (its handler, called as the admin router does)."""
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/admin/v1/affinity",
        "headers": [],
        "query_string": b"",
    }
    answer = await affinity_route(gw, Request(scope))
    assert answer.status_code == 200
    body: dict[str, Any] = msgspec.json.decode(bytes(answer.body))
    return body


def test_the_admin_view_and_the_snapshot_show_live_pins_per_key_and_moves_by_reason() -> None:
    assert any(r.path == "/admin/v1/affinity" and r.handler is affinity_route for r in ROUTES)
    vt = VirtualTime()
    sim = Sim(vt)
    gw = gateway(vt, sim, config("{enabled: true, ttl: 60s}"))

    async def work() -> tuple[list[str], str, dict[str, Any], dict[str, Any]]:
        first = [await ask(gw, chat(f"s{s}")) for s in range(3)]  # rotate: three keys, one pin each
        sim.limited.add(first[0])  # s0's key answers 429: s0 fails over, its pin follows
        moved = await ask(gw, chat("s0"))
        live = await _admin_affinity(gw)
        await vt.sleep(61)  # every pin's TTL has ended
        return first, moved, live, await _admin_affinity(gw)

    first, moved, live, later = run(vt, work())
    assert first == ["k0", "k1", "k2"] and moved not in ("k0",)
    expected = Counter({"k1": 1, "k2": 1}) + Counter({moved: 1})
    assert {row["key"]: row["pins"] for row in live["live"]} == dict(expected)
    assert all(row["alias"] == "m" and row["provider"] == "p" for row in live["live"])
    assert live["moves"] == {"new": 3, "moved": 0, "failover": 1, "refresh": 0, "capped": 0}
    assert live["enabled"] is True and live["ttl"] == 60.0 and live["provider_ttl"] == {}
    assert later["live"] == []  # every pin expired
    assert later["moves"] == live["moves"]  # moves are counts since start
    snapshot = gw.view.snapshot().affinity
    assert snapshot is not None and snapshot.live == () and snapshot.moves["failover"] == 1


def test_the_snapshot_has_no_affinity_while_it_is_off() -> None:
    vt = VirtualTime()
    gw = gateway(vt, Sim(vt), config("{}"))
    run(vt, ask(gw, chat("s")))
    assert gw.view.snapshot().affinity is None
    assert run(vt, _admin_affinity(gw))["enabled"] is False


def _file_store(path: Path) -> Store:
    host = make_plugin_manager(autoload=True)
    store = build_store(host, parse_config(f"store: {{type: file, path: '{path}'}}", host.registry(), env={}))
    assert store is not None
    return store


def test_pins_survive_a_restart_through_a_shared_store(tmp_path: Path) -> None:
    path = tmp_path / "state.db"

    async def first() -> str:
        gw = gateway(None, Sim(None), config())
        gw.store = _file_store(path)
        await gw.store.start()
        for s in range(2):
            await ask(gw, chat(f"other{s}"))  # the rotation moves on: "s" pins the third key
        key = await ask(gw, chat("s"))
        await gw.store.close()
        return key

    async def second() -> tuple[str, str]:
        gw = gateway(None, Sim(None), config())  # a new process: its rotation starts again at k0
        gw.store = _file_store(path)
        await gw.store.start()
        try:
            return await ask(gw, chat("s")), await ask(gw, chat("new"))
        finally:
            await gw.store.close()

    pinned = asyncio.run(first())
    again, fresh = asyncio.run(second())
    assert pinned == again == "k2"
    assert fresh == "k1"  # the restarted strategy's choice for a new conversation (k0 was next, then used)


class SharedState:
    """The part of a runtime store two workers share here: state values and cooldown marks."""

    def __init__(self, vt: VirtualTime) -> None:
        self.values = MemoryState(vt, 1000)
        self.marks: list[Any] = []

    async def get_state(self, name: str) -> bytes | None:
        return await self.values.get_state(name)

    async def put_state(self, name: str, value: bytes, ttl: float) -> None:
        await self.values.put_state(name, value, ttl)

    async def delete_state(self, name: str) -> bool:
        return await self.values.delete_state(name)

    async def mark_cooldown(self, mark: Any) -> None:
        self.marks.append(mark)

    async def cooldowns(self) -> list[Any]:
        return list(self.marks)


def test_two_workers_sharing_a_store_keep_a_conversation_on_one_key() -> None:
    vt = VirtualTime()
    shared = SharedState(vt)
    workers = [gateway(vt, Sim(vt), config()) for _ in range(2)]
    for gw in workers:
        gw.store = shared  # type: ignore[assignment]

    async def work() -> dict[str, set[str]]:
        seen: dict[str, set[str]] = {}
        for turn in range(6):
            for s in range(3):  # each conversation alternates between the two workers
                seen.setdefault(f"s{s}", set()).add(await ask(workers[(turn + s) % 2], chat(f"s{s}")))
        return seen

    seen = run(vt, work())
    assert all(len(keys) == 1 for keys in seen.values()), seen
    snapshot = workers[0].affinity.snapshot()
    assert sum(row.pins for row in snapshot.live) == 3
    assert {reason: n for reason, n in snapshot.moves.items() if n} == {"new": 2}  # it read the third's pin


def test_an_affinity_from_a_dialect_wins() -> None:
    vt = VirtualTime()
    gw = gateway(vt, Sim(vt), config())

    async def work() -> list[str]:
        first = await ask(gw, chat("s"))
        target = "k3" if first != "k3" else "k1"
        pinned = chat("s")
        pinned.affinity = Affinity(provider="p", key=target)
        return [first, target, await ask(gw, pinned), await ask(gw, chat("s"))]

    first, target, by_dialect, after = run(vt, work())
    assert by_dialect == target and after == first


def test_a_broken_store_leaves_the_strategys_order() -> None:
    class Broken:
        async def get_state(self, name: str) -> bytes | None:
            raise OSError("down")

        async def put_state(self, name: str, value: bytes, ttl: float) -> None:
            raise OSError("down")

        async def delete_state(self, name: str) -> bool:
            raise OSError("down")

    vt = VirtualTime()
    gw = gateway(vt, Sim(vt), config())
    book = gw.affinity
    book.backend = lambda store: Broken()  # type: ignore[method-assign]

    async def work() -> list[str]:
        return [await ask(gw, chat("s")) for _ in range(3)]

    assert run(vt, work()) == ["k0", "k1", "k2"]


@pytest.mark.parametrize(
    "bad", ["{enabled: maybe}", "{ttl: -1s}", "{max_skew: -0.1}", "{ttl_s: 3}", "{provider_ttl: {p: soon}}"]
)
def test_bad_affinity_settings_are_config_errors(bad: str) -> None:
    vt = VirtualTime()
    with pytest.raises(Exception, match="affinity"):
        gateway(vt, Sim(vt), config(bad))


def test_a_provider_ttl_naming_no_provider_is_a_config_error() -> None:
    from truckllm._internal.config.loader import parse_config
    from truckllm._internal.plugins import make_plugin_manager
    from truckllm.errors import ConfigError

    text = """
providers:
  p: {type: mock}
models:
  m: {deployments: [{provider: p, model: echo}]}
affinity: {enabled: true, provider_ttl: {nope: 1h}}
"""
    try:
        parse_config(text, make_plugin_manager().registry(), env={})
    except ConfigError as exc:
        assert "affinity.provider_ttl.nope" in str(exc) and "no provider named 'nope'" in str(exc)
    else:
        raise AssertionError("a provider_ttl for an unknown provider was accepted")


def _post_chats(url: str, body: dict[str, Any], times: int) -> list[Any]:
    """``times`` chat requests with gateway key ``key-k``, one after the other (their answers)."""
    import httpx2 as httpx

    headers = {"authorization": "Bearer key-k"}
    return [
        httpx.post(url + "/v1/chat/completions", json=body, headers=headers, timeout=10) for _ in range(times)
    ]


def test_the_pin_read_overlaps_the_admission_round_trip() -> None:
    """One round trip's latency, not two: the pin's read is begun before the store admits the
    request (a store whose admission waits for the read to have begun would otherwise stall)."""
    from truckllm_store_memory import MemoryStore

    from truckllm_testing.server import GatewayServer

    events: list[str] = []

    class OverlapStore(MemoryStore):
        name = "overlap"
        _read: asyncio.Event | None = None

        def _event(self) -> asyncio.Event:
            if self._read is None:
                self._read = asyncio.Event()
            return self._read

        async def get_state(self, name: str) -> bytes | None:
            if name.startswith("affinity:"):
                events.append("pin read")
                self._event().set()
            return await super().get_state(name)

        async def admit(self, admission: Any) -> Any:
            await asyncio.wait_for(self._event().wait(), 5)
            self._event().clear()
            events.append("admitted")
            return await super().admit(admission)

    class Plugin:
        __name__ = "overlap-store"

        @hookimpl
        def register_stores(self, register: Any) -> None:
            register("overlap", OverlapStore)

    config = """
store: {type: overlap}
affinity: {enabled: true}
providers:
  a: {type: mock}
  b: {type: mock}
models:
  m: {strategy: round-robin, deployments: [{provider: a, model: echo}, {provider: b, model: echo}]}
keys: [{name: k, value: key-k, rpm: 100}]
"""
    body = {"model": "m", "user": "u1", "messages": [{"role": "user", "content": "hi"}]}
    with GatewayServer(config, extra_plugins=(Plugin(),)) as gw:
        answers = _post_chats(gw.url, body, 3)
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert events == ["pin read", "admitted"] * 3
    assert len({a.headers["x-truckllm-provider"] for a in answers}) == 1  # and the pin held


def test_the_prefix_key_ignores_where_the_cache_mark_is() -> None:
    """An agent moves its ``cache_control`` mark to the newest turn on every request (and sends
    a marked turn as a one-part list): the conversation's stable prefix is the same."""
    mark = {"type": "ephemeral"}

    def marked(first_user: object, system: object = "be brief", tool_mark: bool = False) -> ChatRequest:
        tool: dict[str, Any] = {
            "type": "function",
            "function": {"name": "f", "parameters": {"type": "object"}},
        }
        if tool_mark:
            tool["cache_control"] = mark
        body = {
            "model": "m",
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": first_user},
                {"role": "assistant", "content": "a0"},
                {"role": "user", "content": [{"type": "text", "text": "next", "cache_control": mark}]},
            ],
            "tools": [tool],
        }
        raw = msgspec.json.encode(body)
        typed = msgspec.json.decode(raw, type=ChatCompletionRequest)
        return ChatRequest(endpoint="chat", body=raw, model="m", typed=typed, headers={})

    plain = affinity_key(marked("first"))
    assert plain is not None and plain.startswith("prefix:")
    assert affinity_key(marked([{"type": "text", "text": "first", "cache_control": mark}])) == plain
    assert affinity_key(marked([{"type": "text", "text": "first"}])) == plain
    assert (
        affinity_key(marked("first", system=[{"type": "text", "text": "be brief", "cache_control": mark}]))
        == plain
    )
    assert affinity_key(marked("first", tool_mark=True)) == plain
    # what the prefix says still counts
    assert affinity_key(marked("other")) != plain
    assert (
        affinity_key(marked([{"type": "text", "text": "first"}, {"type": "text", "text": "more"}])) != plain
    )
    assert affinity_key(marked("first", system="be verbose")) != plain


def test_the_affinity_key_is_worked_out_once_per_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stable-prefix hash (the costly source: the request re-encoded) runs once per request,
    at admission, and the pipeline reuses it (a pin read and its order from one key)."""

    from truckllm._internal import affinity as affinity_module
    from truckllm_testing.server import GatewayServer

    hashed: list[int] = []
    real = affinity_module._prefix_hash

    def counting(request: ChatRequest) -> str | None:
        hashed.append(1)
        return real(request)

    monkeypatch.setattr(affinity_module, "_prefix_hash", counting)
    config = """
affinity: {enabled: true}
providers:
  a: {type: mock}
  b: {type: mock}
models:
  m: {strategy: round-robin, deployments: [{provider: a, model: echo}, {provider: b, model: echo}]}
keys: [{name: k, value: key-k}]
"""
    body = {"model": "m", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}]}
    with GatewayServer(config) as gw:
        answers = _post_chats(gw.url, body, 4)
    assert [a.status_code for a in answers] == [200] * 4
    assert len({a.headers["x-truckllm-provider"] for a in answers}) == 1  # pinned by the prefix
    assert len(hashed) == 4
