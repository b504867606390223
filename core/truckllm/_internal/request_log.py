"""The request log's query interface: a logger that keeps records where they can be searched
(``truckllm-logger-sql``) implements :class:`RequestLog`; the kernel's admin API
(``/admin/v1/requests``...) and every console read it through this protocol only.

- :class:`LogQuery` → :class:`LogPage`: one page of records, newest first, keyset-paginated
  (``cursor`` is opaque; never an offset).
- :class:`SeriesQuery` → :class:`Series`: pre-aggregated figures over time, their totals and the
  top aliases and keys.
- :data:`STATUS_CLASSES`: the status filter's class values; :func:`status_filter`: a status
  filter's text read into an exact code or a class.
"""

from __future__ import annotations

from typing import Annotated, Literal, Protocol, runtime_checkable

import msgspec

from truckllm.types import RequestRecord

__all__ = [
    "MAX_PAGE",
    "STATUS_CLASSES",
    "LogPage",
    "LogQuery",
    "RequestLog",
    "Series",
    "SeriesPoint",
    "SeriesQuery",
    "Step",
    "TopRow",
    "status_filter",
]

MAX_PAGE = 500
"""The most records one page holds."""

STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")
"""The status filter's classes (besides an exact code such as ``429``)."""

Step = Literal["minute", "hour", "day"]
"""A series' bucket width."""


class LogQuery(msgspec.Struct, frozen=True, kw_only=True):
    """One page of the request log: every set filter must hold.

    :ivar since: records that started at or after this unix time.
    :ivar until: ... and before this one.
    :ivar gateway_key: the gateway key's name.
    :ivar alias: the alias (the ``model`` the client asked for).
    :ivar provider: the provider that answered last (``providers.<name>``).
    :ivar model: the upstream model that answered last.
    :ivar status: an exact status (``"429"``) or a class of :data:`STATUS_CLASSES`.
    :ivar dialect: the client's API dialect (``openai``, ``anthropic``...).
    :ivar endpoint: ``chat``, ``completions``, ``embeddings``, ``responses``...
    :ivar request_id: one request.
    :ivar team: the gateway key's team (:attr:`RequestRecord.team <truckllm.types.RequestRecord.team>`).
    :ivar user: the end user the client named (:attr:`RequestRecord.user
        <truckllm.types.RequestRecord.user>`).
    :ivar tag: one tag: records whose ``tags`` hold exactly this one.
    :ivar limit: records per page (1 to :data:`MAX_PAGE`).
    :ivar cursor: the ``next_cursor`` of the page before; ``None`` for the newest page.
    """

    since: float | None = None
    until: float | None = None
    gateway_key: str | None = None
    alias: str | None = None
    provider: str | None = None
    model: str | None = None
    status: str | None = None
    dialect: str | None = None
    endpoint: str | None = None
    request_id: str | None = None
    team: str | None = None
    user: str | None = None
    tag: str | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_PAGE)] = 50
    cursor: str | None = None


class LogPage(msgspec.Struct, frozen=True, kw_only=True):
    """Records newest first (by start time, then request id), without their bodies.

    :ivar records: this page.
    :ivar next_cursor: where the next (older) page starts; ``None`` on the last page.
    """

    records: tuple[RequestRecord, ...] = ()
    next_cursor: str | None = None


class SeriesQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Figures over ``[since, until)`` in buckets of ``step``, from pre-aggregated tables only.

    :ivar since: the first bucket's start (unix time; rounded down to the step).
    :ivar until: the end.
    :ivar step: the bucket width.
    :ivar gateway_key: only this gateway key's requests.
    :ivar alias: only this alias's.
    :ivar provider: only this provider's.
    :ivar model: only this upstream model's.
    :ivar top: how many aliases and keys :attr:`Series.top_aliases` / ``top_keys`` list.
    """

    since: float
    until: float
    step: Step = "minute"
    gateway_key: str | None = None
    alias: str | None = None
    provider: str | None = None
    model: str | None = None
    top: Annotated[int, msgspec.Meta(ge=0, le=100)] = 5


class SeriesPoint(msgspec.Struct, frozen=True, kw_only=True):
    """One bucket's figures (or a whole range's, as :attr:`Series.totals`).

    :ivar at: the bucket's start (unix time).
    :ivar requests: requests that started in it.
    :ivar errors: those answered with a status of 400 or more.
    :ivar prompt_tokens: prompt tokens.
    :ivar completion_tokens: completion tokens.
    :ivar cost_usd: dollars.
    :ivar added_p50_ms: the gateway's added latency (latency minus upstream time), median; from
        a histogram of fixed buckets (the bucket's upper bound); ``None`` with no request.
    :ivar added_p99_ms: ... 99th percentile.
    :ivar latency_p50_ms: the whole latency's median, likewise.
    :ivar latency_p99_ms: ... 99th percentile.
    """

    at: float
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    added_p50_ms: float | None = None
    added_p99_ms: float | None = None
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None


class TopRow(msgspec.Struct, frozen=True, kw_only=True):
    """One alias's or gateway key's totals over a series' range.

    :ivar name: the alias or key name (``None``: requests without a key).
    :ivar requests: its requests.
    :ivar errors: those answered 400 or more.
    :ivar tokens: prompt plus completion tokens.
    :ivar cost_usd: dollars.
    """

    name: str | None
    requests: int = 0
    errors: int = 0
    tokens: int = 0
    cost_usd: float = 0.0


class Series(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to a :class:`SeriesQuery`.

    :ivar step: the bucket width.
    :ivar points: one per bucket that had requests, oldest first.
    :ivar totals: the whole range (``at`` is its start).
    :ivar top_aliases: the busiest aliases, most requests first.
    :ivar top_keys: the busiest gateway keys, most requests first.
    """

    step: Step
    points: tuple[SeriesPoint, ...] = ()
    totals: SeriesPoint
    top_aliases: tuple[TopRow, ...] = ()
    top_keys: tuple[TopRow, ...] = ()


@runtime_checkable
class RequestLog(Protocol):
    """A logger whose records can be searched: the kernel's ``/admin/v1/requests`` endpoints
    answer from the first running logger that implements it."""

    async def search(self, query: LogQuery) -> LogPage:
        """One page of records matching ``query``, newest first; bodies left out.

        Raises :class:`ValueError` for a cursor it did not make."""

    async def get(self, request_id: str) -> RequestRecord | None:
        """One record with its attempts, usage, cost and (when recorded) bodies."""

    async def series(self, query: SeriesQuery) -> Series:
        """Figures over time from the pre-aggregated tables."""


def status_filter(text: str) -> tuple[int | None, str | None]:
    """A status filter read as ``(exact code, None)`` or ``(None, class)``; raises ValueError."""
    text = text.strip().lower()
    if text in STATUS_CLASSES:
        return None, text
    if text.isdigit() and len(text) == 3 and 100 <= int(text) <= 599:
        return int(text), None
    raise ValueError("status must be a code such as 429 or a class: " + ", ".join(STATUS_CLASSES))
