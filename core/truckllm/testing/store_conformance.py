"""One conformance suite for every store implementation.

Subclass :class:`StoreConformance` in a test module and provide a ``store_harness`` fixture that
yields a started :class:`StoreHarness`; every ``test_*`` method then runs against your store:

```python
from truckllm.testing.store_conformance import FakeClock, StoreConformance, StoreHarness

class TestMyStoreConformance(StoreConformance):
    @pytest.fixture
    async def store_harness(self):
        clock = FakeClock()
        store = MyStore(MyStore.Options(), clock=clock)
        await store.start()
        harness = StoreHarness(store, clock=clock, reopen=lambda: reopen_my_store(clock))
        yield harness
        await harness.store.close()
```

A store whose time cannot be injected (Redis uses its own clock) passes ``clock=None``: the
suite then waits for real (at most about a second in total) or checks ``retry_after`` values.
Writes a store batches are made visible with its ``flush()`` method when it has one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from truckllm.store import (
    Admission,
    BudgetCheck,
    CooldownMark,
    Decision,
    RateCheck,
    Settlement,
    Store,
    UsageQuery,
    UsageRow,
    usage_groups,
)
from truckllm.types import RequestRecord, Usage

__all__ = ["DAY0", "FakeClock", "StoreConformance", "StoreHarness", "make_records", "sum_records"]

DAY0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC).timestamp()
"""Midnight UTC of the first day the usage tests' records fall on."""


class FakeClock:
    """A settable unix clock: ``clock()`` reads it, ``advance(seconds)`` moves it."""

    def __init__(self, now: float = DAY0 + 12 * 3600) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds


class StoreHarness:
    """What the suite needs to drive one store.

    :param store: the store under test, started.
    :param clock: the store's fake clock, or ``None`` if the store keeps real time.
    :param reopen: build and start a new store over the same backend (called after ``close()``).
    """

    def __init__(
        self,
        store: Store,
        *,
        clock: FakeClock | None = None,
        reopen: Callable[[], Awaitable[Store]] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self._reopen = reopen

    def now(self) -> float:
        """The store's idea of the time."""
        return self.clock() if self.clock is not None else time.time()

    async def wait(self, seconds: float) -> None:
        """Let ``seconds`` pass: move the fake clock, or sleep."""
        if self.clock is not None:
            self.clock.advance(seconds)
        else:
            await asyncio.sleep(seconds)

    async def sync(self) -> None:
        """Make batched writes visible (the store's ``flush()``, if any)."""
        flush = getattr(self.store, "flush", None)
        if flush is not None:
            await flush()

    async def record(self, record: RequestRecord) -> None:
        """Hand one record to the store's ``store_usage`` hookimpl."""
        result = self.store.store_usage(record)  # type: ignore[attr-defined]
        if inspect.isawaitable(result):
            await result

    async def reopen(self) -> Store:
        """Close the store and open a new one over the same backend."""
        if self._reopen is None:
            pytest.skip("this store cannot be reopened")
        await self.store.close()
        self.store = await self._reopen()
        return self.store


def _rid() -> str:
    return uuid.uuid4().hex


def _key(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def make_records(n: int = 60, seed: int = 7, days: int = 3) -> list[RequestRecord]:
    """Deterministic records over ``days`` UTC days from :data:`DAY0`: several keys, models, statuses."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        usage = None
        if rng.random() < 0.85:
            prompt, completion = rng.randint(1, 5000), rng.randint(0, 2000)
            usage = Usage(
                prompt_tokens=prompt,
                completion_tokens=completion,
                total_tokens=prompt + completion,
                cached_tokens=rng.randint(0, prompt),
                reasoning_tokens=rng.randint(0, completion),
            )
        provider = rng.choice(["openai", "anthropic", None])
        records.append(
            RequestRecord(
                request_id=f"r{i}",
                started_at=DAY0 + rng.randrange(days) * 86400 + rng.uniform(0, 86399),
                endpoint="chat",
                dialect="openai",
                alias=rng.choice(["gpt-4o", "claude"]),
                gateway_key=rng.choice(["team-a", "team-b", None]),
                stream=rng.random() < 0.5,
                status=rng.choice([200, 200, 200, 429, 500, 400]),
                latency_ms=rng.uniform(1, 500),
                provider=provider,
                provider_key=f"{provider}-main" if provider else None,
                model=rng.choice(["gpt-4o", "claude-sonnet", None]),
                usage=usage,
                cost_usd=round(rng.uniform(0, 0.2), 6) if usage is not None else 0.0,
            )
        )
    return records


def sum_records(
    records: list[RequestRecord], group_by: tuple[str, ...] = ()
) -> dict[tuple[str, ...], UsageRow]:
    """The expected usage rows, computed directly from the records."""
    rows: dict[tuple[str, ...], UsageRow] = {}
    for record in records:
        groups = usage_groups(record)
        label = tuple(groups[g] for g in group_by)
        row = rows.setdefault(label, UsageRow(group=dict(zip(group_by, label, strict=True))))
        row.requests += 1
        row.errors += 0 if 200 <= record.status < 300 else 1
        if record.usage is not None:
            row.prompt_tokens += record.usage.prompt_tokens
            row.completion_tokens += record.usage.completion_tokens
            row.cached_tokens += record.usage.cached_tokens
            row.reasoning_tokens += record.usage.reasoning_tokens
        row.cost_usd += record.cost_usd
    return rows


def _same(got: UsageRow, want: UsageRow) -> None:
    assert got.group == want.group
    assert (got.requests, got.errors) == (want.requests, want.errors), got.group
    assert (got.prompt_tokens, got.completion_tokens) == (want.prompt_tokens, want.completion_tokens)
    assert (got.cached_tokens, got.reasoning_tokens) == (want.cached_tokens, want.reasoning_tokens)
    assert got.cost_usd == pytest.approx(want.cost_usd, rel=1e-9, abs=1e-9)


async def _admit(
    store: Store, *rates: RateCheck, budgets: tuple[BudgetCheck, ...] = (), rid: str = ""
) -> Decision:
    return await store.admit(Admission(request_id=rid or _rid(), rates=rates, budgets=budgets))


class StoreConformance:
    """The behaviour every store must show. Provide a ``store_harness`` fixture (see the module doc)."""

    # --- readiness ------------------------------------------------------------------------------

    async def test_ready(self, store_harness: StoreHarness) -> None:
        """``ready()`` says ok."""
        details: dict[str, Any] = await store_harness.store.ready()
        assert details["ok"] is True

    async def test_empty_admission_is_allowed(self, store_harness: StoreHarness) -> None:
        """An admission without checks is allowed."""
        decision = await store_harness.store.admit(Admission(request_id=_rid()))
        assert decision.allowed and not decision.degraded

    # --- GCRA -----------------------------------------------------------------------------------

    async def test_gcra_burst_then_refill(self, store_harness: StoreHarness) -> None:
        """5 per second: five at once, then one per 0.2 s, with ``retry_after`` and ``remaining``."""
        store, key = store_harness.store, _key("rps")
        check = RateCheck(key=key, rate=5, period=1.0)
        left = []
        for _ in range(5):
            decision = await _admit(store, check)
            assert decision.allowed and not decision.degraded
            left.append(decision.remaining[key])
        assert left == [4, 3, 2, 1, 0]
        denied = await _admit(store, check)
        assert not denied.allowed
        assert (denied.kind, denied.denied_by) == ("rate", key)
        assert denied.retry_after is not None and 0 < denied.retry_after <= 0.2 + 1e-3
        assert denied.remaining[key] == 0
        await store_harness.wait(denied.retry_after + 0.02)
        assert (await _admit(store, check)).allowed
        again = await _admit(store, check)
        assert not again.allowed and again.retry_after is not None and again.retry_after <= 0.2 + 1e-3

    async def test_gcra_burst_option_and_cost(self, store_harness: StoreHarness) -> None:
        """``burst`` caps what is available at once; ``cost`` takes several units; cost > burst never fits."""
        store = store_harness.store
        small = RateCheck(key=_key("burst"), rate=5, period=60.0, burst=2)
        assert (await _admit(store, small)).allowed
        assert (await _admit(store, small)).allowed
        denied = await _admit(store, small)
        assert not denied.allowed and denied.retry_after == pytest.approx(12.0, abs=0.5)
        tokens = _key("tpm")
        first = await _admit(store, RateCheck(key=tokens, rate=10, period=60.0, cost=6))
        assert first.allowed and first.remaining[tokens] == 4
        denied = await _admit(store, RateCheck(key=tokens, rate=10, period=60.0, cost=6))
        assert not denied.allowed and denied.remaining[tokens] == 4
        assert denied.retry_after == pytest.approx(12.0, abs=0.5)  # two more units at 6 s each
        never = await _admit(store, RateCheck(key=tokens, rate=10, period=60.0, cost=11))
        assert not never.allowed and never.retry_after is None  # more than the burst: never fits
        fits = await _admit(store, RateCheck(key=tokens, rate=10, period=60.0, cost=4))
        assert fits.allowed and fits.remaining[tokens] == 0

    # --- atomicity ------------------------------------------------------------------------------

    async def test_all_or_nothing_rates(self, store_harness: StoreHarness) -> None:
        """A denied admission takes nothing from the checks that passed."""
        store = store_harness.store
        a = RateCheck(key=_key("a"), rate=3, period=60.0)
        b = RateCheck(key=_key("b"), rate=1, period=60.0)
        assert (await _admit(store, b)).allowed
        denied = await _admit(store, a, b)
        assert not denied.allowed and denied.denied_by == b.key and denied.kind == "rate"
        for expected in (2, 1, 0):  # nothing of a was taken by the denied admission
            decision = await _admit(store, a)
            assert decision.allowed and decision.remaining[a.key] == expected

    async def test_all_or_nothing_budget_denial(self, store_harness: StoreHarness) -> None:
        """A denied budget takes nothing from the rate limits of the same admission."""
        store = store_harness.store
        rate = RateCheck(key=_key("rpm"), rate=2, period=60.0)
        budget = BudgetCheck(key=_key("usd"), limit=1.0, period="total", amount=1.5)
        denied = await _admit(store, rate, budgets=(budget,))
        assert not denied.allowed and (denied.kind, denied.denied_by) == ("budget", budget.key)
        assert denied.retry_after is None
        for expected in (1, 0):
            decision = await _admit(store, rate)
            assert decision.allowed and decision.remaining[rate.key] == expected
        ok = BudgetCheck(key=budget.key, limit=1.0, period="total", amount=1.0)
        decision = await _admit(store, budgets=(ok,))
        assert decision.allowed and decision.remaining[budget.key] == pytest.approx(0.0)

    async def test_budget_concurrency(self, store_harness: StoreHarness) -> None:
        """50 concurrent admissions against a budget that fits 10: exactly 10 are allowed."""
        store = store_harness.store
        budget = BudgetCheck(key=_key("usd"), limit=10.0, period="month", amount=1.0)
        decisions = await asyncio.gather(*(_admit(store, budgets=(budget,)) for _ in range(50)))
        assert not any(d.degraded for d in decisions)
        assert sum(d.allowed for d in decisions) == 10
        assert all(d.kind == "budget" for d in decisions if not d.allowed)

    async def test_budget_periods_are_separate(self, store_harness: StoreHarness) -> None:
        """Each period has its own window; a new day frees the day budget only."""
        store, key = store_harness.store, _key("usd")
        for period in ("day", "week", "month", "total"):
            check = BudgetCheck(key=f"{key}:{period}", limit=1.0, period=period, amount=1.0)
            assert (await _admit(store, budgets=(check,))).allowed
            assert not (await _admit(store, budgets=(check,))).allowed
        if store_harness.clock is None:
            return
        store_harness.clock.advance(86400)  # a new day: the day budget is fresh, the total one is not
        day = BudgetCheck(key=f"{key}:day", limit=1.0, period="day", amount=1.0)
        total = BudgetCheck(key=f"{key}:total", limit=1.0, period="total", amount=1.0)
        assert (await _admit(store, budgets=(day,))).allowed
        assert not (await _admit(store, budgets=(total,))).allowed

    # --- settlement -----------------------------------------------------------------------------

    async def test_settle_budget_refund_and_overrun(self, store_harness: StoreHarness) -> None:
        """Settlement moves the reservation to spent with the real cost, lower or higher."""
        store = store_harness.store
        refund = BudgetCheck(key=_key("usd"), limit=10.0, period="month", amount=4.0)
        rid = _rid()
        assert (await _admit(store, budgets=(refund,), rid=rid)).remaining[refund.key] == pytest.approx(6.0)
        await store.settle(Settlement(request_id=rid, budget_adjust={refund.key: ("month", -3.0)}))  # cost 1
        await store_harness.sync()
        big = BudgetCheck(key=refund.key, limit=10.0, period="month", amount=9.0)
        decision = await _admit(store, budgets=(big,))
        assert decision.allowed and decision.remaining[refund.key] == pytest.approx(0.0)
        assert not (
            await _admit(store, budgets=(BudgetCheck(key=refund.key, limit=10.0, amount=0.5),))
        ).allowed

        over = BudgetCheck(key=_key("usd"), limit=10.0, period="month", amount=2.0)
        rid = _rid()
        assert (await _admit(store, budgets=(over,), rid=rid)).allowed
        await store.settle(Settlement(request_id=rid, budget_adjust={over.key: ("month", 6.0)}))  # cost 8
        await store_harness.sync()
        assert not (await _admit(store, budgets=(BudgetCheck(key=over.key, limit=10.0, amount=2.5),))).allowed
        decision = await _admit(store, budgets=(BudgetCheck(key=over.key, limit=10.0, amount=2.0),))
        assert decision.allowed and decision.remaining[over.key] == pytest.approx(0.0)

    async def test_settle_without_reservation_corrects_current_window(
        self, store_harness: StoreHarness
    ) -> None:
        """A correction for a request this store did not admit lands in the current window."""
        store, key = store_harness.store, _key("usd")
        await store.settle(Settlement(request_id=_rid(), budget_adjust={key: ("month", 7.0)}))
        await store_harness.sync()
        assert not (await _admit(store, budgets=(BudgetCheck(key=key, limit=10.0, amount=3.5),))).allowed
        assert (await _admit(store, budgets=(BudgetCheck(key=key, limit=10.0, amount=3.0),))).allowed

    async def test_settle_rate_refund_and_overrun(self, store_harness: StoreHarness) -> None:
        """Token-limit corrections give units back or take more (a debt delays the next request)."""
        store = store_harness.store
        key = _key("tpm")
        rid = _rid()
        first = await _admit(store, RateCheck(key=key, rate=10, period=60.0, cost=6), rid=rid)
        assert first.remaining[key] == 4
        await store.settle(Settlement(request_id=rid, rate_adjust={key: -4}))  # used 2, not 6
        await store_harness.sync()
        decision = await _admit(store, RateCheck(key=key, rate=10, period=60.0, cost=8))
        assert decision.allowed and decision.remaining[key] == 0

        key = _key("tpm")
        rid = _rid()
        assert (await _admit(store, RateCheck(key=key, rate=10, period=60.0, cost=2), rid=rid)).allowed
        await store.settle(Settlement(request_id=rid, rate_adjust={key: 9}))  # used 11: one unit in debt
        await store_harness.sync()
        denied = await _admit(store, RateCheck(key=key, rate=10, period=60.0, cost=1))
        assert not denied.allowed
        assert denied.retry_after == pytest.approx(12.0, abs=0.5)  # pay the debt, then one unit

    # --- cooldowns ------------------------------------------------------------------------------

    async def test_cooldown_extends_never_shortens(self, store_harness: StoreHarness) -> None:
        """A later ``until`` extends a cooldown; an earlier one is ignored."""
        store, now = store_harness.store, store_harness.now()
        key = _key("oa")
        await store.mark_cooldown(CooldownMark(provider="openai", key=key, until=now + 60, reason="429"))
        await store.mark_cooldown(CooldownMark(provider="openai", key=key, until=now + 30, reason="shorter"))
        await store.mark_cooldown(CooldownMark(provider="anthropic", key=key, until=now + 10, reason="5xx"))
        marks = {(m.provider, m.key): m for m in await store.cooldowns()}
        assert marks[("openai", key)].until == pytest.approx(now + 60)
        assert marks[("openai", key)].reason == "429"
        assert marks[("anthropic", key)].until == pytest.approx(now + 10)
        await store.mark_cooldown(CooldownMark(provider="openai", key=key, until=now + 90, reason="longer"))
        marks = {(m.provider, m.key): m for m in await store.cooldowns()}
        assert marks[("openai", key)].until == pytest.approx(now + 90)
        assert marks[("openai", key)].reason == "longer"

    async def test_cooldown_expired_marks_are_dropped(self, store_harness: StoreHarness) -> None:
        """Marks in the past are never listed."""
        store, now = store_harness.store, store_harness.now()
        key = _key("oa")
        await store.mark_cooldown(CooldownMark(provider="openai", key=key, until=now - 1))
        await store.mark_cooldown(CooldownMark(provider="openai", key=key + "-short", until=now + 0.3))
        listed = {m.key for m in await store.cooldowns()}
        assert key not in listed and key + "-short" in listed
        await store_harness.wait(0.35)
        assert key + "-short" not in {m.key for m in await store.cooldowns()}

    # --- usage ----------------------------------------------------------------------------------

    async def test_usage_sums_equal_records(self, store_harness: StoreHarness) -> None:
        """The usage total equals the sums over the records."""
        records = make_records()
        for record in records:
            await store_harness.record(record)
        await store_harness.sync()
        report = await store_harness.store.usage(UsageQuery())
        want = sum_records(records)[()]
        _same(report.total, want)
        assert len(report.rows) == 1
        _same(report.rows[0], want)

    async def test_usage_group_by(self, store_harness: StoreHarness) -> None:
        """Rows per group, sorted by group values, each equal to the records' sums."""
        records = make_records(seed=11)
        for record in records:
            await store_harness.record(record)
        await store_harness.sync()
        for group_by in (("key",), ("model", "provider"), ("day", "key", "alias", "provider_key")):
            report = await store_harness.store.usage(UsageQuery(group_by=group_by))
            want = sum_records(records, group_by)
            assert [tuple(r.group[g] for g in group_by) for r in report.rows] == sorted(want)
            for row in report.rows:
                _same(row, want[tuple(row.group[g] for g in group_by)])
            _same(report.total, sum_records(records)[()])

    async def test_usage_since_until_and_filters(self, store_harness: StoreHarness) -> None:
        """``since``/``until`` select whole UTC days; ``key``, ``alias``, ``provider`` filter."""
        records = make_records(seed=5)
        for record in records:
            await store_harness.record(record)
        await store_harness.sync()
        usage = store_harness.store.usage
        day2 = [r for r in records if DAY0 + 86400 <= r.started_at < DAY0 + 2 * 86400]
        report = await usage(UsageQuery(since=DAY0 + 86400, until=DAY0 + 2 * 86400))
        _same(report.total, sum_records(day2)[()])
        report = await usage(UsageQuery(since=DAY0 + 86400, group_by=("day",)))
        assert [r.group["day"] for r in report.rows] == ["2026-03-02", "2026-03-03"]
        later = [r for r in records if r.started_at >= DAY0 + 86400]
        _same(report.total, sum_records(later)[()])
        report = await usage(UsageQuery(until=DAY0 + 86400))
        _same(report.total, sum_records([r for r in records if r.started_at < DAY0 + 86400])[()])
        assert (await usage(UsageQuery(since=DAY0 + 10 * 86400))).rows == []
        team_a = [r for r in records if r.gateway_key == "team-a"]
        _same((await usage(UsageQuery(key="team-a"))).total, sum_records(team_a)[()])
        claude_openai = [r for r in records if r.alias == "claude" and r.provider == "openai"]
        report = await usage(UsageQuery(alias="claude", provider="openai", group_by=("alias", "provider")))
        assert len(report.rows) == 1
        _same(report.rows[0], sum_records(claude_openai, ("alias", "provider"))[("claude", "openai")])

    # --- shutdown -------------------------------------------------------------------------------

    async def test_close_flushes_pending(self, store_harness: StoreHarness) -> None:
        """``close()`` writes usage, settlements and cooldowns that were still pending."""
        store = store_harness.store
        records = make_records(n=10, seed=3)
        for record in records:
            await store_harness.record(record)
        key, rid = _key("usd"), _rid()
        assert (await _admit(store, budgets=(BudgetCheck(key=key, limit=10.0, amount=2.0),), rid=rid)).allowed
        await store.settle(Settlement(request_id=rid, budget_adjust={key: ("month", 3.0)}))  # cost 5
        now = store_harness.now()
        await store.mark_cooldown(CooldownMark(provider="openai", key=key, until=now + 120, reason="429"))
        reopened = await store_harness.reopen()  # close() must write all of it
        _same((await reopened.usage(UsageQuery())).total, sum_records(records)[()])
        assert not (await _admit(reopened, budgets=(BudgetCheck(key=key, limit=10.0, amount=5.5),))).allowed
        assert (await _admit(reopened, budgets=(BudgetCheck(key=key, limit=10.0, amount=5.0),))).allowed
        marks = {(m.provider, m.key): m.until for m in await reopened.cooldowns()}
        assert marks[("openai", key)] == pytest.approx(now + 120)
