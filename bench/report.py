"""Percentiles, the comparison of two runs, and the plain-text tables the benchmark prints."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["added", "fmt", "percentile", "summarize", "table"]

PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0))


def percentile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile of an already sorted sequence (``nan`` when empty)."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summarize(values: Iterable[float], scale: float = 1e3) -> dict[str, float]:
    """``n``, ``p50``, ``p90``, ``p99``, ``max`` and ``mean`` of ``values`` (seconds → ms by default)."""
    ordered = sorted(v * scale for v in values)
    out: dict[str, float] = {"n": float(len(ordered))}
    for name, q in PERCENTILES:
        out[name] = percentile(ordered, q)
    out["max"] = ordered[-1] if ordered else math.nan
    out["mean"] = sum(ordered) / len(ordered) if ordered else math.nan
    return out


def added(direct: dict[str, float], gateway: dict[str, float]) -> dict[str, float]:
    """Gateway minus direct, percentile by percentile (the two runs are not paired request by request)."""
    return {
        k: gateway[k] - direct[k]
        for k in ("p50", "p90", "p99", "max", "mean")
        if k in direct and k in gateway
    }


def fmt(value: Any, digits: int = 2) -> str:
    """A number for a table cell: ``-`` when missing, thousands separators for big ones."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.{digits}f}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(values: Sequence[str]) -> str:
        parts = [values[0].ljust(widths[0])] + [
            v.rjust(w) for v, w in zip(values[1:], widths[1:], strict=True)
        ]
        return "  ".join(parts).rstrip()

    out = []
    if title:
        out.append(title)
    out.append(line(list(headers)))
    out.append("  ".join("-" * w for w in widths))
    out.extend(line(row) for row in cells)
    return "\n".join(out)
