"""Namespaced names: ``<server>__<name>`` for the tools and prompts of every upstream server.

MCP tool names are 1 to 128 characters of ``A-Z a-z 0-9 _ - .``. A server's name holds no
``_`` (:data:`truckllm_mcp.options.SERVER_NAME`), so a namespaced name splits at its first
``__`` into exactly the server and the upstream's own name. An upstream name that breaks the
rules, or that would make the namespaced name too long, is left out (and counted).
"""

from __future__ import annotations

import re

__all__ = ["MAX_NAME", "SEPARATOR", "namespaced", "split"]

SEPARATOR = "__"
"""Between the server's name and the upstream's own name."""

MAX_NAME = 128
"""The longest tool name MCP allows."""

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


def namespaced(server: str, name: str) -> str | None:
    """``<server>__<name>``, or ``None`` when ``name`` is not a valid MCP name or the result would
    be longer than :data:`MAX_NAME`."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        return None
    full = f"{server}{SEPARATOR}{name}"
    return full if len(full) <= MAX_NAME else None


def split(full: str) -> tuple[str, str] | None:
    """``(server, name)`` of a namespaced name, or ``None`` when it is not one."""
    server, sep, name = full.partition(SEPARATOR)
    if not sep or not server or not name:
        return None
    return server, name
