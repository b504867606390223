"""Every query the console runs uses an index (the plans are checked, not timed): the first
page, a page per filter, the next page, a record by id, and the series of each step.

SQLite: ``EXPLAIN QUERY PLAN`` never shows a table scan of ``requests`` or a rollup table (only
``SEARCH ... USING [COVERING] INDEX``; the unfiltered first page and the tag filter's may walk
the ``(started_at DESC, request_id DESC)`` index, stopping at the limit) nor a sort of the page;
the team and end user filters use their own indexes.
PostgreSQL: ``EXPLAIN (FORMAT JSON)`` on ~50k analysed rows has no ``Seq Scan`` on a partition
of ``requests`` or on a rollup table.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import asyncpg
from truckllm_logger_sql.codec import COLUMNS, encode_cursor
from truckllm_logger_sql.ddl import upsert_rollup_sql
from truckllm_logger_sql.options import SqlOptions
from truckllm_logger_sql.queries import search_sql, series_sql, top_sql
from truckllm_logger_sql.rollup import HIST_COLUMNS, ROLLUP_COLUMNS, STEP_SECONDS, UNIT_FIGURES, table_of
from truckllm_logger_sql.store import open_store

from truckllm.kit.options import Secret
from truckllm.kit.request_log import LogQuery, SeriesQuery

NOW = 1_790_000_000.0
# the pages that may walk the (started_at, request_id) index newest first, stopping at the limit:
# the unfiltered one, and the tag filter's (a JSON test per row; no index holds the tags)
_WALKS = ("first page", "filter tag")
CURSOR = encode_cursor(NOW - 5000, "req-000900")


def _queries() -> Iterator[tuple[str, LogQuery | SeriesQuery | str]]:
    yield "first page", LogQuery()
    for column, value in [
        ("gateway_key", "alice"),
        ("alias", "gpt"),
        ("provider", "openai"),
        ("model", "openai-model-0"),
        ("dialect", "gemini"),
        ("endpoint", "chat"),
        ("request_id", "req-000042"),
        ("team", "team-3"),
        ("user", "user-7"),
    ]:
        yield f"filter {column}", LogQuery(**{column: value})  # type: ignore[arg-type]
        yield f"filter {column}, next page", LogQuery(cursor=CURSOR, **{column: value})  # type: ignore[arg-type]
    yield "filter tag", LogQuery(tag="tag-3")
    yield "team + tag", LogQuery(team="team-3", tag="tag-3")
    yield "filter status", LogQuery(status="500")
    yield "filter status class", LogQuery(status="5xx")
    yield "alias + status class", LogQuery(alias="claude", status="4xx")
    yield "time range", LogQuery(since=NOW - 20000, until=NOW - 10000)
    yield "next page", LogQuery(cursor=CURSOR)
    yield "get", "get"
    for step, span in (("minute", 3600), ("hour", 86400), ("day", 3 * 86400)):
        yield f"series {step}", SeriesQuery(since=NOW - span, until=NOW, step=step)  # type: ignore[arg-type]
        yield f"series {step} alias", SeriesQuery(since=NOW - span, until=NOW, step=step, alias="gpt")  # type: ignore[arg-type]


def _statements(query: LogQuery | SeriesQuery | str, ph: Any) -> list[tuple[str, list[Any]]]:
    if isinstance(query, str):
        return [
            (f"SELECT {', '.join(COLUMNS)} FROM requests WHERE request_id = {ph(1)} LIMIT 1", ["req-000042"])
        ]
    if isinstance(query, LogQuery):
        return [search_sql(query, ph)]
    return [series_sql(query, ph), top_sql(query, "alias", ph), top_sql(query, "gateway_key", ph)]


async def _seed(url: str, record: Any, count: int) -> None:
    store = open_store(SqlOptions(url=Secret(url)))
    try:
        await store.migrate()
        for i in range(0, count, 5000):
            # spread over ~20 days: the series' ranges select a part of each rollup table
            await store.write(
                [
                    record(j, now=NOW, started_at=NOW - j * 35.0, **_context(j))
                    for j in range(i, min(count, i + 5000))
                ]
            )
    finally:
        await store.close()


def _context(j: int) -> dict[str, Any]:
    """Record ``j``'s team (one of 200), end user (one of 2,000) and tags: a team's or a user's
    records are few, as in a log of many teams, so its index beats walking the newest rows."""
    return {"team": f"team-{j % 200}", "user": f"user-{j % 2000}", "tags": (f"tag-{j % 10}", "all")}


def _old_rollup_rows(step: str) -> list[tuple[Any, ...]]:
    """~20k rollup rows of older buckets (a table a few pages long would be read whole, rightly)."""
    width = STEP_SECONDS[step]  # type: ignore[index]
    first = int(NOW // width) * width - 40 * 86400 - width
    rows = []
    for k in range(20_000):
        bucket = first - (k // 50) * width
        rows.append(
            (bucket, f"key-{k % 5}", f"old-{k % 50}", "p", "m", 200, 1, 0, 1, 1, 0.5)
            + (0,) * len(HIST_COLUMNS)
            + (0,) * len(UNIT_FIGURES)
        )
    return rows


def test_sqlite_plans_use_indexes(tmp_path: Any, record: Any) -> None:
    path = tmp_path / "requests.db"
    asyncio.run(_seed(f"sqlite:///{path}", record, 5000))
    conn = sqlite3.connect(path)
    for step in STEP_SECONDS:
        sql = upsert_rollup_sql(table_of(step), ["?"] * len(ROLLUP_COLUMNS))
        conn.executemany(sql, _old_rollup_rows(step))
    conn.commit()
    conn.execute("ANALYZE")
    try:
        for name, query in _queries():
            for sql, args in _statements(query, lambda _: "?"):
                plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, args)]
                text = " | ".join(plan)
                for step in plan:
                    table = step.split()[1] if len(step.split()) > 1 else ""
                    if step.startswith("SCAN") and (table == "requests" or table.startswith("rollup_")):
                        assert name in _WALKS and "USING INDEX requests_started" in step, f"{name}: {text}"
                if not isinstance(query, SeriesQuery) and "request_id" not in name:  # one id: one row
                    assert "TEMP B-TREE" not in text, f"{name}: the page is sorted, not read in order: {text}"
                if name.startswith(("filter team", "team + tag")):
                    assert "USING INDEX requests_team " in text, f"{name}: {text}"
                if name.startswith("filter user"):
                    assert "USING INDEX requests_end_user " in text, f"{name}: {text}"
                assert "USING" in text, f"{name}: {text}"
    finally:
        conn.close()


def _seq_scans(node: dict[str, Any]) -> Iterator[str]:
    if node.get("Node Type") == "Seq Scan":
        relation = str(node.get("Relation Name", ""))
        if relation.startswith(("requests", "rollup_")):
            yield relation
    for child in node.get("Plans", ()):
        yield from _seq_scans(child)


def _index_names(node: dict[str, Any]) -> Iterator[str]:
    if "Index Name" in node:
        yield str(node["Index Name"])
    for child in node.get("Plans", ()):
        yield from _index_names(child)


def test_postgres_plans_use_indexes(pg_url: str, record: Any) -> None:
    async def run() -> None:
        await _seed(pg_url, record, 50_000)
        conn = await asyncpg.connect(pg_url)
        try:
            for step in STEP_SECONDS:
                sql = upsert_rollup_sql(table_of(step), [f"${i + 1}" for i in range(len(ROLLUP_COLUMNS))])
                await conn.executemany(sql, _old_rollup_rows(step))
            await conn.execute("ANALYZE")
            for name, query in _queries():
                for sql, args in _statements(query, lambda n: f"${n}"):
                    raw = await conn.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args)
                    plan = json.loads(raw)[0]["Plan"]
                    scans = list(_seq_scans(plan))
                    assert not scans, f"{name}: Seq Scan on {scans}: {json.dumps(plan)[:2000]}"
                    # each partition's copy of the index is named after its columns
                    used = " ".join(_index_names(plan))
                    if name.startswith(("filter team", "team + tag")):
                        assert "_team_" in used, f"{name}: {used}: {json.dumps(plan)[:2000]}"
                    if name.startswith("filter user"):
                        assert "_end_user_" in used, f"{name}: {used}: {json.dumps(plan)[:2000]}"
        finally:
            await conn.close()

    asyncio.run(run())
