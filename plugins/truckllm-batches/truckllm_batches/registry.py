"""The open batches of every gateway key, for the background poller (:mod:`.poller`).

Kept in the dialect's shared state (``LocalCall.shared``: no key's scope; the runtime store when
it keeps state, so every worker and replica sees one registry), one value per batch, in numbered
*slots* of the UTC day it was created: ``slot:<day>:<n>`` holds ``[key, batch_id]`` (JSON).

- **Lossless.** A slot is claimed with ``DialectState.create`` (stored only where no value is:
  Redis ``SET NX``): of several gateways claiming one slot at the same moment exactly one gets
  it, and the others go on to the next. No entry is ever overwritten or lost, with no list read
  and written back.
- **No gaps, no scan.** A claimer moves past slot ``n`` only once ``n`` is taken, so a day's
  slots are taken from 0 up with no hole: a reader goes up from 0 (or from a hint) until the
  first empty slot. Where a claim starts is found in a few reads (:func:`first_free`: from the
  ``slot:<day>:next`` hint, doubling then halving), whatever the hint says (a hint whose slot
  below is empty is not trusted: :func:`next_hint`).
- **Hints.** ``slot:<day>:next`` (every slot below it is taken) and ``slot:<day>:settled``
  (every slot below it holds a batch that needs no more questions) are plain values: a stale
  one costs reads, never an entry (both only ever describe slots that cannot change back).
- Slots live :data:`KEEP_DAYS` days (never deleted before: a day's numbering stays whole).
"""

from __future__ import annotations

import msgspec

from truckllm.kit.dialect import DialectState, LocalCall

__all__ = [
    "KEEP_DAYS",
    "MAX_SLOTS",
    "Entry",
    "add",
    "day_of",
    "first_free",
    "next_hint",
    "read_hint",
    "read_slot",
    "write_hint",
]

KEEP_DAYS = 31
"""Days a slot is kept and visited (an Anthropic batch's results live 29 days, OpenAI's 30)."""
MAX_SLOTS = 10_000_000
"""The most batches registered per UTC day (a claim beyond fails, logged; the batch is still
charged when a client retrieves it)."""

Entry = tuple[str | None, str]
"""``(gateway key name, batch id)``."""

_ENTRY = msgspec.json.Decoder(tuple[str | None, str])
_HINT = msgspec.json.Decoder(int)
_TTL = KEEP_DAYS * 86400.0


def day_of(now: float) -> int:
    """The UTC day number of a Unix time."""
    return int(now // 86400)


def _slot(day: int, n: int) -> str:
    return f"slot:{day}:{n}"


async def read_slot(state: DialectState, day: int, n: int) -> Entry | bool:
    """Slot ``n`` of ``day``: its entry, ``False`` when empty, ``True`` when taken by a value that
    is not an entry (damaged: skipped, but still taken)."""
    raw = await state.get(_slot(day, n))
    if raw is None:
        return False
    try:
        entry = _ENTRY.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return True
    return (entry[0], entry[1])


async def read_hint(state: DialectState, day: int, which: str) -> int:
    """The ``next`` or ``settled`` hint of ``day`` (0 when absent or damaged)."""
    raw = await state.get(f"slot:{day}:{which}")
    try:
        value = _HINT.decode(raw) if raw is not None else 0
    except (msgspec.DecodeError, msgspec.ValidationError):
        return 0
    return min(max(value, 0), MAX_SLOTS)


def write_hint(state: DialectState, day: int, which: str, value: int) -> None:
    """Queue the write of a hint (the caller flushes)."""
    state.put(f"slot:{day}:{which}", msgspec.json.encode(value), _TTL)


async def _taken(state: DialectState, day: int, n: int) -> bool:
    return await state.get(_slot(day, n)) is not None


async def next_hint(state: DialectState, day: int) -> int:
    """The ``next`` hint of ``day`` when the slot just below it is taken (as it is whenever the
    hint was written by a claim), else 0: a damaged or foreign value is never trusted."""
    hint = await read_hint(state, day, "next")
    if hint > 0 and not await _taken(state, day, hint - 1):
        return 0
    return hint


async def first_free(state: DialectState, day: int, start: int = 0) -> int:
    """The first empty slot of ``day`` at or after the first empty one from ``start`` (slots are
    taken from 0 up: doubling the step from ``start`` until an empty slot, then halving back)."""
    if not await _taken(state, day, start):
        return start
    low, step = start, 1  # low is taken
    while low + step < MAX_SLOTS and await _taken(state, day, low + step):
        low += step
        step *= 2
    high = min(low + step, MAX_SLOTS)  # empty (or the end)
    while high - low > 1:
        middle = (low + high) // 2
        if await _taken(state, day, middle):
            low = middle
        else:
            high = middle
    return high


async def add(call: LocalCall, batch_id: str, now: float) -> bool:
    """Register the batch ``call``'s key just created in today's slots; ``False`` when it could
    not be (no shared state, or the day is full)."""
    shared = call.shared
    if shared is None:
        return False
    entry = msgspec.json.encode((call.state.key, batch_id))
    day = day_of(now)
    n = await first_free(shared, day, await next_hint(shared, day))
    while n < MAX_SLOTS:
        if await shared.create(_slot(day, n), entry, _TTL):
            write_hint(shared, day, "next", n + 1)
            await shared.flush()
            return True
        n += 1  # another gateway took it at the same moment: the next one
    return False
