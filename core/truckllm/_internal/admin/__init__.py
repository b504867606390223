"""The admin API under ``/admin/v1`` and ``/metrics``: JSON, behind the admin token.

:data:`ROUTES` is the whole API, one row per URL and method, naming the handler that answers it;
each handler is a module-level ``async def handler(gateway, request)`` in the module of its part
(:mod:`.status`, :mod:`.config`, :mod:`.providers`, :mod:`.models`, :mod:`.usage`, :mod:`.keys`,
:mod:`.affinity`, :mod:`.requests`, :mod:`.teams`); :mod:`.inprocess` answers the same routes in process.
Every answer is built from redacted views: no configured secret ever appears in one.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from truckllm._internal.admin import affinity, config, keys, models, providers, requests, status, teams, usage
from truckllm._internal.admin.config import MAX_CONFIG_BYTES
from truckllm._internal.admin.keys import MAX_KEY_REQUEST_BYTES
from truckllm._internal.admin.responses import JSON, error_response
from truckllm._internal.asgi_util import ClientGone
from truckllm._internal.auth import bearer
from truckllm._internal.gateway import Gateway
from truckllm.errors import GatewayError

__all__ = [
    "JSON",
    "MAX_CONFIG_BYTES",
    "MAX_KEY_REQUEST_BYTES",
    "ROUTES",
    "AdminHandler",
    "AdminRoute",
    "admin_routes",
    "error_response",
]

AdminHandler = Callable[[Gateway, Request], Awaitable[Response]]
"""An admin handler: the gateway it serves and the request; raises :class:`GatewayError` to answer
an error."""


@dataclass(frozen=True)
class AdminRoute:
    """One row of the admin API: method, path, handler, and whether it needs the admin token."""

    method: str
    path: str
    handler: AdminHandler
    guarded: bool = True


V1 = "/admin/v1"
ROUTES: tuple[AdminRoute, ...] = (
    AdminRoute("GET", f"{V1}/health", status.health, guarded=False),
    AdminRoute("GET", f"{V1}/ready", status.ready, guarded=False),
    AdminRoute("GET", f"{V1}/status", status.status),
    AdminRoute("GET", f"{V1}/plugins", status.plugins),
    AdminRoute("GET", f"{V1}/config", config.get_config),
    AdminRoute("PUT", f"{V1}/config", config.put_config),
    AdminRoute("POST", f"{V1}/config/validate", config.validate),
    AdminRoute("POST", f"{V1}/reload", config.reload),
    AdminRoute("GET", f"{V1}/providers", providers.providers),
    AdminRoute("GET", f"{V1}/models", models.models),
    AdminRoute("POST", f"{V1}/providers/{{provider}}/keys/{{key}}/enable", providers.enable_key),
    AdminRoute("POST", f"{V1}/providers/{{provider}}/keys/{{key}}/disable", providers.disable_key),
    AdminRoute("GET", f"{V1}/usage", usage.usage),
    AdminRoute("GET", f"{V1}/teams", teams.teams),
    AdminRoute("GET", f"{V1}/affinity", affinity.affinity),
    AdminRoute("GET", f"{V1}/requests", requests.search_requests),
    AdminRoute("GET", f"{V1}/requests/stats", requests.stats),
    AdminRoute("GET", f"{V1}/requests/{{request_id}}", requests.get_request),
    AdminRoute("GET", f"{V1}/keys", keys.list_keys),
    AdminRoute("POST", f"{V1}/keys", keys.create_key),
    AdminRoute("DELETE", f"{V1}/keys/{{name}}", keys.delete_key),
    AdminRoute("GET", "/metrics", status.metrics),
)
"""Every admin URL and the handler that answers it, in routing order."""


def _endpoint(gateway: Gateway, route: AdminRoute) -> Callable[[Request], Awaitable[Response]]:
    """``route``'s handler bound to ``gateway``; behind the admin token when the route is guarded.

    A guarded route answers 403 while ``admin.token`` is unset or empty (the admin API is off),
    401 to a wrong token (compared in constant time), and turns a :class:`GatewayError` raised by
    its handler into an OpenAI-shaped error.
    """

    async def open_endpoint(request: Request) -> Response:
        return await route.handler(gateway, request)

    async def guarded_endpoint(request: Request) -> Response:
        token = gateway.runtime.config.admin.token
        given = bearer(request.headers.get("authorization")) or ""
        if token is None or not token:
            return error_response(
                GatewayError(
                    403, "The admin API is disabled: set admin.token in the config.", type="permission_error"
                )
            )
        if not hmac.compare_digest(given.encode(), token.reveal().encode()):
            return error_response(GatewayError(401, "Invalid admin token.", code="invalid_api_key"))
        try:
            return await route.handler(gateway, request)
        except GatewayError as exc:
            return error_response(exc)
        except ClientGone:
            return Response(status_code=400)  # nobody is left to read it

    return guarded_endpoint if route.guarded else open_endpoint


def admin_routes(gateway: Gateway) -> list[Route]:
    """The starlette routes of :data:`ROUTES` for ``gateway``."""
    return [Route(r.path, _endpoint(gateway, r), methods=[r.method]) for r in ROUTES]
