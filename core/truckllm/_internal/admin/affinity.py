"""``GET /admin/v1/affinity``: affinity routing's settings, live pins per provider key, pin moves."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from truckllm._internal.admin.responses import JSON
from truckllm._internal.gateway import Gateway

__all__ = ["affinity"]


async def affinity(gateway: Gateway, request: Request) -> Response:
    """``GET /admin/v1/affinity``: whether affinity routing is on and its settings (``ttl``,
    ``provider_ttl`` in seconds, ``max_skew``); ``live``: the live pins per alias and provider key
    (this process's view: the pins it wrote or read, until their TTL ends); ``moves``: pin writes
    since start by reason (``new``, ``moved``, ``failover``, ``refresh``, ``capped``). Key names
    only, never a value; conversations are not named (their pins are hashes)."""
    settings = gateway.runtime.config.affinity
    snapshot = gateway.affinity.snapshot()
    return JSON(
        {
            "enabled": settings.enabled,
            "ttl": float(settings.ttl),
            "provider_ttl": {name: float(ttl) for name, ttl in settings.provider_ttl.items()},
            "max_skew": settings.max_skew,
            "live": [
                {"alias": row.alias, "provider": row.provider, "key": row.key, "pins": row.pins}
                for row in snapshot.live
            ],
            "moves": dict(snapshot.moves),
        }
    )
