"""PostgreSQL going away and coming back, through a loopback TCP proxy the test cuts and
restores: records queue meanwhile and are written after the restore; with a tiny queue the
overflow is dropped (counted) or spilled to a file and replayed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from loguru import logger as logger_module
from truckllm_logger_sql import SqlLogger
from truckllm_logger_sql.options import SqlOptions

from truckllm.kit.options import Duration, Secret
from truckllm.kit.request_log import LogQuery

NOW = time.time()  # the writer applies the retention (30 days) at start and on reconnection


class Proxy:
    """A TCP proxy on 127.0.0.1 to ``target``; :meth:`cut` closes every connection and stops
    listening, :meth:`restore` listens again on the same port."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def restore(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def _until(condition: Callable[[], bool | Awaitable[bool]], what: str) -> None:
    """Poll ``condition`` (a state reached by the writer task, not a duration) for up to 30 s."""
    for _ in range(3000):
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


async def _with_proxy(pg_url: str, test: Callable[[Proxy, str], Awaitable[None]]) -> None:
    parts = urlsplit(pg_url)
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.restore()
    url = pg_url.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{proxy.port}")
    try:
        await test(proxy, url)
    finally:
        await proxy.cut()


def _logger(url: str, **options: Any) -> SqlLogger:
    return SqlLogger(
        SqlOptions(
            url=Secret(url),
            flush_interval=Duration(0.02),
            max_backoff=Duration(0.2),
            connect_timeout=Duration(1),
            shutdown_timeout=Duration(5),
            **options,
        )
    )


async def _count(logger: SqlLogger) -> int:
    try:
        return len((await logger.search(LogQuery(limit=500))).records)
    except Exception:
        return -1


def test_records_queue_during_an_outage_then_are_written(pg_url: str, record: Any) -> None:
    async def test(proxy: Proxy, url: str) -> None:
        logger = _logger(url)
        await logger.startup(None)
        try:
            for i in range(10):
                logger.emit_log(record(i, now=NOW))
            await _until(lambda: logger.metrics["written"] == 10, "first records written")
            await proxy.cut()
            for i in range(10, 40):
                logger.emit_log(record(i, now=NOW))
            await _until(lambda: logger.metrics["db_up"] == 0, "the outage noticed")
            assert logger.metrics["written"] == 10 and logger.metrics["queued"] == 30
            assert logger.metrics["failed_batches"] >= 1
            await proxy.restore()
            await _until(lambda: logger.metrics["written"] == 40, "queued records written after the restore")
            assert logger.metrics["db_up"] == 1 and logger.metrics["dropped"] == 0
            await _until(lambda: _is(_count(logger), 40), "all records searchable")
        finally:
            await logger.shutdown(None)

    asyncio.run(_with_proxy(pg_url, test))


async def _is(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


def test_overflow_is_dropped_and_counted(pg_url: str, record: Any) -> None:
    async def test(proxy: Proxy, url: str) -> None:
        logger = _logger(url, max_queue=5)
        await logger.startup(None)
        try:
            await proxy.cut()
            for i in range(20):  # the writer has not run yet: 5 queue, 15 overflow
                logger.emit_log(record(i, now=NOW))
            assert logger.metrics["dropped"] == 15
            await proxy.restore()
            await _until(lambda: logger.metrics["written"] == 5, "the queued five written")
        finally:
            await logger.shutdown(None)

    asyncio.run(_with_proxy(pg_url, test))


def test_overflow_is_spilled_then_replayed(pg_url: str, record: Any, tmp_path: Path) -> None:
    spill = tmp_path / "spill.jsonl"

    async def test(proxy: Proxy, url: str) -> None:
        logger = _logger(url, max_queue=5, spill_path=str(spill))
        await logger.startup(None)
        try:
            await proxy.cut()
            for i in range(20):
                logger.emit_log(record(i, now=NOW))
            assert logger.metrics["dropped"] == 0
            await _until(lambda: logger.metrics["spilled"] == 15, "the overflow spilled")
            await _until(lambda: logger.metrics["db_up"] == 0, "the outage noticed")
            await proxy.restore()
            await _until(lambda: logger.metrics["replayed"] == 15, "the spill file replayed")
            assert logger.metrics["written"] == 20 and logger.metrics["dropped"] == 0
            await _until(lambda: _is(_count(logger), 20), "all records searchable")
            assert not spill.exists() or spill.stat().st_size == 0
        finally:
            await logger.shutdown(None)

    asyncio.run(_with_proxy(pg_url, test))


def test_shutdown_during_an_outage_spills_what_is_left(pg_url: str, record: Any, tmp_path: Path) -> None:
    spill = tmp_path / "spill.jsonl"

    async def test(proxy: Proxy, url: str) -> None:
        logger = _logger(url, spill_path=str(spill))
        await logger.startup(None)
        await proxy.cut()
        for i in range(7):
            logger.emit_log(record(i, now=NOW))
        await _until(lambda: logger.metrics["db_up"] == 0, "the outage noticed")
        await logger.shutdown(None)
        assert logger.metrics["spilled"] == 7 and logger.metrics["dropped"] == 0
        await proxy.restore()
        again = _logger(url, spill_path=str(spill))
        await again.startup(None)
        try:
            await _until(lambda: again.metrics["replayed"] == 7, "the previous run's spill file replayed")
        finally:
            await again.shutdown(None)

    asyncio.run(_with_proxy(pg_url, test))


def test_start_with_the_database_down_warns_and_serves(record: Any) -> None:
    lines: list[str] = []
    sink = logger_module.add(lambda message: lines.append(str(message)), level="WARNING")

    async def run() -> None:
        logger = _logger("postgresql://u:hunter2@127.0.0.1:1/none", max_queue=3)
        await logger.startup(None)  # does not raise
        try:
            assert logger.metrics["db_up"] == 0
            for i in range(5):
                logger.emit_log(record(i, now=NOW))
            assert logger.metrics["dropped"] == 2
        finally:
            await logger.shutdown(None)
        assert logger.metrics["dropped"] == 5

    try:
        asyncio.run(run())
    finally:
        logger_module.remove(sink)
    text = "".join(lines)
    assert "cannot reach the database at start-up" in text and "127.0.0.1:1/none" in text
    assert "hunter2" not in text
