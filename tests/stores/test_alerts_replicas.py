"""Alerts fire exactly once per event across replicas (issue 19): two real gateway processes on
one Redis (a prefix of their own) see the same events at the same moments (budget thresholds
raised in both, the same keys disabled and enabled by operators on both, the same refused key
hit in both), each with a webhook logger to one receiver on loopback; the receiver gets each
alert id exactly once. With the memory store (nothing shared) each process still dedupes its own
repeats: each id comes once from each process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx2 as httpx
import msgspec
import pytest
import redis
from aiohttp import web

from truckllm_testing.fakes import FakeOpenAI
from truckllm_testing.loopback import LoopbackServer

ADMIN = {"authorization": "Bearer admin-token"}
GOOD = "sk-test-aaaaaaaaaaaaaaaaaaaa"
REFUSED = "sk-test-refused-cccccccccccc"  # the fake answers 401
KEYS = 4  # k0..k3: disabled and enabled by operators on both replicas
CHAT = {"model": "refused", "messages": [{"role": "user", "content": "hi"}]}
THRESHOLDS = ("0.5", "0.8", "1.0")

REPLICA = r'''
import asyncio, sys
from truckllm.types import Alert
from truckllm_testing.server import GatewayServer

async def thresholds(gateway):
    """The same budget crossings, seen many times over (each request that crosses one)."""
    for _ in range(10):
        for threshold in ("0.5", "0.8", "1.0"):
            alert = Alert(id=f"budget:team:search:month:2026-12:{threshold}", kind="budget",
                          subject="team:search", message=f"team search passed {threshold}", at=0.0,
                          threshold=float(threshold), period="2026-12", spent_usd=1.0, limit_usd=1.0)
            gateway.alerts.emit(alert, 3600)
    await gateway.alerts.drain()

with GatewayServer(open(sys.argv[1]).read()) as gw:
    print(gw.url, flush=True)
    for line in sys.stdin:
        if line.strip() == "budget":
            gw.call(thresholds(gw.gateway))
            print("ok", flush=True)
'''


class Receiver(LoopbackServer):
    """The webhook endpoint: every alert POST, by the replica that sent it."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.alerts: list[tuple[str, str, dict[str, Any]]] = []  # (replica, alert id, alert)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        if request.headers.get("x-truckllm-payload") == "alert":
            body = msgspec.json.decode(await request.read())
            assert body["type"] == "alert"
            with self.lock:
                self.alerts.append((request.headers["x-replica"], body["alert"]["id"], body["alert"]))
        return web.Response(status=204)


def config(base_url: str, store: str, hook: str, replica: str) -> str:
    keys = "\n".join(f"      - {{name: k{i}, value: {GOOD}}}" for i in range(KEYS))
    return f"""
admin: {{token: admin-token}}
store: {store}
alerts: {{key_health_interval: 1h}}
loggers:
  - webhook: {{url: "{hook}", headers: {{x-replica: {replica}}}, flush_interval: 10ms}}
routing: {{retries: 0}}
providers:
  oa:
    type: openai
    base_url: {base_url}
    keys:
{keys}
  bad:
    type: openai
    base_url: {base_url}
    keys:
      - {{name: refused, value: {REFUSED}}}
models:
  gpt-4o:
    deployments: [{{provider: oa, model: gpt-4o}}]
  refused:
    deployments: [{{provider: bad, model: gpt-4o}}]
"""


class Replica:
    """One gateway process (``REPLICA``), driven through its stdin."""

    def __init__(self, text: str, tmp: Path, name: str) -> None:
        path = tmp / f"{name}.yaml"
        path.write_text(text)
        script = tmp / "replica.py"
        script.write_text(REPLICA)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, str(script), str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.url = ""

    def wait_ready(self) -> None:
        """Wait for the gateway's URL (it is serving)."""
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        assert self.url.startswith("http://127.0.0.1:"), "the replica did not start"

    def budget(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("budget\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "ok"

    def stop(self) -> None:
        """Close stdin: the gateway stops like on SIGTERM (alerts drained, the webhook flushed)."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        assert self.process.wait(60) == 0
        self.close()

    def close(self) -> None:
        """Kill the process if it still runs; close its pipes."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()


def run_events(replicas: list[Replica]) -> None:
    """Both replicas see every event at about the same moment, several times over."""
    jobs: list[tuple[str, str]] = []
    for replica in replicas:
        for _ in range(2):
            for i in range(KEYS):
                jobs.append((replica.url, f"/admin/v1/providers/oa/keys/k{i}/disable"))
                jobs.append((replica.url, f"/admin/v1/providers/oa/keys/k{i}/enable"))
            jobs += [(replica.url, "/v1/chat/completions")] * 3

    def send(job: tuple[str, str]) -> int:
        url, path = job
        if path.startswith("/admin"):
            return httpx.post(url + path, headers=ADMIN, timeout=30).status_code
        return httpx.post(
            url + path, json=CHAT, headers={"authorization": "Bearer x"}, timeout=30
        ).status_code

    with ThreadPoolExecutor(16) as pool:
        budget = [pool.submit(r.budget) for r in replicas]
        statuses = list(pool.map(send, jobs))
        for future in budget:
            future.result()
    assert all(s == 200 for s, (_, p) in zip(statuses, jobs, strict=True) if p.startswith("/admin"))


EXPECTED = {
    *(("budget", "team:search", t) for t in THRESHOLDS),
    *(("key_disabled", f"provider:oa/k{i}", None) for i in range(KEYS)),
    *(("key_enabled", f"provider:oa/k{i}", None) for i in range(KEYS)),
    ("key_disabled", "provider:bad/refused", None),
}


def events(alerts: list[tuple[str, str, dict[str, Any]]]) -> set[tuple[str, str, str | None]]:
    """What the alerts were about (an id's window aside)."""
    return {
        (a["kind"], a["subject"], a["id"].rsplit(":", 1)[1] if a["kind"] == "budget" else None)
        for _, _, a in alerts
    }


def run(tmp_path: Path, store: str) -> list[tuple[str, str, dict[str, Any]]]:
    fake = FakeOpenAI(keys=(GOOD,))
    receiver = Receiver()
    with fake.running(), receiver.running(), ExitStack() as stack:
        hook = receiver.origin + "/hook"
        replicas = []
        for name in ("a", "b"):
            replica = Replica(config(fake.base_url, store, hook, name), tmp_path, name)
            stack.callback(replica.close)
            replicas.append(replica)
        for replica in replicas:  # both start at once
            replica.wait_ready()
        run_events(replicas)
        for replica in replicas:
            replica.stop()
        return list(receiver.alerts)


@pytest.fixture
def redis_store() -> Iterator[str]:
    prefix = f"truckllm-test-{uuid.uuid4().hex[:12]}:"
    yield f"{{type: redis, addr: '127.0.0.1:6379', prefix: '{prefix}', timeout: 2s}}"
    client = redis.Redis(host="127.0.0.1", port=6379)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.mark.redis
def test_two_processes_on_one_redis_send_each_alert_id_once(tmp_path: Path, redis_store: str) -> None:
    alerts = run(tmp_path, redis_store)
    ids = Counter(alert_id for _, alert_id, _ in alerts)
    assert ids and max(ids.values()) == 1, ids  # each id exactly once, whichever replica sent it
    assert events(alerts) == EXPECTED


def test_with_the_memory_store_each_process_dedupes_its_own_repeats(tmp_path: Path) -> None:
    alerts = run(tmp_path, "{type: memory}")
    per_replica = Counter((replica, alert_id) for replica, alert_id, _ in alerts)
    assert max(per_replica.values()) == 1, per_replica  # never twice from one process
    for replica in ("a", "b"):  # and each process sent every one of its events
        assert events([a for a in alerts if a[0] == replica]) == EXPECTED
