"""``/requests``: the request log, filtered by a GET form, newest first, one admin call per page
and an "Older" link carrying the cursor; ``/requests/{id}``: one request's team, end user, tags,
metadata, guardrail decisions, attempts, usage, cost and bodies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from truckllm_console.console import Console

__all__ = ["FILTERS", "LAST", "admin_query", "instant", "routes"]

FILTERS: dict[str, str] = {
    "key": "Gateway key",
    "alias": "Alias",
    "provider": "Provider",
    "model": "Model",
    "status": "Status",
    "dialect": "Dialect",
    "endpoint": "Endpoint",
    "request_id": "Request id",
    "team": "Team",
    "user": "End user",
    "tag": "Tag",
}
"""The text filters: query parameter → label (the admin API's names)."""

LAST: dict[str, tuple[str, float | None]] = {
    "": ("Any time", None),
    "15m": ("Last 15 minutes", 900.0),
    "1h": ("Last hour", 3600.0),
    "24h": ("Last 24 hours", 86400.0),
    "7d": ("Last 7 days", 7 * 86400.0),
    "30d": ("Last 30 days", 30 * 86400.0),
}
"""The time range choices."""

PAGE = 50
"""Records per page."""


def instant(text: str) -> float | None:
    """A ``datetime-local`` value (read as UTC) or ISO 8601 text as unix time."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def admin_query(params: dict[str, str], now: float) -> tuple[dict[str, str], list[str]]:
    """The admin API's query for the form's values, and the problems of values it cannot read."""
    query: dict[str, str] = {"limit": str(PAGE)}
    problems: list[str] = []
    for name in FILTERS:
        value = params.get(name, "").strip()
        if value:
            query[name] = value
    last = LAST.get(params.get("last", ""), LAST[""])[1]
    if last is not None:
        query["since"] = f"{now - last:.3f}"
    for name in ("since", "until"):
        text = params.get(name, "").strip()
        if text:
            moment = instant(text)
            if moment is None:
                problems.append(f"{name} is not a date and time: use YYYY-MM-DDTHH:MM (UTC)")
            else:
                query[name] = f"{moment:.3f}"
    if params.get("cursor"):
        query["cursor"] = params["cursor"]
    return query, problems


def routes(console: Console) -> list[BaseRoute]:
    """``/requests`` and ``/requests/{request_id}``."""

    async def page(request: Request) -> Response:
        params = {k: v for k, v in request.query_params.items() if isinstance(v, str)}
        query, problems = admin_query(params, console.clock())
        fetched = None
        records: list[Any] = []
        next_cursor = None
        if not problems:
            fetched = await console.fetch("GET", "/admin/v1/requests", query=query)
            if fetched.error is None and isinstance(fetched.body, dict):
                records = [r for r in fetched.body.get("data") or () if isinstance(r, dict)]
                next_cursor = fetched.body.get("next_cursor")
        kept = {k: v for k, v in params.items() if v and (k in FILTERS or k in ("last", "since", "until"))}
        older = (
            console.url("/requests") + "?" + urlencode({**kept, "cursor": next_cursor})
            if next_cursor
            else None
        )
        newest = console.url("/requests") + ("?" + urlencode(kept) if kept else "")
        return console.render(
            request,
            "requests.html",
            title="Request log",
            filters=FILTERS,
            last_choices=LAST,
            params=params,
            problems=problems,
            fetched=fetched,
            no_log=fetched is not None and fetched.code == "no_request_log",
            records=records,
            older=older,
            newest=newest if params.get("cursor") else None,
            quote=quote,
        )

    async def detail(request: Request) -> Response:
        request_id = request.path_params["request_id"]
        fetched = await console.fetch("GET", f"/admin/v1/requests/{quote(request_id, safe='')}")
        record = fetched.body if fetched.error is None and isinstance(fetched.body, dict) else None
        return console.render(
            request,
            "request.html",
            status_code=200 if record is not None else (404 if fetched.answer.status == 404 else 502),
            title=f"Request {request_id}",
            request_id=request_id,
            fetched=fetched,
            no_log=fetched.code == "no_request_log",
            record=record,
        )

    return [Route("/requests", page), Route("/requests/{request_id}", detail)]
