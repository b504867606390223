"""Charts as geometry for server-rendered inline SVG: bars for counts, lines for percentiles.

Pure functions of the series' points; the template draws them and prints the same figures in a
table, so a screen reader or a text browser gets every value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["HEIGHT", "WIDTH", "Bar", "Chart", "Line", "bar_chart", "line_chart"]

WIDTH = 600
"""The drawing's width in SVG units (it scales to its box)."""
HEIGHT = 160
"""The drawing's height."""
_PAD_LEFT, _PAD_BOTTOM, _PAD_TOP = 48, 18, 8


@dataclass(frozen=True)
class Bar:
    """One bucket's bar: its box and what it says."""

    x: float
    y: float
    width: float
    height: float
    label: str


@dataclass(frozen=True)
class Line:
    """One series of a line chart: its SVG ``points`` and its CSS class."""

    name: str
    points: str
    css: str


@dataclass(frozen=True)
class Chart:
    """A chart ready to draw, and its figures as table rows.

    :ivar title: what it shows (the SVG's ``<title>``).
    :ivar ident: a unique id for ``aria-labelledby``.
    :ivar top: the value at the top of the axis, as printed.
    :ivar columns: the table's column names after the time.
    :ivar rows: ``(time, value, ...)`` per bucket, printed.
    """

    title: str
    ident: str
    top: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    bars: tuple[Bar, ...] = ()
    lines: tuple[Line, ...] = ()
    width: int = WIDTH
    height: int = HEIGHT
    plot_left: int = _PAD_LEFT
    plot_bottom: int = HEIGHT - _PAD_BOTTOM
    first: str = ""
    last: str = ""
    empty: bool = field(default=False)


def _scale_top(values: Sequence[float]) -> float:
    top = max(values, default=0.0)
    return top if top > 0 else 1.0


def bar_chart(
    title: str,
    ident: str,
    points: Sequence[Mapping[str, Any]],
    value: Callable[[Mapping[str, Any]], float],
    label: Callable[[float], str],
    stamp: Callable[[float], str],
) -> Chart:
    """One bar per point: ``value(point)`` high, labelled ``label(value)`` at ``stamp(at)``."""
    values = [float(value(p)) for p in points]
    top = _scale_top(values)
    plot_w, plot_h = WIDTH - _PAD_LEFT, HEIGHT - _PAD_BOTTOM - _PAD_TOP
    step = plot_w / max(1, len(points))
    bars = []
    rows = []
    for i, (point, v) in enumerate(zip(points, values, strict=True)):
        h = plot_h * v / top
        when = stamp(float(point.get("at", 0)))
        bars.append(
            Bar(
                x=round(_PAD_LEFT + i * step + step * 0.1, 2),
                y=round(HEIGHT - _PAD_BOTTOM - h, 2),
                width=round(max(1.0, step * 0.8), 2),
                height=round(h, 2),
                label=f"{when}: {label(v)}",
            )
        )
        rows.append((when, label(v)))
    return Chart(
        title=title,
        ident=ident,
        top=label(top) if values else "",
        columns=(title,),
        rows=tuple(rows),
        bars=tuple(bars),
        first=rows[0][0] if rows else "",
        last=rows[-1][0] if rows else "",
        empty=not points,
    )


def line_chart(
    title: str,
    ident: str,
    points: Sequence[Mapping[str, Any]],
    series: Mapping[str, str],
    label: Callable[[float], str],
    stamp: Callable[[float], str],
) -> Chart:
    """One line per ``series`` entry (column name → field of the points); a point without a value
    breaks no line, it is left out."""
    known = [float(p[f]) for p in points for f in series.values() if isinstance(p.get(f), int | float)]
    top = _scale_top(known)
    plot_w, plot_h = WIDTH - _PAD_LEFT, HEIGHT - _PAD_BOTTOM - _PAD_TOP
    step = plot_w / max(1, len(points))
    lines = []
    for n, (name, key) in enumerate(series.items()):
        coords = []
        for i, point in enumerate(points):
            v = point.get(key)
            if isinstance(v, int | float):
                x = _PAD_LEFT + i * step + step / 2
                y = HEIGHT - _PAD_BOTTOM - plot_h * float(v) / top
                coords.append(f"{x:.1f},{y:.1f}")
        lines.append(Line(name=name, points=" ".join(coords), css=f"series{n}"))
    rows = tuple(
        (
            stamp(float(p.get("at", 0))),
            *(label(float(p[k])) if isinstance(p.get(k), int | float) else "–" for k in series.values()),
        )
        for p in points
    )
    return Chart(
        title=title,
        ident=ident,
        top=label(top) if known else "",
        columns=tuple(series),
        rows=rows,
        lines=tuple(lines),
        first=rows[0][0] if rows else "",
        last=rows[-1][0] if rows else "",
        empty=not known,
    )
