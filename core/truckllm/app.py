"""The ASGI application: OpenAI-compatible routes, admin API, lifespan.

``create_app`` builds a starlette app around one :class:`~truckllm.gateway.Gateway`; the
gateway is opened in the lifespan and drained when the server stops.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from truckllm.admin import JSON, admin_routes, error_response
from truckllm.auth import bearer
from truckllm.endpoint import ApiEndpoint
from truckllm.errors import GatewayError
from truckllm.gateway import Gateway
from truckllm.openai_api import list_models, model_object
from truckllm.sdnotify import notify

__all__ = ["create_app"]


def create_app(gateway: Gateway) -> FastRoutes:
    """The ASGI app serving ``gateway``."""

    async def models(request: Request) -> Response:
        try:
            key = gateway.runtime.keyring.authenticate(bearer(request.headers.get("authorization")))
        except GatewayError as exc:
            return error_response(exc)
        return JSON(list_models(gateway.runtime, key.models if key else None))

    async def model(request: Request) -> Response:
        rt = gateway.runtime
        try:
            key = rt.keyring.authenticate(bearer(request.headers.get("authorization")))
            name = request.path_params["model"]
            if name not in rt.aliases or (
                key is not None and key.models is not None and name not in key.models
            ):
                raise GatewayError(
                    404,
                    f"The model '{name}' does not exist or you do not have access to it.",
                    code="model_not_found",
                    param="model",
                )
        except GatewayError as exc:
            return error_response(exc)
        return JSON(model_object(rt, name))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = {
            404: f"Unknown path: {request.url.path}",
            405: f"Method {request.method} not allowed here.",
        }
        return error_response(
            GatewayError(
                exc.status_code,
                message.get(exc.status_code, str(exc.detail)),
                code="not_found" if exc.status_code == 404 else None,
            )
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        notify(f"READY=1\nSTATUS=serving config version {gateway.runtime.version}")
        try:
            yield
        finally:
            notify("STOPPING=1")
            await gateway.stop()

    dialect_routes = [
        Route(route.path, ApiEndpoint(gateway, dialect, route), methods=list(route.methods))
        for dialect in gateway.runtime.host.dialects.values()
        for route in dialect.routes
    ]
    routes = [
        *dialect_routes,
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/models/{model:path}", model, methods=["GET"]),
        *admin_routes(gateway),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error})
    app.state.gateway = gateway
    return FastRoutes(app, dialect_routes)


class FastRoutes:
    """The request-path routes without a fixed path parameter, dispatched by a dict lookup.

    Everything else (parametrised routes, admin, lifespan) goes through the starlette app. The
    request-path endpoints answer their own errors, so they need none of starlette's middleware.
    """

    def __init__(self, app: Starlette, routes: list[Route]) -> None:
        self.app = app
        self.state = app.state
        self.exact: dict[str, tuple[frozenset[str], ASGIApp]] = {}
        for route in routes:
            if "{" not in route.path and route.methods:
                self.exact[route.path] = (frozenset(route.methods), route.app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Dispatch one ASGI call."""
        if scope["type"] == "http":
            found = self.exact.get(scope["path"])
            if found is not None and scope["method"] in found[0]:
                await found[1](scope, receive, send)
                return
        await self.app(scope, receive, send)
