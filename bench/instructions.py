"""``python -m bench.instructions``: CPU instructions per request, counted by valgrind.

Timings on a shared 2-CPU machine drift by 20% from one minute to the next; instruction counts do
not (two runs agree to 0.1%). This runs, one after the other, under ``valgrind --tool=callgrind``:

- ``bare``: hypercorn answering a fixed chat completion (:mod:`bench.floors`);
- ``proxy``: hypercorn + one aiohttp session forwarding to the fake upstream;
- ``gateway``: ``truckllm serve`` with one OpenAI deployment on the same fake upstream,

and for each, sends ``--warmup`` requests, zeroes the counters, sends ``--requests`` keep-alive
requests (the benchmark's 1 KB chat request; the gateway rewrites its model), dumps the counters
and divides. The differences say where a request's CPU goes: the HTTP server, the upstream
client, and TruckLLM's own code. Needs valgrind (``apt-get install valgrind``); about a minute per
subject. Results print as a table and go to ``bench/results/instructions.json``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.harness import OPENAI_MODEL, openai_body
from bench.procs import free_port
from bench.report import table

__all__ = ["count", "gateway_config", "main", "read_total"]

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
_TOTAL = re.compile(r"^(?:summary|totals):\s+(\d+)", re.MULTILINE)


def read_total(dump: str) -> int:
    """The instruction total of a callgrind dump's text."""
    match = _TOTAL.search(dump)
    if match is None:
        raise ValueError("no summary/totals line in the callgrind dump")
    return int(match.group(1))


def gateway_config(port: int, upstream_url: str) -> str:
    """The gateway's config: one OpenAI deployment on the fake upstream, alias ``bench-openai``."""
    return (
        f"server: {{listen: '127.0.0.1:{port}'}}\n"
        "providers:\n"
        f"  up: {{type: openai, base_url: '{upstream_url}/v1', keys: [{{name: k1, value: bench-key}}]}}\n"
        "models:\n"
        f"  bench-openai: {{deployments: [{{provider: up, model: {OPENAI_MODEL}}}]}}\n"
    )


def _wait_port(port: int, proc: subprocess.Popen[bytes], limit: float = 240.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the process under test exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listened on port {port} within {limit:.0f}s")


def _send(port: int, body: bytes, n: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    headers = {"content-type": "application/json", "authorization": "Bearer bench"}
    try:
        for _ in range(n):
            conn.request("POST", "/v1/chat/completions", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status} from the process under test")
    finally:
        conn.close()


def count(argv: list[str], port: int, body: bytes, requests: int, warmup: int, workdir: Path) -> int:
    """Instructions per request of the server started by ``argv`` (listening on ``port``)."""
    out = workdir / f"callgrind.{port}"
    valgrind = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}.%p",
        "--dump-instr=no",
        "--collect-jumps=no",
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0", "TRUCKLLM_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen(
        valgrind + argv,
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_port(port, proc)
        _send(port, body, warmup)
        subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True)
        _send(port, body, requests)
        subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True)
        dump = Path(f"{out}.{proc.pid}.1")
        deadline = time.monotonic() + 30
        while not dump.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        return read_total(dump.read_text()) // requests
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Count, print, write JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    parser.add_argument("--requests", type=int, default=1000, help="counted requests per subject")
    parser.add_argument("--warmup", type=int, default=300, help="requests before counting")
    parser.add_argument("--subjects", default="bare,proxy,gateway", help="comma-separated")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    python = sys.executable
    truckllm = str(Path(python).with_name("truckllm"))
    upstream_port = free_port()
    upstream_url = f"http://127.0.0.1:{upstream_port}"
    upstream = subprocess.Popen(
        [python, "-m", "bench.upstream", "--port", str(upstream_port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    figures: dict[str, int] = {}
    try:
        _wait_port(upstream_port, upstream, 30)
        with tempfile.TemporaryDirectory(prefix="truckllm-ir-") as tmp:
            workdir = Path(tmp)
            for subject in args.subjects.split(","):
                port = free_port()
                if subject == "gateway":
                    config = workdir / "gateway.yaml"
                    config.write_text(gateway_config(port, upstream_url))
                    command = [truckllm, "serve", "--config", str(config)]
                    body = openai_body("bench-openai")
                else:
                    command = [python, "-m", "bench.floors", subject, str(port)]
                    command += [f"{upstream_url}/v1/chat/completions"] if subject == "proxy" else []
                    body = openai_body(OPENAI_MODEL)
                figures[subject] = count(command, port, body, args.requests, args.warmup, workdir)
                print(f"{subject}: {figures[subject]:,} instructions per request", file=sys.stderr)
    finally:
        os.killpg(upstream.pid, signal.SIGKILL)
        upstream.wait()
    whole = max(figures.values(), default=0) or 1
    rows = []
    previous = 0
    for subject, value in figures.items():
        rows.append([subject, f"{value:,}", f"{value - previous:+,}", f"{(value - previous) / whole:.0%}"])
        previous = value
    print(table(["subject", "instructions / request", "added by this layer", "share of the most"], rows))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "instructions.json").write_text(
        json.dumps({"requests": args.requests, "instructions_per_request": figures}, indent=2) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
