"""``/providers``: every provider key's live state, use against its limits, latency and error
ratio (``/admin/v1/providers``), with Enable / Disable buttons (Post/Redirect/Get)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from truckllm_console.console import Console

__all__ = ["CREDENTIALS", "STATES", "key_rows", "routes"]

STATES: dict[str, str] = {
    "ok": "healthy",
    "cooldown": "cooling down",
    "ejected": "ejected",
    "half_open": "half-open (probing)",
    "recovering": "recovering (slow start)",
    "disabled": "disabled",
    "credential": "waiting for its credential",
}
"""A key's state → its words on the page."""

CREDENTIALS: dict[str, str] = {
    "waiting": "credential: the first fetch has not succeeded",
    "refused": "credential refused by the provider: fetching a fresh one",
    "expired": "credential expired: its refresh is failing",
}
"""A fetched credential's state (``/admin/v1/providers`` ``credential``) → its words, when it
keeps the key out (``ok`` and keys without a fetched credential say nothing)."""

NOTICES = {"enable": "enabled", "disable": "disabled"}
"""A key action → the word of its notice."""


def key_rows(body: dict[str, Any], now: float) -> list[dict[str, Any]]:
    """One row per provider key: its live state (with when a cooldown or an ejection ends, as
    unix time from ``now``), its deployments' mean latency, and its limits: those configured
    (``rpm``, ``tpm``, ``max_in_flight`` of ``/admin/v1/providers``), else those the provider
    reported."""
    latency: dict[tuple[str, str], list[float]] = {}
    for dep in body.get("deployments") or ():
        if isinstance(dep, dict) and isinstance(dep.get("latency_ewma_ms"), int | float):
            latency.setdefault((str(dep.get("provider")), str(dep.get("key"))), []).append(
                float(dep["latency_ewma_ms"])
            )
    rows = []
    for provider in body.get("providers") or ():
        for key in provider.get("keys") or ():
            reported = key.get("limits") or {}
            ident = (str(provider.get("name")), str(key.get("name")))
            seen = latency.get(ident, [])
            rows.append(
                {
                    **key,
                    "provider": provider.get("name"),
                    "provider_type": provider.get("type"),
                    "state_text": STATES.get(str(key.get("state")), str(key.get("state"))),
                    "limit_requests": key.get("rpm") or reported.get("limit_requests"),
                    "limit_tokens": key.get("tpm") or reported.get("limit_tokens"),
                    "latency_ms": sum(seen) / len(seen) if seen else None,
                    "is_disabled": key.get("state") == "disabled" or bool(key.get("disabled")),
                    "cooldown_until": _until(key.get("cooldown_remaining_s"), now),
                    "ejected_until": _until(key.get("ejected_remaining_s"), now),
                    "credential_text": CREDENTIALS.get(str(key.get("credential"))),
                }
            )
    return rows


def _until(remaining: Any, now: float) -> float | None:
    if isinstance(remaining, int | float) and remaining > 0:
        return now + float(remaining)
    return None


def routes(console: Console) -> list[BaseRoute]:
    """``/providers``, its fragment ``/fragments/providers`` and the key actions."""

    async def context() -> dict[str, Any]:
        fetched = await console.fetch("GET", "/admin/v1/providers")
        body = fetched.body if fetched.error is None and isinstance(fetched.body, dict) else {}
        return {
            "fetched": fetched,
            "rows": key_rows(body, console.clock()),
            "deployments": body.get("deployments") or [],
        }

    async def page(request: Request) -> Response:
        params = request.query_params
        notice = None
        if params.get("done") in NOTICES:
            notice = f"Key {params.get('provider')}/{params.get('key')} {NOTICES[params['done']]}."
        return console.render(
            request,
            "providers.html",
            title="Providers and keys",
            notice=notice,
            failure=params.get("failed"),
            **await context(),
        )

    async def fragment(request: Request) -> Response:
        return console.render(request, "_providers_table.html", **await context())

    async def action(request: Request) -> Response:
        if await console.form(request) is None:
            return console.forbidden(request)
        provider = request.path_params["provider"]
        key = request.path_params["key"]
        verb = request.path_params["verb"]
        if verb not in NOTICES:
            return console.render(
                request, "message.html", status_code=404, title="Not found", message="No such action."
            )
        done = await console.fetch(
            "POST", f"/admin/v1/providers/{quote(provider, safe='')}/keys/{quote(key, safe='')}/{verb}"
        )
        if done.error is not None:
            return console.redirect(
                "/providers", {"failed": f"Could not {verb} {provider}/{key}: {done.error}"}
            )
        return console.redirect("/providers", {"done": verb, "provider": provider, "key": key})

    return [
        Route("/providers", page),
        Route("/fragments/providers", fragment),
        Route("/providers/{provider}/keys/{key}/{verb}", action, methods=["POST"]),
    ]
