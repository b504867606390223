"""``/`` the overview: traffic, errors, added latency, tokens and spend over the last hour, day or
month (``/admin/v1/requests/stats``), top aliases and keys, live figures (``/admin/v1/status``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from truckllm_console import fmt
from truckllm_console.charts import Axis, Chart, bar_chart, line_chart
from truckllm_console.console import Console, Fetched

__all__ = ["RANGES", "STEP_SECONDS", "charts", "key_states", "rate", "routes"]

STEP_SECONDS = {"minute": 60.0, "hour": 3600.0, "day": 86400.0}
"""A step's width in seconds."""

RANGES: dict[str, tuple[str, float, str]] = {
    "hour": ("Last hour", 3600.0, "minute"),
    "day": ("Last day", 86400.0, "hour"),
    "month": ("Last 30 days", 30 * 86400.0, "day"),
}
"""The range switch: name → (label, seconds, step)."""


def _stamp(step: str) -> Callable[[float], str]:
    def stamp(at: float) -> str:
        text = fmt.when(at)
        return text[11:16] if step != "day" else text[5:10]

    return stamp


def charts(points: list[dict[str, Any]], step: str, since: float, until: float) -> list[Chart]:
    """The overview's charts of a series' points over ``[since, until)``."""
    seconds = STEP_SECONDS[step]
    axis = Axis(since=since // seconds * seconds, until=until, step=seconds, stamp=_stamp(step))
    tokens = lambda p: float(p.get("prompt_tokens", 0)) + float(p.get("completion_tokens", 0))  # noqa: E731
    return [
        bar_chart(
            "Requests per second",
            "c-rps",
            points,
            lambda p: float(p.get("requests", 0)) / seconds,
            rate,
            axis,
        ),
        bar_chart(
            "Errors (status 400 or more)",
            "c-err",
            points,
            lambda p: float(p.get("errors", 0)),
            lambda v: f"{v:,.0f}",
            axis,
        ),
        line_chart(
            "Added latency", "c-added", points, {"p50": "added_p50_ms", "p99": "added_p99_ms"}, fmt.ms, axis
        ),
        bar_chart("Tokens", "c-tok", points, tokens, lambda v: f"{v:,.0f}", axis),
        bar_chart("Spend", "c-cost", points, lambda p: float(p.get("cost_usd", 0.0)), fmt.money, axis),
    ]


def rate(value: float) -> str:
    """Requests per second, with more digits when there are few."""
    return f"{value:.3f}/s" if value < 1 else f"{value:,.2f}/s"


def key_states(status: Fetched) -> dict[str, int]:
    """Provider keys per state, from ``/admin/v1/status``."""
    body = status.body if status.error is None and isinstance(status.body, dict) else {}
    return dict(Counter(str(k.get("state")) for k in body.get("keys", ()) if isinstance(k, dict)))


def routes(console: Console) -> list[BaseRoute]:
    """``/`` and its live fragment ``/fragments/overview``."""

    async def figures(request: Request) -> dict[str, Any]:
        name = request.query_params.get("range", "hour")
        if name not in RANGES:
            name = "hour"
        label, seconds, step = RANGES[name]
        now = console.clock()
        stats = await console.fetch(
            "GET",
            "/admin/v1/requests/stats",
            query={"since": f"{now - seconds:.3f}", "until": f"{now:.3f}", "step": step, "top": "5"},
        )
        status = await console.fetch("GET", "/admin/v1/status")
        body = stats.body if stats.error is None and isinstance(stats.body, dict) else {}
        totals = body.get("totals") or {}
        requests = float(totals.get("requests", 0) or 0)
        return {
            "range": name,
            "range_label": label,
            "ranges": RANGES,
            "seconds": seconds,
            "stats": stats,
            "no_log": stats.code == "no_request_log",
            "status": status,
            "live": status.body if status.error is None and isinstance(status.body, dict) else {},
            "states": key_states(status),
            "totals": totals,
            "rps": rate(requests / seconds),
            "error_rate": (float(totals.get("errors", 0) or 0) / requests) if requests else None,
            "points": body.get("points") or [],
            "step": step,
            "since": now - seconds,
            "until": now,
            "top_aliases": body.get("top_aliases") or [],
            "top_keys": body.get("top_keys") or [],
        }

    async def overview(request: Request) -> Response:
        context = await figures(request)
        context["charts"] = charts(context["points"], context["step"], context["since"], context["until"])
        return console.render(request, "overview.html", title="Overview", **context)

    async def fragment(request: Request) -> Response:
        return console.render(request, "_overview_figures.html", **await figures(request))

    return [Route("/", overview), Route("/fragments/overview", fragment)]
