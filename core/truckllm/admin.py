"""The admin API under ``/admin/v1`` and ``/metrics``: JSON, behind the admin token.

Every answer is built from redacted views: no configured secret ever appears in one.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from loguru import logger
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from truckllm.asgi_util import ClientGone, read_body
from truckllm.auth import bearer, hash_key
from truckllm.config.edit import add_gateway_key, remove_gateway_key
from truckllm.config.loader import parse_config
from truckllm.errors import ConfigError, GatewayError
from truckllm.gateway import Gateway
from truckllm.localstate import StoreUnavailable
from truckllm.openai_api import OPENAI
from truckllm.plugins import list_plugins
from truckllm.redact import redacted_config
from truckllm.safejson import decode_json
from truckllm.secrets import enc_hook
from truckllm.store import UsageQuery

__all__ = ["JSON", "admin_routes", "error_response"]

_ENCODER = msgspec.json.Encoder(enc_hook=enc_hook)
MAX_CONFIG_BYTES = 1024 * 1024
"""The largest config text ``PUT /admin/v1/config`` and ``POST /admin/v1/config/validate`` accept (413)."""
MAX_KEY_REQUEST_BYTES = 64 * 1024
"""The largest ``POST /admin/v1/keys`` body (413)."""
Handler = Callable[[Request], Awaitable[Response]]


class JSON(Response):
    """A JSON response encoded with msgspec (secrets render as ``<secret>``)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Encode ``content``."""
        return _ENCODER.encode(content)


def error_response(exc: GatewayError) -> Response:
    """An OpenAI-shaped error response."""
    return Response(
        OPENAI.error_body(exc), status_code=exc.status, media_type="application/json", headers=exc.headers
    )


def _problems(exc: ConfigError) -> list[dict[str, Any]]:
    return [{"file": p.file, "line": p.line, "field": p.field, "message": p.message} for p in exc.problems]


def _mask_source(source: str) -> str:
    from truckllm.redact import _mask_url

    return _mask_url(source)


def admin_routes(gateway: Gateway) -> list[Route]:
    """The admin routes for ``gateway``."""

    def guarded(handler: Handler) -> Handler:
        async def wrapper(request: Request) -> Response:
            token = gateway.runtime.config.admin.token
            given = bearer(request.headers.get("authorization")) or ""
            if token is None or not token:
                return error_response(
                    GatewayError(
                        403,
                        "The admin API is disabled: set admin.token in the config.",
                        type="permission_error",
                    )
                )
            if not hmac.compare_digest(given.encode(), token.reveal().encode()):
                return error_response(GatewayError(401, "Invalid admin token.", code="invalid_api_key"))
            try:
                return await handler(request)
            except GatewayError as exc:
                return error_response(exc)
            except ClientGone:
                return Response(status_code=400)  # nobody is left to read it

        return wrapper

    def audit(request: Request, action: str, **details: Any) -> None:
        client = request.client.host if request.client else "?"
        logger.bind(audit=True).info("admin {} by {} {}", action, client, details)

    async def health(request: Request) -> Response:
        ok = not gateway.draining
        return JSON({"status": "ok" if ok else "draining"}, status_code=200 if ok else 503)

    async def ready(request: Request) -> Response:
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

    async def plugins(request: Request) -> Response:
        show_all = request.query_params.get("all") in ("1", "true", "yes")
        return JSON({"plugins": list_plugins(gateway.runtime.host, all=show_all)})

    async def get_config(request: Request) -> Response:
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
        return JSON({"version": rt.version, "source": _mask_source(rt.source), "config": config})

    async def config_text(request: Request) -> str:
        """The request's config text: at most :data:`MAX_CONFIG_BYTES` of UTF-8."""
        body = await read_body(
            request.scope, request.receive, MAX_CONFIG_BYTES, gateway.runtime.config.server.read_timeout
        )
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise GatewayError(400, "The config must be UTF-8 text (YAML or JSON).") from None

    async def check_off_loop(text: str, source: str) -> None:
        """Parse ``text`` in a worker thread: a huge or hostile body never stalls the event loop."""
        registry = gateway.runtime.host.registry()
        await asyncio.to_thread(parse_config, text, registry, source=source, env=gateway.env)

    async def validate(request: Request) -> Response:
        text = await config_text(request)
        try:
            await check_off_loop(text, "<request>")
        except ConfigError as exc:
            return JSON({"valid": False, "problems": _problems(exc)}, status_code=422)
        return JSON({"valid": True, "problems": []})

    async def reload(request: Request) -> Response:
        try:
            runtime = gateway.reload()
        except ConfigError as exc:
            audit(request, "reload refused", problems=len(exc.problems))
            return JSON({"reloaded": False, "problems": _problems(exc)}, status_code=422)
        audit(request, "reload", version=runtime.version)
        return JSON({"reloaded": True, "version": runtime.version})

    async def put_config(request: Request) -> Response:
        text = await config_text(request)
        persist = gateway.source.writable
        try:
            await check_off_loop(text, gateway.source.name)  # refused here: the loop never parsed it
            runtime = await gateway.apply_off_loop(text, persist=persist)
        except ConfigError as exc:
            audit(request, "config refused", problems=len(exc.problems))
            return JSON({"applied": False, "problems": _problems(exc)}, status_code=422)
        audit(request, "config applied", version=runtime.version, persisted=persist)
        return JSON({"applied": True, "persisted": persist, "version": runtime.version})

    def key_row(key: Any) -> dict[str, Any]:
        return {
            "name": key.name,
            "models": list(key.models) if key.models is not None else None,
            "rpm": key.rpm,
            "tpm": key.tpm,
            "budget": msgspec.to_builtins(key.budget) if key.budget else None,
            "expires": key.expires,
        }

    async def list_keys(request: Request) -> Response:
        keys = gateway.runtime.config.keys
        return JSON({"open": keys is None, "keys": [key_row(k) for k in keys or ()]})

    class NewKey(msgspec.Struct, forbid_unknown_fields=True):
        name: str
        models: list[str] | None = None
        rpm: int | None = None
        tpm: int | None = None
        budget: dict[str, Any] | None = None
        expires: str | None = None

    async def create_key(request: Request) -> Response:
        body = await read_body(
            request.scope, request.receive, MAX_KEY_REQUEST_BYTES, gateway.runtime.config.server.read_timeout
        )
        try:
            new = decode_json(body, NewKey)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise GatewayError(400, f"Invalid key request: {exc}") from None
        if not gateway.source.writable:
            raise GatewayError(
                409, "The config source is read-only: add keys to it instead.", code="read_only"
            )
        if any(k.name == new.name for k in gateway.runtime.config.keys or ()):
            raise GatewayError(409, f"A gateway key named {new.name!r} exists already.", code="duplicate")
        value = "tllm_" + secrets.token_urlsafe(32)
        entry = {
            "name": new.name,
            "hash": hash_key(value),
            "models": new.models,
            "rpm": new.rpm,
            "tpm": new.tpm,
            "budget": new.budget,
            "expires": new.expires,
        }
        text = add_gateway_key(str(gateway.runtime.extra["text"]), entry)
        try:
            gateway.apply(text)
        except ConfigError as exc:
            return JSON({"created": False, "problems": _problems(exc)}, status_code=422)
        audit(request, "key created", name=new.name)
        created = next(k for k in gateway.runtime.config.keys or () if k.name == new.name)
        return JSON({**key_row(created), "key": value, "note": "shown once: store it now"}, status_code=201)

    async def delete_key(request: Request) -> Response:
        name = request.path_params["name"]
        if not gateway.source.writable:
            raise GatewayError(
                409, "The config source is read-only: remove keys from it instead.", code="read_only"
            )
        text, found = remove_gateway_key(str(gateway.runtime.extra["text"]), name)
        if not found:
            raise GatewayError(404, f"No gateway key named {name!r}.", code="not_found")
        try:
            gateway.apply(text)
        except ConfigError as exc:
            return JSON({"deleted": False, "problems": _problems(exc)}, status_code=422)
        audit(request, "key revoked", name=name)
        return JSON({"deleted": True, "name": name})

    async def providers(request: Request) -> Response:
        rt = gateway.runtime
        now = gateway.clock()
        out = []
        for name, provider in rt.providers.items():
            keys = []
            for key in rt.config.providers[name].keys or ():
                state = gateway.health.key(name, key.name)
                keys.append(
                    {
                        "name": key.name,
                        "state": state.state(now),
                        "cooldown_remaining_s": round(max(0.0, state.cooldown_until - now), 3),
                        "cooldown_reason": state.cooldown_reason or None,
                        "ejected_remaining_s": round(max(0.0, state.ejected_until - now), 3),
                        "ejections": state.ejections,
                        "disabled": state.disabled or None,
                        "in_flight": state.in_flight,
                        "successes": state.successes,
                        "failures": state.failures,
                        "error_rate": round(state.failures / max(1, state.successes + state.failures), 4),
                        "requests_last_minute": state.requests.total(now),
                        "tokens_last_minute": state.tokens.total(now),
                        "limits": msgspec.to_builtins(state.limits) if state.limits else None,
                    }
                )
            out.append({"name": name, "type": provider.type, "base_url": provider.base_url, "keys": keys})
        deployments = []
        for alias, plan in rt.aliases.items():
            for cand in plan.candidates:
                stats = cand.stats
                deployments.append(
                    {
                        "alias": alias,
                        "deployment": cand.deployment.label,
                        "provider": cand.provider.name,
                        "model": cand.deployment.model,
                        "key": cand.key.name,
                        "in_flight": stats.in_flight,
                        "latency_ewma_ms": round(stats.latency_ewma * 1000, 3)
                        if stats.latency_ewma
                        else None,
                        "ttft_ewma_ms": round(stats.ttft_ewma * 1000, 3) if stats.ttft_ewma else None,
                        "successes": stats.successes,
                        "failures": stats.failures,
                    }
                )
        return JSON({"providers": out, "deployments": deployments})

    async def enable_key(request: Request) -> Response:
        """Put a provider key back in rotation here, and clear its shared cooldown mark in the store
        (else every process's cooldown sync would apply the mark again within a second).

        ``shared`` says what happened to the store's mark: ``cleared`` (or queued until the store's
        backend is back), ``failed`` (logged), ``unsupported`` (a store without ``clear_cooldown``:
        the mark stays until it ends) or ``no store``.
        """
        provider, key = request.path_params["provider"], request.path_params["key"]
        if (provider, key) not in gateway.health.keys:
            raise GatewayError(404, f"No key {key!r} of provider {provider!r}.", code="not_found")
        state = gateway.health.key(provider, key)

        def clear_local() -> None:
            state.enable(gateway.clock())

        clear_local()
        store, shared = gateway.store, "no store"
        if store is not None:
            clear = getattr(store, "clear_cooldown", None)
            shared = "unsupported"
            if clear is not None:
                try:
                    await clear(provider, key)
                    shared = "cleared"
                except Exception as exc:  # a store plugin's failure: the local enable stands
                    shared = "failed"
                    logger.bind(plugin="store").error(
                        "cannot clear the shared cooldown of {}/{}: {}", provider, key, type(exc).__name__
                    )
            else:
                logger.bind(plugin="store").warning(
                    "store {!r} has no clear_cooldown: the shared cooldown of {}/{} stays until it ends",
                    getattr(store, "name", "?"),
                    provider,
                    key,
                )
        clear_local()  # a cooldown sync that read the store before the clear may have applied it again
        audit(request, "enable key", provider=provider, key=key, shared=shared)
        return JSON({"enabled": True, "provider": provider, "key": key, "shared": shared})

    async def usage(request: Request) -> Response:
        if gateway.store is None:
            raise GatewayError(
                501, "No store plugin is configured: usage is not recorded.", type="server_error"
            )
        params = request.query_params
        group_by = tuple(g for g in (params.get("group_by") or "").split(",") if g)
        allowed = {"key", "alias", "provider", "provider_key", "day", "model"}
        bad = [g for g in group_by if g not in allowed]
        if bad:
            raise GatewayError(400, f"group_by accepts {sorted(allowed)}, not {bad}", param="group_by")

        def when(name: str) -> float | None:
            value = params.get(name)
            if value is None:
                return None
            try:
                return float(value)
            except ValueError:
                from datetime import datetime

                try:
                    return datetime.fromisoformat(value).timestamp()
                except ValueError:
                    raise GatewayError(400, f"{name} must be unix seconds or ISO 8601", param=name) from None

        query = UsageQuery(
            group_by=group_by,  # type: ignore[arg-type]
            since=when("since"),
            until=when("until"),
            key=params.get("key"),
            alias=params.get("alias"),
            provider=params.get("provider"),
        )
        try:
            report = await gateway.store.usage(query)
        except StoreUnavailable as exc:
            raise GatewayError(
                503, f"Usage is unavailable: {exc}", type="server_error", headers={"retry-after": "1"}
            ) from None
        return JSON(msgspec.to_builtins(report))

    async def metrics(request: Request) -> Response:
        parts: list[bytes] = []
        host = gateway.runtime.host
        for impl in reversed(host.pm.hook.render_metrics.get_hookimpls()):
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

    base = "/admin/v1"
    return [
        Route(f"{base}/health", health, methods=["GET"]),
        Route(f"{base}/ready", ready, methods=["GET"]),
        Route(f"{base}/plugins", guarded(plugins), methods=["GET"]),
        Route(f"{base}/config", guarded(get_config), methods=["GET"]),
        Route(f"{base}/config", guarded(put_config), methods=["PUT"]),
        Route(f"{base}/config/validate", guarded(validate), methods=["POST"]),
        Route(f"{base}/reload", guarded(reload), methods=["POST"]),
        Route(f"{base}/providers", guarded(providers), methods=["GET"]),
        Route(f"{base}/providers/{{provider}}/keys/{{key}}/enable", guarded(enable_key), methods=["POST"]),
        Route(f"{base}/usage", guarded(usage), methods=["GET"]),
        Route(f"{base}/keys", guarded(list_keys), methods=["GET"]),
        Route(f"{base}/keys", guarded(create_key), methods=["POST"]),
        Route(f"{base}/keys/{{name}}", guarded(delete_key), methods=["DELETE"]),
        Route("/metrics", guarded(metrics), methods=["GET"]),
    ]
