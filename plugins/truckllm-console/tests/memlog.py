"""An in-memory searchable request log for the console's tests (``loggers: [memlog]``): the
:class:`~truckllm.kit.request_log.RequestLog` protocol over a list, keyset-paginated like the
SQL logger (cursor = the last record's ``started_at`` and ``request_id``)."""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from truckllm import hookimpl
from truckllm.kit.request_log import (
    LogPage,
    LogQuery,
    Series,
    SeriesPoint,
    SeriesQuery,
    TopRow,
    status_filter,
)
from truckllm.types import RequestRecord

STEPS = {"minute": 60.0, "hour": 3600.0, "day": 86400.0}


class MemoryLog:
    """Keeps every record; answers searches, single records and series."""

    class Options(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
        """No option."""

    def __init__(self, options: Options | None = None) -> None:
        self.records: list[RequestRecord] = []

    @hookimpl
    def emit_log(self, record: RequestRecord) -> None:
        self.records.append(record)

    def _matches(self, r: RequestRecord, q: LogQuery) -> bool:
        if q.since is not None and r.started_at < q.since:
            return False
        if q.until is not None and r.started_at >= q.until:
            return False
        pairs = [
            (q.gateway_key, r.gateway_key),
            (q.alias, r.alias),
            (q.provider, r.provider),
            (q.model, r.model),
            (q.dialect, r.dialect),
            (q.endpoint, r.endpoint),
            (q.request_id, r.request_id),
            (q.team, r.team),
            (q.user, r.user),
        ]
        if any(want is not None and want != have for want, have in pairs):
            return False
        if q.tag is not None and q.tag not in r.tags:
            return False
        if q.status is not None:
            code, klass = status_filter(q.status)
            if code is not None and r.status != code:
                return False
            if klass is not None and f"{r.status // 100}xx" != klass:
                return False
        return True

    async def search(self, query: LogQuery) -> LogPage:
        rows = sorted(
            (r for r in self.records if self._matches(r, query)),
            key=lambda r: (r.started_at, r.request_id),
            reverse=True,
        )
        if query.cursor is not None:
            try:
                at, rid = query.cursor.split("|", 1)
                edge = (float(at), rid)
            except ValueError:
                raise ValueError("bad cursor") from None
            rows = [r for r in rows if (r.started_at, r.request_id) < edge]
        page = rows[: query.limit]
        more = len(rows) > query.limit
        cursor = f"{page[-1].started_at!r}|{page[-1].request_id}" if more else None
        return LogPage(
            records=tuple(msgspec.structs.replace(r, bodies=None) for r in page), next_cursor=cursor
        )

    async def get(self, request_id: str) -> RequestRecord | None:
        return next((r for r in self.records if r.request_id == request_id), None)

    async def series(self, query: SeriesQuery) -> Series:
        width = STEPS[query.step]
        chosen = [r for r in self.records if query.since <= r.started_at < query.until]
        buckets: dict[float, list[RequestRecord]] = {}
        for r in chosen:
            buckets.setdefault(r.started_at // width * width, []).append(r)

        def point(at: float, rows: list[RequestRecord]) -> SeriesPoint:
            lat = sorted(r.latency_ms for r in rows)
            return SeriesPoint(
                at=at,
                requests=len(rows),
                errors=sum(r.status >= 400 for r in rows),
                prompt_tokens=sum(r.usage.prompt_tokens for r in rows if r.usage),
                completion_tokens=sum(r.usage.completion_tokens for r in rows if r.usage),
                cost_usd=sum(r.cost_usd for r in rows),
                added_p50_ms=lat[len(lat) // 2] / 2 if lat else None,
                added_p99_ms=lat[-1] / 2 if lat else None,
                latency_p50_ms=lat[len(lat) // 2] if lat else None,
                latency_p99_ms=lat[-1] if lat else None,
            )

        def top(name: Callable[[RequestRecord], str | None]) -> tuple[TopRow, ...]:
            groups: dict[str | None, list[RequestRecord]] = {}
            for r in chosen:
                groups.setdefault(name(r), []).append(r)
            rows = [
                TopRow(
                    name=k,
                    requests=len(v),
                    errors=sum(r.status >= 400 for r in v),
                    tokens=sum(r.usage.total_tokens for r in v if r.usage),
                    cost_usd=sum(r.cost_usd for r in v),
                )
                for k, v in groups.items()
            ]
            return tuple(sorted(rows, key=lambda t: -t.requests)[: query.top])

        return Series(
            step=query.step,
            points=tuple(point(at, rows) for at, rows in sorted(buckets.items())),
            totals=point(query.since, chosen),
            top_aliases=top(lambda r: r.alias),
            top_keys=top(lambda r: r.gateway_key),
        )


class MemoryLogPlugin:
    """Registers ``memlog`` (pass an instance in ``extra_plugins``)."""

    @hookimpl
    def register_loggers(self, register: Callable[[str, type], None]) -> None:
        register("memlog", MemoryLog)
