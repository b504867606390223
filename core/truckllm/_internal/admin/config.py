"""``/admin/v1/config`` (GET, PUT), ``/admin/v1/config/validate`` and ``/admin/v1/reload``.

A config text sent in a request is read with a size limit and parsed in a worker thread, and its
problems name ``<request body>`` with the body's own line numbers (never the file on disk).
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from truckllm._internal.admin.responses import JSON, audit, problems
from truckllm._internal.asgi_util import read_body
from truckllm._internal.config.loader import parse_config
from truckllm._internal.gateway import Gateway
from truckllm._internal.redact import _mask_url, redacted_config
from truckllm.errors import ConfigError, GatewayError

__all__ = ["MAX_CONFIG_BYTES", "REQUEST_BODY", "get_config", "put_config", "reload", "validate"]

MAX_CONFIG_BYTES = 1024 * 1024
"""The largest config text ``PUT /admin/v1/config`` and ``POST /admin/v1/config/validate`` accept (413)."""
REQUEST_BODY = "<request body>"
"""The file name the problems of a config sent in a request carry."""


async def get_config(gateway: Gateway, request: Request) -> Response:
    """``GET /admin/v1/config``: the running config, every secret ``<secret>`` (known by type)."""
    rt = gateway.runtime
    types: dict[str, Any] = {}
    store_cls = rt.host.stores.get(str(rt.config.store.get("type", "memory")))
    store_options = getattr(store_cls, "Options", None)
    if store_options is not None:
        types["store"] = store_options
    for name, cls in rt.host.loggers.items():
        logger_options = getattr(cls, "Options", None)
        if logger_options is not None:
            types[f"logger:{name}"] = logger_options
    for name, provider in rt.config.providers.items():
        spec = rt.host.providers.get(provider.type)
        if spec is not None and spec.options is not None:
            types[f"provider:{name}"] = spec.options
    config = redacted_config(rt.config, types)
    return JSON({"version": rt.version, "source": _mask_url(rt.source), "config": config})


async def _config_text(gateway: Gateway, request: Request) -> str:
    """The request's config text: at most :data:`MAX_CONFIG_BYTES` of UTF-8."""
    body = await read_body(
        request.scope, request.receive, MAX_CONFIG_BYTES, gateway.runtime.config.server.read_timeout
    )
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise GatewayError(400, "The config must be UTF-8 text (YAML or JSON).") from None


async def _check_off_loop(gateway: Gateway, text: str) -> None:
    """Parse ``text`` in a worker thread: a huge or hostile body never stalls the event loop."""
    registry = gateway.runtime.host.registry()
    await asyncio.to_thread(parse_config, text, registry, source=REQUEST_BODY, env=gateway.env)


async def validate(gateway: Gateway, request: Request) -> Response:
    """``POST /admin/v1/config/validate``: every problem of the body's config, nothing applied."""
    text = await _config_text(gateway, request)
    try:
        await _check_off_loop(gateway, text)
    except ConfigError as exc:
        return JSON({"valid": False, "problems": problems(exc, REQUEST_BODY)}, status_code=422)
    return JSON({"valid": True, "problems": []})


async def reload(gateway: Gateway, request: Request) -> Response:
    """``POST /admin/v1/reload``: re-read the config source; an invalid one is refused (422)."""
    try:
        runtime = gateway.reload()
    except ConfigError as exc:
        audit(request, "reload refused", problems=len(exc.problems))
        return JSON({"reloaded": False, "problems": problems(exc)}, status_code=422)
    audit(request, "reload", version=runtime.version)
    return JSON({"reloaded": True, "version": runtime.version})


async def put_config(gateway: Gateway, request: Request) -> Response:
    """``PUT /admin/v1/config``: validate, apply and (when the source is writable) persist the body."""
    text = await _config_text(gateway, request)
    persist = gateway.source.writable
    try:
        await _check_off_loop(gateway, text)  # refused here: the loop never parsed it
        runtime = await gateway.apply_off_loop(text, persist=persist)
    except ConfigError as exc:
        audit(request, "config refused", problems=len(exc.problems))
        return JSON({"applied": False, "problems": problems(exc, REQUEST_BODY)}, status_code=422)
    audit(request, "config applied", version=runtime.version, persisted=persist)
    return JSON({"applied": True, "persisted": persist, "version": runtime.version})
