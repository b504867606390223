"""Pre-aggregated figures: the ``rollup_minute`` / ``rollup_hour`` / ``rollup_day`` tables'
layout, :func:`aggregate` (records summed per bucket and dimensions in Python: what SQLite's
writer adds, the reference the SQL of :mod:`.pg_batch` is tested against, and the benchmark's
bulk loader), and percentiles read back from their fixed-bucket histograms.

Latency percentiles come from histograms of :data:`BOUNDS_MS` (0.25 ms to 60 s, roughly
doubling): a percentile is reported as the *upper bound* of the bucket it falls in, so it is
never under the true value and at most one bucket width over it (a request slower than 60 s
counts in the last bucket and is reported as 60,000 ms).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from typing import Any

from truckllm.kit.request_log import SeriesPoint, Step
from truckllm.types import RequestRecord

__all__ = [
    "BOUNDS_MS",
    "DIMENSIONS",
    "FIGURES",
    "HIST_COLUMNS",
    "RETENTION_DAYS",
    "ROLLUP_COLUMNS",
    "STEP_SECONDS",
    "UNIT_FIGURES",
    "aggregate",
    "bucket_of",
    "percentile",
    "point_from",
    "table_of",
]

BOUNDS_MS: tuple[float, ...] = (
    0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 60000,
)  # fmt: skip
"""Histogram bucket upper bounds (ms); one more bucket past the last holds anything slower."""

STEP_SECONDS: dict[Step, int] = {"minute": 60, "hour": 3600, "day": 86400}
"""A step's bucket width in seconds."""

RETENTION_DAYS: dict[Step, int] = {"minute": 2, "hour": 90, "day": 400}
"""How long each rollup table keeps its rows."""

DIMENSIONS = ("gateway_key", "alias", "provider", "model", "status")
"""The rollup tables' key columns besides ``bucket`` (``''`` stands for a missing key/provider/model)."""

FIGURES = ("requests", "errors", "prompt_tokens", "completion_tokens", "cost_usd")
"""The summed figures of a rollup row."""

HIST_COLUMNS: tuple[str, ...] = tuple(f"lat_{i}" for i in range(len(BOUNDS_MS) + 1)) + tuple(
    f"add_{i}" for i in range(len(BOUNDS_MS) + 1)
)
"""The whole-latency histogram's columns, then the added-latency one's."""

UNIT_FIGURES = ("images", "audio_seconds", "characters", "search_units", "usage_requests")
"""The summed units of work (schema 2): a record's ``Usage.images``... and ``Usage.requests``
(``usage_requests``: ``requests`` counts the records)."""

ROLLUP_COLUMNS: tuple[str, ...] = ("bucket", *DIMENSIONS, *FIGURES, *HIST_COLUMNS, *UNIT_FIGURES)
"""A rollup row, in order."""

_N = len(BOUNDS_MS) + 1
_UNITS = len(FIGURES)  # + the histograms: where a row's unit sums start
_INT64_MAX = 2**63 - 1


def table_of(step: Step) -> str:
    """The rollup table of ``step``."""
    return f"rollup_{step}"


def bucket_of(started_at: float, step: Step) -> int:
    """The start (unix seconds) of the ``step`` bucket holding ``started_at``."""
    width = STEP_SECONDS[step]
    return int(started_at // width) * width


def _slot(ms: float) -> int:
    return bisect.bisect_left(BOUNDS_MS, ms) if ms == ms else _N - 1


def aggregate(records: Iterable[RequestRecord], step: Step) -> list[tuple[Any, ...]]:
    """``records`` summed into rollup rows (:data:`ROLLUP_COLUMNS` order) for ``step``."""
    rows: dict[tuple[Any, ...], list[Any]] = {}
    for r in records:
        key = (
            bucket_of(r.started_at, step),
            r.gateway_key or "",
            r.alias,
            r.provider or "",
            r.model or "",
            min(r.status, _INT64_MAX),
        )
        row = rows.get(key)
        if row is None:
            row = rows[key] = [0, 0, 0, 0, 0.0] + [0] * (2 * _N) + [0, 0.0, 0, 0, 0]
        row[0] += 1
        row[1] += r.status >= 400
        usage = r.usage
        if usage is not None:
            row[2] = min(_INT64_MAX, row[2] + usage.prompt_tokens)
            row[3] = min(_INT64_MAX, row[3] + usage.completion_tokens)
            units = _UNITS + 2 * _N
            row[units] = min(_INT64_MAX, row[units] + usage.images)
            if math.isfinite(usage.audio_seconds):  # as stored in the row (see codec)
                row[units + 1] += usage.audio_seconds
            row[units + 2] = min(_INT64_MAX, row[units + 2] + usage.characters)
            row[units + 3] = min(_INT64_MAX, row[units + 3] + usage.search_units)
            row[units + 4] = min(_INT64_MAX, row[units + 4] + usage.requests)
        row[4] += r.cost_usd
        row[5 + _slot(r.latency_ms)] += 1
        if r.upstream_ms is not None:
            row[5 + _N + _slot(r.latency_ms - r.upstream_ms)] += 1
    return [(*key, *row) for key, row in rows.items()]


def percentile(hist: Sequence[int], q: float) -> float | None:
    """The upper bound (ms) of the histogram bucket holding the ``q`` quantile; None if empty."""
    total = sum(hist)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(hist):
        seen += count
        if seen >= rank and count:
            return float(BOUNDS_MS[min(i, len(BOUNDS_MS) - 1)])
    return float(BOUNDS_MS[-1])


def point_from(at: float, sums: Sequence[Any]) -> SeriesPoint:
    """One :class:`SeriesPoint` from summed :data:`FIGURES` then :data:`HIST_COLUMNS`."""
    lat = [int(x or 0) for x in sums[5 : 5 + _N]]
    add = [int(x or 0) for x in sums[5 + _N : 5 + 2 * _N]]
    return SeriesPoint(
        at=float(at),
        requests=int(sums[0] or 0),
        errors=int(sums[1] or 0),
        prompt_tokens=int(sums[2] or 0),
        completion_tokens=int(sums[3] or 0),
        cost_usd=float(sums[4] or 0.0),
        added_p50_ms=percentile(add, 0.5),
        added_p99_ms=percentile(add, 0.99),
        latency_p50_ms=percentile(lat, 0.5),
        latency_p99_ms=percentile(lat, 0.99),
    )
