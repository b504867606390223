"""``python -m bench``: the gateway's load benchmark, every lane in one run.

It starts a lean fake upstream (:mod:`bench.upstream`), the gateway (``truckllm serve`` with a
generated config pointing at it), nginx when installed, and drives them from this process with
the open-loop generator of :mod:`bench.loadgen`. Every figure is a side-by-side comparison made in
the same run: the same requests sent straight to the upstream ("direct") and through the gateway;
"added" is gateway minus direct, percentile by percentile.

Lanes (``--lanes``; all by default):

- ``latency``: pass-through (OpenAI in, OpenAI upstream) added latency at concurrency 1 (closed
  loop) and at fixed rates (open loop, latency from the intended send time).
- ``throughput``: the frontier, the highest rate whose added p99 stays under ``--p99-budget`` ms
  (doubling, then bisection), with one worker and with two; closed-loop throughput at
  concurrency 50.
- ``translation``: OpenAI in, Anthropic (and Gemini) upstream out, against the same upstream
  called natively; skipped when the provider plugin is not installed.
- ``streaming``: added time to first token, added inter-event gap and added per-event transit
  time against streams paced at ``--stream-interval``; per dialect.
- ``responses``: OpenAI's Responses API beside chat, pass-through (OpenAI upstream) and translated
  (Anthropic upstream): added latency, concurrency-50 throughput, streams; ratios Responses / chat.
  Skipped when the ``responses`` dialect plugin is not installed.
- ``cache_affinity``: 200 multi-turn agent sessions over 8 keys of an upstream with a per-key
  prompt-prefix cache, with affinity off and on (and one key 429'd mid-run): the cached-token
  ratio against a single key, each key's share of requests, client errors,
  for an upstream reporting cached tokens as OpenAI, Anthropic and Gemini do, the targets checked on
  the worst of them (:mod:`bench.cache_affinity`; in process, about 50 s).
- ``request_log``: request records to PostgreSQL (the ``sql`` logger): the gateway's CPU per
  request with and without it at ``--log-rates`` (open loop, ``--log-seconds`` per run), rows
  stored against requests answered, and a database outage of ``--outage-seconds`` mid-load
  (:mod:`bench.request_log_lane`); skipped without PostgreSQL on 127.0.0.1:5432.
- ``upload``: a ``--upload-mb`` (200) MiB multipart upload (``POST /v1/audio/transcriptions``)
  through a fresh one-worker gateway to the test kit's fake OpenAI: the gateway's peak RSS growth
  (goal < 20 MB), MB/s, the upstream's bytes checked by SHA-256, no spooled file left
  (:mod:`bench.upload_lane`).
- ``replicas``: 4 one-worker gateways behind nginx (round robin) on one 6-node Redis Cluster, at
  ``--replicas-rate`` (2,000) req/s for ``--replicas-seconds``: latency, achieved rate, and the
  exactness checks (rpm to the request, budget never overspent, a 429's cooldown shared within a
  store round trip, usage identical from every replica) (:mod:`bench.replicas_lane`); skipped
  without ``redis-server`` or nginx.
- ``hold``: ``--hold-streams`` concurrent streams held open through the gateway; the gateway's
  RSS while it holds them.
- ``memory``: gateway RSS at idle, at plateau under a mixed load for ``--soak`` seconds, and after
  the load stops (leak check).
- ``nginx``: when nginx is installed: the gateway in front of nginx serving a static answer
  (a C upstream), and nginx as a bare reverse proxy (the floor any proxy hop costs here).
- ``profile``: py-spy samples the gateway under pass-through load; the top functions by own time.

Results print as tables and go to ``bench/results/latest.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import baseline, replicas_lane, upload_lane
from bench.harness import LANES, Settings, clean, frontier_text
from bench.lanes import Bench
from bench.procs import Procs
from bench.report import fmt, table
from bench.request_log_lane import markdown as request_log_markdown
from bench.responses_lane import HEADERS as RESPONSES_HEADERS
from bench.responses_lane import table_rows as responses_rows

__all__ = ["main", "parse_args"]


def parse_args(argv: Sequence[str] | None) -> Settings:
    """Settings from the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="TruckLLM load benchmark: added latency, throughput frontier, translation, "
        "streaming, held streams, memory; one run, side by side against the upstream alone.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        action="store_true",
        help="short steps (default; about 7 minutes, 3 of them the responses lane)",
    )
    mode.add_argument(
        "--full", action="store_true", help="longer steps and a finer search (about 15 minutes)"
    )
    parser.add_argument("--lanes", help=f"comma-separated subset of: {', '.join(LANES)}")
    parser.add_argument("--skip", help="comma-separated lanes not to run")
    parser.add_argument("--rates", help="fixed rates for the latency lane, req/s, e.g. 100,500,1000")
    parser.add_argument(
        "--compare-rate", type=float, help="fixed rate of the translation and nginx lanes (default 200)"
    )
    parser.add_argument("--rounds", type=int, help="direct/gateway alternations per comparison (default 2)")
    parser.add_argument("--c1-seconds", type=float, help="concurrency-1 run length")
    parser.add_argument("--rate-seconds", type=float, help="length of each fixed-rate run")
    parser.add_argument("--frontier-seconds", type=float, help="length of each frontier step")
    parser.add_argument("--frontier-start", type=float, help="first rate of the frontier search (req/s)")
    parser.add_argument("--frontier-max", type=float, help="highest rate the search tries")
    parser.add_argument(
        "--p99-budget", type=float, dest="p99_budget_ms", help="frontier criterion, added p99 ms"
    )
    parser.add_argument("--workers", help="gateway worker counts for the throughput lane (default 1,2)")
    parser.add_argument("--c50-seconds", type=float, help="closed-loop concurrency-50 run length")
    parser.add_argument("--stream-interval", type=float, help="seconds between stream events (default 0.02)")
    parser.add_argument("--stream-chunks", type=int, help="content events per stream in the streaming lane")
    parser.add_argument("--stream-seconds", type=float, help="length of each streaming run")
    parser.add_argument(
        "--repeat",
        type=int,
        dest="ttft_repeat",
        help="streaming lane: runs of the OpenAI stream comparison, each run's added TTFT p99 reported "
        "(the target must hold in every run; default 5)",
    )
    parser.add_argument("--hold-streams", type=int, help="streams to hold at once (default 10000)")
    parser.add_argument("--hold-seconds", type=float, help="how long to hold them once all are open")
    parser.add_argument(
        "--hold-interval", type=float, help="seconds between events of held streams (default 1)"
    )
    parser.add_argument(
        "--hold-ramp", type=float, help="new streams per second while ramping up (default 400)"
    )
    parser.add_argument(
        "--soak", type=float, dest="soak_seconds", help="memory soak length, s (600 for the leak check)"
    )
    parser.add_argument("--soak-rate", type=float, help="soak load, req/s (default 300)")
    parser.add_argument("--profile-seconds", type=float, help="py-spy sampling length")
    parser.add_argument(
        "--profile-rate",
        type=float,
        help="open-loop rate while profiling, req/s (default: closed loop, concurrency 50)",
    )
    parser.add_argument(
        "--log-rates", help="request_log lane: open-loop rate(s), req/s, comma-separated (default 2000)"
    )
    parser.add_argument(
        "--log-seconds", type=float, help="request_log lane: length of each run (quick 15, full 60)"
    )
    parser.add_argument(
        "--outage-seconds",
        type=float,
        dest="log_outage_seconds",
        help="request_log lane: database outage mid-run (quick 5, full 10)",
    )
    parser.add_argument("--upload-mb", type=int, help="upload lane: the file's size, MiB (default 200)")
    parser.add_argument(
        "--replicas-rate", type=float, help="replicas lane: total open-loop rate, req/s (default 2000)"
    )
    parser.add_argument(
        "--replicas-seconds", type=float, help="replicas lane: length of the run (default 10)"
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument(
        "--nice", type=int, help="nice value for every benchmark process (negative needs root)"
    )
    parser.add_argument(
        "--wait-idle",
        type=float,
        help="wait up to this many seconds for other programs to leave the CPUs alone before starting",
    )
    parser.add_argument(
        "--keys", action="store_true", help="configure a gateway key with rpm/tpm/budget (admission)"
    )
    parser.add_argument("--output", type=Path, help="JSON results path (default bench/results/latest.json)")
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR",
        help="another checkout of this repo (the 'before'): its gateway (same venv, PYTHONPATH on DIR's "
        "core, plugins and testing) runs beside this one, alternating, in the latency, throughput "
        "(concurrency 50), streaming (TTFT) and hold lanes; tables show before, after and the ratio",
    )
    args = parser.parse_args(argv)

    settings = Settings.full() if args.full else Settings()
    if args.lanes:
        settings.lanes = _lanes(parser, args.lanes)
    if args.skip:
        skip = set(_lanes(parser, args.skip))
        settings.lanes = tuple(lane for lane in settings.lanes if lane not in skip)
    if args.rates:
        settings.rates = tuple(float(r) for r in args.rates.split(","))
    if args.log_rates:
        settings.log_rates = tuple(float(r) for r in args.log_rates.split(","))
    if args.workers:
        settings.workers = tuple(int(w) for w in args.workers.split(","))
    for name in (
        "rounds",
        "compare_rate",
        "c1_seconds",
        "rate_seconds",
        "frontier_seconds",
        "frontier_start",
        "frontier_max",
        "p99_budget_ms",
        "c50_seconds",
        "stream_interval",
        "stream_chunks",
        "stream_seconds",
        "ttft_repeat",
        "hold_streams",
        "hold_seconds",
        "hold_interval",
        "hold_ramp",
        "soak_seconds",
        "soak_rate",
        "profile_seconds",
        "profile_rate",
        "log_seconds",
        "log_outage_seconds",
        "upload_mb",
        "replicas_rate",
        "replicas_seconds",
        "nice",
        "wait_idle",
        "output",
        "baseline",
    ):
        value = getattr(args, name)
        if value is not None:
            setattr(settings, name, value)
    settings.pin = not args.no_pin
    settings.keys = args.keys
    settings.rounds = max(1, settings.rounds)
    settings.ttft_repeat = max(1, settings.ttft_repeat)
    if settings.baseline is not None and not (settings.baseline / "core" / "truckllm").is_dir():
        parser.error(f"--baseline {settings.baseline}: not a checkout of this repo (no core/truckllm)")
    return settings


def _lanes(parser: argparse.ArgumentParser, text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in LANES]
    if unknown:
        parser.error(f"unknown lane(s) {', '.join(unknown)}; lanes: {', '.join(LANES)}")
    return names


def targets(lanes: dict[str, Any], s: Settings) -> list[dict[str, Any]]:
    """The figures the lead has to reach, with this run's value and verdict (and, with
    ``--baseline``, the baseline's value and verdict beside it)."""
    out: list[dict[str, Any]] = []

    def add(
        name: str,
        value: float | None,
        limit: float,
        higher_is_better: bool = False,
        unit: str = "ms",
        before: float | None = None,
        inclusive: bool = False,
    ) -> dict[str, Any]:
        sign = ">=" if higher_is_better else ("<=" if inclusive else "<")
        row: dict[str, Any] = {"target": name, "value": None, "limit": limit, "unit": unit, "met": None}
        row.update(sign=sign, higher=higher_is_better)
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            row.update(value=value, met=_meets(value, limit, sign))
        if before is not None and not (isinstance(before, float) and math.isnan(before)):
            row.update(before=before, before_met=_meets(before, limit, sign))
        out.append(row)
        return row

    c1 = lanes.get("latency", {}).get("concurrency_1")
    add(
        "pass-through added p50, concurrency 1",
        _at(c1, "added", "p50"),
        0.3,
        before=_at(c1, "before", "added", "p50"),
        inclusive=True,
    )
    add(
        "pass-through added p99, concurrency 1",
        _at(c1, "added", "p99"),
        2.0,
        before=_at(c1, "before", "added", "p99"),
    )
    c50 = _at(lanes, "throughput", "1", "concurrency_50")
    add(
        "throughput at concurrency 50, 1 worker",
        _at(c50, "rps", "gateway"),
        5000,
        higher_is_better=True,
        unit="req/s",
        before=_at(c50, "before", "rps", "gateway"),
    )
    runs = lanes.get("streaming", {}).get("ttft_runs") or []
    after_p99 = [r["added"]["p99"] for r in runs]
    before_p99 = [r["before"]["added"]["p99"] for r in runs if "before" in r]
    row = add(
        f"added TTFT p99 (20 ms paced stream), each of {len(runs) or s.ttft_repeat} run(s) (worst shown)",
        max(after_p99) if after_p99 else None,
        1.5,
        before=max(before_p99) if before_p99 else None,
    )
    row["runs"] = after_p99
    if before_p99:
        row["before_runs"] = before_p99
    hold = lanes.get("hold")
    if hold and "held_min" in hold:
        row = add(_hold_name(hold), _hold_rss(hold), 600, unit="MB", before=_hold_rss(hold.get("before")))
        row["held"] = hold["held_min"]
        row["met"] = bool(row["met"]) and _held_all(hold)
        if "before" in row:
            row["before_met"] = bool(row["before_met"]) and _held_all(hold["before"])
    else:
        add(f"{s.hold_streams:,} concurrent paced streams, RSS", None, 600, unit="MB")
    runs = lanes.get("cache_affinity", {}).get("runs", {})
    # the worst over the providers' ways of reporting cached tokens (OpenAI's runs are unprefixed)
    ons = [run for name, run in runs.items() if name.rsplit(" ", 1)[-1] == "on"]
    hits = [run for name, run in runs.items() if name.rsplit(" ", 1)[-1] == "on+429"]
    add(
        "affinity on: cached-token ratio vs one key (worst provider)",
        min(run["ratio_vs_single"] for run in ons) if ons else None,
        0.95,
        higher_is_better=True,
        unit="",
    )
    add(
        "affinity on: largest key share off even (worst provider)",
        max(run["max_share_deviation"] for run in ons) if ons else None,
        0.15,
        unit="",
    )
    add(
        "affinity on, a key 429'd mid-run: client errors (all providers)",
        sum(run["client_errors"] for run in hits) if hits else None,
        1,
        unit="",
    )
    log = lanes.get("request_log", {})
    rate = log.get("target_rate")
    cpu = log.get("cpu", {}).get(f"{rate:g}") if rate else None
    kept_up = "" if log.get("target_rate_sustained", True) else " (not sustained)"
    add(
        f"request log to PostgreSQL: CPU per request vs none, at {rate or 2000:,.0f} req/s{kept_up}",
        cpu["ratio"] if cpu else None,
        1.05,
        unit="x",
    )
    outages = list(log.get("outage", {}).values())
    add(
        "request log: failed requests during a database outage",
        sum(run["failed"] for run in outages) if outages else None,
        1,
        unit="",
    )
    add(
        "request log: records unaccounted for after the outage",
        sum(abs(run["accounting"]["unaccounted"]) for run in outages) if outages else None,
        1,
        unit="",
    )
    upload = lanes.get("upload")
    add(
        f"upload of {upload['upload_mb'] if upload else 200} MiB: gateway peak RSS growth",
        upload["peak_growth_mb"] if upload and upload["upstream_bytes_exact"] else None,
        upload_lane.GOAL_MB,
        unit="MB",
    )
    replicas = lanes.get("replicas") or {}
    checked = "checks" in replicas
    add(
        "4 replicas on one Redis Cluster: achieved req/s",
        replicas["achieved_rps"] if checked else None,
        2000,
        higher_is_better=True,
        unit="req/s",
    )
    add(
        "4 replicas: exactness checks failed (rpm, budget, cooldown, usage)",
        sum(not c["ok"] for c in replicas["checks"].values()) if checked else None,
        1,
        unit="",
    )
    mem = lanes.get("memory")
    if mem and "growth_mb" in mem:
        name = f"RSS flat during a {mem['seconds']:g} s soak (growth)"
        if mem["seconds"] < 600:
            name += " [short soak: use --soak 600]"
        add(name, mem["growth_mb"], 2.0, unit="MB")
    else:
        add("RSS flat after a 10-minute soak", None, 2.0, unit="MB")
    return out


def _meets(value: float, limit: float, sign: str) -> bool:
    return value >= limit if sign == ">=" else (value <= limit if sign == "<=" else value < limit)


def _at(tree: Any, *path: str) -> Any:
    """``tree[path[0]][path[1]]...``, ``None`` where something is missing."""
    for key in path:
        if not isinstance(tree, dict):
            return None
        tree = tree.get(key)
    return tree


def _held_all(hold: dict[str, Any]) -> bool:
    return bool(hold["held_min"] >= hold["target"] and not hold["failed"])


def _hold_rss(hold: dict[str, Any] | None) -> float | None:
    """The hold lane's RSS for the streams asked for: measured, or extrapolated when the open-file
    limit held fewer."""
    if not hold or "held_min" not in hold:
        return None
    if hold.get("asked", hold["target"]) > hold["target"]:
        return float(hold["rss_at_asked_mb"])
    return float(hold["rss_peak_mb"])


def _hold_name(hold: dict[str, Any]) -> str:
    asked, target = hold.get("asked", hold["target"]), hold["target"]
    name = f"{asked:,} concurrent paced streams, RSS"
    if asked > target:
        name += f" (extrapolated from {target:,}: the open-file limit)"
    return name


def print_targets(results: dict[str, Any]) -> None:
    """The closing summary: each target, this run's figure, met or not."""
    found = results.get("targets", [])
    with_before = any("before" in t for t in found)
    rows = []
    for t in found:
        extra = f" ({t['held']:,} held)" if "held" in t else ""
        row = [
            t["target"],
            f"{fmt(t['value'])} {t['unit']}{extra}",
            _goal(t),
            _verdict(t.get("met"), "NOT MET"),
        ]
        if with_before:
            row[1:1] = [_before_cell(t)]
        rows.append(row)
    headers = ["target", "this run", "goal", "verdict"]
    if with_before:
        headers = ["target", "before", "after", "goal", "verdict (after)"]
    print(table(headers, rows, "\ntargets"), flush=True)
    for note in results.get("notes", []):
        print(f"  note: {note}", flush=True)


def _goal(t: dict[str, Any]) -> str:
    sign = t.get("sign") or (">=" if t.get("higher") else "<")
    return f"{sign} {fmt(t['limit'])} {t['unit']}"


def _verdict(met: bool | None, failed: str) -> str:
    return "-" if met is None else ("met" if met else failed)


def _before_cell(t: dict[str, Any]) -> str:
    if "before" not in t:
        return "-"
    mark = "" if t.get("before_met") is None else (" (met)" if t["before_met"] else " (not met)")
    return f"{fmt(t['before'])} {t['unit']}{mark}"


def _md(headers: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 1) -> list[str]:
    align = ["---"] * left + ["---:"] * (len(headers) - left)
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    out += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return out


def markdown(results: dict[str, Any]) -> str:
    """The run's figures as Markdown tables (``bench/results/latest.md``), ready for the README."""
    lanes = results.get("lanes", {})
    m = results.get("machine", {})
    settings = results.get("settings", {})
    lines = [
        f"Run {results.get('started', '?')} ({settings.get('mode', '?')} mode, "
        f"{results.get('seconds', 0):.0f} s): {m.get('cpu', '?')}, {m.get('cpus', '?')} CPUs, "
        f"{m.get('memory_gib', '?')} GiB, Linux {m.get('kernel', '?')}, Python {m.get('python', '?')}; "
        f"{results.get('layout', '')}. All figures in ms unless said otherwise; "
        "added = gateway minus direct.",
        "",
    ]
    pairs = results.get("before_after")
    if pairs:
        base = results.get("baseline", {})
        lines.append(
            f"Before (`--baseline {base.get('dir', '?')}`, {base.get('commit', '?')}) and after "
            f"({results.get('current_commit', '?')}), the two gateways run in the same rounds, in "
            "alternating order:"
        )
        lines.append("")
        lines += _md(baseline.HEADERS, baseline.rows(pairs))
        lines.append("")
    rows: list[list[Any]] = []

    def lat(lane: str, run: str, res: dict[str, Any] | None) -> None:
        if not res or "added" not in res:
            return
        d, g, a = res["direct"], res["gateway"], res["added"]
        rows.append(
            [lane, run, d["p50"], d["p99"], g["p50"], g["p99"], a["p50"], a["p90"], a["p99"], a["max"]]
        )

    latency = lanes.get("latency", {})
    lat("pass-through", "concurrency 1", latency.get("concurrency_1"))
    for rate, res in latency.get("rates", {}).items():
        lat("pass-through", f"{rate} req/s", res)
    for dialect in ("anthropic", "gemini"):
        res = lanes.get("translation", {}).get(dialect, {})
        lat(f"OpenAI → {dialect}", "concurrency 1", res.get("concurrency_1"))
        if "rate" in res:
            lat(f"OpenAI → {dialect}", f"{res['rate']:g} req/s", res.get("fixed_rate"))
    streaming = lanes.get("streaming", {})
    for dialect in ("openai", "anthropic", "gemini"):
        res = streaming.get(dialect)
        if not res:
            continue
        name = "stream" if dialect == "openai" else f"stream OpenAI → {dialect}"
        lat(name, "time to first token", res["ttft"])
        lat(name, "inter-event gap", res["gap"])
        lat(name, "gap stretch (gap minus upstream gap)", res.get("gap_stretch"))
        lat(name, "event transit", res["transit"])
    nginx = lanes.get("nginx", {})
    for key, name in (("gateway_to_nginx", "gateway → nginx static"), ("nginx_proxy", "nginx proxy (floor)")):
        res = nginx.get(key)
        if res:
            lat(name, "concurrency 1", res["concurrency_1"])
            lat(name, f"{nginx['rate']:g} req/s", res["fixed_rate"])
    if rows:
        lines += _md(
            [
                "lane",
                "run",
                "direct p50",
                "direct p99",
                "gateway p50",
                "gateway p99",
                "added p50",
                "added p90",
                "added p99",
                "added max",
            ],
            rows,
            left=2,
        )
        lines.append("")
    throughput = lanes.get("throughput", {})
    keys = [k for k in throughput if k.isdigit()]
    if keys:
        budget = settings.get("p99_budget_ms", 5)
        trows = [
            [f"frontier, req/s (added p99 < {budget:g} ms)"] + [frontier_text(throughput[k]) for k in keys],
            ["concurrency 50, req/s"] + [throughput[k]["concurrency_50"]["rps"]["gateway"] for k in keys],
            ["concurrency 50, p50 / p99 ms"]
            + [
                f"{fmt(throughput[k]['concurrency_50']['gateway']['p50'])} / "
                f"{fmt(throughput[k]['concurrency_50']['gateway']['p99'])}"
                for k in keys
            ],
            ["gateway CPU at concurrency 50"]
            + [f"{throughput[k]['concurrency_50']['cpu'].get('gateway', 0):.0%}" for k in keys],
            ["RSS at idle, MB"] + [throughput[k].get("rss_idle_mb") for k in keys],
        ]
        direct = throughput[keys[0]]["concurrency_50"]["rps"]["direct"]
        lines += _md(["throughput"] + [f"{k} worker{'s' if k != '1' else ''}" for k in keys], trows)
        lines += [
            "",
            f"The load generator and the fake upstream alone: {fmt(direct)} req/s at concurrency 50.",
            "",
        ]
    rrows = responses_rows(lanes.get("responses", {}))
    if rrows:
        lines.append(
            "Responses API beside chat through the gateway (ms; ratio = Responses / chat; "
            f"streams of {lanes['responses'].get('stream_events', '?')} events):"
        )
        lines.append("")
        lines += _md(RESPONSES_HEADERS, rrows, left=2)
        lines.append("")
    crows = [
        [
            name,
            run["keys"],
            f"{run['cached_ratio']:.1%}",
            f"{run['ratio_vs_single']:.1%}",
            f"±{run['max_share_deviation']:.1%}",
            run["client_errors"],
        ]
        for name, run in lanes.get("cache_affinity", {}).get("runs", {}).items()
    ]
    if crows:
        lines.append("Prompt caches kept warm (cache_affinity; spread: largest key share off even):")
        lines.append("")
        lines += _md(["run", "keys", "cached tokens", "vs one key", "spread", "client errors"], crows)
        lines.append("")
    if lanes.get("request_log", {}).get("cpu"):
        lines.append(
            "Request records to PostgreSQL (request_log; CPU: the gateway process tree's, per answered "
            "request, median of the rounds; outage: the database cut mid-run):"
        )
        lines.append("")
        lines += [request_log_markdown(lanes["request_log"]), ""]
    upload = lanes.get("upload", {})
    if "peak_growth_mb" in upload:
        lines.append(
            f"A {upload['upload_mb']} MiB multipart upload through a one-worker gateway "
            f"({upload['mb_per_s']} MB/s; upstream bytes exact: {upload['upstream_bytes_exact']}; "
            f"spooled files left: {len(upload['spool_left'])}):"
        )
        lines.append("")
        lines += _md(
            ["upload", "RSS before MB", "peak after MB", "peak growth MB", "goal MB"],
            [
                [
                    f"{upload['upload_mb']} MiB",
                    upload["rss_before_mb"],
                    upload["hwm_after_mb"],
                    upload["peak_growth_mb"],
                    f"< {upload['goal_mb']:g}",
                ]
            ],
        )
        lines.append("")
    replicas = lanes.get("replicas", {})
    if "checks" in replicas:
        lines.append(
            "Four one-worker gateways behind nginx on one Redis Cluster (replicas; latency from the "
            "intended send, open loop; the exactness checks: (a) the rpm key's 200s / its rpm, (b) the "
            "budgeted key's 200s / its budget and its recorded spend, (c) hits on the 429'd provider key "
            "after its first 429, (d) usage successes = the upstream's 200s):"
        )
        lines.append("")
        lines += _md(replicas_lane.HEADERS, [replicas_lane.markdown_row(replicas)])
        lines.append("")
    hold, mem = lanes.get("hold", {}), lanes.get("memory", {})
    mrows = []
    if "rss_idle_start_mb" in results:
        mrows.append(["idle, after start (main gateway)", results.get("rss_idle_start_mb")])
    if "held_min" in hold:
        mrows.append(["fresh worker, before the streams", hold["rss_before_mb"]])
        mrows.append(
            [
                f"holding {hold['held_min']:,} of {hold['target']:,} streams "
                f"(one event / {hold['interval_s']:g} s)",
                hold["rss_peak_mb"],
            ]
        )
        mrows.append(["after those streams were closed", hold["rss_after_close_mb"]])
    if "growth_mb" in mem:
        mrows.append(["fresh worker, before the soak", mem["rss_idle_mb"]])
        mrows.append(
            [
                f"soak at {mem['rate']:g} req/s: after {mem['warmup_seconds']:g} s of warm-up",
                mem["rss_after_warmup_mb"],
            ]
        )
        mrows.append([f"soak: plateau over the {mem['seconds']:g} s measured", mem["rss_plateau_mb"]])
        mrows.append(["soak: 5 s after the load stopped", mem["rss_after_mb"]])
        mrows.append(["soak: growth (last quarter minus first quarter)", mem["growth_mb"]])
    if mrows:
        lines += _md(["gateway memory (one worker)", "RSS MB"], mrows)
        lines.append("")
    found = results.get("targets", [])
    with_before = any("before" in t for t in found)
    trows2 = []
    for t in found:
        row = [t["target"], f"{fmt(t['value'])} {t['unit']}", _goal(t), _verdict(t.get("met"), "**not met**")]
        if with_before:
            row[1:1] = [_before_cell(t)]
        trows2.append(row)
    if trows2:
        headers = ["target", "before", "after", "goal", "verdict (after)"] if with_before else None
        lines += _md(headers or ["target", "this run", "goal", "verdict"], trows2)
    notes = results.get("notes", [])
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def write_results(results: dict[str, Any], path: Path) -> None:
    """JSON to ``path`` (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(clean(results), indent=1) + "\n")
    path.with_suffix(".md").write_text(markdown(clean(results)))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when it ran (targets met or not), 1 when it could not run."""
    settings = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="truckllm-bench-"))
    procs = Procs(workdir, nice=settings.nice)

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # before and after the event loop; within it, Bench.interrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    bench = Bench(settings, procs, workdir)
    began = time.monotonic()
    try:
        try:
            import uvloop

            results = uvloop.run(bench.run())
        except ImportError:  # pragma: no cover - uvloop is a kernel dependency on Linux
            results = asyncio.run(bench.run())
        results["targets"] = targets(results["lanes"], settings)
        results["seconds"] = round(time.monotonic() - began, 1)
        write_results(results, settings.output)
        print_targets(results)
        print(f"\nresults: {settings.output} ({results['seconds']:.0f} s)", flush=True)
        return 0
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("\ninterrupted: stopping the benchmark's processes", file=sys.stderr, flush=True)
        return 130
    except RuntimeError as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr, flush=True)
        if bench.lanes:
            partial = {**bench.results, "lanes": bench.lanes, "notes": bench.notes, "error": str(exc)}
            write_results(partial, settings.output)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not stop the cleanup
        procs.close()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, previous)
        if os.environ.get("TRUCKLLM_BENCH_KEEP") != "1":
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"work folder kept: {workdir}", file=sys.stderr)
