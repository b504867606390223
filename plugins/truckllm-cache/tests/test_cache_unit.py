"""The cache's key (canonical serialisation), its options, its entry point and its figures."""

from __future__ import annotations

import asyncio
import json

import msgspec
import pytest
import truckllm_cache
from truckllm_cache import EXCLUDED, ResponseCache, canonical, entry_name

from truckllm._internal.plugins import make_plugin_manager
from truckllm.kit.options import Duration
from truckllm.types import CacheContext, CachedAnswer, ChatRequest


def _request(body: object, *, stream: bool = False, usage: bool = False, model: str = "m") -> ChatRequest:
    return ChatRequest(
        endpoint="chat", body=json.dumps(body).encode(), model=model, stream=stream, include_usage=usage
    )


BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.5, "max_tokens": 10}


def test_key_order_whitespace_and_number_spelling_do_not_matter() -> None:
    text = (
        b'{ "max_tokens" : 1e1, "temperature":0.50, "messages":[{"content":"hi","role":"user"}],"model":"m"}'
    )
    spelled = ChatRequest(endpoint="chat", body=text, model="m")
    assert canonical(spelled) == canonical(_request(BODY))
    assert canonical(_request({**BODY, "max_tokens": 10.0})) == canonical(_request(BODY))
    assert canonical(_request({**BODY, "n": -0.0})) == canonical(_request({**BODY, "n": 0}))


@pytest.mark.parametrize("member", sorted(EXCLUDED - {"stream", "stream_options"}))
def test_members_that_do_not_change_the_answer_are_left_out(member: str) -> None:
    assert canonical(_request({**BODY, member: {"x": 1}})) == canonical(_request(BODY))


@pytest.mark.parametrize(
    "changed",
    [
        {"temperature": 0.6},
        {"messages": [{"role": "user", "content": "hi!"}]},
        {"tools": [{"type": "function", "function": {"name": "f"}}]},
        {"seed": 1},
    ],
)
def test_members_that_change_the_answer_change_the_key(changed: dict[str, object]) -> None:
    assert canonical(_request({**BODY, **changed})) != canonical(_request(BODY))


def test_the_form_alias_and_dialect_are_part_of_the_key() -> None:
    whole = canonical(_request(BODY))
    keys = {
        whole,
        canonical(_request(BODY, stream=True)),
        canonical(_request(BODY, stream=True, usage=True)),
        canonical(_request(BODY, model="n")),
        canonical(
            ChatRequest(endpoint="chat", dialect="anthropic", body=json.dumps(BODY).encode(), model="m")
        ),
    }
    assert len(keys) == 5


def test_names_never_spell_another_keys() -> None:
    request = _request(BODY)
    names = {entry_name(request, k) for k in ("a", "b", "a:b", None, "*")} | {
        entry_name(request, "a", shared=True)
    }
    assert len(names) == 6
    assert entry_name(request, "a:b") != entry_name(request, "a%3Ab")  # quoting is injective
    assert entry_name(ChatRequest(endpoint="chat", body=b"[1]", model="m"), "a") is None


class Storage:
    """An in-memory CacheStorage."""

    def __init__(self) -> None:
        self.values: dict[str, tuple[bytes, float]] = {}

    async def get_state(self, name: str) -> bytes | None:
        found = self.values.get(name)
        return found[0] if found else None

    async def put_state(self, name: str, value: bytes, ttl: float) -> None:
        self.values[name] = (value, ttl)


def _context(storage: Storage, alias: str = "m", key: str | None = "alice") -> CacheContext:
    return CacheContext(alias=alias, gateway_key=key, dialect="openai", endpoint="chat", storage=storage)


def test_store_then_lookup_with_ttl_size_cap_and_figures() -> None:
    cache = ResponseCache(
        ResponseCache.Options(aliases=("m",), keys=("alice",), ttl=Duration(60), max_entry_bytes=200)
    )
    storage = Storage()
    request = _request(BODY)
    small = CachedAnswer(body=b"{}", cost_usd=0.5)
    large = CachedAnswer(body=b"x" * 500)

    async def run() -> tuple[object, ...]:
        miss = await cache.cache_lookup(request, _context(storage))
        await cache.cache_store(request, _context(storage), small)
        hit = await cache.cache_lookup(request, _context(storage))
        other_key = await cache.cache_lookup(request, _context(storage, key="bob"))
        other_alias = await cache.cache_lookup(request, _context(storage, alias="n"))
        await cache.cache_store(_request({**BODY, "seed": 2}), _context(storage), large)
        return miss, hit, other_key, other_alias

    miss, hit, other_key, other_alias = asyncio.run(run())
    assert miss is None and hit == small and other_key is None and other_alias is None
    ((value, ttl),) = storage.values.values()
    assert ttl == 60 and msgspec.msgpack.decode(value, type=CachedAnswer) == small
    figures = cache.metrics
    assert (figures["hits"], figures["misses"], figures["stored"], figures["too_large"]) == (1, 1, 1, 1)
    assert figures["stored_bytes"] == len(value)


def test_a_corrupt_entry_is_a_miss() -> None:
    cache = ResponseCache(ResponseCache.Options(aliases=("*",)))
    storage = Storage()
    request = _request(BODY)
    name = entry_name(request, "alice")
    assert name is not None
    storage.values[name] = (b"\xc1not msgpack", 1.0)
    assert asyncio.run(cache.cache_lookup(request, _context(storage))) is None


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"aliases": []},
        {"aliases": ["m"], "ttl": 0},
        {"aliases": ["m"], "max_entry_bytes": 0},
        {"aliases": ["m"], "nope": 1},
    ],
)
def test_bad_options_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(options, ResponseCache.Options)


def test_entry_point_registers_the_cache_and_it_is_off_unless_configured() -> None:
    host = make_plugin_manager(autoload=True)
    assert host.pm.get_plugin("cache") is truckllm_cache
    assert host.loggers["cache"] is ResponseCache
    assert host.pm.hook.cache_lookup.get_hookimpls() == []  # only a configured instance answers
    instance = ResponseCache(ResponseCache.Options(aliases=("m",)))
    host.pm.register(instance, name="cache-instance")
    hooks = sorted(c.name for c in host.pm.get_hookcallers(instance) or [])
    assert hooks == ["cache_lookup", "cache_store", "emit_log"]
    assert truckllm_cache.TRUCKLLM_API == 1
