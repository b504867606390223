"""Query parameters the admin API reads the same way on every endpoint."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from starlette.datastructures import QueryParams

from truckllm.errors import GatewayError

__all__ = ["when"]


def when(params: QueryParams, name: str) -> float | None:
    """The ``since``/``until`` parameter as unix seconds: given so (finite), or as ISO 8601
    (without a zone: UTC)."""
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise GatewayError(400, f"{name} must be unix seconds or ISO 8601", param=name) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        seconds = parsed.timestamp()
    if not math.isfinite(seconds) or not 0 <= seconds < 1e11:
        raise GatewayError(400, f"{name} must be a time between 1970 and 5000", param=name)
    return seconds
