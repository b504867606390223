"""Records written in batches are read back exactly, on both backends (property-based over
every field: any unicode text, missing and present values, huge numbers), and every field of
:class:`RequestRecord`, each set to a value other than its default, survives the round trip (a
field added later without its column fails :func:`test_every_field_of_a_record_survives`)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from truckllm_logger_sql.options import SqlOptions
from truckllm_logger_sql.store import open_store

from truckllm.kit.options import Secret
from truckllm.kit.request_log import LogQuery
from truckllm.types import AttemptRecord, GuardrailResult, RecordBodies, RequestRecord, Usage

# huge, yet a batch summed into the rollups stays within 64 bits
INT64 = st.integers(min_value=0, max_value=2**56)
# huge, yet sums in the rollups stay finite (PostgreSQL refuses a float overflow)
FLOATS = st.floats(min_value=-1e300, max_value=1e300)
TEXT = st.text(max_size=40)
OPT_TEXT = st.none() | TEXT
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | FLOATS | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
ATTEMPTS = st.builds(
    AttemptRecord,
    provider=TEXT, provider_key=TEXT, deployment=TEXT, model=TEXT,
    status=st.integers(100, 599), latency_ms=FLOATS, error_kind=OPT_TEXT, alias=TEXT,
)  # fmt: skip
USAGE = st.builds(
    Usage,
    prompt_tokens=INT64, completion_tokens=INT64, total_tokens=INT64,
    cached_tokens=INT64, cache_write_tokens=INT64, reasoning_tokens=INT64,
    images=INT64, audio_seconds=FLOATS, characters=INT64, search_units=INT64, requests=INT64,
)  # fmt: skip
BODIES = st.builds(
    RecordBodies,
    request=st.text(max_size=200), response=st.text(max_size=200),
    request_truncated=st.booleans(), response_truncated=st.booleans(),
)  # fmt: skip
GUARDRAILS = st.builds(
    GuardrailResult,
    name=TEXT, stage=st.sampled_from(["input", "output"]), action=st.sampled_from(["allow", "block", "modify"]),
    reason=TEXT, ms=st.floats(0, 1e6), error=OPT_TEXT, findings=st.dictionaries(TEXT, INT64, max_size=3),
)  # fmt: skip
RECORDS = st.builds(
    RequestRecord,
    request_id=TEXT,
    started_at=st.floats(min_value=1.79e9, max_value=1.79e9 + 3 * 86400),
    endpoint=TEXT, dialect=TEXT, alias=TEXT, gateway_key=OPT_TEXT, stream=st.booleans(),
    status=st.integers(100, 599), latency_ms=FLOATS,
    ttft_ms=st.none() | FLOATS, upstream_ms=st.none() | st.floats(0, 1e6),
    provider=OPT_TEXT, provider_type=OPT_TEXT, deployment=OPT_TEXT, model=OPT_TEXT, provider_key=OPT_TEXT,
    attempts=st.lists(ATTEMPTS, max_size=3).map(tuple), fallbacks=st.lists(TEXT, max_size=3).map(tuple),
    usage=st.none() | USAGE, cost_usd=FLOATS, error_kind=OPT_TEXT, error_message=OPT_TEXT,
    client_disconnected=st.booleans(), extra=st.dictionaries(TEXT, JSONISH, max_size=4),
    bodies=st.none() | BODIES,
    team=OPT_TEXT, org=OPT_TEXT, user=OPT_TEXT, tags=st.lists(TEXT, max_size=4).map(tuple),
    guardrails=st.lists(GUARDRAILS, max_size=3).map(tuple), metadata=st.dictionaries(TEXT, TEXT, max_size=4),
)  # fmt: skip


def _as_stored(record: RequestRecord, postgres: bool) -> RequestRecord:
    """What the backend gives back: PostgreSQL text cannot hold NUL (stored as U+FFFD); a tag's
    NUL is U+FFFD on both backends (the tag filter reads tags with the JSON functions)."""
    if not postgres:
        return msgspec_replace(record, tags=tuple(t.replace("\x00", "\ufffd") for t in record.tags))

    def clean(value: Any) -> Any:
        return value.replace("\x00", "\ufffd") if isinstance(value, str) else value

    fields = {f: clean(getattr(record, f)) for f in record.__struct_fields__}
    fields["tags"] = tuple(clean(t) for t in record.tags)
    if record.bodies is not None:
        b = record.bodies
        fields["bodies"] = RecordBodies(
            request=clean(b.request), response=clean(b.response),
            request_truncated=b.request_truncated, response_truncated=b.response_truncated,
        )  # fmt: skip
    return RequestRecord(**fields)


async def _roundtrip(url: str, records: list[RequestRecord]) -> None:
    store = open_store(SqlOptions(url=Secret(url)))
    postgres = url.startswith("postgresql")
    # unique across examples (they share the database)
    records = [msgspec_replace(r, request_id=uuid.uuid4().hex + r.request_id) for r in records]
    try:
        await store.migrate()
        half = len(records) // 2
        assert await store.write(records[:half]) == half
        assert await store.write(records[half:]) == len(records) - half
        for record in records:
            got = await store.get(record.request_id)
            assert got == _as_stored(record, postgres)
            page = await store.search(LogQuery(request_id=record.request_id))
            assert page.records == (msgspec_replace(_as_stored(record, postgres), bodies=None),)
    finally:
        await store.close()


def msgspec_replace(record: RequestRecord, **changes: Any) -> RequestRecord:
    """``record`` with ``changes``."""
    return msgspec.structs.replace(record, **changes)


@settings(
    max_examples=40,
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),  # no shrinking: slow on a database
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(records=st.lists(RECORDS, min_size=1, max_size=6))
def test_records_read_back_exactly(db_url: str, records: list[RequestRecord]) -> None:
    asyncio.run(_roundtrip(db_url, records))


def test_a_batch_retried_after_its_commit_is_not_counted_twice(db_url: str, record: Any) -> None:
    async def run() -> None:
        store = open_store(SqlOptions(url=Secret(db_url)))
        try:
            await store.migrate()
            batch = [record(i, now=1_790_000_000.0) for i in range(10)]
            assert await store.write(batch) == 10
            assert await store.write([*batch, record(10, now=1_790_000_000.0)]) == 1
            from truckllm.kit.request_log import SeriesQuery

            series = await store.series(SeriesQuery(since=1_789_990_000, until=1_790_000_100, step="day"))
            assert series.totals.requests == 11
            assert series.totals.prompt_tokens == sum(range(11))
        finally:
            await store.close()

    asyncio.run(run())


def test_a_record_reads_back_to_the_same_json(db_url: str, record: Any) -> None:
    """What the admin API sends (and the console shows) for a stored record is what the gateway
    recorded: a chat request's usage gains no ``audio_seconds: 0.0``; a transcription keeps its."""
    import msgspec

    async def run() -> None:
        store = open_store(SqlOptions(url=Secret(db_url)))
        chat = record(1)
        audio = record(2, usage=Usage(prompt_tokens=0, audio_seconds=12.5, requests=1))
        try:
            await store.migrate()
            assert await store.write([chat, audio]) == 2
            for original in (chat, audio):
                got = await store.get(original.request_id)
                assert got is not None
                assert msgspec.json.encode(got.usage) == msgspec.json.encode(original.usage)
                page = await store.search(LogQuery(request_id=original.request_id))
                assert msgspec.json.encode(page.records[0].usage) == msgspec.json.encode(original.usage)
        finally:
            await store.close()

    asyncio.run(run())


# one value per RequestRecord field, none its default (a NUL-free, hostile-enough text each)
EVERY_FIELD: dict[str, Any] = {
    "request_id": "req-every-field",
    "started_at": 1_790_000_123.25,
    "endpoint": "responses",
    "dialect": "anthropic",
    "alias": "claude 'quoted' %_",
    "gateway_key": "alice",
    "stream": True,
    "status": 429,
    "latency_ms": 1234.5,
    "ttft_ms": 56.75,
    "upstream_ms": 1200.25,
    "provider": "anthropic",
    "provider_type": "anthropic",
    "deployment": "eu-1",
    "model": "claude-x",
    "provider_key": "k2",
    "attempts": (
        AttemptRecord(
            provider="openai",
            provider_key="k1",
            deployment="d",
            model="m",
            status=500,
            latency_ms=12.5,
            error_kind="server",
            alias="gpt",
        ),
    ),
    "fallbacks": ("gpt",),
    "usage": Usage(
        prompt_tokens=1,
        completion_tokens=2,
        total_tokens=3,
        cached_tokens=4,
        cache_write_tokens=5,
        reasoning_tokens=6,
        images=7,
        audio_seconds=8.5,
        characters=9,
        search_units=10,
        requests=11,
    ),
    "cost_usd": 0.125,
    "error_kind": "rate_limited",
    "error_message": 'slow down "now"',
    "client_disconnected": True,
    "extra": {"a": [1, {"b": None}], "é": "ü"},
    "bodies": RecordBodies(request="{}", response="[]", request_truncated=True, response_truncated=True),
    "team": "platform",
    "org": "acme",
    "user": "user-42 'x' %",
    "tags": ("env:prod", "team/a", "ü"),
    "guardrails": (
        GuardrailResult(
            name="pii", stage="input", action="modify", reason="emails", ms=1.5, findings={"email": 2}
        ),
        GuardrailResult(name="words", stage="output", action="block", ms=0.25, error="timeout"),
    ),
    "metadata": {"cost_center": "cc-1", "region": "eu"},
}


def test_the_every_field_record_names_every_field_with_no_default() -> None:
    """A field added to RequestRecord must be added here (and so get its column)."""
    fields = msgspec.structs.fields(RequestRecord)
    assert sorted(f.name for f in fields) == sorted(EVERY_FIELD)
    for f in fields:
        if f.default is not msgspec.NODEFAULT:
            assert EVERY_FIELD[f.name] != f.default, f.name
        if f.default_factory is not msgspec.NODEFAULT:
            assert EVERY_FIELD[f.name] != f.default_factory(), f.name


@pytest.mark.parametrize("bodies", [True, False], ids=["get", "search"])
def test_every_field_of_a_record_survives(db_url: str, bodies: bool) -> None:
    """Every field, non-default, read back equal by ``get`` (bodies included) and by a search
    (everything but the bodies), and to the same JSON the admin API sends."""
    record = RequestRecord(**EVERY_FIELD)

    async def run() -> None:
        store = open_store(SqlOptions(url=Secret(db_url)))
        try:
            await store.migrate()
            assert await store.write([record]) == 1
            if bodies:
                got = await store.get(record.request_id)
                expected = record
            else:
                page = await store.search(LogQuery(request_id=record.request_id))
                assert len(page.records) == 1
                got, expected = page.records[0], msgspec_replace(record, bodies=None)
            assert got is not None
            for f in msgspec.structs.fields(RequestRecord):
                assert getattr(got, f.name) == getattr(expected, f.name), f.name
            assert got == expected
            assert msgspec.json.encode(got) == msgspec.json.encode(expected)
        finally:
            await store.close()

    asyncio.run(run())
