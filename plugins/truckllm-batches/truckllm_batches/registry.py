"""The open batches of every gateway key, for the background poller (:mod:`.poller`).

Kept in the dialect's shared state (``LocalCall.shared``: no key's scope; the runtime store when
it keeps state, so every worker and replica sees one registry) as JSON lists of ``[key,
batch_id]`` under ``open:<UTC day>:<shard>``: a batch is added to today's list when it is
created. A list is only ever appended to on its day; the poller prunes a day's lists (the
batches billed or finished without output) only once that day is over by :data:`SETTLE_DAYS`,
so a prune never races an add. Two adds to one list at the same moment may overwrite one
another: each add reads its list back after writing and retries (:data:`ADD_TRIES`). Lists live
:data:`KEEP_DAYS` days.
"""

from __future__ import annotations

import zlib

import msgspec

from truckllm.kit.dialect import DialectState, LocalCall

__all__ = ["ADD_TRIES", "KEEP_DAYS", "SETTLE_DAYS", "SHARDS", "Entry", "add", "day_of", "load", "save"]

SHARDS = 4
"""Lists per day (fewer concurrent adds to one list)."""
KEEP_DAYS = 31
"""Days a list is kept and visited (an Anthropic batch's results live 29 days, OpenAI's 30)."""
SETTLE_DAYS = 1
"""A day's lists are pruned once this many days have passed after it."""
ADD_TRIES = 4
"""Writes of one add before it gives up (logged; a client's retrieve still bills the batch)."""

Entry = tuple[str | None, str]
"""``(gateway key name, batch id)``."""

_LIST = msgspec.json.Decoder(list[tuple[str | None, str]])


def day_of(now: float) -> int:
    """The UTC day number of a Unix time."""
    return int(now // 86400)


def _name(day: int, shard: int) -> str:
    return f"open:{day}:{shard}"


async def load(state: DialectState, day: int, shard: int) -> list[Entry]:
    """One list (empty when absent or damaged)."""
    raw = await state.get(_name(day, shard))
    try:
        return list(_LIST.decode(raw)) if raw is not None else []
    except (msgspec.DecodeError, msgspec.ValidationError):
        return []


async def save(state: DialectState, day: int, shard: int, entries: list[Entry]) -> None:
    """Write one list now (an empty one is removed)."""
    if entries:
        state.put(_name(day, shard), msgspec.json.encode(entries), KEEP_DAYS * 86400.0)
        await state.flush()
    else:
        await state.delete(_name(day, shard))


async def add(call: LocalCall, batch_id: str, now: float) -> bool:
    """Add the batch ``call``'s key just created to today's list; ``False`` when it could not
    be (no shared state, or every try was overwritten)."""
    shared = call.shared
    if shared is None:
        return False
    entry: Entry = (call.state.key, batch_id)
    day, shard = day_of(now), zlib.crc32(batch_id.encode()) % SHARDS
    for _ in range(ADD_TRIES):
        entries = await load(shared, day, shard)
        if entry in entries:
            return True
        await save(shared, day, shard, [*entries, entry])
        if entry in await load(shared, day, shard):
            return True
    return False
