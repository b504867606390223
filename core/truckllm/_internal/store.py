"""The runtime-store interface: what the gateway keeps beyond one process.

A store plugin registers a class with ``register_stores(register)``; the kernel builds the one
named by ``store.type`` in the app's lifespan (``cls(options)`` with ``cls.Options`` decoded
strictly from the rest of the ``store:`` section), awaits :meth:`Store.start`, and registers the
instance with the plugin manager so that its ``store_usage`` hookimpl receives every record.

The hot path makes at most one call per request, :meth:`Store.admit` (one round trip for a
remote store: every rate limit and budget of the request checked and reserved atomically).
Everything else (settling reservations, usage, cooldown marks) happens off the response path.

Numbers are clamped where they enter a store, and a store's answers are clamped where they leave
it (the rules every store implements and the conformance suite checks):

- a budget's ``reserved`` is never below 0: a settlement releases only a reservation the store
  still holds (after a backend lost its data, nothing is released twice or from nothing);
- a settlement never lowers ``spent``: a request's cost (reserved plus correction) counts as at
  least 0, and a negative correction for a request the store holds no reservation of is dropped;
- usage counters and ``cost_usd`` only grow: a negative or non-finite value counts as 0;
- a check whose amount, limit or period is not a finite number is refused (``ValueError``);
  a cooldown whose ``until`` is not finite is ignored;
- a remote store's :class:`Decision` is clamped by :func:`truckllm.kit.localstate.sane_decision`.

Retention: usage rows of a UTC day are kept for the store's ``usage_retention`` (400 days by
default), cooldown marks until they end, rate-limit state until the bucket is full again, budget
windows until a week after they end (``total`` budgets are kept for good).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import msgspec

from truckllm.types import RequestRecord

__all__ = [
    "DEFAULT_USAGE_RETENTION",
    "NO_TAG",
    "TAGGED",
    "USAGE_COUNTERS",
    "USAGE_FIELDS",
    "USAGE_TOTALS",
    "Admission",
    "BudgetCheck",
    "CooldownClear",
    "CooldownMark",
    "CooldownPush",
    "Decision",
    "RateCheck",
    "Settlement",
    "StateCreate",
    "StateStore",
    "Store",
    "UsageQuery",
    "UsageReport",
    "UsageRow",
    "budget_window",
    "is_tag_row",
    "usage_groups",
    "usage_key",
    "usage_keys",
    "utc_day",
]

Period = Literal["day", "week", "month", "total"]
GroupBy = Literal["key", "alias", "provider", "provider_key", "day", "model", "team", "org", "user", "tag"]


class RateCheck(msgspec.Struct, frozen=True, kw_only=True):
    """One rate limit to check and consume: ``cost`` units against ``rate`` per ``period`` seconds.

    GCRA semantics: ``burst`` units may be used at once (default: ``rate``), then they refill
    evenly. A token limit uses ``cost`` = the request's token estimate; :meth:`Store.settle`
    later corrects it by the difference to the real count.

    :ivar key: a stable name, e.g. ``"gk:team-a:rpm"`` or ``"pk:openai:oa-main:tpm"``.
    """

    key: str
    rate: int
    period: float = 60.0
    burst: int | None = None
    cost: int = 1


class BudgetCheck(msgspec.Struct, frozen=True, kw_only=True):
    """A spend cap: reserve ``amount`` USD against ``limit`` USD in the current ``period``."""

    key: str
    limit: float
    period: Period = "month"
    amount: float = 0.0


class Admission(msgspec.Struct, frozen=True, kw_only=True):
    """Everything one request must pass before it is sent upstream."""

    request_id: str
    rates: tuple[RateCheck, ...] = ()
    budgets: tuple[BudgetCheck, ...] = ()


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """The store's answer to :meth:`Store.admit`.

    :ivar allowed: every check passed; all were consumed/reserved. When not allowed, nothing was.
    :ivar denied_by: the key of the first check that failed.
    :ivar kind: ``"rate"`` or ``"budget"`` for the failed check.
    :ivar retry_after: seconds until the failed rate check would pass (``None`` for budgets).
    :ivar remaining: per check key, what is left after this request (units or USD).
    :ivar degraded: the store answered from a local fallback (its backend is unreachable).
    """

    allowed: bool
    denied_by: str | None = None
    kind: str | None = None
    retry_after: float | None = None
    remaining: dict[str, float] = msgspec.field(default_factory=dict)
    degraded: bool = False


class Settlement(msgspec.Struct, frozen=True, kw_only=True):
    """Corrections once a request's real usage is known.

    :ivar rate_adjust: per rate-check key, units to add (positive) or give back (negative).
    :ivar budget_adjust: per budget key, USD to add (actual minus reserved; negative refunds).
    """

    request_id: str
    rate_adjust: dict[str, int] = msgspec.field(default_factory=dict)
    budget_adjust: dict[str, tuple[Period, float]] = msgspec.field(default_factory=dict)


class CooldownMark(msgspec.Struct, frozen=True, kw_only=True):
    """A provider key taken out of rotation until ``until`` (unix time), shared by every process."""

    provider: str
    key: str
    until: float
    reason: str = ""


class CooldownClear(msgspec.Struct, frozen=True, kw_only=True):
    """An operator's ``enable`` of a provider key: its shared cooldown mark is removed."""

    provider: str
    key: str


DEFAULT_USAGE_RETENTION = 400 * 86400.0
"""Seconds a UTC day's usage rows are kept by default (the stores' ``usage_retention`` option)."""


class UsageQuery(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /admin/v1/usage``: totals grouped by some of ``GroupBy``, in ``[since, until)`` (unix)."""

    group_by: tuple[GroupBy, ...] = ()
    since: float | None = None
    until: float | None = None
    key: str | None = None
    alias: str | None = None
    provider: str | None = None


class UsageRow(msgspec.Struct, kw_only=True):
    """Totals for one group (``group`` holds the grouping values, e.g. ``{"key": "team-a"}``)."""

    group: dict[str, str] = msgspec.field(default_factory=dict)
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0


USAGE_TOTALS: tuple[str, ...] = tuple(f for f in UsageRow.__struct_fields__ if f != "group")
"""The totals a :class:`UsageRow` adds up, in field order (``cost_usd`` last)."""

USAGE_COUNTERS: tuple[str, ...] = tuple(f for f in USAGE_TOTALS if f != "cost_usd")
"""The integer totals of a :class:`UsageRow` (all but ``cost_usd``)."""


class UsageReport(msgspec.Struct, kw_only=True):
    """Rows per group, and the total over them."""

    rows: list[UsageRow]
    total: UsageRow


@runtime_checkable
class CooldownPush(Protocol):
    """Optional, for stores shared by several processes: push cooldown marks as they happen.

    The gateway runs :meth:`watch_cooldowns` as a background task (restarted with backoff when it
    returns or raises) besides its once-a-second :meth:`Store.cooldowns` poll, so that a cooldown
    learned by one process reaches the others within one store round trip instead of one poll.
    """

    async def watch_cooldowns(self, apply: Callable[[CooldownMark], object]) -> None:
        """Call ``apply`` with every mark any process makes (``mark_cooldown``) and, for a
        ``clear_cooldown``, with a mark whose ``until`` is 0; return or raise when the feed ends."""


@runtime_checkable
class StateStore(Protocol):
    """Optional: opaque values with a time to live, for stateful inbound dialects.

    The Responses API's stored responses (``previous_response_id``) live here, so that a
    conversation continues on any process sharing the store. Names arrive already scoped by the
    kernel (dialect, gateway key); values are opaque bytes. A store without these methods leaves
    the kernel keeping such state in process memory only.
    """

    async def get_state(self, name: str) -> bytes | None:
        """The value stored under ``name``, or ``None`` when absent or expired."""

    async def put_state(self, name: str, value: bytes, ttl: float) -> None:
        """Store ``value`` under ``name`` (replacing any), kept for ``ttl`` seconds."""

    async def delete_state(self, name: str) -> bool:
        """Remove ``name``; ``True`` when something (unexpired) was removed."""


@runtime_checkable
class StateCreate(Protocol):
    """Optional, with :class:`StateStore`: store a value only where none is (Redis ``SET NX``).

    The one atomic write a dialect may build lossless registries on (several processes claiming
    numbered slots: exactly one claims each). A state store without it has the kernel read, then
    write: atomic within one process only.
    """

    async def create_state(self, name: str, value: bytes, ttl: float) -> bool:
        """Store ``value`` under ``name`` for ``ttl`` seconds unless an unexpired value is there;
        ``True`` when this call stored it (exactly one of several concurrent calls does)."""


@runtime_checkable
class Store(Protocol):
    """What a store plugin's class implements (besides a ``store_usage`` hookimpl method).

    Usage is aggregated per (gateway key, alias, provider, provider key, model, UTC day, team, org,
    end user, tag) (:func:`usage_keys`); a request record counts once in ``requests``, and in
    ``errors`` when its status is not 2xx.
    """

    name: str

    async def start(self) -> None:
        """Connect / open files. Called once in the lifespan before serving."""

    async def close(self) -> None:
        """Flush everything pending and release resources (graceful shutdown)."""

    async def admit(self, admission: Admission) -> Decision:
        """Check and consume every rate limit and reserve every budget of one request, atomically."""

    async def settle(self, settlement: Settlement) -> None:
        """Apply a request's corrections (may be batched; must not be lost on close)."""

    async def mark_cooldown(self, mark: CooldownMark) -> None:
        """Share a cooldown: a later ``until`` extends, an earlier one never shortens."""

    async def clear_cooldown(self, provider: str, key: str) -> None:
        """Remove the cooldown mark of one provider key (an operator's ``enable``); a later
        :meth:`mark_cooldown` takes effect again. A store that cannot reach its backend keeps the
        clear and applies it (before any later mark) when it is back."""

    async def cooldowns(self) -> Sequence[CooldownMark]:
        """Every cooldown mark still in force (a mark that disappears before its ``until`` was cleared)."""

    async def usage(self, query: UsageQuery) -> UsageReport:
        """Aggregated usage. Grouped by ``tag``, a request counts once in each of its tags'
        groups (``-`` for none); ``total`` counts every request once."""

    async def ready(self) -> dict[str, Any]:
        """``{"ok": bool, ...details}`` for ``/admin/v1/ready`` (never a secret)."""


def budget_window(period: Period, now: float) -> str:
    """The id of the budget window containing unix time ``now`` (UTC): ``2026-11``, ``2026-W48``..."""
    import datetime as _dt

    day = _dt.datetime.fromtimestamp(now, _dt.UTC)
    if period == "day":
        return day.strftime("%Y-%m-%d")
    if period == "week":
        iso = day.isocalendar()
        return f"{iso.year}-W{iso.week:02d}"
    if period == "month":
        return day.strftime("%Y-%m")
    return "total"


USAGE_FIELDS = ("key", "alias", "provider", "provider_key", "model", "day", "team", "org", "user", "tag")
"""The names of :func:`usage_key`'s values, in order."""

NO_TAG = "-"
"""``tag`` of the usage row of a request without tags."""

TAGGED = "*"
"""``tag`` of the usage row of a request with tags: its totals also count once in a row per tag
(whose ``tag`` is the tag), read when usage is grouped by ``tag``."""


@functools.lru_cache(maxsize=8)
def _utc_day(day_number: int) -> str:
    import datetime as _dt

    return _dt.datetime.fromtimestamp(day_number * 86400, _dt.UTC).strftime("%Y-%m-%d")


def utc_day(timestamp: float) -> str:
    """The UTC date (``2026-11-26``) of a unix time, cached per day."""
    return _utc_day(int(timestamp // 86400))


def usage_key(record: RequestRecord) -> tuple[str, ...]:
    """The grouping values of one record in :data:`USAGE_FIELDS` order (``day`` in UTC; ``tag``
    is :data:`TAGGED` or :data:`NO_TAG`: the request's own row)."""
    return (
        record.gateway_key or "-",
        record.alias,
        record.provider or "-",
        record.provider_key or "-",
        record.model or "-",
        _utc_day(int(record.started_at // 86400)),  # utc_day(), without the call
        record.team or "-",
        record.org or "-",
        record.user or "-",
        TAGGED if record.tags else NO_TAG,
    )


def usage_keys(record: RequestRecord) -> list[tuple[str, ...]]:
    """Every usage row one record counts in: its own (:func:`usage_key`), then one per distinct
    tag (the same values, ``tag`` set to the tag)."""
    own = usage_key(record)
    if not record.tags:
        return [own]
    return [own, *((*own[:-1], tag) for tag in dict.fromkeys(record.tags))]


def is_tag_row(group: dict[str, str]) -> bool:
    """Whether a usage row's ``group`` is a tag's row (not a request's own row)."""
    return group.get("tag", NO_TAG) not in (NO_TAG, TAGGED)


def usage_groups(record: RequestRecord) -> dict[str, str]:
    """The grouping values of one record's own row (``day`` in UTC)."""
    return dict(zip(USAGE_FIELDS, usage_key(record), strict=True))
