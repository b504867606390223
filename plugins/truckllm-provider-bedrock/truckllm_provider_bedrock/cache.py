"""Bedrock's ``cachePoint`` blocks for a request's prompt-cache marks: at most four per Converse
request, each right after the block built from a marked part (or after a marked tool).

The marks themselves are read by :mod:`truckllm.kit.cache_marks` (re-exported here).
"""

from __future__ import annotations

from typing import Any

from truckllm.kit.cache_marks import NO_MARKS, CacheMarks, cache_marks, typed_marks

__all__ = [
    "MAX_CACHE_POINTS",
    "NO_MARKS",
    "CacheMarks",
    "cache_marks",
    "cache_point",
    "keep_last_cache_points",
    "typed_marks",
]

_TTLS = frozenset({"5m", "1h"})


def cache_point(mark: dict[str, Any]) -> dict[str, Any]:
    """The Converse ``cachePoint`` block for a ``cache_control`` mark (its ``ttl`` kept when Bedrock
    knows it)."""
    point: dict[str, Any] = {"type": "default"}
    if mark.get("ttl") in _TTLS:
        point["ttl"] = mark["ttl"]
    return {"cachePoint": point}


MAX_CACHE_POINTS = 4
"""The most ``cachePoint`` blocks one Converse request may have (more is a 400)."""


def keep_last_cache_points(body: dict[str, Any], limit: int = MAX_CACHE_POINTS) -> int:
    """Remove all but the last ``limit`` ``cachePoint`` blocks of a Converse body (tools, then
    system, then messages: the prompt's order), and say how many were removed.

    A Responses API conversation keeps the breakpoints of every stored turn (OpenAI reads up to
    80); Bedrock refuses more than four, and the latest ones cache the longest prefix.
    """
    config = body.get("toolConfig")
    lists: list[Any] = [config.get("tools") if isinstance(config, dict) else None, body.get("system")]
    lists.extend(
        message.get("content") for message in body.get("messages") or () if isinstance(message, dict)
    )
    points = [
        (entries, block)
        for entries in lists
        if isinstance(entries, list)
        for block in entries
        if isinstance(block, dict) and "cachePoint" in block
    ]
    extra = points[: max(0, len(points) - limit)]
    gone = {id(block) for _, block in extra}
    for entries in {id(entries): entries for entries, _ in extra}.values():
        entries[:] = [block for block in entries if id(block) not in gone]
    return len(extra)
