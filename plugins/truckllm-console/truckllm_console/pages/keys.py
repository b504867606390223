"""``/keys``: gateway keys with their limits, budget and spend so far; create one (its value is
shown once, on the answer to the form, never stored or put in a URL); revoke one (confirmed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from truckllm_console.console import Console

__all__ = ["new_key_body", "period_start", "routes"]

PERIODS = ("day", "week", "month", "total")
"""A budget's periods (``budget.period``)."""


def period_start(period: str, now: float) -> float | None:
    """Where a budget period that contains ``now`` began (UTC); ``None`` for ``total``."""
    moment = datetime.fromtimestamp(now, UTC)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day.timestamp()
    if period == "week":
        return (day - timedelta(days=day.weekday())).timestamp()
    if period == "month":
        return day.replace(day=1).timestamp()
    return None


def new_key_body(form: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    """``POST /admin/v1/keys``'s body from the form, and the problems of its fields."""
    problems: list[str] = []
    body: dict[str, Any] = {"name": form.get("name", "").strip()}
    if not body["name"]:
        problems.append("A key needs a name.")
    models = [m.strip() for m in form.get("models", "").split(",") if m.strip()]
    if models:
        body["models"] = models
    for field in ("rpm", "tpm"):
        text = form.get(field, "").strip()
        if text:
            if text.isdigit() and int(text) > 0:
                body[field] = int(text)
            else:
                problems.append(f"{field} must be a whole number above 0.")
    usd = form.get("budget_usd", "").strip()
    if usd:
        try:
            amount = float(usd)
            if amount < 0:
                raise ValueError
            period = form.get("budget_period", "month")
            body["budget"] = {"usd": amount, "period": period if period in PERIODS else "month"}
        except ValueError:
            problems.append("The budget must be an amount of dollars, 0 or more.")
    expires = form.get("expires", "").strip()
    if expires:
        body["expires"] = expires
    return body, problems


def routes(console: Console) -> list[BaseRoute]:
    """``/keys``, ``/keys/new`` (POST), ``/keys/{name}/revoke`` (GET confirm, POST)."""

    async def spend(keys: list[dict[str, Any]]) -> tuple[dict[str, float], str | None]:
        """Each key's spend in its budget's period (this month without a budget)."""
        now = console.clock()
        periods = {str((k.get("budget") or {}).get("period", "month")) for k in keys}
        by_period: dict[str, dict[str, float]] = {}
        error = None
        for period in sorted(periods):
            query = {"group_by": "key"}
            since = period_start(period, now)
            if since is not None:
                query["since"] = f"{since:.0f}"
            fetched = await console.fetch("GET", "/admin/v1/usage", query=query)
            if fetched.error is not None or not isinstance(fetched.body, dict):
                error = fetched.error
                continue
            by_period[period] = {
                str(row.get("group", {}).get("key")): float(row.get("cost_usd", 0.0))
                for row in fetched.body.get("rows") or ()
                if isinstance(row, dict)
            }
        out = {}
        for k in keys:
            period = str((k.get("budget") or {}).get("period", "month"))
            if period in by_period:
                out[str(k.get("name"))] = by_period[period].get(str(k.get("name")), 0.0)
        return out, error

    async def listing(
        request: Request,
        *,
        status_code: int = 200,
        error: str | None = None,
        form: dict[str, str] | None = None,
    ) -> Response:
        fetched = await console.fetch("GET", "/admin/v1/keys")
        body = fetched.body if fetched.error is None and isinstance(fetched.body, dict) else {}
        keys = [k for k in body.get("keys") or () if isinstance(k, dict)]
        spent, usage_error = await spend(keys)
        revoked = request.query_params.get("revoked")
        return console.render(
            request,
            "keys.html",
            status_code=status_code,
            title="Gateway keys",
            fetched=fetched,
            open=body.get("open"),
            keys=keys,
            spent=spent,
            usage_error=usage_error,
            error=error,
            form=form or {},
            periods=PERIODS,
            notice=f"Key {revoked} revoked." if revoked else None,
            quote=quote,
        )

    async def page(request: Request) -> Response:
        return await listing(request)

    async def create(request: Request) -> Response:
        form = await console.form(request)
        if form is None:
            return console.forbidden(request)
        body, problems = new_key_body(form)
        if problems:
            return await listing(request, status_code=400, error=" ".join(problems), form=form)
        made = await console.fetch("POST", "/admin/v1/keys", body=body)
        if made.error is not None or not isinstance(made.body, dict) or "key" not in made.body:
            return await listing(
                request, status_code=400, error=made.error or "The key was not made.", form=form
            )
        # the value is rendered on this answer only: no redirect, no cookie, no URL carries it
        return console.render(
            request, "key_created.html", status_code=201, title="Key created", made=made.body
        )

    async def revoke(request: Request) -> Response:
        name = request.path_params["name"]
        if request.method == "GET":
            return console.render(request, "revoke.html", title=f"Revoke {name}", name=name, quote=quote)
        if await console.form(request) is None:
            return console.forbidden(request)
        done = await console.fetch("DELETE", f"/admin/v1/keys/{quote(name, safe='')}")
        if done.error is not None:
            return await listing(request, status_code=400, error=f"Could not revoke {name}: {done.error}")
        return console.redirect("/keys", {"revoked": name})

    return [
        Route("/keys", page),
        Route("/keys/new", create, methods=["POST"]),
        Route("/keys/{name}/revoke", revoke, methods=["GET", "POST"]),
    ]
