"""The file logger: lines in a file, rotation and compression by loguru, strict options."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any, Literal

import msgspec
import pytest
from loguru import logger
from truckllm_logger_file import EXTRA_KEY, FileLogger

from truckllm._internal.config.loader import decode_options
from truckllm.types import Alert, AttemptRecord, RequestRecord, Usage


def make_record(**changes: Any) -> RequestRecord:
    """A successful chat request with one attempt; ``changes`` override fields."""
    fields: dict[str, Any] = {
        "request_id": "req-1",
        "started_at": 1748779200.5,
        "endpoint": "chat",
        "dialect": "openai",
        "alias": "gpt-4o",
        "gateway_key": "team-a",
        "stream": False,
        "status": 200,
        "latency_ms": 100.0,
        "upstream_ms": 90.0,
        "provider": "openai",
        "provider_type": "openai",
        "deployment": "gpt-4o#0",
        "model": "gpt-4o",
        "provider_key": "oa-main",
        "attempts": (
            AttemptRecord(
                provider="openai",
                provider_key="oa-main",
                deployment="gpt-4o#0",
                model="gpt-4o",
                status=200,
                latency_ms=90.0,
                alias="gpt-4o",
            ),
        ),
        "usage": Usage(prompt_tokens=3, completion_tokens=5, total_tokens=8),
        "cost_usd": 0.0001,
    }
    fields.update(changes)
    return RequestRecord(**fields)


async def run_logger(options: FileLogger.Options, *records: RequestRecord) -> None:
    """Start a logger, emit ``records``, shut it down (which flushes and closes the file)."""
    file_logger = FileLogger(options)
    file_logger.startup(app=None)
    for record in records:
        file_logger.emit_log(record)
    await file_logger.shutdown(app=None)


async def test_json_lines_in_the_file(tmp_path: Path) -> None:
    options = FileLogger.Options(path=str(tmp_path / "logs" / "requests-{pid}.jsonl"))
    await run_logger(options, make_record(), make_record(request_id="req-2", status=502, error_kind="server"))
    path = tmp_path / "logs" / f"requests-{os.getpid()}.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["request_id"], r["level"], r["status"]) for r in rows] == [
        ("req-1", "INFO", 200),
        ("req-2", "ERROR", 502),
    ]
    assert rows[0]["time"] == "2025-06-01T12:00:00.500Z"
    assert rows[0]["provider_key"] == "oa-main"
    assert rows[0]["overhead_ms"] == 10.0
    assert rows[0]["attempt_list"][0]["deployment"] == "gpt-4o#0"


async def test_text_lines_and_level(tmp_path: Path) -> None:
    path = tmp_path / "requests.log"
    options = FileLogger.Options(path=str(path), format="text", level="WARNING")
    await run_logger(options, make_record(), make_record(request_id="req-2", status=401, provider=None))
    lines = path.read_text().splitlines()
    assert lines == ["2025-06-01T12:00:00.500Z WARNING 401 chat gpt-4o 100ms " + lines[0].split(" 100ms ")[1]]
    assert "request_id=req-2" in lines[0]


async def test_rotation_and_compression(tmp_path: Path) -> None:
    path = tmp_path / "requests.log"
    options = FileLogger.Options(path=str(path), rotation="2 KB", compression="gz", retention=None)
    records = [make_record(request_id=f"req-{i}") for i in range(20)]
    await run_logger(options, *records)
    rotated, ids = read_rotated(path)
    assert rotated
    assert sorted(ids) == sorted(r.request_id for r in records)


def read_rotated(path: Path) -> tuple[list[Path], list[str]]:
    """The compressed rotated files next to ``path``, and every request id in them and in ``path``."""
    rotated = sorted(path.parent.glob("requests.*.log.gz"))
    ids = []
    for archive in rotated:
        ids += [json.loads(line)["request_id"] for line in gzip.decompress(archive.read_bytes()).splitlines()]
    ids += [json.loads(line)["request_id"] for line in path.read_text().splitlines()]
    return rotated, ids


async def test_only_its_own_records_reach_the_file(tmp_path: Path) -> None:
    path = tmp_path / "requests.log"
    file_logger = FileLogger(FileLogger.Options(path=str(path)))
    file_logger.startup(app=None)
    logger.info("a kernel message")
    logger.bind(**{EXTRA_KEY: "someone-else"}).info("another logger's record")
    file_logger.emit_log(make_record())
    await file_logger.shutdown(app=None)
    assert [json.loads(line)["request_id"] for line in path.read_text().splitlines()] == ["req-1"]


def test_options_decode_strictly(tmp_path: Path) -> None:
    options = decode_options(
        {"path": str(tmp_path / "x.log"), "rotation": "1 day", "retention": 5, "compression": "zip"},
        FileLogger.Options,
    )
    assert options.retention == 5
    assert decode_options({}, FileLogger.Options) == FileLogger.Options()
    for bad in (
        {"rotation": "every blue moon"},
        {"retention": "forever and ever"},
        {"retention": 0},
        {"compression": "rar"},
        {"level": "LOUD"},
        {"path": " "},
        {"paht": "x.log"},
    ):
        with pytest.raises(msgspec.ValidationError):
            decode_options(bad, FileLogger.Options)


def test_a_path_that_cannot_be_written_fails_at_startup(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    file_logger = FileLogger(FileLogger.Options(path=str(blocker / "requests.log")))
    with pytest.raises(OSError):
        file_logger.startup(app=None)
    file_logger.emit_log(make_record())  # not started: nothing, no error


ALERT = Alert(
    id="key_ejected:openai/oa-main:5997597",
    kind="key_ejected",
    subject="provider:openai/oa-main",
    message='provider key openai/oa-main ejected after 5 consecutive failures (server)\n"x"',
    at=1748779200.5,
)


async def test_one_line_per_alert_json_and_text_error_level_leaves_them_out(tmp_path: Path) -> None:
    lines: dict[str, list[str]] = {}
    cases: tuple[tuple[Literal["json", "text"], str], ...] = (
        ("json", "INFO"),
        ("text", "WARNING"),
        ("json", "ERROR"),
    )
    for fmt, level in cases:
        path = tmp_path / f"{fmt}-{level}.log"
        file_logger = FileLogger(FileLogger.Options(path=str(path), format=fmt, level=level))
        file_logger.startup(app=None)
        file_logger.emit_alert(ALERT)
        file_logger.emit_log(make_record())
        await file_logger.shutdown(app=None)
        lines[f"{fmt}-{level}"] = path.read_text().splitlines()
    alert_json, record_json = lines["json-INFO"]
    assert json.loads(alert_json) == {
        "time": "2025-06-01T12:00:00.500Z",
        "level": "WARNING",
        "type": "alert",
        "alert": msgspec.to_builtins(ALERT),
    }
    assert json.loads(record_json)["request_id"] == "req-1"
    assert lines["text-WARNING"] == [
        '2025-06-01T12:00:00.500Z WARNING ALERT key_ejected "provider:openai/oa-main" '
        '"provider key openai/oa-main ejected after 5 consecutive failures (server)\\n\\"x\\"" '
        'id="key_ejected:openai/oa-main:5997597"'
    ]
    assert lines["json-ERROR"] == []
