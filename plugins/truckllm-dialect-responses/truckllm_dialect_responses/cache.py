"""Prompt-cache marks of a Responses API request, as the typed chat form's ``cache_control``.

The Responses API marks the end of a reusable prefix with ``prompt_cache_breakpoint``
(``{"mode": "explicit", "ttl"?: "30m" | "12h"}``) on ``input_text``, ``input_image`` and
``input_file`` parts; clients aiming at Anthropic may also send Anthropic's own ``cache_control``
(``{"type": "ephemeral", "ttl"?: "5m" | "1h"}``) on parts, message items and function tools.
Either becomes ``cache_control: {"type": "ephemeral"}`` on the typed part, message or tool, so that
providers with prompt caching (Anthropic breakpoints, Bedrock cache points) put a breakpoint
there. A breakpoint's ``ttl`` has no Anthropic equivalent: the provider's default lifetime
applies. Stored turns keep their items as received, so the marks of earlier turns come back with
``previous_response_id``.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, Raw, UnsetType

from .checks import OBJECT, STRING, join, need, one_of, opt

__all__ = ["BREAKPOINT_TTLS", "cache_mark", "check_breakpoint"]

BREAKPOINT_TTLS = ("30m", "12h")
"""The lifetimes a ``prompt_cache_breakpoint`` may ask for."""

_ANTHROPIC_TTLS = ("5m", "1h")
_EPHEMERAL = Raw(b'{"type":"ephemeral"}')


def check_breakpoint(part: dict[str, Any], at: str) -> None:
    """Validate a part's ``prompt_cache_breakpoint`` as OpenAI does (when it has one).

    :raises GatewayError: 400 naming ``...prompt_cache_breakpoint.mode`` or ``.ttl``.
    """
    point = opt(part, "prompt_cache_breakpoint", at, OBJECT)
    if point is None:
        return
    where = join(at, "prompt_cache_breakpoint")
    one_of(need(point, "mode", where, STRING), join(where, "mode"), ("explicit",))
    one_of(opt(point, "ttl", where, STRING), join(where, "ttl"), BREAKPOINT_TTLS)


def cache_mark(entry: object) -> Raw | UnsetType:
    """The typed form's ``cache_control`` for a part, message item or tool: ephemeral when it has
    an explicit ``prompt_cache_breakpoint`` or an ephemeral ``cache_control`` (whose ``ttl``, 5m or
    1h, is kept); ``UNSET`` otherwise."""
    if not isinstance(entry, dict):
        return UNSET
    own = entry.get("cache_control")
    if isinstance(own, dict) and own.get("type") == "ephemeral":
        ttl = own.get("ttl")
        if ttl in _ANTHROPIC_TTLS:
            return Raw(msgspec.json.encode({"type": "ephemeral", "ttl": ttl}))
        return _EPHEMERAL
    point = entry.get("prompt_cache_breakpoint")
    if isinstance(point, dict) and point.get("mode") == "explicit":
        return _EPHEMERAL
    return UNSET
