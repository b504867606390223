"""Schema 3: who made a request (team, org, end user), its tags, the guardrails' decisions and its
metadata, on both backends: a schema-2 database with rows upgrades in place (its rows kept, read
with empty new fields), a column already there is not added twice, hostile values are stored and
read back exactly and match no filter they should not, and the admin API's ``team``, ``user`` and
``tag`` parameters through a real gateway."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import httpx2 as httpx
import msgspec
import pytest
from truckllm_logger_sql import SqlLogger, postgres_store, sqlite_store
from truckllm_logger_sql.codec import COLUMNS, COLUMNS_V2, CONTEXT_COLUMNS, to_row
from truckllm_logger_sql.options import SqlOptions
from truckllm_logger_sql.store import open_store

from truckllm import hookimpl
from truckllm.kit.options import Duration, Secret
from truckllm.kit.request_log import LogQuery
from truckllm.types import GuardrailResult, GuardrailSpec, GuardSubject, RequestRecord, Verdict
from truckllm_testing.server import GatewayServer

Factory = Callable[..., RequestRecord]
"""The ``record`` fixture: ``record(i, now=..., **fields)`` makes record number ``i``."""

NOW = 1_790_000_000.0
CONTEXT: dict[str, Any] = {
    "team": "search",
    "org": "acme",
    "user": "user-1",
    "tags": ("prod", "eu"),
    "guardrails": (GuardrailResult(name="pii", stage="input", action="allow", ms=0.5),),
    "metadata": {"cost_centre": "cc-42"},
}


def _postgres(url: str) -> bool:
    return url.startswith("postgresql")


def _as_stored(record: RequestRecord, url: str) -> RequestRecord:
    """A tag's NUL is U+FFFD on both backends; PostgreSQL text holds no NUL: the team, org and end
    user keep U+FFFD there too (the metadata and the guardrails, JSON text, keep their NULs)."""
    if not _postgres(url):
        return msgspec.structs.replace(record, tags=tuple(t.replace("\x00", "\ufffd") for t in record.tags))

    def clean(value: str | None) -> str | None:
        return value.replace("\x00", "\ufffd") if value is not None else None

    return msgspec.structs.replace(
        record,
        team=clean(record.team),
        org=clean(record.org),
        user=clean(record.user),
        tags=tuple(str(clean(t)) for t in record.tags),
    )


async def _write_v2_row(raw_sql: Any, url: str, record: RequestRecord) -> None:
    """``record`` inserted as a schema-2 gateway wrote it (no team... metadata columns)."""
    values = dict(zip(COLUMNS, to_row(record), strict=True))
    marks = ", ".join("?" * len(COLUMNS_V2))
    await raw_sql.rows(
        url,
        f"INSERT INTO requests ({', '.join(COLUMNS_V2)}) VALUES ({marks})",
        *(values[c] for c in COLUMNS_V2),
    )


async def _at_schema_two(monkeypatch: pytest.MonkeyPatch, step: Callable[[], Any]) -> None:
    """Run ``step`` with the stores as they were at schema 2 (its migrations only)."""
    with monkeypatch.context() as patch:
        patch.setattr(sqlite_store, "MIGRATIONS", sqlite_store.MIGRATIONS[:2])
        patch.setattr(postgres_store, "MIGRATIONS", postgres_store.MIGRATIONS[:2])
        await step()


def test_a_schema_two_database_upgrades_in_place(
    raw_sql: Any, db_url: str, monkeypatch: pytest.MonkeyPatch, record: Factory
) -> None:
    olds = [record(i, now=NOW) for i in range(5)]
    new = record(10, now=NOW, **CONTEXT)

    async def at_schema_two() -> None:
        store = open_store(SqlOptions(url=Secret(db_url)))
        try:
            assert await store.migrate() == [1, 2]
            await store.ensure_ahead(NOW)
        finally:
            await store.close()
        assert not (await raw_sql.columns(db_url, "requests")) & set(CONTEXT_COLUMNS)
        for old in olds:
            await _write_v2_row(raw_sql, db_url, old)

    async def upgraded() -> None:
        store = open_store(SqlOptions(url=Secret(db_url)))
        try:
            assert await store.migrate() == [3]
            assert await store.migrate() == []
            for old in olds:  # None, (), (), {}: as a fresh record's defaults
                got = await store.get(old.request_id)
                assert got == old
                assert got is not None and (got.team, got.user, got.tags, got.guardrails, got.metadata) == (
                    None,
                    None,
                    (),
                    (),
                    {},
                )
            assert await store.write([new]) == 1
            assert await store.get(new.request_id) == new
            page = await store.search(LogQuery(limit=50))
            assert {r.request_id for r in page.records} == {r.request_id for r in [*olds, new]}
            for query in (LogQuery(team="search"), LogQuery(user="user-1"), LogQuery(tag="prod")):
                assert [r.request_id for r in (await store.search(query)).records] == [new.request_id]
        finally:
            await store.close()
        assert set(CONTEXT_COLUMNS) <= await raw_sql.columns(db_url, "requests")
        stored = await raw_sql.rows(
            db_url,
            f"SELECT {', '.join(CONTEXT_COLUMNS)} FROM requests WHERE request_id = ?",
            olds[0].request_id,
        )
        assert stored == [(None,) * len(CONTEXT_COLUMNS)]  # old rows are not rewritten

    asyncio.run(_at_schema_two(monkeypatch, at_schema_two))
    asyncio.run(upgraded())


def test_a_context_column_already_there_is_not_added_twice(
    raw_sql: Any, db_url: str, monkeypatch: pytest.MonkeyPatch, record: Factory
) -> None:
    """Schema 3 where someone already added one of its columns and an index by that name."""

    async def at_schema_two() -> None:
        store = open_store(SqlOptions(url=Secret(db_url)))
        try:
            assert await store.migrate() == [1, 2]
        finally:
            await store.close()
        await raw_sql.rows(db_url, "ALTER TABLE requests ADD COLUMN team TEXT")
        await raw_sql.rows(
            db_url, "CREATE INDEX requests_team ON requests (team, started_at DESC, request_id DESC)"
        )

    async def upgraded() -> None:
        store = open_store(SqlOptions(url=Secret(db_url)))
        try:
            assert await store.migrate() == [3]
            await store.ensure_ahead(NOW)
            made = record(4, now=NOW, **CONTEXT)
            assert await store.write([made]) == 1
            assert await store.get(made.request_id) == made
        finally:
            await store.close()

    asyncio.run(_at_schema_two(monkeypatch, at_schema_two))
    asyncio.run(upgraded())


LONG = "é" * 20_000 + "%_'\""
HOSTILE: list[dict[str, Any]] = [
    {"user": "o'brien", "tags": ("it's", 'say "hi"'), "metadata": {"q": "'; DROP TABLE requests; --"}},
    {"user": "100%", "tags": ("%", "_", "a%b", "a_b"), "metadata": {"%": "_"}},
    {"user": "a\x00b", "tags": ("a\x00b", "\x00"), "metadata": {"n\x00l": "v\x00"}, "team": "t\x00"},
    {"user": "ü🙂\u202e", "tags": ("日本", "🙂", "\u202e"), "metadata": {"ü": "🙂"}, "org": "ö"},
    {"user": "u-long", "tags": (LONG,), "metadata": {"long": LONG}, "team": "x" * 1000},
    {"user": "", "tags": ("",), "metadata": {"": ""}, "team": "", "org": ""},
    {"user": "[1]", "tags": ('a","b', "[]", "{}", "\\", "\\u0000"), "metadata": {"\\": "\\u0000"}},
]


def test_hostile_values_are_stored_exactly_and_match_only_themselves(db_url: str, record: Factory) -> None:
    records = [record(i, now=NOW, **fields) for i, fields in enumerate(HOSTILE)]
    # plain neighbours a careless filter (LIKE, a substring of the JSON text) would also match
    plain = [
        record(100, now=NOW, user="o", tags=("a",), team="t"),
        record(101, now=NOW, user="100", tags=("ab", "a", "b"), team="tx"),
        record(102, now=NOW, user="user", tags=("a", "b"), team="x"),
    ]
    everyone = [*records, *plain]

    async def run() -> None:
        store = open_store(SqlOptions(url=Secret(db_url)))
        try:
            await store.migrate()
            assert await store.write(records[:3]) == 3  # a NUL: PostgreSQL's unnest path
            assert await store.write(records[3:] + plain) == len(records) - 3 + len(plain)
            for r in everyone:
                assert await store.get(r.request_id) == _as_stored(r, db_url), r.request_id
            for query in _filters(everyone):
                wanted = sorted(
                    r.request_id for r in everyone if _matches(_as_stored(r, db_url), query, db_url)
                )
                found = sorted(r.request_id for r in (await store.search(query)).records)
                assert found == wanted, query
        finally:
            await store.close()

    asyncio.run(run())


def _filters(records: list[RequestRecord]) -> list[LogQuery]:
    """Every tag, user and team of ``records`` as a filter, and values they must not match."""
    queries = [LogQuery(tag=t, limit=500) for r in records for t in r.tags]
    queries += [LogQuery(user=r.user, limit=500) for r in records if r.user is not None]
    queries += [LogQuery(team=r.team, limit=500) for r in records if r.team is not None]
    for near in ("a", "b", "%", "_", "a%", "%a%", "'", '"', "o'%", "\\", "é", "", "u0000", "a\x00", "\x00b"):
        queries += [LogQuery(tag=near), LogQuery(user=near), LogQuery(team=near)]
    return queries


def _matches(r: RequestRecord, q: LogQuery, url: str) -> bool:
    def stored(value: str | None) -> str | None:  # the argument, as PostgreSQL compares it
        return value.replace("\x00", "\ufffd") if value is not None and _postgres(url) else value

    tag = q.tag.replace("\x00", "\ufffd") if q.tag is not None else None  # on both backends
    return (
        (tag is None or tag in r.tags)
        and (q.user is None or stored(q.user) == r.user)
        and (q.team is None or stored(q.team) == r.team)
    )


def test_a_value_too_long_for_postgresql_s_index_drops_its_record_alone(pg_url: str, record: Factory) -> None:
    """A btree entry holds at most a few kB: a record whose end user (or team, alias...) is longer
    is refused for good (the writer drops it, counted, and writes the rest of its batch) rather
    than retried for ever, which would stop the log."""
    rng = random.Random(3)
    long_user = "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(3000))  # ~9 kB, incompressible

    async def run() -> None:
        logger = SqlLogger(SqlOptions(url=Secret(pg_url), flush_interval=Duration(0.01), batch_size=10))
        await logger.startup(None)
        try:
            for i in range(10):
                logger.emit_log(record(i, now=time.time(), user=long_user if i == 4 else f"user-{i}"))
            for _ in range(3000):
                if logger.metrics["written"] + logger.metrics["dropped"] >= 10:
                    break
                await asyncio.sleep(0.01)
            assert (logger.metrics["written"], logger.metrics["dropped"]) == (9, 1)
            assert len((await logger.search(LogQuery(limit=50))).records) == 9
        finally:
            await logger.shutdown(None)

    asyncio.run(run())


# --- through a real gateway ------------------------------------------------------------------------


class AllowGuard:
    """Allows everything, after looking."""

    class Options(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
        """No option."""

    def __init__(self, options: AllowGuard.Options) -> None:
        self.options = options

    async def check(self, subject: GuardSubject) -> Verdict:
        """Allow, with a finding counted."""
        return Verdict(action="allow", reason="looked", findings={"texts": len(subject.texts)})


class GuardPlugin:
    """Registers the guardrail type ``allow``."""

    __name__ = "throwaway-allow-guardrail"

    @hookimpl
    def register_guardrails(self, register: Callable[[GuardrailSpec], None]) -> None:
        """``allow``: :class:`AllowGuard`."""
        register(GuardrailSpec(type="allow", make=AllowGuard, options=AllowGuard.Options))  # type: ignore[arg-type]


CONFIG = """
providers:
  mock: {{type: mock}}
models:
  m:
    deployments: [{{provider: mock, model: mock-1}}]
orgs:
  acme: {{metadata: {{region: eu}}}}
teams:
  search: {{org: acme, metadata: {{cost_centre: cc-42}}}}
keys:
  - {{name: alice, value: key-alice, team: search, tags: [prod]}}
  - {{name: bob, value: key-bob}}
guardrails:
  - {{type: allow, name: looker, aliases: [m]}}
admin: {{token: admin-token-Zq8vX3kP0wLm1234}}
loggers:
  - sql: {{url: "{url}", flush_interval: 20ms, max_backoff: 200ms, connect_timeout: 1s}}
"""
ADMIN = {"authorization": "Bearer admin-token-Zq8vX3kP0wLm1234"}


def _chat(gw: GatewayServer, key: str, user: str | None, tags: str | None) -> str:
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    if user is not None:
        body["user"] = user
    headers = {"authorization": f"Bearer {key}"}
    if tags is not None:
        headers["x-truckllm-tags"] = tags
    response = httpx.post(gw.url + "/v1/chat/completions", json=body, headers=headers, timeout=20)
    assert response.status_code == 200, response.text
    return str(response.headers["x-request-id"])


def test_the_admin_api_filters_by_team_user_and_tag(gateway_log: Any, db_url: str) -> None:
    with GatewayServer(CONFIG.format(url=db_url), extra_plugins=(GuardPlugin(),)) as gw:
        started = time.time()
        a1 = _chat(gw, "key-alice", "ann", "exp-1")
        a2 = _chat(gw, "key-alice", "ben", None)
        b1 = _chat(gw, "key-bob", "ann", "exp-1,exp-2")
        b2 = _chat(gw, "key-bob", None, None)
        gateway_log.wait_written(gateway_log.of(gw), 4)

        def ids(**params: Any) -> list[str]:
            page = httpx.get(gw.url + "/admin/v1/requests", params=params, headers=ADMIN)
            assert page.status_code == 200, page.text
            return [r["request_id"] for r in page.json()["data"]]

        assert ids() == [b2, b1, a2, a1]
        assert ids(team="search") == [a2, a1]
        assert ids(user="ann") == [b1, a1]
        assert ids(tag="exp-1") == [b1, a1]
        assert ids(tag="prod") == [a2, a1]  # the key's own tag
        assert ids(tag="exp-2") == [b1]
        assert ids(team="search", user="ann", tag="exp-1") == [a1]
        assert ids(key="bob", user="ann") == [b1]
        assert ids(team="search", since=f"{started - 60:.3f}") == [a2, a1]
        assert ids(tag="exp") == [] and ids(user="an") == [] and ids(team="%") == []
        # with the cursor: one record a page
        first = httpx.get(gw.url + "/admin/v1/requests", params={"user": "ann", "limit": 1}, headers=ADMIN)
        cursor = first.json()["next_cursor"]
        assert [r["request_id"] for r in first.json()["data"]] == [b1] and cursor
        assert ids(user="ann", limit=1, cursor=cursor) == [a1]

        one = httpx.get(gw.url + f"/admin/v1/requests/{a1}", headers=ADMIN).json()
        assert (one["team"], one["org"], one["user"]) == ("search", "acme", "ann")
        assert sorted(one["tags"]) == ["exp-1", "prod"]
        assert one["metadata"] == {"region": "eu", "cost_centre": "cc-42"}
        assert [(g["name"], g["stage"], g["action"]) for g in one["guardrails"]] == [
            ("looker", "input", "allow")
        ]
        assert one["guardrails"][0]["findings"] == {"texts": 1} and one["guardrails"][0]["ms"] >= 0
        listed = httpx.get(gw.url + "/admin/v1/requests", params={"team": "search"}, headers=ADMIN).json()
        assert listed["data"][1] == one  # a page's record is the whole record but its bodies (none here)

        for name in ("team", "user", "tag"):
            for bad in ("x" * 257, "a\x00b"):
                refused = httpx.get(gw.url + "/admin/v1/requests", params={name: bad}, headers=ADMIN)
                assert refused.status_code == 400, (name, refused.text)
                assert refused.json()["error"]["param"] == name
