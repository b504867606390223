"""Search: keyset pages see every matching record exactly once, newest first, with each filter
(team, end user and tag too) and with filters combined (AND); a cursor the log did not make is a
ValueError."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from truckllm_logger_sql.options import SqlOptions
from truckllm_logger_sql.store import Store, open_store

from truckllm.kit.options import Secret
from truckllm.kit.request_log import LogQuery, SeriesQuery
from truckllm.types import RequestRecord

N = 300
NOW = 1_790_000_000.0
TEAMS = ("red", "blue", "green", None)
# tags that LIKE or a substring test would confuse: a, ab, a%, _
TAG_SETS: tuple[tuple[str, ...], ...] = ((), ("a",), ("a", "b"), ("b",), ("ab",), ("a%", "_"), ("A",))


def context(i: int) -> dict[str, Any]:
    """Record ``i``'s team, org, end user and tags (cycling at other rates than the other fields)."""
    return {
        "team": TEAMS[i % len(TEAMS)],
        "org": "acme" if i % 2 else None,
        "user": f"user-{i % 5}" if i % 5 else None,
        "tags": TAG_SETS[i % len(TAG_SETS)],
    }


async def _seeded(url: str, record: Callable[..., RequestRecord]) -> tuple[Store, list[RequestRecord]]:
    store = open_store(SqlOptions(url=Secret(url)))
    await store.migrate()
    records = [record(i, now=NOW, **context(i)) for i in range(N)]
    # two records share a start time: the request id breaks the tie
    records.append(record(N, now=NOW, started_at=records[10].started_at, **context(N)))
    for i in range(0, len(records), 97):
        await store.write(records[i : i + 97])
    return store, records


async def _walk(store: Store, query: LogQuery) -> list[RequestRecord]:
    seen: list[RequestRecord] = []
    cursor = None
    while True:
        page = await store.search(LogQuery(**{**_fields(query), "cursor": cursor}))
        assert len(page.records) <= query.limit
        seen.extend(page.records)
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor


def _fields(query: LogQuery) -> dict[str, Any]:
    return {f: getattr(query, f) for f in query.__struct_fields__}


def _matches(r: RequestRecord, query: LogQuery) -> bool:
    for column in (
        "gateway_key",
        "alias",
        "provider",
        "model",
        "dialect",
        "endpoint",
        "request_id",
        "team",
        "user",
    ):
        value = getattr(query, column)
        if value is not None and getattr(r, column) != value:
            return False
    if query.tag is not None and query.tag not in r.tags:
        return False
    if query.status is not None:
        if query.status.endswith("xx"):
            if r.status // 100 != int(query.status[0]):
                return False
        elif r.status != int(query.status):
            return False
    if query.since is not None and r.started_at < query.since:
        return False
    return not (query.until is not None and r.started_at >= query.until)


QUERIES = [
    LogQuery(limit=7),
    LogQuery(limit=50, gateway_key="alice"),
    LogQuery(limit=13, alias="claude"),
    LogQuery(limit=13, provider="openai"),
    LogQuery(limit=13, model="anthropic-model-1"),
    LogQuery(limit=5, status="500"),
    LogQuery(limit=5, status="4xx"),
    LogQuery(limit=9, status="2xx"),
    LogQuery(limit=9, dialect="gemini"),
    LogQuery(limit=9, endpoint="embeddings"),
    LogQuery(limit=9, request_id="req-000042"),
    LogQuery(limit=11, since=NOW - 1000, until=NOW - 200),
    LogQuery(limit=3, alias="gpt", status="2xx", gateway_key="alice"),
    LogQuery(limit=3, provider="anthropic", dialect="openai", since=NOW - 2000),
    LogQuery(limit=9, team="red"),
    LogQuery(limit=9, user="user-3"),
    LogQuery(limit=9, tag="a"),
    LogQuery(limit=9, tag="b"),
    LogQuery(limit=4, tag="_"),
    LogQuery(limit=4, tag="a%"),
    LogQuery(limit=4, tag="A"),
    LogQuery(limit=4, team="blue", tag="a", status="2xx"),
    LogQuery(limit=4, user="user-1", alias="claude", since=NOW - 1500),
    LogQuery(limit=4, team="green", user="user-2", tag="ab"),
]


@pytest.mark.parametrize(
    ("query", "none_of"),
    [
        (LogQuery(tag="%"), "any tag: % is no wildcard"),
        (LogQuery(tag="a_"), "ab: _ is no wildcard"),
        (LogQuery(tag='a", "b'), "the JSON text of a, b"),
        (LogQuery(tag="a,b"), "a, b"),
        (LogQuery(user="user-%"), "any user"),
        (LogQuery(user="USER-1"), "user-1: exact case"),
        (LogQuery(team="re"), "red: no prefix match"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_a_filter_matches_only_its_exact_value(
    db_url: str, record: Any, query: LogQuery, none_of: str
) -> None:
    async def run() -> None:
        store, _ = await _seeded(db_url, record)
        try:
            assert (await store.search(query)).records == (), none_of
        finally:
            await store.close()

    asyncio.run(run())


@pytest.mark.parametrize(
    "query", QUERIES, ids=lambda q: ",".join(f"{k}={v}" for k, v in _fields(q).items() if v is not None)
)
def test_every_record_seen_once_newest_first(db_url: str, record: Any, query: LogQuery) -> None:
    async def run() -> None:
        store, records = await _seeded(db_url, record)
        try:
            seen = await _walk(store, query)
            expected = sorted(
                (r for r in records if _matches(r, query)), key=lambda r: (r.started_at, r.request_id)
            )
            assert [r.request_id for r in seen] == [r.request_id for r in reversed(expected)]
            assert expected, "the query should match something"
            assert all(r.bodies is None for r in seen)
        finally:
            await store.close()

    asyncio.run(run())


@pytest.mark.parametrize("cursor", ["nope", "", "eyJ4IjoxfQ", "WzIsMSwiYSJd", "WzEsIngiLCJhIl0", "!!!"])
def test_a_cursor_the_log_did_not_make_is_refused(db_url: str, cursor: str) -> None:
    async def run() -> None:
        store = open_store(SqlOptions(url=Secret(db_url)))
        try:
            await store.migrate()
            with pytest.raises(ValueError):
                await store.search(LogQuery(cursor=cursor))
            with pytest.raises(ValueError):
                await store.search(LogQuery(status="6xx"))
        finally:
            await store.close()

    asyncio.run(run())


def test_series_sums_match_the_records(db_url: str, record: Any) -> None:
    async def run() -> None:
        store, records = await _seeded(db_url, record)
        try:
            since, until = NOW - 3 * 3600, NOW + 60
            for step in ("minute", "hour", "day"):
                series = await store.series(SeriesQuery(since=since, until=until, step=step, top=2))
                assert series.totals.requests == len(records)
                assert series.totals.errors == sum(r.status >= 400 for r in records)
                assert sum(p.requests for p in series.points) == len(records)
                assert [p.at for p in series.points] == sorted(p.at for p in series.points)
                assert [t.name for t in series.top_aliases] == ["gpt", "claude"]
                # a percentile is its histogram bucket's upper bound: at least the true value, and
                # less than twice it (the buckets double)
                added = sorted(r.latency_ms - (r.upstream_ms or 0) for r in records)
                true_p50 = added[(len(added) + 1) // 2 - 1]
                p50 = series.totals.added_p50_ms
                assert p50 is not None and true_p50 <= p50 < 2 * true_p50
                assert series.totals.latency_p99_ms is not None
            only = await store.series(
                SeriesQuery(since=since, until=until, step="hour", alias="gpt", gateway_key="bob")
            )
            assert only.totals.requests == sum(r.alias == "gpt" and r.gateway_key == "bob" for r in records)
            keys = await store.series(SeriesQuery(since=since, until=until, step="day", top=5))
            assert None in [t.name for t in keys.top_keys]
        finally:
            await store.close()

    asyncio.run(run())


def test_a_page_is_one_query_without_offset(tmp_path: Any, record: Callable[..., RequestRecord]) -> None:
    """Each page, the first and the next ones, filtered or not, is one ``SELECT`` (SQLite's trace
    of the reader's statements), and no query of a page skips rows with ``OFFSET``."""
    from truckllm_logger_sql import sqlite_store
    from truckllm_logger_sql.queries import search_sql

    statements: list[str] = []
    real = sqlite_store.connect

    def traced(*args: Any, **kwargs: Any) -> Any:
        conn = real(*args, **kwargs)
        conn.set_trace_callback(statements.append)
        return conn

    async def run() -> None:
        store, _ = await _seeded(f"sqlite:///{tmp_path}/requests.db", record)
        try:
            for query in (LogQuery(limit=20), LogQuery(limit=15, alias="gpt", status="2xx")):
                cursor = None
                for _ in range(3):
                    statements.clear()
                    page = await store.search(LogQuery(**{**_fields(query), "cursor": cursor}))
                    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
                    assert len(selects) == 1, statements
                    assert "OFFSET" not in selects[0].upper()
                    assert page.next_cursor is not None
                    cursor = page.next_cursor
        finally:
            await store.close()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sqlite_store, "connect", traced)
        asyncio.run(run())
    for query in QUERIES:  # the same text on PostgreSQL, with $n placeholders
        sql, _ = search_sql(query, lambda n: f"${n}")
        assert "OFFSET" not in sql.upper() and sql.count("SELECT") == 1
