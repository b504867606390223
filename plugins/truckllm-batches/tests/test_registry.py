"""The poller's registry of open batches: lossless under concurrent adds (every add in its own
slot, the day's slots taken from 0 with no hole), whatever the hints say; and the poller reads
each slot once, only new ones each round, past holes below the ``next`` hint."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from truckllm_batches import registry
from truckllm_batches.poller import Poller, PollSettings

from truckllm._internal.dialect_state import MemoryState, RequestState
from truckllm.kit.dialect import LocalAnswer, LocalCall

DAY = 20_000
NOW = DAY * 86400.0 + 3600


class _Yielding:
    """Process memory that lets other tasks run before every operation (so concurrent adds
    interleave at every step); ``create_state`` itself is atomic, as Redis ``SET NX`` is."""

    def __init__(self, seed: int) -> None:
        self.memory = MemoryState(lambda: NOW, 1_000_000)
        self.random = random.Random(seed)

    async def _turn(self) -> None:
        for _ in range(self.random.randrange(3)):
            await asyncio.sleep(0)

    async def get_state(self, name: str) -> bytes | None:
        await self._turn()
        return await self.memory.get_state(name)

    async def put_state(self, name: str, value: bytes, ttl: float) -> None:
        await self._turn()
        await self.memory.put_state(name, value, ttl)

    async def delete_state(self, name: str) -> bool:
        await self._turn()
        return await self.memory.delete_state(name)

    async def create_state(self, name: str, value: bytes, ttl: float) -> bool:
        await self._turn()
        return await self.memory.create_state(name, value, ttl)


def _state(backend: Any, key: str | None) -> RequestState:
    return RequestState(backend, "batches", key, 86400.0, 1 << 20)


def _call(backend: Any, key: str | None) -> LocalCall:
    async def forward(request: Any) -> LocalAnswer:
        raise AssertionError("no forward expected")

    return LocalCall(
        method="POST",
        path_params={},
        query={},
        headers={},
        body=b"",
        state=_state(backend, key),
        forward=forward,
        shared=_state(backend, None),
    )


async def _slots(backend: Any, upto: int) -> list[registry.Entry | bool]:
    shared = _state(backend, None)
    return [await registry.read_slot(shared, DAY, n) for n in range(upto)]


@pytest.mark.parametrize("seed", range(8))
async def test_concurrent_adds_are_all_kept_in_a_prefix_of_slots(seed: int) -> None:
    backend = _Yielding(seed)
    calls = [_call(backend, f"key-{i % 5}") for i in range(120)]
    added = await asyncio.gather(*(registry.add(c, f"batch_{i}", NOW) for i, c in enumerate(calls)))
    assert all(added)
    slots = await _slots(backend, 125)
    kept = slots[:120]
    assert all(isinstance(s, tuple) for s in kept)  # slots 0..119 taken, no hole
    assert slots[120:] == [False] * 5
    assert sorted(s[1] for s in kept if isinstance(s, tuple)) == sorted(f"batch_{i}" for i in range(120))


@pytest.mark.parametrize("hint", [None, b"0", b"3", b"17", b"-5", b'"x"', b"99999999999"])
async def test_any_hint_loses_nothing(hint: bytes | None) -> None:
    backend = _Yielding(1)
    for i in range(20):
        assert await registry.add(_call(backend, "k"), f"batch_{i}", NOW)
    shared = _state(backend, None)
    if hint is None:
        await shared.delete(f"slot:{DAY}:next")
    else:
        shared.put(f"slot:{DAY}:next", hint)
        await shared.flush()
    added = await asyncio.gather(*(registry.add(_call(backend, "k"), f"late_{i}", NOW) for i in range(10)))
    assert all(added)
    found = [s[1] for s in await _slots(backend, 40) if isinstance(s, tuple)]
    assert sorted(found) == sorted([f"batch_{i}" for i in range(20)] + [f"late_{i}" for i in range(10)])


async def test_first_free_finds_the_boundary_in_few_reads() -> None:
    backend = _Yielding(2)
    shared = _state(backend, None)
    for n in range(1000):
        assert await shared.create(f"slot:{DAY}:{n}", b'["k","b"]')
    reads = 0
    real = backend.get_state

    async def counted(name: str) -> bytes | None:
        nonlocal reads
        reads += 1
        return await real(name)

    backend.get_state = counted  # type: ignore[method-assign]
    for start in (0, 1, 500, 999, 1000):
        reads = 0
        assert await registry.first_free(shared, DAY, start) == 1000
        assert reads <= 25, start


class _View:
    """The poller's view: every batch is unknown (a visit finds no record: done)."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.draining = False

    def local_call(self, dialect: str, key: str | None) -> LocalCall:
        return _call(self.backend, key)


async def test_the_poller_reads_each_slot_once_and_past_holes_below_next() -> None:
    backend = _Yielding(3)
    for i in range(10):
        assert await registry.add(_call(backend, "k"), f"batch_{i}", NOW)
    await backend.memory.delete_state(f"state:batches:*:slot:{DAY}:4")  # a slot lost (memory state)
    reads: list[str] = []
    real = backend.get_state

    async def counted(name: str) -> bytes | None:
        if f":slot:{DAY}:" in name and not name.endswith(("next", "settled")):
            reads.append(name.rsplit(":", 1)[1])
        return await real(name)

    backend.get_state = counted  # type: ignore[method-assign]
    poller = Poller(_View(backend), PollSettings(interval=60.0, most=900.0), clock=lambda: NOW)
    await poller.poll_once()
    assert sorted({int(r) for r in reads}) == list(range(11))  # 0..9 and the first empty one
    assert await registry.add(_call(backend, "k"), "batch_new", NOW)  # slot 10 (the hint is sound)
    assert await registry.add(_call(backend, "k"), "batch_newer", NOW)
    reads.clear()
    await poller.poll_once()
    assert sorted({int(r) for r in reads}) == [10, 11, 12]  # only what is new (11: the hint's check too)
    settled = await registry.read_hint(_state(backend, None), DAY, "settled")
    assert settled == 12  # every batch read is finished (no record): a new poller starts there
    reads.clear()
    again = Poller(_View(backend), PollSettings(interval=60.0, most=900.0), clock=lambda: NOW)
    await again.poll_once()
    assert sorted({int(r) for r in reads}) == [11, 12]  # the hint's check (11 taken), the first empty
