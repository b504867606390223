"""``DialectState.create``: a value stored only where none is, exactly one winner among concurrent
callers (process memory; Redis ``SET NX`` across clients), scoped like every state name, and a
read-then-write fallback for a state store without ``create_state``."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from truckllm._internal.components import build_store
from truckllm._internal.config.loader import parse_config
from truckllm._internal.dialect_state import MemoryState, RequestState
from truckllm._internal.plugins import make_plugin_manager
from truckllm._internal.store import StateCreate, StateStore


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _PlainState:
    """A state store with get/put/delete only (no ``create_state``)."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}

    async def get_state(self, name: str) -> bytes | None:
        return self.values.get(name)

    async def put_state(self, name: str, value: bytes, ttl: float) -> None:
        self.values[name] = value

    async def delete_state(self, name: str) -> bool:
        return self.values.pop(name, None) is not None


def _state(backend: StateStore, key: str | None = "alice", max_bytes: int = 1024) -> RequestState:
    return RequestState(backend, "batches", key, 60.0, max_bytes)


async def _race(states: list[RequestState], name: str) -> list[bool]:
    return list(await asyncio.gather(*(s.create(name, f"v{i}".encode()) for i, s in enumerate(states))))


async def test_memory_one_winner_and_its_value() -> None:
    memory = MemoryState(_Clock(), 100)
    states = [_state(memory) for _ in range(50)]
    won = await _race(states, "slot:0")
    assert won.count(True) == 1
    assert await states[0].get("slot:0") == f"v{won.index(True)}".encode()
    assert await states[1].create("slot:0", b"again") is False  # there now: never replaced


async def test_memory_expired_value_may_be_created_again() -> None:
    clock = _Clock()
    state = _state(MemoryState(clock, 100))
    assert await state.create("slot:0", b"a", ttl=5.0) is True
    clock.now += 4.9
    assert await state.create("slot:0", b"b") is False
    clock.now += 0.2
    assert await state.create("slot:0", b"c") is True
    assert await state.get("slot:0") == b"c"


@pytest.mark.parametrize(
    ("scope_a", "scope_b"), [("alice", "bob"), ("alice", None), ("a:b", "a%3Ab"), (None, "*")]
)
async def test_names_are_scoped_per_key(scope_a: str | None, scope_b: str | None) -> None:
    memory = MemoryState(_Clock(), 100)
    assert await _state(memory, scope_a).create("slot:0", b"a") is True
    assert await _state(memory, scope_b).create("slot:0", b"b") is True  # another key's own name


async def test_over_max_bytes_or_queued_is_not_created() -> None:
    memory = MemoryState(_Clock(), 100)
    state = _state(memory, max_bytes=4)
    assert await state.create("big", b"12345") is False
    assert await state.get("big") is None
    state.put("queued", b"x")
    assert await state.create("queued", b"y") is False  # this request's own write is there
    await state.flush()
    assert await state.get("queued") == b"x"


async def test_fallback_without_create_state() -> None:
    plain = _PlainState()
    assert not isinstance(plain, StateCreate)
    first, second = _state(plain), _state(plain)
    assert await first.create("slot:0", b"a") is True
    assert await second.create("slot:0", b"b") is False
    assert await second.get("slot:0") == b"a"


@pytest.mark.redis
async def test_redis_one_winner_across_clients() -> None:
    host = make_plugin_manager(autoload=True)
    prefix = f"truckllm-test-{uuid.uuid4().hex[:8]}:"
    section = f"store: {{type: redis, addr: '127.0.0.1:6379', prefix: '{prefix}', timeout: 2s}}"
    stores = [build_store(host, parse_config(section, host.registry(), env={})) for _ in range(3)]
    for store in stores:
        assert isinstance(store, StateCreate)
        await store.start()  # type: ignore[union-attr]
    try:
        for slot in range(20):  # every slot: one winner among 30 callers on three connections
            states = [_state(stores[i % 3]) for i in range(30)]  # type: ignore[arg-type]
            won = await _race(states, f"slot:{slot}")
            assert won.count(True) == 1, slot
            assert await states[0].get(f"slot:{slot}") == f"v{won.index(True)}".encode()
        state = _state(stores[0])  # type: ignore[arg-type]
        assert await state.create("short", b"a", ttl=0.05) is True
        await asyncio.sleep(0.2)
        assert await state.create("short", b"b") is True  # expired: created again
    finally:
        for store in stores:
            for name in [f"slot:{n}" for n in range(20)] + ["short"]:
                await _state(store).delete(name)  # type: ignore[arg-type]
            await store.close()  # type: ignore[union-attr]
