"""The replicas lane: 4 gateways behind nginx on one Redis Cluster, and what they agree on.

``python -m bench.replicas_lane --rate 2000 --seconds 10`` starts, on loopback:

- a 6-node Redis Cluster (3 primaries, 3 replicas; :mod:`truckllm_testing.redis_servers`),
- the lean fake upstream of :mod:`bench.replicas_upstream` (it counts hits per replica, provider
  key and status, and answers 429 on a key once told to),
- ``--replicas`` (4) ``truckllm serve`` processes of one worker each, every one with the Redis
  store in cluster mode (``flush_interval: 200ms``) and the same keys, each with its own path
  prefix on the upstream (``/r<i>/v1``) so the upstream knows who sent what,
- nginx in front of them (round robin, keep-alive to the replicas),

then drives nginx with the open-loop generator of :mod:`bench.loadgen` at ``--rate`` req/s for
``--seconds``: 9 requests in 10 on the key ``bulk`` (a high rpm: every request still makes its one
admission round trip to Redis), 1 in 10 on ``spender`` (a ``total`` budget of ``--budget`` USD;
each request reserves and costs exactly $1: ``max_tokens`` 16 at $62,500 per million output
tokens, 16 completion tokens answered). At 30% of the run a burst of ``--burst`` requests on
``limited`` (``rpm: --rpm``) goes out within ``--burst-window`` s (less than half of ``60 / rpm``
s, so no GCRA refill can fall inside it); at 50% the upstream starts answering 429
(``Retry-After: 60``) on the provider key ``hot`` (its twin ``cold`` keeps answering).

The exactness checks:

- (a) ``limited`` gets exactly ``rpm`` answers 200 across all replicas, the rest 429;
- (b) ``spender`` gets exactly ``budget`` answers 200 (or all, when fewer were sent), the usage
  records ``budget`` USD at most for it, and equal to its 200s;
- (c) after the first 429 on ``hot`` the upstream sees each replica's last hit on ``hot`` within
  one store round trip plus the requests already on their way (the hits after it, per replica,
  and how late the last came, against the Redis round trip measured during the run);
- (d) ``GET /admin/v1/usage?group_by=key`` asked of every replica directly returns the same
  answer, whose successful requests equal the upstream's 200s and the client's 200s.

Also the ``replicas`` lane of ``python -m bench`` (:func:`run_lane`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import loadgen
from bench.procs import Proc, Procs, cpu_seconds, free_port, nginx_binary, system_cpu
from bench.report import summarize

__all__ = ["HEADERS", "Options", "main", "markdown_row", "measure", "missing_tools", "run_lane"]

REPO = Path(__file__).resolve().parent.parent
ADMIN_TOKEN = "bench-admin"
KEYS = {"bulk": "bench-bulk-key-0001", "limited": "bench-limited-key-01", "spender": "bench-spender-key-01"}
PROVIDER_KEYS = {"hot": "sk-replicas-hot", "cold": "sk-replicas-cold"}
HEADERS = [
    "replicas",
    "offered req/s",
    "achieved req/s",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "errors",
    "(a) rpm exact",
    "(b) budget exact",
    "(c) cooldown",
    "(d) usage",
]
"""The columns of :func:`markdown_row`."""


@dataclass
class Options:
    """What one run does."""

    rate: float = 2000.0
    seconds: float = 10.0
    replicas: int = 4
    rpm: int = 20
    burst: int = 100
    burst_window: float = 0.5
    budget: int = 500
    flush_interval_ms: int = 1000
    store_timeout: str = "1s"
    max_conns: int = 512
    shared_store: bool = True  # False: every replica on its own memory store (the negative control)

    def __post_init__(self) -> None:
        if self.burst_window * 2 > 60 / self.rpm:
            raise ValueError(
                f"the burst window ({self.burst_window} s) must be under half of 60 / rpm "
                f"({60 / self.rpm:g} s): no GCRA refill may fall inside it"
            )
        if self.burst <= self.rpm:
            raise ValueError("the burst must offer more requests than the rpm admits")


def missing_tools() -> str | None:
    """Why the lane cannot run here (``redis-server``, ``redis-cli`` or nginx missing), or None."""
    for tool in ("redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install redis-server)"
    if nginx_binary() is None:
        return "nginx is not installed (apt-get install nginx-light)"
    return None


def gateway_config(index: int, port: int, upstream: int, nodes: list[str], o: Options) -> str:
    """Replica ``index``'s config: the same keys and store as every other, its own upstream prefix."""
    keys = ", ".join(f"{{name: {n}, value: {v}}}" for n, v in PROVIDER_KEYS.items())
    store = (
        f"store: {{type: redis, cluster: true, nodes: {json.dumps(nodes)}, prefix: 'bench:', "
        f"flush_interval: {o.flush_interval_ms}ms, timeout: {o.store_timeout}}}"
        if o.shared_store
        else "store: {type: memory}"
    )
    return f"""# generated by bench/replicas_lane.py
server: {{listen: "127.0.0.1:{port}", workers: 1, graceful_timeout: 2s}}
admin: {{token: {ADMIN_TOKEN}}}
{store}
providers:
  up: {{type: openai, base_url: "http://127.0.0.1:{upstream}/r{index}/v1", keys: [{keys}]}}
models:
  m: {{deployments: [{{provider: up, model: replicas-model, price: {{input: 0, output: 62500}}}}]}}
keys:
  - {{name: bulk, value: {KEYS["bulk"]}, rpm: 100000000}}
  - {{name: limited, value: {KEYS["limited"]}, rpm: {o.rpm}}}
  - {{name: spender, value: {KEYS["spender"]}, budget: {{usd: {o.budget}, period: total}}}}
"""


def nginx_conf(workdir: Path, port: int, replicas: list[int]) -> str:
    """nginx: one worker, round robin over the replicas, keep-alive to them."""
    servers = " ".join(f"server 127.0.0.1:{p};" for p in replicas)
    return f"""daemon off;
master_process off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 16384; }}
http {{
  access_log off;
  client_body_temp_path {workdir}/nginx-body;
  proxy_temp_path {workdir}/nginx-proxy;
  fastcgi_temp_path {workdir}/nginx-fastcgi;
  uwsgi_temp_path {workdir}/nginx-uwsgi;
  scgi_temp_path {workdir}/nginx-scgi;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  upstream gateways {{ {servers} keepalive 512; keepalive_requests 10000000; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      proxy_pass http://gateways; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_buffering off; proxy_next_upstream off; proxy_read_timeout 60s;
    }}
  }}
}}
"""


def _body() -> bytes:
    return json.dumps(
        {"model": "m", "max_tokens": 16, "messages": [{"role": "user", "content": "hello replicas"}]}
    ).encode()


def _target(port: int, key: str) -> loadgen.Target:
    return loadgen.Target(
        name=key,
        port=port,
        path="/v1/chat/completions",
        body=_body(),
        headers=(("authorization", f"Bearer {KEYS[key]}"),),
    )


def _get(port: int, path: str, token: str | None = None, within: float = 5.0) -> tuple[int, bytes]:
    """One GET on a fresh connection: status and body (``content-length`` answers only)."""
    with socket.create_connection(("127.0.0.1", port), timeout=within) as sock:
        auth = f"authorization: Bearer {token}\r\n" if token else ""
        sock.sendall(f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n{auth}connection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep and (length := _content_length(head)) is not None and len(body) >= length:
                break
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return None


def _post(port: int, path: str) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n".encode())
        head = sock.recv(65536)
    return int(head.split()[1])


async def _wait_ready(proc: Proc, port: int, path: str, within: float = 90.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.log_tail()}")
        if await loadgen.request_once("127.0.0.1", port, "GET", path) == 200:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{proc.name} not ready on {port}:\n{proc.log_tail()}")


async def _ping_loop(port: int, rtts: list[float], stop: asyncio.Event) -> None:
    """A Redis ``PING`` every 10 ms on one connection: the store round trip under the load."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while not stop.is_set():
            began = time.monotonic()
            writer.write(b"PING\r\n")
            await reader.readline()
            rtts.append(time.monotonic() - began)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.01)
    finally:
        writer.close()


def _hot_state(port: int) -> str:
    """The state of the provider key ``hot`` as the replica on ``port`` sees it."""
    _, body = _get(port, "/admin/v1/providers", ADMIN_TOKEN)
    for provider in json.loads(body)["providers"]:
        for key in provider["keys"]:
            if key["name"] == "hot":
                return str(key["state"])
    return "missing"


def _statuses(samples: list[loadgen.Sample]) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in samples:
        name = str(s.status) if s.error is None else "error"
        out[name] = out.get(name, 0) + 1
    return out


async def measure(o: Options, workdir: Path, say: Callable[[str], object] = print) -> dict[str, Any]:
    """One run of the lane in ``workdir``: its figures and checks."""
    from truckllm_testing.redis_servers import start_cluster

    cluster = await asyncio.to_thread(start_cluster, workdir / "redis")
    procs = Procs(workdir)
    try:
        return await _measure(o, workdir, cluster, procs, say)
    finally:
        procs.close()
        await asyncio.to_thread(cluster.stop)


async def _measure(
    o: Options, workdir: Path, cluster: Any, procs: Procs, say: Callable[[str], object]
) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    up_port = free_port()
    upstream = procs.start(
        "upstream",
        [sys.executable, "-m", "bench.replicas_upstream", "--port", str(up_port)],
        None,
        env,
        str(REPO),
    )
    ports = [free_port() for _ in range(o.replicas)]
    gateways = []
    for i, port in enumerate(ports):
        config = workdir / f"gateway-{i}.yaml"
        config.write_text(gateway_config(i, port, up_port, cluster.addrs, o))
        gateways.append(
            procs.start(
                f"gateway-{i}", [sys.executable, "-m", "truckllm.cli", "serve", "--config", str(config)], None
            )
        )
    await _wait_ready(upstream, up_port, "/control/counts")
    for proc, port in zip(gateways, ports, strict=True):
        await _wait_ready(proc, port, "/admin/v1/ready")
    lb_port = free_port()
    (workdir / "nginx.conf").write_text(nginx_conf(workdir, lb_port, ports))
    nginx_path = nginx_binary()
    assert nginx_path is not None
    nginx = procs.start("nginx", [nginx_path, "-p", str(workdir), "-c", str(workdir / "nginx.conf")], None)
    await _wait_ready(nginx, lb_port, "/admin/v1/ready")
    say(
        f"  {o.replicas} replicas on ports {ports}, nginx on {lb_port}, upstream on {up_port}, "
        f"cluster {cluster.addrs[:3]}..."
    )

    # warm-up: every replica's connections to Redis and the upstream (bulk only)
    warm = await loadgen.open_loop([_target(lb_port, "bulk")], min(o.rate, 200.0), 1.5, warmup=0.0)
    cooldown_primary = cluster.primary_of(2748)  # the {cooldowns} slot

    main_targets = [_target(lb_port, "bulk")] * 9 + [_target(lb_port, "spender")]
    rtts: list[float] = []
    stop = asyncio.Event()
    ping = asyncio.create_task(_ping_loop(cooldown_primary, rtts, stop))
    pids = {f"gateway-{i}": p.pid for i, p in enumerate(gateways)}
    pids |= {"nginx": nginx.pid, "upstream": upstream.pid}
    pids |= {f"redis-{n.port}": n.pid for n in cluster.nodes}
    cpu0 = {k: cpu_seconds(v) for k, v in pids.items()}
    machine0, own0, wall0 = system_cpu(), time.process_time(), time.monotonic()

    async def burst() -> loadgen.RunResult:
        await asyncio.sleep(o.seconds * 0.3)
        return await loadgen.open_loop(
            [_target(lb_port, "limited")], o.burst / o.burst_window, o.burst_window, warmup=0.0, max_conns=64
        )

    async def poison() -> None:
        await asyncio.sleep(o.seconds * 0.5)
        await asyncio.to_thread(_post, up_port, f"/control/poison/{PROVIDER_KEYS['hot']}")

    main_run, burst_run, _ = await asyncio.gather(
        loadgen.open_loop(
            main_targets,
            o.rate,
            o.seconds,
            warmup=0.0,
            max_conns=o.max_conns,
            preconnect=64,
            drain_timeout=30.0,
        ),
        burst(),
        poison(),
    )
    wall = time.monotonic() - wall0
    used = {k: cpu_seconds(v) - cpu0[k] for k, v in pids.items()}
    cpu = {k: round(v / wall, 3) for k, v in used.items()}
    cpu["loadgen"] = round((time.process_time() - own0) / wall, 3)
    cpu["machine"] = round((system_cpu() - machine0) / wall, 3)
    cpu["gateways"] = round(sum(v for k, v in cpu.items() if k.startswith("gateway-")), 3)
    cpu["redis"] = round(sum(v for k, v in cpu.items() if k.startswith("redis-")), 3)
    ours = cpu["gateways"] + cpu["redis"] + cpu["nginx"] + cpu["upstream"] + cpu["loadgen"]
    cpu["others"] = round(max(0.0, cpu["machine"] - ours), 3)  # programs outside the benchmark
    stop.set()
    await ping
    await asyncio.sleep(o.flush_interval_ms / 1000 * 3 + 0.5)  # every replica's last batch flushed

    # ---- what the upstream saw
    _, raw = await asyncio.to_thread(_get, up_port, "/control/counts")
    counts = json.loads(raw)
    hits: dict[str, int] = counts["hits"]
    upstream_200 = sum(n for k, n in hits.items() if k.endswith("|200"))
    per_replica = {
        f"r{i}": sum(n for k, n in hits.items() if k.startswith(f"r{i}|")) for i in range(o.replicas)
    }

    # ---- the load's outcome
    samples = main_run.samples
    bulk = [s for s in samples if s.target < 9]
    spend = [s for s in samples if s.target == 9]
    answered = [s for s in samples if s.error is None and s.status]
    ok = [s for s in samples if s.ok]
    expected_refusal = [s for s in spend if s.status == 429]
    errors = len(samples) - len(ok) - len(expected_refusal) + main_run.unfinished
    lat = summarize([s.end - s.intended for s in ok])
    span = max((s.end for s in answered), default=0.0) - min((s.intended for s in samples), default=0.0)
    span = max(span, o.seconds)
    client_200 = len(ok) + sum(1 for s in [*burst_run.samples, *warm.samples] if s.ok)

    # (a) rpm
    limited = _statuses(burst_run.samples)
    rpm_ok = limited.get("200", 0) == o.rpm and set(limited) <= {"200", "429"} and not burst_run.unfinished
    # ---- usage from every replica
    usages = [await asyncio.to_thread(_get, p, "/admin/v1/usage?group_by=key", ADMIN_TOKEN) for p in ports]
    bodies = [json.loads(b) for _, b in usages]
    identical = all(status == 200 for status, _ in usages) and all(b == bodies[0] for b in bodies)
    rows = {r["group"]["key"]: r for r in bodies[0].get("rows", [])}
    usage_ok_requests = sum(r["requests"] - r["errors"] for r in rows.values())

    # (b) budget
    spend_200 = sum(1 for s in spend if s.ok)
    spent_usd = rows.get("spender", {}).get("cost_usd", 0.0)
    want = min(len(spend), o.budget)
    budget_ok = (
        spend_200 == want
        and spent_usd <= o.budget
        and spent_usd == spend_200
        and (set(_statuses(spend)) <= {"200", "429"})
    )

    # (c) cooldown: hits on the hot key after its first 429
    after = counts["after_429"]
    first = counts["first_429_ns"]
    rtt = summarize(rtts)
    by_replica: dict[str, dict[str, float]] = {}
    for stamp, replica in after[1:]:
        entry = by_replica.setdefault(replica, {"hits": 0, "last_ms": 0.0})
        entry["hits"] += 1
        entry["last_ms"] = round((stamp - first) / 1e6, 3)
    last_ms = max((e["last_ms"] for e in by_replica.values()), default=0.0)
    states = [_hot_state(p) for p in ports]  # every replica's own view of the hot key, asked directly
    cooldown_ok = (
        first is not None
        and last_ms <= rtt["p99"] + _LOOP_SLACK_MS
        and all(state == "cooldown" for state in states)
    )

    # (d) usage equal to the upstream's count
    usage_ok = identical and usage_ok_requests == upstream_200 == client_200

    results: dict[str, Any] = {
        "options": asdict(o),
        "offered_rps": round(o.rate + o.burst / o.seconds, 1),
        # answers over the time from the first intended send to the last answer (a queue that
        # drains after the timetable ends does not count as throughput)
        "achieved_rps": round(len(answered) / span, 1),
        "span_s": round(span, 2),
        "sent": len(samples) + len(burst_run.samples),
        "answered_200": client_200,
        "bulk_statuses": _statuses(bulk),
        "errors": errors,
        "unfinished": main_run.unfinished + burst_run.unfinished,
        "latency_ms": lat,
        "send_lag_ms_max": round(max((s.sent - s.intended for s in samples if s.sent), default=0.0) * 1e3, 2),
        "per_replica_upstream_hits": per_replica,
        "cpu": cpu,
        # the gateways' CPU time over every answer they gave in the measured span (other programs'
        # load disturbs this far less than it does throughput)
        "gateway_cpu_ms_per_request": round(
            1e3
            * sum(v for k, v in used.items() if k.startswith("gateway-"))
            / max(1, len(answered) + sum(1 for s in burst_run.samples if s.error is None and s.status)),
            3,
        ),
        "checks": {
            "rpm": {"ok": rpm_ok, "rpm": o.rpm, "sent": len(burst_run.samples), "statuses": limited},
            "budget": {
                "ok": budget_ok,
                "budget_usd": o.budget,
                "sent": len(spend),
                "admitted": spend_200,
                "statuses": _statuses(spend),
                "usage_cost_usd": spent_usd,
            },
            "cooldown": {
                "ok": cooldown_ok,
                "first_429_after_poison_ms": round((first - counts["poisoned_at_ns"]) / 1e6, 3)
                if first
                else None,
                "first_429_replica": after[0][1] if after else None,
                "hits_after_first_429": len(after) - 1 if after else 0,
                "by_replica": by_replica,
                "last_hit_ms": last_ms,
                "hot_state_per_replica": states,
                "store_rtt_ms": rtt,
                "slack_ms": _LOOP_SLACK_MS,
            },
            "usage": {
                "ok": usage_ok,
                "identical": identical,
                "usage_successes": usage_ok_requests,
                "upstream_200": upstream_200,
                "client_200": client_200,
                "rows": rows,
            },
        },
    }
    say(summary(results))
    return results


_LOOP_SLACK_MS = 5.0
"""Beyond the store round trip, how late a replica may still send on a key another replica saw 429
on: the requests it had already dispatched (its event loop turn), as measured at the upstream."""


def summary(r: dict[str, Any]) -> str:
    """The run in a few lines."""
    c = r["checks"]
    lat = r["latency_ms"]
    rtt = c["cooldown"]["store_rtt_ms"]
    return (
        f"  offered {r['offered_rps']:g} req/s, achieved {r['achieved_rps']:g} req/s, errors {r['errors']}, "
        f"latency p50 {lat['p50']:.2f} p90 {lat['p90']:.2f} p99 {lat['p99']:.2f} max {lat['max']:.2f} ms\n"
        f"  (a) rpm {c['rpm']['rpm']}: {c['rpm']['statuses']} -> {'exact' if c['rpm']['ok'] else 'FAILED'}\n"
        f"  (b) budget ${c['budget']['budget_usd']}: {c['budget']['admitted']} admitted of "
        f"{c['budget']['sent']}, usage ${c['budget']['usage_cost_usd']} -> "
        f"{'exact' if c['budget']['ok'] else 'FAILED'}\n"
        f"  (c) cooldown: {c['cooldown']['hits_after_first_429']} hits after the first 429 (on "
        f"{c['cooldown']['first_429_replica']}), last "
        f"{c['cooldown']['last_hit_ms']} ms after it (store RTT p50 {rtt['p50']:.2f} "
        f"p99 {rtt['p99']:.2f} ms) {c['cooldown']['by_replica']} -> "
        f"{'ok' if c['cooldown']['ok'] else 'FAILED'}\n"
        f"  (d) usage identical from every replica: {c['usage']['identical']}; successes "
        f"{c['usage']['usage_successes']}, upstream 200s {c['usage']['upstream_200']}, client 200s "
        f"{c['usage']['client_200']} -> {'ok' if c['usage']['ok'] else 'FAILED'}\n"
        f"  CPU (share of one CPU): {r['cpu']}\n"
        f"  gateway CPU per answered request: {r['gateway_cpu_ms_per_request']:.3f} ms"
    )


def markdown_row(r: dict[str, Any]) -> list[str]:
    """One row under :data:`HEADERS`."""
    c = r["checks"]
    lat = r["latency_ms"]
    return [
        str(r["options"]["replicas"]),
        f"{r['offered_rps']:,.0f}",
        f"{r['achieved_rps']:,.0f}",
        f"{lat['p50']:.2f}",
        f"{lat['p90']:.2f}",
        f"{lat['p99']:.2f}",
        str(r["errors"]),
        f"{c['rpm']['statuses'].get('200', 0)}/{c['rpm']['rpm']} {'ok' if c['rpm']['ok'] else 'FAIL'}",
        f"{c['budget']['admitted']}/{c['budget']['budget_usd']} ${c['budget']['usage_cost_usd']:g} "
        f"{'ok' if c['budget']['ok'] else 'FAIL'}",
        f"{c['cooldown']['hits_after_first_429']} hits, last {c['cooldown']['last_hit_ms']:.1f} ms "
        f"{'ok' if c['cooldown']['ok'] else 'FAIL'}",
        f"{c['usage']['usage_successes']} = {c['usage']['upstream_200']} "
        f"{'ok' if c['usage']['ok'] else 'FAIL'}",
    ]


async def run_lane(o: Options | None = None, say: Callable[[str], object] = print) -> dict[str, Any]:
    """The ``replicas`` lane of ``python -m bench``: skipped (with the reason) without
    ``redis-server`` or nginx."""
    reason = missing_tools()
    if reason:
        say(f"  skipped: {reason}")
        return {"skipped": reason}
    with tempfile.TemporaryDirectory(prefix="truckllm-bench-replicas-") as workdir:
        return await measure(o or Options(), Path(workdir), say)


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.replicas_lane [--rate 2000 --seconds 10]``: the figures as JSON; exit 1
    when a check fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    defaults = Options()
    parser.add_argument("--rate", type=float, default=defaults.rate, help="main open-loop rate, req/s")
    parser.add_argument("--seconds", type=float, default=defaults.seconds, help="length of the run")
    parser.add_argument("--replicas", type=int, default=defaults.replicas)
    parser.add_argument("--rpm", type=int, default=defaults.rpm, help="the limited key's rpm")
    parser.add_argument("--burst", type=int, default=defaults.burst, help="requests on the limited key")
    parser.add_argument("--budget", type=int, default=defaults.budget, help="the spender's budget, USD")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    o = Options(
        rate=args.rate,
        seconds=args.seconds,
        replicas=args.replicas,
        rpm=args.rpm,
        burst=args.burst,
        budget=args.budget,
    )
    figures = asyncio.run(run_lane(o))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    if "skipped" in figures:
        return 0
    print("| " + " | ".join(HEADERS) + " |")
    print("|" + "---|" * len(HEADERS))
    print("| " + " | ".join(markdown_row(figures)) + " |")
    return 0 if all(c["ok"] for c in figures["checks"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
