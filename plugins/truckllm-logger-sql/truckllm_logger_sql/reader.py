"""Rows read by either backend turned into the request log's answers: a :class:`LogPage` (with
its next cursor) and a :class:`Series` (points, totals, top aliases and keys).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from truckllm.kit.request_log import LogPage, LogQuery, Series, SeriesQuery, TopRow

from .codec import PAGE_COLUMNS, encode_cursor, from_row
from .rollup import bucket_of, point_from

__all__ = ["page_from", "series_from"]


def page_from(query: LogQuery, rows: Sequence[Sequence[Any]]) -> LogPage:
    """The page of ``query`` from its ``limit + 1`` rows (of :data:`~.codec.PAGE_COLUMNS`)."""
    records = tuple(from_row(row, PAGE_COLUMNS) for row in rows[: query.limit])
    more = len(rows) > query.limit
    last = records[-1] if records else None
    cursor = encode_cursor(last.started_at, last.request_id) if more and last is not None else None
    return LogPage(records=records, next_cursor=cursor)


def _top(rows: Sequence[Sequence[Any]], empty_is_none: bool) -> tuple[TopRow, ...]:
    return tuple(
        TopRow(
            name=(None if empty_is_none and not row[0] else row[0]),
            requests=int(row[1] or 0),
            errors=int(row[2] or 0),
            tokens=int(row[3] or 0),
            cost_usd=float(row[4] or 0.0),
        )
        for row in rows
    )


def series_from(
    query: SeriesQuery,
    points: Sequence[Sequence[Any]],
    aliases: Sequence[Sequence[Any]],
    keys: Sequence[Sequence[Any]],
) -> Series:
    """The :class:`Series` of ``query`` from its per-bucket sums and its top rows."""
    width = len(points[0]) - 1 if points else 0
    totals: list[Any] = [0] * width
    for row in points:
        for i, value in enumerate(row[1:]):
            totals[i] += value or 0
    start = bucket_of(query.since, query.step)
    return Series(
        step=query.step,
        points=tuple(point_from(row[0], row[1:]) for row in points),
        totals=point_from(start, totals) if points else point_from(start, [0] * 5),
        top_aliases=_top(aliases, empty_is_none=False),
        top_keys=_top(keys, empty_is_none=True),
    )
