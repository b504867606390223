"""``GET /admin/v1/health``, ``/admin/v1/ready``, ``/admin/v1/plugins`` and ``/metrics``."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from loguru import logger
from starlette.requests import Request
from starlette.responses import Response

from truckllm._internal.admin.responses import JSON
from truckllm._internal.gateway import Gateway
from truckllm._internal.plugins import list_plugins
from truckllm.errors import GatewayError

__all__ = ["METRICS_OFF", "health", "metrics", "plugins", "ready", "status"]

METRICS_OFF = (
    "No metrics plugin is configured: add `loggers: [prometheus]` to the config "
    "(package truckllm-logger-prometheus) to serve /metrics."
)
"""The 404 message of ``GET /metrics`` when no plugin renders metrics."""


async def health(gateway: Gateway, request: Request) -> Response:
    """``GET /admin/v1/health`` (no token): 200 while serving, 503 while draining."""
    ok = not gateway.draining
    return JSON({"status": "ok" if ok else "draining"}, status_code=200 if ok else 503)


async def status(gateway: Gateway, request: Request) -> Response:
    """``GET /admin/v1/status``: the gateway's live state (the ``GatewaySnapshot`` plugins see:
    config version, in flight, every provider key's state, the background queue, plugin
    errors, reloads, the loggers' figures, affinity pins), and the wall-clock time it was taken."""
    snapshot = gateway.view.snapshot()
    return JSON({"time": gateway.wall_clock(), **msgspec.to_builtins(snapshot)})


async def ready(gateway: Gateway, request: Request) -> Response:
    """``GET /admin/v1/ready`` (no token): started, not draining, the store reachable; and the
    plugins that failed to load."""
    store: dict[str, Any] = {"ok": True, "type": None}
    if gateway.store is not None:
        try:
            store = {"type": gateway.store.name, **(await gateway.store.ready())}
        except Exception as exc:
            store = {
                "ok": False,
                "type": getattr(gateway.store, "name", "?"),
                "error": type(exc).__name__,
            }
    ok = gateway.started and not gateway.draining and bool(store.get("ok", True))
    body = {
        "ready": ok,
        "config_version": gateway.runtime.version,
        "plugins_failed": [f.name for f in gateway.runtime.host.failures],
        "store": store,
    }
    return JSON(body, status_code=200 if ok else 503)


async def plugins(gateway: Gateway, request: Request) -> Response:
    """``GET /admin/v1/plugins[?all=1]``: the list ``truckllm plugins`` prints, and the
    ``plugins.allow`` in force (null: not set). Each installed file is hashed again, in a worker
    thread (not on the event loop)."""
    show_all = request.query_params.get("all") in ("1", "true", "yes")
    host = gateway.runtime.host
    rows = await asyncio.to_thread(list_plugins, host, show_all)
    allow = list(host.allow.text) if host.allow is not None else None
    return JSON({"allow": allow, "plugins": rows})


async def metrics(gateway: Gateway, request: Request) -> Response:
    """``GET /metrics``: every metrics plugin's text, one after the other; a plugin that raises is
    logged, counted and left out. 404 saying how to enable metrics when no plugin renders them."""
    parts: list[bytes] = []
    host = gateway.runtime.host
    impls = host.pm.hook.render_metrics.get_hookimpls()
    if not impls:
        raise GatewayError(404, METRICS_OFF, code="not_found")
    for impl in reversed(impls):
        try:
            result = impl.function()
        except Exception as exc:  # one broken metrics plugin must not hide the others
            name = host.pm.get_name(impl.plugin) or "?"
            gateway.background.plugin_errors[(name, "render_metrics")] += 1
            logger.bind(plugin=name).opt(exception=exc).error("plugin {} failed in render_metrics", name)
            continue
        if isinstance(result, bytes) and result:
            parts.append(result)
    return Response(b"".join(parts), media_type="text/plain; version=0.0.4; charset=utf-8")
