"""Charts as geometry for server-rendered inline SVG: bars for counts, lines for percentiles.

Pure functions of the series' points. The x axis is the whole range asked for (``since`` to
``until``), so a bucket sits where its time is, and empty buckets are gaps. The template draws
the geometry and prints the same figures in a table, so a screen reader or a text browser gets
every value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["HEIGHT", "WIDTH", "Axis", "Bar", "Chart", "Line", "bar_chart", "line_chart"]

WIDTH = 600
"""The drawing's width in SVG units (it scales to its box)."""
HEIGHT = 180
"""The drawing's height."""
_LEFT, _BOTTOM, _TOP, _RIGHT = 56, 20, 10, 8
_PLOT_W = WIDTH - _LEFT - _RIGHT
_PLOT_H = HEIGHT - _BOTTOM - _TOP


@dataclass(frozen=True)
class Axis:
    """The time axis: the range and its bucket width, and how a time is printed."""

    since: float
    until: float
    step: float
    stamp: Callable[[float], str]

    def x(self, at: float) -> float:
        """The x of a bucket's start."""
        span = max(self.until - self.since, self.step)
        return _LEFT + _PLOT_W * min(max(at - self.since, 0.0), span) / span

    @property
    def bucket_width(self) -> float:
        """A bucket's width on the drawing."""
        return _PLOT_W * self.step / max(self.until - self.since, self.step)


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
    """One series of a line chart: its SVG ``points``, its dots and its CSS class."""

    name: str
    points: str
    dots: tuple[tuple[float, float], ...]
    css: str


@dataclass(frozen=True)
class Chart:
    """A chart ready to draw, and its figures as table rows.

    :ivar title: what it shows (the SVG's ``<title>``).
    :ivar ident: a unique id for ``aria-labelledby``.
    :ivar top: the value at the top of the axis, as printed.
    :ivar columns: the table's column names after the time.
    :ivar rows: ``(time, value, ...)`` per bucket with requests, printed.
    :ivar first: the range's start, printed; ``last``: its end.
    :ivar empty: no bucket had a value.
    """

    title: str
    ident: str
    top: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    first: str
    last: str
    empty: bool
    bars: tuple[Bar, ...] = ()
    lines: tuple[Line, ...] = ()
    width: int = WIDTH
    height: int = HEIGHT
    plot_left: int = _LEFT
    plot_right: int = WIDTH - _RIGHT
    plot_top: int = _TOP
    plot_bottom: int = HEIGHT - _BOTTOM


def _top(values: Sequence[float]) -> float:
    top = max(values, default=0.0)
    return top if top > 0 else 1.0


def _y(value: float, top: float) -> float:
    return HEIGHT - _BOTTOM - _PLOT_H * value / top


def bar_chart(
    title: str,
    ident: str,
    points: Sequence[Mapping[str, Any]],
    value: Callable[[Mapping[str, Any]], float],
    label: Callable[[float], str],
    axis: Axis,
) -> Chart:
    """One bar per point, ``value(point)`` high, labelled ``label(value)``."""
    values = [float(value(p)) for p in points]
    top = _top(values)
    width = max(1.0, axis.bucket_width * 0.8)
    bars, rows = [], []
    for point, v in zip(points, values, strict=True):
        at = float(point.get("at", 0))
        y = _y(v, top)
        when = axis.stamp(at)
        x = axis.x(at) + axis.bucket_width * 0.1
        bars.append(
            Bar(
                x=round(x, 2),
                y=round(y, 2),
                width=round(width, 2),
                height=round(HEIGHT - _BOTTOM - y, 2),
                label=f"{when}: {label(v)}",
            )
        )
        rows.append((when, label(v)))
    return Chart(
        title=title,
        ident=ident,
        top=label(top) if any(values) else "",
        columns=(title,),
        rows=tuple(rows),
        first=axis.stamp(axis.since),
        last=axis.stamp(axis.until),
        empty=not any(values),
        bars=tuple(bars),
    )


def line_chart(
    title: str,
    ident: str,
    points: Sequence[Mapping[str, Any]],
    series: Mapping[str, str],
    label: Callable[[float], str],
    axis: Axis,
) -> Chart:
    """One line per ``series`` entry (column name → field of the points), a dot per value; a
    bucket without a value is left out of its line."""
    known = [float(p[f]) for p in points for f in series.values() if isinstance(p.get(f), int | float)]
    top = _top(known)
    lines = []
    for n, (name, key) in enumerate(series.items()):
        dots = tuple(
            (
                round(axis.x(float(p.get("at", 0))) + axis.bucket_width / 2, 1),
                round(_y(float(p[key]), top), 1),
            )
            for p in points
            if isinstance(p.get(key), int | float)
        )
        lines.append(
            Line(name=name, points=" ".join(f"{x},{y}" for x, y in dots), dots=dots, css=f"series{n}")
        )
    rows = tuple(
        (
            axis.stamp(float(p.get("at", 0))),
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
        first=axis.stamp(axis.since),
        last=axis.stamp(axis.until),
        empty=not known,
        lines=tuple(lines),
    )
