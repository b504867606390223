"""Where a held stream's memory goes: ``python -m bench.hold_memory --streams 2000``.

Starts the fake upstream and a one-worker ``truckllm serve`` under a wrapper that runs the
``truckllm`` command: the first ``SIGUSR1`` starts ``tracemalloc`` (once the gateway is up, so that
startup runs at full speed), every further one writes a snapshot. Then: a few warm-up streams, a
snapshot at idle, ``--streams`` paced streams (``bench-hold``: one event a second), a second
snapshot once all are open, and the difference per held stream: by allocating line, and by call
stack (the frames in the gateway's own code, hypercorn, aiohttp and h11). Beside it, the RSS per
stream from ``/proc``: what Python's allocator does not see (the C libraries' buffers, arena
slack) is the gap between the two.

``--baseline DIR`` runs the other checkout's gateway instead (see :mod:`bench.baseline`).
Results go to ``bench/results/hold-memory.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import baseline, loadgen
from bench.harness import CLIENT_HEADERS, MB, REPO, RESULTS, Ports, Settings, gateway_config, openai_body
from bench.loadgen import Target
from bench.procs import Procs, raise_nofile, rss_bytes
from bench.report import table

__all__ = ["Options", "main", "per_stream", "run"]

WRAPPER = """
import pathlib, signal, sys, tracemalloc
folder = pathlib.Path(sys.argv[2])
taken = [0]
def snapshot(signum, frame):
    if not tracemalloc.is_tracing():
        tracemalloc.start(int(sys.argv[1]))
        (folder / "tracing").touch()
        return
    taken[0] += 1
    path = folder / f"snapshot-{taken[0]}.pickle"
    tracemalloc.take_snapshot().dump(str(path) + ".part")
    pathlib.Path(str(path) + ".part").rename(path)
signal.signal(signal.SIGUSR1, snapshot)
from truckllm.cli import main
sys.exit(main(sys.argv[3:]))
"""

OWN_CODE = ("/truckllm/", "/truckllm_", "/hypercorn/", "/aiohttp/", "/h11/", "/multidict/", "/yarl/")
"""Paths of the frames a call stack is summarised by (the gateway, its server and its client), after
its three innermost frames."""


@dataclass
class Options:
    """What one run does."""

    streams: int = 2000
    ramp: float = 200.0
    frames: int = 30
    top: int = 15
    baseline: Path | None = None
    output: Path = RESULTS / "hold-memory.json"
    nice: int = 0


def sockets(pid: int) -> int:
    """Sockets open in process ``pid`` (``/proc/<pid>/fd``)."""
    count = 0
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return 0
    for name in names:
        try:
            count += os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:")
        except OSError:
            continue
    return count


def _where(frame: tracemalloc.Frame) -> str:
    path = frame.filename
    for marker in ("site-packages/", "/core/", "/plugins/", "/lib/python3"):
        idx = path.find(marker)
        if idx >= 0:
            path = path[idx + len(marker) :]
            break
    return f"{path}:{frame.lineno}"


def per_stream(
    before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, streams: int, top: int
) -> dict[str, Any]:
    """``after`` minus ``before`` divided by ``streams``: the total, the top allocating lines and
    the top call stacks (each shown by its frames in :data:`OWN_CODE`, innermost first)."""
    lines = after.compare_to(before, "lineno")
    stacks = after.compare_to(before, "traceback")
    total = sum(s.size_diff for s in lines)
    by_line = [
        {
            "where": _where(s.traceback[0]),
            "bytes_per_stream": s.size_diff / streams,
            "blocks_per_stream": s.count_diff / streams,
        }
        for s in lines[:top]
    ]
    by_stack = []
    for s in stacks[:top]:
        frames = list(reversed(s.traceback))  # innermost first
        own = [_where(f) for f in frames if any(m in f.filename for m in OWN_CODE)]
        own = list(dict.fromkeys([_where(f) for f in frames[:3]] + own))
        by_stack.append(
            {
                "allocated_at": _where(s.traceback[-1]) if s.traceback else "?",
                "via": own[:6],
                "bytes_per_stream": s.size_diff / streams,
                "blocks_per_stream": s.count_diff / streams,
            }
        )
    return {"python_bytes_per_stream": total / streams, "by_line": by_line, "by_stack": by_stack}


async def _hold(port: int, options: Options, on_open: Any, hold: float = 15.0) -> loadgen.HoldResult:
    """Open ``options.streams`` streams; ``on_open(n)`` once, when all are open or, failing that,
    5 s after the ramp should have ended (``n``: the streams open then)."""
    target = Target(
        "hold", port, "/v1/chat/completions", openai_body("bench-hold", True, 600), True, CLIENT_HEADERS
    )
    fired = [False]
    late = loadgen.now() + options.streams / options.ramp + 5.0

    def tick(open_now: int) -> None:
        if not fired[0] and (open_now >= options.streams or loadgen.now() >= late):
            fired[0] = True
            on_open(open_now)
        print(f"  {open_now} streams open", flush=True)

    ramp_timeout = options.streams / options.ramp + 10
    return await loadgen.hold_streams(
        target, options.streams, options.ramp, hold, ramp_timeout, on_tick=tick, tick=2.0
    )


async def _wait_file(path: Path, within: float) -> None:
    deadline = time.monotonic() + within
    while not await asyncio.to_thread(path.exists):
        if time.monotonic() > deadline:
            raise RuntimeError(f"no snapshot {path.name} within {within:.0f} s")
        await asyncio.sleep(0.2)


async def run(options: Options, workdir: Path, procs: Procs) -> dict[str, Any]:
    """The measurement (processes started in ``procs``)."""
    raise_nofile()
    ports, settings = Ports(), Settings(hold_interval=1.0)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    gw_env = baseline.baseline_env(options.baseline, env) if options.baseline else env
    config = workdir / "gateway.yaml"
    config.write_text(gateway_config(ports, {"openai"}, settings, nginx=False))
    upstream = procs.start(
        "upstream", [sys.executable, "-m", "bench.upstream", "--port", str(ports.upstream)], None, env=env
    )
    argv = [sys.executable, "-c", WRAPPER, str(options.frames), str(workdir), "serve"]
    argv += ["--config", str(config), "--listen", f"127.0.0.1:{ports.gateway}"]
    gateway = procs.start("gateway", argv, None, env=gw_env, cwd=str(workdir))
    for proc, port, path in (
        (upstream, ports.upstream, "/health"),
        (gateway, ports.gateway, "/admin/v1/health"),
    ):
        deadline = time.monotonic() + 600
        while await loadgen.request_once("127.0.0.1", port, "GET", path) != 200:
            if not proc.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{proc.name} did not start:\n{proc.log_tail()}")
            await asyncio.sleep(0.2)
    os.kill(gateway.pid, signal.SIGUSR1)
    await _wait_file(workdir / "tracing", 60)
    warm = Options(streams=min(200, options.streams), ramp=options.ramp)
    await _hold(ports.gateway, warm, lambda n: None, hold=1.0)  # lazy imports, pools, caches
    await asyncio.sleep(2.0)
    os.kill(gateway.pid, signal.SIGUSR1)
    await _wait_file(workdir / "snapshot-1.pickle", 120)
    rss_before, sockets_before = rss_bytes(gateway.pid), sockets(gateway.pid)
    rss_holding, open_at_snapshot, in_gateway = [0], [0], [0]

    def opened(open_now: int) -> None:
        rss_holding[0], open_at_snapshot[0] = rss_bytes(gateway.pid), open_now
        in_gateway[0] = (sockets(gateway.pid) - sockets_before) // 2  # a client and an upstream socket each
        os.kill(gateway.pid, signal.SIGUSR1)

    held = await _hold(ports.gateway, options, opened)
    await _wait_file(workdir / "snapshot-2.pickle", 300)
    # per stream in the gateway: every one it holds, answered (open) or not yet
    streams = max(1, in_gateway[0], open_at_snapshot[0])
    before = tracemalloc.Snapshot.load(str(workdir / "snapshot-1.pickle"))
    after = tracemalloc.Snapshot.load(str(workdir / "snapshot-2.pickle"))
    out = per_stream(before, after, streams, options.top)
    out.update(
        streams=streams,
        asked=options.streams,
        open_at_snapshot=open_at_snapshot[0],
        held_min=held.held_min,
        failed=held.failed_before_close,
        rss_before_mb=rss_before / MB,
        rss_holding_mb=rss_holding[0] / MB,
        rss_bytes_per_stream=(rss_holding[0] - rss_before) / streams,
        baseline=str(options.baseline) if options.baseline else None,
    )
    return out


def report(out: dict[str, Any]) -> str:
    """The tables printed at the end."""
    head = (
        f"{out['streams']:,} streams in the gateway ({out['open_at_snapshot']:,} answered): "
        f"RSS {out['rss_before_mb']:.1f} -> {out['rss_holding_mb']:.1f} MB, "
        f"{out['rss_bytes_per_stream'] / 1024:.1f} KB per stream; Python allocations (tracemalloc) "
        f"{out['python_bytes_per_stream'] / 1024:.1f} KB per stream"
    )
    lines = table(
        ["allocating line", "bytes / stream", "blocks / stream"],
        [[r["where"], r["bytes_per_stream"], r["blocks_per_stream"]] for r in out["by_line"]],
        "\nper held stream, by allocating line",
    )
    stacks = table(
        ["allocated at", "bytes / stream", "via (innermost first)"],
        [[r["allocated_at"], r["bytes_per_stream"], " < ".join(r["via"][:4])] for r in out["by_stack"]],
        "\nper held stream, by call stack",
    )
    return "\n".join([head, lines, stacks])


def main(argv: Sequence[str] | None = None) -> int:
    """Run it; print the tables; write the JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.hold_memory", description=__doc__)
    parser.add_argument("--streams", type=int, default=2000, help="streams to hold (default 2000)")
    parser.add_argument("--ramp", type=float, default=200.0, help="new streams per second (default 200)")
    parser.add_argument("--frames", type=int, default=30, help="tracemalloc frames kept per allocation")
    parser.add_argument("--top", type=int, default=15, help="rows per table")
    parser.add_argument("--baseline", type=Path, metavar="DIR", help="measure another checkout's gateway")
    parser.add_argument("--output", type=Path, default=RESULTS / "hold-memory.json")
    parser.add_argument("--nice", type=int, default=0, help="nice value of the gateway and the upstream")
    args = parser.parse_args(argv)
    options = Options(args.streams, args.ramp, args.frames, args.top, args.baseline, args.output, args.nice)
    workdir = Path(tempfile.mkdtemp(prefix="truckllm-hold-memory-"))
    procs = Procs(workdir, nice=options.nice)
    try:
        import uvloop

        out = uvloop.run(run(options, workdir, procs))
    except RuntimeError as exc:
        print(f"hold_memory failed: {exc}", file=sys.stderr)
        return 1
    finally:
        procs.close()
    print(report(out))
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(out, indent=1) + "\n")
    print(f"\nresults: {options.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
