"""``GET /v1/models`` and ``GET /v1/models/{id}``: the aliases, in OpenAI's model shape.

Apart from the OpenAI dialect (which the plugin manager loads as a default), so that the dialect
needs no runtime and the import graph has no circle (defaults → openai_api → runtime → plugins).
"""

from __future__ import annotations

from typing import Any

from truckllm._internal.runtime import Runtime

__all__ = ["list_models", "model_object"]


def model_object(rt: Runtime, alias: str) -> dict[str, Any]:
    """One alias in OpenAI's model shape."""
    return {
        "id": alias,
        "object": "model",
        "created": int(rt.loaded_at or 0),
        "owned_by": rt.aliases[alias].owned_by,
    }


def list_models(rt: Runtime, allowed: frozenset[str] | None) -> dict[str, Any]:
    """``GET /v1/models``: the aliases this key may use, in OpenAI's list shape."""
    names = [a for a in rt.aliases if allowed is None or a in allowed]
    return {"object": "list", "data": [model_object(rt, a) for a in names]}
