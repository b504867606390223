"""The floors lane: what hypercorn + aiohttp alone cost *in time* on this machine.

``python -m bench.floor_lane`` starts the lean fake upstream (:mod:`bench.upstream`) and, in front
of it, one process per subject, all pinned like the latency lane's gateway (CPU 0 on a 2-CPU
machine; the upstream and this generator share the other CPU):

- ``direct``: no process in between, the requests go straight to the upstream;
- ``bare``: hypercorn (uvloop) answering a fixed chat completion (:mod:`bench.floors`): the HTTP
  server's hop alone;
- ``proxy``: hypercorn + one aiohttp session forwarding the body and relaying the answer: the
  least any hypercorn + aiohttp gateway can cost;
- ``proxy-stream``: the same, relaying the answer chunk by chunk as it arrives (the streaming
  floor);
- ``gateway``: ``truckllm serve``, one worker, one OpenAI deployment on the upstream (the config
  of :func:`bench.instructions.gateway_config`).

In rounds whose subject order rotates (so that a burst of noise from other programs spreads over
all of them) it measures, for every subject: latency at concurrency 1 (closed loop, from the send)
p50/p99 and added against ``direct``; closed-loop throughput at concurrency 50 (and the subject's
CPU per request there); and for ``proxy-stream`` and ``gateway``, ``--stream-runs`` runs of paced
streams (``--stream-chunks`` events ``--stream-interval`` apart, ``--stream-rate`` streams/s, open
loop): the added time to first token, p50 and p99 of each run. Each phase records the CPU share of
every process and of other programs on the machine. The issue-21 targets (added p50 at
concurrency 1, throughput at concurrency 50, added TTFT p99) are judged on every floor: a target
the floors miss cannot be met by any gateway on this stack and machine.

Table on stdout, JSON in ``bench/results/floors.json``. Also :func:`run_lane` for ``python -m
bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

from bench import loadgen
from bench.harness import CpuWatch, clean, comparison, latencies, merge, openai_body, ttfts
from bench.instructions import gateway_config
from bench.loadgen import RunResult, Target
from bench.procs import Layout, Proc, Procs, free_port
from bench.report import fmt, table

__all__ = [
    "FLOORS",
    "STREAM_SUBJECTS",
    "SUBJECTS",
    "TARGETS",
    "Options",
    "main",
    "measure",
    "run_lane",
    "verdicts",
]

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "floors.json"
SUBJECTS = ("direct", "bare", "proxy", "proxy-stream", "gateway")
"""Every subject, ``direct`` first (the others are compared with it)."""
FLOORS = ("bare", "proxy", "proxy-stream")
"""The subjects served by :mod:`bench.floors`."""
STREAM_SUBJECTS = ("proxy-stream", "gateway")
"""The subjects whose added time to first token is measured."""
TARGETS = {"c1_added_p50_ms": 0.3, "c50_rps": 5000.0, "ttft_added_p99_ms": 1.5}
"""Issue 21's targets: added p50 at concurrency 1 at most, req/s at concurrency 50 at least,
added stream TTFT p99 under."""
UPSTREAM_MODEL = "gpt-4o-mini"
_AUTH = (("authorization", "Bearer bench-key"),)


@dataclass
class Options:
    """What one run does (seconds are per subject and round unless said otherwise)."""

    subjects: tuple[str, ...] = SUBJECTS
    rounds: int = 3
    c1_seconds: float = 2.0
    c50_seconds: float = 2.0
    stream_runs: int = 5
    stream_seconds: float = 4.0
    """Per stream run and subject."""
    stream_rate: float = 50.0
    stream_chunks: int = 10
    stream_interval: float = 0.02
    pin: bool = True
    nice: int = 0
    """Nice value of every process the lane starts (negative needs root; the caller renices itself)."""
    warmup_seconds: float = 1.0

    def __post_init__(self) -> None:
        unknown = [s for s in self.subjects if s not in SUBJECTS]
        if unknown or "direct" not in self.subjects:
            raise ValueError(f"subjects must include direct and be among {SUBJECTS}; not {unknown}")


# --------------------------------------------------------------------------- targets


def target(subject: str, port: int, stream: bool = False, chunks: int | None = None) -> Target:
    """The benchmark's 1 KB chat request to ``subject`` on ``port``: the gateway's alias for the
    gateway, the upstream's model for the others (the floors forward the body unchanged)."""
    model = "bench-openai" if subject == "gateway" else UPSTREAM_MODEL
    return Target(
        name=subject,
        port=port,
        path="/v1/chat/completions",
        body=openai_body(model, stream, chunks),
        stream=stream,
        headers=_AUTH,
    )


def order(subjects: Sequence[str], round_index: int) -> list[str]:
    """``subjects`` rotated by ``round_index``: each takes every place in turn."""
    shift = round_index % len(subjects)
    return [*subjects[shift:], *subjects[:shift]]


# --------------------------------------------------------------------------- processes


@dataclass
class Servers:
    """The upstream and each subject's process, with the ports they listen on."""

    upstream: Proc
    ports: dict[str, int]
    procs: dict[str, Proc]

    def pids(self, subject: str) -> dict[str, int]:
        """The processes whose CPU share a run of ``subject`` records."""
        out = {"upstream": self.upstream.pid}
        if subject in self.procs:
            out["subject"] = self.procs[subject].pid
        return out


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    return env


async def _wait_http(proc: Proc, port: int, path: str, within: float = 90.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.log_tail()}")
        if await loadgen.request_once("127.0.0.1", port, "GET", path) != 0:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{proc.name} not answering on {port}:\n{proc.log_tail()}")


def _subject_argv(subject: str, port: int, upstream_url: str, workdir: Path) -> list[str]:
    if subject == "gateway":
        config = workdir / "gateway.yaml"
        config.write_text(gateway_config(port, upstream_url))
        return [sys.executable, "-m", "truckllm.cli", "serve", "--config", str(config), "--workers", "1"]
    return [sys.executable, "-m", "bench.floors", subject, str(port), f"{upstream_url}/v1/chat/completions"]


async def start(o: Options, procs: Procs, layout: Layout) -> Servers:
    """The upstream (its CPU) and every subject's server (the gateway's CPU), warmed up."""
    up_port = free_port()
    argv = [sys.executable, "-m", "bench.upstream", "--port", str(up_port)]
    argv += ["--interval", str(o.stream_interval), "--chunks", str(o.stream_chunks)]
    upstream = procs.start("upstream", argv, layout.upstream, _env(), str(REPO))
    await _wait_http(upstream, up_port, "/health")
    ports, started = {"direct": up_port}, {}
    for subject in o.subjects:
        if subject == "direct":
            continue
        port = free_port()
        argv = _subject_argv(subject, port, f"http://127.0.0.1:{up_port}", procs.workdir)
        started[subject] = procs.start(subject, argv, layout.gateway, _env(), str(REPO))
        ports[subject] = port
    for subject, proc in started.items():
        await _wait_http(proc, ports[subject], "/health")
    servers = Servers(upstream, ports, started)
    await _warm(o, servers)
    return servers


async def _warm(o: Options, servers: Servers) -> None:
    """Requests, plain and streamed, to every subject on many connections: imports, pools and
    caches happen before anything is measured; a subject that fails here stops the run."""
    for subject, port in servers.ports.items():
        for stream in (False, True):
            probe = target(subject, port, stream, 2 if stream else None)
            result = await loadgen.closed_loop([probe], 8, o.warmup_seconds, warmup=0.0)
            if result.errors or not result.samples:
                proc = servers.procs.get(subject, servers.upstream)
                raise RuntimeError(f"{subject}: warm-up requests fail:\n{proc.log_tail()}")


# --------------------------------------------------------------------------- phases


@dataclass
class Rounds:
    """What each round of a phase measured: per round, each subject's run and CPU shares."""

    runs: list[dict[str, RunResult]]
    cpu: list[dict[str, dict[str, float]]]

    def merged(self, subject: str) -> RunResult:
        """Every round of ``subject`` as one run."""
        return merge([r[subject] for r in self.runs])

    def mean_cpu(self, subject: str) -> dict[str, float]:
        """``subject``'s CPU shares, averaged over the rounds."""
        names = {k for c in self.cpu for k in c[subject]}
        return {k: round(sum(c[subject].get(k, 0.0) for c in self.cpu) / len(self.cpu), 3) for k in names}


async def _rounds(o: Options, servers: Servers, run: Callable[[str, int], Any]) -> Rounds:
    """``o.rounds`` rounds of ``run(subject, port)`` over every subject in rotating order."""
    out = Rounds([], [])
    for i in range(o.rounds):
        runs: dict[str, RunResult] = {}
        cpu: dict[str, dict[str, float]] = {}
        for subject in order(o.subjects, i):
            watch = CpuWatch(servers.pids(subject))
            runs[subject] = await run(subject, servers.ports[subject])
            cpu[subject] = watch.stop()
        out.runs.append(runs)
        out.cpu.append(cpu)
    return out


def _closed(r: RunResult) -> list[float]:
    return latencies(r, closed=True)


async def concurrency_1(o: Options, servers: Servers) -> dict[str, Any]:
    """Latency at concurrency 1 per subject, and added against ``direct`` (all rounds merged; and
    each round against its own direct run, the least disturbed round being the best figure)."""
    rounds = await _rounds(
        o,
        servers,
        lambda s, port: loadgen.closed_loop([target(s, port)], 1, o.c1_seconds, warmup=0.3),
    )
    out = {}
    for subject in o.subjects:
        res = comparison(rounds.merged("direct"), rounds.merged(subject), _closed)
        res["cpu"] = rounds.mean_cpu(subject)
        per_round = [comparison(r["direct"], r[subject], _closed)["added"]["p50"] for r in rounds.runs]
        res["added_p50_per_round"] = per_round
        res["added_p50_best_round"] = min(per_round)
        res["others_per_round"] = [c[subject].get("others", 0.0) for c in rounds.cpu]
        out[subject] = res
    return out


def _cpu_us(result: RunResult, cpu: dict[str, float]) -> float | None:
    """The subject's CPU per answer, in µs: its CPU share over the answers per second (the warm-up
    of the run is in the share; at a steady rate that does not change it)."""
    share = cpu.get("subject")
    rps = len(result.ok) / result.duration
    return 1e6 * share / rps if share and rps else None


async def concurrency_50(o: Options, servers: Servers) -> dict[str, Any]:
    """Closed-loop throughput at concurrency 50 per subject, with the subject's CPU per answer."""
    rounds = await _rounds(
        o,
        servers,
        lambda s, port: loadgen.closed_loop([target(s, port)], 50, o.c50_seconds, warmup=0.5),
    )
    out = {}
    for subject in o.subjects:
        result = rounds.merged(subject)
        cpu = rounds.mean_cpu(subject)
        cpu_us = _cpu_us(result, cpu)
        per_round = [_cpu_us(r[subject], c[subject]) for r, c in zip(rounds.runs, rounds.cpu, strict=True)]
        best = min((v for v in per_round if v), default=None)
        out[subject] = {
            "rps": len(result.ok) / result.duration,
            "rps_per_round": [len(r[subject].ok) / r[subject].duration for r in rounds.runs],
            "errors": result.errors,
            "latency": comparison(rounds.merged("direct"), result, _closed)["gateway"],
            "cpu": cpu,
            "others_per_round": [c[subject].get("others", 0.0) for c in rounds.cpu],
            "cpu_us_per_request": cpu_us,
            "cpu_us_per_request_per_round": per_round,
            # what one CPU would answer at the least CPU per answer of any round: the subject's own
            # ceiling (other programs inflate the CPU per answer far less than they cut the rate)
            "ceiling_rps": 1e6 / best if best else None,
        }
    return out


async def streams(o: Options, servers: Servers) -> dict[str, Any]:
    """``o.stream_runs`` runs of paced streams: per run, direct then each stream subject (in
    rotating order), the added TTFT of each."""
    subjects = [s for s in STREAM_SUBJECTS if s in o.subjects]
    runs: list[dict[str, Any]] = []
    for i in range(o.stream_runs):
        results: dict[str, RunResult] = {}
        cpu: dict[str, dict[str, float]] = {}
        for subject in ["direct", *order(subjects, i)]:
            probe = target(subject, servers.ports[subject], True, o.stream_chunks)
            watch = CpuWatch(servers.pids(subject))
            results[subject] = await loadgen.open_loop(
                [probe], o.stream_rate, o.stream_seconds, warmup=0.5, record_events=True
            )
            cpu[subject] = watch.stop()
        run: dict[str, Any] = {}
        for subject in subjects:
            res = comparison(results["direct"], results[subject], ttfts)
            res["cpu"] = cpu[subject]
            res["events"] = _events(results[subject], o.stream_chunks)
            run[subject] = res
        run["direct_cpu"] = cpu["direct"]
        runs.append(run)
    return {
        "runs": runs,
        "added_p99_per_run": {s: [r[s]["added"]["p99"] for r in runs] for s in subjects},
        "added_p50_per_run": {s: [r[s]["added"]["p50"] for r in runs] for s in subjects},
    }


def _events(result: RunResult, chunks: int) -> dict[str, int]:
    """Content events received against expected (every stream's ``chunks``)."""
    ok = [s for s in result.samples if s.ok]
    return {"received": sum(len(s.events or ()) for s in ok), "expected": chunks * len(ok)}


# --------------------------------------------------------------------------- verdicts


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def verdicts(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """Each issue-21 target on each measured subject but ``direct``: the figure and whether it is
    met (TTFT: the median of the runs' p99 and the worst run)."""
    out: list[dict[str, Any]] = []
    for subject, res in figures.get("concurrency_1", {}).items():
        if subject != "direct":
            limit = TARGETS["c1_added_p50_ms"]
            value = res["added"]["p50"]
            out.append(_verdict(subject, "c1 added p50 ms", value, value <= limit))
            if "added_p50_best_round" in res:
                best = res["added_p50_best_round"]
                out.append(_verdict(subject, "c1 added p50 ms (best round)", best, best <= limit))
    for subject, res in figures.get("concurrency_50", {}).items():
        if subject != "direct":
            out.append(_verdict(subject, "c50 req/s", res["rps"], res["rps"] >= TARGETS["c50_rps"]))
            if res.get("ceiling_rps"):
                ceiling = res["ceiling_rps"]
                out.append(
                    _verdict(
                        subject,
                        "c50 1-CPU ceiling req/s (best round)",
                        ceiling,
                        ceiling >= TARGETS["c50_rps"],
                    )
                )
    for subject, p99s in figures.get("streams", {}).get("added_p99_per_run", {}).items():
        if p99s:
            median, worst = _median(p99s), max(p99s)
            limit = TARGETS["ttft_added_p99_ms"]
            out.append(_verdict(subject, "ttft added p99 ms (median of runs)", median, median < limit))
            out.append(_verdict(subject, "ttft added p99 ms (worst run)", worst, worst < limit))
    return out


def _verdict(subject: str, what: str, value: float, met: bool) -> dict[str, Any]:
    return {"subject": subject, "target": what, "value": value, "met": met}


# --------------------------------------------------------------------------- the run


async def measure(
    o: Options, workdir: Path, say: Callable[[str], object] = print, layout: Layout | None = None
) -> dict[str, Any]:
    """One run of the lane in ``workdir``: every figure, the targets' verdicts; said as tables.

    ``layout``: the CPUs of each role, chosen before this process pinned itself (by default
    chosen now, from the CPUs this process may use)."""
    layout = layout or Layout.choose(o.pin)
    procs = Procs(workdir, nice=o.nice)
    try:
        say(f"  floors: {', '.join(o.subjects)}; {layout.note}")
        servers = await start(o, procs, layout)
        figures: dict[str, Any] = {"options": asdict(o), "layout": layout.note}
        figures["concurrency_1"] = await concurrency_1(o, servers)
        figures["concurrency_50"] = await concurrency_50(o, servers)
        if any(s in o.subjects for s in STREAM_SUBJECTS) and o.stream_runs:
            figures["streams"] = await streams(o, servers)
    finally:
        procs.close()
    figures["targets"] = verdicts(figures)
    say(report(figures))
    return figures


HEADERS = [
    "subject",
    "c1 p50",
    "c1 p99",
    "added p50",
    "added p99",
    "best round added p50",
    "c50 req/s",
    "c50 subject CPU",
    "c50 CPU us/req",
    "1-CPU ceiling req/s (best round)",
    "others CPU c1/c50",
]
"""The columns of the main table."""


def rows(figures: dict[str, Any]) -> list[list[Any]]:
    """One row per subject under :data:`HEADERS`."""
    out = []
    c50 = figures["concurrency_50"]
    for subject, res in figures["concurrency_1"].items():
        others = f"{res['cpu'].get('others', 0.0):.0%} / {c50[subject]['cpu'].get('others', 0.0):.0%}"
        out.append(
            [
                subject,
                res["gateway"]["p50"],
                res["gateway"]["p99"],
                None if subject == "direct" else res["added"]["p50"],
                None if subject == "direct" else res["added"]["p99"],
                None if subject == "direct" else res["added_p50_best_round"],
                c50[subject]["rps"],
                c50[subject]["cpu"].get("subject"),
                c50[subject]["cpu_us_per_request"],
                c50[subject]["ceiling_rps"],
                others,
            ]
        )
    return out


def stream_rows(figures: dict[str, Any]) -> list[list[Any]]:
    """Per stream run and subject: direct and subject TTFT p50/p99, added p50/p99, events."""
    out = []
    for i, run in enumerate(figures.get("streams", {}).get("runs", []), 1):
        for subject, res in run.items():
            if subject == "direct_cpu":
                continue
            ev = res["events"]
            out.append(
                [
                    f"{i} {subject}",
                    res["direct"]["p50"],
                    res["direct"]["p99"],
                    res["gateway"]["p50"],
                    res["gateway"]["p99"],
                    res["added"]["p50"],
                    res["added"]["p99"],
                    f"{ev['received']}/{ev['expected']}",
                    f"{res['cpu'].get('others', 0.0):.0%}",
                ]
            )
    return out


def report(figures: dict[str, Any]) -> str:
    """The tables and the verdicts, as text."""
    o = figures["options"]
    parts = [
        table(
            HEADERS,
            rows(figures),
            f"\nfloors in time, ms ({o['rounds']} rounds of {o['c1_seconds']:g} s at concurrency 1 and "
            f"{o['c50_seconds']:g} s at 50 per subject; added = subject - direct)",
        )
    ]
    if figures.get("streams"):
        parts.append(
            table(
                [
                    "run subject",
                    "direct p50",
                    "p99",
                    "ttft p50",
                    "p99",
                    "added p50",
                    "added p99",
                    "events",
                    "others",
                ],
                stream_rows(figures),
                f"\nstream time to first token, ms ({o['stream_chunks']} events "
                f"{o['stream_interval'] * 1000:g} ms apart, {o['stream_rate']:g} streams/s, "
                f"{o['stream_seconds']:g} s per run and subject)",
            )
        )
    lines = ["\nissue 21 targets on each subject:"]
    for v in figures["targets"]:
        verdict = "met" if v["met"] else "MISSED"
        lines.append(f"  {v['subject']:<13} {v['target']:<36} {fmt(v['value']):>8}  {verdict}")
    parts.append("\n".join(lines))
    return "\n".join(parts)


async def run_lane(
    o: Options | None = None, say: Callable[[str], object] = print, layout: Layout | None = None
) -> dict[str, Any]:
    """The ``floors`` lane of ``python -m bench``: :func:`measure` in a temporary folder, JSON-safe.

    The caller pins itself to ``layout.loadgen`` (as ``python -m bench`` does) and passes the
    ``layout`` it chose before pinning itself; without one, it is chosen from this process's CPUs."""
    with tempfile.TemporaryDirectory(prefix="truckllm-bench-floors-") as workdir:
        figures = await measure(o or Options(), Path(workdir), say, layout)
    return cast(dict[str, Any], clean(figures))


def _renice(o: Options) -> None:
    """This process (the load generator) at ``o.nice`` too, in its own scheduling group (see
    :mod:`bench.procs`); when refused, every process stays at the default priority."""
    try:
        os.nice(o.nice)
    except OSError as exc:
        print(f"nice {o.nice} refused ({exc}); running at the default priority")
        o.nice = 0
        return
    with contextlib.suppress(OSError):
        Path("/proc/self/autogroup").write_text(f"{o.nice}\n")


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.floor_lane``: the tables on stdout, the figures in ``--json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    d = Options()
    parser.add_argument("--subjects", default=",".join(d.subjects), help=f"of {', '.join(SUBJECTS)}")
    parser.add_argument("--rounds", type=int, default=d.rounds)
    parser.add_argument("--c1-seconds", type=float, default=d.c1_seconds, help="per subject and round")
    parser.add_argument("--c50-seconds", type=float, default=d.c50_seconds, help="per subject and round")
    parser.add_argument("--stream-runs", type=int, default=d.stream_runs)
    parser.add_argument("--stream-seconds", type=float, default=d.stream_seconds, help="per run and subject")
    parser.add_argument("--stream-rate", type=float, default=d.stream_rate, help="streams/s")
    parser.add_argument("--stream-chunks", type=int, default=d.stream_chunks)
    parser.add_argument("--stream-interval", type=float, default=d.stream_interval, help="seconds")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument("--nice", type=int, default=0, help="nice value of every process (negative: root)")
    parser.add_argument("--json", type=Path, default=RESULTS, help="where the figures go")
    args = parser.parse_args(argv)
    o = Options(
        subjects=tuple(s.strip() for s in args.subjects.split(",") if s.strip()),
        rounds=args.rounds,
        c1_seconds=args.c1_seconds,
        c50_seconds=args.c50_seconds,
        stream_runs=args.stream_runs,
        stream_seconds=args.stream_seconds,
        stream_rate=args.stream_rate,
        stream_chunks=args.stream_chunks,
        stream_interval=args.stream_interval,
        pin=not args.no_pin,
        nice=args.nice,
    )
    layout = Layout.choose(o.pin)
    if layout.loadgen is not None:
        os.sched_setaffinity(0, layout.loadgen)
    if o.nice:
        _renice(o)
    try:
        import uvloop

        figures = uvloop.run(run_lane(o, layout=layout))
    except ImportError:  # pragma: no cover - uvloop is a kernel dependency on Linux
        figures = asyncio.run(run_lane(o, layout=layout))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nfigures in {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
