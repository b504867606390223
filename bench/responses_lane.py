"""The ``responses`` lane: OpenAI's Responses API through the gateway, measured beside chat.

Two routes, each with chat and with Responses in, alternating direct and gateway runs like every
other lane:

- ``openai`` (pass-through): ``POST /v1/responses`` to the ``bench-openai`` alias, relayed to the
  upstream's ``/v1/responses``; direct is the same request sent there. Chat is the usual
  ``/v1/chat/completions`` pair.
- ``anthropic`` (translated): ``POST /v1/responses`` to ``bench-anthropic``, translated to
  ``/v1/messages``; direct is the upstream called natively (the same direct as chat's, measured
  once). Skipped when no Anthropic provider plugin is installed.

Per API: added latency at concurrency 1 and at ``--compare-rate``, the gateway's closed-loop
throughput at concurrency 50 (and its CPU share), and for streams (``max(16, --stream-chunks)``
events, the Responses API's least ``max_output_tokens``) added time to first token and per-event
transit. The ratios are Responses over chat. Chat and Responses runs are interleaved round by
round (``--rounds``), so that other programs' noise hits both alike. The lane is skipped when
``truckllm plugins`` lists no ``responses`` dialect.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from bench import loadgen
from bench.harness import (
    CLIENT_HEADERS,
    OPENAI_MODEL,
    CpuWatch,
    comparison,
    first_error,
    latencies,
    merge,
    responses_body,
    transits,
    ttfts,
)
from bench.loadgen import RunResult, Target
from bench.report import table

if TYPE_CHECKING:
    from bench.lanes import Bench

__all__ = ["HEADERS", "ROUTES", "lane_responses", "responses_target", "table_rows"]

ROUTES = (("openai", "pass-through"), ("anthropic", "translated"))
"""(upstream dialect, what the gateway does with a Responses request to it)."""
APIS = ("chat", "responses")
MIN_STREAM_EVENTS = 16


def responses_target(port: int, model: str, via_gateway: bool, stream: bool, chunks: int | None) -> Target:
    """``POST /v1/responses``: through the gateway (client key) or straight to the upstream."""
    return Target(
        name="responses",
        port=port,
        path="/v1/responses",
        body=responses_body(model, stream, chunks),
        stream=stream,
        headers=CLIENT_HEADERS if via_gateway else (("authorization", "Bearer bench-key"),),
    )


def _pair(bench: Bench, dialect: str, api: str, stream: bool, chunks: int | None) -> tuple[Target, Target]:
    """(direct, gateway) targets of one route and API."""
    direct, gateway = bench.dialect_targets(dialect, stream, chunks)
    if api == "chat":
        return direct, gateway
    through = responses_target(bench.ports.gateway, f"bench-{dialect}", True, stream, chunks)
    if dialect == "openai":
        direct = responses_target(bench.ports.upstream, OPENAI_MODEL, False, stream, chunks)
    return direct, through


Job = Callable[[], Awaitable[RunResult]]


async def _interleaved(bench: Bench, jobs: dict[str, Job]) -> tuple[dict[str, RunResult], dict[str, float]]:
    """Run every job once per round (``--rounds``), in turn, so that a burst of noise from other
    programs hits chat and Responses alike; merged results and each job's mean gateway CPU share."""
    runs: dict[str, list[RunResult]] = {key: [] for key in jobs}
    cpu: dict[str, float] = dict.fromkeys(jobs, 0.0)
    rounds = bench.s.rounds
    for _ in range(rounds):
        for key, job in jobs.items():
            watch = CpuWatch(bench.pids())
            runs[key].append(await job())
            cpu[key] += watch.stop().get("gateway", 0.0) / rounds
    return {key: merge(results) for key, results in runs.items()}, cpu


def _jobs(
    bench: Bench, dialect: str, stream: bool, chunks: int | None, run: Callable[[Target], Job]
) -> dict[str, Job]:
    """``direct-chat``, ``gateway-chat``, ``gateway-responses`` and, for the pass-through,
    ``direct-responses`` (translated, both APIs share the native direct request)."""
    jobs: dict[str, Job] = {}
    for api in APIS:
        direct, gateway = _pair(bench, dialect, api, stream, chunks)
        if api == "chat" or dialect == "openai":
            jobs[f"direct-{api}"] = run(direct)
        jobs[f"gateway-{api}"] = run(gateway)
    return jobs


def _split(
    bench: Bench, label: str, results: dict[str, RunResult], metric: Callable[[RunResult], list[float]]
) -> dict[str, dict[str, Any]]:
    """Per API, the direct vs gateway comparison (with the failures noted)."""
    out = {}
    for api in APIS:
        direct = results.get(f"direct-{api}", results["direct-chat"])
        gateway = results[f"gateway-{api}"]
        out[api] = comparison(direct, gateway, metric)
        bench.check_errors(f"{label} {api}", out[api], direct, gateway)
    return out


async def _measure(bench: Bench, dialect: str, chunks: int) -> dict[str, dict[str, Any]]:
    """Every figure of one route, for chat and for Responses, their runs interleaved."""
    s = bench.s
    label = f"responses lane, {dialect}"
    per_round = s.c1_seconds / s.rounds
    results, _ = await _interleaved(
        bench,
        _jobs(
            bench, dialect, False, None, lambda t: partial(loadgen.closed_loop, [t], 1, per_round, warmup=0.3)
        ),
    )
    c1 = _split(bench, f"{label} c1", results, lambda r: latencies(r, closed=True))
    rate, per_round = s.compare_rate, s.rate_seconds / s.rounds
    results, _ = await _interleaved(
        bench,
        _jobs(
            bench,
            dialect,
            False,
            None,
            lambda t: partial(loadgen.open_loop, [t], rate, per_round, warmup=0.5),
        ),
    )
    fixed = _split(bench, f"{label} {rate:g}/s", results, lambda r: latencies(r, closed=False))
    per_round = s.c50_seconds / s.rounds
    c50_jobs: dict[str, Job] = {
        f"gateway-{api}": partial(
            loadgen.closed_loop, [_pair(bench, dialect, api, False, None)[1]], 50, per_round, warmup=0.5
        )
        for api in APIS
    }
    c50, cpu = await _interleaved(bench, c50_jobs)
    per_round = s.stream_seconds / s.rounds
    results, _ = await _interleaved(
        bench,
        _jobs(
            bench,
            dialect,
            True,
            chunks,
            lambda t: partial(
                loadgen.open_loop, [t], s.stream_rate, per_round, warmup=0.5, record_events=True
            ),
        ),
    )
    ttft = _split(bench, f"{label} stream", results, ttfts)
    out: dict[str, dict[str, Any]] = {}
    for api in APIS:
        through = results[f"gateway-{api}"]
        events = sum(len(x.events or ()) for x in through.samples if x.ok)
        expected = chunks * sum(1 for x in through.samples if x.ok)
        if events != expected:
            bench.note(
                f"{label} {api} stream: {events} content events through the gateway, {expected} expected"
            )
        loaded = c50[f"gateway-{api}"]
        if loaded.errors:
            bench.note(f"{label} {api} concurrency 50: {loaded.errors} errors, e.g. {first_error(loaded)}")
        out[api] = {
            "concurrency_1": c1[api],
            "rate": rate,
            "fixed_rate": fixed[api],
            "concurrency_50": {
                "rps": len(loaded.ok) / loaded.duration if loaded.duration else 0.0,
                "errors": loaded.errors,
                "cpu": {"gateway": cpu[f"gateway-{api}"]},
            },
            "stream": {
                "events": chunks,
                "ttft": ttft[api],
                "transit": comparison(
                    results.get(f"direct-{api}", results["direct-chat"]), through, transits
                ),
            },
        }
    return out


def _ratio(responses: float, chat: float) -> float:
    return responses / chat if chat and not math.isnan(chat) and not math.isnan(responses) else math.nan


def _ratios(chat: dict[str, Any], responses: dict[str, Any]) -> dict[str, float]:
    """Responses over chat, figure by figure."""
    return {
        "c1_gateway_p50": _ratio(
            responses["concurrency_1"]["gateway"]["p50"], chat["concurrency_1"]["gateway"]["p50"]
        ),
        "c1_added_p50": _ratio(
            responses["concurrency_1"]["added"]["p50"], chat["concurrency_1"]["added"]["p50"]
        ),
        "rate_added_p99": _ratio(responses["fixed_rate"]["added"]["p99"], chat["fixed_rate"]["added"]["p99"]),
        "c50_rps": _ratio(responses["concurrency_50"]["rps"], chat["concurrency_50"]["rps"]),
        "ttft_added_p50": _ratio(
            responses["stream"]["ttft"]["added"]["p50"], chat["stream"]["ttft"]["added"]["p50"]
        ),
        "transit_added_p50": _ratio(
            responses["stream"]["transit"]["added"]["p50"], chat["stream"]["transit"]["added"]["p50"]
        ),
    }


def _row(label: str, api: str, res: dict[str, Any]) -> list[Any]:
    return [
        label,
        api,
        res["concurrency_1"]["gateway"]["p50"],
        res["concurrency_1"]["added"]["p50"],
        res["concurrency_1"]["added"]["p99"],
        res["fixed_rate"]["added"]["p99"],
        res["concurrency_50"]["rps"],
        f"{res['concurrency_50']['cpu'].get('gateway', math.nan):.0%}",
        res["stream"]["ttft"]["added"]["p50"],
        res["stream"]["transit"]["added"]["p50"],
        res["concurrency_1"]["errors"]["gateway"] + res["fixed_rate"]["errors"]["gateway"],
    ]


def _ratio_row(label: str, ratios: dict[str, float | None]) -> list[Any]:
    def x(key: str) -> str:
        value = ratios.get(key)
        return "-" if value is None or math.isnan(value) else f"x{value:.2f}"

    return [
        label,
        "ratio",
        x("c1_gateway_p50"),
        x("c1_added_p50"),
        "",
        x("rate_added_p99"),
        x("c50_rps"),
        "",
        x("ttft_added_p50"),
        x("transit_added_p50"),
        "",
    ]


HEADERS = [
    "route",
    "api",
    "c1 gw p50",
    "c1 added p50",
    "c1 added p99",
    "rate added p99",
    "c50 gw req/s",
    "gw CPU",
    "ttft added p50",
    "transit added p50",
    "errors",
]


def table_rows(lane: dict[str, Any]) -> list[list[Any]]:
    """The lane's table rows (chat, responses, ratio per route) from its results, saved or not."""
    rows: list[list[Any]] = []
    for dialect, route in ROUTES:
        res = lane.get(dialect)
        if not isinstance(res, dict) or "ratio" not in res:
            continue
        label = f"{dialect} ({route})"
        rows += [_row(label, api, res[api]) for api in APIS]
        rows.append(_ratio_row(label, res["ratio"]))
    return rows


async def lane_responses(bench: Bench) -> dict[str, Any]:
    """The lane: both routes, both APIs, and the ratios."""
    if "responses" not in bench.dialects:
        bench.note("responses lane: skipped, `truckllm plugins` lists no responses dialect")
        return {"skipped": "no responses dialect plugin"}
    chunks = max(MIN_STREAM_EVENTS, bench.s.stream_chunks)
    out: dict[str, Any] = {"stream_events": chunks}
    for dialect, route in ROUTES:
        if dialect != "openai" and dialect not in bench.providers:
            bench.note(f"responses lane, {route}: skipped, `truckllm plugins` lists no {dialect} provider")
            out[dialect] = {"skipped": f"no {dialect} provider plugin"}
            continue
        res: dict[str, Any] = await _measure(bench, dialect, chunks)
        res["ratio"] = _ratios(res["chat"], res["responses"])
        res["route"] = route
        out[dialect] = res
    bench.say(
        table(
            HEADERS,
            table_rows(out),
            f"\n(r) Responses API beside chat through the gateway, ms (ratio = responses / chat; "
            f"streams of {chunks} events, {bench.s.compare_rate:g} req/s fixed rate)",
        )
    )
    return out
