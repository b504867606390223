"""``python -m bench.instructions``: CPU instructions per request, counted by valgrind.

Timings on a shared 2-CPU machine drift by 20% from one minute to the next; instruction counts do
not (two runs agree to 0.1%). This runs, one after the other, under ``valgrind --tool=callgrind``
(``--subjects``, default ``bare,proxy,gateway``):

- ``bare``: hypercorn answering a fixed chat completion (:mod:`bench.floors`);
- ``proxy``: hypercorn + one aiohttp session forwarding to the fake upstream;
- ``gateway``: ``truckllm serve`` with one OpenAI deployment on the same fake upstream;
- ``responses``: the same gateway, the same request in the Responses shape (``POST /v1/responses``,
  passed through to the OpenAI deployment);
- ``chat-anthropic`` / ``responses-anthropic``: chat / Responses in, translated to an Anthropic
  deployment on the same fake upstream;
- each of the four gateway subjects with ``-stream``: the request streamed (16 content events,
  sent back to back);
- ``gateway-sql`` / ``gateway-sqlite``: ``gateway`` plus the ``sql`` request logger
  (``batch_size: 500, flush_interval: 1h``: full batches, even under valgrind) writing to a
  fresh PostgreSQL database (created on 127.0.0.1:5432, user ``postgres``, trust auth, and
  dropped after) / a fresh SQLite file: the count includes the batch writes (after the last
  request it waits, inside the counted window, until at most one batch is left unwritten and
  the row count has settled);

and for each, sends ``--warmup`` requests, zeroes the counters, sends ``--requests`` keep-alive
requests (the benchmark's 1 KB request; the gateway rewrites its model), dumps the counters
and divides. The differences say where a request's CPU goes: the HTTP server, the upstream
client, and TruckLLM's own code; each subject is compared with the one below it (``proxy`` with
``bare``, a Responses subject with its chat twin...) when both ran. Needs valgrind
(``apt-get install valgrind``); about a minute per subject. Results print as a table and go to
``bench/results/instructions.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bench.harness import ANTHROPIC_MODEL, OPENAI_MODEL, openai_body, responses_body
from bench.procs import free_port
from bench.report import table

__all__ = ["SUBJECTS", "Subject", "count", "gateway_config", "main", "read_total"]

STREAM_EVENTS = 16
"""Content events per streamed request (also the Responses API's least ``max_output_tokens``)."""


@dataclass(frozen=True)
class Subject:
    """One thing to count: what serves, and the request it is sent."""

    path: str
    """The request path."""
    body: bytes
    """The request body."""
    gateway: bool = True
    """``truckllm serve``; otherwise a floor of :mod:`bench.floors` named like the subject."""
    anthropic: bool = False
    """The gateway needs the Anthropic deployment (alias ``bench-anthropic``)."""
    base: str | None = None
    """The subject this one is compared with."""
    sql: Literal["postgres", "sqlite"] | None = None
    """The gateway also logs every request to this database (the ``sql`` logger)."""


def _subjects() -> dict[str, Subject]:
    chat, responses = "/v1/chat/completions", "/v1/responses"
    out = {
        "bare": Subject(chat, openai_body(OPENAI_MODEL), gateway=False),
        "proxy": Subject(chat, openai_body(OPENAI_MODEL), gateway=False, base="bare"),
    }
    for stream in (False, True):
        tail, events = ("-stream", STREAM_EVENTS) if stream else ("", None)
        chat_name = "gateway" + tail
        out[chat_name] = Subject(
            chat, openai_body("bench-openai", stream, events), base=None if stream else "proxy"
        )
        out["responses" + tail] = Subject(
            responses, responses_body("bench-openai", stream, events), base=chat_name
        )
        out["chat-anthropic" + tail] = Subject(
            chat, openai_body("bench-anthropic", stream, events), anthropic=True, base=chat_name
        )
        out["responses-anthropic" + tail] = Subject(
            responses,
            responses_body("bench-anthropic", stream, events),
            anthropic=True,
            base="chat-anthropic" + tail,
        )
    out["gateway-sql"] = Subject(chat, openai_body("bench-openai"), base="gateway", sql="postgres")
    out["gateway-sqlite"] = Subject(chat, openai_body("bench-openai"), base="gateway", sql="sqlite")
    return out


SUBJECTS = _subjects()
"""Every subject ``--subjects`` can name."""

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
_TOTAL = re.compile(r"^(?:summary|totals):\s+(\d+)", re.MULTILINE)


def read_total(dump: str) -> int:
    """The instruction total of a callgrind dump's text."""
    match = _TOTAL.search(dump)
    if match is None:
        raise ValueError("no summary/totals line in the callgrind dump")
    return int(match.group(1))


def gateway_config(port: int, upstream_url: str, anthropic: bool = False) -> str:
    """The gateway's config: one OpenAI deployment on the fake upstream, alias ``bench-openai``;
    with ``anthropic``, an Anthropic deployment on it too, alias ``bench-anthropic``."""
    keys = "keys: [{name: k1, value: bench-key}]"
    providers = f"  up: {{type: openai, base_url: '{upstream_url}/v1', {keys}}}\n"
    models = f"  bench-openai: {{deployments: [{{provider: up, model: {OPENAI_MODEL}}}]}}\n"
    if anthropic:
        providers += f"  up-anthropic: {{type: anthropic, base_url: '{upstream_url}', {keys}}}\n"
        models += (
            f"  bench-anthropic: {{deployments: [{{provider: up-anthropic, model: {ANTHROPIC_MODEL}}}]}}\n"
        )
    return f"server: {{listen: '127.0.0.1:{port}'}}\nproviders:\n{providers}models:\n{models}"


SQL_BATCH = 500
"""The ``sql`` logger's ``batch_size`` in the ``gateway-sql*`` subjects."""
_PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def sql_logger_config(url: str) -> str:
    """The ``loggers:`` section of the ``gateway-sql*`` subjects: full batches only (under
    valgrind a request takes ~0.1 s: a 30 s ``flush_interval`` would cut batches short)."""
    return f"loggers:\n  - sql: {{url: '{url}', batch_size: {SQL_BATCH}, flush_interval: 1h}}\n"


def _pg_admin(statement: str) -> None:
    import asyncpg  # the sql logger's dependency, in the venv with it

    async def run() -> None:
        conn = await asyncpg.connect(_PG_ADMIN, timeout=10)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


def _stored_rows(url: str) -> int:
    """Rows in the ``requests`` table of ``url`` (0 before it exists)."""
    if url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30)) as conn:
            try:
                return int(conn.execute("SELECT count(*) FROM requests").fetchone()[0])
            except sqlite3.OperationalError:
                return 0
    import asyncpg

    async def run() -> int:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM requests"))
        except asyncpg.UndefinedTableError:
            return 0
        finally:
            await conn.close()

    return asyncio.run(run())


def _wait_rows(url: str, rows: int, limit: float = 600.0, settle: float = 5.0) -> None:
    """Wait until ``url`` holds at least ``rows`` request rows, then until their count has not
    changed for ``settle`` seconds."""
    deadline = time.monotonic() + limit
    last, since = -1, time.monotonic()
    while True:
        now, stored = time.monotonic(), _stored_rows(url)
        if stored != last:
            last, since = stored, now
        elif stored >= rows and now - since >= settle:
            return
        if now > deadline:
            raise RuntimeError(f"the sql logger stored {stored} of {rows} rows within {limit:.0f}s")
        time.sleep(0.5)


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


def _send(port: int, path: str, body: bytes, n: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    headers = {"content-type": "application/json", "authorization": "Bearer bench"}
    try:
        for _ in range(n):
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status} from the process under test")
    finally:
        conn.close()


def count(
    argv: list[str],
    port: int,
    path: str,
    body: bytes,
    requests: int,
    warmup: int,
    workdir: Path,
    *,
    sql_url: str | None = None,
) -> int:
    """Instructions per request of the server started by ``argv`` (listening on ``port``); with
    ``sql_url``, the counted window ends once every full batch of the ``sql`` logger is stored
    there (and start-up may take minutes under valgrind)."""
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
        _wait_port(port, proc, 900.0 if sql_url else 240.0)
        _send(port, path, body, warmup)
        subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True)
        _send(port, path, body, requests)
        if sql_url:
            _wait_rows(sql_url, warmup + requests - SQL_BATCH + 1)
        subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True)
        dump = Path(f"{out}.{proc.pid}.1")
        deadline = time.monotonic() + 30
        while not dump.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        return read_total(dump.read_text()) // requests
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _rows(figures: dict[str, int]) -> list[list[str]]:
    rows = []
    for subject, value in figures.items():
        base = SUBJECTS[subject].base
        if base in figures:
            than = figures[base]
            rows.append([subject, f"{value:,}", base, f"{value - than:+,}", f"{value / than:.2f}"])
        else:
            rows.append([subject, f"{value:,}", "-", "-", "-"])
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Count, print, write JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.instructions",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--requests", type=int, default=1000, help="counted requests per subject")
    parser.add_argument("--warmup", type=int, default=300, help="requests before counting")
    parser.add_argument(
        "--subjects", default="bare,proxy,gateway", help=f"comma-separated, of: {', '.join(SUBJECTS)}"
    )
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.subjects.split(",") if name.strip()]
    unknown = [name for name in names if name not in SUBJECTS]
    if unknown:
        parser.error(f"unknown subject(s) {', '.join(unknown)}; known: {', '.join(SUBJECTS)}")
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    python = sys.executable
    truckllm = str(Path(python).with_name("truckllm"))
    upstream_port = free_port()
    upstream_url = f"http://127.0.0.1:{upstream_port}"
    upstream = subprocess.Popen(
        [python, "-m", "bench.upstream", "--port", str(upstream_port), "--interval", "0"],
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
            for name in names:
                subject = SUBJECTS[name]
                port = free_port()
                sql_url = database = None
                if subject.sql == "postgres":
                    database = f"truckllm_bench_{os.getpid()}_{port}"
                    _pg_admin(f"CREATE DATABASE {database}")
                    sql_url = _PG_ADMIN.rsplit("/", 1)[0] + "/" + database
                elif subject.sql == "sqlite":
                    sql_url = f"sqlite:///{workdir / f'requests-{port}.db'}"
                if subject.gateway:
                    config = workdir / "gateway.yaml"
                    text = gateway_config(port, upstream_url, subject.anthropic)
                    config.write_text(text + (sql_logger_config(sql_url) if sql_url else ""))
                    command = [truckllm, "serve", "--config", str(config)]
                else:
                    command = [python, "-m", "bench.floors", name, str(port)]
                    command += [f"{upstream_url}/v1/chat/completions"] if name == "proxy" else []
                try:
                    figures[name] = count(
                        command,
                        port,
                        subject.path,
                        subject.body,
                        args.requests,
                        args.warmup,
                        workdir,
                        sql_url=sql_url,
                    )
                finally:
                    if database:
                        _pg_admin(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
                print(f"{name}: {figures[name]:,} instructions per request", file=sys.stderr)
    finally:
        os.killpg(upstream.pid, signal.SIGKILL)
        upstream.wait()
    print(table(["subject", "instructions / request", "compared with", "added", "ratio"], _rows(figures)))
    compared = {
        name: {"base": SUBJECTS[name].base, "ratio": round(value / figures[base], 4)}
        for name, value in figures.items()
        if (base := SUBJECTS[name].base) in figures
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "instructions.json").write_text(
        json.dumps(
            {"requests": args.requests, "instructions_per_request": figures, "compared": compared}, indent=2
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
