"""The PostgreSQL backend (asyncpg): ``requests`` partitioned by range of ``started_at``, one
partition per UTC day (``requests_YYYYMMDD``), created ahead (today and the next 2 days) and on
demand for a batch's days, under an advisory lock; retention drops whole partitions.

Schema changes are :data:`MIGRATIONS`, applied in one transaction holding
``pg_advisory_xact_lock`` (replicas starting at once wait for each other, then find them applied),
each recorded in ``schema_migrations`` and idempotent (``IF NOT EXISTS``).

A batch is one statement (:mod:`.pg_batch`): the records, encoded once as a JSON array, read by
``json_to_recordset``, inserted ``ON CONFLICT (request_id, started_at) DO NOTHING``, and the rows
actually inserted added to the rollups in the same statement (so retrying a batch whose commit
was in doubt adds nothing twice). No Python runs per record. PostgreSQL text cannot hold NUL: a
``\\x00`` in a string is stored as U+FFFD (such a batch is sent as ``unnest`` arrays instead, its
JSON functions refusing ``\\u0000``). A batch whose day has no partition yet (written late,
e.g. replayed) creates it and is sent again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from truckllm.kit.request_log import LogPage, LogQuery, Series, SeriesQuery
from truckllm.types import RequestRecord

from .codec import COLUMNS, encode_batch, from_row, to_row
from .ddl import (
    context_columns,
    context_indexes,
    index_statements,
    requests_columns,
    rollup_statements,
    unit_columns,
)
from .pg_batch import JSON_SQL, UNNEST_SQL
from .queries import search_sql, series_sql, top_sql
from .reader import page_from, series_from
from .rollup import RETENTION_DAYS, table_of

__all__ = ["MIGRATIONS", "MIGRATION_LOCK", "PARTITION_LOCK", "PostgresStore", "partition_name"]

MIGRATION_LOCK = 0x7472_7563_6B6C_6D01
"""The advisory lock key held while migrating."""
PARTITION_LOCK = 0x7472_7563_6B6C_6D02
"""The advisory lock key held while creating or dropping partitions."""

MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            f"CREATE TABLE IF NOT EXISTS requests (\n  {requests_columns('postgres')}\n)"
            " PARTITION BY RANGE (started_at)",
            "CREATE UNIQUE INDEX IF NOT EXISTS requests_unique_id ON requests (request_id, started_at)",
            *[s for s in index_statements() if not s.endswith("(request_id)")],
            *rollup_statements("postgres"),
        ),
    ),
    # the units of work, in requests (its partitions follow) and the rollups
    (2, tuple(added.sql("postgres") for added in unit_columns("postgres"))),
    # team, org, end user, tags, guardrail decisions and metadata; the team and end user indexes
    # (built on every partition: on a big log, writes wait for them)
    (3, (*(added.sql("postgres") for added in context_columns("postgres")), *context_indexes())),
)
"""``(version, statements)``, oldest first; a version is applied once, in one transaction.
(``request_id`` lookups use the unique index ``(request_id, started_at)``.)"""


def _ph(n: int) -> str:
    return f"${n}"


def partition_name(day: int) -> str:
    """The partition holding UTC day ``day`` (days since the epoch)."""
    return "requests_" + datetime.fromtimestamp(day * 86400, UTC).strftime("%Y%m%d")


def _day_of_partition(name: str) -> int | None:
    try:
        stamp = datetime.strptime(name.removeprefix("requests_"), "%Y%m%d").replace(tzinfo=UTC)
    except ValueError:
        return None
    return int(stamp.timestamp()) // 86400


def _clean(value: Any) -> Any:
    return value.replace("\x00", "\ufffd") if isinstance(value, str) and "\x00" in value else value


class PostgresStore:
    """Records in PostgreSQL through a small asyncpg pool.

    :param dsn: the ``postgresql://`` URL (a secret: never logged).
    :param pool_size: the most connections.
    :param connect_timeout: per connection attempt.
    """

    def __init__(self, dsn: str, *, pool_size: int = 4, connect_timeout: float = 5.0) -> None:
        self._dsn = dsn
        self._pool_size = pool_size
        self._timeout = connect_timeout
        self._pool: asyncpg.Pool | None = None
        self._days: set[int] = set()

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(
                self._dsn, min_size=0, max_size=self._pool_size, timeout=self._timeout,
                command_timeout=60, server_settings={"application_name": "truckllm-logger-sql"},
            )  # fmt: skip
        return self._pool

    async def migrate(self) -> list[int]:
        """Apply the missing :data:`MIGRATIONS` under the advisory lock; the versions applied now."""
        pool = await self._get_pool()
        done: list[int] = []
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations"
                " (version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
            )
            applied = {row[0] for row in await conn.fetch("SELECT version FROM schema_migrations")}
            for version, statements in MIGRATIONS:
                if version in applied:
                    continue
                for statement in statements:
                    await conn.execute(statement)
                await conn.execute("INSERT INTO schema_migrations VALUES ($1, $2)", version, time.time())
                done.append(version)
        return done

    async def ensure_days(self, days: set[int]) -> None:
        """Create the partitions of ``days`` (UTC days since the epoch) that do not exist yet."""
        missing = days - self._days
        if not missing:
            return
        pool = await self._get_pool()
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", PARTITION_LOCK)
            for day in sorted(missing):
                await conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF requests"
                    f" FOR VALUES FROM ({day * 86400}) TO ({(day + 1) * 86400})"
                )
        self._days |= missing

    async def ensure_ahead(self, now: float) -> None:
        """Today's partition and the next two days'."""
        today = int(now // 86400)
        await self.ensure_days({today, today + 1, today + 2})

    async def write(self, records: Sequence[RequestRecord]) -> int:
        """Insert ``records`` and add the rows actually inserted to the rollups, in one
        statement; how many were new."""
        if not records:
            return 0
        data = encode_batch(records)
        args: list[Any]
        if b"\\u0000" in data:  # maybe a NUL (or a backslash before "u0000"): rare
            sql, args = UNNEST_SQL, list(_columns(records))
        else:
            sql, args = JSON_SQL, [data]
        pool = await self._get_pool()
        try:
            return int(await pool.fetchval(sql, *args))
        except asyncpg.CheckViolationError as exc:
            if "no partition" not in str(exc):
                raise
        await self.ensure_days({int(r.started_at // 86400) for r in records})
        return int(await pool.fetchval(sql, *args))

    async def retention(self, now: float, retention_days: int) -> int:
        """Drop the partitions wholly older than ``retention_days`` (0: keep) and delete rollup
        rows past their table's retention; how many partitions were dropped."""
        pool = await self._get_pool()
        dropped = 0
        async with pool.acquire() as conn:
            if retention_days:
                cutoff = int((now - retention_days * 86400) // 86400)
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", PARTITION_LOCK)
                    names = await conn.fetch(
                        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                        " WHERE i.inhparent = 'requests'::regclass"
                    )
                    for (name,) in names:
                        day = _day_of_partition(name)
                        if day is not None and day < cutoff:
                            await conn.execute(f"DROP TABLE IF EXISTS {name}")
                            self._days.discard(day)
                            dropped += 1
            for step, days in RETENTION_DAYS.items():
                await conn.execute(f"DELETE FROM {table_of(step)} WHERE bucket < $1", int(now - days * 86400))
        return dropped

    async def search(self, query: LogQuery) -> LogPage:
        """One page, one query."""
        sql, args = search_sql(query, _ph)
        pool = await self._get_pool()
        rows = await pool.fetch(sql, *(_clean(a) for a in args))  # NUL: as stored
        return page_from(query, [tuple(r) for r in rows])

    async def get(self, request_id: str) -> RequestRecord | None:
        """One record by id, bodies included (a NUL in ``request_id`` read as stored: U+FFFD)."""
        pool = await self._get_pool()
        row = await pool.fetchrow(
            f"SELECT {', '.join(COLUMNS)} FROM requests WHERE request_id = $1 LIMIT 1", _clean(request_id)
        )
        return from_row(tuple(row)) if row is not None else None

    async def series(self, query: SeriesQuery) -> Series:
        """Points, totals and tops, from the rollup table of ``query.step``."""
        pool = await self._get_pool()
        async with pool.acquire() as conn:
            points = await conn.fetch(*_args(series_sql(query, _ph)))
            aliases = await conn.fetch(*_args(top_sql(query, "alias", _ph))) if query.top else []
            keys = await conn.fetch(*_args(top_sql(query, "gateway_key", _ph))) if query.top else []
        return series_from(query, *([tuple(r) for r in rows] for rows in (points, aliases, keys)))

    async def close(self) -> None:
        """Close the pool."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()


def _columns(records: Sequence[RequestRecord]) -> list[list[Any]]:
    """``records`` as one list per column of :data:`COLUMNS`, NUL replaced."""
    rows = [tuple(_clean(v) for v in to_row(r)) for r in records]
    return [list(c) for c in zip(*rows, strict=True)]


def _args(sql_args: tuple[str, list[Any]]) -> tuple[Any, ...]:
    return (sql_args[0], *sql_args[1:][0])
