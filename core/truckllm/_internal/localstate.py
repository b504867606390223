"""The store algorithms in one process: GCRA rate limits, budget reservations, cooldowns, usage.

:class:`LocalState` is the one implementation of the store logic. The memory store is a
:class:`LocalState`; the file store is one plus an SQLite file; the redis and http stores answer
from one while their backend is unreachable (:meth:`LocalState.admit_fallback`). The Redis Lua
scripts mirror :func:`gcra` line for line.

Everything here is synchronous and CPU-only, so a call is atomic within its event loop. Time is
unix seconds from an injectable ``clock`` (tests pass a fake one).

Rate limits are GCRA (the generic cell rate algorithm, as in ``go-redis/redis_rate``): each key
keeps one number, its theoretical arrival time (TAT). A check of ``cost`` units against ``rate``
per ``period`` with ``burst`` passes when ``TAT + cost·T - burst·T <= now`` (``T = period/rate``)
and moves the TAT to ``max(TAT, now) + cost·T``. Budgets keep, per (key, window), the USD spent
and the USD reserved by requests not yet settled; a check of ``amount`` fails when
``spent + reserved + amount > limit``.

Every number is clamped where it enters (see :mod:`truckllm.kit.store`): ``reserved`` never drops
below 0, a settlement never lowers ``spent`` (a request costs at least 0), usage counters never
go down, non-finite amounts are refused or ignored. Old state is dropped: usage days older than
``usage_retention``, budget windows a week after they end (:data:`WINDOW_KEEP`), ended cooldowns,
full rate buckets.
"""

from __future__ import annotations

import datetime as _dt
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from loguru import logger

from truckllm._internal.store import (
    DEFAULT_USAGE_RETENTION,
    TAGGED,
    USAGE_COUNTERS,
    USAGE_FIELDS,
    Admission,
    BudgetCheck,
    CooldownMark,
    Decision,
    Period,
    Settlement,
    UsageQuery,
    UsageReport,
    UsageRow,
    budget_window,
    is_tag_row,
    usage_key,
    usage_keys,
    utc_day,
)
from truckllm.types import RequestRecord

__all__ = [
    "EPSILON",
    "GROUP_FIELDS",
    "RESERVATION_TTL",
    "WINDOW_KEEP",
    "BudgetState",
    "Clock",
    "GcraResult",
    "LocalState",
    "LocalStore",
    "Outage",
    "RateState",
    "StoreUnavailable",
    "UsageBuckets",
    "check_admission",
    "check_retention",
    "gcra",
    "sane_decision",
    "settled_cost",
    "window_close",
    "window_end",
]

Clock = Callable[[], float]
"""A source of unix time in seconds."""

EPSILON = 1e-6
"""Slack in seconds for GCRA comparisons (float sums of emission intervals)."""

RESERVATION_TTL = 3600.0
"""Seconds after which a reservation never settled is committed as spent (conservative)."""

WINDOW_KEEP = 7 * 86400.0
"""Seconds a budget window's totals outlive the window (late settlements still land in it)."""

GROUP_FIELDS: tuple[str, ...] = USAGE_FIELDS
"""The fields usage is aggregated by, in bucket-key order."""

_SWEEP_EVERY = 60.0
_DAY = 86400.0


class StoreUnavailable(ConnectionError):
    """A store's shared backend cannot answer (raised by queries that have no local fallback)."""


def check_admission(admission: Admission) -> None:
    """Reject checks no store can answer: a rate, period or burst that is not positive (or not a
    finite number), a negative cost, a budget amount or limit that is negative or not finite.

    :raises ValueError: naming the offending check's key.
    """
    for rate in admission.rates:
        if rate.rate <= 0 or not (0 < rate.period < math.inf):
            raise ValueError(f"rate check {rate.key!r}: rate and period must be positive")
        if rate.burst is not None and rate.burst <= 0:
            raise ValueError(f"rate check {rate.key!r}: burst must be positive")
        if rate.cost < 0:
            raise ValueError(f"rate check {rate.key!r}: cost cannot be negative")
    for budget in admission.budgets:
        if not (0 <= budget.amount < math.inf):
            raise ValueError(f"budget check {budget.key!r}: amount cannot be negative or not a number")
        if not (0 <= budget.limit < math.inf):
            raise ValueError(f"budget check {budget.key!r}: limit cannot be negative or not a number")


def settled_cost(reserved: float, adjust: float) -> float:
    """What a settled reservation adds to ``spent``: ``reserved + adjust``, never below 0.

    A correction that is not a finite number is ignored (the reservation, the request's worst
    case, stands).
    """
    if not math.isfinite(adjust):
        adjust = 0.0
    return max(reserved + adjust, 0.0)


def _count(value: float) -> float:
    """A usage number as counted: 0 when negative or not finite."""
    return value if 0 < value < math.inf else 0.0


def sane_decision(admission: Admission, decision: Decision) -> Decision:
    """A remote store's :class:`Decision`, clamped to what the admission allows.

    ``remaining`` values lie in ``[0, burst]`` for a rate check and ``[0, limit]`` for a budget (a
    value that is not finite is 0; a key the admission does not name is dropped); ``retry_after``
    lies in ``[0, the longest period of the rate checks]`` (not finite: that longest period).
    """
    bounds: dict[str, float] = {}
    for rate in admission.rates:
        bounds[rate.key] = float(rate.burst if rate.burst is not None else rate.rate)
    for budget in admission.budgets:
        bounds[budget.key] = budget.limit
    remaining = {
        key: min(_count(value), bounds[key]) for key, value in decision.remaining.items() if key in bounds
    }
    retry = decision.retry_after
    if retry is not None:
        longest = max((r.period for r in admission.rates), default=60.0)
        retry = min(max(retry, 0.0), longest) if math.isfinite(retry) else longest
    if remaining == decision.remaining and retry == decision.retry_after:
        return decision
    return msgspec.structs.replace(decision, remaining=remaining, retry_after=retry)


class GcraResult(msgspec.Struct, frozen=True):
    """The outcome of one GCRA check.

    :ivar allowed: the units fit.
    :ivar tat: the new theoretical arrival time if allowed (else the current one).
    :ivar remaining: whole units left after this check (before it, when denied).
    :ivar retry_after: seconds until the check would pass; ``None`` if allowed or never (cost > burst).
    """

    allowed: bool
    tat: float
    remaining: float
    retry_after: float | None


def gcra(tat: float | None, now: float, interval: float, burst: int, cost: int) -> GcraResult:
    """One GCRA check of ``cost`` units; ``interval`` is seconds per unit (``period / rate``).

    :param tat: the key's stored theoretical arrival time, or ``None`` (a full bucket).
    """
    current = now if tat is None or tat < now else tat
    tau = burst * interval
    new_tat = current + cost * interval
    diff = now - (new_tat - tau)
    if diff < -EPSILON:
        left = math.floor((now - (current - tau) + EPSILON) / interval)
        retry = None if cost > burst else -diff
        return GcraResult(False, current, float(max(left, 0)), retry)
    return GcraResult(True, new_tat, float(max(math.floor((diff + EPSILON) / interval), 0)), None)


def window_end(period: Period, now: float) -> float | None:
    """Unix time at which the budget window containing ``now`` ends (``None`` for ``total``)."""
    day = _dt.datetime.fromtimestamp(now, _dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        end = day + _dt.timedelta(days=1)
    elif period == "week":
        end = day + _dt.timedelta(days=7 - day.weekday())
    elif period == "month":
        end = (day.replace(day=28) + _dt.timedelta(days=4)).replace(day=1)
    else:
        return None
    return end.timestamp()


def window_close(window: str) -> float | None:
    """Unix time at which the budget window ``window`` (an id of :func:`budget_window`) ends;
    ``None`` for ``total`` and for an id that is not one."""
    try:
        if len(window) == 10:  # 2026-11-26
            start = _dt.datetime.strptime(window, "%Y-%m-%d").replace(tzinfo=_dt.UTC)
            return (start + _dt.timedelta(days=1)).timestamp()
        if len(window) == 8 and window[4:6] == "-W":  # 2026-W48
            monday = _dt.date.fromisocalendar(int(window[:4]), int(window[6:]), 1)
            end = _dt.datetime.combine(monday + _dt.timedelta(days=7), _dt.time(), _dt.UTC)
            return end.timestamp()
        if len(window) == 7:  # 2026-11
            start = _dt.datetime.strptime(window, "%Y-%m").replace(tzinfo=_dt.UTC)
            return (start.replace(day=28) + _dt.timedelta(days=4)).replace(day=1).timestamp()
    except ValueError:
        return None
    return None


class RateState(msgspec.Struct, frozen=True):
    """One rate key's persisted state: its TAT and its emission interval (seconds per unit)."""

    key: str
    tat: float
    interval: float


class BudgetState(msgspec.Struct, frozen=True):
    """One budget key's totals in one window (USD)."""

    key: str
    window: str
    spent: float
    reserved: float = 0.0


def check_retention(seconds: float) -> None:
    """Refuse a ``usage_retention`` that is not a positive, finite duration (for an ``Options``'s
    ``__post_init__``).

    :raises ValueError: naming the option.
    """
    if not 0 < seconds < math.inf:
        raise ValueError("usage_retention must be a positive duration, e.g. 400d")


def _day_start(day: str) -> float:
    return _dt.datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=_dt.UTC).timestamp()


class UsageBuckets:
    """Usage totals per (key, alias, provider, provider_key, model, day), and queries over them.

    The local stores keep every bucket here; the remote ones use one to batch increments and to
    answer queries over the totals they read back.
    """

    def __init__(self) -> None:
        self._rows: dict[tuple[str, ...], UsageRow] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def _bucket(self, group: dict[str, str]) -> UsageRow:
        return self._row(tuple(group.get(name, "-") for name in GROUP_FIELDS))

    def _row(self, key: tuple[str, ...]) -> UsageRow:
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = UsageRow(group=dict(zip(GROUP_FIELDS, key, strict=True)))
        return row

    def add_record(self, record: RequestRecord) -> None:
        """Count one finished request (in its own row, and in one row per tag)."""
        error = not 200 <= record.status < 300
        usage = record.usage
        cost = record.cost_usd
        cost = cost if 0 < cost < math.inf else 0.0  # as _count(), without the call (once per request)
        rows = self._rows
        for key in usage_keys(record) if record.tags else (usage_key(record),):
            row = rows.get(key)
            if row is None:
                row = self._row(key)
            row.requests += 1
            if error:
                row.errors += 1
            if usage is not None:  # a negative count (a hostile or broken upstream) counts as 0
                row.prompt_tokens += max(usage.prompt_tokens, 0)
                row.completion_tokens += max(usage.completion_tokens, 0)
                row.cached_tokens += max(usage.cached_tokens, 0)
                row.reasoning_tokens += max(usage.reasoning_tokens, 0)
            row.cost_usd += cost

    def add_row(self, row: UsageRow) -> None:
        """Add totals whose ``group`` names every field of :data:`GROUP_FIELDS` (missing ones are ``-``);
        a negative or non-finite total counts as 0."""
        _add(self._bucket(row.group), row)

    @staticmethod
    def clamped(row: UsageRow) -> UsageRow:
        """A copy of ``row`` with every total below 0 (or not finite) counted as 0."""
        return _copy(row)

    def prune(self, first_day: str) -> int:
        """Drop every bucket of a UTC day before ``first_day`` (``YYYY-MM-DD``); return how many."""
        old = [key for key, row in self._rows.items() if row.group["day"] < first_day]
        for key in old:
            del self._rows[key]
        return len(old)

    def rows(self) -> list[UsageRow]:
        """A copy of every bucket (``group`` holds all six fields)."""
        return [_copy(row) for row in self._rows.values()]

    def drain(self) -> list[UsageRow]:
        """Every bucket, emptying this object (for batching)."""
        rows = list(self._rows.values())
        self._rows = {}
        return rows

    def query(self, query: UsageQuery) -> UsageReport:
        """Totals grouped by ``query.group_by`` over the buckets that match it.

        A day's bucket is included when the day overlaps ``[since, until)``: usage has day
        resolution. ``key``, ``alias`` and ``provider`` filter on equality. Grouped by ``tag``, the
        tags' rows are read (a request counts once per tag; untagged requests under ``-``); the
        ``total`` counts each request once.
        """
        groups: dict[tuple[str, ...], UsageRow] = {}
        total = UsageRow()
        by_tag = "tag" in query.group_by
        for row in self._rows.values():
            group = row.group
            tag_row = is_tag_row(group)
            if (tag_row and not by_tag) or (by_tag and group["tag"] == TAGGED):
                if not tag_row and _matches(group, query):
                    _add(total, row)
                continue
            if not _matches(group, query):
                continue
            values = tuple(group[name] for name in query.group_by)
            out = groups.get(values)
            if out is None:
                out = groups[values] = UsageRow(group=dict(zip(query.group_by, values, strict=True)))
            _add(out, row)
            if not tag_row:
                _add(total, row)
        return UsageReport(rows=[groups[k] for k in sorted(groups)], total=total)


def _matches(group: dict[str, str], query: UsageQuery) -> bool:
    """Whether a row's ``group`` passes the query's filters and time range."""
    if query.key is not None and group["key"] != query.key:
        return False
    if query.alias is not None and group["alias"] != query.alias:
        return False
    if query.provider is not None and group["provider"] != query.provider:
        return False
    if query.since is not None or query.until is not None:
        start = _day_start(group["day"])
        if query.since is not None and start + _DAY <= query.since:
            return False
        if query.until is not None and start >= query.until:
            return False
    return True


def _add(into: UsageRow, row: UsageRow) -> None:
    for name in USAGE_COUNTERS:
        setattr(into, name, getattr(into, name) + max(getattr(row, name), 0))
    into.cost_usd += _count(row.cost_usd)


def _copy(row: UsageRow) -> UsageRow:
    out = UsageRow(group=dict(row.group))
    _add(out, row)
    return out


@dataclass
class _Reservation:
    created_at: float
    items: dict[str, tuple[str, float]] = field(default_factory=dict)  # budget key -> (window, USD)


class LocalState:
    """Rate limits, budgets, cooldowns and usage in this process, with an injectable clock.

    :param clock: unix time in seconds.
    :param reservation_ttl: seconds after which an unsettled reservation counts as spent.
    :param usage_retention: seconds a UTC day's usage is kept (older days are dropped).
    """

    def __init__(
        self,
        clock: Clock = time.time,
        *,
        reservation_ttl: float = RESERVATION_TTL,
        usage_retention: float = DEFAULT_USAGE_RETENTION,
    ) -> None:
        self.clock = clock
        self.reservation_ttl = reservation_ttl
        self.usage_retention = usage_retention
        self.usage_buckets = UsageBuckets()
        self._tat: dict[str, float] = {}
        self._interval: dict[str, float] = {}
        self._spent: dict[tuple[str, str], float] = {}
        self._reserved: dict[tuple[str, str], float] = {}
        self._reservations: dict[str, _Reservation] = {}
        self._cooldowns: dict[tuple[str, str], CooldownMark] = {}
        self._swept = 0.0

    # --- admission ------------------------------------------------------------------------------

    def admit(self, admission: Admission) -> Decision:
        """Check every rate limit and budget; consume/reserve all of them, or none."""
        check_admission(admission)
        now = self.clock()
        self._sweep(now)
        remaining: dict[str, float] = {}
        tats: dict[str, float] = {}
        for rate in admission.rates:
            interval = rate.period / rate.rate
            burst = rate.burst if rate.burst is not None else rate.rate
            result = gcra(tats.get(rate.key, self._tat.get(rate.key)), now, interval, burst, rate.cost)
            if not result.allowed:
                return Decision(
                    allowed=False,
                    denied_by=rate.key,
                    kind="rate",
                    retry_after=result.retry_after,
                    remaining={rate.key: result.remaining},
                )
            tats[rate.key] = result.tat
            remaining[rate.key] = result.remaining
        pending: dict[tuple[str, str], float] = {}
        for budget in admission.budgets:
            slot = (budget.key, budget_window(budget.period, now))
            used = self._spent.get(slot, 0.0) + self._reserved.get(slot, 0.0) + pending.get(slot, 0.0)
            if used + budget.amount > budget.limit + 1e-9:
                return Decision(
                    allowed=False,
                    denied_by=budget.key,
                    kind="budget",
                    remaining={budget.key: max(budget.limit - used, 0.0)},
                )
            pending[slot] = pending.get(slot, 0.0) + budget.amount
            remaining[budget.key] = budget.limit - used - budget.amount
        for rate in admission.rates:
            self._interval[rate.key] = rate.period / rate.rate
        self._tat.update(tats)
        if admission.budgets:
            self._reserve(admission.request_id, admission.budgets, now)
        return Decision(allowed=True, remaining=remaining)

    def _reserve(self, request_id: str, budgets: Iterable[BudgetCheck], now: float) -> None:
        reservation = self._reservations.get(request_id)
        if reservation is None:
            reservation = self._reservations[request_id] = _Reservation(created_at=now)
        for budget in budgets:
            window = budget_window(budget.period, now)
            slot = (budget.key, window)
            self._reserved[slot] = self._reserved.get(slot, 0.0) + budget.amount
            old_window, old_amount = reservation.items.get(budget.key, (window, 0.0))
            if old_window != window:  # the same request crossed a window boundary: settle the old part
                self._commit(budget.key, old_window, old_amount, 0.0)
                old_amount = 0.0
            reservation.items[budget.key] = (window, old_amount + budget.amount)

    def admit_fallback(self, admission: Admission) -> Decision:
        """Answer while a shared backend is unreachable: ``degraded=True``.

        Rate limits are checked against this process's own state (so each process keeps under the
        limit by itself: open across processes); budgets fail closed (any budget check is denied,
        nothing is consumed).
        """
        check_admission(admission)
        if admission.budgets:
            budget = admission.budgets[0]
            return Decision(allowed=False, denied_by=budget.key, kind="budget", degraded=True)
        decision = self.admit(admission)
        return msgspec.structs.replace(decision, degraded=True)

    # --- settlement -----------------------------------------------------------------------------

    def settle(self, settlement: Settlement) -> None:
        """Correct rate units and move the request's reservations to spent, with the corrections.

        A request's cost (its reservation plus the correction) counts as at least 0. A correction
        for a request this state holds no reservation of (admitted elsewhere, before a restart, or
        settled twice) lands in the current window when it is positive, and is dropped when it is
        not: a reservation that is gone can never be refunded.
        """
        now = self.clock()
        for key, units in settlement.rate_adjust.items():
            self.adjust_rate(key, units, now)
        reservation = self._reservations.pop(settlement.request_id, None)
        items = reservation.items if reservation is not None else {}
        for key, (window, amount) in items.items():
            correction = settlement.budget_adjust.get(key)
            self._commit(key, window, amount, correction[1] if correction is not None else 0.0)
        for key, (period, adjust) in settlement.budget_adjust.items():
            if key not in items and 0 < adjust < math.inf:
                slot = (key, budget_window(period, now))
                self._spent[slot] = self._spent.get(slot, 0.0) + adjust

    def adjust_rate(self, key: str, units: int, now: float | None = None) -> None:
        """Add (positive) or give back (negative) ``units`` of a rate key seen before."""
        interval = self._interval.get(key)
        if interval is None or units == 0:
            return
        now = self.clock() if now is None else now
        tat = max(self._tat.get(key, now), now) + units * interval
        if tat > now:
            self._tat[key] = tat
        else:
            self._tat.pop(key, None)

    def _commit(self, key: str, window: str, reserved: float, adjust: float) -> None:
        slot = (key, window)
        left = self._reserved.get(slot, 0.0) - reserved
        if left > 1e-9:
            self._reserved[slot] = left
        else:  # never below 0
            self._reserved.pop(slot, None)
        self._spent[slot] = self._spent.get(slot, 0.0) + settled_cost(reserved, adjust)

    def commit_reservations(self) -> int:
        """Count every unsettled reservation as spent (before persisting on close); return how many."""
        count = len(self._reservations)
        for reservation in self._reservations.values():
            for key, (window, amount) in reservation.items.items():
                self._commit(key, window, amount, 0.0)
        self._reservations.clear()
        return count

    def _sweep(self, now: float) -> None:
        if now - self._swept < _SWEEP_EVERY:
            return
        self._swept = now
        for key in [k for k, tat in self._tat.items() if tat <= now]:
            del self._tat[key]
        stale = [rid for rid, r in self._reservations.items() if r.created_at < now - self.reservation_ttl]
        for rid in stale:
            for key, (window, amount) in self._reservations.pop(rid).items.items():
                self._commit(key, window, amount, 0.0)
        for slot in [s for s, mark in self._cooldowns.items() if mark.until <= now]:
            del self._cooldowns[slot]
        self.prune(now)

    def prune(self, now: float) -> None:
        """Drop usage days older than ``usage_retention`` and budget windows that ended more than
        :data:`WINDOW_KEEP` ago (called by the periodic sweep; stores call it before persisting)."""
        self.usage_buckets.prune(self.first_usage_day(now))
        windows = {window for _, window in self._spent} | {window for _, window in self._reserved}
        ended = {w for w in windows if (end := window_close(w)) is not None and end + WINDOW_KEEP < now}
        if ended:
            for totals in (self._spent, self._reserved):
                for slot in [slot for slot in totals if slot[1] in ended]:
                    del totals[slot]

    def first_usage_day(self, now: float) -> str:
        """The oldest UTC day whose usage is kept at unix time ``now``."""
        return utc_day(now - self.usage_retention)

    # --- cooldowns ------------------------------------------------------------------------------

    def mark_cooldown(self, mark: CooldownMark) -> bool:
        """Record a cooldown unless one at least as long is in force (or ``until`` is not a finite
        number); return whether it changed."""
        if not math.isfinite(mark.until):
            return False
        slot = (mark.provider, mark.key)
        current = self._cooldowns.get(slot)
        if current is not None and current.until >= mark.until and current.until > self.clock():
            return False
        self._cooldowns[slot] = mark
        return True

    def clear_cooldown(self, provider: str, key: str) -> bool:
        """Remove a key's cooldown mark (an operator's ``enable``); return whether there was one."""
        return self._cooldowns.pop((provider, key), None) is not None

    def cooldowns(self) -> list[CooldownMark]:
        """Every cooldown still in force (expired ones are dropped), by provider and key."""
        now = self.clock()
        for slot in [s for s, mark in self._cooldowns.items() if mark.until <= now]:
            del self._cooldowns[slot]
        return [self._cooldowns[slot] for slot in sorted(self._cooldowns)]

    # --- usage ----------------------------------------------------------------------------------

    def record(self, record: RequestRecord) -> None:
        """Count one finished request in the usage totals (not when its day is past the retention)."""
        now = self.clock()
        if now - self._swept >= _SWEEP_EVERY:
            self._sweep(now)
        # utc_day(started_at) >= first_usage_day(now), compared as day numbers (the same order)
        if record.started_at // _DAY >= (now - self.usage_retention) // _DAY:
            self.usage_buckets.add_record(record)

    def usage(self, query: UsageQuery) -> UsageReport:
        """Aggregated usage (see :meth:`UsageBuckets.query`) over the days still retained."""
        self.usage_buckets.prune(self.first_usage_day(self.clock()))
        return self.usage_buckets.query(query)

    # --- persistence ----------------------------------------------------------------------------

    def rate_states(self) -> list[RateState]:
        """Every rate key whose bucket is not full (the others need no state)."""
        now = self.clock()
        return [
            RateState(key=key, tat=tat, interval=self._interval[key])
            for key, tat in self._tat.items()
            if tat > now and key in self._interval
        ]

    def budget_states(self) -> list[BudgetState]:
        """Spent and reserved USD per (key, window)."""
        slots = set(self._spent) | set(self._reserved)
        return [
            BudgetState(
                key=k, window=w, spent=self._spent.get((k, w), 0.0), reserved=self._reserved.get((k, w), 0.0)
            )
            for k, w in sorted(slots)
        ]

    def restore(
        self,
        *,
        rates: Iterable[RateState] = (),
        budgets: Iterable[BudgetState] = (),
        cooldowns: Iterable[CooldownMark] = (),
        usage: Iterable[UsageRow] = (),
    ) -> None:
        """Load persisted state (restored budget ``reserved`` amounts are counted as spent)."""
        for rate in rates:
            self._tat[rate.key] = rate.tat
            self._interval[rate.key] = rate.interval
        for budget in budgets:
            slot = (budget.key, budget.window)
            self._spent[slot] = self._spent.get(slot, 0.0) + _count(budget.spent) + _count(budget.reserved)
        for mark in cooldowns:
            self.mark_cooldown(mark)
        for row in usage:
            self.usage_buckets.add_row(row)


class Outage:
    """Whether a store's shared backend is reachable; warns once per outage, notes the recovery.

    A hard failure (refused connection, reset, an error answer) starts an outage at once. A slow
    answer (a timeout) only degrades its own request, until ``strikes`` of them in a row start an
    outage: one slow call under load must not switch every process to its fallback.

    :param plugin: the plugin name logs carry (``plugin=store-redis``).
    :param what: the backend, e.g. ``"redis 127.0.0.1:6379"``.
    :param strikes: consecutive timeouts that start an outage.
    """

    def __init__(self, plugin: str, what: str, clock: Clock = time.time, *, strikes: int = 3) -> None:
        self.plugin = plugin
        self.what = what
        self.clock = clock
        self.strikes = strikes
        self.since: float | None = None
        self.error = ""
        self.count = 0
        self.slow = 0

    @property
    def down(self) -> bool:
        """The backend failed and has not answered since."""
        return self.since is not None

    def failed(self, exc: BaseException, *, slow: bool = False) -> None:
        """Record a failure (``slow``: a timeout); the first of an outage logs a warning."""
        self.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if self.since is not None:
            return
        if slow:
            self.slow += 1
            if self.slow < self.strikes:
                return
        self.since = self.clock()
        self.count += 1
        logger.bind(plugin=self.plugin).warning(
            "{} unreachable ({}): rate limits are checked per process, budgets are denied, "
            "writes are kept until it is back",
            self.what,
            self.error,
        )

    def recovered(self) -> None:
        """Record a success; ends the outage (logged once)."""
        self.slow = 0
        if self.since is not None:
            logger.bind(plugin=self.plugin).info(
                "{} reachable again after {:.1f}s", self.what, self.clock() - self.since
            )
            self.since = None
            self.error = ""


class LocalStore:
    """The :class:`~truckllm.kit.store.Store` interface over one in-process :class:`LocalState`.

    The ``memory`` store plugin is this class; the ``file`` store extends it with persistence;
    the reference store server and the tests use it to have a store without importing a plugin.
    It has no ``store_usage`` hookimpl of its own (a plugin's subclass marks one): call
    :meth:`record` to count a finished request.

    :param clock: unix time (tests inject a fake clock).
    :param state: share an existing state (tests use it to reopen the "same" store).
    :param usage_retention: seconds a UTC day's usage is kept (for a new state).
    """

    name = "local"

    def __init__(
        self,
        clock: Clock = time.time,
        state: LocalState | None = None,
        *,
        usage_retention: float = DEFAULT_USAGE_RETENTION,
    ) -> None:
        self.state = state if state is not None else LocalState(clock, usage_retention=usage_retention)

    async def start(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to flush (the state stays readable)."""

    async def flush(self) -> None:
        """Nothing is ever pending."""

    async def admit(self, admission: Admission) -> Decision:
        """Check and consume every rate limit and budget of one request, atomically."""
        return self.state.admit(admission)

    async def settle(self, settlement: Settlement) -> None:
        """Apply a request's corrections at once."""
        self.state.settle(settlement)

    async def mark_cooldown(self, mark: CooldownMark) -> None:
        """Record a cooldown (extends, never shortens)."""
        self.state.mark_cooldown(mark)

    async def clear_cooldown(self, provider: str, key: str) -> None:
        """Remove a key's cooldown mark (an operator's ``enable``)."""
        self.state.clear_cooldown(provider, key)

    async def cooldowns(self) -> Sequence[CooldownMark]:
        """Every cooldown still in force."""
        return self.state.cooldowns()

    async def usage(self, query: UsageQuery) -> UsageReport:
        """Aggregated usage."""
        return self.state.usage(query)

    async def ready(self) -> dict[str, Any]:
        """Always ready."""
        return {"ok": True, "store": self.name}

    def record(self, record: RequestRecord) -> None:
        """Count a finished request."""
        self.state.record(record)
