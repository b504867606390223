"""What a backend offers the writer and the logger: :class:`Store`, and :func:`open_store` to
build the one a URL names; :func:`is_permanent`: an error that retrying a batch cannot fix.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Protocol

import asyncpg

from truckllm.kit.request_log import LogPage, LogQuery, Series, SeriesQuery
from truckllm.types import RequestRecord

from .options import SqlOptions

__all__ = ["Store", "is_permanent", "open_store"]


class Store(Protocol):
    """A database holding the request log."""

    async def migrate(self) -> list[int]:
        """Apply missing schema versions under the backend's lock; the versions applied."""

    async def ensure_ahead(self, now: float) -> None:
        """Prepare what the next days' writes need (PostgreSQL: partitions)."""

    async def write(self, records: Sequence[RequestRecord]) -> int:
        """Write one batch and its rollups in one transaction; how many records were new."""

    async def retention(self, now: float, retention_days: int) -> int:
        """Delete what is past retention."""

    async def search(self, query: LogQuery) -> LogPage:
        """One page of the log."""

    async def get(self, request_id: str) -> RequestRecord | None:
        """One record."""

    async def series(self, query: SeriesQuery) -> Series:
        """Figures from the rollups."""

    async def close(self) -> None:
        """Release connections and threads."""


def open_store(options: SqlOptions) -> Store:
    """The backend ``options.url`` names (no connection is made yet)."""
    target = options.target
    if target.backend == "sqlite":
        from .sqlite_store import SqliteStore

        return SqliteStore(target.path)
    from .postgres_store import PostgresStore

    return PostgresStore(
        options.url.reveal(), pool_size=options.pool_size, connect_timeout=options.connect_timeout
    )


_PERMANENT: tuple[type[BaseException], ...] = (
    sqlite3.IntegrityError,
    sqlite3.DataError,
    sqlite3.InterfaceError,
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    # e.g. "index row size exceeds maximum": a text too long for an index (a long end user)
    asyncpg.ProgramLimitExceededError,
    ValueError,
    TypeError,
    OverflowError,
)


def is_permanent(exc: BaseException) -> bool:
    """Would the same batch fail again whatever the database's state (bad data, a bug)?"""
    return isinstance(exc, _PERMANENT)
