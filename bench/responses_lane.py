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
throughput at concurrency 50, and for streams (``max(16, --stream-chunks)`` events, the Responses
API's least ``max_output_tokens``) added time to first token and per-event transit. The ratios are
Responses over chat. The lane is skipped when ``truckllm plugins`` lists no ``responses`` dialect.
"""

from __future__ import annotations

import math
from functools import partial
from typing import TYPE_CHECKING, Any

from bench import loadgen
from bench.harness import (
    CLIENT_HEADERS,
    OPENAI_MODEL,
    CpuWatch,
    comparison,
    latencies,
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


async def _measure(
    bench: Bench, dialect: str, api: str, cached: dict[str, RunResult], chunks: int
) -> dict[str, Any]:
    """Every figure of one route and API; ``cached`` shares the translated route's direct runs."""
    s = bench.s
    label = f"responses lane {dialect} {api}"
    share = dialect != "openai"  # the same native direct request for chat and Responses
    direct, gateway = _pair(bench, dialect, api, False, None)
    half = s.c1_seconds / s.rounds
    c1, d, g = await bench.compare(
        partial(loadgen.closed_loop, [direct], 1, half, warmup=0.3),
        partial(loadgen.closed_loop, [gateway], 1, half, warmup=0.3),
        lambda r: latencies(r, closed=True),
        direct_cached=cached.get("c1") if share else None,
    )
    cached["c1"] = d
    bench.check_errors(f"{label} c1", c1, d, g)
    rate = s.compare_rate
    fixed, d, g = await bench.compare(
        partial(loadgen.open_loop, [direct], rate, s.rate_seconds / s.rounds, warmup=0.5),
        partial(loadgen.open_loop, [gateway], rate, s.rate_seconds / s.rounds, warmup=0.5),
        lambda r: latencies(r, closed=False),
        direct_cached=cached.get("rate") if share else None,
    )
    cached["rate"] = d
    bench.check_errors(f"{label} {rate:g}/s", fixed, d, g)
    watch = CpuWatch(bench.pids())
    c50 = await loadgen.closed_loop([gateway], 50, s.c50_seconds, warmup=1.0)
    cpu = watch.stop()
    if c50.errors:
        bench.note(f"{label} concurrency 50: {c50.errors} errors")
    direct, gateway = _pair(bench, dialect, api, True, chunks)
    length = s.stream_seconds / s.rounds
    ttft, d, g = await bench.compare(
        partial(loadgen.open_loop, [direct], s.stream_rate, length, warmup=0.5, record_events=True),
        partial(loadgen.open_loop, [gateway], s.stream_rate, length, warmup=0.5, record_events=True),
        ttfts,
        direct_cached=cached.get("stream") if share else None,
    )
    cached["stream"] = d
    bench.check_errors(f"{label} stream", ttft, d, g)
    events = sum(len(x.events or ()) for x in g.samples if x.ok)
    expected = chunks * sum(1 for x in g.samples if x.ok)
    if events != expected:
        bench.note(f"{label} stream: {events} content events through the gateway, {expected} expected")
    return {
        "concurrency_1": c1,
        "rate": rate,
        "fixed_rate": fixed,
        "concurrency_50": {
            "rps": len(c50.ok) / c50.duration if c50.duration else 0.0,
            "errors": c50.errors,
            "cpu": cpu,
        },
        "stream": {"events": chunks, "ttft": ttft, "transit": comparison(d, g, transits)},
    }


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
        cached: dict[str, RunResult] = {}
        res: dict[str, Any] = {api: await _measure(bench, dialect, api, cached, chunks) for api in APIS}
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
