"""The file store: durable state across restarts, periodic flushes, shared files."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from truckllm_store_file import FileStore

from truckllm._internal.localstate import StoreUnavailable
from truckllm._internal.store import Admission, BudgetCheck, CooldownMark, RateCheck, Settlement, UsageQuery
from truckllm_testing.store_conformance import (
    FakeClock,
    StoreConformance,
    StoreHarness,
    make_records,
    sum_records,
)


async def _open(path: Path, clock: FakeClock, flush_interval: float = 3600) -> FileStore:
    store = FileStore(FileStore.Options(path=str(path), flush_interval=flush_interval), clock=clock)
    await store.start()
    return store


class TestFileStoreConformance(StoreConformance):
    @pytest.fixture
    async def store_harness(self, tmp_path: Path) -> AsyncIterator[StoreHarness]:
        clock = FakeClock()

        async def reopen() -> FileStore:
            return await _open(tmp_path / "state.db", clock)

        harness = StoreHarness(await reopen(), clock=clock, reopen=reopen)
        yield harness
        await harness.store.close()


async def test_restart_keeps_usage_budgets_rates_and_cooldowns(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "state.db"
    store = await _open(path, clock)
    rpm = RateCheck(key="gk:team-a:rpm", rate=2, period=60.0)
    budget = BudgetCheck(key="gk:team-a:budget", limit=10.0, period="month", amount=4.0)
    assert (await store.admit(Admission(request_id="r1", rates=(rpm,), budgets=(budget,)))).allowed
    assert (await store.admit(Admission(request_id="r2", rates=(rpm,)))).allowed
    await store.settle(Settlement(request_id="r1", budget_adjust={budget.key: ("month", 2.0)}))  # cost 6
    await store.mark_cooldown(
        CooldownMark(provider="openai", key="oa-main", until=clock() + 30, reason="429")
    )
    records = make_records(n=25)
    for record in records:
        store.store_usage(record)
    before = await store.admit(Admission(request_id="r3", rates=(rpm,)))
    assert not before.allowed
    await store.close()

    clock.advance(5)
    store = await _open(path, clock)
    try:
        after = await store.admit(Admission(request_id="r4", rates=(rpm,)))
        assert not after.allowed and after.retry_after == pytest.approx(before.retry_after - 5)
        spend = BudgetCheck(key=budget.key, limit=10.0, period="month", amount=4.5)
        assert not (await store.admit(Admission(request_id="r5", budgets=(spend,)))).allowed
        spend = BudgetCheck(key=budget.key, limit=10.0, period="month", amount=4.0)
        assert (await store.admit(Admission(request_id="r6", budgets=(spend,)))).allowed
        marks = await store.cooldowns()
        assert [(m.provider, m.key, m.reason) for m in marks] == [("openai", "oa-main", "429")]
        assert marks[0].until == pytest.approx(clock() + 25)
        total = (await store.usage(UsageQuery())).total
        want = sum_records(records)[()]
        assert (total.requests, total.errors, total.prompt_tokens) == (
            want.requests,
            want.errors,
            want.prompt_tokens,
        )
        assert total.cost_usd == pytest.approx(want.cost_usd)
    finally:
        await store.close()


async def test_periodic_flush_writes_without_close(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "state.db"
    store = await _open(path, clock, flush_interval=0.05)
    try:
        for record in make_records(n=5):
            store.store_usage(record)
        for _ in range(100):
            await asyncio.sleep(0.02)
            with sqlite3.connect(path) as db:
                (count,) = db.execute("SELECT COALESCE(SUM(requests), 0) FROM usage").fetchone()
            if count == 5:
                break
        assert count == 5
        assert (await store.ready())["ok"] is True
    finally:
        await store.close()


async def test_unsettled_reservations_count_as_spent_after_close(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "state.db"
    store = await _open(path, clock)
    budget = BudgetCheck(key="k", limit=5.0, period="total", amount=3.0)
    assert (await store.admit(Admission(request_id="never-settled", budgets=(budget,)))).allowed
    await store.close()
    store = await _open(path, clock)
    try:
        assert not (await store.admit(Admission(request_id="x", budgets=(budget,)))).allowed
        small = BudgetCheck(key="k", limit=5.0, period="total", amount=2.0)
        assert (await store.admit(Admission(request_id="y", budgets=(small,)))).allowed
    finally:
        await store.close()


async def test_processes_sharing_a_file_add_their_usage(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "state.db"
    one, two = await _open(path, clock), await _open(path, clock)
    records = make_records(n=30)
    for i, record in enumerate(records):
        (one if i % 2 else two).store_usage(record)
    await one.settle(Settlement(request_id="a", budget_adjust={"k": ("total", 1.5)}))
    await two.settle(Settlement(request_id="b", budget_adjust={"k": ("total", 2.5)}))
    await one.close()
    await two.close()
    store = await _open(path, clock)
    try:
        assert (await store.usage(UsageQuery())).total.requests == 30
        assert not (
            await store.admit(
                Admission(
                    request_id="c", budgets=(BudgetCheck(key="k", limit=5.0, period="total", amount=1.5),)
                )
            )
        ).allowed
        assert (
            await store.admit(
                Admission(
                    request_id="d", budgets=(BudgetCheck(key="k", limit=5.0, period="total", amount=1.0),)
                )
            )
        ).allowed
    finally:
        await store.close()


async def test_ready_names_the_file_and_a_missing_directory_fails_start(tmp_path: Path) -> None:
    store = await _open(tmp_path / "state.db", FakeClock())
    details = await store.ready()
    await store.close()
    assert details == {"ok": True, "store": "file", "path": str(tmp_path / "state.db")}
    broken = FileStore(FileStore.Options(path=str(tmp_path / "missing" / "state.db")))
    with pytest.raises(sqlite3.OperationalError):
        await broken.start()
    await broken.close()


# --- issue 13: the file does not grow for good, and what it holds is clamped when read --------------


def _rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        return list(db.execute(sql))


async def test_the_file_prunes_old_usage_ended_budget_windows_and_cleared_cooldowns(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "state.db"
    store = FileStore(
        FileStore.Options(path=str(path), flush_interval=3600, usage_retention=10 * 86400), clock=clock
    )
    await store.start()
    try:
        for record in make_records(n=10, days=3):  # DAY0 .. DAY0 + 2 days
            store.store_usage(record)
        for period in ("day", "month", "total"):
            check = BudgetCheck(key=f"b:{period}", limit=10.0, period=period, amount=1.0)  # type: ignore[arg-type]
            assert (await store.admit(Admission(request_id=period, budgets=(check,)))).allowed
            await store.settle(Settlement(request_id=period, budget_adjust={check.key: (period, 0.0)}))  # type: ignore[dict-item]
        await store.mark_cooldown(CooldownMark(provider="p", key="k", until=clock() + 3600))
        await store.flush()
        assert _rows(path, "SELECT DISTINCT day FROM usage ORDER BY day") == [
            ("2026-03-01",),
            ("2026-03-02",),
            ("2026-03-03",),
        ]
        assert len(_rows(path, "SELECT * FROM budgets")) == 3
        await store.clear_cooldown("p", "k")
        await store.flush()
        assert _rows(path, "SELECT * FROM cooldowns") == []  # an enable survives a restart

        clock.advance(11 * 86400)  # DAY0 + 11.5 d: 2026-03-01 is past the 10-day retention
        await store.flush()
        assert _rows(path, "SELECT DISTINCT day FROM usage ORDER BY day") == [
            ("2026-03-02",),
            ("2026-03-03",),
        ]
        assert sorted(_rows(path, "SELECT key FROM budgets")) == [
            ("b:month",),
            ("b:total",),
        ]  # the day ended 10 d ago
        clock.advance(40 * 86400)  # April 21st: March ended more than a week ago; usage all past retention
        await store.flush()
        assert _rows(path, "SELECT * FROM usage") == []
        assert _rows(path, "SELECT key, spent FROM budgets") == [("b:total", 1.0)]  # kept for good
        assert (await store.usage(UsageQuery())).total.requests == 0
    finally:
        await store.close()


async def test_negative_numbers_in_the_file_count_as_zero(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "state.db"
    store = await _open(path, clock)
    await store.close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO budgets (key, budget_window, spent) VALUES ('b', 'total', -100.0)")
        db.execute(
            "INSERT INTO usage (key, alias, provider, provider_key, model, day, requests, prompt_tokens, cost_usd)"
            " VALUES ('k', 'a', 'p', 'pk', 'm', '2026-03-01', -5, -1000000, -1000.0)"
        )
    store = await _open(path, clock)
    try:
        over = BudgetCheck(key="b", limit=10.0, period="total", amount=10.5)
        assert not (await store.admit(Admission(request_id="r", budgets=(over,)))).allowed
        total = (await store.usage(UsageQuery())).total
        assert (total.requests, total.prompt_tokens, total.cost_usd) == (0, 0, 0.0)
    finally:
        await store.close()


async def test_retention_option_is_checked() -> None:
    from truckllm._internal.config.loader import decode_options

    assert decode_options({"usage_retention": "30d"}, FileStore.Options).usage_retention == 30 * 86400
    with pytest.raises(Exception, match="usage_retention"):
        decode_options({"usage_retention": 0}, FileStore.Options)


def _state_rows(path: Path) -> list[tuple[str, float]]:
    db = sqlite3.connect(path)
    try:
        return sorted(db.execute("SELECT name, expires_at FROM state").fetchall())
    finally:
        db.close()


async def test_a_state_value_is_in_the_file_when_put_returns(tmp_path: Path) -> None:
    """Two processes sharing a file: a value one puts is read by the other at once (no flush), a
    delete too; no file is named after a value's name."""
    clock, path = FakeClock(), tmp_path / "state.db"
    one, two = await _open(path, clock), await _open(path, clock)
    try:
        await one.put_state("../escape/name", b"v1", 600)
        assert await two.get_state("../escape/name") == b"v1"
        await two.put_state("../escape/name", b"v2", 600)
        assert await one.get_state("../escape/name") == b"v2"
        assert await one.delete_state("../escape/name") is True
        assert await two.get_state("../escape/name") is None
        assert await two.delete_state("../escape/name") is False
    finally:
        await one.close()
        await two.close()
    files = await asyncio.to_thread(lambda: sorted(p.name for p in tmp_path.iterdir()))
    assert all(name.startswith("state.db") for name in files), files
    assert not await asyncio.to_thread((tmp_path.parent / "escape").exists)


async def test_state_expiry_holds_across_restarts_and_expired_rows_go(tmp_path: Path) -> None:
    """Expiry is an absolute time in the file: after a restart a value still expires on time; opening
    the file deletes the expired rows, and puts delete up to 64 expired rows each."""
    clock, path = FakeClock(), tmp_path / "state.db"
    store = await _open(path, clock)
    await store.put_state("short", b"s", 30)
    await store.put_state("long", b"l", 3600)
    await store.close()
    clock.advance(20)
    store = await _open(path, clock)
    assert await store.get_state("short") == b"s"
    await store.close()
    clock.advance(20)
    store = await _open(path, clock)  # "short" expired while the store was down: deleted at open
    assert [name for name, _ in _state_rows(path)] == ["long"]
    assert await store.get_state("short") is None
    for i in range(200):
        await store.put_state(f"old-{i}", b"x", 10)
    clock.advance(11)
    await store.put_state("new-1", b"y", 600)
    assert len(_state_rows(path)) == 200 - 64 + 2
    for i in range(3):
        await store.put_state(f"new-{i + 2}", b"y", 600)
    assert [name for name, _ in _state_rows(path)] == ["long", "new-1", "new-2", "new-3", "new-4"]
    await store.close()


async def test_state_needs_a_started_store(tmp_path: Path) -> None:
    store = FileStore(FileStore.Options(path=str(tmp_path / "state.db")))
    with pytest.raises(StoreUnavailable, match="not open"):
        await store.get_state("n")


async def test_a_version_1_file_is_migrated_and_keeps_its_usage(tmp_path: Path) -> None:
    """A file written before teams, orgs, users and tags had usage columns: its rows count under
    ``-`` for each, and new records group by them."""
    path = tmp_path / "state.db"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
        INSERT INTO meta VALUES ('schema_version', '1');
        CREATE TABLE usage (
            key TEXT NOT NULL, alias TEXT NOT NULL, provider TEXT NOT NULL, provider_key TEXT NOT NULL,
            model TEXT NOT NULL, day TEXT NOT NULL,
            requests INTEGER NOT NULL DEFAULT 0, errors INTEGER NOT NULL DEFAULT 0,
            prompt_tokens INTEGER NOT NULL DEFAULT 0, completion_tokens INTEGER NOT NULL DEFAULT 0,
            cached_tokens INTEGER NOT NULL DEFAULT 0, reasoning_tokens INTEGER NOT NULL DEFAULT 0,
            cost_usd REAL NOT NULL DEFAULT 0,
            PRIMARY KEY (key, alias, provider, provider_key, model, day)
        ) WITHOUT ROWID;
        INSERT INTO usage VALUES ('team-a', 'gpt-4o', 'openai', 'oa', 'gpt-4o', '2026-03-01', 3, 1, 10, 20, 0, 0, 0.5);
        """
    )
    old.commit()
    old.close()
    clock = FakeClock()
    store = await _open(path, clock)
    store.store_usage(msgspec.structs.replace(make_records(n=1)[0], team="eng", tags=("t1", "t2")))
    await store.close()
    store = await _open(path, clock)
    try:
        report = await store.usage(UsageQuery(group_by=("team",)))
        teams = {row.group["team"]: row.requests for row in report.rows}
        assert teams == {"-": 3, "eng": 1} and report.total.requests == 4
        tags = {
            row.group["tag"]: row.requests for row in (await store.usage(UsageQuery(group_by=("tag",)))).rows
        }
        assert tags == {"-": 3, "t1": 1, "t2": 1}
    finally:
        await store.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone() == ("2",)
    db.close()
