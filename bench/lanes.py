"""The benchmark's lanes: one :class:`Bench` runs the processes and every selected lane."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Any

from bench import baseline, cache_affinity, loadgen, replicas_lane, request_log_lane, upload_lane
from bench.harness import (
    ANTHROPIC_MODEL,
    CLIENT_HEADERS,
    GEMINI_MODEL,
    LANES,
    MB,
    OPENAI_MODEL,
    REPO,
    CpuWatch,
    Ports,
    Settings,
    _slope,
    anthropic_body,
    clean,
    comparison,
    first_error,
    frontier_text,
    gaps,
    gateway_config,
    gemini_body,
    installed_dialects,
    installed_providers,
    latencies,
    merge,
    nginx_proxy_conf,
    nginx_static_conf,
    openai_body,
    send_lag,
    stretches,
    top_functions,
    transits,
    truckllm_command,
    ttfts,
)
from bench.loadgen import RunResult, Target
from bench.procs import (
    Layout,
    Proc,
    Procs,
    machine_info,
    nginx_binary,
    raise_nofile,
    rss_bytes,
    system_cpu,
)
from bench.report import fmt, summarize, table
from bench.responses_lane import lane_responses, responses_target
from bench.upstream import openai_answer

LATENCY_HEADERS = [
    "run",
    "direct p50",
    "direct p99",
    "gw p50",
    "gw p99",
    "added p50",
    "added p90",
    "added p99",
    "added max",
    "errors",
    "gw CPU",
]


HOLD_FD_RESERVE = 64
"""Open files a gateway worker needs besides its two sockets per held stream."""


def hold_capacity(streams: int, open_files: int) -> int:
    """How many of ``streams`` one gateway worker can hold under an open-file limit of
    ``open_files``: each costs it two sockets (the client's and the upstream's)."""
    return max(1, min(streams, (open_files - HOLD_FD_RESERVE) // 2))


def ttft_run(res: dict[str, Any]) -> dict[str, Any]:
    """One streaming run's added time to first token (and the baseline's, when it ran)."""
    run: dict[str, Any] = {"added": res["added"], "errors": res["errors"]["gateway"]}
    if "before" in res:
        run["before"] = {"added": res["before"]["added"], "errors": res["before"]["errors"]["gateway"]}
    return run


def ttft_text(run: dict[str, Any]) -> str:
    """``added p99 0.91 ms`` (``, before 1.20 ms`` with a baseline)."""
    text = f"added p99 {fmt(run['added']['p99'])} ms"
    if "before" in run:
        text += f", before {fmt(run['before']['added']['p99'])} ms"
    return text


# --------------------------------------------------------------------------- the run


class Bench:
    """One benchmark run: the processes, the lanes, the results."""

    def __init__(self, settings: Settings, procs: Procs, workdir: Path) -> None:
        self.s = settings
        self.procs = procs
        self.workdir = workdir
        self.ports = Ports()
        self.layout = Layout.choose(settings.pin, workers=max(settings.workers))
        self.truckllm = truckllm_command()
        self.providers: set[str] = set()
        self.dialects: set[str] = set()
        self.nginx = nginx_binary()
        self.upstream: Proc | None = None
        self.gateway: Proc | None = None
        self.before_gateway: Proc | None = None
        """``--baseline``: the other checkout's gateway, on ``ports.baseline``."""
        self.nginx_static: Proc | None = None
        self.nginx_proxy: Proc | None = None
        self.notes: list[str] = []
        self.results: dict[str, Any] = {}
        self.lanes: dict[str, Any] = {}
        self.frontier_cache: dict[float, RunResult] = {}
        self.interrupted = False

    # ---- output

    def say(self, text: str = "") -> None:
        """Progress on stdout, flushed."""
        print(text, flush=True)

    def note(self, text: str) -> None:
        """A caveat that goes into the results and the final report."""
        self.notes.append(text)
        self.say(f"  note: {text}")

    # ---- targets

    def openai_target(
        self, port: int, via_gateway: bool, stream: bool = False, chunks: int | None = None
    ) -> Target:
        """OpenAI chat: direct to the upstream, or through the gateway's ``bench-openai`` alias."""
        model = "bench-openai" if via_gateway else OPENAI_MODEL
        return Target(
            name="openai",
            port=port,
            path="/v1/chat/completions",
            body=openai_body(model, stream, chunks),
            stream=stream,
            headers=CLIENT_HEADERS if via_gateway else (("authorization", "Bearer bench-key"),),
        )

    def dialect_targets(self, dialect: str, stream: bool, chunks: int | None = None) -> tuple[Target, Target]:
        """(direct in the upstream's own dialect, OpenAI through the gateway) for one dialect."""
        up, gw = self.ports.upstream, self.ports.gateway
        gateway = Target(
            name=dialect,
            port=gw,
            path="/v1/chat/completions",
            body=openai_body(f"bench-{dialect}", stream, chunks),
            stream=stream,
            headers=CLIENT_HEADERS,
        )
        if dialect == "openai":
            return self.openai_target(up, False, stream, chunks), gateway
        if dialect == "anthropic":
            direct = Target(
                name=dialect,
                port=up,
                path="/v1/messages",
                body=anthropic_body(ANTHROPIC_MODEL, stream, chunks or 256),
                stream=stream,
                headers=(("x-api-key", "bench-key"), ("anthropic-version", "2023-06-01")),
            )
            return direct, gateway
        action = "streamGenerateContent?alt=sse" if stream else "generateContent"
        direct = Target(
            name=dialect,
            port=up,
            path=f"/v1beta/models/{GEMINI_MODEL}:{action}",
            body=gemini_body(chunks or 256),
            stream=stream,
            headers=(("x-goog-api-key", "bench-key"),),
        )
        return direct, gateway

    # ---- processes

    def env(self, before: bool = False) -> dict[str, str]:
        """The children's environment: this one, with the repo importable; with ``before``, the
        ``--baseline`` checkout's kernel, plugins and test kit first."""
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        if before:
            assert self.s.baseline is not None
            env = baseline.baseline_env(self.s.baseline, env)
        return env

    def before(
        self, run: Callable[..., Awaitable[RunResult]], target: Target, *args: Any, **kwargs: Any
    ) -> Callable[[], Awaitable[RunResult]] | None:
        """``run([target], *args, **kwargs)`` against the baseline gateway; ``None`` without one."""
        if self.before_gateway is None:
            return None
        return partial(run, [replace(target, port=self.ports.baseline)], *args, **kwargs)

    async def wait_http(self, proc: Proc, port: int, path: str, within: float = 60.0) -> None:
        """Until ``GET path`` answers 200, or fail with the process's output."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.log_tail()}")
            if await loadgen.request_once("127.0.0.1", port, "GET", path) == 200:
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{proc.name} did not answer {path} within {within:.0f} s:\n{proc.log_tail()}")

    async def start_upstream(self) -> None:
        """The fake upstream, on the upstream CPU."""
        argv = [
            sys.executable,
            "-m",
            "bench.upstream",
            "--port",
            str(self.ports.upstream),
            "--interval",
            str(self.s.stream_interval),
            "--chunks",
            str(self.s.stream_chunks),
        ]
        self.upstream = self.procs.start(
            "upstream", argv, self.layout.upstream, env=self.env(), cwd=str(REPO)
        )
        await self.wait_http(self.upstream, self.ports.upstream, "/health")

    async def start_gateway(
        self, workers: int, port: int, name: str = "gateway", before: bool = False
    ) -> Proc:
        """``truckllm serve`` with ``workers`` hypercorn workers, on the gateway CPU(s); with
        ``before``, the ``--baseline`` checkout's code."""
        config = self.workdir / "gateway.yaml"
        cpus = self.layout.gateway if workers == 1 else self.layout.workers
        argv = [*self.truckllm, "serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"]
        argv += ["--workers", str(workers)]
        proc = self.procs.start(name, argv, cpus, env=self.env(before), cwd=str(self.workdir))
        await self.wait_http(proc, port, "/admin/v1/health")
        # requests to every alias on many connections (the kernel spreads connections over the
        # workers): lazy imports, connection pools and caches happen before anything is timed
        probes = [self.openai_target(port, True)] + [
            self.dialect_targets(d, False)[1] for d in ("anthropic", "gemini") if d in self.providers
        ]
        if "responses" in self.dialects:
            probes += [
                responses_target(port, f"bench-{d}", True, False, None)
                for d in ("openai", "anthropic")
                if d in self.providers
            ]
        for probe in probes:
            probe.port = port
            result = await loadgen.closed_loop([probe], 8 * workers, 0.5, warmup=0.0)
            if result.errors or not result.samples:
                tail = proc.log_tail()
                raise RuntimeError(f"{name}: {probe.name} requests fail ({first_error(result)}):\n{tail}")
        return proc

    def start_nginx(self) -> None:
        """nginx serving a static OpenAI answer (upstream CPU), and proxying to the fake upstream
        (gateway CPU)."""
        assert self.nginx is not None
        static = self.workdir / "nginx-static.conf"
        static.write_text(
            nginx_static_conf(self.workdir, self.ports.nginx_static, openai_answer(OPENAI_MODEL))
        )
        proxy = self.workdir / "nginx-proxy.conf"
        proxy.write_text(nginx_proxy_conf(self.workdir, self.ports.nginx_proxy, self.ports.upstream))
        self.nginx_static = self.procs.start(
            "nginx-static", [self.nginx, "-p", str(self.workdir), "-c", str(static)], self.layout.upstream
        )
        self.nginx_proxy = self.procs.start(
            "nginx-proxy", [self.nginx, "-p", str(self.workdir), "-c", str(proxy)], self.layout.gateway
        )

    def pids(self, gateway: Proc | None = None) -> dict[str, int]:
        """The processes whose CPU use is reported."""
        out = {}
        gw = gateway or self.gateway
        if gw is not None:
            out["gateway"] = gw.pid
        if self.upstream is not None:
            out["upstream"] = self.upstream.pid
        for proc in (self.nginx_static, self.nginx_proxy):
            if proc is not None and proc.alive():
                out[proc.name] = proc.pid
        return out

    # ---- comparisons

    async def compare(
        self,
        direct: Callable[[], Awaitable[RunResult]],
        gateway: Callable[[], Awaitable[RunResult]],
        metric: Callable[[RunResult], list[float]],
        gateway_proc: Proc | None = None,
        direct_cached: RunResult | None = None,
        before: Callable[[], Awaitable[RunResult]] | None = None,
    ) -> tuple[dict[str, Any], RunResult, RunResult]:
        """Alternate direct and gateway runs (``rounds`` each) and compare them.

        With ``before`` (the ``--baseline`` gateway), each round also runs it, before the current
        gateway in even rounds and after it in odd ones; its comparison with the same direct runs
        goes to ``out["before"]``.
        """
        directs: list[RunResult] = []
        runs: dict[str, list[RunResult]] = {"after": [], "before": []}
        cpu: dict[str, dict[str, float]] = {"after": {}, "before": {}}
        jobs = {"after": (gateway, gateway_proc), "before": (before, self.before_gateway)}
        for i in range(self.s.rounds):
            if direct_cached is None:
                directs.append(await direct())
            order = (
                ["after"] if before is None else (["before", "after"] if i % 2 == 0 else ["after", "before"])
            )
            for which in order:
                job, proc = jobs[which]
                assert job is not None
                watch = CpuWatch(self.pids(proc))
                runs[which].append(await job())
                for k, v in watch.stop().items():
                    cpu[which][k] = cpu[which].get(k, 0.0) + v / self.s.rounds
        d = direct_cached if direct_cached is not None else merge(directs)
        g = merge(runs["after"])
        out = comparison(d, g, metric)
        out["cpu"] = {k: round(v, 3) for k, v in cpu["after"].items()}
        if g.offered_rate:
            out["send_lag_ms"] = {"direct": send_lag(d), "gateway": send_lag(g)}
        if runs["before"]:
            b = merge(runs["before"])
            out["before"] = comparison(d, b, metric)
            out["before"]["cpu"] = {k: round(v, 3) for k, v in cpu["before"].items()}
        return out, d, g

    def check_errors(self, label: str, result: dict[str, Any], d: RunResult, g: RunResult) -> None:
        """Note failures."""
        if result["errors"]["gateway"]:
            self.note(
                f"{label}: {result['errors']['gateway']} gateway request(s) failed, e.g. {first_error(g)}"
            )
        if result["errors"]["direct"]:
            self.note(
                f"{label}: {result['errors']['direct']} direct request(s) failed, e.g. {first_error(d)}"
            )

    def check_cpu(self, label: str, cpu: dict[str, float]) -> None:
        """Warn when the harness side or other programs took a large share of the CPUs."""
        harness = cpu.get("upstream", 0.0) + cpu.get("loadgen", 0.0) + cpu.get("nginx-static", 0.0)
        if harness > 0.8:
            self.note(
                f"{label}: upstream + load generator used {harness:.0%} of a CPU: they may limit the figure"
            )
        if cpu.get("others", 0.0) > 0.25:
            self.note(f"{label}: other programs used {cpu['others']:.0%} of a CPU during the run (noise)")

    # ---- lanes

    async def lane_latency(self) -> dict[str, Any]:
        """(a) Pass-through added latency at concurrency 1 and at fixed rates."""
        s = self.s
        direct, gateway = self.dialect_targets("openai", False)
        out: dict[str, Any] = {}
        half = s.c1_seconds / s.rounds
        res, d, g = await self.compare(
            partial(loadgen.closed_loop, [direct], 1, half, warmup=0.3),
            partial(loadgen.closed_loop, [gateway], 1, half, warmup=0.3),
            lambda r: latencies(r, closed=True),
            before=self.before(loadgen.closed_loop, gateway, 1, half, warmup=0.3),
        )
        self.check_errors("latency c1", res, d, g)
        self.check_cpu("latency c1", res["cpu"])
        out["concurrency_1"] = res
        rows = [self.latency_row("concurrency 1", res)]
        out["rates"] = {}
        for rate in s.rates:
            length = s.rate_seconds / s.rounds
            res, d, g = await self.compare(
                partial(loadgen.open_loop, [direct], rate, length, warmup=0.5),
                partial(loadgen.open_loop, [gateway], rate, length, warmup=0.5),
                lambda r: latencies(r, closed=False),
                before=self.before(loadgen.open_loop, gateway, rate, length, warmup=0.5),
            )
            self.check_errors(f"latency {rate:g}/s", res, d, g)
            self.check_cpu(f"latency {rate:g}/s", res["cpu"])
            out["rates"][f"{rate:g}"] = res
            rows.append(self.latency_row(f"{rate:g} req/s", res))
        self.say(
            table(LATENCY_HEADERS, rows, "\n(a) pass-through added latency, ms (OpenAI in, OpenAI upstream)")
        )
        self.say_before_after("latency", out)
        return out

    def say_before_after(self, lane: str, result: dict[str, Any]) -> None:
        """With ``--baseline``: the lane's before/after pairs as a table."""
        found = baseline.figures({lane: result}, only=[lane])
        if found:
            self.say(
                table(baseline.HEADERS, baseline.rows(found), f"\n{lane}: before (--baseline) and after")
            )

    @staticmethod
    def latency_row(label: str, res: dict[str, Any]) -> list[Any]:
        """One table row: direct and gateway p50/p99, added p50/p90/p99/max, gateway CPU."""
        d, g, a = res["direct"], res["gateway"], res["added"]
        return [
            label,
            d["p50"],
            d["p99"],
            g["p50"],
            g["p99"],
            a["p50"],
            a["p90"],
            a["p99"],
            a["max"],
            res["errors"]["gateway"],
            f"{res.get('cpu', {}).get('gateway', math.nan):.0%}",
        ]

    async def lane_translation(self) -> dict[str, Any]:
        """(c) OpenAI in, Anthropic / Gemini upstream out, against the upstream called natively."""
        s = self.s
        out: dict[str, Any] = {}
        rows = []
        rate = s.compare_rate
        for dialect in ("anthropic", "gemini"):
            if dialect not in self.providers:
                self.note(
                    f"translation to {dialect}: skipped, `truckllm plugins` lists no {dialect} provider"
                )
                out[dialect] = {"skipped": f"no {dialect} provider plugin"}
                continue
            direct, gateway = self.dialect_targets(dialect, False)
            half = s.c1_seconds / s.rounds
            c1, d, g = await self.compare(
                partial(loadgen.closed_loop, [direct], 1, half, warmup=0.3),
                partial(loadgen.closed_loop, [gateway], 1, half, warmup=0.3),
                lambda r: latencies(r, closed=True),
            )
            self.check_errors(f"translation {dialect} c1", c1, d, g)
            self.check_cpu(f"translation {dialect} c1", c1["cpu"])
            length = s.rate_seconds / s.rounds
            fixed, d, g = await self.compare(
                partial(loadgen.open_loop, [direct], rate, length, warmup=0.5),
                partial(loadgen.open_loop, [gateway], rate, length, warmup=0.5),
                lambda r: latencies(r, closed=False),
            )
            self.check_errors(f"translation {dialect} {rate:g}/s", fixed, d, g)
            out[dialect] = {"concurrency_1": c1, "rate": rate, "fixed_rate": fixed}
            rows.append(self.latency_row(f"openai->{dialect}, concurrency 1", c1))
            rows.append(self.latency_row(f"openai->{dialect}, {rate:g} req/s", fixed))
        if rows:
            self.say(
                table(
                    LATENCY_HEADERS,
                    rows,
                    "\n(c) translation added latency, ms (direct = upstream called natively)",
                )
            )
        return out

    async def lane_streaming(self) -> dict[str, Any]:
        """(d) Added TTFT, inter-event gap and per-event transit against paced streams."""
        s = self.s
        out: dict[str, Any] = {
            "interval_ms": s.stream_interval * 1000,
            "chunks": s.stream_chunks,
            "rate": s.stream_rate,
        }
        rows = []
        runs: list[dict[str, Any]] = []
        dialects = [d for d in ("openai", "anthropic", "gemini") if d == "openai" or d in self.providers]
        for dialect in ["openai"] * max(0, s.ttft_repeat - 1) + dialects:
            direct, gateway = self.dialect_targets(dialect, True, s.stream_chunks)
            length = s.stream_seconds / s.rounds
            before = dialect == "openai" and self.before_gateway is not None
            res, d, g = await self.compare(
                partial(loadgen.open_loop, [direct], s.stream_rate, length, warmup=0.5, record_events=True),
                partial(loadgen.open_loop, [gateway], s.stream_rate, length, warmup=0.5, record_events=True),
                ttfts,
                before=self.before(
                    loadgen.open_loop, gateway, s.stream_rate, length, warmup=0.5, record_events=True
                )
                if before
                else None,
            )
            if dialect == "openai":
                runs.append(ttft_run(res))
                if len(runs) < s.ttft_repeat:
                    self.say(f"  streaming openai, run {len(runs)} of {s.ttft_repeat}: {ttft_text(runs[-1])}")
                    continue
            self.check_errors(f"streaming {dialect}", res, d, g)
            self.check_cpu(f"streaming {dialect}", res["cpu"])
            gap = comparison(d, g, gaps)
            stretch = comparison(d, g, stretches)
            transit = comparison(d, g, transits)
            events = sum(len(x.events or ()) for x in g.samples if x.ok)
            expected = s.stream_chunks * sum(1 for x in g.samples if x.ok)
            if events != expected:
                self.note(
                    f"streaming {dialect}: {events} content events through the gateway, {expected} expected"
                )
            out[dialect] = {"ttft": res, "gap": gap, "gap_stretch": stretch, "transit": transit}
            label = dialect if dialect == "openai" else f"openai->{dialect}"
            rows.append(
                [
                    label,
                    res["direct"]["p50"],
                    res["gateway"]["p50"],
                    res["added"]["p50"],
                    res["added"]["p99"],
                    gap["gateway"]["p50"],
                    stretch["added"]["p99"],
                    stretch["added"]["max"],
                    transit["added"]["p50"],
                    transit["added"]["p99"],
                    res["errors"]["gateway"],
                ]
            )
        self.say(
            table(
                [
                    "stream",
                    "ttft direct p50",
                    "ttft gw p50",
                    "added p50",
                    "added p99",
                    "gap gw p50",
                    "gap stretch added p99",
                    "max",
                    "transit added p50",
                    "p99",
                    "errors",
                ],
                rows,
                f"\n(d) streaming, ms ({s.stream_chunks} events {s.stream_interval * 1000:g} ms apart, "
                f"{s.stream_rate:g} streams/s)",
            )
        )
        out["ttft_runs"] = runs
        if len(runs) > 1:
            self.say("  added TTFT p99 per run (openai): " + "; ".join(ttft_text(r) for r in runs))
        self.say_before_after("streaming", out)
        return out

    async def lane_cache_affinity(self) -> dict[str, Any]:
        """(k) Prompt caches kept warm: affinity off and on (:mod:`bench.cache_affinity`)."""
        return await cache_affinity.run_lane(say=self.say)

    async def lane_request_log(self) -> dict[str, Any]:
        """Request records to PostgreSQL: CPU per request with and without, a database outage
        (:mod:`bench.request_log_lane`)."""
        return await request_log_lane.run_lane(self, request_log_lane.LaneOptions.from_settings(self.s))

    async def lane_upload(self) -> dict[str, Any]:
        """A ``--upload-mb`` multipart upload through a fresh one-worker gateway: its peak RSS
        growth, the bytes the upstream got (:mod:`bench.upload_lane`)."""
        return await upload_lane.run_lane(self.s.upload_mb, say=self.say)

    async def lane_replicas(self) -> dict[str, Any]:
        """4 one-worker gateways behind nginx on one Redis Cluster at ``--replicas-rate`` req/s:
        latency, achieved rate and the exactness checks (:mod:`bench.replicas_lane`)."""
        options = replicas_lane.Options(rate=self.s.replicas_rate, seconds=self.s.replicas_seconds)
        return await replicas_lane.run_lane(options, say=self.say)

    async def lane_responses(self) -> dict[str, Any]:
        """(r) The Responses API beside chat: pass-through and translated (:mod:`bench.responses_lane`)."""
        return await lane_responses(self)

    async def frontier(self, port: int, proc: Proc, workers: int) -> dict[str, Any]:
        """The highest rate whose added p99 stays under the budget: double, then bisect."""
        s = self.s
        direct = self.openai_target(self.ports.upstream, False)
        gateway = self.openai_target(port, True)
        steps: list[dict[str, Any]] = []
        length = s.frontier_seconds / s.rounds

        async def step(rate: float) -> bool:
            cached = self.frontier_cache.get(rate)
            res, d, _ = await self.compare(
                partial(loadgen.open_loop, [direct], rate, length, warmup=0.5, max_conns=512),
                partial(loadgen.open_loop, [gateway], rate, length, warmup=0.5, max_conns=512),
                lambda r: latencies(r, closed=False),
                gateway_proc=proc,
                direct_cached=cached,
            )
            self.frontier_cache[rate] = d
            errors = res["errors"]["gateway"]
            requests = max(1, res["requests"]["gateway"])
            ok = bool(errors <= 0.001 * requests and res["added"]["p99"] < s.p99_budget_ms)
            steps.append(
                {
                    "rate": rate,
                    "direct_p99": res["direct"]["p99"],
                    "gateway_p99": res["gateway"]["p99"],
                    "added_p99": res["added"]["p99"],
                    "errors": errors,
                    "cpu": res["cpu"],
                    "send_lag_p99": res["send_lag_ms"]["gateway"]["p99"],
                    "pass": ok,
                }
            )
            self.say(
                f"    {workers} worker(s) {rate:7.0f} req/s: added p99 {fmt(res['added']['p99'])} ms, "
                f"errors {errors}, gateway CPU {res['cpu'].get('gateway', 0):.0%} "
                f"-> {'pass' if ok else 'fail'}"
            )
            return ok

        lo, hi = 0.0, math.inf
        rate = s.frontier_start
        while rate <= s.frontier_max:
            if await step(rate):
                lo = rate
                if hi < math.inf:
                    break
                rate *= 2
            else:
                hi = rate
                if lo > 0:
                    break
                rate = round(rate / 2)
                if rate < 10:
                    break
        if hi == math.inf:
            self.note(f"frontier ({workers} worker(s)): still under budget at {lo:g} req/s (--frontier-max)")
        while lo > 0 and hi < math.inf and (hi - lo) / lo > s.frontier_precision:
            mid = round((lo + hi) / 2 / 10) * 10
            if mid in (lo, hi):
                break
            if await step(mid):
                lo = mid
            else:
                hi = mid
        return {"frontier": lo, "first_fail": None if hi == math.inf else hi, "steps": steps}

    async def throughput(self, port: int, proc: Proc, workers: int) -> dict[str, Any]:
        """Frontier and concurrency-50 throughput for one gateway."""
        self.say(f"  frontier search, {workers} worker(s) (added p99 < {self.s.p99_budget_ms:g} ms)")
        front = await self.frontier(port, proc, workers)
        direct = self.openai_target(self.ports.upstream, False)
        gateway = self.openai_target(port, True)
        if workers == 1 and self.before_gateway is not None:
            (g, cpu), before = await self.c50_rounds(gateway, proc)
        else:
            watch = CpuWatch(self.pids(proc))
            g = await loadgen.closed_loop([gateway], 50, self.s.c50_seconds, warmup=1.0)
            cpu, before = watch.stop(), None
        self.check_cpu(f"concurrency 50, {workers} worker(s)", cpu)
        if "c50_direct" not in self.lanes.setdefault("_cache", {}):
            self.lanes["_cache"]["c50_direct"] = await loadgen.closed_loop(
                [direct], 50, self.s.c50_seconds / 2
            )
        d = self.lanes["_cache"]["c50_direct"]
        res = comparison(d, g, lambda r: latencies(r, closed=True))
        res["rps"] = {"direct": len(d.ok) / d.duration, "gateway": len(g.ok) / g.duration}
        res["cpu"] = cpu
        if before is not None:
            b, b_cpu = before
            res["before"] = comparison(d, b, lambda r: latencies(r, closed=True))
            res["before"]["rps"] = {"direct": res["rps"]["direct"], "gateway": len(b.ok) / b.duration}
            res["before"]["cpu"] = b_cpu
        if g.errors:
            self.note(f"concurrency 50, {workers} worker(s): {g.errors} errors, e.g. {first_error(g)}")
        return {"workers": workers, **front, "concurrency_50": res}

    async def c50_rounds(
        self, gateway: Target, proc: Proc
    ) -> tuple[tuple[RunResult, dict[str, float]], tuple[RunResult, dict[str, float]]]:
        """Concurrency 50 on the current gateway and on the ``--baseline`` one, ``rounds`` runs of
        each in alternating order; ((after, its CPU), (before, its CPU))."""
        assert self.before_gateway is not None
        jobs = {
            "after": (gateway, proc),
            "before": (replace(gateway, port=self.ports.baseline), self.before_gateway),
        }
        runs: dict[str, list[RunResult]] = {"after": [], "before": []}
        cpu: dict[str, dict[str, float]] = {"after": {}, "before": {}}
        length = self.s.c50_seconds / self.s.rounds
        for i in range(self.s.rounds):
            for which in ("before", "after") if i % 2 == 0 else ("after", "before"):
                target, gw = jobs[which]
                watch = CpuWatch(self.pids(gw))
                runs[which].append(await loadgen.closed_loop([target], 50, length, warmup=0.5))
                for k, v in watch.stop().items():
                    cpu[which][k] = round(cpu[which].get(k, 0.0) + v / self.s.rounds, 3)
        return (merge(runs["after"]), cpu["after"]), (merge(runs["before"]), cpu["before"])

    async def lane_throughput(self) -> dict[str, Any]:
        """(b) Frontier and concurrency-50 throughput with one worker and with two."""
        out: dict[str, Any] = {}
        for workers in self.s.workers:
            if workers == 1:
                assert self.gateway is not None
                idle = rss_bytes(self.gateway.pid) / MB
                out["1"] = await self.throughput(self.ports.gateway, self.gateway, 1)
                out["1"]["rss_idle_mb"] = idle
            else:
                proc = await self.start_gateway(workers, self.ports.gateway2, f"gateway-{workers}w")
                try:
                    idle = rss_bytes(proc.pid) / MB
                    out[str(workers)] = await self.throughput(self.ports.gateway2, proc, workers)
                    out[str(workers)]["rss_idle_mb"] = idle
                finally:
                    self.procs.stop(proc)
        rows = []
        for key, res in out.items():
            c50 = res["concurrency_50"]
            rows.append(
                [
                    f"{key} worker(s)",
                    frontier_text(res),
                    c50["rps"]["direct"],
                    c50["rps"]["gateway"],
                    c50["gateway"]["p50"],
                    c50["gateway"]["p99"],
                    f"{c50['cpu'].get('gateway', 0):.0%}",
                    f"{c50['cpu'].get('upstream', 0) + c50['cpu'].get('loadgen', 0):.0%}",
                ]
            )
        self.say(
            table(
                [
                    "gateway",
                    "frontier req/s",
                    "c50 direct req/s",
                    "c50 gateway req/s",
                    "c50 p50 ms",
                    "c50 p99 ms",
                    "gw CPU",
                    "harness CPU",
                ],
                rows,
                f"\n(b) throughput (frontier: highest rate with added p99 < {self.s.p99_budget_ms:g} ms)",
            )
        )
        self.say_before_after("throughput", out)
        if self.layout.workers is not None and len(self.layout.workers) < max(self.s.workers):
            self.note(
                f"throughput: {max(self.s.workers)} workers share {len(self.layout.workers)} CPU(s) here "
                f"({self.layout.note}): the multi-worker figure shows no scaling on this machine"
            )
        return out

    async def lane_nginx(self) -> dict[str, Any]:
        """The gateway in front of a C upstream; nginx as the bare-proxy floor."""
        if self.nginx_static is None or self.nginx_proxy is None:
            self.note("nginx lane: skipped, nginx is not installed (apt-get install nginx-light)")
            return {"skipped": "nginx not installed"}
        s = self.s
        rate = s.compare_rate
        half = s.c1_seconds / s.rounds
        length = s.rate_seconds / s.rounds
        out: dict[str, Any] = {"rate": rate}
        rows = []
        static = Target("nginx", self.ports.nginx_static, "/v1/chat/completions", openai_body(OPENAI_MODEL))
        via = Target(
            "nginx",
            self.ports.gateway,
            "/v1/chat/completions",
            openai_body("bench-nginx"),
            headers=CLIENT_HEADERS,
        )
        for name, direct, other, label in (
            ("gateway_to_nginx", static, via, "gateway -> nginx static"),
            (
                "nginx_proxy",
                self.openai_target(self.ports.upstream, False),
                Target("proxy", self.ports.nginx_proxy, "/v1/chat/completions", openai_body(OPENAI_MODEL)),
                "nginx proxy -> fake upstream",
            ),
        ):
            c1, d, g = await self.compare(
                partial(loadgen.closed_loop, [direct], 1, half, warmup=0.3),
                partial(loadgen.closed_loop, [other], 1, half, warmup=0.3),
                lambda r: latencies(r, closed=True),
            )
            self.check_errors(f"{label} c1", c1, d, g)
            fixed, d, g = await self.compare(
                partial(loadgen.open_loop, [direct], rate, length, warmup=0.5),
                partial(loadgen.open_loop, [other], rate, length, warmup=0.5),
                lambda r: latencies(r, closed=False),
            )
            self.check_errors(f"{label} {rate:g}/s", fixed, d, g)
            c50 = await loadgen.closed_loop([other], 50, s.c50_seconds / 2)
            out[name] = {"concurrency_1": c1, "fixed_rate": fixed, "c50_rps": len(c50.ok) / c50.duration}
            rows.append([*self.latency_row(f"{label}, c1", c1)[:-1], out[name]["c50_rps"]])
            rows.append([*self.latency_row(f"{label}, {rate:g} req/s", fixed)[:-1], None])
        self.say(
            table(
                [*LATENCY_HEADERS[:-1], "c50 req/s"],
                rows,
                "\nnginx: gateway in front of a C upstream; nginx as a bare proxy (the floor), added ms",
            )
        )
        return out

    async def lane_profile(self) -> dict[str, Any]:
        """py-spy on the gateway under pass-through load: the top functions by own time.

        Two passes: Python frames only (non-blocking sampling, 250 Hz), then with native frames
        (C code: the event loop, the GC, syscalls; py-spy pauses the process at each sample, 100 Hz).
        The load is closed-loop concurrency 50 (the gateway saturated), or ``--profile-rate``.
        """
        spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
        if spy is None:
            self.note("profile: skipped, py-spy is not installed (.venv/bin/pip install py-spy)")
            return {"skipped": "py-spy not installed"}
        assert self.gateway is not None
        gateway = self.openai_target(self.ports.gateway, True)
        rate = self.s.profile_rate
        load = f"{rate:g} req/s open loop" if rate else "concurrency 50"
        out: dict[str, Any] = {"load": load}
        for kind, extra in (
            ("python", ["--rate", "250", "--nonblocking"]),
            ("native", ["--rate", "100", "--native"]),
        ):
            raw = self.workdir / f"profile-{kind}.txt"
            argv = [
                spy,
                "record",
                "--pid",
                str(self.gateway.pid),
                "--duration",
                str(round(self.s.profile_seconds)),
            ]
            argv += [*extra, "--format", "raw", "--output", str(raw)]
            spy_proc = self.procs.start(f"py-spy-{kind}", argv, self.layout.loadgen)
            await asyncio.sleep(0.5)
            if rate:
                result = await loadgen.open_loop([gateway], rate, self.s.profile_seconds, warmup=0.0)
            else:
                result = await loadgen.closed_loop([gateway], 50, self.s.profile_seconds, warmup=0.0)
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(spy_proc.popen.wait, 30)
            self.procs.stop(spy_proc)
            if not raw.exists() or not raw.stat().st_size:
                self.note(f"profile ({kind}): py-spy wrote nothing: {spy_proc.log_tail(3)}")
                out[kind] = {"skipped": "py-spy failed", "log": spy_proc.log_tail()}
                continue
            folder = self.s.output.parent
            folder.mkdir(parents=True, exist_ok=True)
            kept = folder / f"profile-{kind}-collapsed.txt"
            shutil.copy(raw, kept)
            top, total = top_functions(raw.read_text(), 15)
            rps = len(result.ok) / max(1e-9, self.s.profile_seconds)
            self.say(
                table(
                    ["function", "where", "own %", "total %"],
                    [[f["function"], f["file"], f["own_pct"], f["total_pct"]] for f in top],
                    f"\nprofile ({kind} frames): gateway under pass-through load ({load}, {rps:.0f} req/s "
                    f"while sampled), {total} samples, top 15 by own time",
                )
            )
            out[kind] = {
                "samples": total,
                "rps": rps,
                "errors": result.errors,
                "top": top,
                "collapsed": str(kept),
            }
        return out

    async def fresh_gateway(
        self, name: str, lane: Callable[[Proc, int], Awaitable[dict[str, Any]]], before: bool = False
    ) -> dict[str, Any]:
        """Run ``lane`` against a gateway of its own (one worker), so that what earlier lanes did to
        the main gateway's memory does not show in its figures; with ``before``, the ``--baseline``
        checkout's."""
        proc = await self.start_gateway(1, self.ports.gateway2, name, before=before)
        try:
            return await lane(proc, self.ports.gateway2)
        finally:
            self.procs.stop(proc)

    async def lane_hold(self) -> dict[str, Any]:
        """(d) Many concurrent paced streams through one (fresh) worker; its RSS while holding them.

        With ``--baseline``, a fresh baseline worker first, then a fresh current one."""
        before = None
        if self.before_gateway is not None:
            self.say("  before (--baseline):")
            before = await self.fresh_gateway("gateway-hold-before", self.hold, before=True)
            before.pop("timeline", None)
            self.say("  after:")
        out = await self.fresh_gateway("gateway-hold", self.hold)
        if before is not None:
            out["before"] = before
        self.say_before_after("hold", out)
        return out

    async def hold(self, proc: Proc, port: int) -> dict[str, Any]:
        """The ``hold`` lane against ``proc`` listening on ``port``."""
        s = self.s
        count = hold_capacity(s.hold_streams, raise_nofile())
        if count < s.hold_streams:
            self.note(
                f"hold: {s.hold_streams:,} streams need {2 * s.hold_streams + HOLD_FD_RESERVE:,} open "
                f"files in the gateway (a client and an upstream socket each), the limit here is "
                f"{raise_nofile():,} "
                f"(raising it needs CAP_SYS_RESOURCE): {count:,} streams held, RSS extrapolated to "
                f"{s.hold_streams:,} from the RSS per stream"
            )
        ramp = count / s.hold_ramp
        ramp_timeout = 3 * ramp + 20
        events = math.ceil((ramp_timeout + s.hold_seconds + 10) / s.hold_interval)
        target = Target(
            "hold",
            port,
            "/v1/chat/completions",
            openai_body("bench-hold", True, events),
            stream=True,
            headers=CLIENT_HEADERS,
        )
        pid = proc.pid
        rss_before = rss_bytes(pid)
        peak_rss = [rss_before]

        def tick(_: int) -> None:
            peak_rss[0] = max(peak_rss[0], rss_bytes(pid))

        self.say(
            f"  holding {count} streams: {s.hold_ramp:g} new/s, then {s.hold_seconds:g} s once all "
            f"are open; an event every {s.hold_interval:g} s"
        )
        watch = CpuWatch(self.pids(proc))
        held = await loadgen.hold_streams(
            target, count, s.hold_ramp, s.hold_seconds, ramp_timeout, on_tick=tick, tick=0.5
        )
        cpu = watch.stop()
        await asyncio.sleep(3.0)
        rss_after = rss_bytes(pid)
        result = RunResult(samples=held.samples, duration=0.0)
        transit = summarize(a - stamp for x in held.samples if x.events for a, stamp in x.events)
        ttft = summarize(x.ttft - x.intended for x in held.samples if x.ttft)
        per_stream = (peak_rss[0] - rss_before) / max(1, held.held_peak)
        out = {
            "target": count,
            "asked": s.hold_streams,
            "held_min": held.held_min,
            "held_peak": held.held_peak,
            "all_open_after_s": held.opened_after,
            "failed": held.failed_before_close,
            "interval_s": s.hold_interval,
            "ramp_per_s": s.hold_ramp,
            "hold_s": s.hold_seconds,
            "rss_before_mb": rss_before / MB,
            "rss_peak_mb": peak_rss[0] / MB,
            "rss_after_close_mb": rss_after / MB,
            "rss_per_stream_kb": per_stream / 1024,
            "rss_at_asked_mb": (rss_before + per_stream * s.hold_streams) / MB,
            "ttft_ms": ttft,
            "event_transit_ms": transit,
            "cpu": cpu,
            "timeline": held.timeline,
        }
        if held.failed_before_close:
            self.note(f"hold: {held.failed_before_close} stream(s) failed, e.g. {first_error(result)}")
        if held.opened_after is None:
            self.note(
                f"hold: only {held.held_peak} of {count} streams were open at once "
                f"within {ramp_timeout:.0f} s"
            )
        self.say(
            table(
                [
                    "streams",
                    "held",
                    "all open after s",
                    "failed",
                    "RSS before MB",
                    "RSS holding MB",
                    "RSS after close MB",
                    "KB/stream",
                    "ttft p50 ms",
                    "ttft p99 ms",
                    "transit p50 ms",
                    "transit p99 ms",
                    "gw CPU",
                ],
                [
                    [
                        count,
                        held.held_min,
                        held.opened_after,
                        held.failed_before_close,
                        out["rss_before_mb"],
                        out["rss_peak_mb"],
                        out["rss_after_close_mb"],
                        out["rss_per_stream_kb"],
                        ttft["p50"],
                        ttft["p99"],
                        transit["p50"],
                        transit["p99"],
                        f"{cpu.get('gateway', 0):.0%}",
                    ]
                ],
                "\n(d) concurrent streams held by one worker (held: fewest open during the hold)",
            )
        )
        return out

    async def lane_memory(self) -> dict[str, Any]:
        """(e) RSS of a fresh worker at idle, at plateau under a mixed load, and after it stops."""
        return await self.fresh_gateway("gateway-memory", self.memory)

    async def memory(self, proc: Proc, port: int) -> dict[str, Any]:
        """The ``memory`` lane against ``proc`` listening on ``port``."""
        s = self.s
        pid = proc.pid
        mix = [self.openai_target(port, True)] * 8 + [
            self.dialect_targets("openai", True, s.stream_chunks)[1]
        ]
        if "anthropic" in self.providers:
            mix.append(self.dialect_targets("anthropic", False)[1])
        for target in mix:
            target.port = port
        rate = s.soak_rate
        capacity = self.lanes.get("throughput", {}).get("1", {}).get("concurrency_50", {}).get("rps", {})
        if capacity.get("gateway") and rate > 0.5 * capacity["gateway"]:
            rate = max(10.0, round(0.5 * capacity["gateway"] / 10) * 10)
            self.note(f"memory: soak rate lowered to {rate:g} req/s (half the concurrency-50 throughput)")
        rss_idle = rss_bytes(pid)
        samples: list[tuple[float, float]] = []
        start = time.monotonic()

        async def sample_rss() -> None:
            while True:
                samples.append((time.monotonic() - start, rss_bytes(pid) / MB))
                await asyncio.sleep(1.0)

        warm = max(5.0, min(30.0, s.soak_seconds / 5))
        self.say(
            f"  soak: {warm:g} s of warm-up, then {s.soak_seconds:g} s measured, at {rate:g} req/s "
            "(8 chat : 1 stream : 1 translated)"
        )
        sampler = asyncio.ensure_future(sample_rss())
        watch = CpuWatch(self.pids(proc))
        try:
            result = await loadgen.open_loop(mix, rate, s.soak_seconds, warmup=warm, max_conns=512)
        finally:
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)
        cpu = watch.stop()
        rss_end = rss_bytes(pid)
        await asyncio.sleep(5.0)
        rss_after = rss_bytes(pid)
        measured = [(t, v) for t, v in samples if t >= warm]
        values = [v for _, v in measured] or [v for _, v in samples]
        quarter = max(1, len(values) // 4)
        first_q = sorted(values[:quarter])[quarter // 2]
        last_q = sorted(values[-quarter:])[quarter // 2]
        slope = _slope(measured) * 60
        out = {
            "rate": rate,
            "seconds": s.soak_seconds,
            "requests": len(result.samples),
            "errors": result.errors,
            "warmup_seconds": warm,
            "rss_idle_mb": rss_idle / MB,
            "rss_after_warmup_mb": values[0],
            "rss_plateau_mb": sorted(values)[len(values) // 2],
            "rss_max_mb": max(values) if values else None,
            "rss_end_of_load_mb": rss_end / MB,
            "rss_after_mb": rss_after / MB,
            "growth_mb": last_q - first_q,
            "slope_mb_per_min": slope,
            "cpu": cpu,
            "samples": samples,
        }
        if result.errors:
            self.note(f"memory soak: {result.errors} request(s) failed, e.g. {first_error(result)}")
        self.say(
            table(
                [
                    "RSS MB: idle (fresh worker)",
                    "after warm-up",
                    "plateau",
                    "max",
                    "end of load",
                    "5 s after",
                    "growth",
                    "MB/min",
                ],
                [
                    [
                        out["rss_idle_mb"],
                        out["rss_after_warmup_mb"],
                        out["rss_plateau_mb"],
                        out["rss_max_mb"],
                        out["rss_end_of_load_mb"],
                        out["rss_after_mb"],
                        out["growth_mb"],
                        slope,
                    ]
                ],
                f"\n(e) memory of a fresh one-worker gateway ({s.soak_seconds:g} s soak, "
                f"{len(result.samples)} requests, "
                f"{result.errors} errors)",
            )
        )
        return out

    # ---- main

    async def machine_busy(self, wait: float) -> float:
        """CPUs kept busy by other programs over one second; with ``wait``, until it is under 0.25."""
        deadline = time.monotonic() + wait
        while True:
            before, wall = system_cpu(), time.monotonic()
            await asyncio.sleep(1.0)
            busy = (system_cpu() - before) / (time.monotonic() - wall)
            if busy < 0.25 or time.monotonic() >= deadline:
                return busy
            self.say(f"  waiting for a quiet machine: {busy:.2f} CPU(s) busy")
            await asyncio.sleep(2.0)

    async def start_before(self) -> None:
        """``--baseline``: check that a process started with its ``PYTHONPATH`` imports the other
        checkout's code, then start its one-worker gateway on ``ports.baseline``."""
        if self.s.baseline is None:
            return
        info = await asyncio.to_thread(baseline.verify, self.s.baseline, self.env(before=True))
        self.results["baseline"] = info
        self.results["current_commit"] = baseline.git_commit(REPO)
        self.say(f"  baseline: {info['dir']} at {info['commit']}; its gateway imports {info['modules'][0]}")
        self.before_gateway = await self.start_gateway(1, self.ports.baseline, "gateway-before", before=True)
        self.results["rss_idle_start_before_mb"] = rss_bytes(self.before_gateway.pid) / MB

    def interrupt(self, task: asyncio.Task[Any]) -> None:
        """SIGINT / SIGTERM: cancel the run (``main`` then stops every process)."""
        self.interrupted = True
        task.cancel()

    async def run(self) -> dict[str, Any]:
        """Start everything, run the selected lanes, return the results."""
        s = self.s
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.interrupt, task)
        self.results = {
            "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": machine_info(),
            "settings": clean({k: v for k, v in asdict(s).items()}),
            "layout": self.layout.note,
        }
        self.say(f"TruckLLM benchmark ({s.mode}): lanes {', '.join(s.lanes)}")
        info = self.results["machine"]
        self.say(f"  machine: {info.get('cpu', '?')}, {info.get('cpus')} CPUs, Python {info['python']}")
        self.say(f"  layout: {self.layout.note}")
        self.results["open_files_limit"] = raise_nofile()
        if self.layout.loadgen is not None:
            os.sched_setaffinity(0, self.layout.loadgen)
        if s.nice:
            try:
                os.nice(s.nice)
                self.say(f"  nice: {s.nice} for every benchmark process")
            except OSError as exc:
                self.note(f"nice {s.nice} refused ({exc}); running at the default priority")
                self.procs.nice = 0
        busy = await self.machine_busy(s.wait_idle)
        self.results["busy_before_start_cpus"] = busy
        self.say(f"  other programs before start: {busy:.2f} CPU(s) busy")
        if busy > 0.25:
            self.note(
                f"other programs kept {busy:.2f} CPU(s) busy before the start: figures will be noisy "
                "(--wait-idle SECONDS waits for a quiet machine)"
            )
        self.providers = installed_providers(self.truckllm)
        self.say(f"  provider plugins: {', '.join(sorted(self.providers)) or 'none found'}")
        self.dialects = installed_dialects(self.truckllm)
        self.say(f"  dialect plugins: {', '.join(sorted(self.dialects)) or 'none found'}")
        if "openai" not in self.providers:
            raise RuntimeError("the openai provider plugin is not installed: nothing to benchmark")
        use_nginx = "nginx" in s.lanes and self.nginx is not None
        (self.workdir / "gateway.yaml").write_text(gateway_config(self.ports, self.providers, s, use_nginx))
        await self.start_upstream()
        if use_nginx:
            self.start_nginx()
            assert self.nginx_static is not None and self.nginx_proxy is not None
            await self.wait_http(self.nginx_static, self.ports.nginx_static, "/health")
            await self.wait_http(self.nginx_proxy, self.ports.nginx_proxy, "/health")
        self.gateway = await self.start_gateway(1, self.ports.gateway)
        await self.start_before()
        await asyncio.sleep(0.5)
        self.results["rss_idle_start_mb"] = rss_bytes(self.gateway.pid) / MB
        self.say(f"  gateway RSS at idle after start: {self.results['rss_idle_start_mb']:.1f} MB")

        for lane in LANES:
            if lane not in s.lanes:
                continue
            self.say(f"\n== {lane}")
            began = time.monotonic()
            self.lanes[lane] = await getattr(self, f"lane_{lane}")()
            if isinstance(self.lanes[lane], dict):
                self.lanes[lane]["lane_seconds"] = round(time.monotonic() - began, 1)
            for proc in (self.gateway, self.before_gateway):
                if proc is not None and not proc.alive():
                    raise RuntimeError(f"{proc.name} died during the {lane} lane:\n{proc.log_tail()}")
        self.lanes.pop("_cache", None)
        self.results["lanes"] = self.lanes
        if self.before_gateway is not None:
            self.results["before_after"] = baseline.figures(self.lanes)
            self.say(
                table(
                    baseline.HEADERS,
                    baseline.rows(self.results["before_after"]),
                    f"\nbefore ({self.results['baseline']['commit']}) and after "
                    f"({self.results['current_commit']})",
                )
            )
        self.results["notes"] = self.notes
        self.results["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        return self.results
