"""The ASGI application: OpenAI-compatible routes, admin API, lifespan.

``create_app`` builds a starlette app around one :class:`~truckllm._internal.gateway.Gateway`; the
gateway is opened in the lifespan and drained when the server stops.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from itertools import chain
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from truckllm._internal.admin import JSON, admin_routes, error_response
from truckllm._internal.auth import bearer
from truckllm._internal.dialect import DialectRoute
from truckllm._internal.endpoint import ApiEndpoint
from truckllm._internal.gateway import Gateway
from truckllm._internal.local_endpoint import LocalEndpoint
from truckllm._internal.models_api import list_models, model_object
from truckllm._internal.mount_app import mount_routes
from truckllm._internal.openai_api import OPENAI
from truckllm._internal.scrub import cut
from truckllm._internal.sdnotify import notify
from truckllm.errors import GatewayError

__all__ = ["ErrorFormats", "FastRoutes", "create_app", "header_bytes"]


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
                    f"The model '{cut(name, 100)}' does not exist or you do not have access to it.",
                    code="model_not_found",
                    param="model",
                )
        except GatewayError as exc:
            return error_response(exc)
        return JSON(model_object(rt, name))

    formats = ErrorFormats(gateway.runtime.host.dialects.values())

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = {
            404: f"Unknown path: {request.url.path}",
            405: f"Method {request.method} not allowed here.",
        }
        error = GatewayError(
            exc.status_code,
            message.get(exc.status_code, str(exc.detail)),
            code="not_found" if exc.status_code == 404 else None,
        )
        return formats.response(request.url.path, error)

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
        Route(route.path, _endpoint(gateway, dialect, route), methods=list(route.methods))
        for dialect in gateway.runtime.host.dialects.values()
        for route in dialect.routes
    ]
    routes = [
        *dialect_routes,
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/models/{model:path}", model, methods=["GET"]),
        *admin_routes(gateway),
        *mount_routes(gateway),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error})
    # no 307 to a URL built from the Host header for a trailing slash: such a path is a 404
    app.router.redirect_slashes = False
    app.state.gateway = gateway
    return FastRoutes(app, dialect_routes, gateway, formats)


class ErrorFormats:
    """Which dialect's error format answers a path no route served (404, 405, 431).

    A path that is one of a dialect's routes, or one with a trailing slash added, is answered in
    that dialect's format (an Anthropic client gets an Anthropic error); anything else in OpenAI's.
    """

    def __init__(self, dialects: Iterable[Any]) -> None:
        self.routes = [
            (Route(route.path, endpoint=_nothing), dialect)
            for dialect in dialects
            for route in dialect.routes
        ]

    def dialect_for(self, path: str) -> Any:
        """The dialect whose route ``path`` names (trailing slashes ignored), else OpenAI's."""
        for candidate in (path, path.rstrip("/") or "/"):
            scope = {"type": "http", "path": candidate, "root_path": "", "method": "POST"}
            for route, dialect in self.routes:
                if route.matches(scope)[0] is not Match.NONE:
                    return dialect
        return OPENAI

    def response(self, path: str, error: GatewayError) -> Response:
        """``error`` as a response in the format of the dialect ``path`` belongs to."""
        body = self.dialect_for(path).error_body(error)
        return Response(body, status_code=error.status, media_type="application/json", headers=error.headers)


def _endpoint(gateway: Gateway, dialect: Any, route: DialectRoute) -> ApiEndpoint | LocalEndpoint:
    """The ASGI app serving one dialect route: the request path, or the dialect's own state."""
    if route.endpoint == "local":
        return LocalEndpoint(gateway, dialect, route)
    return ApiEndpoint(gateway, dialect, route)


async def _nothing(request: Request) -> Response:  # pragma: no cover - only matched, never called
    return Response(status_code=204)


def header_bytes(scope: Scope) -> int:
    """The size of a request's head as received: request target and ``name: value`` lines."""
    headers = scope["headers"]
    size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"") + 16
    return size + 4 * len(headers) + sum(map(len, chain.from_iterable(headers)))


class FastRoutes:
    """The request-path routes without a fixed path parameter, dispatched by a dict lookup.

    Everything else (parametrised routes, admin, lifespan) goes through the starlette app. The
    request-path endpoints answer their own errors, so they need none of starlette's middleware.
    """

    def __init__(self, app: Starlette, routes: list[Route], gateway: Gateway, formats: ErrorFormats) -> None:
        self.app = app
        self.state = app.state
        self.gateway = gateway
        self.formats = formats
        self.exact: dict[str, tuple[frozenset[str], ASGIApp]] = {}
        for route in routes:
            if "{" not in route.path and route.methods:
                self.exact[route.path] = (frozenset(route.methods), route.app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Dispatch one ASGI call; a request head over ``server.limits.max_header_bytes`` is a 431.

        The HTTP server bounds only a head that arrives in pieces; one that arrives whole in one
        write is measured here, before anything reads it.
        """
        if scope["type"] == "http":
            limit = self.gateway.runtime.config.server.limits.max_header_bytes
            if header_bytes(scope) > limit:
                await self._too_large(scope, receive, send, limit)
                return
            found = self.exact.get(scope["path"])
            if found is not None and scope["method"] in found[0]:
                await found[1](scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        error = GatewayError(
            431,
            f"Request header fields too large: the limit is {limit} bytes.",
            code="request_header_fields_too_large",
            headers={"connection": "close"},
        )
        await self.formats.response(scope["path"], error)(scope, receive, send)
