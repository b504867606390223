"""Fixtures: a database URL per backend (SQLite in ``tmp_path``; a fresh PostgreSQL database per
test session, emptied before each test, skipped when PostgreSQL does not answer) and a record
factory."""

from __future__ import annotations

import asyncio
import random
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import pytest
from truckllm_logger_sql import SqlLogger

from truckllm.types import AttemptRecord, RequestRecord, Usage
from truckllm_testing.server import GatewayServer

PG_HOST = "127.0.0.1:5432"
_ADMIN_DSNS = [
    f"postgresql://{user}@{PG_HOST}/{db}" for user in ("postgres", "root") for db in ("postgres", "test")
]

Factory = Callable[..., RequestRecord]


async def _admin() -> tuple[str, asyncpg.Connection]:
    problems = []
    for dsn in _ADMIN_DSNS:
        try:
            return dsn, await asyncpg.connect(dsn, timeout=3)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            problems.append(f"{type(exc).__name__}: {exc}")
    raise ConnectionError("; ".join(problems))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """The URL of a database ``truckllm_test_<random>`` made for this session (dropped after)."""
    name = f"truckllm_test_{secrets.token_hex(4)}"

    async def create() -> str:
        dsn, conn = await _admin()
        try:
            await conn.execute(f"CREATE DATABASE {name}")
        finally:
            await conn.close()
        return dsn.rsplit("/", 1)[0] + "/" + name

    async def drop() -> None:
        _, conn = await _admin()
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await conn.close()

    try:
        url = asyncio.run(create())
    except ConnectionError as exc:
        pytest.skip(f"PostgreSQL on {PG_HOST} does not answer (CI starts one): {exc}")
    yield url
    asyncio.run(drop())


async def _empty(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "DROP TABLE IF EXISTS requests, rollup_minute, rollup_hour, rollup_day, schema_migrations CASCADE"
        )
    finally:
        await conn.close()


@pytest.fixture
def pg_url(pg_server: str) -> str:
    """The session's PostgreSQL database, emptied."""
    asyncio.run(_empty(pg_server))
    return pg_server


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A fresh database of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/requests.db"
    return str(request.getfixturevalue("pg_url"))


ALIASES = ("gpt", "claude", "gemini")
KEYS = ("alice", "bob", None)
PROVIDERS = ("openai", "anthropic")
STATUSES = (200, 200, 200, 429, 500, 302)


def make(
    i: int, *, now: float = 1_790_000_000.0, rng: random.Random | None = None, **fields: Any
) -> RequestRecord:
    """Record number ``i``: its fields cycle through a few values of every filter column."""
    rng = rng or random.Random(i)
    status = STATUSES[i % len(STATUSES)]
    provider = PROVIDERS[i % len(PROVIDERS)]
    values: dict[str, Any] = {
        "request_id": f"req-{i:06d}",
        "started_at": now - i * 7.5,
        "endpoint": ("chat", "embeddings")[i % 2],
        "dialect": ("openai", "anthropic", "gemini")[i % 3],
        "alias": ALIASES[i % len(ALIASES)],
        "gateway_key": KEYS[i % len(KEYS)],
        "stream": bool(i % 2),
        "status": status,
        "latency_ms": rng.uniform(1, 3000),
        "upstream_ms": rng.uniform(0, 1),
        "provider": provider,
        "model": f"{provider}-model-{i % 2}",
        "provider_key": "k1",
        "usage": Usage(prompt_tokens=i, completion_tokens=2 * i, total_tokens=3 * i),
        "cost_usd": i / 1000,
        "attempts": (
            AttemptRecord(
                provider=provider, provider_key="k1", deployment="d", model="m", status=status, latency_ms=1.5
            ),
        ),
        "error_kind": "server" if status >= 500 else None,
    }
    values.update(fields)
    return RequestRecord(**values)


@pytest.fixture
def record() -> Factory:
    """:func:`make`."""
    return make


class DirectSql:
    """The database under test reached directly, past the store (``?`` placeholders on both
    backends): to build an older schema, or to read what was stored."""

    async def rows(self, url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Run ``sql`` on the database at ``url``; its rows."""
        if url.startswith("sqlite:///"):
            conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
            try:
                return [tuple(r) for r in conn.execute(sql, args).fetchall()]
            finally:
                conn.close()
        parts = sql.split("?")  # asyncpg's placeholders are $1, $2...
        sql = "".join(part + (f"${i + 1}" if i < len(parts) - 1 else "") for i, part in enumerate(parts))
        pg = await asyncpg.connect(url)
        try:
            return [tuple(r) for r in await pg.fetch(sql, *args)]
        finally:
            await pg.close()

    async def columns(self, url: str, table: str) -> set[str]:
        """The names of ``table``'s columns."""
        if url.startswith("sqlite:///"):
            return {row[1] for row in await self.rows(url, f"PRAGMA table_info({table})")}
        query = "SELECT column_name FROM information_schema.columns WHERE table_name = ?"
        return {row[0] for row in await self.rows(url, query, table)}


@pytest.fixture
def raw_sql() -> DirectSql:
    """:class:`DirectSql`: the database under test, past the store."""
    return DirectSql()


class GatewayLog:
    """The ``sql`` logger of a gateway under test, and waiting for what it has written."""

    @staticmethod
    def of(gw: GatewayServer) -> SqlLogger:
        """The gateway's ``sql`` logger instance."""
        assert gw.gateway is not None
        for _name, instance in gw.gateway.loggers:
            if isinstance(instance, SqlLogger):
                return instance
        raise AssertionError(f"no sql logger in {gw.gateway.loggers}")

    @staticmethod
    def wait_written(logger: SqlLogger, count: int) -> None:
        """Poll the writer's figure (a state, not a duration), up to 30 s."""
        for _ in range(3000):
            if logger.metrics["written"] >= count:
                return
            time.sleep(0.01)
        raise AssertionError(f"written stayed at {logger.metrics['written']}")


@pytest.fixture
def gateway_log() -> GatewayLog:
    """:class:`GatewayLog`."""
    return GatewayLog()
