"""The request log's read benchmark (``truckllm-logger-sql``): seed N synthetic records, then
time the console's queries server-side, in process, through the RequestLog methods.

    .venv/bin/python -m bench.request_log --rows 1000000 --backend sqlite|postgres|both

Seeding writes straight into the tables (bulk ``executemany`` in SQLite, ``COPY`` in
PostgreSQL) with the rollups of the same records: a realistic spread over 30 days, ~20 gateway
keys, 10 aliases, 5 providers, 3% errors. Then each query runs 30 times and the table gives
p50/p95 (ms): the first page, a filtered page (alias + status class), a deep page (the cursor 20
pages in), a record by id, and the overview series of the last hour (minute), day (hour) and
month (day). The target is p95 < 300 ms at 1M rows on both backends.

Then the console's own pages over the same database (``--no-pages`` leaves them out): a gateway
with the ``sql`` logger on it (retention off) is started in this process, and each page is asked
for 30 times over loopback with the admin token: the log's first page, a filtered page, a request,
and the overview of the last hour, day and 30 days. These times are the whole answer as the client
saw it (the admin API call, the query, the template, the HTTP round trip): an upper bound on the
server-side time.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx2 as httpx
from truckllm_logger_sql.codec import COLUMNS, to_row
from truckllm_logger_sql.ddl import upsert_rollup_sql
from truckllm_logger_sql.options import SqlOptions
from truckllm_logger_sql.rollup import RETENTION_DAYS, ROLLUP_COLUMNS, STEP_SECONDS, aggregate, table_of
from truckllm_logger_sql.sqlite_store import SqliteStore, connect
from truckllm_logger_sql.store import Store, open_store

from truckllm.kit.options import Secret
from truckllm.kit.request_log import LogQuery, SeriesQuery
from truckllm.types import AttemptRecord, RequestRecord, Usage
from truckllm_testing.server import GatewayServer

__all__ = ["main", "run", "synthetic"]

DAYS = 30
KEYS = [f"team-{i:02d}" for i in range(20)]
ALIASES = [f"alias-{i}" for i in range(10)]
PROVIDERS = ["openai", "anthropic", "gemini", "bedrock", "azure"]
RUNS = 30
CHUNK = 20_000


def synthetic(rows: int, now: float, seed: int = 7) -> Iterator[list[RequestRecord]]:
    """``rows`` records over the ``DAYS`` days before ``now``, oldest first, in chunks."""
    rng = random.Random(seed)
    start = now - DAYS * 86400
    step = DAYS * 86400 / rows
    chunk: list[RequestRecord] = []
    for i in range(rows):
        alias_i = min(int(rng.paretovariate(1.2)) - 1, 9)
        provider = PROVIDERS[alias_i % 5]
        model = f"{provider}-model-{alias_i // 5}"
        error = rng.random() < 0.03
        status = rng.choice((429, 500, 502, 400)) if error else 200
        upstream = rng.lognormvariate(6, 1)
        latency = upstream + rng.lognormvariate(0, 0.7)
        prompt = rng.randint(10, 4000)
        completion = rng.randint(1, 1000)
        chunk.append(
            RequestRecord(
                request_id=f"{i:08x}{secrets.token_hex(4)}",
                started_at=start + i * step + rng.random() * step,
                endpoint="chat",
                dialect=rng.choice(("openai", "openai", "anthropic", "gemini")),
                alias=ALIASES[alias_i],
                gateway_key=KEYS[min(int(rng.expovariate(0.2)), 19)],
                stream=rng.random() < 0.5,
                status=status,
                latency_ms=latency,
                ttft_ms=upstream / 3,
                upstream_ms=upstream,
                provider=provider,
                provider_type=provider,
                deployment=f"{provider}-0",
                model=model,
                provider_key=f"{provider}-key-{rng.randint(0, 3)}",
                attempts=(
                    AttemptRecord(
                        provider=provider,
                        provider_key="k",
                        deployment="d",
                        model=model,
                        status=status,
                        latency_ms=upstream,
                    ),
                ),
                usage=Usage(
                    prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
                ),
                cost_usd=(prompt * 3 + completion * 15) / 1e6,
                error_kind="server" if status >= 500 else ("rate_limit" if status == 429 else None),
                error_message="upstream said no" if error else None,
            )
        )
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _rollups(records: list[RequestRecord], now: float) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {}
    for step in STEP_SECONDS:
        keep = now - RETENTION_DAYS[step] * 86400
        out[step] = aggregate((r for r in records if r.started_at >= keep), step)
    return out


async def seed_sqlite(path: Path, rows: int, now: float) -> None:
    """Bulk-insert ``rows`` synthetic records and their rollups into the SQLite file."""
    store = SqliteStore(path)
    await store.migrate()
    await store.close()
    conn = connect(path)
    conn.execute("PRAGMA cache_size = -1000000")
    insert = f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    for chunk in synthetic(rows, now):
        conn.execute("BEGIN")
        conn.executemany(insert, [to_row(r) for r in chunk])
        for step, agg in _rollups(chunk, now).items():
            conn.executemany(upsert_rollup_sql(table_of(step), ["?"] * len(ROLLUP_COLUMNS)), agg)  # type: ignore[arg-type]
        conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()


async def seed_postgres(url: str, rows: int, now: float) -> None:
    """``COPY`` ``rows`` synthetic records into the partitions, and their rollups."""
    store = open_store(SqlOptions(url=Secret(url)))
    await store.migrate()
    today = int(now // 86400)
    await store.ensure_days(set(range(today - DAYS - 1, today + 3)))  # type: ignore[attr-defined]
    await store.close()
    conn = await asyncpg.connect(url)
    try:
        for chunk in synthetic(rows, now):
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "requests", records=[to_row(r) for r in chunk], columns=COLUMNS
                )
                for step, agg in _rollups(chunk, now).items():
                    sql = upsert_rollup_sql(table_of(step), [f"${i + 1}" for i in range(len(ROLLUP_COLUMNS))])  # type: ignore[arg-type]
                    await conn.executemany(sql, agg)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def _time(fn: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    await fn()  # warm
    samples = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1) + 0.5)]


async def measure(store: Store, now: float) -> list[tuple[str, float, float]]:
    """p50/p95 (ms) of every console query against ``store``."""
    results: list[tuple[str, float, float]] = []
    first = await store.search(LogQuery(limit=50))
    ids = [r.request_id for r in first.records]
    cursor = None
    for _ in range(20):
        page = await store.search(LogQuery(limit=50, cursor=cursor))
        cursor = page.next_cursor
    rng = random.Random(1)
    filtered = LogQuery(limit=50, alias="alias-3", status="5xx")
    by_key = LogQuery(limit=50, gateway_key="team-07", provider="gemini")
    hour = SeriesQuery(since=now - 3600, until=now, step="minute")
    day = SeriesQuery(since=now - 86400, until=now, step="hour")
    month = SeriesQuery(since=now - 30 * 86400, until=now, step="day")
    cases: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("first page (50)", lambda: store.search(LogQuery(limit=50))),
        ("filtered page: alias + 5xx", lambda: store.search(filtered)),
        ("filtered page: key + provider", lambda: store.search(by_key)),
        ("deep page (20 pages in)", lambda: store.search(LogQuery(limit=50, cursor=cursor))),
        ("get by id", lambda: store.get(rng.choice(ids))),
        ("overview: last hour (minute)", lambda: store.series(hour)),
        ("overview: last day (hour)", lambda: store.series(day)),
        ("overview: last month (day)", lambda: store.series(month)),
    ]
    for name, fn in cases:
        p50, p95 = await _time(fn)
        results.append((name, p50, p95))
    return results


ADMIN_TOKEN = "bench-request-log-admin-token"


def _gateway_config(url: str) -> str:
    return f"""
admin: {{token: {ADMIN_TOKEN}}}
loggers: [{{sql: {{url: "{url}", retention_days: 0}}}}]
providers:
  mock: {{type: mock}}
models:
  chat:
    deployments: [{{provider: mock, model: m}}]
"""


def _time_get(client: httpx.Client, path: str) -> tuple[float, float]:
    def get() -> None:
        answer = client.get(path)
        if answer.status_code != 200 or any(
            bad in answer.text for bad in ("The admin API answered", "No request log is kept")
        ):
            raise RuntimeError(f"{path}: {answer.status_code} {answer.text[:300]}")

    get()  # warm
    samples = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        get()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1) + 0.5)]


def measure_pages(url: str) -> list[tuple[str, float, float]]:
    """p50/p95 (ms) of the console's pages, over loopback, from a gateway logging to ``url``
    (the console plugin must be installed)."""
    with tempfile.TemporaryDirectory(prefix="truckllm-reqlog-gw-") as folder:
        config = Path(folder) / "truckllm.yaml"
        config.write_text(_gateway_config(url))
        with (
            GatewayServer(config_path=str(config)) as server,
            httpx.Client(
                base_url=server.url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=60
            ) as client,
        ):
            first = client.get("/admin/v1/requests", params={"limit": "1"}).json()["data"][0]["request_id"]
            pages = [
                ("page: request log, first page", "/console/requests"),
                ("page: request log, alias + 5xx", "/console/requests?alias=alias-3&status=5xx"),
                ("page: request log, key + provider", "/console/requests?key=team-07&provider=gemini"),
                ("page: one request", f"/console/requests/{first}"),
                ("page: overview, last hour", "/console/?range=hour"),
                ("page: overview, last day", "/console/?range=day"),
                ("page: overview, last 30 days", "/console/?range=month"),
            ]
            return [(name, *_time_get(client, path)) for name, path in pages]


async def run(
    backend: str, rows: int, pg_admin: str, keep: bool, pages: bool = True
) -> list[tuple[str, float, float]]:
    """Seed and measure one backend (the queries, then the console's pages unless ``pages`` is
    false); its rows of the table."""
    now = time.time()
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="truckllm-reqlog-") as folder:
            path = Path(folder) / "requests.db"
            t0 = time.perf_counter()
            await seed_sqlite(path, rows, now)
            print(f"sqlite: seeded {rows} rows in {time.perf_counter() - t0:.0f} s", flush=True)
            store: Store = SqliteStore(path)
            try:
                results = await measure(store, now)
            finally:
                await store.close()
            if pages:
                results += await asyncio.to_thread(measure_pages, f"sqlite:///{path}")
            return results
    name = f"truckllm_reqlog_bench_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(pg_admin)
    await admin.execute(f"CREATE DATABASE {name}")
    url = pg_admin.rsplit("/", 1)[0] + "/" + name
    try:
        t0 = time.perf_counter()
        await seed_postgres(url, rows, now)
        print(f"postgres: seeded {rows} rows in {time.perf_counter() - t0:.0f} s", flush=True)
        pg_store = open_store(SqlOptions(url=Secret(url)))
        try:
            results = await measure(pg_store, now)
        finally:
            await pg_store.close()
        if pages:
            results += await asyncio.to_thread(measure_pages, url)
        return results
    finally:
        if not keep:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


def main() -> None:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.request_log", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--pg-admin", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database")
    parser.add_argument(
        "--no-pages", action="store_true", help="time the queries only, not the console's pages"
    )
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    table = [f"| backend | query ({args.rows:,} rows) | p50 ms | p95 ms |", "|---|---|---:|---:|"]
    for backend in backends:
        for name, p50, p95 in asyncio.run(
            run(backend, args.rows, args.pg_admin, args.keep, not args.no_pages)
        ):
            table.append(f"| {backend} | {name} | {p50:.1f} | {p95:.1f} |")
    print("\n".join(table))


if __name__ == "__main__":
    main()
