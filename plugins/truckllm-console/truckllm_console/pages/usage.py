"""``/usage``: requests, errors, tokens and cost grouped by key, alias, team, tag... over a time
range (``/admin/v1/usage``, one call per page), as a table sorted by cost or requests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from truckllm_console.console import Console
from truckllm_console.pages.requests import instant

__all__ = ["GROUPS", "RANGES", "SORTS", "TOP", "UsageForm", "read_form", "routes", "top_rows"]

GROUPS: dict[str, str] = {
    "key": "Gateway key",
    "alias": "Alias",
    "provider": "Provider",
    "provider_key": "Provider key",
    "model": "Model",
    "day": "Day",
    "team": "Team",
    "org": "Organisation",
    "user": "User",
    "tag": "Tag",
}
"""What the table can be grouped by (``group_by`` of the admin API) → column label, in order."""

RANGES: dict[str, tuple[str, float]] = {
    "hour": ("Last hour", 3600.0),
    "day": ("Last day", 86400.0),
    "30d": ("Last 30 days", 30 * 86400.0),
}
"""The range links: name → (label, seconds back from now)."""

SORTS: dict[str, str] = {"cost": "cost_usd", "requests": "requests"}
"""The sort links: name → the row's field, largest first."""

TOP = 200
"""The most rows shown; the page says when there were more."""


@dataclass(frozen=True)
class UsageForm:
    """The form's values as read from the query string, and the admin API's query for them.

    :ivar groups: the chosen ``group_by`` names, in :data:`GROUPS` order (``key`` if none).
    :ivar range: the range link in force ("" when ``since``/``until`` are given).
    :ivar sort: ``cost`` or ``requests``.
    :ivar since: the ``since`` field's text; ``until`` likewise.
    :ivar query: what ``GET /admin/v1/usage`` is asked.
    :ivar problems: values that could not be read (no admin call is made then).
    """

    groups: tuple[str, ...]
    range: str
    sort: str
    since: str
    until: str
    query: dict[str, str]
    problems: list[str]

    def link(self, **change: str) -> str:
        """This form's query string with some values changed (for the range and sort links)."""
        values = {"range": self.range, "since": self.since, "until": self.until, "sort": self.sort}
        values.update(change)
        pairs = [("group_by", g) for g in self.groups]
        pairs += [(k, v) for k, v in values.items() if v]
        return urlencode(pairs)


def read_form(group_by: Sequence[str], params: Mapping[str, str], now: float) -> UsageForm:
    """Read the checkboxes (``group_by``, repeated or comma-separated), the range and the sort."""
    asked = {g.strip() for value in group_by for g in value.split(",") if g.strip()}
    problems = [f"Cannot group by {g!r}." for g in sorted(asked - GROUPS.keys())]
    groups = [g for g in GROUPS if g in asked] or ["key"]
    sort = params.get("sort", "cost")
    if sort not in SORTS:
        sort = "cost"
    since, until = params.get("since", "").strip(), params.get("until", "").strip()
    query: dict[str, str] = {"group_by": ",".join(groups)}
    range_ = ""
    if since or until:
        for name, text in (("since", since), ("until", until)):
            if text:
                moment = instant(text)
                if moment is None:
                    problems.append(f"{name} is not a date and time: use YYYY-MM-DDTHH:MM (UTC)")
                else:
                    query[name] = f"{moment:.3f}"
    else:
        range_ = params.get("range", "day")
        if range_ not in RANGES:
            range_ = "day"
        query["since"] = f"{now - RANGES[range_][1]:.3f}"
    return UsageForm(tuple(groups), range_, sort, since, until, query, problems)


def top_rows(rows: Sequence[Any], sort: str) -> tuple[list[dict[str, Any]], int]:
    """The rows sorted by ``sort`` (largest first, then by group), cut to :data:`TOP`; and how many
    there were."""
    field = SORTS.get(sort, "cost_usd")
    good = [r for r in rows if isinstance(r, dict)]

    def order(row: dict[str, Any]) -> tuple[float, str]:
        value = row.get(field)
        number = float(value) if isinstance(value, int | float) else 0.0
        return (-number, str(sorted((row.get("group") or {}).items())))

    return sorted(good, key=order)[:TOP], len(good)


def routes(console: Console) -> list[BaseRoute]:
    """``/usage``."""

    async def page(request: Request) -> Response:
        params = {k: v for k, v in request.query_params.items() if isinstance(v, str)}
        form = read_form(request.query_params.getlist("group_by"), params, console.clock())
        fetched = None
        rows: list[dict[str, Any]] = []
        count = 0
        total: dict[str, Any] = {}
        if not form.problems:
            fetched = await console.fetch("GET", "/admin/v1/usage", query=form.query)
            if fetched.error is None and isinstance(fetched.body, dict):
                rows, count = top_rows(fetched.body.get("rows") or [], form.sort)
                found = fetched.body.get("total")
                total = found if isinstance(found, dict) else {}
        return console.render(
            request,
            "usage.html",
            title="Usage",
            form=form,
            groups=GROUPS,
            ranges=RANGES,
            fetched=fetched,
            no_store=fetched is not None and fetched.answer.status == 501,
            rows=rows,
            count=count,
            top=TOP,
            total=total,
        )

    return [Route("/usage", page)]
