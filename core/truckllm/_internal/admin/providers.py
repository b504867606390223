"""``GET /admin/v1/providers`` and ``POST /admin/v1/providers/{provider}/keys/{key}/enable`` /
``.../disable``."""

from __future__ import annotations

from typing import Any

import msgspec
from loguru import logger
from starlette.requests import Request
from starlette.responses import Response

from truckllm._internal.admin.responses import JSON, audit
from truckllm._internal.gateway import Gateway
from truckllm._internal.health import KeyState
from truckllm.errors import GatewayError

__all__ = ["disable_key", "enable_key", "providers"]


def _credential(gateway: Gateway, provider: str, key: str, state: KeyState, now: float) -> str | None:
    """A fetched credential's state: ``ok``, ``waiting`` (its first refresh has not succeeded),
    ``refused`` (the provider refused it: a fresh one is being fetched) or ``expired`` (the
    refresh is failing); ``None`` for a key whose credential is its configured value."""
    if (provider, key) not in gateway.credentials.entries:
        return None
    if state.credential_until > now:
        return "ok"
    if state.credential_refused:
        return "refused"
    return "waiting" if state.credential_until == float("-inf") else "expired"


async def providers(gateway: Gateway, request: Request) -> Response:
    """``GET /admin/v1/providers``: each provider key's health and limits, each deployment's stats."""
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
                    "weight": key.weight,
                    "rpm": key.rpm,
                    "tpm": key.tpm,
                    "max_in_flight": key.max_in_flight,
                    "state": state.state(now),
                    "cooldown_remaining_s": round(max(0.0, state.cooldown_until - now), 3),
                    "cooldown_reason": state.cooldown_reason or None,
                    "ejected_remaining_s": round(max(0.0, state.ejected_until - now), 3),
                    "ejected_reason": (state.ejected_reason or None) if state.ejected_until > now else None,
                    "ejections": state.ejections,
                    "disabled": state.disabled or None,
                    "credential": _credential(gateway, name, key.name, state, now),
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
    deployments: list[dict[str, Any]] = []
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
                    "latency_ewma_ms": round(stats.latency_ewma * 1000, 3) if stats.latency_ewma else None,
                    "ttft_ewma_ms": round(stats.ttft_ewma * 1000, 3) if stats.ttft_ewma else None,
                    "successes": stats.successes,
                    "failures": stats.failures,
                }
            )
    return JSON({"providers": out, "deployments": deployments})


async def enable_key(gateway: Gateway, request: Request) -> Response:
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
    state.enable(gateway.clock())
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
    # a cooldown sync that read the store before the clear may have applied the mark again
    state.enable(gateway.clock())
    audit(request, "enable key", provider=provider, key=key, shared=shared)
    gateway.alerts.key_event(
        "key_enabled", provider, key, f"provider key {provider}/{key} put back in rotation by an operator"
    )
    return JSON({"enabled": True, "provider": provider, "key": key, "shared": shared})


async def disable_key(gateway: Gateway, request: Request) -> Response:
    """Take a provider key out of rotation here at once and, through a mark in the store, in
    every process sharing it (their cooldown sync applies it within a second), until an
    ``enable``. Requests in flight on the key finish.

    ``shared`` says what happened to the store's mark: ``marked``, ``failed`` (logged: only this
    process has the key out) or ``no store``.
    """
    provider, key = request.path_params["provider"], request.path_params["key"]
    if (provider, key) not in gateway.health.keys:
        raise GatewayError(404, f"No key {key!r} of provider {provider!r}.", code="not_found")
    gateway.disable_key(provider, key)
    shared = "no store"
    if gateway.store is not None:
        try:
            await gateway.share_disable(provider, key)
            shared = "marked"
        except Exception as exc:  # a store plugin's failure: the local disable stands
            shared = "failed"
            logger.bind(plugin="store").error(
                "cannot share the disable of {}/{}: {}", provider, key, type(exc).__name__
            )
    audit(request, "disable key", provider=provider, key=key, shared=shared)
    gateway.alerts.key_event(
        "key_disabled", provider, key, f"provider key {provider}/{key} disabled by an operator"
    )
    return JSON({"disabled": True, "provider": provider, "key": key, "shared": shared})
