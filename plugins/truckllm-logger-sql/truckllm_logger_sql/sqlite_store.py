"""The SQLite backend: one file in WAL mode (``synchronous=NORMAL``); every write on one
dedicated thread with its own connection, reads on a few other threads with theirs, so a read
never waits for the writer.

Schema changes are :data:`MIGRATIONS`, applied under ``BEGIN IMMEDIATE`` (the database's write
lock: a second process starting at once waits, then finds them applied), each recorded in
``schema_migrations`` and each idempotent (``IF NOT EXISTS``; a column is added only when the
table lacks it: :class:`~.ddl.AddColumn`).
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from truckllm.kit.request_log import LogPage, LogQuery, Series, SeriesQuery
from truckllm.types import RequestRecord

from .codec import COLUMNS, from_row, to_row
from .ddl import (
    AddColumn,
    context_columns,
    context_indexes,
    index_statements,
    requests_columns,
    rollup_statements,
    unit_columns,
    upsert_rollup_sql,
)
from .queries import search_sql, series_sql, top_sql
from .reader import page_from, series_from
from .rollup import RETENTION_DAYS, ROLLUP_COLUMNS, STEP_SECONDS, aggregate, table_of

__all__ = ["MIGRATIONS", "SqliteStore", "connect", "migrate"]

T = TypeVar("T")

MIGRATIONS: tuple[tuple[int, tuple[str | AddColumn, ...]], ...] = (
    (
        1,
        (
            f"CREATE TABLE IF NOT EXISTS requests (\n  {requests_columns('sqlite')}\n)",
            *index_statements(),
            *rollup_statements("sqlite"),
        ),
    ),
    (2, tuple(unit_columns("sqlite"))),  # the units of work: requests and rollups
    (3, (*context_columns("sqlite"), *context_indexes())),  # team, org, user, tags, guardrails, metadata
)
"""``(version, statements)``, oldest first; a version is applied once, in one transaction."""

_CHUNK = 5000
_READERS = 4


def _ph(_: int) -> str:
    return "?"


_LOCK_WAIT = 30.0  # seconds a connection waits for another's lock


def connect(
    path: str | Path,
    *,
    lock_wait: float = _LOCK_WAIT,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> sqlite3.Connection:
    """A connection in WAL mode with ``synchronous=NORMAL``, in autocommit (transactions are
    explicit ``BEGIN``), waiting up to ``lock_wait`` seconds (30) for another writer's lock.

    Switching a new file to WAL takes an exclusive lock without calling the busy handler, so a
    second process opening the same new file at once gets ``database is locked`` at once: that
    switch is retried here (``sleep`` between tries) until ``lock_wait`` has passed by ``clock``.
    """
    conn = sqlite3.connect(str(path), timeout=lock_wait, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {int(lock_wait * 1000)}")
    deadline = clock() + lock_wait
    wait = 0.01
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            break
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or clock() >= deadline:
                conn.close()
                raise
            sleep(wait)
            wait = min(wait * 2, 0.25)
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Apply the missing :data:`MIGRATIONS` under the write lock; the versions applied now."""
    done: list[int] = []
    with _transaction(conn):
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
        )
        applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for version, statements in MIGRATIONS:
            if version in applied:
                continue
            for statement in statements:
                if isinstance(statement, AddColumn):
                    have = {row[1] for row in conn.execute(f"PRAGMA table_info({statement.table})")}
                    if statement.column not in have:
                        conn.execute(statement.sql("sqlite"))
                else:
                    conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, time.time()))
            done.append(version)
    return done


def write_batch(conn: sqlite3.Connection, records: Sequence[RequestRecord]) -> int:
    """Insert ``records`` and add them to the rollups in one transaction; records whose
    ``request_id`` is already stored (a retry of a batch that was in fact committed) are skipped,
    rows and rollups alike. Returns how many were new.

    Row tuples and rollups are built in Python here, not in SQL from one JSON array as for
    PostgreSQL: SQLite 3.40 parses a record's JSON again at every ``json_extract`` call site, and
    sums histograms slowly, so the SQL way cost twice the gateway's CPU (``bench.instructions``:
    +501k instructions per request against +247k this way)."""
    with _transaction(conn):
        ids = list({r.request_id for r in records})
        seen: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ", ".join("?" * len(chunk))
            seen.update(
                row[0]
                for row in conn.execute(
                    f"SELECT request_id FROM requests WHERE request_id IN ({marks})", chunk
                )
            )
        fresh: list[RequestRecord] = []
        for record in records:
            if record.request_id not in seen:
                seen.add(record.request_id)
                fresh.append(record)
        if not fresh:
            return 0
        conn.executemany(
            f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
            [to_row(r) for r in fresh],
        )
        for step in STEP_SECONDS:
            upsert = upsert_rollup_sql(table_of(step), ["?"] * len(ROLLUP_COLUMNS))
            conn.executemany(upsert, aggregate(fresh, step))
    return len(fresh)


def _delete_before(conn: sqlite3.Connection, table: str, column: str, before: float) -> int:
    deleted = 0
    while True:
        with _transaction(conn):
            cursor = conn.execute(
                f"DELETE FROM {table} WHERE rowid IN"
                f" (SELECT rowid FROM {table} WHERE {column} < ? LIMIT {_CHUNK})",
                (before,),
            )
        deleted += cursor.rowcount
        if cursor.rowcount < _CHUNK:
            return deleted


def apply_retention(conn: sqlite3.Connection, now: float, retention_days: int) -> int:
    """Delete request rows older than ``retention_days`` (0: keep) and rollup rows past their
    table's retention, in chunks of 5,000 rows per transaction, then refresh the planner's
    statistics (a sampled ``ANALYZE``); the request rows deleted."""
    deleted = (
        _delete_before(conn, "requests", "started_at", now - retention_days * 86400) if retention_days else 0
    )
    for step, days in RETENTION_DAYS.items():
        _delete_before(conn, table_of(step), "bucket", now - days * 86400)
    # the planner's statistics (sampled: fast on a big file), so filtered pages pick their index
    conn.execute("PRAGMA analysis_limit = 1000")
    conn.execute("ANALYZE")
    return deleted


class SqliteStore:
    """Records in one SQLite file.

    :param path: the database file (created with its folder if missing).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="truckllm-sql-writer")
        self._readers = ThreadPoolExecutor(_READERS, thread_name_prefix="truckllm-sql-reader")
        self._write_conn: sqlite3.Connection | None = None
        self._read_conns: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all_read_conns: list[sqlite3.Connection] = []

    async def _on_writer(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            if self._write_conn is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._write_conn = connect(self.path)
            return fn(self._write_conn)

        return await asyncio.get_running_loop().run_in_executor(self._writer, run)

    async def _on_reader(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            try:
                conn = self._read_conns.get_nowait()
            except queue.Empty:
                conn = connect(self.path)
                conn.execute("PRAGMA query_only = 1")
                self._all_read_conns.append(conn)
            try:
                return fn(conn)
            finally:
                self._read_conns.put(conn)

        return await asyncio.get_running_loop().run_in_executor(self._readers, run)

    async def migrate(self) -> list[int]:
        """Bring the schema up to date (see :func:`migrate`)."""
        return await self._on_writer(migrate)

    async def write(self, records: Sequence[RequestRecord]) -> int:
        """Write one batch (see :func:`write_batch`); how many records were new."""
        return await self._on_writer(lambda conn: write_batch(conn, records))

    async def retention(self, now: float, retention_days: int) -> int:
        """Apply the retention (see :func:`apply_retention`)."""
        return await self._on_writer(lambda conn: apply_retention(conn, now, retention_days))

    async def ensure_ahead(self, now: float) -> None:
        """Nothing to prepare ahead in SQLite (one table, no partitions)."""

    async def search(self, query: LogQuery) -> LogPage:
        """One page, one query."""
        sql, args = search_sql(query, _ph)
        rows = await self._on_reader(lambda conn: conn.execute(sql, args).fetchall())
        return page_from(query, rows)

    async def get(self, request_id: str) -> RequestRecord | None:
        """One record by id, bodies included."""
        sql = f"SELECT {', '.join(COLUMNS)} FROM requests WHERE request_id = ? LIMIT 1"
        rows = await self._on_reader(lambda conn: conn.execute(sql, (request_id,)).fetchall())
        return from_row(rows[0]) if rows else None

    async def series(self, query: SeriesQuery) -> Series:
        """Points, totals and tops, from the rollup table of ``query.step``."""

        def read(conn: sqlite3.Connection) -> tuple[list[Any], list[Any], list[Any]]:
            points = conn.execute(*series_sql(query, _ph)).fetchall()
            aliases = conn.execute(*top_sql(query, "alias", _ph)).fetchall() if query.top else []
            keys = conn.execute(*top_sql(query, "gateway_key", _ph)).fetchall() if query.top else []
            return points, aliases, keys

        return series_from(query, *(await self._on_reader(read)))

    async def close(self) -> None:
        """Close every connection and stop the threads."""

        def close_writer() -> None:
            if self._write_conn is not None:
                self._write_conn.close()
                self._write_conn = None

        try:
            await asyncio.get_running_loop().run_in_executor(self._writer, close_writer)
        finally:
            self._writer.shutdown(wait=False)
            self._readers.shutdown(wait=True)
            for conn in self._all_read_conns:
                conn.close()
            self._all_read_conns.clear()
