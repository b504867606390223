"""Tests of the load benchmark's own parts: the fake upstream, the load generator, the report.

Plain tests (no ``benchmark`` fixture): ``make bench`` (``--benchmark-only``) skips them; run them
with ``.venv/bin/python -m pytest bench/test_bench_tool.py``. They use loopback only and take a
few seconds.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bench import loadgen
from bench.floors import bare_app, proxy_app
from bench.harness import (
    ANTHROPIC_MODEL,
    GEMINI_MODEL,
    OPENAI_MODEL,
    Ports,
    Settings,
    anthropic_body,
    gateway_config,
    gemini_body,
    openai_body,
    responses_body,
    stretches,
    top_functions,
    transits,
    ttfts,
)
from bench.instructions import SUBJECTS, read_total
from bench.instructions import gateway_config as instructions_gateway_config
from bench.loadgen import LoadClient, Sample, Target
from bench.report import percentile, summarize
from bench.upstream import TEXT, UpstreamOptions, start

STREAM_OPTIONS = UpstreamOptions(interval=0.005, chunks=4)


@pytest.fixture
async def upstream() -> AsyncIterator[int]:
    """The fake upstream in this event loop, on a free port."""
    server = await start("127.0.0.1", 0, STREAM_OPTIONS)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.close()
        await server.wait_closed()


def targets(port: int, stream: bool, chunks: int | None = None) -> dict[str, Target]:
    """One request per dialect, straight to the upstream."""
    action = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return {
        "openai": Target(
            "openai", port, "/v1/chat/completions", openai_body(OPENAI_MODEL, stream, chunks), stream
        ),
        "responses": Target(
            "responses", port, "/v1/responses", responses_body(OPENAI_MODEL, stream, chunks), stream
        ),
        "anthropic": Target(
            "anthropic", port, "/v1/messages", anthropic_body(ANTHROPIC_MODEL, stream, chunks or 256), stream
        ),
        "gemini": Target(
            "gemini", port, f"/v1beta/models/{GEMINI_MODEL}:{action}", gemini_body(chunks or 256), stream
        ),
    }


async def test_non_stream_answers(upstream: int) -> None:
    """Every dialect answers 200 with its fixed JSON body, on keep-alive connections."""
    for target in targets(upstream, stream=False).values():
        client = LoadClient("127.0.0.1", upstream, 1)
        for _ in range(3):
            client.submit(Sample(intended=loadgen.now()), target.payload())
            assert await client.drain(5.0) == 0
        assert [s.status for s in client.done] == [200, 200, 200]
        assert len(client.conns) == 1  # one connection, reused
        client.close()


async def test_answer_bodies_are_each_dialects_json(upstream: int) -> None:
    """The bodies parse, carry the fixed text and the requested model."""
    for name, target in targets(upstream, stream=False).items():
        reader, writer = await asyncio.open_connection("127.0.0.1", upstream)
        writer.write(target.payload().replace(b"HTTP/1.1\r\n", b"HTTP/1.1\r\nconnection: close\r\n", 1))
        raw = await reader.read()
        writer.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), name
        assert TEXT in json.dumps(json.loads(body)), name


@pytest.mark.parametrize("dialect", ["openai", "responses", "anthropic", "gemini"])
async def test_streams_are_paced_and_stamped(upstream: int, dialect: str) -> None:
    """``max_tokens`` content events, each stamped, ``interval`` apart; transit is small and positive."""
    target = targets(upstream, stream=True, chunks=6)[dialect]
    result = await loadgen.open_loop([target], 20, 0.3, warmup=0.0, record_events=True)
    assert result.errors == 0 and result.samples
    for sample in result.samples:
        assert sample.events is not None and len(sample.events) == 6
        assert sample.end - sample.ttft >= 5 * 0.005 * 0.9
    assert all(0 <= t < 0.5 for t in transits(result))
    assert all(abs(s) < 0.5 for s in stretches(result))
    assert len(ttfts(result)) == len(result.samples)


async def test_responses_answers_are_the_sdk_types(upstream: int) -> None:
    """The Responses answer and every event of its stream validate against the ``openai`` SDK's models,
    numbered from 0 (the gateway's pass-through relays them, the SDK reads them)."""
    from openai.types.responses import Response, ResponseStreamEvent
    from pydantic import TypeAdapter

    from truckllm_testing.fakes import parse_sse

    events: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
    async with aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{upstream}/v1/responses"
        async with http.post(url, data=responses_body(OPENAI_MODEL)) as resp:
            assert Response.model_validate(await resp.json()).output_text == TEXT
        async with http.post(url, data=responses_body(OPENAI_MODEL, True, 3)) as resp:
            raw = await resp.read()
    parsed = [e.json() for e in parse_sse(raw)]
    for data in parsed:
        events.validate_python(data)
    assert [e["sequence_number"] for e in parsed] == list(range(len(parsed)))
    kinds = [e["type"] for e in parsed]
    assert kinds.count("response.output_text.delta") == 3 and kinds[-1] == "response.completed"


async def test_model_suffix_sets_the_interval(upstream: int) -> None:
    """``-i<ms>`` in the model name paces that stream."""
    body = openai_body(f"{OPENAI_MODEL}-i40", True, 3)
    target = Target("openai", upstream, "/v1/chat/completions", body, True)
    result = await loadgen.closed_loop([target], 1, 0.2, warmup=0.0, record_events=True)
    sample = result.ok[0]
    assert sample.events is not None
    gaps = [b - a for (_, a), (_, b) in itertools.pairwise(sample.events)]
    assert gaps and min(gaps) >= 0.035


def test_a_closing_event_repeating_the_text_is_not_content() -> None:
    """Responses' ``output_text.done`` / ``response.completed`` carry every stamp again: not counted."""
    deltas = [f'data: {{"delta": "t{1000000 + i} "}}\n\n'.encode() for i in range(3)]
    done = b'data: {"text": "t1000000 t1000001 t1000002 "}\n\n'
    recorder = _Recorder()
    conn = loadgen._Conn(recorder)  # type: ignore[arg-type]
    conn.transport = _Transport()  # type: ignore[assignment]
    sample = Sample(intended=0.0, events=[])
    conn.start(sample, b"")
    conn.data_received(_chunked_response([*deltas, done, done]))
    assert [round(stamp * 1e9) for _, stamp in sample.events or []] == [1000000, 1000001, 1000002]


class _Recorder:
    """Stands in for :class:`LoadClient` to watch one connection's parser."""

    def __init__(self) -> None:
        self.finished: list[tuple[Sample, bool]] = []

    def _finished(self, conn: Any, sample: Sample, alive: bool) -> None:
        self.finished.append((sample, alive))

    def _lost(self, conn: Any) -> None:
        pass


class _Transport:
    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def _chunked_response(events: list[bytes]) -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events)
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        + body
        + b"0\r\n\r\n"
    )


@pytest.mark.parametrize("seed", range(20))
def test_chunked_parser_survives_any_split(seed: int) -> None:
    """Events and the end of a chunked body are found however the bytes are split."""
    events = [f'data: {{"text": "t{1000000 + i} "}}\n\n'.encode() for i in range(5)] + [b"data: [DONE]\n\n"]
    raw = _chunked_response(events)
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(raw)), k=min(len(raw) - 1, rng.randrange(1, 40))))
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    recorder = _Recorder()
    conn = loadgen._Conn(recorder)  # type: ignore[arg-type]
    conn.transport = _Transport()  # type: ignore[assignment]
    sample = Sample(intended=0.0, events=[])
    conn.start(sample, b"")
    for piece in pieces:
        conn.data_received(piece)
    assert [s for s, _ in recorder.finished] == [sample]
    assert sample.status == 200 and sample.ok
    assert [round(stamp * 1e9) for _, stamp in sample.events or []] == [1000000 + i for i in range(5)]


def test_content_length_response_and_close() -> None:
    """A ``content-length`` body ends the response; ``connection: close`` retires the connection."""
    recorder = _Recorder()
    conn = loadgen._Conn(recorder)  # type: ignore[arg-type]
    conn.transport = _Transport()  # type: ignore[assignment]
    sample = Sample(intended=0.0)
    conn.start(sample, b"")
    conn.data_received(b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 5\r\nConnection: close\r\n\r\nab")
    assert not recorder.finished
    conn.data_received(b"cde")
    assert recorder.finished == [(sample, False)]
    assert sample.status == 429 and not sample.ok


def test_only_loopback() -> None:
    """The generator refuses any address off the machine."""
    loadgen.check_loopback("127.0.0.1")
    loadgen.check_loopback("::1")
    with pytest.raises(ValueError):
        loadgen.check_loopback("10.0.0.1")
    with pytest.raises(ValueError):
        LoadClient("192.168.1.1", 80, 1)


async def test_open_loop_keeps_its_timetable(upstream: int) -> None:
    """Requests are sent on the schedule, and only the measured part is kept."""
    target = targets(upstream, stream=False)["openai"]
    result = await loadgen.open_loop([target], 200, 0.5, warmup=0.25)
    assert 95 <= len(result.samples) <= 105
    intended = sorted(s.intended for s in result.samples)
    spacing = [b - a for a, b in itertools.pairwise(intended)]
    assert all(abs(x - 0.005) < 1e-6 for x in spacing)
    assert result.errors == 0


def test_percentiles() -> None:
    """Nearest rank; summaries in ms."""
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    s = summarize([0.001, 0.002, 0.003])
    assert s["p50"] == pytest.approx(2.0) and s["max"] == pytest.approx(3.0) and s["n"] == 3


def test_top_functions() -> None:
    """Own time is the leaf frame; inclusive time counts a function once per stack."""
    collapsed = "\n".join(
        [
            'process 1:"python";run (asyncio/runners.py:118);handle (truckllm/endpoint.py:10) 30',
            'process 1:"python";run (asyncio/runners.py:118);handle (truckllm/endpoint.py:12);'
            "decode (truckllm/schemas.py:5) 20",
            'process 1:"python";run (asyncio/runners.py:120) 50',
        ]
    )
    top, total = top_functions(collapsed, 3)
    assert total == 100
    assert [(t["function"], t["own"]) for t in top] == [("run", 50), ("handle", 30), ("decode", 20)]
    assert top[1]["total_pct"] == pytest.approx(50.0)


def test_gateway_config_is_valid(tmp_path: Path) -> None:
    """The generated config passes ``truckllm validate``."""
    path = tmp_path / "gateway.yaml"
    settings = Settings()
    settings.keys = True
    path.write_text(gateway_config(Ports(), {"openai", "anthropic", "gemini"}, settings, nginx=True))
    truckllm = Path(sys.executable).parent / "truckllm"
    if not truckllm.exists():
        pytest.skip("no truckllm command in this environment")
    done = subprocess.run([str(truckllm), "validate", "--config", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_instruction_totals_are_read_from_a_callgrind_dump() -> None:
    assert read_total("events: Ir\nsummary: 1234567\n") == 1234567
    assert read_total("version: 1\ntotals: 42\n") == 42
    with pytest.raises(ValueError):
        read_total("events: Ir\n")


@pytest.mark.parametrize("anthropic", [False, True])
def test_instruction_count_gateway_config_is_valid(tmp_path: Path, anthropic: bool) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(instructions_gateway_config(8000, "http://127.0.0.1:9000", anthropic))
    truckllm = Path(sys.executable).parent / "truckllm"
    if not truckllm.exists():
        pytest.skip("no truckllm command in this environment")
    done = subprocess.run([str(truckllm), "validate", "--config", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert ("bench-anthropic" in path.read_text()) is anthropic


def test_instruction_subjects_pair_each_responses_request_with_its_chat_twin() -> None:
    """A Responses subject is compared with the chat subject of the same deployment and streaming."""
    for name, subject in SUBJECTS.items():
        if not name.startswith("responses"):
            continue
        twin = SUBJECTS[subject.base or ""]
        assert subject.path == "/v1/responses" and twin.path == "/v1/chat/completions"
        assert subject.anthropic is twin.anthropic
        body, twin_body = json.loads(subject.body), json.loads(twin.body)
        assert body["model"] == twin_body["model"] and body.get("stream") == twin_body.get("stream")
        if body.get("stream"):
            assert body["max_output_tokens"] == twin_body["max_tokens"] >= 16


async def _call(app: Any, body: bytes) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []
    incoming = [{"type": "http.request", "body": body[:10], "more_body": True}]
    incoming.append({"type": "http.request", "body": body[10:], "more_body": False})

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "http", "method": "POST", "path": "/v1/chat/completions"}, receive, send)
    start, whole = sent
    headers = dict(start["headers"])
    assert int(headers[b"content-length"]) == len(whole["body"])
    return start["status"], whole["body"]


async def test_floor_apps_answer_a_chat_completion(upstream: int) -> None:
    body = openai_body(OPENAI_MODEL)
    status, answer = await _call(bare_app(), body)
    assert status == 200 and json.loads(answer)["object"] == "chat.completion"
    async with aiohttp.ClientSession() as client:
        proxy = proxy_app(f"http://127.0.0.1:{upstream}/v1/chat/completions", client)
        status, relayed = await _call(proxy, body)
    assert status == 200 and relayed == answer  # the upstream's own fixed answer, relayed


# --------------------------------------------------------------------------- the responses lane


class _StubBench:
    """What :func:`bench.responses_lane._interleaved` needs of a :class:`bench.lanes.Bench`."""

    def __init__(self, rounds: int) -> None:
        self.s = Settings(rounds=rounds)

    def pids(self) -> dict[str, int]:
        return {}


async def test_responses_lane_interleaves_chat_and_responses_runs() -> None:
    """Every job runs once per round, in turn: noise cannot land on one API only."""
    from bench.responses_lane import _interleaved

    order: list[str] = []

    def job(key: str) -> Any:
        async def run() -> loadgen.RunResult:
            order.append(key)
            sample = Sample(intended=0.0, sent=0.0, end=0.001, status=200)
            return loadgen.RunResult(samples=[sample], duration=1.0, offered_rate=0.0, concurrency=1)

        return run

    keys = ["direct-chat", "gateway-chat", "gateway-responses"]
    merged, cpu = await _interleaved(_StubBench(3), {k: job(k) for k in keys})  # type: ignore[arg-type]
    assert order == keys * 3
    assert {k: len(r.samples) for k, r in merged.items()} == dict.fromkeys(keys, 3)
    assert set(cpu) == set(keys)


def _api(c1_p50: float, rps: float, ttft: float) -> dict[str, Any]:
    added = {"p50": c1_p50, "p99": 2 * c1_p50}
    return {
        "concurrency_1": {"gateway": {"p50": c1_p50 + 1}, "added": added, "errors": {"gateway": 0}},
        "fixed_rate": {"added": {"p99": 2 * c1_p50}, "errors": {"gateway": 1}},
        "concurrency_50": {"rps": rps, "cpu": {"gateway": 0.9}},
        "stream": {"ttft": {"added": {"p50": ttft}}, "transit": {"added": {"p50": ttft / 2}}},
    }


def test_responses_lane_reports_ratios_beside_chat() -> None:
    """Chat, Responses and their ratio per route; a route that did not run is left out."""
    from bench.responses_lane import HEADERS, _ratios, table_rows

    chat, responses = _api(1.0, 1000.0, 2.0), _api(1.5, 800.0, 2.0)
    lane: dict[str, Any] = {
        "openai": {"chat": chat, "responses": responses, "ratio": _ratios(chat, responses)},
        "anthropic": {"skipped": "no anthropic provider plugin"},
    }
    rows = table_rows(lane)
    assert [row[:2] for row in rows] == [
        ["openai (pass-through)", "chat"],
        ["openai (pass-through)", "responses"],
        ["openai (pass-through)", "ratio"],
    ]
    ratio = dict(zip(HEADERS, rows[2], strict=True))
    assert ratio["c1 added p50"] == "x1.50" and ratio["c50 gw req/s"] == "x0.80"
    assert ratio["ttft added p50"] == "x1.00"
    assert rows[1][-1] == 1  # errors at c1 and at the fixed rate
    cleaned = json.loads(
        json.dumps({**lane["openai"], "ratio": {**lane["openai"]["ratio"], "c50_rps": None}})
    )
    assert dict(zip(HEADERS, table_rows({"openai": cleaned})[2], strict=True))["c50 gw req/s"] == "-"


# --------------------------------------------------------------------------- before / after (--baseline)


def _checkout(root: Path, with_plugins: bool = True) -> Path:
    """A stand-in checkout: the kernel, the OpenAI provider and the test kit, each an empty package."""
    packages = [("core", "truckllm"), ("testing", "truckllm_testing")]
    if with_plugins:
        packages.append(("plugins/truckllm-provider-openai", "truckllm_provider_openai"))
    for folder, package in packages:
        (root / folder / package).mkdir(parents=True)
        (root / folder / package / "__init__.py").write_text("")
    return root


def test_baseline_env_puts_the_other_checkout_first(tmp_path: Path) -> None:
    """Its kernel, every plugin folder and its test kit come before whatever PYTHONPATH held."""
    from bench.baseline import baseline_env, pythonpath

    root = _checkout(tmp_path / "before")
    (root / "plugins" / "truckllm-cache").mkdir()
    env = baseline_env(root, {"PYTHONPATH": "/somewhere", "HOME": "/root"})
    parts = env["PYTHONPATH"].split(":")
    assert parts == [*pythonpath(root), "/somewhere"]
    assert parts[0] == str(root / "core") and parts[-2] == str(root / "testing")
    assert {str(root / "plugins" / p) for p in ("truckllm-cache", "truckllm-provider-openai")} <= set(parts)
    assert env["HOME"] == "/root"


def test_baseline_process_imports_the_other_checkout(tmp_path: Path) -> None:
    """A process started the way the baseline gateway is imports the kernel, the provider and the
    test kit from the other checkout, not from this venv's editable installs."""
    from bench.baseline import baseline_env, verify

    root = _checkout(tmp_path / "before")
    info = verify(root, baseline_env(root, {}))
    assert info["dir"] == str(root.resolve())
    assert all(m.startswith(str(root.resolve())) for m in info["modules"])
    assert info["modules"][0].endswith("core/truckllm/__init__.py")


def test_baseline_check_refuses_code_from_elsewhere(tmp_path: Path) -> None:
    """A checkout without the provider plugin would run this venv's: refused, and so is a folder
    that is no checkout at all."""
    from bench.baseline import baseline_env, verify

    root = _checkout(tmp_path / "before", with_plugins=False)
    with pytest.raises(RuntimeError, match=r"from elsewhere|cannot import"):
        verify(root, baseline_env(root, {}))
    with pytest.raises(RuntimeError, match="not a checkout"):
        verify(tmp_path / "nothing", {})


def test_parse_args_baseline_and_repeat(tmp_path: Path) -> None:
    """``--baseline DIR`` must be a checkout; ``--repeat`` sets the streaming lane's runs."""
    from bench.run import parse_args

    root = _checkout(tmp_path / "before")
    settings = parse_args(["--baseline", str(root), "--repeat", "5", "--hold-streams", "300"])
    assert settings.baseline == root and settings.ttft_repeat == 5 and settings.hold_streams == 300
    assert parse_args([]).baseline is None and parse_args(["--repeat", "0"]).ttft_repeat == 1
    with pytest.raises(SystemExit):
        parse_args(["--baseline", str(tmp_path / "nothing")])


async def test_compare_alternates_baseline_and_current(tmp_path: Path) -> None:
    """Each round runs the direct side, then both gateways, the baseline first in even rounds and
    last in odd ones; the baseline's figures go to ``before``, against the same direct runs."""
    from bench.lanes import Bench
    from bench.procs import Procs

    bench = Bench(Settings(rounds=3, pin=False), Procs(tmp_path), tmp_path)
    order: list[str] = []

    def job(key: str, seconds: float) -> Any:
        async def run() -> loadgen.RunResult:
            order.append(key)
            sample = Sample(intended=0.0, sent=0.0, end=seconds, status=200)
            return loadgen.RunResult(samples=[sample], duration=1.0, concurrency=1)

        return run

    res, _, _ = await bench.compare(
        job("direct", 0.001),
        job("after", 0.003),
        lambda r: [s.end - s.sent for s in r.samples],
        before=job("before", 0.005),
    )
    assert order == ["direct", "before", "after", "direct", "after", "before", "direct", "before", "after"]
    assert res["added"]["p50"] == pytest.approx(2.0)
    assert res["before"]["added"]["p50"] == pytest.approx(4.0)
    assert res["before"]["requests"]["gateway"] == 3
    order.clear()
    res, _, _ = await bench.compare(job("direct", 0.001), job("after", 0.003), lambda r: [0.0])
    assert order == ["direct", "after"] * 3 and "before" not in res


def _lanes_with_before() -> dict[str, Any]:
    def pair(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
        return {**after, "before": before}

    c1 = pair(
        {"added": {"p50": 0.25, "p99": 1.0}, "gateway": {"p50": 0.5}},
        {"added": {"p50": 0.5, "p99": 2.5}, "gateway": {"p50": 0.75}},
    )
    c50 = pair(
        {"rps": {"gateway": 5200.0}, "gateway": {"p50": 9.0, "p99": 20.0}}, {"rps": {"gateway": 4000.0}}
    )
    runs = [
        {"added": {"p99": p}, "before": {"added": {"p99": b}}}
        for p, b in ((1.0, 2.0), (1.4, 0.0), (1.2, 3.0))
    ]
    hold = {
        "target": 9968,
        "asked": 10000,
        "held_min": 9968,
        "failed": 0,
        "rss_peak_mb": 560.0,
        "rss_at_asked_mb": 561.5,
        "rss_before_mb": 120.0,
        "rss_per_stream_kb": 45.0,
        "ttft_ms": {"p99": 30.0},
    }
    hold["before"] = {**hold, "held_min": 9000, "rss_at_asked_mb": 700.0}
    return {
        "latency": {"concurrency_1": c1, "rates": {}},
        "throughput": {"1": {"concurrency_50": c50}},
        "streaming": {"ttft_runs": runs, "openai": {"ttft": {"added": {"p50": 0.4}}}},
        "hold": hold,
    }


def test_before_after_figures_and_ratios() -> None:
    """Every pair found in the lanes, in lane order, with after / before (none when before <= 0)."""
    from bench.baseline import figures, rows

    found = {f["figure"]: f for f in figures(_lanes_with_before())}
    c1 = found["pass-through added p50, concurrency 1, ms"]
    assert (c1["before"], c1["after"], c1["ratio"]) == (0.5, 0.25, 0.5)
    assert found["throughput at concurrency 50, 1 worker, req/s"]["ratio"] == pytest.approx(1.3)
    assert found["concurrency 50 gateway p50, ms"]["before"] is None  # the baseline has no such figure
    assert [k for k in found if k.startswith("added TTFT p99")] == [
        f"added TTFT p99, run {i} of 3, ms" for i in (1, 2, 3)
    ]
    assert found["added TTFT p99, run 2 of 3, ms"]["ratio"] is None  # before 0: no ratio
    assert "added TTFT p50, ms" not in found  # only the runs carry a baseline
    assert found["streams held (of 9,968)"]["before"] == 9000
    table_rows = rows(figures(_lanes_with_before(), only=["latency"]))
    assert table_rows[0] == ["pass-through added p50, concurrency 1, ms", 0.5, 0.25, "x0.50"]
    assert figures({"latency": {"concurrency_1": {"added": {"p50": 1.0}}}}) == []  # no baseline: no pairs


def test_targets_show_before_and_after() -> None:
    """Issue 21's goals: added p50 <= 0.3 ms, >= 5,000 req/s, TTFT p99 < 1.5 ms in every run, 10,000
    streams < 600 MB (extrapolated when the open-file limit held fewer); each with the baseline's."""
    from bench.run import markdown, targets

    found = {t["target"].split(",")[0]: t for t in targets(_lanes_with_before(), Settings())}
    p50 = found["pass-through added p50"]
    assert (p50["sign"], p50["limit"], p50["met"], p50["before"], p50["before_met"]) == (
        "<=",
        0.3,
        True,
        0.5,
        False,
    )
    c50 = found["throughput at concurrency 50"]
    assert (c50["sign"], c50["met"], c50["before_met"]) == (">=", True, False)
    ttft = found["added TTFT p99 (20 ms paced stream)"]
    assert (ttft["value"], ttft["met"], ttft["runs"], ttft["before"]) == (1.4, True, [1.0, 1.4, 1.2], 3.0)
    hold = found["10"]
    assert "extrapolated from 9,968" in hold["target"]
    assert (hold["value"], hold["met"], hold["before"], hold["before_met"]) == (561.5, True, 700.0, False)
    text = markdown({"lanes": {}, "targets": list(found.values())})
    assert "| target | before | after | goal | verdict (after) |" in text
    assert (
        "| pass-through added p50, concurrency 1 | 0.50 ms (not met) | 0.25 ms | <= 0.30 ms | met |" in text
    )


def test_cache_affinity_targets_take_the_worst_provider() -> None:
    """Issue 17's goals hold for every way of reporting cached tokens: the worst provider's ratio
    and spread are the ones judged, and client errors of every provider's 429 run count."""
    from bench.run import targets

    def run(ratio: float, spread: float, errors: int = 0) -> dict[str, float]:
        return {"ratio_vs_single": ratio, "max_share_deviation": spread, "client_errors": errors}

    lanes = {
        "cache_affinity": {
            "runs": {
                "single": run(1.0, 0.0),
                "off": run(0.8, 0.0),
                "on": run(0.99, 0.08),
                "on+429": run(0.98, 0.1),
                "anthropic on": run(0.94, 0.12),
                "anthropic on+429": run(0.97, 0.2, errors=2),
                "gemini on": run(0.99, 0.16),
            }
        }
    }
    found = {
        t["target"].split(":")[1].split("(")[0].strip(): t
        for t in targets(lanes, Settings())
        if t["target"].startswith("affinity on")
    }
    assert (
        found["cached-token ratio vs one key"]["value"],
        found["cached-token ratio vs one key"]["met"],
    ) == (
        0.94,
        False,
    )
    assert (found["largest key share off even"]["value"], found["largest key share off even"]["met"]) == (
        0.16,
        False,
    )
    assert found["client errors"]["value"] == 2


def test_hold_capacity_and_open_file_limit() -> None:
    """Two sockets per held stream in the gateway, plus a reserve; the limit is raised as far as allowed."""
    import resource

    from bench.lanes import HOLD_FD_RESERVE, hold_capacity
    from bench.procs import raise_nofile

    assert hold_capacity(2000, 20000) == 2000
    assert hold_capacity(10000, 20000) == (20000 - HOLD_FD_RESERVE) // 2
    assert hold_capacity(10000, 10) == 1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert raise_nofile(soft) == soft
    assert raise_nofile() >= min(65536, hard) or raise_nofile() >= soft


def test_hold_memory_per_stream_sites() -> None:
    """The snapshot difference divided by the streams, by line and by stack."""
    import tracemalloc

    from bench.hold_memory import per_stream

    tracemalloc.start(10)
    try:
        before = tracemalloc.take_snapshot()
        kept = [bytearray(10_000) for _ in range(50)]
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    out = per_stream(before, after, 50, 5)
    assert len(kept) == 50
    assert out["python_bytes_per_stream"] >= 10_000
    top = out["by_line"][0]
    assert top["where"].endswith(f"test_bench_tool.py:{_line_of('kept = [bytearray')}")
    assert top["bytes_per_stream"] >= 10_000 and 1 <= top["blocks_per_stream"] <= 3
    assert out["by_stack"][0]["bytes_per_stream"] >= 10_000


def _line_of(text: str) -> int:
    lines = Path(__file__).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line and "_line_of" not in line)
