"""``bench.request_log`` on a small SQLite file: the synthetic records have the promised spread
and every console query and page of the table runs (a page that fails or shows an admin error
stops the run; figures are not asserted: this is no timed test)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from bench.request_log import DAYS, run, synthetic


def test_synthetic_records_spread() -> None:
    now = time.time()
    records = [r for chunk in synthetic(5000, now) for r in chunk]
    assert len(records) == 5000 and len({r.request_id for r in records}) == 5000
    assert all(now - DAYS * 86400 <= r.started_at <= now for r in records)
    assert records == sorted(records, key=lambda r: r.started_at)
    errors = sum(r.status >= 400 for r in records) / len(records)
    assert 0.01 < errors < 0.06
    assert len(Counter(r.alias for r in records)) == 10 and len(Counter(r.provider for r in records)) == 5
    assert len(Counter(r.gateway_key for r in records)) >= 15


def test_every_query_runs_on_sqlite() -> None:
    rows = asyncio.run(run("sqlite", 3000, "", keep=False))
    assert [name for name, _, _ in rows] == [
        "first page (50)",
        "filtered page: alias + 5xx",
        "filtered page: key + provider",
        "deep page (20 pages in)",
        "get by id",
        "overview: last hour (minute)",
        "overview: last day (hour)",
        "overview: last month (day)",
        "page: request log, first page",
        "page: request log, alias + 5xx",
        "page: request log, key + provider",
        "page: one request",
        "page: overview, last hour",
        "page: overview, last day",
        "page: overview, last 30 days",
    ]
    assert all(p50 <= p95 for _, p50, p95 in rows)
