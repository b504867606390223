"""The writer against a store that refuses some records for their data: only those are dropped
(counted), the rest of their batch is written, and the writer goes on."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from truckllm_logger_sql import SqlLogger
from truckllm_logger_sql.options import SqlOptions

from truckllm.kit.options import Duration
from truckllm.kit.request_log import LogPage, LogQuery, Series, SeriesQuery
from truckllm.types import RequestRecord


class Refusing:
    """A store keeping records in memory that refuses any record whose alias is ``bad``."""

    def __init__(self) -> None:
        self.rows: dict[str, RequestRecord] = {}
        self.closed = False

    async def migrate(self) -> list[int]:
        return []

    async def ensure_ahead(self, now: float) -> None:
        return None

    async def write(self, records: Sequence[RequestRecord]) -> int:
        if any(r.alias == "bad" for r in records):
            raise ValueError("value out of range")
        fresh = [r for r in records if r.request_id not in self.rows]
        self.rows.update((r.request_id, r) for r in fresh)
        return len(fresh)

    async def retention(self, now: float, retention_days: int) -> int:
        return 0

    async def search(self, query: LogQuery) -> LogPage:
        return LogPage()

    async def get(self, request_id: str) -> RequestRecord | None:
        return self.rows.get(request_id)

    async def series(self, query: SeriesQuery) -> Series:
        raise NotImplementedError

    async def close(self) -> None:
        self.closed = True


def test_only_refused_records_are_dropped(record: Any) -> None:
    async def run() -> None:
        store = Refusing()
        logger = SqlLogger(SqlOptions(flush_interval=Duration(0.01), batch_size=10), store=store)
        await logger.startup(None)
        for i in range(10):
            logger.emit_log(record(i, alias="bad" if i in (3, 7) else "good"))
        for _ in range(3000):
            if logger.metrics["written"] + logger.metrics["dropped"] >= 10:
                break
            await asyncio.sleep(0.01)
        for i in range(10, 15):
            logger.emit_log(record(i, alias="good"))
        await logger.shutdown(None)
        assert logger.metrics["dropped"] == 2 and logger.metrics["written"] == 13
        assert logger.metrics["failed_batches"] == 1
        assert sorted(store.rows) == sorted(f"req-{i:06d}" for i in range(15) if i not in (3, 7))
        assert store.closed

    asyncio.run(run())
