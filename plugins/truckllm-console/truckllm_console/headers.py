"""Security headers on every console response (pure ASGI middleware)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CSP", "SecurityHeaders"]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
"""The Content-Security-Policy: nothing but the console's own files; no inline script."""

_ALWAYS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
)


class SecurityHeaders:
    """Add :data:`CSP`, ``X-Frame-Options: DENY``, ``Referrer-Policy: no-referrer`` and ``nosniff``
    to every response, and ``Cache-Control: no-store`` to every one but static files (``/static/``,
    which may be cached for an hour). (Under ``no-referrer`` Chromium posts a form with
    ``Origin: null``; the kernel decides on ``Sec-Fetch-Site`` when the browser sends it.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve ``scope`` through the wrapped app, adding the headers to its response start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = "/static/" in scope.get("path", "")
        cache = b"private, max-age=3600" if static else b"no-store"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in {n for n, _ in _ALWAYS} and k.lower() != b"cache-control"
                ]
                headers.extend(_ALWAYS)
                headers.append((b"cache-control", cache))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
