"""LocalState: GCRA, budget reservations, settlement, cooldowns, usage; properties with hypothesis."""

from __future__ import annotations

import datetime as dt
import math

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from loguru import logger

from truckllm._internal.localstate import (
    RESERVATION_TTL,
    BudgetState,
    LocalState,
    Outage,
    RateState,
    check_admission,
    gcra,
    sane_decision,
    settled_cost,
    window_close,
    window_end,
)
from truckllm._internal.store import (
    Admission,
    BudgetCheck,
    CooldownMark,
    Decision,
    RateCheck,
    Settlement,
    UsageQuery,
    UsageRow,
    budget_window,
)
from truckllm_testing.store_conformance import DAY0, FakeClock, make_records, sum_records


def _utc(*args: int) -> float:
    return dt.datetime(*args, tzinfo=dt.UTC).timestamp()


def test_gcra_steps() -> None:
    now = 1000.0
    first = gcra(None, now, interval=0.2, burst=5, cost=1)
    assert first.allowed and first.tat == pytest.approx(1000.2) and first.remaining == 4
    full = gcra(1001.0, now, interval=0.2, burst=5, cost=1)
    assert not full.allowed and full.retry_after == pytest.approx(0.2) and full.remaining == 0
    assert gcra(1001.0, now, interval=0.2, burst=5, cost=6).retry_after is None  # never fits
    assert gcra(999.0, now, interval=0.2, burst=5, cost=5).remaining == 0  # an old TAT is a full bucket
    assert gcra(None, now, interval=0.2, burst=5, cost=0).remaining == 5


def test_check_admission_rejects_nonsense() -> None:
    for rate in (
        RateCheck(key="a", rate=0),
        RateCheck(key="a", rate=1, period=0),
        RateCheck(key="a", rate=1, burst=0),
    ):
        with pytest.raises(ValueError, match="'a'"):
            check_admission(Admission(request_id="r", rates=(rate,)))
    with pytest.raises(ValueError, match="negative"):
        check_admission(Admission(request_id="r", rates=(RateCheck(key="a", rate=1, cost=-1),)))
    with pytest.raises(ValueError, match="negative"):
        check_admission(Admission(request_id="r", budgets=(BudgetCheck(key="b", limit=1, amount=-1),)))


def test_window_end_matches_budget_window() -> None:
    now = _utc(2026, 2, 14, 15, 30)  # a Saturday
    assert window_end("day", now) == _utc(2026, 2, 15)
    assert window_end("week", now) == _utc(2026, 2, 16)
    assert window_end("month", now) == _utc(2026, 3, 1)
    assert window_end("month", _utc(2026, 12, 31, 23)) == _utc(2027, 1, 1)
    assert window_end("total", now) is None
    for period in ("day", "week", "month"):
        end = window_end(period, now)
        assert end is not None
        assert budget_window(period, end - 0.001) == budget_window(period, now) != budget_window(period, end)


def test_duplicate_keys_in_one_admission_count_twice() -> None:
    state = LocalState(FakeClock())
    rpm = RateCheck(key="k", rate=3, period=60.0)
    usd = BudgetCheck(key="b", limit=1.0, amount=0.6)
    assert not state.admit(Admission(request_id="r", budgets=(usd, usd))).allowed
    decision = state.admit(Admission(request_id="r", rates=(rpm, rpm)))
    assert decision.allowed and decision.remaining == {"k": 1}


def test_settlement_lands_in_the_reservation_window() -> None:
    clock = FakeClock(_utc(2026, 1, 31, 23, 59))
    state = LocalState(clock)
    usd = BudgetCheck(key="b", limit=10.0, period="month", amount=4.0)
    assert state.admit(Admission(request_id="r", budgets=(usd,))).allowed
    clock.advance(120)  # February now
    state.settle(Settlement(request_id="r", budget_adjust={"b": ("month", 1.0)}))
    assert state.budget_states() == [BudgetState(key="b", window="2026-01", spent=5.0)]
    assert state.admit(
        Admission(request_id="s", budgets=(BudgetCheck(key="b", limit=10.0, amount=10.0),))
    ).allowed


def test_unsettled_reservations_expire_into_spent() -> None:
    clock = FakeClock()
    state = LocalState(clock)
    usd = BudgetCheck(key="b", limit=10.0, period="total", amount=3.0)
    assert state.admit(Admission(request_id="lost", budgets=(usd,))).allowed
    assert state.budget_states() == [BudgetState(key="b", window="total", spent=0.0, reserved=3.0)]
    clock.advance(RESERVATION_TTL + 61)
    state.admit(Admission(request_id="other", rates=(RateCheck(key="k", rate=1),)))  # sweeps
    assert state.budget_states() == [BudgetState(key="b", window="total", spent=3.0)]
    state.settle(
        Settlement(request_id="lost", budget_adjust={"b": ("total", -3.0)})
    )  # too late: the reservation is gone, so a refund is dropped (spent never goes down)
    assert state.budget_states() == [BudgetState(key="b", window="total", spent=3.0)]
    state.settle(
        Settlement(request_id="lost", budget_adjust={"b": ("total", 0.5)})
    )  # an overrun still counts
    assert state.budget_states() == [BudgetState(key="b", window="total", spent=3.5)]


def test_rate_adjust_needs_a_known_key_and_never_banks_credit() -> None:
    clock = FakeClock()
    state = LocalState(clock)
    state.adjust_rate("unknown", 5)
    assert state.rate_states() == []
    tpm = RateCheck(key="tpm", rate=60, period=60.0, cost=10)
    assert state.admit(Admission(request_id="r", rates=(tpm,))).remaining == {"tpm": 50}
    state.settle(Settlement(request_id="r", rate_adjust={"tpm": -100}))  # more than was taken
    assert state.rate_states() == []
    assert state.admit(
        Admission(request_id="s", rates=(RateCheck(key="tpm", rate=60, period=60.0, cost=60),))
    ).allowed


def test_cooldowns_extend_and_expired_ones_are_replaced() -> None:
    clock = FakeClock()
    state = LocalState(clock)
    assert state.mark_cooldown(CooldownMark(provider="p", key="k", until=clock() + 10, reason="a"))
    assert not state.mark_cooldown(CooldownMark(provider="p", key="k", until=clock() + 5, reason="b"))
    assert state.mark_cooldown(CooldownMark(provider="p", key="k", until=clock() + 20, reason="c"))
    assert [m.reason for m in state.cooldowns()] == ["c"]
    clock.advance(25)
    assert state.cooldowns() == []
    assert state.mark_cooldown(CooldownMark(provider="p", key="k", until=clock() + 1, reason="d"))


def test_restore_round_trip() -> None:
    clock = FakeClock()
    state = LocalState(clock)
    state.admit(Admission(request_id="r", rates=(RateCheck(key="k", rate=2, period=60.0),)))
    state.settle(Settlement(request_id="x", budget_adjust={"b": ("day", 2.5)}))
    for record in make_records(n=20):
        state.record(record)
    copy = LocalState(clock)
    copy.restore(rates=state.rate_states(), budgets=state.budget_states(), usage=state.usage_buckets.rows())
    assert copy.rate_states() == state.rate_states() == [RateState(key="k", tat=clock() + 30, interval=30.0)]
    assert copy.budget_states() == state.budget_states()
    assert copy.usage(UsageQuery(group_by=("key", "day"))) == state.usage(UsageQuery(group_by=("key", "day")))


def test_usage_has_day_resolution() -> None:
    state = LocalState(FakeClock())
    records = make_records(n=30)
    for record in records:
        state.record(record)
    report = state.usage(UsageQuery(since=DAY0 + 86400 + 3600, until=DAY0 + 86400 + 7200))
    day2 = [r for r in records if DAY0 + 86400 <= r.started_at < DAY0 + 2 * 86400]
    assert report.total.requests == len(day2)  # any overlap takes the whole day
    assert state.usage(UsageQuery(group_by=("model",))).rows[0].group == {"model": "-"}  # sorted, "-" first
    assert state.usage(UsageQuery(key="nobody")).total == UsageRow()
    assert state.usage(UsageQuery()).total.requests == sum_records(records)[()].requests


def test_outage_warns_once_and_notes_recovery() -> None:
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(m.record["message"]), level="INFO", format="{message}")
    try:
        clock = FakeClock()
        outage = Outage("store-x", "x 1.2.3.4", clock)
        for _ in range(3):
            outage.failed(ConnectionError("refused"))
        assert outage.down and outage.error == "ConnectionError: refused" and outage.count == 1
        clock.advance(2.5)
        outage.recovered()
        outage.recovered()
        outage.failed(TimeoutError(), slow=True)
        outage.failed(TimeoutError(), slow=True)
        outage.recovered()  # a success between slow answers resets the strikes
        outage.failed(TimeoutError(), slow=True)
        outage.failed(TimeoutError(), slow=True)
        assert not outage.down
        outage.failed(TimeoutError(), slow=True)
        assert outage.down and outage.error == "TimeoutError" and outage.count == 2
    finally:
        logger.remove(sink)
    assert [m.split(" (")[0] for m in messages] == [
        "x 1.2.3.4 unreachable",
        "x 1.2.3.4 reachable again after 2.5s",
        "x 1.2.3.4 unreachable",
    ]


# --- properties ---------------------------------------------------------------------------------

steps = st.lists(st.tuples(st.floats(0, 5, allow_nan=False), st.integers(0, 4)), min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(
    steps=steps, rate=st.integers(1, 20), burst=st.integers(1, 10), period=st.sampled_from([1.0, 10.0, 60.0])
)
def test_gcra_never_exceeds_burst_plus_rate(
    steps: list[tuple[float, int]], rate: int, burst: int, period: float
) -> None:
    clock = FakeClock(1_700_000_000.0)
    state = LocalState(clock)
    start, allowed = clock(), 0
    interval = period / rate
    for wait, cost in steps:
        clock.advance(wait)
        decision = state.admit(
            Admission(
                request_id="r", rates=(RateCheck(key="k", rate=rate, period=period, burst=burst, cost=cost),)
            )
        )
        if decision.allowed:
            allowed += cost
        else:
            assert decision.retry_after is None or decision.retry_after > 0
        assert allowed <= burst + (clock() - start) / interval + 1e-6


@settings(max_examples=200, deadline=None)
@given(
    amounts=st.lists(st.floats(0, 3, allow_nan=False), min_size=1, max_size=40),
    limit=st.floats(0.5, 20, allow_nan=False),
    rate_cost=st.integers(0, 3),
)
def test_denials_change_nothing_and_budgets_never_overspend(
    amounts: list[float], limit: float, rate_cost: int
) -> None:
    state = LocalState(FakeClock())
    for i, amount in enumerate(amounts):
        before = (state.rate_states(), state.budget_states())
        admission = Admission(
            request_id=f"r{i}",
            rates=(RateCheck(key="k", rate=10, period=3600.0, cost=rate_cost),),
            budgets=(BudgetCheck(key="b", limit=limit, period="total", amount=amount),),
        )
        if not state.admit(admission).allowed:
            assert (state.rate_states(), state.budget_states()) == before
        budgets = state.budget_states()
        assert sum(b.reserved + b.spent for b in budgets) <= limit + 1e-6


# --- issue 13: numbers are clamped, old state is dropped ---------------------------------------------

ANY_FLOAT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([-1e300, -1.0, 0.0, 1e300, math.nan, math.inf, -math.inf]),
)


@settings(max_examples=300, deadline=None)
@given(
    periods=st.lists(st.floats(0.001, 1e6), min_size=0, max_size=3),
    limits=st.lists(st.floats(0.0, 1e6), min_size=0, max_size=3),
    values=st.dictionaries(st.sampled_from(["r0", "r1", "r2", "b0", "b1", "b2", "stray"]), ANY_FLOAT),
    retry=st.one_of(st.none(), ANY_FLOAT),
    allowed=st.booleans(),
)
def test_sane_decision_clamps_every_number_of_a_remote_answer(
    periods: list[float], limits: list[float], values: dict[str, float], retry: float | None, allowed: bool
) -> None:
    rates = tuple(
        RateCheck(key=f"r{i}", rate=10, period=p, burst=20 if i else None) for i, p in enumerate(periods)
    )
    budgets = tuple(BudgetCheck(key=f"b{i}", limit=lim) for i, lim in enumerate(limits))
    admission = Admission(request_id="r", rates=rates, budgets=budgets)
    decision = sane_decision(admission, Decision(allowed=allowed, retry_after=retry, remaining=values))
    bounds = {r.key: float(r.burst or r.rate) for r in rates} | {b.key: b.limit for b in budgets}
    assert set(decision.remaining) <= set(bounds)
    for key, value in decision.remaining.items():
        assert 0.0 <= value <= bounds[key], (key, value)
    if retry is None:
        assert decision.retry_after is None
    else:
        longest = max(periods, default=60.0)
        assert decision.retry_after is not None and 0.0 <= decision.retry_after <= longest
        if 0 <= retry <= longest:
            assert decision.retry_after == retry  # a sane answer is kept as it is
    assert decision.allowed is allowed


@settings(max_examples=300, deadline=None)
@given(reserved=st.floats(0.0, 1e6), adjust=ANY_FLOAT)
def test_a_settled_cost_is_never_below_zero_and_ignores_non_numbers(reserved: float, adjust: float) -> None:
    cost = settled_cost(reserved, adjust)
    assert cost >= 0.0 and math.isfinite(cost)
    if math.isfinite(adjust):
        assert cost == max(reserved + adjust, 0.0)
    else:
        assert cost == reserved  # the reservation, the request's worst case, stands


@settings(max_examples=300, deadline=None)
@given(now=st.floats(0.0, 4e9), period=st.sampled_from(["day", "week", "month", "total"]))
def test_window_close_of_a_window_id_is_its_end(now: float, period: str) -> None:
    assert window_close(budget_window(period, now)) == window_end(period, now)  # type: ignore[arg-type]


def test_window_close_of_something_else_is_none() -> None:
    for window in ("total", "", "2026-13", "2026-W60", "2026-02-30", "garbage!", "2026-W4x"):
        assert window_close(window) is None, window


def test_usage_counters_never_go_down() -> None:
    """Every counter of a record and of a row: negative and non-finite values count as 0."""
    clock = FakeClock()
    state = LocalState(clock)
    base = make_records(n=1, seed=1)[0]
    for value in (-1_000_000, -1, 0, 5):
        usage = msgspec.structs.replace(
            base.usage or make_records(n=5)[0].usage,
            prompt_tokens=value,
            completion_tokens=value,
            cached_tokens=value,
            reasoning_tokens=value,
        )
        state.record(msgspec.structs.replace(base, started_at=clock(), usage=usage, cost_usd=float(value)))
    for cost in (math.nan, math.inf, -math.inf, -5.0):
        state.record(msgspec.structs.replace(base, started_at=clock(), usage=None, cost_usd=cost))
    total = state.usage(UsageQuery()).total
    assert (total.requests, total.prompt_tokens, total.completion_tokens) == (8, 5, 5)
    assert (total.cached_tokens, total.reasoning_tokens, total.cost_usd) == (5, 5, 5.0)
    hostile = UsageRow(group={"day": "2026-03-01"}, requests=-9, prompt_tokens=-9, cost_usd=math.nan)
    state.restore(usage=[hostile])
    total = state.usage(UsageQuery()).total
    assert (total.requests, total.prompt_tokens, total.cost_usd) == (8, 5, 5.0)


def test_restored_budgets_below_zero_count_as_zero() -> None:
    state = LocalState(FakeClock())
    state.restore(budgets=[BudgetState(key="b", window="total", spent=-100.0, reserved=-5.0)])
    assert not state.admit(
        Admission(request_id="r", budgets=(BudgetCheck(key="b", limit=1.0, period="total", amount=1.5),))
    ).allowed


def test_clear_cooldown_and_marks_that_are_not_numbers() -> None:
    clock = FakeClock()
    state = LocalState(clock)
    assert state.mark_cooldown(CooldownMark(provider="p", key="k", until=clock() + 60))
    for until in (math.nan, math.inf):
        assert not state.mark_cooldown(CooldownMark(provider="p", key="x", until=until))
    assert state.clear_cooldown("p", "k") and not state.clear_cooldown("p", "k")
    assert state.cooldowns() == []
    assert state.mark_cooldown(CooldownMark(provider="p", key="k", until=clock() + 5))  # shorter: taken


def test_old_usage_days_and_ended_budget_windows_are_dropped() -> None:
    clock = FakeClock()  # 2026-03-01 12:00 UTC
    state = LocalState(clock, usage_retention=3 * 86400)
    for record in make_records(n=20, days=1):
        state.record(record)
    for period in ("day", "week", "month", "total"):
        check = BudgetCheck(key=period, limit=10.0, period=period, amount=1.0)  # type: ignore[arg-type]
        assert state.admit(Admission(request_id=period, budgets=(check,))).allowed
        state.settle(Settlement(request_id=period))
    assert len(state.budget_states()) == 4
    clock.advance(3 * 86400)  # 2026-03-04 12:00: 2026-03-01 is still within 3 days
    state.record(msgspec.structs.replace(make_records(n=1)[0], started_at=clock()))
    assert state.usage(UsageQuery()).total.requests == 21
    clock.advance(86400)
    state.admit(Admission(request_id="sweep"))
    assert state.usage(UsageQuery()).total.requests == 1
    assert [b.key for b in state.budget_states()] == [
        "day",
        "month",
        "total",
        "week",
    ]  # kept 7 d past their end
    clock.advance(4 * 86400)  # 2026-03-09 12:00: the day (03-01) and ISO week (W09, to 03-01) ended 7.5 d ago
    state.admit(Admission(request_id="sweep2"))
    assert [b.key for b in state.budget_states()] == ["month", "total"]
    clock.advance(40 * 86400)  # mid-April: March ended more than a week ago
    state.admit(Admission(request_id="sweep3"))
    assert [b.key for b in state.budget_states()] == ["total"]  # a total budget is kept for good
    old = make_records(n=1)[0]  # a record of a day already past the retention is not counted
    state.record(old)
    assert state.usage(UsageQuery(since=0)).total.requests == 0
