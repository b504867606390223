"""The cache's key: a canonical, deterministic serialisation of a request, hashed.

Two requests get the same key exactly when they ask the same thing of the same alias in the same
dialect and form: the body's JSON with object keys sorted, numbers normalised (``1.0`` is ``1``,
``-0.0`` is ``0``), no insignificant whitespace, and without the members in :data:`EXCLUDED`
(they do not change the answer). The form (whole, or a stream with or without its usage chunk)
is part of the key: a stored whole answer is never replayed as a stream, nor the reverse.
"""

from __future__ import annotations

import hashlib
import json
from urllib.parse import quote

import msgspec

from truckllm.types import ChatRequest

__all__ = ["EXCLUDED", "canonical", "entry_name"]

EXCLUDED = frozenset(
    {"stream", "stream_options", "user", "metadata", "safety_identifier", "prompt_cache_key"}
)
"""Top-level members left out of the key: ``stream`` and ``stream_options`` (the form is keyed
from the decoded request instead), ``user``, ``metadata``, ``safety_identifier`` (who asks, not
what) and ``prompt_cache_key`` (a routing hint for the provider's own cache)."""


def _normal(value: object) -> object:
    """``value`` with every float that is a whole number made an int, recursively."""
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        return value
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def canonical(request: ChatRequest) -> bytes | None:
    """The request's canonical bytes (``None`` for a body that is not a JSON object)."""
    try:
        body = msgspec.json.decode(request.body)
    except msgspec.DecodeError:
        return None
    if not isinstance(body, dict):
        return None
    kept = {k: _normal(v) for k, v in body.items() if k not in EXCLUDED}
    envelope = {
        "body": kept,
        "dialect": request.dialect,
        "endpoint": request.endpoint,
        "form": ("stream+usage" if request.include_usage else "stream") if request.stream else "whole",
        "model": request.model,
    }
    text = json.dumps(envelope, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode()


def entry_name(request: ChatRequest, key: str | None, *, shared: bool = False) -> str | None:
    """The storage name of the request's answer for gateway key ``key`` (``None``: not cacheable).

    Names never spell another key's: the key name is quoted, ``-`` is the gateway without keys
    and ``*`` (which quoting never makes) the scope shared across keys.
    """
    text = canonical(request)
    if text is None:
        return None
    scope = "*" if shared else ("-" if key is None else "k" + quote(key, safe=""))
    return f"v1:{scope}:{hashlib.sha256(text).hexdigest()}"
