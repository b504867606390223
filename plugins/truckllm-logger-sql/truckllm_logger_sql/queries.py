"""The read queries, as SQL text with their arguments, for either backend (``?`` placeholders
for SQLite, ``$n`` for PostgreSQL: the placeholder also picks the dialect where the two differ,
the tag filter's JSON test): one query per search page, and the series' reads of one rollup table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from truckllm.kit.request_log import LogQuery, SeriesQuery, status_filter

from .codec import PAGE_COLUMNS, decode_cursor, tag_as_stored
from .rollup import FIGURES, HIST_COLUMNS, bucket_of, table_of

__all__ = ["FILTER_COLUMNS", "Placeholder", "search_sql", "series_sql", "top_sql"]

FILTER_COLUMNS = (
    "gateway_key",
    "alias",
    "provider",
    "model",
    "status",
    "status_class",
    "dialect",
    "endpoint",
    "team",
    "end_user",
)
"""The columns a search filters on; each has an index ``(column, started_at DESC, request_id DESC)``
(``team`` and ``end_user`` since schema 3)."""

_TAG_SQL = {
    # json_each reads the array; value = ? compares the whole tag (no LIKE: % and _ are plain)
    "?": "EXISTS (SELECT 1 FROM json_each(tags) WHERE value = {})",
    # jsonb's ?: a string element of the top-level array equal to the argument
    "$": "tags::jsonb ? {}",
}

Placeholder = Callable[[int], str]
"""The placeholder of the n-th argument (1-based): ``?`` or ``$n``."""


def _where(conditions: list[str]) -> str:
    return (" WHERE " + " AND ".join(conditions)) if conditions else ""


def search_sql(query: LogQuery, ph: Placeholder) -> tuple[str, list[Any]]:
    """One page of ``query``: ``limit + 1`` rows (one more tells whether a next page exists),
    newest first, keyset after the cursor; ValueError for a bad cursor or status. The ``tag``
    filter matches a row whose ``tags`` hold that exact tag (a JSON test, no index)."""
    conditions: list[str] = []
    args: list[Any] = []

    def add(sql: str, *values: Any) -> None:
        marks = []
        for value in values:
            args.append(value)
            marks.append(ph(len(args)))
        conditions.append(sql.format(*marks))

    for column in ("gateway_key", "alias", "provider", "model", "dialect", "endpoint", "request_id", "team"):
        value = getattr(query, column)
        if value is not None:
            add(f"{column} = {{}}", value)
    if query.user is not None:
        add("end_user = {}", query.user)
    if query.tag is not None:
        add(_TAG_SQL[ph(1)[0]], tag_as_stored(query.tag))
    if query.status is not None:
        code, klass = status_filter(query.status)
        if code is not None:
            add("status = {}", code)
        else:
            add("status_class = {}", int(str(klass)[0]))
    if query.since is not None:
        add("started_at >= {}", float(query.since))
    if query.until is not None:
        add("started_at < {}", float(query.until))
    if query.cursor is not None:
        started_at, request_id = decode_cursor(query.cursor)
        add("(started_at, request_id) < ({}, {})", started_at, request_id)
    args.append(query.limit + 1)
    sql = (
        f"SELECT {', '.join(PAGE_COLUMNS)} FROM requests{_where(conditions)}"
        f" ORDER BY started_at DESC, request_id DESC LIMIT {ph(len(args))}"
    )
    return sql, args


def _series_where(query: SeriesQuery, ph: Placeholder) -> tuple[str, list[Any]]:
    args: list[Any] = [bucket_of(query.since, query.step), int(query.until) + (query.until % 1 > 0)]
    conditions = [f"bucket >= {ph(1)}", f"bucket < {ph(2)}"]
    for column in ("gateway_key", "alias", "provider", "model"):
        value = getattr(query, column)
        if value is not None:
            args.append(value)
            conditions.append(f"{column} = {ph(len(args))}")
    return _where(conditions), args


def series_sql(query: SeriesQuery, ph: Placeholder) -> tuple[str, list[Any]]:
    """Per bucket: ``bucket``, then the sums of :data:`~.rollup.FIGURES` and the histograms."""
    where, args = _series_where(query, ph)
    sums = ", ".join(f"SUM({c})" for c in (*FIGURES, *HIST_COLUMNS))
    sql = f"SELECT bucket, {sums} FROM {table_of(query.step)}{where} GROUP BY bucket ORDER BY bucket"
    return sql, args


def top_sql(query: SeriesQuery, column: str, ph: Placeholder) -> tuple[str, list[Any]]:
    """The busiest ``column`` values (``alias`` or ``gateway_key``): name, requests, errors,
    tokens, cost."""
    where, args = _series_where(query, ph)
    args.append(query.top)
    sql = (
        f"SELECT {column}, SUM(requests) AS n, SUM(errors), SUM(prompt_tokens) + SUM(completion_tokens),"
        f" SUM(cost_usd) FROM {table_of(query.step)}{where} GROUP BY {column}"
        f" ORDER BY n DESC, {column} LIMIT {ph(len(args))}"
    )
    return sql, args
