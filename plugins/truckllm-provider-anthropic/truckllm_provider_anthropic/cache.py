"""Anthropic's prompt-cache breakpoints: at most four per Messages API request.

The marks themselves are read by :mod:`truckllm.kit.cache_marks` (re-exported here).
"""

from __future__ import annotations

from typing import Any

from truckllm.kit.cache_marks import NO_MARKS, CacheMarks, cache_marks, typed_marks

__all__ = ["MAX_BREAKPOINTS", "NO_MARKS", "CacheMarks", "cache_marks", "keep_last_breakpoints", "typed_marks"]

MAX_BREAKPOINTS = 4
"""The most blocks with ``cache_control`` one Messages API request may have (more is a 400)."""


def _blocks(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The tools, system blocks and message blocks of a Messages API body, in prompt order."""
    found: list[dict[str, Any]] = []
    system = body.get("system")
    lists: list[Any] = [body.get("tools"), system if isinstance(system, list) else None]
    lists.extend(
        message.get("content") for message in body.get("messages") or () if isinstance(message, dict)
    )
    for entries in lists:
        found.extend(e for e in (entries if isinstance(entries, list) else ()) if isinstance(e, dict))
    return found


def keep_last_breakpoints(body: dict[str, Any], limit: int = MAX_BREAKPOINTS) -> int:
    """Remove ``cache_control`` from all but the last ``limit`` marked blocks of a Messages API
    body (tools, then system, then messages: the prompt's order), and say how many were removed.

    A Responses API conversation keeps the breakpoints of every stored turn (OpenAI reads up to
    80); Anthropic refuses more than four, and the latest ones cache the longest prefix.
    """
    marked = [block for block in _blocks(body) if "cache_control" in block]
    extra = marked[: max(0, len(marked) - limit)]
    for block in extra:
        del block["cache_control"]
    return len(extra)
