"""The schema's text shared by both backends: the ``requests`` columns' types and the indexes.

Every index a console query needs: ``(started_at DESC, request_id DESC)`` for the unfiltered log,
``(<column>, started_at DESC, request_id DESC)`` per filter column, and ``request_id`` for one
record; the rollup tables' primary key starts with ``bucket``.
"""

from __future__ import annotations

from typing import Literal

from .codec import COLUMNS
from .queries import FILTER_COLUMNS
from .rollup import DIMENSIONS, FIGURES, HIST_COLUMNS, ROLLUP_COLUMNS, STEP_SECONDS, table_of

__all__ = ["Backend", "index_statements", "requests_columns", "rollup_statements", "upsert_rollup_sql"]

Backend = Literal["sqlite", "postgres"]
"""Which database."""

_TYPES: dict[str, tuple[str, str]] = {  # column: (sqlite, postgres)
    "request_id": ("TEXT NOT NULL", "TEXT NOT NULL"),
    "started_at": ("REAL NOT NULL", "DOUBLE PRECISION NOT NULL"),
    "stream": ("INTEGER NOT NULL", "BOOLEAN NOT NULL"),
    "status": ("INTEGER NOT NULL", "BIGINT NOT NULL"),
    "status_class": ("INTEGER NOT NULL", "SMALLINT NOT NULL"),
    "client_disconnected": ("INTEGER NOT NULL", "BOOLEAN NOT NULL"),
    "body_truncated": ("INTEGER", "SMALLINT"),
    "endpoint": ("TEXT NOT NULL", "TEXT NOT NULL"),
    "dialect": ("TEXT NOT NULL", "TEXT NOT NULL"),
    "alias": ("TEXT NOT NULL", "TEXT NOT NULL"),
    "latency_ms": ("REAL NOT NULL", "DOUBLE PRECISION NOT NULL"),
    "cost_usd": ("REAL NOT NULL", "DOUBLE PRECISION NOT NULL"),
    "attempts": ("TEXT NOT NULL", "TEXT NOT NULL"),
    "fallbacks": ("TEXT NOT NULL", "TEXT NOT NULL"),
    "extra": ("TEXT NOT NULL", "TEXT NOT NULL"),
}
_REALS = {"ttft_ms", "upstream_ms", "added_ms"}
_INTS = {
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
}


def _type(column: str, backend: Backend) -> str:
    if column in _TYPES:
        return _TYPES[column][backend == "postgres"]
    if column in _REALS:
        return "REAL" if backend == "sqlite" else "DOUBLE PRECISION"
    if column in _INTS:
        return "INTEGER" if backend == "sqlite" else "BIGINT"
    return "TEXT"


def requests_columns(backend: Backend) -> str:
    """The ``requests`` column definitions, comma-separated."""
    return ",\n  ".join(f"{c} {_type(c, backend)}" for c in COLUMNS)


def index_statements(table: str = "requests") -> list[str]:
    """``CREATE INDEX IF NOT EXISTS`` for every console query (on ``table``)."""
    statements = [
        f"CREATE INDEX IF NOT EXISTS {table}_started ON {table} (started_at DESC, request_id DESC)",
        f"CREATE INDEX IF NOT EXISTS {table}_request_id ON {table} (request_id)",
    ]
    statements += [
        f"CREATE INDEX IF NOT EXISTS {table}_{c} ON {table} ({c}, started_at DESC, request_id DESC)"
        for c in FILTER_COLUMNS
    ]
    return statements


def rollup_statements(backend: Backend) -> list[str]:
    """``CREATE TABLE IF NOT EXISTS`` for the three rollup tables."""
    integer = "INTEGER" if backend == "sqlite" else "BIGINT"
    real = "REAL" if backend == "sqlite" else "DOUBLE PRECISION"
    statements = []
    for step in STEP_SECONDS:
        columns = [f"bucket {integer} NOT NULL"]
        columns += [f"{d} {integer if d == 'status' else 'TEXT'} NOT NULL" for d in DIMENSIONS]
        columns += [f"{f} {real if f == 'cost_usd' else integer} NOT NULL DEFAULT 0" for f in FIGURES]
        columns += [f"{h} {integer} NOT NULL DEFAULT 0" for h in HIST_COLUMNS]
        columns.append(f"PRIMARY KEY (bucket, {', '.join(DIMENSIONS)})")
        body = ",\n  ".join(columns)
        statements.append(f"CREATE TABLE IF NOT EXISTS {table_of(step)} (\n  {body}\n)")
    return statements


def upsert_rollup_sql(table: str, placeholders: list[str]) -> str:
    """Add one rollup row to ``table`` (insert, or add every figure to the existing row)."""
    sets = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in (*FIGURES, *HIST_COLUMNS))
    return (
        f"INSERT INTO {table} ({', '.join(ROLLUP_COLUMNS)}) VALUES ({', '.join(placeholders)})"
        f" ON CONFLICT (bucket, {', '.join(DIMENSIONS)}) DO UPDATE SET {sets}"
    )
