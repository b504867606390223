"""State values in the store's SQLite file: bytes under a name, each with its own expiry.

Unlike the store's other data, values are not batched: every put, read and delete is one SQLite
statement or transaction (in a worker thread), so a value is on disk, for every process sharing
the file, when ``put`` returns. Names are bound as SQL parameters, never part of a path or of
SQL text. Expiry is an absolute unix time on the store's injected clock, so it holds across
restarts; an expired row is deleted when read, each put deletes up to :data:`SWEEP_BATCH`
expired rows (earliest first) and opening the file deletes them all.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import threading
from collections.abc import Callable
from typing import TypeVar

from truckllm.kit.localstate import Clock, StoreUnavailable

__all__ = ["MIN_TTL", "SCHEMA", "SWEEP_BATCH", "FileStateValues", "check_ttl"]

T = TypeVar("T")

MIN_TTL = 0.001
"""The shortest time to live (seconds): a ``ttl`` at or below 0 keeps the value this long."""

SWEEP_BATCH = 64
"""Expired rows deleted at most by one put."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS state (name TEXT PRIMARY KEY, expires_at REAL NOT NULL, value BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS state_expires_at ON state (expires_at);
"""
"""The ``state`` table (a rowid table: values may be megabytes)."""

_UPSERT = (
    "INSERT INTO state (name, expires_at, value) VALUES (?, ?, ?) "
    "ON CONFLICT (name) DO UPDATE SET expires_at = excluded.expires_at, value = excluded.value"
)
_SWEEP = (
    "DELETE FROM state WHERE rowid IN "
    f"(SELECT rowid FROM state WHERE expires_at <= ? ORDER BY expires_at LIMIT {SWEEP_BATCH})"
)


def check_ttl(ttl: float) -> float:
    """``ttl`` in seconds, at least :data:`MIN_TTL`.

    :raises ValueError: ``ttl`` is not a finite number.
    """
    if not math.isfinite(ttl):
        raise ValueError(f"state ttl must be a finite number of seconds, not {ttl!r}")
    return max(float(ttl), MIN_TTL)


class FileStateValues:
    """The ``state`` table over a connection of its own (the store's flushes never wait for it,
    nor it for them: WAL lets SQLite serialise the writers).

    :param path: the SQLite file (its schema already created by the store).
    :param clock: unix time in seconds (the store's clock).
    """

    def __init__(self, path: str, clock: Clock) -> None:
        self.path = path
        self.clock = clock
        self._db: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()  # callers queue here, not in worker threads
        self._held = threading.Lock()  # the connection's owner (a cancelled caller's thread runs on)

    async def open(self) -> None:
        """Open the connection and delete every expired row."""
        self._db = await asyncio.to_thread(self._open, self.clock())

    async def close(self) -> None:
        """Close the connection (every write is already on disk)."""
        db, self._db = self._db, None
        if db is not None:
            async with self._lock:
                await asyncio.to_thread(self._locked, db.close)

    async def _run(self, work: Callable[..., T], *args: object) -> T:
        db = self._db
        if db is None:
            raise StoreUnavailable(f"the state file {self.path} is not open")
        async with self._lock:
            return await asyncio.to_thread(self._locked, work, db, *args)

    def _locked(self, work: Callable[..., T], *args: object) -> T:
        with self._held:
            return work(*args)

    def _open(self, now: float) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=5.0)
        try:
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
            db.execute("DELETE FROM state WHERE expires_at <= ?", (now,))
        except BaseException:
            db.close()
            raise
        return db

    async def get(self, name: str) -> bytes | None:
        """The value of ``name``, or ``None`` when absent or expired (an expired row is deleted)."""
        return await self._run(self._get, name, self.clock())

    async def put(self, name: str, value: bytes, ttl: float) -> None:
        """Keep ``value`` under ``name`` for ``ttl`` seconds, replacing any, in one transaction
        (which also deletes up to :data:`SWEEP_BATCH` expired rows).

        :raises ValueError: ``ttl`` is not a finite number.
        """
        ttl = check_ttl(ttl)
        now = self.clock()
        await self._run(self._put, name, bytes(value), now + ttl, now)

    async def delete(self, name: str) -> bool:
        """Delete ``name``; ``True`` when an unexpired value was deleted."""
        return await self._run(self._delete, name, self.clock())

    # --- SQLite (runs in a worker thread) -------------------------------------------------------

    @staticmethod
    def _get(db: sqlite3.Connection, name: str, now: float) -> bytes | None:
        row = db.execute("SELECT expires_at, value FROM state WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        if row[0] <= now:
            db.execute("DELETE FROM state WHERE name = ? AND expires_at <= ?", (name, now))
            return None
        return bytes(row[1])

    @staticmethod
    def _put(db: sqlite3.Connection, name: str, value: bytes, expires_at: float, now: float) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(_UPSERT, (name, expires_at, value))
            db.execute(_SWEEP, (now,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    @staticmethod
    def _delete(db: sqlite3.Connection, name: str, now: float) -> bool:
        rows = db.execute("DELETE FROM state WHERE name = ? RETURNING expires_at", (name,)).fetchall()
        return any(expires_at > now for (expires_at,) in rows)
