"""Schema 2: the units of work (images, seconds of audio, characters, search units, calls) in the
``requests`` table and the rollups, on both backends: a schema-1 database upgrades in place (its
rows kept and read with no units), the migration is idempotent, the units are written and summed,
and a value that cannot be stored the same way on both backends is stored as 0 on both."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx2 as httpx
import pytest
from truckllm_logger_sql import postgres_store, sqlite_store
from truckllm_logger_sql.codec import COLUMNS, COLUMNS_V1, UNIT_COLUMNS, to_row
from truckllm_logger_sql.options import SqlOptions
from truckllm_logger_sql.rollup import UNIT_FIGURES
from truckllm_logger_sql.store import open_store

from truckllm.kit.options import Secret
from truckllm.kit.request_log import LogQuery
from truckllm.types import RequestRecord, Usage
from truckllm_testing.fakes import FakeGemini
from truckllm_testing.server import GatewayServer

Factory = Any
"""The ``record`` fixture: ``record(i, now=..., **fields)`` makes record number ``i``."""

NOW = 1_790_000_000.0
UNITS = Usage(
    prompt_tokens=3, total_tokens=3, images=2, audio_seconds=12.5, characters=40, search_units=1, requests=1
)


def _schema_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stores as they were at schema 1 (only its migration known)."""
    monkeypatch.setattr(sqlite_store, "MIGRATIONS", sqlite_store.MIGRATIONS[:1])
    monkeypatch.setattr(postgres_store, "MIGRATIONS", postgres_store.MIGRATIONS[:1])


async def _write_v1_row(raw_sql: Any, url: str, record: RequestRecord) -> None:
    """``record`` inserted as a schema-1 gateway wrote it (no unit columns), and its day rollup."""
    values = dict(zip(COLUMNS, to_row(record), strict=True))
    old = [values[c] for c in COLUMNS_V1]
    marks = ", ".join("?" * len(COLUMNS_V1))
    await raw_sql.rows(url, f"INSERT INTO requests ({', '.join(COLUMNS_V1)}) VALUES ({marks})", *old)
    bucket = int(record.started_at // 86400) * 86400
    usage = record.usage or Usage()
    await raw_sql.rows(
        url,
        "INSERT INTO rollup_day (bucket, gateway_key, alias, provider, model, status, requests, errors,"
        " prompt_tokens, completion_tokens, cost_usd) VALUES (?, ?, ?, ?, ?, ?, 1, 0, ?, ?, ?)",
        bucket,
        record.gateway_key or "",
        record.alias,
        record.provider or "",
        record.model or "",
        record.status,
        usage.prompt_tokens,
        usage.completion_tokens,
        record.cost_usd,
    )


def test_a_schema_one_database_upgrades_in_place(
    raw_sql: Any, db_url: str, monkeypatch: pytest.MonkeyPatch, record: Factory
) -> None:
    make = record
    old = make(1, now=NOW, usage=Usage(prompt_tokens=7, completion_tokens=9, total_tokens=16))
    no_usage = make(2, now=NOW, usage=None, gateway_key="zed")
    new = make(3, now=NOW, usage=UNITS, gateway_key="alice", alias="gpt", provider="openai", model="m-img")

    async def at_schema_one() -> None:
        store = open_store(SqlOptions(url=Secret(db_url)))
        try:
            assert await store.migrate() == [1]
            await store.ensure_ahead(NOW)
        finally:
            await store.close()
        assert not (await raw_sql.columns(db_url, "requests")) & set(UNIT_COLUMNS)
        await _write_v1_row(raw_sql, db_url, old)
        await _write_v1_row(raw_sql, db_url, no_usage)

    async def upgraded() -> None:
        store = open_store(SqlOptions(url=Secret(db_url)))
        try:
            assert await store.migrate() == [2, 3]
            assert await store.migrate() == []
            assert await store.get(old.request_id) == old  # its units read as 0
            assert await store.get(no_usage.request_id) == no_usage  # still no usage at all
            assert await store.write([new]) == 1
            assert await store.get(new.request_id) == new
            page = await store.search(LogQuery(limit=10))
            assert {r.request_id for r in page.records} == {
                old.request_id,
                no_usage.request_id,
                new.request_id,
            }
        finally:
            await store.close()
        assert set(UNIT_COLUMNS) <= await raw_sql.columns(db_url, "requests")
        for table in ("rollup_minute", "rollup_hour", "rollup_day"):
            assert set(UNIT_FIGURES) <= await raw_sql.columns(db_url, table), table
        units = ", ".join(UNIT_FIGURES)
        rows = await raw_sql.rows(db_url, f"SELECT gateway_key, {units} FROM rollup_day ORDER BY gateway_key")
        by_key = {row[0]: tuple(row[1:]) for row in rows}
        assert by_key["alice"] == (2, 12.5, 40, 1, 1)  # the new record's units, summed
        assert by_key[old.gateway_key or ""] == (0, 0, 0, 0, 0)  # an old row: zeros, not NULL
        stored = await raw_sql.rows(
            db_url,
            f"SELECT {', '.join(UNIT_COLUMNS)} FROM requests WHERE request_id = ?",
            no_usage.request_id,
        )
        assert stored == [(None,) * len(UNIT_COLUMNS)]

    asyncio.run(at_schema_one_with(monkeypatch, at_schema_one))
    asyncio.run(upgraded())


async def at_schema_one_with(monkeypatch: pytest.MonkeyPatch, step: Any) -> None:
    """Run ``step`` with the stores at schema 1, then restore them."""
    with monkeypatch.context() as patch:
        _schema_one(patch)
        await step()


def test_a_unit_column_already_there_is_not_added_twice(
    raw_sql: Any, db_url: str, monkeypatch: pytest.MonkeyPatch, record: Factory
) -> None:
    """Schema 2 on a database where someone already added some of its columns (by hand, or a
    migration tool): it completes, and the units are written."""

    async def at_schema_one() -> None:
        store = open_store(SqlOptions(url=Secret(db_url)))
        try:
            assert await store.migrate() == [1]
        finally:
            await store.close()
        await raw_sql.rows(db_url, "ALTER TABLE requests ADD COLUMN images BIGINT")
        await raw_sql.rows(db_url, "ALTER TABLE rollup_day ADD COLUMN search_units BIGINT NOT NULL DEFAULT 0")

    async def upgraded() -> None:
        store = open_store(SqlOptions(url=Secret(db_url)))
        try:
            assert await store.migrate() == [2, 3]
            await store.ensure_ahead(NOW)
            made = record(4, now=NOW, usage=UNITS)
            assert await store.write([made]) == 1
            assert await store.get(made.request_id) == made
        finally:
            await store.close()

    asyncio.run(at_schema_one_with(monkeypatch, at_schema_one))
    asyncio.run(upgraded())


@pytest.mark.parametrize("seconds", [float("inf"), float("-inf"), float("nan")])
def test_seconds_that_are_not_finite_are_stored_as_zero_on_both_backends(
    raw_sql: Any, db_url: str, seconds: float, record: Factory
) -> None:
    made = record(5, now=NOW, usage=Usage(prompt_tokens=1, audio_seconds=seconds, images=1))

    async def run() -> None:
        store = open_store(SqlOptions(url=Secret(db_url)))
        try:
            await store.migrate()
            await store.ensure_ahead(NOW)
            assert await store.write([made]) == 1
            got = await store.get(made.request_id)
            assert got is not None and got.usage is not None
            assert (got.usage.audio_seconds, got.usage.images) == (0.0, 1)
        finally:
            await store.close()
        rows = await raw_sql.rows(db_url, "SELECT sum(audio_seconds), sum(images) FROM rollup_day")
        assert rows == [(0.0, 1)]

    asyncio.run(run())


def test_huge_unit_counts_are_clamped_to_64_bits_like_the_tokens(db_url: str, record: Factory) -> None:
    big = 2**70
    made = record(6, now=NOW, usage=Usage(images=big, characters=big, search_units=big, requests=big))

    async def run() -> None:
        store = open_store(SqlOptions(url=Secret(db_url)))
        try:
            await store.migrate()
            await store.ensure_ahead(NOW)
            assert await store.write([made]) == 1
            got = await store.get(made.request_id)
            assert got is not None and got.usage is not None
            top = 2**63 - 1
            assert (got.usage.images, got.usage.characters, got.usage.search_units, got.usage.requests) == (
                top,
                top,
                top,
                top,
            )
        finally:
            await store.close()

    asyncio.run(run())


GATEWAY = """
providers:
  gem: {{type: gemini, base_url: "{base_url}", keys: [{{name: k1, value: test-key}}]}}
models:
  imagen:
    deployments: [{{provider: gem, model: imagen-4.0-generate-001, price: {{image: 0.04}}}}]
keys:
  - {{name: alice, value: key-alice}}
loggers:
  - sql: {{url: "{url}", flush_interval: 20ms}}
"""


def test_an_image_request_through_the_gateway_is_stored_with_its_images(raw_sql: Any, db_url: str) -> None:
    """A gateway serving Imagen (fake Gemini), logging to the database: the row and the day's
    rollup carry the images."""
    fake = FakeGemini()
    with fake.running(), GatewayServer(GATEWAY.format(base_url=fake.base_url, url=db_url)) as gw:
        answer = httpx.post(
            gw.url + "/v1/images/generations",
            json={"model": "imagen", "prompt": "a red truck", "n": 3},
            headers={"authorization": "Bearer key-alice"},
            timeout=20,
        )
        assert answer.status_code == 200, answer.text
        request_id = answer.headers["x-request-id"]
        for _ in range(3000):  # the writer's batch: a state polled, up to 30 s
            rows = asyncio.run(
                raw_sql.rows(
                    db_url,
                    f"SELECT {', '.join(UNIT_COLUMNS)}, cost_usd FROM requests WHERE request_id = ?",
                    request_id,
                )
            )
            if rows:
                break
            time.sleep(0.01)
        assert rows == [(3, 0.0, 0, 0, 1, pytest.approx(0.12))]
        day = asyncio.run(
            raw_sql.rows(db_url, "SELECT images, usage_requests FROM rollup_day WHERE alias = 'imagen'")
        )
        assert day == [(3, 1)]
        assert fake.violations == []
