"""Retention (the clock injected): request rows older than ``retention_days`` go (PostgreSQL:
whole daily partitions dropped), rollup rows past their table's retention go; 0 keeps all."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from truckllm_logger_sql import SqlLogger
from truckllm_logger_sql.options import SqlOptions
from truckllm_logger_sql.postgres_store import partition_name
from truckllm_logger_sql.store import open_store

from truckllm.kit.options import Secret
from truckllm.kit.request_log import LogQuery, SeriesQuery

NOW = 1_790_000_000.0
DAY = 86400


async def _seed(url: str, record: Any) -> list[Any]:
    store = open_store(SqlOptions(url=Secret(url)))
    records = [record(i, started_at=NOW - age * DAY) for i, age in enumerate((0.1, 1, 3, 29, 31, 45, 100))]
    try:
        await store.migrate()
        assert await store.write(records) == len(records)
    finally:
        await store.close()
    return records


async def _started(url: str, days: int) -> SqlLogger:
    logger = SqlLogger(SqlOptions(url=Secret(url), retention_days=days), clock=lambda: NOW)
    await logger.startup(None)
    return logger


def test_old_rows_and_rollups_go(db_url: str, record: Any) -> None:
    async def run() -> None:
        await _seed(db_url, record)
        logger = await _started(db_url, 30)
        try:
            page = await logger.search(LogQuery())
            ages = sorted(round((NOW - r.started_at) / DAY, 1) for r in page.records)
            assert ages == [0.1, 1, 3, 29]
            minute = await logger.series(SeriesQuery(since=NOW - 200 * DAY, until=NOW, step="minute"))
            assert minute.totals.requests == 2  # minute rows are kept 2 days
            hour = await logger.series(SeriesQuery(since=NOW - 200 * DAY, until=NOW, step="hour"))
            assert hour.totals.requests == 6  # hour rows 90 days
            day = await logger.series(SeriesQuery(since=NOW - 200 * DAY, until=NOW, step="day"))
            assert day.totals.requests == 7  # day rows 400 days
            if db_url.startswith("postgresql"):
                conn = await asyncpg.connect(db_url)
                try:
                    names = {
                        row[0]
                        for row in await conn.fetch(
                            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                            " WHERE i.inhparent = 'requests'::regclass"
                        )
                    }
                finally:
                    await conn.close()
                today = int(NOW // DAY)
                assert partition_name(today - 45) not in names and partition_name(today - 100) not in names
                assert {partition_name(today + k) for k in range(3)} <= names  # created ahead
                assert partition_name(today - 29) in names
        finally:
            await logger.shutdown(None)

    asyncio.run(run())


def test_zero_keeps_every_row(db_url: str, record: Any) -> None:
    async def run() -> None:
        records = await _seed(db_url, record)
        logger = await _started(db_url, 0)
        try:
            assert len((await logger.search(LogQuery())).records) == len(records)
        finally:
            await logger.shutdown(None)

    asyncio.run(run())
