"""Two gateways (two ``truckllm serve`` processes) starting at the same moment against an empty
PostgreSQL database both come up, with one schema between them, and each one's requests land in
the shared log, searchable from either."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx2 as httpx

TRUCKLLM = str(Path(sys.executable).with_name("truckllm"))
TOKEN = "two-gateways-admin-token-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def config(url: str) -> str:
    return f"""\
admin: {{token: {TOKEN}}}
loggers: [{{sql: {{url: "{url}", flush_interval: 100ms}}}}]
providers:
  demo: {{type: mock}}
models:
  m:
    deployments: [{{provider: demo, model: echo, price: {{}}}}]
"""


async def _schema(url: str) -> tuple[list[int], int]:
    conn = await asyncpg.connect(url)
    try:
        versions = [r[0] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")]
        tables = await conn.fetchval(
            "SELECT count(*) FROM pg_class WHERE relname = 'requests' AND relkind = 'p'"
        )
        return versions, int(tables)
    finally:
        await conn.close()


def test_two_gateways_starting_at_once_make_one_schema(pg_url: str, tmp_path: Path) -> None:
    path = tmp_path / "truckllm.yaml"
    path.write_text(config(pg_url))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUCKLLM_")}
    ports = [free_port(), free_port()]
    procs = [
        subprocess.Popen(
            [TRUCKLLM, "serve", "--config", str(path), "--listen", f"127.0.0.1:{port}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=tmp_path,
        )
        for port in ports
    ]
    try:
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        deadline = time.monotonic() + 60
        ready: set[str] = set()
        while len(ready) < 2 and time.monotonic() < deadline:
            for url in urls:
                try:
                    if httpx.get(url + "/admin/v1/ready", timeout=1).is_success:
                        ready.add(url)
                except httpx.HTTPError:
                    pass
            time.sleep(0.1)
        assert ready == set(urls), [p.poll() for p in procs]
        ids = []
        for i, url in enumerate(urls):
            for j in range(3):
                answer = httpx.post(
                    url + "/v1/chat/completions",
                    json={"model": "m", "messages": [{"role": "user", "content": f"hi {i} {j}"}]},
                )
                assert answer.status_code == 200
                ids.append(answer.headers["x-request-id"])
        admin = {"authorization": f"Bearer {TOKEN}"}
        found: set[str] = set()
        deadline = time.monotonic() + 15
        while found != set(ids) and time.monotonic() < deadline:
            for url in urls:  # either replica answers for the whole log
                page = httpx.get(url + "/admin/v1/requests", headers=admin, params={"limit": "50"}).json()
                found = {r["request_id"] for r in page["data"]}
            time.sleep(0.1)
        assert found == set(ids)
        versions, partitioned = asyncio.run(_schema(pg_url))
        assert partitioned == 1
        assert versions == sorted(set(versions)) and versions  # each migration once
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        errors = []
        for proc in procs:
            try:
                _, err = proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
            errors.append(err.decode())
    assert not any("Traceback" in e for e in errors), errors
