"""One page of a cursor list (``GET /v1/files``, ``GET /v1/batches``) in OpenAI's shape."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import invalid, shown

__all__ = ["page", "read_limit"]


def read_limit(query: Mapping[str, str], default: int, most: int) -> int:
    """The ``limit`` query parameter: 1 .. ``most``, ``default`` when absent.

    :raises GatewayError: 400 naming ``limit``.
    """
    raw = query.get("limit")
    if raw is None:
        return default
    try:
        limit = int(raw)
    except ValueError:
        raise invalid(f"Invalid 'limit': expected an integer, got '{shown(raw, 40)}'.", "limit") from None
    if not 1 <= limit <= most:
        raise invalid(f"Invalid 'limit': must be between 1 and {most}, got {limit}.", "limit")
    return limit


def page(rows: list[dict[str, Any]], query: Mapping[str, str], default: int, most: int) -> dict[str, Any]:
    """One page of ``rows`` (oldest first): ``order`` (``asc``/``desc``, default ``desc``), ``after``
    an id of the list (an unknown one: an empty page), ``limit``.

    :raises GatewayError: 400 naming ``limit`` or ``order``.
    """
    limit = read_limit(query, default, most)
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise invalid(f"Invalid 'order': expected 'asc' or 'desc', got '{shown(order, 40)}'.", "order")
    ordered = rows if order == "asc" else rows[::-1]
    after = query.get("after")
    if after is not None:
        ids = [row.get("id") for row in ordered]
        ordered = ordered[ids.index(after) + 1 :] if after in ids else []
    data = ordered[:limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0].get("id") if data else None,
        "last_id": data[-1].get("id") if data else None,
        "has_more": len(ordered) > limit,
    }
