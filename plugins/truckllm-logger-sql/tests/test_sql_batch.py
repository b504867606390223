"""A batch written (PostgreSQL: in SQL, from one JSON array, rollups computed there): the rows
read back exactly, the rollups equal the reference :func:`~truckllm_logger_sql.rollup.aggregate`
of the records actually inserted (bucket edges, histogram bounds, a batch retried, duplicate ids),
and the writer's backlog batches."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from truckllm_logger_sql import SqlLogger
from truckllm_logger_sql.options import SqlOptions
from truckllm_logger_sql.rollup import BOUNDS_MS, ROLLUP_COLUMNS, STEP_SECONDS, aggregate, table_of
from truckllm_logger_sql.store import open_store
from truckllm_logger_sql.writer import BACKLOG_BATCHES

from truckllm.kit.options import Duration, Secret
from truckllm.kit.request_log import LogPage, LogQuery, Series, SeriesQuery, Step
from truckllm.types import AttemptRecord, RecordBodies, RequestRecord, Usage

NO_NUL = st.text(max_size=30).map(lambda text: text.replace("\x00", ""))
FLOATS = st.floats(min_value=-1e300, max_value=1e300)
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | FLOATS | NO_NUL,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NO_NUL, inner, max_size=3),
    max_leaves=6,
)
RECORDS = st.builds(
    RequestRecord,
    request_id=NO_NUL,
    started_at=st.floats(min_value=1.79e9, max_value=1.79e9 + 3 * 86400),
    endpoint=NO_NUL, dialect=NO_NUL, alias=NO_NUL, gateway_key=st.none() | NO_NUL, stream=st.booleans(),
    status=st.integers(100, 599), latency_ms=FLOATS | st.sampled_from(BOUNDS_MS),
    ttft_ms=st.none() | FLOATS, upstream_ms=st.none() | st.floats(0, 1e6),
    provider=st.none() | NO_NUL, model=st.none() | NO_NUL, provider_key=st.none() | NO_NUL,
    attempts=st.lists(
        st.builds(AttemptRecord, provider=NO_NUL, provider_key=NO_NUL, deployment=NO_NUL, model=NO_NUL,
                  status=st.integers(100, 599), latency_ms=FLOATS, error_kind=st.none() | NO_NUL),
        max_size=2,
    ).map(tuple),
    fallbacks=st.lists(NO_NUL, max_size=2).map(tuple),
    usage=st.none() | st.builds(Usage, prompt_tokens=st.integers(0, 2**56), completion_tokens=st.integers(0, 9),
                                cached_tokens=st.integers(0, 9), images=st.integers(0, 2**56),
                                audio_seconds=st.floats(0, 1e12), characters=st.integers(0, 2**56),
                                search_units=st.integers(0, 9), requests=st.integers(0, 9)),
    cost_usd=FLOATS, error_message=st.none() | NO_NUL, client_disconnected=st.booleans(),
    extra=st.dictionaries(NO_NUL, JSONISH, max_size=3),
    bodies=st.none() | st.builds(RecordBodies, request=NO_NUL, response=NO_NUL,
                                 request_truncated=st.booleans(), response_truncated=st.booleans()),
)  # fmt: skip


async def _written(url: str, batches: Sequence[Sequence[RequestRecord]]) -> list[int]:
    store = open_store(SqlOptions(url=Secret(url)))
    try:
        await store.migrate()
        return [await store.write(batch) for batch in batches]
    finally:
        await store.close()


async def _read_back(url: str, records: Sequence[RequestRecord]) -> None:
    store = open_store(SqlOptions(url=Secret(url)))
    try:
        for record in records:
            assert await store.get(record.request_id) == record
            page = await store.search(LogQuery(request_id=record.request_id))
            assert page.records == (msgspec.structs.replace(record, bodies=None),)
    finally:
        await store.close()


@settings(
    max_examples=30,
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(records=st.lists(RECORDS, min_size=1, max_size=6))
def test_records_without_nul_read_back_exactly(db_url: str, records: list[RequestRecord]) -> None:
    """The JSON path (no ``\\u0000`` in the batch): every field, escapes, huge numbers."""
    records = [msgspec.structs.replace(r, request_id=uuid.uuid4().hex + r.request_id) for r in records]
    assert b"\\u0000" not in msgspec.json.encode(records)
    assert asyncio.run(_written(db_url, [records])) == [len(records)]
    asyncio.run(_read_back(db_url, records))


def _tricky(rng: random.Random, i: int) -> RequestRecord:
    """Record ``i``: on and beside bucket edges and histogram bounds, some without upstream or
    usage, a few NUL-free but escape-heavy strings."""
    edge = 1_790_006_400.0 + 60 * (i % 5)  # a day edge, then minute edges
    started = rng.choice(
        [edge, edge - 1e-6, edge + 1e-6, edge - 0.5, 1_790_000_000.0 + rng.uniform(0, 3 * 86400)]
    )
    latency = rng.choice([*BOUNDS_MS, 0.0, 0.1, 70_000.0, rng.uniform(0, 100_000)])
    upstream = rng.choice([None, 0.0, latency, latency - 0.25, rng.uniform(0, latency + 1)])
    return RequestRecord(
        request_id=f'r{i}-"\\\n\u00e9',
        started_at=started,
        endpoint="chat",
        dialect="openai",
        alias=rng.choice(["a", "b", "é\\"]),
        gateway_key=rng.choice([None, "", "k1", "k2"]),
        stream=False,
        status=rng.choice([200, 201, 399, 400, 429, 500]),
        latency_ms=latency,
        upstream_ms=upstream,
        provider=rng.choice([None, "p"]),
        model=rng.choice([None, "m"]),
        usage=rng.choice(
            [
                None,
                Usage(prompt_tokens=rng.randrange(10**6), completion_tokens=rng.randrange(10**6)),
                Usage(
                    images=rng.randrange(5),
                    audio_seconds=rng.choice([0.0, 1.5, rng.uniform(0, 3600)]),
                    characters=rng.randrange(10**6),
                    search_units=rng.randrange(4),
                    requests=1,
                ),
            ]
        ),
        cost_usd=rng.choice([0.0, 0.1, 1e-9, rng.random()]),
    )


def _rollups(url: str, step: Step) -> list[tuple[Any, ...]]:
    table = table_of(step)
    sql = f"SELECT {', '.join(ROLLUP_COLUMNS)} FROM {table}"
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            return sorted(tuple(r) for r in conn.execute(sql))
        finally:
            conn.close()

    async def read() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(url)
        try:
            return sorted(tuple(r) for r in await conn.fetch(sql))
        finally:
            await conn.close()

    return asyncio.run(read())


def _approx(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows with the cost and the seconds rounded (a float sum's last bits may depend on the order)."""
    digits = {ROLLUP_COLUMNS.index("cost_usd"): 9, ROLLUP_COLUMNS.index("audio_seconds"): 6}
    return [tuple(round(v, digits[i]) if i in digits else v for i, v in enumerate(r)) for r in rows]


def test_rollups_equal_the_reference_of_the_rows_inserted(db_url: str) -> None:
    rng = random.Random(7)
    records = [_tricky(rng, i) for i in range(400)]
    again = [records[5], records[5]]  # stored already; twice in its batch
    first, second = records[:250], [*records[200:], *again]  # a retried batch's overlap
    assert asyncio.run(_written(db_url, [first, second, again])) == [250, 150, 0]
    for step in STEP_SECONDS:
        assert _approx(_rollups(db_url, step)) == _approx(sorted(aggregate(records, step))), step
    asyncio.run(_read_back(db_url, records[:20]))


def test_a_duplicate_id_within_a_batch_is_stored_once(db_url: str, record: Any) -> None:
    one = record(1)
    assert asyncio.run(_written(db_url, [[one, one, record(2)]])) == [2]
    assert sum(r[ROLLUP_COLUMNS.index("requests")] for r in _rollups(db_url, "day")) == 2


class _Recording:
    """A store in memory that records each batch's size."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    async def migrate(self) -> list[int]:
        return []

    async def ensure_ahead(self, now: float) -> None:
        return None

    async def write(self, records: Sequence[RequestRecord]) -> int:
        self.sizes.append(len(records))
        return len(records)

    async def retention(self, now: float, retention_days: int) -> int:
        return 0

    async def search(self, query: LogQuery) -> LogPage:
        return LogPage()

    async def get(self, request_id: str) -> RequestRecord | None:
        return None

    async def series(self, query: SeriesQuery) -> Series:
        raise NotImplementedError

    async def close(self) -> None:
        return None


def test_a_backlog_is_written_in_bigger_batches_back_to_back(record: Any) -> None:
    async def run() -> None:
        store = _Recording()
        logger = SqlLogger(SqlOptions(batch_size=3, flush_interval=Duration(3600)), store=store)
        for i in range(3 * BACKLOG_BATCHES + 5):  # queued while the writer was not running
            logger.emit_log(record(i))
        await logger.startup(None)
        for _ in range(1000):
            if logger.metrics["written"] == 3 * BACKLOG_BATCHES + 5:
                break
            await asyncio.sleep(0)
        # without waiting for the hour-long flush_interval
        assert store.sizes == [3 * BACKLOG_BATCHES, 5]
        await logger.shutdown(None)

    asyncio.run(run())


def test_the_default_max_backoff_is_short() -> None:
    """A database back is seen within seconds (``db_up``), not after a 30 s backoff."""
    assert SqlOptions().max_backoff <= 5
