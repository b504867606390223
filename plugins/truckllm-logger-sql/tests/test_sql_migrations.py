"""Migrations: re-running is a no-op; two processes starting at once on an empty database make
one schema, and both then write."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

from truckllm_logger_sql.options import SqlOptions
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
            assert await store.migrate() == [1]
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
    assert applied == ["", "1"]  # one applied the migration, the other found it applied

    async def check() -> None:
        store = open_store(SqlOptions(url=Secret(db_url)))
        try:
            assert await store.migrate() == []
            page = await store.search(LogQuery())
            assert sorted(r.request_id for r in page.records) == ["proc-0", "proc-1"]
        finally:
            await store.close()

    asyncio.run(check())
