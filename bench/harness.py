"""What the benchmark's lanes share: settings, request bodies, configs, process helpers, metrics."""

from __future__ import annotations

import itertools
import json
import math
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.loadgen import RunResult
from bench.procs import cpu_seconds, free_port, system_cpu
from bench.report import added, fmt, summarize

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
LANES = (
    "latency",
    "translation",
    "streaming",
    "responses",
    "cache_affinity",
    "request_log",
    "upload",
    "replicas",
    "throughput",
    "nginx",
    "profile",
    "hold",
    "memory",
)
MB = 1024 * 1024

SYSTEM = "You are a helpful assistant. Answer briefly, and say so when you do not know."
USER = "Summarise the following notes in two sentences. " + " ".join(
    f"Item {i}: the shipment left the depot at {8 + i % 10}:{i % 60:02d} and arrived on time."
    for i in range(12)
)

OPENAI_MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-sonnet-4-5"
GEMINI_MODEL = "gemini-2.5-flash"
CLIENT_HEADERS = (("authorization", "Bearer bench-client-key"),)


# --------------------------------------------------------------------------- settings


@dataclass
class Settings:
    """Everything a run does; ``--quick`` and ``--full`` pick the defaults."""

    mode: str = "quick"
    lanes: tuple[str, ...] = LANES
    c1_seconds: float = 3.0
    rates: tuple[float, ...] = (100.0, 500.0)
    rate_seconds: float = 3.0
    compare_rate: float = 200.0  # the fixed rate of the translation and nginx lanes
    rounds: int = 2
    frontier_start: float = 250.0
    frontier_max: float = 16000.0
    frontier_seconds: float = 3.0
    frontier_precision: float = 0.15
    p99_budget_ms: float = 5.0
    c50_seconds: float = 4.0
    workers: tuple[int, ...] = (1, 2)
    stream_rate: float = 50.0
    stream_seconds: float = 6.0
    stream_chunks: int = 10
    stream_interval: float = 0.02
    ttft_repeat: int = 5  # streaming lane: runs of the OpenAI stream comparison, each p99 reported
    hold_streams: int = 10000
    hold_ramp: float = 400.0
    hold_seconds: float = 5.0
    hold_interval: float = 1.0
    soak_seconds: float = 20.0
    soak_rate: float = 300.0
    profile_seconds: float = 8.0
    profile_rate: float = 0.0  # 0: closed loop at concurrency 50
    log_rates: tuple[float, ...] = (2000.0,)  # the request_log lane (bench/request_log_lane.py)
    log_seconds: float = 15.0
    log_outage_seconds: float = 5.0
    upload_mb: int = 200  # the upload lane (bench/upload_lane.py): the file's size, MiB
    replicas_rate: float = 2000.0  # the replicas lane (bench/replicas_lane.py): total req/s
    replicas_seconds: float = 10.0  # ... and the length of its run
    pin: bool = True
    nice: int = 0
    keys: bool = False
    wait_idle: float = 0.0
    output: Path = RESULTS / "latest.json"
    baseline: Path | None = None  # another checkout: its gateway is the "before" of every pair

    @classmethod
    def full(cls) -> Settings:
        """Longer steps, finer search: about 10 minutes."""
        return cls(
            mode="full",
            c1_seconds=8.0,
            rates=(100.0, 500.0, 1000.0),
            rate_seconds=5.0,
            frontier_seconds=5.0,
            frontier_precision=0.05,
            c50_seconds=8.0,
            stream_seconds=12.0,
            hold_seconds=15.0,
            soak_seconds=60.0,
            profile_seconds=15.0,
            log_seconds=60.0,
            log_outage_seconds=10.0,
        )


# --------------------------------------------------------------------------- request bodies


def openai_body(model: str, stream: bool = False, max_tokens: int | None = None) -> bytes:
    """A typical chat request: a system prompt, a ~1 KB user message."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}],
        "temperature": 0.2,
    }
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body).encode()


def responses_body(model: str, stream: bool = False, max_tokens: int | None = None) -> bytes:
    """The same request in OpenAI's Responses shape: ``instructions`` and one user input item."""
    body: dict[str, Any] = {
        "model": model,
        "instructions": SYSTEM,
        "input": [{"role": "user", "content": USER}],
        "temperature": 0.2,
    }
    if max_tokens is not None:
        body["max_output_tokens"] = max_tokens
    if stream:
        body["stream"] = True
    return json.dumps(body).encode()


def anthropic_body(model: str, stream: bool = False, max_tokens: int = 256) -> bytes:
    """The same request in Anthropic's Messages shape."""
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": max_tokens,
        "system": SYSTEM,
        "messages": [{"role": "user", "content": USER}],
        "temperature": 0.2,
    }
    if stream:
        body["stream"] = True
    return json.dumps(body).encode()


def gemini_body(max_tokens: int = 256) -> bytes:
    """The same request in Gemini's generateContent shape."""
    return json.dumps(
        {
            "systemInstruction": {"parts": [{"text": SYSTEM}]},
            "contents": [{"role": "user", "parts": [{"text": USER}]}],
            "generationConfig": {"temperature": 0.2, "maxOutputTokens": max_tokens},
        }
    ).encode()


# --------------------------------------------------------------------------- processes


def installed_providers(truckllm: list[str]) -> set[str]:
    """Provider plugin types ``truckllm plugins --json`` lists as loaded."""
    return installed_plugins(truckllm, "provider")


def installed_dialects(truckllm: list[str]) -> set[str]:
    """Inbound dialect plugins (``responses``, ``anthropic``...) ``truckllm plugins --json`` lists."""
    return installed_plugins(truckllm, "dialect")


def installed_plugins(truckllm: list[str], kind: str) -> set[str]:
    """Names of the loaded plugins of one kind (entry points ``<kind>-<name>``)."""
    try:
        out = subprocess.run([*truckllm, "plugins", "--json"], capture_output=True, timeout=60, check=False)
        plugins = json.loads(out.stdout)
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return set()
    found = set()
    for plugin in plugins:
        entry = str(plugin.get("entry_point", "")).split("=", 1)[0].strip()
        if entry.startswith(f"{kind}-") and plugin.get("status") == "loaded":
            found.add(entry.removeprefix(f"{kind}-"))
    return found


def truckllm_command() -> list[str]:
    """How to run ``truckllm`` from this interpreter's environment."""
    script = Path(sys.executable).parent / "truckllm"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from truckllm.cli import main; sys.exit(main())"]


@dataclass
class Ports:
    """Every port the run listens on (all on 127.0.0.1)."""

    upstream: int = field(default_factory=free_port)
    gateway: int = field(default_factory=free_port)
    gateway2: int = field(default_factory=free_port)
    nginx_static: int = field(default_factory=free_port)
    nginx_proxy: int = field(default_factory=free_port)
    baseline: int = field(default_factory=free_port)
    """The "before" gateway of ``--baseline``."""


def gateway_config(ports: Ports, providers: set[str], settings: Settings, nginx: bool) -> str:
    """The gateway's YAML config: one alias per upstream dialect, all on the fake upstream."""
    up = f"http://127.0.0.1:{ports.upstream}"
    hold_model = f"{OPENAI_MODEL}-i{round(settings.hold_interval * 1000)}"
    lines = [
        "# generated by bench/run.py",
        "server:",
        "  graceful_timeout: 2s",
        "  limits: {max_header_bytes: 65536}",
        "admin: {token: bench-admin}",
        "providers:",
        f"  up-openai: {{type: openai, base_url: '{up}/v1', keys: [{{name: k1, value: bench-key}}]}}",
    ]
    models = [
        "models:",
        f"  bench-openai: {{deployments: [{{provider: up-openai, model: {OPENAI_MODEL}}}]}}",
        f"  bench-hold: {{deployments: [{{provider: up-openai, model: {hold_model}}}]}}",
    ]
    if "anthropic" in providers:
        lines.append(
            f"  up-anthropic: {{type: anthropic, base_url: '{up}', keys: [{{name: k1, value: bench-key}}]}}"
        )
        models.append(
            f"  bench-anthropic: {{deployments: [{{provider: up-anthropic, model: {ANTHROPIC_MODEL}}}]}}"
        )
    if "gemini" in providers:
        lines.append(
            f"  up-gemini: {{type: gemini, base_url: '{up}/v1beta', keys: [{{name: k1, value: bench-key}}]}}"
        )
        models.append(f"  bench-gemini: {{deployments: [{{provider: up-gemini, model: {GEMINI_MODEL}}}]}}")
    if nginx:
        lines.append(
            f"  up-nginx: {{type: openai, base_url: 'http://127.0.0.1:{ports.nginx_static}/v1', "
            "keys: [{name: k1, value: bench-key}]}"
        )
        models.append(f"  bench-nginx: {{deployments: [{{provider: up-nginx, model: {OPENAI_MODEL}}}]}}")
    text = "\n".join(lines + models) + "\n"
    if settings.keys:
        text += (
            "keys:\n"
            "  - {name: bench, value: bench-client-key, rpm: 100000000, tpm: 100000000000,"
            " budget: {usd: 1000000000, period: month}}\n"
        )
    return text


NGINX_STATIC = """daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx-{name}.pid;
error_log {dir}/nginx-{name}-error.log warn;
events {{ worker_connections 16384; }}
http {{
  access_log off;
  client_body_temp_path {dir}/nginx-{name}-body;
  proxy_temp_path {dir}/nginx-{name}-proxy;
  fastcgi_temp_path {dir}/nginx-{name}-fastcgi;
  uwsgi_temp_path {dir}/nginx-{name}-uwsgi;
  scgi_temp_path {dir}/nginx-{name}-scgi;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  {body}
}}
"""


def nginx_static_conf(workdir: Path, port: int, answer: bytes) -> str:
    """nginx answering every request with ``answer`` (OpenAI's chat completion)."""
    body = (
        f"server {{ listen 127.0.0.1:{port}; location / {{ default_type application/json; "
        f"return 200 '{answer.decode()}'; }} }}"
    )
    return NGINX_STATIC.format(dir=workdir, name="static", body=body)


def nginx_proxy_conf(workdir: Path, port: int, upstream: int) -> str:
    """nginx as a bare keep-alive reverse proxy to ``upstream``."""
    body = (
        f"upstream py {{ server 127.0.0.1:{upstream}; keepalive 512; keepalive_requests 10000000; }}\n"
        f"  server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://py; proxy_http_version 1.1; "
        'proxy_set_header Connection ""; proxy_buffering off; } }'
    )
    return NGINX_STATIC.format(dir=workdir, name="proxy", body=body)


class CpuWatch:
    """CPU used by each process (as a share of one CPU) and by the whole machine between two points."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.wall = time.monotonic()
        self.own = time.process_time()
        self.machine = system_cpu()
        self.procs = {name: cpu_seconds(pid) for name, pid in pids.items()}

    def stop(self) -> dict[str, float]:
        """Utilisation since the start: 1.0 = one CPU busy the whole time."""
        wall = max(1e-9, time.monotonic() - self.wall)
        out = {name: (cpu_seconds(pid) - self.procs[name]) / wall for name, pid in self.pids.items()}
        out["loadgen"] = (time.process_time() - self.own) / wall
        machine = (system_cpu() - self.machine) / wall
        out["machine"] = machine
        out["others"] = max(0.0, machine - sum(v for k, v in out.items() if k != "machine"))
        return {k: round(v, 3) for k, v in out.items()}


# --------------------------------------------------------------------------- metrics


def latencies(result: RunResult, closed: bool) -> list[float]:
    """Seconds per successful request: from the send (closed loop) or the intended send (open loop)."""
    if closed:
        return [s.end - s.sent for s in result.samples if s.ok]
    return [s.end - s.intended for s in result.samples if s.ok]


def ttfts(result: RunResult) -> list[float]:
    """Seconds from the intended send to the first content event."""
    return [s.ttft - s.intended for s in result.samples if s.ok and s.ttft]


def gaps(result: RunResult) -> list[float]:
    """Seconds between consecutive content events of each stream."""
    out: list[float] = []
    for s in result.samples:
        if s.ok and s.events:
            out.extend(b - a for (a, _), (b, _) in itertools.pairwise(s.events))
    return out


def stretches(result: RunResult) -> list[float]:
    """Per pair of consecutive content events: arrival gap minus the upstream's send gap (stamps).

    What the path between the upstream and this process added to (or took from) each gap; the
    upstream's own pacing jitter cancels out.
    """
    out: list[float] = []
    for s in result.samples:
        if s.ok and s.events:
            out.extend((a2 - a1) - (s2 - s1) for (a1, s1), (a2, s2) in itertools.pairwise(s.events))
    return out


def transits(result: RunResult) -> list[float]:
    """Seconds from the upstream writing each content event to this process reading it."""
    return [a - stamp for s in result.samples if s.ok and s.events for a, stamp in s.events]


def send_lag(result: RunResult) -> dict[str, float]:
    """How late the generator sent (open loop): p50/p99/max ms."""
    lags = summarize(s.sent - s.intended for s in result.samples if s.sent)
    return {"p50": lags["p50"], "p99": lags["p99"], "max": lags["max"]}


def merge(results: Sequence[RunResult]) -> RunResult:
    """Several runs of the same kind as one."""
    first = results[0]
    return RunResult(
        samples=[s for r in results for s in r.samples],
        duration=sum(r.duration for r in results),
        offered_rate=first.offered_rate,
        concurrency=first.concurrency,
        unfinished=sum(r.unfinished for r in results),
        connections=max(r.connections for r in results),
    )


def comparison(
    direct: RunResult, gateway: RunResult, metric: Callable[[RunResult], list[float]]
) -> dict[str, Any]:
    """Direct vs gateway summaries and the added figures."""
    d, g = summarize(metric(direct)), summarize(metric(gateway))
    return {
        "direct": d,
        "gateway": g,
        "added": added(d, g),
        "errors": {"direct": direct.errors, "gateway": gateway.errors},
        "requests": {"direct": len(direct.samples), "gateway": len(gateway.samples)},
    }


def first_error(result: RunResult) -> str | None:
    """A sample of what failed, for the notes."""
    for s in result.samples:
        if not s.ok:
            return s.error or f"HTTP {s.status}"
    return "unfinished" if result.unfinished else None


def clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become null, tuples lists, paths strings."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else round(value, 4)
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def frontier_text(res: dict[str, Any]) -> str:
    """``1,234`` or ``< 250`` when even the lowest rate tried failed."""
    if res.get("frontier"):
        return fmt(float(res["frontier"]))
    return f"< {fmt(float(res['first_fail']))}" if res.get("first_fail") else "-"


def _slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of ``(x, y)`` points (0 with fewer than two)."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else 0.0


_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def top_functions(collapsed: str, count: int) -> tuple[list[dict[str, Any]], int]:
    """Own and inclusive sample shares per function from py-spy's raw (collapsed) output."""
    own: dict[tuple[str, str], int] = {}
    inclusive: dict[tuple[str, str], int] = {}
    total = 0
    for line in collapsed.splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        n = int(number)
        total += n
        frames: list[tuple[str, str]] = []
        for text in stack.split(";"):
            match = _FRAME.match(text.strip())
            func, file = (match["func"], match["file"]) if match else (text.strip(), "")
            frames.append((func, _short(file)))
        if frames and frames[0][0].startswith("process ") and len(frames) > 1:
            frames = frames[1:]  # py-spy's "process <pid>:..." root
        if not frames:
            continue
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + n
    ranked = sorted(own.items(), key=lambda kv: kv[1], reverse=True)[:count]
    top = [
        {
            "function": func,
            "file": file,
            "own": n,
            "own_pct": 100.0 * n / max(1, total),
            "total_pct": 100.0 * inclusive.get((func, file), 0) / max(1, total),
        }
        for (func, file), n in ranked
    ]
    return top, total


def _short(path: str) -> str:
    for marker in ("site-packages/", "/core/", "/plugins/", "lib/python3"):
        idx = path.find(marker)
        if idx >= 0:
            return (
                path[idx + len(marker) :] if marker != "lib/python3" else "stdlib:" + path.rsplit("/", 1)[-1]
            )
    return path
