"""``/teams``: every team and organisation with its limits, models, metadata, keys and budgets,
each budget's spend so far as a bar (``/admin/v1/teams``, one call)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from truckllm_console.console import Console

__all__ = ["WARN_AT", "Budget", "budgets", "routes"]

WARN_AT = 0.8
"""A budget spent beyond this share is drawn red."""


@dataclass(frozen=True)
class Budget:
    """One budget as the page draws it.

    :ivar usd: the cap; ``period``: ``day``, ``week``, ``month`` or ``total``; ``window``: the
        current window's id (``2026-12``).
    :ivar spent: spent so far in the window (``None``: unknown, no store or it is unreachable).
    :ivar share: ``spent / usd`` (``None`` when unknown or the cap is 0).
    :ivar width: the bar's filled width out of 100 (at most 100).
    :ivar over: spent beyond :data:`WARN_AT` of the cap (or anything of a 0 cap).
    """

    usd: float
    period: str
    window: str
    spent: float | None
    share: float | None
    width: float
    over: bool


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def budgets(row: dict[str, Any]) -> list[Budget]:
    """A team's or an organisation's budgets, with their share spent."""
    out = []
    for b in row.get("budgets") or ():
        if not isinstance(b, dict):
            continue
        usd = _number(b.get("usd")) or 0.0
        spent = _number(b.get("spent_usd"))
        share = spent / usd if spent is not None and usd > 0 else None
        over = share > WARN_AT if share is not None else spent is not None and spent > 0
        width = 100.0 if over and share is None else min(share or 0.0, 1.0) * 100
        out.append(
            Budget(
                usd=usd,
                period=str(b.get("period", "")),
                window=str(b.get("window", "")),
                spent=spent,
                share=share,
                width=round(width, 1),
                over=over,
            )
        )
    return out


def routes(console: Console) -> list[BaseRoute]:
    """``/teams``."""

    async def page(request: Request) -> Response:
        fetched = await console.fetch("GET", "/admin/v1/teams")
        body = fetched.body if fetched.error is None and isinstance(fetched.body, dict) else {}
        teams = [t for t in body.get("teams") or () if isinstance(t, dict)]
        orgs = [o for o in body.get("orgs") or () if isinstance(o, dict)]
        return console.render(
            request,
            "teams.html",
            title="Teams and organisations",
            fetched=fetched,
            teams=teams,
            orgs=orgs,
            budgets=budgets,
            warn_at=WARN_AT,
        )

    return [Route("/teams", page)]
