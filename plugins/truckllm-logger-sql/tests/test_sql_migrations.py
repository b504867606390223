"""Migrations: re-running is a no-op; two processes starting at once on an empty database make
one schema, and both then write."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from truckllm_logger_sql.options import SqlOptions
from truckllm_logger_sql.sqlite_store import connect
from truckllm_logger_sql.store import open_store

from truckllm.kit.options import Secret
from truckllm.kit.request_log import LogQuery

CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from truckllm_logger_sql.options import SqlOptions
    from truckllm_logger_sql.store import open_store
    from truckllm.kit.options import Secret
    from truckllm.types import RequestRecord

    async def main(url, name):
        store = open_store(SqlOptions(url=Secret(url)))
        try:
            applied = await store.migrate()
            await store.ensure_ahead(time.time())
            record = RequestRecord(request_id=name, started_at=time.time(), endpoint="chat", dialect="openai",
                                   alias="a", gateway_key=None, stream=False, status=200, latency_ms=1.0)
            assert await store.write([record]) == 1
            print(",".join(map(str, applied)))
        finally:
            await store.close()

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


def test_rerunning_migrations_is_a_no_op(db_url: str) -> None:
    async def run() -> None:
        store = open_store(SqlOptions(url=Secret(db_url)))
        try:
            assert await store.migrate() == [1, 2, 3]
            assert await store.migrate() == []
        finally:
            await store.close()
        again = open_store(SqlOptions(url=Secret(db_url)))
        try:
            assert await again.migrate() == []
        finally:
            await again.close()

    asyncio.run(run())


def test_two_processes_at_once_make_one_schema(db_url: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, db_url, f"proc-{i}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()
    applied = sorted(out.decode().strip() for out, _ in outputs)
    assert applied == ["", "1,2,3"]  # one applied the migrations, the other found it applied

    async def check() -> None:
        store = open_store(SqlOptions(url=Secret(db_url)))
        try:
            assert await store.migrate() == []
            page = await store.search(LogQuery())
            assert sorted(r.request_id for r in page.records) == ["proc-0", "proc-1"]
        finally:
            await store.close()

    asyncio.run(check())


def test_switching_to_wal_is_retried_while_another_connection_holds_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    sleeps: list[float] = []

    def release_on_second_try(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            holder.execute("COMMIT")

    conn = connect(path, lock_wait=0.05, clock=lambda: 0.0, sleep=release_on_second_try)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert len(sleeps) == 2 and sleeps[1] > sleeps[0]  # backed off, then got it
    finally:
        conn.close()
        holder.close()


def test_a_lock_never_released_is_an_error_after_the_wait(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    now = [0.0]

    def advance(seconds: float) -> None:
        now[0] += seconds

    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            connect(path, lock_wait=0.05, clock=lambda: now[0], sleep=advance)
        assert now[0] >= 0.05
    finally:
        holder.close()


def test_many_processes_opening_one_new_file_at_once_all_write(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crowd.db'}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, url, f"proc-{i}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for i in range(6)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()
    assert sorted(out.decode().strip() for out, _ in outputs) == ["", "", "", "", "", "1,2,3"]
