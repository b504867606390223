"""The response-cache hooks: ``cache_lookup`` before selection, ``cache_store`` after a complete
success, with throwaway cache plugins on a real gateway (mock provider)."""

from __future__ import annotations

from typing import Any

import httpx2 as httpx

from truckllm import hookimpl
from truckllm.types import CacheContext, CachedAnswer, ChatRequest, RequestRecord, Usage
from truckllm_testing.server import GatewayServer

CONFIG = """
providers:
  mock: {type: mock}
models:
  m:
    deployments: [{provider: mock, model: mock-1, price: {input: 1000, output: 2000}}]
  other:
    deployments: [{provider: mock, model: mock-1, price: {input: 1, output: 1}}]
keys:
  - {name: alice, value: key-alice}
  - {name: bob, value: key-bob, models: [other]}
"""
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
STREAM = {**CHAT, "stream": True}
FRAMES = (b'data: {"a":1}\n\n', b'data: {"b":2}\n\n', b"data: [DONE]\n\n")


class DictCache:
    """A cache keyed by (gateway key, body) in a dict; records what the kernel passed it."""

    __name__ = "test-dict-cache"

    def __init__(self, preset: CachedAnswer | None = None) -> None:
        self.preset = preset
        self.entries: dict[tuple[str | None, bytes], CachedAnswer] = {}
        self.lookups: list[tuple[ChatRequest, CacheContext]] = []
        self.stored: list[CachedAnswer] = []
        self.records: list[RequestRecord] = []

    @hookimpl
    async def cache_lookup(self, request: ChatRequest, context: CacheContext) -> CachedAnswer | None:
        self.lookups.append((request, context))
        if self.preset is not None:
            return self.preset
        return self.entries.get((context.gateway_key, request.body))

    @hookimpl
    async def cache_store(self, request: ChatRequest, context: CacheContext, answer: CachedAnswer) -> None:
        self.stored.append(answer)
        self.entries[(context.gateway_key, request.body)] = answer
        await context.storage.put_state("last", answer.body or b"".join(answer.frames), 60)

    @hookimpl
    def emit_log(self, record: RequestRecord) -> None:
        self.records.append(record)


class Broken:
    """A cache whose lookup and store raise."""

    __name__ = "test-broken-cache"

    @hookimpl
    def cache_lookup(self, request: ChatRequest, context: CacheContext) -> CachedAnswer | None:
        raise RuntimeError("lookup failed")

    @hookimpl
    def cache_store(self, request: ChatRequest, context: CacheContext, answer: CachedAnswer) -> None:
        raise RuntimeError("store failed")


def _post(gw: GatewayServer, body: dict[str, Any], key: str = "key-alice", **headers: str) -> httpx.Response:
    return httpx.post(
        gw.url + "/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {key}", **headers},
        timeout=20,
    )


def test_hook_cache_lookup() -> None:
    preset = CachedAnswer(
        stream=True,
        frames=FRAMES,
        content_type="text/event-stream",
        usage=Usage(total_tokens=7),
        cost_usd=0.25,
    )
    cache = DictCache(preset)
    with GatewayServer(CONFIG, extra_plugins=(cache,)) as gw:
        answer = _post(gw, STREAM)
        denied = _post(gw, STREAM, key="key-bob")  # not allowed to use m: refused before any lookup
        unknown = _post(gw, {**STREAM, "model": "nope"})
    assert answer.status_code == 200
    assert answer.headers["x-truckllm-cache"] == "hit"
    assert answer.headers["content-type"] == "text/event-stream"
    assert answer.content == b"".join(FRAMES)
    assert denied.status_code == 403 and unknown.status_code == 404
    assert "x-truckllm-cache" not in denied.headers
    ((request, context),) = cache.lookups  # after auth, parse and the alias's resolution only
    assert request.stream and request.model == "m"
    assert (context.alias, context.gateway_key, context.dialect, context.endpoint) == (
        "m",
        "alice",
        "openai",
        "chat",
    )
    assert cache.stored == []  # a hit is not offered back
    hit = next(r for r in cache.records if r.status == 200)
    assert hit.provider is None and hit.attempts == () and hit.usage is None and hit.cost_usd == 0
    assert hit.extra == {"cache": "hit", "cost_saved_usd": 0.25, "tokens_saved": 7}


def test_hook_cache_store() -> None:
    cache = DictCache()
    with GatewayServer(CONFIG, extra_plugins=(cache,)) as gw:
        whole = _post(gw, CHAT)
        stream = _post(gw, STREAM)
        again = _post(gw, STREAM)
        gateway = gw.gateway
        assert gateway is not None
        store: Any = gateway.store  # the memory store: it keeps state (StateStore)
        assert store is not None
        kept = gw.call(store.get_state("rcache:last"))
    assert whole.headers["x-truckllm-cache"] == stream.headers["x-truckllm-cache"] == "miss"
    first, second = cache.stored
    assert not first.stream and first.body == whole.content
    assert first.content_type == "application/json"
    assert first.usage is not None and first.usage.total_tokens > 0 and first.cost_usd > 0
    assert second.stream and b"".join(second.frames) == stream.content and len(second.frames) > 1
    assert again.headers["x-truckllm-cache"] == "hit" and again.content == stream.content
    assert kept == stream.content  # the runtime store's shared state, under the caches' prefix


def test_no_cache_plugin_no_header() -> None:
    with GatewayServer(CONFIG) as gw:
        answer = _post(gw, CHAT)
    assert answer.status_code == 200 and "x-truckllm-cache" not in answer.headers


def test_a_failing_cache_is_a_miss_and_never_fails_the_request() -> None:
    cache = DictCache()
    with GatewayServer(CONFIG, extra_plugins=(Broken(), cache)) as gw:
        first = _post(gw, CHAT)
        second = _post(gw, CHAT)
    assert first.status_code == second.status_code == 200
    assert first.headers["x-truckllm-cache"] == "miss"
    assert second.headers["x-truckllm-cache"] == "hit"  # the working cache still answered


def test_an_empty_answer_is_a_miss() -> None:
    cache = DictCache(CachedAnswer(stream=True, frames=()))
    with GatewayServer(CONFIG, extra_plugins=(cache,)) as gw:
        answer = _post(gw, STREAM)
    assert answer.status_code == 200 and answer.headers["x-truckllm-cache"] == "miss"
    assert b"[DONE]" in answer.content


def test_a_hit_counts_against_the_keys_rpm() -> None:
    """Decided: a cached answer is a request the key made (rpm), but it uses no tokens (tpm)."""
    cache = DictCache()
    config = CONFIG.replace("{name: alice, value: key-alice}", "{name: alice, value: key-alice, rpm: 2}")
    with GatewayServer(config, extra_plugins=(cache,)) as gw:
        miss = _post(gw, CHAT)
        hit = _post(gw, CHAT)
        limited = _post(gw, CHAT)
    assert miss.headers["x-truckllm-cache"] == "miss" and hit.headers["x-truckllm-cache"] == "hit"
    assert limited.status_code == 429 and "x-truckllm-cache" not in limited.headers
    assert len(cache.lookups) == 2  # the limited request was refused before any lookup


def test_the_cache_section_names_a_cache_plugin_and_is_checked() -> None:
    """``cache:`` builds the named plugin with its options; an unknown type or option is a
    config error naming the field."""
    from truckllm._internal.config.loader import logger_entries, parse_config
    from truckllm._internal.plugins import make_plugin_manager
    from truckllm.errors import ConfigError

    base = "providers:\n  p: {type: mock}\nmodels:\n  m: {deployments: [{provider: p, model: echo}]}\n"
    registry = make_plugin_manager().registry()
    config = parse_config(base + "cache: {aliases: [m], ttl: 10m}\n", registry, env={})
    assert logger_entries(config)[-1] == ("cache", {"aliases": ["m"], "ttl": "10m"})
    for bad, where in (("cache: {type: nope}\n", "cache.type"), ("cache: {aliases: [m], tll: 1h}\n", "cache")):
        try:
            parse_config(base + bad, registry, env={})
        except ConfigError as exc:
            assert where in str(exc), str(exc)
        else:
            raise AssertionError(f"accepted: {bad}")
