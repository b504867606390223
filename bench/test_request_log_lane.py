"""The ``request_log`` lane's own checks: where every record went (the accounting), the CPU
ratio, when a rate counts as sustained, the generated config, the tables, and the proxy that
cuts the database off (a real loopback server)."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from ruamel.yaml import YAML

from bench.loadgen import RunResult, Sample
from bench.request_log_lane import (
    CutProxy,
    accounting,
    answered,
    cpu_ratio,
    gateway_config,
    logger_figures,
    markdown,
    sustained,
)

# --------------------------------------------------------------------------- accounting


def test_every_record_stored_is_accounted_for() -> None:
    acc = accounting(1000, 1000, {"written": 5.0}, {"written": 1005.0})
    assert acc["unaccounted"] == 0
    assert acc["accounted"] == 1000


def test_dropped_spilled_and_kernel_drops_count_as_accounted() -> None:
    before = {"dropped": 10.0, "spilled": 0.0, "replayed": 0.0, "background_dropped": 1.0}
    after = {"dropped": 310.0, "spilled": 200.0, "replayed": 150.0, "background_dropped": 6.0}
    acc = accounting(1000, 645, before, after)
    # 645 rows + 300 dropped + 50 spilled and not yet replayed + 5 dropped by the kernel
    assert (acc["dropped"], acc["spilled"], acc["replayed"], acc["background_dropped"]) == (300, 200, 150, 5)
    assert acc["unaccounted"] == 0


def test_missing_records_are_reported() -> None:
    acc = accounting(1000, 990, {}, {"dropped": 4.0})
    assert acc["unaccounted"] == 6


def test_requests_the_client_gave_up_on_may_or_may_not_be_recorded() -> None:
    # 100 requests timed out at the client: the gateway may still have answered and logged them
    assert accounting(900, 950, {}, {}, sent=1000)["unaccounted"] == 0
    assert accounting(900, 900, {}, {}, sent=1000)["unaccounted"] == 0
    assert accounting(900, 1010, {}, {}, sent=1000)["unaccounted"] == -10  # more records than requests
    assert accounting(900, 890, {}, {}, sent=1000)["unaccounted"] == 10


def test_answered_counts_every_http_answer() -> None:
    samples = [Sample(intended=0.0, status=200), Sample(intended=0.0, status=502), Sample(intended=0.0)]
    samples[2].error = "timeout"
    assert answered(RunResult(samples=samples, duration=1.0)) == 2


def test_logger_figures_from_the_status_answer() -> None:
    status = {
        "loggers": [
            {"name": "stdout", "index": 0, "figures": {"written": 1}},
            {"name": "sql", "index": 0, "figures": {"queued": 3, "dropped": 2, "db_up": 1}},
        ]
    }
    assert logger_figures(status) == {"queued": 3.0, "dropped": 2.0, "db_up": 1.0}
    assert logger_figures({"loggers": []}) == {}


# --------------------------------------------------------------------------- CPU and rates


def test_cpu_ratio_is_median_over_median() -> None:
    assert cpu_ratio([1.10, 1.02, 1.06], [1.0, 0.9, 1.1]) == pytest.approx(1.06)
    assert math.isnan(cpu_ratio([], [1.0]))
    assert math.isnan(cpu_ratio([1.0], [0.0]))


def _run(p50: float, failed: int = 0, requests: int = 10_000) -> dict[str, object]:
    return {"requests": requests, "failed": failed, "latency": {"p50": p50, "p99": 900.0}}


def test_a_rate_is_sustained_when_the_median_stays_low_and_nothing_fails() -> None:
    assert sustained(_run(2.5))  # a burst of noise in the p99 does not count against it
    assert not sustained(_run(1800.0))  # open loop behind: the queue grows, the median with it
    assert not sustained(_run(2.5, failed=50))
    assert sustained(_run(2.5, failed=5))  # up to 0.1%
    assert not sustained(_run(math.nan))


# --------------------------------------------------------------------------- config and tables


def _load(text: str) -> dict[str, Any]:
    loaded: dict[str, Any] = YAML(typ="safe").load(text)
    return loaded


def test_gateway_config_with_and_without_the_sql_logger() -> None:
    plain = _load(gateway_config(9001))
    assert "loggers" not in plain
    assert plain["providers"]["up-openai"]["base_url"] == "http://127.0.0.1:9001/v1"
    logged = _load(gateway_config(9001, "postgresql://postgres@127.0.0.1:6000/db1", 1000))
    assert logged["loggers"] == [
        {"sql": {"url": "postgresql://postgres@127.0.0.1:6000/db1", "max_queue": 1000}}
    ]


def _timed(cpu_ms: float) -> dict[str, float]:
    return {
        "cpu_ms_per_request": cpu_ms,
        "gateway_cpu_share": 0.5,
        "p50": 1.0,
        "p99": 3.0,
        "added_p50": 0.5,
        "added_p99": 2.0,
        "answered": 60_000,
        "failed": 0,
    }


def test_markdown_tables() -> None:
    outage = {
        "max_queue": 1000,
        "outage_seconds": 10.0,
        "seconds": 60.0,
        "rate": 1000.0,
        "failed": 0,
        "latency": {"p99": 4.0},
        "drain_s": 3.2,
        "peak_queued": 1000.0,
        "accounting": {
            "answered": 60_000,
            "rows": 51_000,
            "dropped": 9_000,
            "spilled": 0,
            "replayed": 0,
            "background_dropped": 0,
            "unaccounted": 0,
        },
    }
    lane = {
        "cpu": {"1000": {"none": _timed(0.5), "sql": _timed(0.51), "ratio": 1.02, "sustained": True}},
        "outage": {"small_queue": outage},
    }
    text = markdown(lane)
    assert "| 1,000 | sql (PostgreSQL) | 510 | 50% |" in text
    assert "x1.020" in text
    assert (
        "| 1,000 | 10 s of 60 s at 1000/s | 60,000 | 0 | 4.00 | 51,000 | 9,000 | 0 | 0 | 0 | 1,000 |" in text
    )
    assert markdown({"skipped": "no PostgreSQL"}) == "request_log: skipped (no PostgreSQL)"


# --------------------------------------------------------------------------- the cut proxy


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


async def _roundtrip(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        return await reader.readexactly(len(payload))
    finally:
        writer.close()


async def test_the_proxy_forwards_is_cut_and_comes_back() -> None:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    proxy = CutProxy(port)
    await proxy.start()
    try:
        assert await _roundtrip(proxy.listen, b"hello") == b"hello"
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.listen)
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"ping"

        await proxy.cut()
        assert not proxy.listening
        assert await reader.read(10) == b""  # the open connection was closed
        writer.close()
        with pytest.raises(OSError):  # and nothing listens: new connections are refused
            await _roundtrip(proxy.listen, b"x")

        await proxy.start()
        assert proxy.listening
        assert await _roundtrip(proxy.listen, b"again") == b"again"
        assert proxy.cuts == 1 and proxy.closed_connections >= 2
    finally:
        await proxy.stop()
        server.close()
        await server.wait_closed()
