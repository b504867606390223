"""The floors lane (``bench/floor_lane.py``) and the streaming floor (``bench/floors.py``).

A short run of the lane (a few hundred requests per subject) must produce every figure for every
subject; the streaming floor must relay each chunk as it arrives. No timing is asserted: the
figures are checked for presence and consistency only.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import MutableMapping
from typing import Any

import aiohttp
import pytest

from bench import floor_lane
from bench.floor_lane import FLOORS, STREAM_SUBJECTS, SUBJECTS, Options, order, verdicts
from bench.floors import KINDS, proxy_stream_app


def _number(value: Any) -> bool:
    return isinstance(value, float | int) and not math.isnan(value)


@pytest.fixture(scope="module")
def figures() -> dict[str, Any]:
    o = Options(
        rounds=2,
        c1_seconds=0.3,
        c50_seconds=1.0,
        stream_runs=2,
        stream_seconds=0.5,
        stream_rate=40.0,
        stream_chunks=3,
        stream_interval=0.005,
        pin=False,
        warmup_seconds=0.3,
    )
    return asyncio.run(floor_lane.run_lane(o, say=lambda _: None))


@pytest.mark.timeout(300)
def test_every_subject_has_its_latency_and_throughput_figures(figures: dict[str, Any]) -> None:
    assert set(figures["concurrency_1"]) == set(SUBJECTS)
    assert set(figures["concurrency_50"]) == set(SUBJECTS)
    for subject in SUBJECTS:
        c1 = figures["concurrency_1"][subject]
        assert c1["errors"] == {"direct": 0, "gateway": 0}, subject
        assert c1["requests"]["gateway"] > 0
        assert all(_number(c1[k][p]) for k in ("direct", "gateway", "added") for p in ("p50", "p99"))
        assert "others" in c1["cpu"] and "upstream" in c1["cpu"]
        c50 = figures["concurrency_50"][subject]
        assert c50["errors"] == 0 and c50["rps"] > 0, subject
    for subject in SUBJECTS[1:]:
        assert "subject" in figures["concurrency_1"][subject]["cpu"]
        c50 = figures["concurrency_50"][subject]
        assert c50["cpu_us_per_request"] > 0 and c50["ceiling_rps"] > 0
        assert len(c50["cpu_us_per_request_per_round"]) == len(c50["rps_per_round"]) == 2
        assert len(figures["concurrency_1"][subject]["added_p50_per_round"]) == 2


@pytest.mark.timeout(300)
def test_the_stream_subjects_have_each_runs_ttft_and_every_event(figures: dict[str, Any]) -> None:
    runs = figures["streams"]["runs"]
    assert len(runs) == 2
    for run in runs:
        for subject in STREAM_SUBJECTS:
            res = run[subject]
            assert res["errors"] == {"direct": 0, "gateway": 0}
            assert _number(res["added"]["p50"]) and _number(res["added"]["p99"])
            assert res["events"]["received"] == res["events"]["expected"] > 0
    assert {s: len(v) for s, v in figures["streams"]["added_p99_per_run"].items()} == {
        s: 2 for s in STREAM_SUBJECTS
    }


@pytest.mark.timeout(300)
def test_every_target_is_judged_on_every_subject(figures: dict[str, Any]) -> None:
    judged = {(v["subject"], v["target"]) for v in figures["targets"]}
    for subject in SUBJECTS[1:]:
        assert (subject, "c1 added p50 ms") in judged
        assert (subject, "c50 req/s") in judged
    for subject in STREAM_SUBJECTS:
        assert (subject, "ttft added p99 ms (median of runs)") in judged
    assert all(isinstance(v["met"], bool) for v in figures["targets"])


def test_the_verdicts_follow_the_targets() -> None:
    figures = {
        "concurrency_1": {
            "direct": {},
            "bare": {"added": {"p50": 0.3}},
            "proxy": {"added": {"p50": 0.5}, "added_p50_best_round": 0.29},
        },
        "concurrency_50": {"bare": {"rps": 5000.0, "ceiling_rps": 4000.0}},
        "streams": {"added_p99_per_run": {"gateway": [1.0, 1.4, 2.0]}},
    }
    met = {(v["subject"], v["target"]): v["met"] for v in verdicts(figures)}
    assert met == {
        ("bare", "c1 added p50 ms"): True,
        ("proxy", "c1 added p50 ms"): False,
        ("proxy", "c1 added p50 ms (best round)"): True,
        ("bare", "c50 req/s"): True,
        ("bare", "c50 1-CPU ceiling req/s (best round)"): False,
        ("gateway", "ttft added p99 ms (median of runs)"): True,
        ("gateway", "ttft added p99 ms (worst run)"): False,
    }


def test_each_subject_takes_every_place_in_turn() -> None:
    assert [order("abc", i) for i in range(3)] == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]]


def test_the_options_need_the_direct_subject() -> None:
    with pytest.raises(ValueError):
        Options(subjects=("bare", "proxy"))
    assert set(FLOORS) == set(KINDS)


async def _chunked_upstream(release: asyncio.Event) -> tuple[asyncio.Server, int]:
    """An upstream that sends one chunk, waits for ``release``, then sends the last one."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        await reader.readexactly(length)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
            b"8\r\ndata: 1\n\r\n"
        )
        await writer.drain()
        await release.wait()
        writer.write(b"8\r\ndata: 2\n\r\n0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_the_streaming_floor_relays_each_chunk_as_it_arrives() -> None:
    async def scenario() -> list[Any]:
        release = asyncio.Event()
        server, port = await _chunked_upstream(release)
        sent: list[Any] = []
        first = asyncio.Event()
        inbox = [{"type": "http.request", "body": b"{}", "more_body": False}]

        async def receive() -> MutableMapping[str, Any]:
            return inbox.pop(0)

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)
            if message.get("body") == b"data: 1\n":
                first.set()

        async with aiohttp.ClientSession() as client:
            app = proxy_stream_app(f"http://127.0.0.1:{port}/v1/chat/completions", client)

            async def call() -> None:
                await app({"type": "http"}, receive, send)

            task = asyncio.create_task(call())
            await asyncio.wait_for(first.wait(), 10)
            relayed_before_release = list(sent)
            release.set()
            await asyncio.wait_for(task, 10)
        server.close()
        return [relayed_before_release, sent]

    before, after = asyncio.run(scenario())
    assert before[0]["status"] == 200
    assert (b"content-type", b"text/event-stream") in before[0]["headers"]
    assert [m.get("body") for m in before[1:]] == [b"data: 1\n"]
    assert [m.get("body") for m in after[1:]] == [b"data: 1\n", b"data: 2\n", b""]
    assert after[-1].get("more_body", False) is False
