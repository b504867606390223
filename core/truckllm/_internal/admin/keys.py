"""``/admin/v1/keys``: list, create and revoke gateway keys (the ``keys:`` section of the config).

A new key's value is shown once; the config keeps only its hash, written into the config text
with the user's comments and layout kept (:mod:`truckllm._internal.config.edit`).
"""

from __future__ import annotations

import secrets
from typing import Any

import msgspec
from loguru import logger
from starlette.requests import Request
from starlette.responses import Response

from truckllm._internal.admin.responses import JSON, audit, problems
from truckllm._internal.asgi_util import read_body
from truckllm._internal.auth import hash_key
from truckllm._internal.config.edit import add_gateway_key, remove_gateway_key
from truckllm._internal.config.schema import GatewayKeyConfig
from truckllm._internal.gateway import Gateway
from truckllm._internal.safejson import decode_json
from truckllm.errors import ConfigError, GatewayError

__all__ = ["MAX_KEY_REQUEST_BYTES", "NOW_CLOSED", "NewKey", "create_key", "delete_key", "list_keys"]

MAX_KEY_REQUEST_BYTES = 64 * 1024
"""The largest ``POST /admin/v1/keys`` body (413)."""
NOW_CLOSED = (
    "this is the first gateway key: the gateway accepted any bearer token before, "
    "and now every request needs a gateway key"
)
"""The warning of the first key made on an open gateway (one with no ``keys:`` section)."""


class NewKey(msgspec.Struct, forbid_unknown_fields=True):
    """The body of ``POST /admin/v1/keys``."""

    name: str
    models: list[str] | None = None
    rpm: int | None = None
    tpm: int | None = None
    budget: dict[str, Any] | None = None
    expires: str | None = None
    team: str | None = None
    tags: list[str] | None = None
    user_budget: dict[str, Any] | None = None
    log_bodies: bool | None = None


def _row(key: GatewayKeyConfig) -> dict[str, Any]:
    """What the admin API shows of a gateway key (never its value or hash)."""
    return {
        "name": key.name,
        "models": list(key.models) if key.models is not None else None,
        "rpm": key.rpm,
        "tpm": key.tpm,
        "budget": msgspec.to_builtins(key.budget) if key.budget else None,
        "expires": key.expires,
        "team": key.team,
        "tags": list(key.tags),
        "user_budget": msgspec.to_builtins(key.user_budget) if key.user_budget else None,
        "log_bodies": key.log_bodies,
    }


def _writable(gateway: Gateway, instead: str) -> None:
    if not gateway.source.writable:
        raise GatewayError(409, f"The config source is read-only: {instead}.", code="read_only")


async def list_keys(gateway: Gateway, request: Request) -> Response:
    """``GET /admin/v1/keys``: whether the gateway is open (no ``keys:``), and each key's row."""
    keys = gateway.runtime.config.keys
    return JSON({"open": keys is None, "keys": [_row(k) for k in keys or ()]})


async def create_key(gateway: Gateway, request: Request) -> Response:
    """``POST /admin/v1/keys``: mint a ``tllm_`` key, store its hash in the config, show it once.

    The first key of an open gateway closes it: the answer says so (``open_before`` and a
    ``warning``) and a WARNING is logged.
    """
    body = await read_body(
        request.scope, request.receive, MAX_KEY_REQUEST_BYTES, gateway.runtime.config.server.read_timeout
    )
    try:
        new = decode_json(body, NewKey)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise GatewayError(400, f"Invalid key request: {exc}") from None
    _writable(gateway, "add keys to it instead")
    open_before = gateway.runtime.config.keys is None
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
        "team": new.team,
        "tags": new.tags or None,
        "user_budget": new.user_budget,
        "log_bodies": new.log_bodies or None,
    }
    text = add_gateway_key(str(gateway.runtime.extra["text"]), entry)
    try:
        gateway.apply(text)
    except ConfigError as exc:
        return JSON({"created": False, "problems": problems(exc)}, status_code=422)
    audit(request, "key created", name=new.name)
    created = next(k for k in gateway.runtime.config.keys or () if k.name == new.name)
    answer: dict[str, Any] = {
        **_row(created),
        "key": value,
        "note": "shown once: store it now",
        "open_before": open_before,
        "now_requires_keys": True,
    }
    if open_before:
        answer["warning"] = NOW_CLOSED
        logger.warning("gateway key {!r} created: {}", new.name, NOW_CLOSED)
    return JSON(answer, status_code=201)


async def delete_key(gateway: Gateway, request: Request) -> Response:
    """``DELETE /admin/v1/keys/{name}``: revoke a gateway key (removed from the config)."""
    name = request.path_params["name"]
    _writable(gateway, "remove keys from it instead")
    text, found = remove_gateway_key(str(gateway.runtime.extra["text"]), name)
    if not found:
        raise GatewayError(404, f"No gateway key named {name!r}.", code="not_found")
    try:
        gateway.apply(text)
    except ConfigError as exc:
        return JSON({"deleted": False, "problems": problems(exc)}, status_code=422)
    audit(request, "key revoked", name=name)
    return JSON({"deleted": True, "name": name})
