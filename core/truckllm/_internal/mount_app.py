"""Serving the routes plugins mount (``register_mounts``) behind the admin sign-in (or a
gateway key, for a mount with ``auth="gateway_key"``).

:class:`MountGate` sits in front of one mount's router. A request to a public path goes straight
through. Any other needs the admin token (``Authorization: Bearer``) or a signed-in session's
cookie; a signed-out browser asking for a page is redirected to the mount's sign-in page, anyone
else gets a 401. A request that may change something (not GET, HEAD or OPTIONS) is refused when
its ``Origin`` is another site's, and, when admitted by a cookie, unless it carries the session's
CSRF token (form field or header): the gate reads a form body itself (bounded) and hands the same
bytes on to the plugin. A ``gateway_key`` mount admits any valid gateway key instead, and puts
its :class:`~truckllm._internal.mounts.GatewayCaller` in the scope.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote, urlsplit

from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route, Router
from starlette.routing import Mount as StarletteMount
from starlette.types import Message, Receive, Scope, Send

from truckllm._internal.admin.responses import error_response
from truckllm._internal.asgi_util import read_body
from truckllm._internal.auth import bearer
from truckllm._internal.mounts import (
    ADMIN_SCOPE_KEY,
    CALLER_SCOPE_KEY,
    CSRF_FIELD,
    CSRF_HEADER,
    GatewayCaller,
    Mount,
)
from truckllm.errors import GatewayError

if TYPE_CHECKING:
    from truckllm._internal.gateway import Gateway

__all__ = ["MAX_FORM_BYTES", "MountGate", "mount_routes"]

MAX_FORM_BYTES = 1024 * 1024
"""The largest form body the gate reads to find a CSRF token (a config pasted to validate fits)."""

_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _cross_site(scope: Scope) -> bool:
    """Whether the browser says the request comes from another site: ``Sec-Fetch-Site`` when the
    browser sends it (it cannot be set by a page, and is right where ``Origin`` is ``null``, as
    on a form posted from a page served with ``Referrer-Policy: no-referrer``), else ``Origin``."""
    site = _header(scope, b"sec-fetch-site")
    if site is not None:
        return site not in ("same-origin", "none")
    origin = _header(scope, b"origin")
    if origin is None:
        return False
    host = _header(scope, b"host") or ""
    return origin == "null" or urlsplit(origin).netloc.lower() != host.lower()


class MountGate:
    """The ASGI app in front of one mount's routes (see the module docstring)."""

    def __init__(self, gateway: Gateway, mount: Mount, routes: Sequence[BaseRoute]) -> None:
        self.gateway = gateway
        self.mount = mount
        self.router = Router(routes=list(routes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Admit or refuse one request, then hand it to the mount's router."""
        if scope["type"] != "http":
            await self.router(scope, receive, send)
            return
        root = scope.get("root_path", "")
        relative = scope["path"][len(root) :] if scope["path"].startswith(root) else scope["path"]
        relative = relative or "/"
        method = scope["method"]
        if method not in _SAFE and _cross_site(scope):
            await self._refuse(scope, receive, send, 403, "Cross-site requests are refused.")
            return
        if self.mount.auth == "gateway_key":
            await self._by_gateway_key(scope, receive, send)
            return
        if self.mount.is_public(relative):
            scope[ADMIN_SCOPE_KEY] = None
            await self.router(scope, receive, send)
            return
        sessions = self.gateway.sessions
        if (
            self.gateway.runtime.config.admin.token is None
            or not self.gateway.runtime.config.admin.token.reveal()
        ):
            await self._refuse(
                scope, receive, send, 403, "The admin API is disabled: set admin.token in the config."
            )
            return
        token = bearer(_header(scope, b"authorization"))
        if token is not None:
            if not sessions.check_token(token):
                await self._refuse(scope, receive, send, 401, "Invalid admin token.")
                return
            scope[ADMIN_SCOPE_KEY] = "token"
            await self.router(scope, receive, send)
            return
        nonce = await sessions.session_of(scope)
        if nonce is None:
            await self._signed_out(scope, receive, send, relative)
            return
        if method not in _SAFE:
            body, ok = await self._csrf(scope, receive, sessions.csrf_for(nonce))
            if not ok:
                await self._refuse(scope, receive, send, 403, "Missing or wrong CSRF token: reload the page.")
                return
            receive = _replay(body, receive)
        scope[ADMIN_SCOPE_KEY] = "session"
        await self.router(scope, receive, send)

    async def _by_gateway_key(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Admit a request carrying a valid gateway key, as the request path does."""
        gateway = self.gateway
        if gateway.draining:
            error = GatewayError(
                503, "The gateway is shutting down.", type="server_error", headers={"retry-after": "1"}
            )
            await error_response(error)(scope, receive, send)
            return
        runtime = gateway.runtime
        try:
            key = runtime.keyring.authenticate(bearer(_header(scope, b"authorization")))
        except GatewayError as exc:
            await error_response(exc)(scope, receive, send)
            return
        if key is None:
            caller = GatewayCaller(name=None)
        else:
            scoped = runtime.keyring.scoped(key, runtime.config)
            caller = GatewayCaller(
                name=scoped.name, team=scoped.team, org=scoped.org, tags=key.config.tags, rpm=key.rpm
            )
        scope[ADMIN_SCOPE_KEY] = None
        scope[CALLER_SCOPE_KEY] = caller
        await self.router(scope, receive, send)

    async def _csrf(self, scope: Scope, receive: Receive, expected: str) -> tuple[bytes, bool]:
        """The body read (when it is a form) and whether the CSRF token in it or a header is right."""
        given = _header(scope, CSRF_HEADER.encode())
        body = b""
        kind = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
        if kind == "application/x-www-form-urlencoded":
            body = await read_body(
                scope, receive, MAX_FORM_BYTES, self.gateway.runtime.config.server.read_timeout
            )
            if given is None:
                values = parse_qs(body.decode("utf-8", "replace")).get(CSRF_FIELD)
                given = values[0] if values else None
        ok = bool(expected) and given is not None and hmac.compare_digest(given.encode(), expected.encode())
        return body, ok

    async def _signed_out(self, scope: Scope, receive: Receive, send: Send, relative: str) -> None:
        accept = _header(scope, b"accept") or ""
        if self.mount.login is not None and scope["method"] in ("GET", "HEAD") and "text/html" in accept:
            target = scope.get("root_path", "") + relative
            query = scope.get("query_string", b"").decode("latin-1")
            if query:
                target += "?" + query
            login = f"{self.mount.prefix}{self.mount.login}?next={quote(target, safe='')}"
            await RedirectResponse(login, status_code=303)(scope, receive, send)
            return
        await self._refuse(scope, receive, send, 401, "Sign in, or send the admin token.")

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
        code = {401: "invalid_api_key", 403: "permission_error"}.get(status)
        await error_response(GatewayError(status, message, code=code))(scope, receive, send)


class _ExactPrefix:
    """Serves a request for the prefix itself (``/mcp``) as the mount's ``/`` route, any method."""

    def __init__(self, gate: MountGate, prefix: str) -> None:
        self.gate = gate
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Hand the request to the gate as if it asked for ``<prefix>/``."""
        root = scope.get("root_path", "") + self.prefix
        await self.gate({**scope, "root_path": root, "path": root + "/"}, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` giving ``body`` once, then what the client sends next (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def mount_routes(gateway: Gateway) -> list[BaseRoute]:
    """The starlette routes of every registered mount: ``<prefix>`` redirects to ``<prefix>/``
    (a ``gateway_key`` mount's ``<prefix>`` is its ``/`` route, for every method)."""
    routes: list[BaseRoute] = []
    for mount in gateway.runtime.host.mounts.values():
        gate = MountGate(gateway, mount, mount.routes(gateway.view))
        if mount.auth == "gateway_key":  # an API's clients post to the prefix itself (``/mcp``)
            routes.append(Route(mount.prefix, _ExactPrefix(gate, mount.prefix)))
            routes.append(StarletteMount(mount.prefix, app=gate))
            continue

        async def to_slash(request: object, _prefix: str = mount.prefix) -> Response:
            return RedirectResponse(_prefix + "/", status_code=308)

        routes.append(Route(mount.prefix, to_slash, methods=["GET", "HEAD"]))
        routes.append(StarletteMount(mount.prefix, app=gate))
    return routes
