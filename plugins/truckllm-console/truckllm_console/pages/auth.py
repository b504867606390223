"""Sign-in with the admin token, sign-out; the ``next`` page is honoured only under the console."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from truckllm_console.console import Console

__all__ = ["routes", "safe_next"]


def safe_next(value: str | None, prefix: str) -> str:
    """``value`` when it is a path under ``prefix`` on this site, else the overview: never an
    open redirect (no scheme, no host, no ``//``, no backslash, no control character)."""
    home = prefix + "/"
    if not value or len(value) > 2000:
        return home
    if any(ord(c) < 0x20 or c == "\\" for c in value) or value.startswith("//"):
        return home
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return home
    if not (parts.path == prefix or parts.path.startswith(prefix + "/")):
        return home
    if "/.." in parts.path or parts.path.startswith(prefix + "/login"):
        return home
    return value


def routes(console: Console) -> list[BaseRoute]:
    """``/login`` (GET, POST) and ``/logout`` (POST)."""
    sessions = console.view.sessions

    async def login(request: Request) -> Response:
        target = safe_next(request.query_params.get("next"), console.prefix)
        if request.method == "GET":
            if await sessions.signed_in(request):
                return RedirectResponse(target, status_code=303)
            return console.render(request, "login.html", title="Sign in", next=target, failed=False)
        form = await request.form()
        token = form.get("token")
        target = safe_next(str(form.get("next") or ""), console.prefix)
        response = RedirectResponse(target, status_code=303)
        if isinstance(token, str) and token and await sessions.sign_in(request, response, token):
            return response
        return console.render(
            request, "login.html", status_code=401, title="Sign in", next=target, failed=True
        )

    async def logout(request: Request) -> Response:
        if await console.form(request) is None:
            return console.forbidden(request)
        response = RedirectResponse(console.url("/login"), status_code=303)
        await sessions.sign_out(request, response)
        return response

    return [
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
    ]
