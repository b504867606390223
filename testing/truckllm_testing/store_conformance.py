"""One conformance suite for every store implementation.

Subclass :class:`StoreConformance` in a test module and provide a ``store_harness`` fixture that
yields a started :class:`StoreHarness`; every ``test_*`` method then runs against your store:

```python
from truckllm_testing.store_conformance import FakeClock, StoreConformance, StoreHarness

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

A store that keeps state values (:class:`~truckllm.kit.store.StateStore`, optional) runs the
state tests too; one without a fake clock passes ``state_ttl`` (the backend's remaining time to
live of a name, e.g. Redis ``PTTL``) so that expiry is checked without sleeping.

A store with a shared backend passes ``lose_data``: a coroutine function that makes the backend
forget everything (Redis: delete the prefix's keys) while the store object stays, so the suite
can settle requests whose reservations the backend no longer holds.

The budget rules (every store): :func:`run_budget_ops` plays a sequence of :class:`BudgetOp`
(admit, settle with any correction, settle twice, settle a request never admitted, lose the
backend's data) and checks after every step that the budget's ``spent + reserved`` (read with a
probe admission) is never below 0, never below what the store must still hold (the reservations
and costs since the last loss), never above that plus what settlements may add, and never above
the limit by more than the documented slack (overruns of settlements beyond their reservation,
and positive corrections the store cannot match to a reservation). :func:`budget_ops` is the
hypothesis strategy of such sequences:

```python
@settings(max_examples=50, deadline=None)
@given(ops=budget_ops())
def test_budget_sequences(ops):
    asyncio.run(run_on_a_fresh_store(ops))  # build, start, run_budget_ops(harness, ops), close
```
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import math
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
import pytest
from hypothesis import strategies as st

from truckllm._internal.store import (
    DEFAULT_USAGE_RETENTION,
    USAGE_TOTALS,
    Admission,
    BudgetCheck,
    CooldownMark,
    Decision,
    GroupBy,
    Period,
    RateCheck,
    Settlement,
    StateStore,
    Store,
    UsageQuery,
    UsageRow,
    usage_groups,
    utc_day,
)
from truckllm.types import RequestRecord, Usage

__all__ = [
    "DAY0",
    "STATE_NAMES",
    "BudgetOp",
    "FakeClock",
    "StoreConformance",
    "StoreHarness",
    "budget_ops",
    "governed",
    "make_records",
    "run_budget_ops",
    "sum_records",
]

DAY0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC).timestamp()
"""Midnight UTC of the first day the usage tests' records fall on."""


STATE_NAMES: tuple[str, ...] = (
    "responses:team-a:resp_0001",
    "a/b",
    "a%2Fb",
    "a_b",
    "../../etc/passwd",
    "/leading/and/trailing/",
    "C:\\Windows\\system32",
    "x?y=z&w=1#frag",
    "plus+and space",
    "{hash-tag}",
    "tête-à-tête 名前 🚚",
    "Case",
    "case",
    "*",
    ".",
    "..",
    "%00%ff%",
    "n" * 300,
)
"""State names with characters that break naive file paths, URLs and Redis keys: each must keep
its own value (no two may collide, case included)."""


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
    :param lose_data: make the backend forget everything, the store object staying as it is
        (``None``: the store has no backend that can lose data without the store knowing).
    :param usage_retention: the store's ``usage_retention`` (seconds).
    :param state_ttl: the backend's remaining time to live (seconds) of a state value's name,
        ``None`` when absent (for a store without a fake clock, so expiry is checked without sleeping).
    """

    def __init__(
        self,
        store: Store,
        *,
        clock: FakeClock | None = None,
        reopen: Callable[[], Awaitable[Store]] | None = None,
        lose_data: Callable[[], Awaitable[None]] | None = None,
        usage_retention: float = DEFAULT_USAGE_RETENTION,
        state_ttl: Callable[[str], Awaitable[float | None]] | None = None,
    ) -> None:
        self.store = store
        self.state_ttl = state_ttl
        self.clock = clock
        self._reopen = reopen
        self.lose_data = lose_data
        self.usage_retention = usage_retention

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


def _replace(record: RequestRecord, **changes: Any) -> RequestRecord:
    """A copy of ``record`` with ``changes``."""
    return msgspec.structs.replace(record, **changes)


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


def governed(records: list[RequestRecord], seed: int = 23) -> list[RequestRecord]:
    """``records`` with teams, orgs, end users and tags (none, one or several tags each)."""
    rng = random.Random(seed)
    out = []
    for record in records:
        team = rng.choice(["eng", "ops", None])
        out.append(
            _replace(
                record,
                team=team,
                org="acme" if team is not None and rng.random() < 0.7 else None,
                user=rng.choice(["ann", "bob", "tête-à-tête 名前", None]),
                tags=tuple(rng.sample(["t1", "t2", "proj:x/y", "a.b-c"], rng.randint(0, 3))),
            )
        )
    return out


def sum_records(
    records: list[RequestRecord], group_by: tuple[str, ...] = ()
) -> dict[tuple[str, ...], UsageRow]:
    """The expected usage rows, computed directly from the records (grouped by ``tag``, a record
    counts once per tag, ``-`` when it has none)."""
    rows: dict[tuple[str, ...], UsageRow] = {}
    for record in records:
        groups = usage_groups(record)
        for tag in (record.tags or ("-",)) if "tag" in group_by else (groups["tag"],):
            label = tuple(tag if g == "tag" else groups[g] for g in group_by)
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


PROBE_LIMIT = 1e9
"""The limit of a probe admission (amount 0): its ``remaining`` is ``PROBE_LIMIT - spent - reserved``."""


async def budget_used(store: Store, key: str) -> float:
    """``spent + reserved`` of the ``total`` budget ``key``, read with a probe admission of 0 USD."""
    probe = BudgetCheck(key=key, limit=PROBE_LIMIT, period="total", amount=0.0)
    decision = await store.admit(Admission(request_id=_rid(), budgets=(probe,)))
    assert not decision.degraded, "the store answered from its fallback"
    return PROBE_LIMIT - decision.remaining[key]


@dataclass(frozen=True)
class BudgetOp:
    """One step of a budget sequence (see :func:`run_budget_ops`).

    :ivar kind: ``admit`` (reserve ``amount``), ``settle`` (the ``pick``-th unsettled admitted
        request, modulo their number, with the correction ``amount``; a request never admitted
        when there is none), ``resettle`` (a settled request again), ``unknown`` (a request never
        admitted) or ``lose`` (the backend forgets everything, see :attr:`StoreHarness.lose_data`).
    """

    kind: Literal["admit", "settle", "resettle", "unknown", "lose"]
    amount: float = 0.0
    pick: int = 0


@dataclass
class _Held:
    amount: float
    epoch: int


@dataclass
class _BudgetModel:
    """What the store must hold: ``low`` (reservations and costs since the last loss) and what it
    may add on top (``extra``: costs of requests admitted before the loss, positive corrections
    of requests it holds no reservation of)."""

    limit: float
    epoch: int = 0
    low: float = 0.0
    extra: float = 0.0
    overrun: float = 0.0
    pending: dict[str, _Held] = field(default_factory=dict)
    settled: list[str] = field(default_factory=list)

    def settle(self, rid: str, adjust: float) -> None:
        held = self.pending.pop(rid)
        real = adjust if math.isfinite(adjust) else 0.0
        cost = max(held.amount + real, 0.0)
        if held.epoch == self.epoch:
            self.low += cost - held.amount
            self.overrun += max(cost - held.amount, 0.0)
        else:
            self.extra += cost
        self.settled.append(rid)

    def unmatched(self, adjust: float) -> None:
        if 0 < adjust < math.inf:
            self.extra += adjust

    def lose(self) -> None:
        self.epoch += 1
        self.low = self.extra = self.overrun = 0.0


def budget_ops(max_size: int = 14) -> st.SearchStrategy[list[BudgetOp]]:
    """Hypothesis: sequences of :class:`BudgetOp` against a 10 USD budget (amounts up to 12 USD,
    corrections anywhere in ±1e6 USD, and not-a-number and infinite ones)."""
    adjust = st.one_of(
        st.floats(-1e6, 1e6, allow_nan=False),
        st.floats(-12.0, 12.0, allow_nan=False),
        st.sampled_from([math.nan, math.inf, -math.inf, -1_000_000.0, 0.0]),
    )
    pick = st.integers(0, 7)
    op = st.one_of(
        st.builds(BudgetOp, kind=st.just("admit"), amount=st.floats(0.0, 12.0, allow_nan=False)),
        st.builds(BudgetOp, kind=st.just("settle"), amount=adjust, pick=pick),
        st.builds(BudgetOp, kind=st.just("resettle"), amount=adjust, pick=pick),
        st.builds(BudgetOp, kind=st.just("unknown"), amount=adjust),
        st.just(BudgetOp(kind="lose")),
    )
    return st.lists(op, max_size=max_size)


async def run_budget_ops(harness: StoreHarness, ops: Sequence[BudgetOp], limit: float = 10.0) -> None:
    """Play ``ops`` against a fresh ``total`` budget of ``limit`` USD and check the budget rules
    after every step (``lose`` steps are skipped when the harness cannot lose data).

    :raises AssertionError: naming the step and the numbers.
    """
    store, key = harness.store, _key("usd")
    model = _BudgetModel(limit=limit)
    for step, op in enumerate(ops):
        where = f"step {step} {op}"
        if op.kind == "admit":
            before = await budget_used(store, key)
            rid = _rid()
            check = BudgetCheck(key=key, limit=limit, period="total", amount=op.amount)
            decision = await store.admit(Admission(request_id=rid, budgets=(check,)))
            assert not decision.degraded, where
            tol = 1e-6 * max(1.0, abs(before))
            if decision.allowed:
                assert before + op.amount <= limit + tol, f"{where}: allowed with {before} used"
                model.pending[rid] = _Held(op.amount, model.epoch)
                model.low += op.amount
            else:
                assert before + op.amount > limit - tol, f"{where}: denied with {before} used"
                assert decision.remaining[key] <= limit, where
        elif op.kind == "settle" and model.pending:
            rid = list(model.pending)[op.pick % len(model.pending)]
            adjust: dict[str, tuple[Period, float]] = {key: ("total", op.amount)}
            await store.settle(Settlement(request_id=rid, budget_adjust=adjust))
            model.settle(rid, op.amount)
        elif op.kind == "lose":
            if harness.lose_data is None:
                continue
            await harness.sync()  # what the store had queued reaches the backend, then is lost
            await harness.lose_data()
            model.lose()
        else:  # unknown, resettle, or settle with nothing admitted
            settled = model.settled if op.kind == "resettle" else []
            rid = settled[op.pick % len(settled)] if settled else _rid()
            await store.settle(Settlement(request_id=rid, budget_adjust={key: ("total", op.amount)}))
            model.unmatched(op.amount)
        await harness.sync()
        used = await budget_used(store, key)
        tol = 1e-6 * max(1.0, abs(used), model.low + model.extra)
        assert used >= -tol, f"{where}: spent + reserved = {used} < 0"
        assert used >= model.low - tol, f"{where}: {used} used, the store must hold {model.low}"
        assert used <= model.low + model.extra + tol, f"{where}: {used} used > {model.low} + {model.extra}"
        slack = model.overrun + model.extra
        assert used <= limit + slack + tol, f"{where}: {used} used > limit {limit} + slack {slack}"


BUDGET_CASES: dict[str, list[BudgetOp]] = {
    "negative cost refunds nothing (usage of -1,000,000 tokens)": [
        BudgetOp(kind="admit", amount=2.0),
        BudgetOp(kind="settle", amount=-1000.0),
        BudgetOp(kind="admit", amount=10.0),
        BudgetOp(kind="admit", amount=0.01),
    ],
    "settlement larger than the reservation": [
        BudgetOp(kind="admit", amount=2.0),
        BudgetOp(kind="settle", amount=20.0),
        BudgetOp(kind="admit", amount=0.5),
    ],
    "a refund for a request never admitted is dropped": [
        BudgetOp(kind="unknown", amount=-5.0),
        BudgetOp(kind="admit", amount=10.0),
        BudgetOp(kind="admit", amount=0.01),
    ],
    "a request settled twice": [
        BudgetOp(kind="admit", amount=4.0),
        BudgetOp(kind="settle", amount=-1.0),
        BudgetOp(kind="resettle", amount=-3.0),
        BudgetOp(kind="resettle", amount=2.0),
        BudgetOp(kind="admit", amount=5.0),
    ],
    "corrections that are not numbers": [
        BudgetOp(kind="admit", amount=3.0),
        BudgetOp(kind="admit", amount=3.0),
        BudgetOp(kind="settle", amount=math.nan),
        BudgetOp(kind="settle", amount=-math.inf),
        BudgetOp(kind="unknown", amount=math.inf),
        BudgetOp(kind="admit", amount=4.5),
    ],
    "the backend loses its data between admit and settle": [
        BudgetOp(kind="admit", amount=4.0),
        BudgetOp(kind="admit", amount=1.0),
        BudgetOp(kind="lose"),
        BudgetOp(kind="admit", amount=3.0),
        BudgetOp(kind="settle", amount=-1.0, pick=0),
        BudgetOp(kind="settle", amount=5.0, pick=0),
        BudgetOp(kind="admit", amount=2.5),
        BudgetOp(kind="settle", amount=0.0, pick=0),
        BudgetOp(kind="admit", amount=7.0),
    ],
}
"""Budget sequences every store plays (the instances issue 13 names, and their neighbours)."""


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

    # --- budget rules: numbers are clamped (issue 13) --------------------------------------------

    @pytest.mark.parametrize("case", sorted(BUDGET_CASES))
    async def test_budget_rules(self, store_harness: StoreHarness, case: str) -> None:
        """Every sequence of :data:`BUDGET_CASES` keeps the budget rules (see :func:`run_budget_ops`)."""
        await run_budget_ops(store_harness, BUDGET_CASES[case])

    async def test_negative_cost_refunds_nothing(self, store_harness: StoreHarness) -> None:
        """A settlement whose cost is below 0 (usage of -1,000,000 tokens: -$1,000) counts as 0."""
        store, key, rid = store_harness.store, _key("usd"), _rid()
        assert (await _admit(store, budgets=(BudgetCheck(key=key, limit=10.0, amount=2.0),), rid=rid)).allowed
        await store.settle(Settlement(request_id=rid, budget_adjust={key: ("month", -1002.0)}))
        await store.settle(Settlement(request_id=_rid(), budget_adjust={key: ("month", -1000.0)}))
        await store_harness.sync()
        assert not (await _admit(store, budgets=(BudgetCheck(key=key, limit=10.0, amount=10.5),))).allowed
        decision = await _admit(store, budgets=(BudgetCheck(key=key, limit=10.0, amount=10.0),))
        assert decision.allowed and decision.remaining[key] == pytest.approx(0.0)

    async def test_settlement_after_the_backend_lost_data(self, store_harness: StoreHarness) -> None:
        """A reservation the backend lost releases nothing: the reservations made since stay held."""
        if store_harness.lose_data is None:
            pytest.skip("this store's backend cannot lose data on its own")
        store, key = store_harness.store, _key("usd")
        before, after = _rid(), _rid()

        def usd(amount: float) -> tuple[BudgetCheck, ...]:
            return (BudgetCheck(key=key, limit=5.0, period="total", amount=amount),)

        assert (await _admit(store, budgets=usd(4.0), rid=before)).allowed
        await store_harness.sync()
        await store_harness.lose_data()
        assert (await _admit(store, budgets=usd(3.0), rid=after)).allowed
        await store.settle(Settlement(request_id=before, budget_adjust={key: ("total", -1.0)}))  # cost 3
        await store_harness.sync()
        # the 3 USD reserved after the loss are still held, whatever the late settlement added
        assert not (await _admit(store, budgets=usd(2.01))).allowed
        assert 3.0 - 1e-9 <= await budget_used(store, key) <= 6.0 + 1e-9
        await store.settle(Settlement(request_id=after, budget_adjust={key: ("total", -3.0)}))  # cost 0
        await store_harness.sync()
        # reserved is back to 0, not below: what is left is the late request's cost, or nothing
        assert 0.0 - 1e-9 <= await budget_used(store, key) <= 3.0 + 1e-9

    async def test_a_request_id_used_twice_never_loosens_a_budget(self, store_harness: StoreHarness) -> None:
        """Request ids may come from clients (``X-Request-Id``): two requests under one id are merged
        conservatively; the first settlement never releases the other's reservation for nothing."""
        store, key, rid = store_harness.store, _key("usd"), _rid()
        for amount in (4.0, 3.0):
            check = BudgetCheck(key=key, limit=10.0, period="total", amount=amount)
            assert (await _admit(store, budgets=(check,), rid=rid)).allowed
        assert await budget_used(store, key) == pytest.approx(7.0)
        await store.settle(Settlement(request_id=rid, budget_adjust={key: ("total", -4.0)}))  # cost 0
        await store_harness.sync()
        assert 3.0 - 1e-9 <= await budget_used(store, key) <= 7.0 + 1e-9
        await store.settle(Settlement(request_id=rid, budget_adjust={key: ("total", -3.0)}))  # cost 0
        await store_harness.sync()
        assert 3.0 - 1e-9 <= await budget_used(store, key) <= 7.0 + 1e-9

    async def test_checks_that_are_not_numbers_are_refused(self, store_harness: StoreHarness) -> None:
        """A budget amount or limit, or a rate period, that is not a finite number is a ``ValueError``."""
        store = store_harness.store
        bad_budgets = [
            BudgetCheck(key="b", limit=10.0, amount=math.nan),
            BudgetCheck(key="b", limit=10.0, amount=math.inf),
            BudgetCheck(key="b", limit=10.0, amount=-1.0),
            BudgetCheck(key="b", limit=math.nan, amount=1.0),
            BudgetCheck(key="b", limit=math.inf, amount=1.0),
        ]
        for check in bad_budgets:
            with pytest.raises(ValueError, match="'b'"):
                await _admit(store, budgets=(check,))
        for period in (math.nan, math.inf, 0.0, -1.0):
            with pytest.raises(ValueError, match="'r'"):
                await _admit(store, RateCheck(key="r", rate=1, period=period))

    # --- cooldowns ------------------------------------------------------------------------------

    async def test_clear_cooldown(self, store_harness: StoreHarness) -> None:
        """``clear_cooldown`` removes one key's mark (an operator's enable); a later mark counts again,
        even a shorter one; clearing a key without a mark is fine; the clear survives a reopen."""
        store, now = store_harness.store, store_harness.now()
        key = _key("oa")
        await store.mark_cooldown(CooldownMark(provider="openai", key=key, until=now + 600, reason="429"))
        await store.mark_cooldown(CooldownMark(provider="openai", key=key + "-b", until=now + 600))
        await store.mark_cooldown(CooldownMark(provider="anthropic", key=key, until=now + 600))
        await store.clear_cooldown("openai", key)
        await store.clear_cooldown("openai", key + "-never-marked")
        listed = {(m.provider, m.key) for m in await store.cooldowns()}
        assert ("openai", key) not in listed
        assert {("openai", key + "-b"), ("anthropic", key)} <= listed
        await store.mark_cooldown(CooldownMark(provider="openai", key=key, until=now + 60, reason="again"))
        marks = {(m.provider, m.key): m for m in await store.cooldowns()}
        assert marks[("openai", key)].until == pytest.approx(now + 60)
        await store.clear_cooldown("openai", key)
        await store.clear_cooldown("anthropic", key)
        reopened = await store_harness.reopen()  # close() writes the clears too
        listed = {(m.provider, m.key) for m in await reopened.cooldowns()}
        assert ("openai", key) not in listed and ("anthropic", key) not in listed
        assert ("openai", key + "-b") in listed

    async def test_cooldown_until_not_a_number_is_ignored(self, store_harness: StoreHarness) -> None:
        """A mark whose ``until`` is not finite is never listed (it would cool a key for good)."""
        store, now = store_harness.store, store_harness.now()
        key = _key("oa")
        for until in (math.inf, math.nan):
            await store.mark_cooldown(CooldownMark(provider="openai", key=key, until=until))
        await store.mark_cooldown(CooldownMark(provider="openai", key=key + "-ok", until=now + 60))
        listed = {m.key: m.until for m in await store.cooldowns()}
        assert key not in listed and key + "-ok" in listed
        assert all(math.isfinite(until) for until in listed.values())

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

    async def test_usage_group_by_team_org_user_and_tag(self, store_harness: StoreHarness) -> None:
        """Teams, orgs, end users and tags group like the other fields; by ``tag``, a record
        counts once in each of its tags' rows (``-``: none) and the total counts it once."""
        records = governed(make_records(seed=29))
        for record in records:
            await store_harness.record(record)
        await store_harness.sync()
        groupings: tuple[tuple[GroupBy, ...], ...] = (
            ("team",), ("org",), ("user",), ("tag",), ("tag", "key"), ("team", "user", "day"), ("org", "tag"),
        )  # fmt: skip
        for group_by in groupings:
            report = await store_harness.store.usage(UsageQuery(group_by=group_by))
            want = sum_records(records, group_by)
            assert [tuple(r.group[g] for g in group_by) for r in report.rows] == sorted(want), group_by
            for row in report.rows:
                _same(row, want[tuple(row.group[g] for g in group_by)])
            _same(report.total, sum_records(records)[()])
        report = await store_harness.store.usage(UsageQuery(group_by=("tag",), key="team-a"))
        _same(report.total, sum_records([r for r in records if r.gateway_key == "team-a"])[()])
        assert {r.group["tag"] for r in report.rows} <= {"-", "t1", "t2", "proj:x/y", "a.b-c"}

    async def test_usage_groups_survive_reopen(self, store_harness: StoreHarness) -> None:
        """Team, org, user and tag rows are kept by the backend like the others."""
        records = governed(make_records(n=20, seed=31), seed=5)
        for record in records:
            await store_harness.record(record)
        reopened = await store_harness.reopen()
        for group_by in (("tag",), ("team", "org", "user")):
            report = await reopened.usage(UsageQuery(group_by=group_by))
            want = sum_records(records, group_by)
            assert [tuple(r.group[g] for g in group_by) for r in report.rows] == sorted(want)
            for row in report.rows:
                _same(row, want[tuple(row.group[g] for g in group_by)])

    async def test_levels_share_budgets_atomically(self, store_harness: StoreHarness) -> None:
        """Admissions that each check their own key's budget and a shared team's (and org's and
        tag's): 40 at once never reserve more than any budget holds, and a denial takes nothing
        from the other levels of its admission."""
        store = store_harness.store
        team, org, tag = _key("team"), _key("org"), _key("tag")
        keys = [_key("key") for _ in range(4)]

        def admission(i: int) -> tuple[BudgetCheck, ...]:
            return (
                BudgetCheck(key=keys[i % 4], limit=5.0, period="day", amount=1.0),
                BudgetCheck(key=team, limit=12.0, period="day", amount=1.0),
                BudgetCheck(key=org, limit=30.0, period="month", amount=1.0),
                BudgetCheck(key=tag, limit=100.0, period="total", amount=1.0),
            )

        decisions = await asyncio.gather(*(_admit(store, budgets=admission(i)) for i in range(40)))
        assert not any(d.degraded for d in decisions)
        assert sum(d.allowed for d in decisions) == 12  # the team's budget binds first
        assert {d.denied_by for d in decisions if not d.allowed} == {team}
        probe = (
            BudgetCheck(key=org, limit=PROBE_LIMIT, period="month", amount=0.0),
            BudgetCheck(key=tag, limit=PROBE_LIMIT, period="total", amount=0.0),
        )
        used = await _admit(store, budgets=probe)
        assert PROBE_LIMIT - used.remaining[org] == pytest.approx(12.0)  # the denials reserved nothing
        assert PROBE_LIMIT - used.remaining[tag] == pytest.approx(12.0)

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

    async def test_usage_is_never_negative(self, store_harness: StoreHarness) -> None:
        """Negative token counts and costs (a hostile upstream) count as 0; the others add up."""
        records = make_records(n=12, seed=17)
        hostile = []
        for i, value in enumerate((-1_000_000, -1, 0)):
            usage = Usage(
                prompt_tokens=value, completion_tokens=value * 2, cached_tokens=value, reasoning_tokens=value
            )
            hostile.append(
                RequestRecord(
                    request_id=f"h{i}",
                    started_at=DAY0 + 3600,
                    endpoint="chat",
                    dialect="openai",
                    alias="gpt-4o",
                    gateway_key="team-a",
                    stream=False,
                    status=200,
                    latency_ms=1.0,
                    provider="openai",
                    provider_key="openai-main",
                    model="gpt-4o",
                    usage=usage,
                    cost_usd=value / 1000.0,
                )
            )
        for record in [*records, *hostile]:
            await store_harness.record(record)
        await store_harness.sync()
        report = await store_harness.store.usage(UsageQuery(group_by=("key", "model")))
        want = sum_records(records)[()]
        want.requests += len(hostile)
        _same(report.total, want)
        for row in [*report.rows, report.total]:
            assert all(getattr(row, name) >= 0 for name in USAGE_TOTALS), row

    async def test_usage_retention(self, store_harness: StoreHarness) -> None:
        """A UTC day's usage is dropped once it is older than the store's ``usage_retention``; a record
        of such a day is not counted; the drop survives a reopen."""
        clock = store_harness.clock
        if clock is None:
            pytest.skip("needs a fake clock (the redis store's tests check the TTL of every key instead)")
        old = make_records(n=5, seed=23, days=1)
        for record in old:
            await store_harness.record(record)
        await store_harness.sync()
        assert (await store_harness.store.usage(UsageQuery())).total.requests == len(old)
        clock.advance(store_harness.usage_retention - 86400)
        assert (await store_harness.store.usage(UsageQuery())).total.requests == len(old)
        clock.advance(2 * 86400)  # DAY0 is now older than the retention
        late = _replace(old[0], request_id="late")
        fresh = _replace(old[0], request_id="fresh", started_at=clock())
        for record in (late, fresh):
            await store_harness.record(record)
        await store_harness.sync()
        report = await store_harness.store.usage(UsageQuery(group_by=("day",)))
        assert [(r.group["day"], r.requests) for r in report.rows] == [(utc_day(clock()), 1)]
        reopened = await store_harness.reopen()
        report = await reopened.usage(UsageQuery(group_by=("day",)))
        assert [(r.group["day"], r.requests) for r in report.rows] == [(utc_day(clock()), 1)]

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

    # --- state values (StateStore, optional) ----------------------------------------------------

    @staticmethod
    def _state(store_harness: StoreHarness) -> StateStore:
        store = store_harness.store
        if not isinstance(store, StateStore):
            pytest.skip("this store keeps no state values (StateStore is optional)")
        return store

    async def test_state_round_trip_and_absent(self, store_harness: StoreHarness) -> None:
        """A value put is read back byte for byte; an unknown name is ``None``; an empty value is not
        absent."""
        store, name = self._state(store_harness), _key("state")
        assert await store.get_state(name) is None
        await store.put_state(name, b'{"id": "resp_1", "output": []}', 3600)
        assert await store.get_state(name) == b'{"id": "resp_1", "output": []}'
        await store.put_state(name + "-empty", b"", 3600)
        assert await store.get_state(name + "-empty") == b""
        assert await store.get_state(name + "-other") is None

    async def test_state_put_replaces(self, store_harness: StoreHarness) -> None:
        """A second put under a name replaces the value (a longer one, then a shorter one)."""
        store, name = self._state(store_harness), _key("state")
        await store.put_state(name, b"first", 3600)
        await store.put_state(name, b"second, longer value", 3600)
        assert await store.get_state(name) == b"second, longer value"
        await store.put_state(name, b"3", 3600)
        assert await store.get_state(name) == b"3"

    async def test_state_delete(self, store_harness: StoreHarness) -> None:
        """``delete_state`` is ``True`` when it removed a value, ``False`` for a name never put or
        already deleted; the other names stay."""
        store, name = self._state(store_harness), _key("state")
        await store.put_state(name, b"v", 3600)
        await store.put_state(name + "-kept", b"k", 3600)
        assert await store.delete_state(name) is True
        assert await store.get_state(name) is None
        assert await store.delete_state(name) is False
        assert await store.delete_state(name + "-never-put") is False
        assert await store.get_state(name + "-kept") == b"k"
        await store.put_state(name, b"again", 3600)  # a deleted name can be put again
        assert await store.get_state(name) == b"again"

    async def test_state_expires(self, store_harness: StoreHarness) -> None:
        """A value is gone after its ``ttl`` (a fake clock, or the backend's own TTL); a put renews it;
        an expired value is not counted as deleted."""
        store, name = self._state(store_harness), _key("state")
        clock = store_harness.clock
        if clock is None:
            if store_harness.state_ttl is None:
                pytest.skip("needs a fake clock or the backend's TTL (state_ttl)")
            await store.put_state(name, b"v", 30.0)
            left = await store_harness.state_ttl(name)
            assert left is not None and 29.0 < left <= 30.0
            await store.put_state(name, b"v2", 2592000.0)  # 30 days, the kernel's default
            left = await store_harness.state_ttl(name)
            assert left is not None and 2591990.0 < left <= 2592000.0
            await store.put_state(name + "-tiny", b"v", 1e-6)  # kept at least 1 ms: not an error
            assert await store_harness.state_ttl(name + "-never") is None
            return
        await store.put_state(name, b"v", 10.0)
        await store.put_state(name + "-long", b"long", 100.0)
        clock.advance(9.9)
        assert await store.get_state(name) == b"v"
        await store.put_state(name + "-renewed", b"r", 10.0)
        clock.advance(0.2)
        assert await store.get_state(name) is None
        assert await store.delete_state(name) is False
        assert await store.get_state(name + "-renewed") == b"r"
        await store.put_state(name + "-renewed", b"r2", 10.0)  # a put renews the time to live
        clock.advance(9.0)
        assert await store.get_state(name + "-renewed") == b"r2"
        assert await store.get_state(name + "-long") == b"long"
        await store.put_state(name, b"back", 10.0)  # an expired name can be put again
        assert await store.get_state(name) == b"back"

    async def test_state_ttl_not_positive_keeps_nothing_for_long(self, store_harness: StoreHarness) -> None:
        """A ``ttl`` of 0 or below is not an error; the value is gone as soon as time moves on."""
        store, name = self._state(store_harness), _key("state")
        await store.put_state(name, b"v", 0.0)
        await store.put_state(name + "-neg", b"v", -5.0)
        if store_harness.clock is not None:
            store_harness.clock.advance(0.01)
            assert await store.get_state(name) is None
            assert await store.get_state(name + "-neg") is None

    async def test_state_ttl_not_a_number_is_refused(self, store_harness: StoreHarness) -> None:
        """A ``ttl`` that is not a finite number is a ``ValueError`` naming it; nothing is stored."""
        store, name = self._state(store_harness), _key("state")
        for ttl in (math.nan, math.inf, -math.inf):
            with pytest.raises(ValueError, match="ttl"):
                await store.put_state(name, b"v", ttl)
        assert await store.get_state(name) is None

    async def test_state_odd_names(self, store_harness: StoreHarness) -> None:
        """Names with path, URL and key-syntax characters, non-ASCII and 300 characters each keep
        their own value."""
        store, tag = self._state(store_harness), _key("odd")
        names = [f"{tag}:{n}" for n in STATE_NAMES] + list(STATE_NAMES)
        for i, name in enumerate(names):
            await store.put_state(name, f"value {i}".encode(), 3600)
        for i, name in enumerate(names):
            assert await store.get_state(name) == f"value {i}".encode(), name
        for name in STATE_NAMES:
            assert await store.delete_state(name) is True, name
        assert await store.get_state(f"{tag}:a/b") == f"value {names.index(f'{tag}:a/b')}".encode()

    async def test_state_large_binary_value(self, store_harness: StoreHarness) -> None:
        """A 1 MiB value of every byte value (NUL, invalid UTF-8) is read back unchanged."""
        store, name = self._state(store_harness), _key("state")
        value = bytes(range(256)) * 4096 + random.Random(5).randbytes(1024)
        assert len(value) == 1024 * 1024 + 1024
        await store.put_state(name, value, 3600)
        assert await store.get_state(name) == value

    async def test_state_concurrent_puts(self, store_harness: StoreHarness) -> None:
        """Concurrent puts of different names all land; concurrent reads see each its own value."""
        store, tag = self._state(store_harness), _key("state")
        names = [f"{tag}:{i}" for i in range(24)]
        await asyncio.gather(
            *(store.put_state(n, n.encode() * (1 + i * 100), 3600) for i, n in enumerate(names))
        )
        values = await asyncio.gather(*(store.get_state(n) for n in names))
        assert values == [n.encode() * (1 + i * 100) for i, n in enumerate(names)]
        deleted = await asyncio.gather(*(store.delete_state(n) for n in names[::2]))
        assert deleted == [True] * len(names[::2])
        left = await asyncio.gather(*(store.get_state(n) for n in names))
        assert [v is not None for v in left] == [i % 2 == 1 for i in range(len(names))]

    async def test_state_survives_reopen(self, store_harness: StoreHarness) -> None:
        """Values live as long as the store's backend (a restart of the file store included), and so
        does their expiry."""
        store, name = self._state(store_harness), _key("state")
        await store.put_state(name, b"kept", 3600)
        await store.put_state(name + "-short", b"short", 60)
        await store.put_state(name + "-deleted", b"d", 3600)
        assert await store.delete_state(name + "-deleted")
        reopened = await store_harness.reopen()
        assert isinstance(reopened, StateStore)
        assert await reopened.get_state(name) == b"kept"
        assert await reopened.get_state(name + "-deleted") is None
        if store_harness.clock is not None:
            store_harness.clock.advance(61)
            assert await reopened.get_state(name + "-short") is None
            assert await reopened.get_state(name) == b"kept"
