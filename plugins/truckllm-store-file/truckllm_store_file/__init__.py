"""TruckLLM store plugin ``file``: the memory store plus durable state in one SQLite file.

Every decision is made in memory (a :class:`~truckllm.kit.localstate.LocalState`), exactly as by the
memory store; a background task writes what changed to SQLite every ``flush_interval`` (in a
thread, off the event loop) and :meth:`FileStore.close` writes the rest. A restart reads back
usage, budget spend per window, rate-limit state and cooldowns.

State values (:class:`~truckllm.kit.store.StateStore`: a stateful dialect's stored conversations)
are not batched: each put, read and delete goes to the file at once (:mod:`truckllm_store_file.values`),
so every process sharing the file sees a value as soon as it is put, and it survives a restart.

Nothing grows for good: usage rows of days older than ``usage_retention`` and budget windows a
week past their end are deleted at each write (``total`` budgets are kept), ended cooldowns and
full rate buckets are not written, and an operator's ``enable`` deletes the key's cooldown row.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import msgspec
from loguru import logger

from truckllm import hookimpl
from truckllm.kit.localstate import (
    GROUP_FIELDS,
    WINDOW_KEEP,
    BudgetState,
    Clock,
    LocalStore,
    RateState,
    UsageBuckets,
    check_retention,
    window_close,
)
from truckllm.kit.options import Duration
from truckllm.kit.store import DEFAULT_USAGE_RETENTION, USAGE_TOTALS, CooldownMark, UsageRow, utc_day
from truckllm.kit.tasks import stop_task
from truckllm.types import RequestRecord
from truckllm_store_file.values import FileStateValues

__all__ = ["SCHEMA_VERSION", "TRUCKLLM_API", "FileStore", "register_stores"]

TRUCKLLM_API = 1
SCHEMA_VERSION = 2
"""The file's layout version (``meta.schema_version``): 2 added the usage columns ``team``,
``org``, ``user`` and ``tag`` (a version 1 file is migrated when opened)."""


_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS usage (
    {", ".join(f"{g} TEXT NOT NULL DEFAULT '-'" for g in GROUP_FIELDS)},
    requests INTEGER NOT NULL DEFAULT 0, errors INTEGER NOT NULL DEFAULT 0,
    prompt_tokens INTEGER NOT NULL DEFAULT 0, completion_tokens INTEGER NOT NULL DEFAULT 0,
    cached_tokens INTEGER NOT NULL DEFAULT 0, reasoning_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    PRIMARY KEY ({", ".join(GROUP_FIELDS)})
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS budgets (
    key TEXT NOT NULL, budget_window TEXT NOT NULL, spent REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (key, budget_window)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rates (
    key TEXT PRIMARY KEY, tat REAL NOT NULL, interval REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cooldowns (
    provider TEXT NOT NULL, key TEXT NOT NULL, until REAL NOT NULL, reason TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (provider, key)
) WITHOUT ROWID;
"""

_UPSERT_USAGE = (
    f"INSERT INTO usage ({', '.join(GROUP_FIELDS + USAGE_TOTALS)}) "
    f"VALUES ({', '.join('?' * (len(GROUP_FIELDS) + len(USAGE_TOTALS)))}) "
    f"ON CONFLICT ({', '.join(GROUP_FIELDS)}) DO UPDATE SET "
    + ", ".join(f"{c} = {c} + excluded.{c}" for c in USAGE_TOTALS)
)
_UPSERT_SPENT = (
    "INSERT INTO budgets (key, budget_window, spent) VALUES (?, ?, ?) "
    "ON CONFLICT (key, budget_window) DO UPDATE SET spent = spent + excluded.spent"
)
_UPSERT_COOLDOWN = (
    "INSERT INTO cooldowns (provider, key, until, reason) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (provider, key) DO UPDATE SET until = excluded.until, reason = excluded.reason "
    "WHERE excluded.until > cooldowns.until"
)


def _migrate_usage(db: sqlite3.Connection) -> None:
    """Give a version 1 ``usage`` table the grouping columns it lacks (``-`` in its rows), in one
    transaction (another process opening the file at once finds it done)."""
    if _missing_columns(db):
        db.execute("BEGIN IMMEDIATE")
        try:
            missing = _missing_columns(db)
            if missing:
                old = [c for c in GROUP_FIELDS + USAGE_TOTALS if c not in missing]
                db.execute("ALTER TABLE usage RENAME TO usage_v1")
                db.execute(_SCHEMA[_SCHEMA.index("CREATE TABLE IF NOT EXISTS usage") :].split(";")[0])
                columns = ", ".join(old)
                db.execute(f"INSERT INTO usage ({columns}) SELECT {columns} FROM usage_v1")
                db.execute("DROP TABLE usage_v1")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise


def _missing_columns(db: sqlite3.Connection) -> list[str]:
    have = {row[1] for row in db.execute("PRAGMA table_info(usage)")}
    return [c for c in GROUP_FIELDS + USAGE_TOTALS if c not in have]


class _Loaded(msgspec.Struct):
    rates: list[RateState]
    budgets: list[BudgetState]
    cooldowns: list[CooldownMark]
    usage: list[UsageRow]


class _Batch(msgspec.Struct):
    now: float
    usage: list[UsageRow]
    spent: dict[tuple[str, str], float]
    rates: list[RateState]
    cooldowns: list[CooldownMark]
    cleared: list[tuple[str, str]]
    first_day: str


class FileStore(LocalStore):
    """``type: file``: in-memory decisions, persisted to SQLite off the hot path.

    Several processes may share one file: usage and budget spend are written as increments, so
    none is lost, but each process decides from what it read at start plus its own traffic
    (use the ``redis`` store for limits and budgets shared live).

    :param options: the ``store:`` section.
    :param clock: unix time (tests inject a fake clock).
    """

    name = "file"

    class Options(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
        """``store:`` options of ``type: file``.

        :ivar path: the SQLite file (created if missing; its directory must exist).
        :ivar flush_interval: how often changes are written.
        :ivar usage_retention: how long a UTC day's usage rows are kept (older ones are deleted).
        """

        path: str = "./truckllm-state.db"
        flush_interval: Duration = Duration(1.0)
        usage_retention: Duration = Duration(DEFAULT_USAGE_RETENTION)

        def __post_init__(self) -> None:
            check_retention(self.usage_retention)

    def __init__(self, options: FileStore.Options | None = None, *, clock: Clock = time.time) -> None:
        self.options = options or FileStore.Options()
        self.path = os.path.expanduser(self.options.path)
        super().__init__(clock, usage_retention=self.options.usage_retention)
        self._pending = UsageBuckets()
        self._flushed_spent: dict[tuple[str, str], float] = {}
        self._cleared: list[tuple[str, str]] = []
        self._db: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._last_error: str | None = None
        self._last_flush: float | None = None
        self.values = FileStateValues(self.path, self.state.clock)

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open (or create) the file, read the state back and start the flush task."""
        self._db = await asyncio.to_thread(self._open)
        loaded = await asyncio.to_thread(self._load, self._db, self.state.clock())
        self.state.restore(
            rates=loaded.rates, budgets=loaded.budgets, cooldowns=loaded.cooldowns, usage=loaded.usage
        )
        self._flushed_spent = {(b.key, b.window): b.spent for b in loaded.budgets}
        await self.values.open()
        self._task = asyncio.get_running_loop().create_task(self._flush_loop(), name="truckllm-store-file")

    async def close(self) -> None:
        """Stop the flush task, count unsettled reservations as spent, write everything, close."""
        task, self._task = self._task, None
        await stop_task(task)
        await self.values.close()
        if self._db is None:
            return
        self.state.commit_reservations()
        try:
            await self.flush()
        finally:
            db, self._db = self._db, None
            await asyncio.to_thread(db.close)

    async def flush(self) -> None:
        """Write every change since the last flush (one SQLite transaction)."""
        async with self._lock:
            db = self._db
            if db is None:
                return
            batch = self._batch()
            try:
                await asyncio.to_thread(self._write, db, batch)
            except Exception as exc:
                for row in batch.usage:  # keep them for the next flush
                    self._pending.add_row(row)
                self._cleared[:0] = batch.cleared
                self._last_error = f"{type(exc).__name__}: {exc}"
                raise
            for slot, delta in batch.spent.items():
                self._flushed_spent[slot] = self._flushed_spent.get(slot, 0.0) + delta
            self._last_error = None
            self._last_flush = batch.now

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.flush_interval)
            try:
                await self.flush()
            except Exception as exc:
                logger.bind(plugin="store-file").error("cannot write {}: {}", self.path, exc)

    # --- SQLite (runs in a worker thread) -------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=5.0)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            row = db.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
            if row is not None and int(row[0]) > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path} has schema version {row[0]}; this plugin reads {SCHEMA_VERSION}"
                )
            _migrate_usage(db)
            db.execute(
                "INSERT INTO meta (name, value) VALUES ('schema_version', ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (str(SCHEMA_VERSION),),
            )
        except BaseException:
            db.close()
            raise
        return db

    @staticmethod
    def _load(db: sqlite3.Connection, now: float) -> _Loaded:
        rates = [
            RateState(key=k, tat=t, interval=i)
            for k, t, i in db.execute("SELECT key, tat, interval FROM rates")
        ]
        budgets = [
            BudgetState(key=k, window=w, spent=s)
            for k, w, s in db.execute("SELECT key, budget_window, spent FROM budgets")
        ]
        cooldowns = [
            CooldownMark(provider=p, key=k, until=u, reason=r)
            for p, k, u, r in db.execute(
                "SELECT provider, key, until, reason FROM cooldowns WHERE until > ?", (now,)
            )
        ]
        n = len(GROUP_FIELDS)
        usage = [
            UsageRow(
                group=dict(zip(GROUP_FIELDS, row[:n], strict=True)),
                **dict(zip(USAGE_TOTALS, row[n:], strict=True)),
            )
            for row in db.execute(f"SELECT {', '.join(GROUP_FIELDS + USAGE_TOTALS)} FROM usage")
        ]
        return _Loaded(
            rates=[r for r in rates if r.tat > now], budgets=budgets, cooldowns=cooldowns, usage=usage
        )

    def _batch(self) -> _Batch:
        now = self.state.clock()
        self.state.prune(now)
        spent: dict[tuple[str, str], float] = {}
        slots = set()
        for budget in self.state.budget_states():
            slot = (budget.key, budget.window)
            slots.add(slot)
            delta = budget.spent - self._flushed_spent.get(slot, 0.0)
            if delta > 0:  # spent never goes down (a window pruned and written again late: skipped)
                spent[slot] = delta
        for slot in [s for s in self._flushed_spent if s not in slots and _ended(s[1], now)]:
            del self._flushed_spent[slot]
        first_day = self.state.first_usage_day(now)
        self._pending.prune(first_day)
        cleared, self._cleared = self._cleared, []
        return _Batch(
            now=now,
            usage=self._pending.drain(),
            spent=spent,
            rates=self.state.rate_states(),
            cooldowns=self.state.cooldowns(),
            cleared=cleared,
            first_day=first_day,
        )

    @staticmethod
    def _write(db: sqlite3.Connection, batch: _Batch) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                _UPSERT_USAGE,
                [
                    [row.group[g] for g in GROUP_FIELDS] + [getattr(row, c) for c in USAGE_TOTALS]
                    for row in batch.usage
                ],
            )
            db.executemany(_UPSERT_SPENT, [(k, w, d) for (k, w), d in batch.spent.items()])
            db.execute("DELETE FROM rates")
            db.executemany(
                "INSERT INTO rates (key, tat, interval) VALUES (?, ?, ?)",
                [(r.key, r.tat, r.interval) for r in batch.rates],
            )
            db.execute("DELETE FROM cooldowns WHERE until <= ?", (batch.now,))
            db.executemany("DELETE FROM cooldowns WHERE provider = ? AND key = ?", batch.cleared)
            db.executemany(
                _UPSERT_COOLDOWN, [(m.provider, m.key, m.until, m.reason) for m in batch.cooldowns]
            )
            db.execute("DELETE FROM usage WHERE day < ?", (batch.first_day,))
            windows = [w for (w,) in db.execute("SELECT DISTINCT budget_window FROM budgets")]
            db.executemany(
                "DELETE FROM budgets WHERE budget_window = ?",
                [(w,) for w in windows if _ended(w, batch.now)],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # --- the store interface: LocalStore's, in memory; ready() and store_usage add the file ---

    async def clear_cooldown(self, provider: str, key: str) -> None:
        """Remove a key's cooldown mark now in memory, and from the file at the next write."""
        self.state.clear_cooldown(provider, key)
        self._cleared.append((provider, key))

    async def get_state(self, name: str) -> bytes | None:
        """The value stored under ``name``, or ``None`` when absent or expired (read from the file).

        :raises truckllm.kit.localstate.StoreUnavailable: the store is not started.
        """
        return await self.values.get(name)

    async def put_state(self, name: str, value: bytes, ttl: float) -> None:
        """Write ``value`` under ``name`` for ``ttl`` seconds (at least 1 ms), replacing any; on disk
        when this returns.

        :raises ValueError: ``ttl`` is not a finite number.
        :raises truckllm.kit.localstate.StoreUnavailable: the store is not started.
        """
        await self.values.put(name, value, ttl)

    async def delete_state(self, name: str) -> bool:
        """Delete ``name`` from the file; ``True`` when an unexpired value was deleted.

        :raises truckllm.kit.localstate.StoreUnavailable: the store is not started.
        """
        return await self.values.delete(name)

    async def ready(self) -> dict[str, Any]:
        """Ready when the file is open and the last write succeeded."""
        ok = self._db is not None and self._last_error is None
        details: dict[str, Any] = {"ok": ok, "store": self.name, "path": self.path}
        if self._last_error is not None:
            details["error"] = self._last_error
        if self._last_flush is not None:
            details["last_flush"] = self._last_flush
        return details

    @hookimpl
    def store_usage(self, record: RequestRecord) -> None:
        """Count a finished request (in memory now, in the file at the next flush)."""
        self.state.record(record)
        if utc_day(record.started_at) >= self.state.first_usage_day(self.state.clock()):
            self._pending.add_record(record)


def _ended(window: str, now: float) -> bool:
    """The budget window ended more than :data:`~truckllm.kit.localstate.WINDOW_KEEP` ago."""
    end = window_close(window)
    return end is not None and end + WINDOW_KEEP < now


@hookimpl
def register_stores(register: Callable[[str, type], None]) -> None:
    """Register ``type: file``."""
    register("file", FileStore)
