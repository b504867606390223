"""The stdout logger: JSON and text lines, levels, its own loguru sink only."""

from __future__ import annotations

import io
import json
from typing import Any

import msgspec
import pytest
from loguru import logger
from truckllm_logger_stdout import EXTRA_KEY, StdoutLogger

from truckllm._internal.config.loader import decode_options
from truckllm._internal.records import FIELDS
from truckllm.types import Alert, AttemptRecord, RecordBodies, RequestRecord, Usage

STARTED = 1748779200.123  # 2025-06-01T12:00:00.123Z


def make_record(**changes: Any) -> RequestRecord:
    """A successful chat request with one attempt; ``changes`` override fields."""
    fields: dict[str, Any] = {
        "request_id": "req-1",
        "started_at": STARTED,
        "endpoint": "chat",
        "dialect": "openai",
        "alias": "gpt-4o",
        "gateway_key": "team-a",
        "stream": True,
        "status": 200,
        "latency_ms": 812.5,
        "ttft_ms": 143.0,
        "upstream_ms": 800.25,
        "provider": "openai",
        "provider_type": "openai",
        "deployment": "gpt-4o#0",
        "model": "gpt-4o-2024-08-06",
        "provider_key": "oa-main",
        "attempts": (
            AttemptRecord(
                provider="openai",
                provider_key="oa-main",
                deployment="gpt-4o#0",
                model="gpt-4o-2024-08-06",
                status=200,
                latency_ms=800.25,
                alias="gpt-4o",
            ),
        ),
        "usage": Usage(
            prompt_tokens=12, completion_tokens=34, total_tokens=46, cached_tokens=4, reasoning_tokens=8
        ),
        "cost_usd": 0.00037,
    }
    fields.update(changes)
    return RequestRecord(**fields)


def failed_record() -> RequestRecord:
    """A 503 after a 429 and a 500, with a fallback, no usage and a multi-line message."""
    attempts = (
        AttemptRecord(
            provider="openai",
            provider_key="oa-main",
            deployment="gpt-4o#0",
            model="gpt-4o",
            status=429,
            latency_ms=10.0,
            error_kind="rate_limit",
            alias="gpt-4o",
        ),
        AttemptRecord(
            provider="anthropic",
            provider_key="an-main",
            deployment="claude#0",
            model="claude-sonnet-4-5",
            status=500,
            latency_ms=20.0,
            error_kind="server",
            alias="claude",
        ),
    )
    return make_record(
        request_id="req-2",
        status=503,
        stream=False,
        ttft_ms=None,
        upstream_ms=None,
        provider=None,
        provider_type=None,
        deployment=None,
        model=None,
        provider_key=None,
        attempts=attempts,
        fallbacks=("claude",),
        usage=None,
        cost_usd=0.0,
        error_kind="server",
        error_message='upstream said "no"\nsecond line',
    )


async def run_logger(options: StdoutLogger.Options, *records: RequestRecord) -> list[str]:
    """Start a logger on a buffer, emit ``records``, shut it down; return the lines written."""
    stream = io.StringIO()
    stdout_logger = StdoutLogger(options, stream=stream)
    await_none = stdout_logger.startup(app=None)
    assert await_none is None
    for record in records:
        stdout_logger.emit_log(record)
    await stdout_logger.shutdown(app=None)
    return stream.getvalue().splitlines()


async def test_json_lines_carry_every_field() -> None:
    lines = await run_logger(StdoutLogger.Options(), make_record(), failed_record())
    assert len(lines) == 2
    ok, failed = (json.loads(line) for line in lines)
    assert tuple(ok) == FIELDS
    assert ok["time"] == "2025-06-01T12:00:00.123Z"
    assert ok["level"] == "INFO"
    assert ok["gateway_key"] == "team-a"
    assert ok["provider_key"] == "oa-main"
    assert ok["attempts"] == 1
    assert ok["attempt_list"][0]["provider_key"] == "oa-main"
    assert ok["overhead_ms"] == pytest.approx(12.25)
    assert (ok["prompt_tokens"], ok["completion_tokens"], ok["cached_tokens"], ok["reasoning_tokens"]) == (
        12,
        34,
        4,
        8,
    )
    assert ok["cost_usd"] == pytest.approx(0.00037)
    assert ok["stream"] is True
    assert ok["error_kind"] is None
    assert failed["level"] == "ERROR"
    assert failed["attempts"] == 2
    assert [a["error_kind"] for a in failed["attempt_list"]] == ["rate_limit", "server"]
    assert failed["fallbacks"] == ["claude"]
    assert failed["overhead_ms"] is None
    assert failed["prompt_tokens"] is None
    assert failed["error_message"] == 'upstream said "no"\nsecond line'


async def test_text_lines_are_one_readable_line() -> None:
    lines = await run_logger(
        StdoutLogger.Options(format="text"),
        make_record(),
        failed_record(),
        make_record(alias="evil\nmodel name", request_id="req-3"),
    )
    assert len(lines) == 3
    ok, failed, odd = lines
    assert ok.startswith("2025-06-01T12:00:00.123Z INFO 200 chat gpt-4o -> openai/gpt-4o-2024-08-06 812ms ")
    for part in ("request_id=req-1", "gateway_key=team-a", "provider_key=oa-main", "stream=true"):
        assert part in ok
    assert "overhead_ms=12.25" in ok
    assert "prompt_tokens=12 completion_tokens=34 cached_tokens=4 reasoning_tokens=8" in ok
    assert "cost_usd=0.000370" in ok
    assert failed.startswith("2025-06-01T12:00:00.123Z ERROR 503 chat gpt-4o 812ms ")
    assert "tried=openai/oa-main:429:rate_limit,anthropic/an-main:500:server" in failed
    assert "fallbacks=claude" in failed
    assert r'error_message="upstream said \"no\"\nsecond line"' in failed
    assert '"evil\\nmodel name"' in odd


async def test_level_leaves_out_records_below_it() -> None:
    records = [make_record(), make_record(status=429, request_id="r429"), failed_record()]
    assert len(await run_logger(StdoutLogger.Options(level="info"), *records)) == 3
    warned = await run_logger(StdoutLogger.Options(level="WARNING"), *records)
    assert [json.loads(line)["status"] for line in warned] == [429, 503]
    errors = await run_logger(StdoutLogger.Options(level="ERROR"), *records)
    assert [json.loads(line)["status"] for line in errors] == [503]


async def test_own_sink_only_and_others_survive() -> None:
    mine, theirs, kernel = io.StringIO(), io.StringIO(), io.StringIO()
    kernel_id = logger.add(kernel, format="{message}", filter=lambda r: EXTRA_KEY not in r["extra"])
    try:
        first = StdoutLogger(StdoutLogger.Options(), stream=mine)
        second = StdoutLogger(StdoutLogger.Options(format="text"), stream=theirs)
        first.startup(app=None)
        second.startup(app=None)
        logger.info("kernel message")
        first.emit_log(make_record(request_id="first"))
        second.emit_log(make_record(request_id="second"))
        await first.shutdown(app=None)
        logger.info("kernel still logging")
        second.emit_log(make_record(request_id="second-again"))
        await second.shutdown(app=None)
    finally:
        logger.remove(kernel_id)
    assert [json.loads(line)["request_id"] for line in mine.getvalue().splitlines()] == ["first"]
    ids = [line.split(" request_id=")[1].split()[0] for line in theirs.getvalue().splitlines()]
    assert ids == ["second", "second-again"]
    assert kernel.getvalue().splitlines() == ["kernel message", "kernel still logging"]


async def test_emit_outside_startup_and_shutdown_is_a_no_op() -> None:
    stream = io.StringIO()
    stdout_logger = StdoutLogger(stream=stream)
    stdout_logger.emit_log(make_record())
    stdout_logger.startup(app=None)
    await stdout_logger.shutdown(app=None)
    stdout_logger.emit_log(make_record())
    await stdout_logger.shutdown(app=None)
    assert stream.getvalue() == ""


def test_options_decode_strictly() -> None:
    options = decode_options(
        {"format": "text", "level": "error", "include_bodies": True}, StdoutLogger.Options
    )
    assert options == StdoutLogger.Options(format="text", level="error", include_bodies=True)
    assert decode_options({}, StdoutLogger.Options) == StdoutLogger.Options()
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        decode_options({"fromat": "json"}, StdoutLogger.Options)
    with pytest.raises(msgspec.ValidationError, match="level must be one of"):
        decode_options({"level": "LOUD"}, StdoutLogger.Options)
    with pytest.raises(msgspec.ValidationError):
        decode_options({"format": "xml"}, StdoutLogger.Options)


async def test_one_line_per_alert_next_to_the_records() -> None:
    alert = Alert(
        id="credentials_failing:bedrock/main:5997597",
        kind="credentials_failing",
        subject="provider:bedrock/main",
        message="the credential of provider key bedrock/main failed to refresh: ClientError",
        at=STARTED,
    )
    for fmt in ("json", "text"):
        stream = io.StringIO()
        stdout_logger = StdoutLogger(StdoutLogger.Options(format=fmt), stream=stream)
        stdout_logger.emit_alert(alert)  # before start-up: nowhere to write yet
        stdout_logger.startup(app=None)
        stdout_logger.emit_log(make_record())
        stdout_logger.emit_alert(alert)
        await stdout_logger.shutdown(app=None)
        record_line, alert_line = stream.getvalue().splitlines()
        assert "req-1" in record_line
        if fmt == "json":
            assert json.loads(alert_line) == {
                "time": "2025-06-01T12:00:00.123Z",
                "level": "WARNING",
                "type": "alert",
                "alert": msgspec.to_builtins(alert),
            }
        else:
            assert alert_line.startswith(
                '2025-06-01T12:00:00.123Z WARNING ALERT credentials_failing "provider:bedrock/main" '
            )
            assert alert_line.endswith('id="credentials_failing:bedrock/main:5997597"')


async def test_bodies_only_with_include_bodies_json_and_a_record_that_has_them() -> None:
    bodies = RecordBodies(request='{"q": "hi"}', response='{"a": "yo"}', response_truncated=True)
    kept, plain = make_record(bodies=bodies), make_record()
    on = await run_logger(StdoutLogger.Options(include_bodies=True), kept, plain)
    with_bodies, without = (json.loads(line) for line in on)
    assert with_bodies["bodies"] == {"request": '{"q": "hi"}', "response": '{"a": "yo"}', "response_truncated": True}
    assert tuple(with_bodies)[: len(FIELDS)] == FIELDS and "bodies" not in without
    off = await run_logger(StdoutLogger.Options(), kept)
    assert "bodies" not in json.loads(off[0]) and "hi" not in off[0]
    text = await run_logger(StdoutLogger.Options(format="text", include_bodies=True), kept)
    assert '"q"' not in text[0]  # text lines never carry bodies
