"""The schema's text shared by both backends: the ``requests`` columns' types and the indexes,
schema 2's added columns (:func:`unit_columns`: the units of work, in ``requests`` and the
rollups) and schema 3's (:func:`context_columns`: team, org, end user, tags, guardrail decisions
and metadata, with :func:`context_indexes`), each an :class:`AddColumn` that each backend applies
only when missing.

Every index a console query needs: ``(started_at DESC, request_id DESC)`` for the unfiltered log,
``(<column>, started_at DESC, request_id DESC)`` per filter column, and ``request_id`` for one
record; the rollup tables' primary key starts with ``bucket``.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from .codec import COLUMNS_V1, CONTEXT_COLUMNS, UNIT_COLUMNS
from .queries import FILTER_COLUMNS
from .rollup import (
    DIMENSIONS,
    FIGURES,
    HIST_COLUMNS,
    ROLLUP_COLUMNS,
    STEP_SECONDS,
    UNIT_FIGURES,
    table_of,
)

__all__ = [
    "AddColumn",
    "Backend",
    "context_columns",
    "context_indexes",
    "index_statements",
    "requests_columns",
    "rollup_statements",
    "unit_columns",
    "upsert_rollup_sql",
]

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
_REALS = {"ttft_ms", "upstream_ms", "added_ms", "audio_seconds"}
_INTS = {
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "images",
    "characters",
    "search_units",
    "requests",
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
    """The ``requests`` column definitions of schema 1, comma-separated (schema 2 adds
    :data:`~.codec.UNIT_COLUMNS`: :func:`unit_columns`)."""
    return ",\n  ".join(f"{c} {_type(c, backend)}" for c in COLUMNS_V1)


class AddColumn(NamedTuple):
    """A column to add to an existing table, when it does not have it yet (PostgreSQL: ``ADD
    COLUMN IF NOT EXISTS``; SQLite, which has no such clause, looks first)."""

    table: str
    column: str
    type: str

    def sql(self, backend: Backend) -> str:
        """The ``ALTER TABLE`` statement (PostgreSQL's is idempotent by itself)."""
        exists = " IF NOT EXISTS" if backend == "postgres" else ""
        return f"ALTER TABLE {self.table} ADD COLUMN{exists} {self.column} {self.type}"


def unit_columns(backend: Backend) -> list[AddColumn]:
    """Schema 2: the units of work in ``requests`` (``NULL`` without usage, as the tokens) and
    their sums in every rollup table (``usage_requests`` there: ``requests`` counts the rows)."""
    added = [AddColumn("requests", c, _type(c, backend)) for c in UNIT_COLUMNS]
    integer = "INTEGER" if backend == "sqlite" else "BIGINT"
    real = "REAL" if backend == "sqlite" else "DOUBLE PRECISION"
    for step in STEP_SECONDS:
        added += [
            AddColumn(table_of(step), f, f"{real if f == 'audio_seconds' else integer} NOT NULL DEFAULT 0")
            for f in UNIT_FIGURES
        ]
    return added


def context_columns(backend: Backend) -> list[AddColumn]:
    """Schema 3: :data:`~.codec.CONTEXT_COLUMNS` in ``requests``, all ``TEXT`` and nullable (a
    row written before reads them as empty); their indexes are :func:`context_indexes`."""
    return [AddColumn("requests", c, _type(c, backend)) for c in CONTEXT_COLUMNS]


def _filter_index(table: str, column: str) -> str:
    return (
        f"CREATE INDEX IF NOT EXISTS {table}_{column} ON {table} ({column}, started_at DESC, request_id DESC)"
    )


def index_statements(table: str = "requests") -> list[str]:
    """``CREATE INDEX IF NOT EXISTS`` for every console query of schema 1 (on ``table``); schema
    3 adds :func:`context_indexes`."""
    statements = [
        f"CREATE INDEX IF NOT EXISTS {table}_started ON {table} (started_at DESC, request_id DESC)",
        f"CREATE INDEX IF NOT EXISTS {table}_request_id ON {table} (request_id)",
    ]
    statements += [_filter_index(table, c) for c in FILTER_COLUMNS if c not in CONTEXT_COLUMNS]
    return statements


def context_indexes(table: str = "requests") -> list[str]:
    """Schema 3's filter indexes (``team``, ``end_user``), ``(column, started_at DESC, request_id
    DESC)`` as the others'. The ``tag`` filter has none: it reads the newest rows in order and
    tests each row's ``tags``."""
    return [_filter_index(table, c) for c in FILTER_COLUMNS if c in CONTEXT_COLUMNS]


def rollup_statements(backend: Backend) -> list[str]:
    """``CREATE TABLE IF NOT EXISTS`` for the three rollup tables of schema 1 (schema 2 adds
    :data:`~.rollup.UNIT_FIGURES`)."""
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
    sets = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in (*FIGURES, *HIST_COLUMNS, *UNIT_FIGURES))
    return (
        f"INSERT INTO {table} ({', '.join(ROLLUP_COLUMNS)}) VALUES ({', '.join(placeholders)})"
        f" ON CONFLICT (bucket, {', '.join(DIMENSIONS)}) DO UPDATE SET {sets}"
    )
