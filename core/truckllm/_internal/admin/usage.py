"""``GET /admin/v1/usage``: requests, errors, tokens and cost from the store, grouped."""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from truckllm._internal.admin.params import when
from truckllm._internal.admin.responses import JSON
from truckllm._internal.gateway import Gateway
from truckllm._internal.localstate import StoreUnavailable
from truckllm._internal.store import UsageQuery
from truckllm.errors import GatewayError

__all__ = ["GROUPS", "usage"]

GROUPS = frozenset({"key", "alias", "provider", "provider_key", "day", "model", "team", "org", "user", "tag"})
"""What ``group_by`` accepts (comma-separated); by ``tag``, a request counts in each of its tags'
groups (``-``: none) and the total counts it once."""


async def usage(gateway: Gateway, request: Request) -> Response:
    """``GET /admin/v1/usage?group_by=&since=&until=&key=&alias=&provider=`` (501 without a store)."""
    if gateway.store is None:
        raise GatewayError(501, "No store plugin is configured: usage is not recorded.", type="server_error")
    params = request.query_params
    group_by = tuple(g for g in (params.get("group_by") or "").split(",") if g)
    bad = [g for g in group_by if g not in GROUPS]
    if bad:
        raise GatewayError(400, f"group_by accepts {sorted(GROUPS)}, not {bad}", param="group_by")
    query = UsageQuery(
        group_by=group_by,  # type: ignore[arg-type]
        since=when(params, "since"),
        until=when(params, "until"),
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
