"""Two gateways (two ``truckllm serve`` processes) starting at the same moment against an empty
PostgreSQL database both come up, with one schema between them, and each one's requests land in
the shared log, searchable from either.

The two reach PostgreSQL through :class:`GateProxy`, which holds every connection until both
gateways have opened one, then lets them through together: their migrations start within
milliseconds of each other, whatever each process's start-up time (without it the two rarely
overlap, and a race would go unseen). Without the migration lock, the loser of that race fails
its ``CREATE TABLE`` and the writer warns; the test looks for that warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx2 as httpx

TRUCKLLM = str(Path(sys.executable).with_name("truckllm"))
TOKEN = "two-gateways-admin-token-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class GateProxy:
    """A loopback TCP proxy to ``target`` on its own thread: connections wait, their bytes
    unread, until ``gate`` of them have come (or ``timeout`` seconds passed), then all flow."""

    def __init__(self, target: tuple[str, int], gate: int = 2, timeout: float = 20.0) -> None:
        self.target = target
        self.gate = gate
        self.timeout = timeout
        self.port = 0
        self.waited = 0
        self._loop = asyncio.new_event_loop()
        self._open: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._stop: asyncio.Event | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def __enter__(self) -> GateProxy:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _main(self) -> None:
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._open, self._stop = asyncio.Event(), asyncio.Event()
        server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()
        server.close()
        for writer in self._writers:
            writer.transport.abort()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert self._open is not None and task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.waited += 1
        if self.waited >= self.gate:
            self._open.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._open.wait(), self.timeout)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(up_writer)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


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
    parts = urlsplit(pg_url)
    with GateProxy((parts.hostname or "127.0.0.1", parts.port or 5432)) as proxy:
        gated = pg_url.replace(parts.netloc.rsplit("@", 1)[-1], f"127.0.0.1:{proxy.port}")
        _two_gateways(pg_url, gated, tmp_path)
        assert proxy.waited >= 2


def _two_gateways(pg_url: str, gated_url: str, tmp_path: Path) -> None:
    path = tmp_path / "truckllm.yaml"
    path.write_text(config(gated_url))
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
    # each came up with the schema in place at once: a migration that lost a race would have
    # logged this warning (the writer then retries, so the requests above would still land)
    complaints = [
        line
        for e in errors
        for line in e.splitlines()
        if "truckllm_logger_sql" in line and ("| WARNING" in line or "| ERROR" in line)
    ]
    assert complaints == []
