"""``/plugins`` (``/admin/v1/plugins``) and ``/config``: the redacted running config, and a form
checking a new config text with ``/admin/v1/config/validate`` (nothing applied)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from truckllm_console.console import Console

__all__ = ["MAX_TEXT", "routes"]

MAX_TEXT = 1024 * 1024
"""The longest config text the form sends (the admin API's own limit)."""


def routes(console: Console) -> list[BaseRoute]:
    """``/plugins``, ``/config`` and ``/config/validate`` (POST)."""

    async def plugins(request: Request) -> Response:
        show_all = request.query_params.get("all") == "1"
        fetched = await console.fetch("GET", "/admin/v1/plugins", query={"all": "1"} if show_all else None)
        body = fetched.body if fetched.error is None and isinstance(fetched.body, dict) else {}
        return console.render(
            request,
            "plugins.html",
            title="Plugins",
            fetched=fetched,
            plugins=body.get("plugins") or [],
            show_all=show_all,
        )

    async def config_page(request: Request, **extra: Any) -> Response:
        fetched = await console.fetch("GET", "/admin/v1/config")
        body = fetched.body if fetched.error is None and isinstance(fetched.body, dict) else {}
        context: dict[str, Any] = {"checked": None, "text": "", "problems": [], "check_error": None}
        context.update(extra)
        return console.render(request, "config.html", title="Config", fetched=fetched, body=body, **context)

    async def config(request: Request) -> Response:
        return await config_page(request)

    async def validate(request: Request) -> Response:
        form = await console.form(request)
        if form is None:
            return console.forbidden(request)
        text = form.get("config", "")
        if len(text.encode()) > MAX_TEXT:
            return await config_page(request, check_error="The config is larger than 1 MiB.", text="")
        checked = await console.fetch("POST", "/admin/v1/config/validate", body=text)
        body = checked.body if isinstance(checked.body, dict) else {}
        problems = [p for p in body.get("problems") or () if isinstance(p, dict)]
        valid = checked.answer.ok and body.get("valid") is True
        return await config_page(
            request,
            checked=valid,
            text=text,
            problems=problems,
            check_error=None if valid or problems else checked.error,
        )

    return [
        Route("/plugins", plugins),
        Route("/config", config),
        Route("/config/validate", validate, methods=["POST"]),
    ]
