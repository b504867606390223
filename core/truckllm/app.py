"""The ASGI application: OpenAI-compatible routes, admin API, lifespan.

``create_app`` builds a starlette app around one :class:`~truckllm.gateway.Gateway`; the
gateway is opened in the lifespan and drained when the server stops.
"""

from __future__ import annotations

import contextlib
import hmac
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from truckllm.auth import bearer
from truckllm.dialect import OPENAI
from truckllm.errors import GatewayError
from truckllm.gateway import Gateway
from truckllm.openai_api import CompletionsEndpoint, list_models, model_object
from truckllm.plugins import list_plugins
from truckllm.secrets import enc_hook

__all__ = ["create_app"]

_ENCODER = msgspec.json.Encoder(enc_hook=enc_hook)


class JSON(Response):
    """A JSON response encoded with msgspec (secrets render as ``<secret>``)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Encode ``content``."""
        return _ENCODER.encode(content)


def _error(exc: GatewayError) -> Response:
    return Response(
        OPENAI.error_body(exc), status_code=exc.status, media_type="application/json", headers=exc.headers
    )


def create_app(gateway: Gateway) -> Starlette:
    """The ASGI app serving ``gateway``."""

    def client_key(request: Request) -> Any:
        return gateway.runtime.keyring.authenticate(bearer(request.headers.get("authorization")))

    def admin_guard(request: Request) -> None:
        token = gateway.runtime.config.admin.token
        given = bearer(request.headers.get("authorization")) or ""
        if token is None or not token:
            raise GatewayError(
                403, "The admin API is disabled: set admin.token in the config.", type="permission_error"
            )
        if not hmac.compare_digest(given.encode(), token.reveal().encode()):
            raise GatewayError(401, "Invalid admin token.", code="invalid_api_key")

    async def models(request: Request) -> Response:
        try:
            key = client_key(request)
        except GatewayError as exc:
            return _error(exc)
        return JSON(list_models(gateway.runtime, key.models if key else None))

    async def model(request: Request) -> Response:
        rt = gateway.runtime
        try:
            key = client_key(request)
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
            return _error(exc)
        return JSON(model_object(rt, name))

    async def health(request: Request) -> Response:
        return JSON(
            {"status": "ok" if not gateway.draining else "draining"},
            status_code=200 if not gateway.draining else 503,
        )

    async def ready(request: Request) -> Response:
        ok = gateway.started and not gateway.draining
        return JSON(
            {
                "ready": ok,
                "config_version": gateway.runtime.version,
                "plugins_failed": len(gateway.runtime.host.failures),
            },
            status_code=200 if ok else 503,
        )

    async def plugins(request: Request) -> Response:
        try:
            admin_guard(request)
        except GatewayError as exc:
            return _error(exc)
        show_all = request.query_params.get("all") in ("1", "true", "yes")
        return JSON({"plugins": list_plugins(gateway.runtime.host, all=show_all)})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    routes = [
        Route("/v1/chat/completions", CompletionsEndpoint(gateway, "chat"), methods=["POST"]),
        Route("/v1/completions", CompletionsEndpoint(gateway, "completions"), methods=["POST"]),
        Route("/v1/embeddings", CompletionsEndpoint(gateway, "embeddings"), methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/models/{model:path}", model, methods=["GET"]),
        Route("/admin/v1/health", health, methods=["GET"]),
        Route("/admin/v1/ready", ready, methods=["GET"]),
        Route("/admin/v1/plugins", plugins, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.gateway = gateway
    gateway.runtime.extra.setdefault("started_at", time.time())
    return app
