"""Tool calls through the gateway's guardrails (``GatewayView.guard``), as every ``/v1`` request.

A tool call's arguments are the ``input`` stage (every string in them, role ``tool``), checked
before the call goes upstream; its result is the ``output`` stage (each text block's text and
every string of ``structuredContent``), checked before the client reads it. The subject's
``endpoint`` is :data:`ENDPOINT`, its ``alias`` the namespaced tool name (``guardrails[].aliases``
and ``endpoints`` may name them), its ``tools`` that one name (a ``policy`` guardrail's
``allowed_tools`` applies to MCP calls too). A ``modify`` rewrites the strings in place (the
upstream gets the masked arguments; the client the masked result); a ``block`` refuses the call
with the JSON-RPC error :data:`GUARDRAIL_BLOCKED` saying which guardrail and why.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any, Literal

import mcp_types as types

from truckllm.kit.view import GatewayView
from truckllm.kit.web import GatewayCaller
from truckllm.types import GuardDecision, GuardSubject, GuardText

__all__ = ["ENDPOINT", "GUARDRAIL_BLOCKED", "guard_arguments", "guard_result"]

ENDPOINT = "mcp.tools/call"
"""The endpoint a tool call's guardrail subject names (as its record does)."""
GUARDRAIL_BLOCKED = -32040
"""The JSON-RPC error code of a tool call a guardrail blocked (its arguments or its result)."""
MAX_DEPTH = 64
"""Strings deeper than this in arguments or structured content are not read (the upstream
refuses deeper answers: ``upstream.MAX_DEPTH``)."""

Path = tuple[str | int, ...]


def _strings(node: Any, path: Path = ()) -> Iterator[tuple[Path, str]]:
    """Every string under ``node`` (objects' values and arrays' items), with its place."""
    if len(path) > MAX_DEPTH:
        return
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _strings(value, (*path, i))


def _put(node: Any, path: Path, value: str) -> Any:
    """``node`` with ``value`` at ``path`` (in place; the root replaced when ``path`` is empty)."""
    if not path:
        return value
    parent = node
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return node


def _subject(
    stage: Literal["input", "output"], caller: GatewayCaller | None, name: str, texts: list[str]
) -> GuardSubject:
    return GuardSubject(
        stage=stage,
        texts=tuple(GuardText(role="tool", text=text) for text in texts),
        tools=(name,),
        alias=name,
        gateway_key=caller.name if caller is not None else None,
        dialect="mcp",
        endpoint=ENDPOINT,
        estimated_tokens=max(1, sum(len(text) for text in texts) // 4) if stage == "input" else 0,
    )


async def guard_arguments(
    view: GatewayView, caller: GatewayCaller | None, name: str, arguments: dict[str, Any] | None
) -> tuple[dict[str, Any] | None, GuardDecision]:
    """The arguments to send (masked on ``modify``: a copy) and the guardrails' decision."""
    places = list(_strings(arguments or {}))
    decision = await view.guard(_subject("input", caller, name, [text for _, text in places]))
    if decision.action != "modify" or arguments is None:
        return arguments, decision
    masked = copy.deepcopy(arguments)
    for (path, _), text in zip(places, decision.texts, strict=True):
        masked = _put(masked, path, text)
    return masked, decision


async def guard_result(
    view: GatewayView, caller: GatewayCaller | None, name: str, result: types.CallToolResult
) -> tuple[types.CallToolResult, GuardDecision]:
    """The result to answer (masked on ``modify``: a copy) and the guardrails' decision."""
    blocks = [i for i, block in enumerate(result.content) if isinstance(block, types.TextContent)]
    structured = result.structured_content
    places = list(_strings(structured)) if structured is not None else []
    texts = [result.content[i].text for i in blocks]  # type: ignore[union-attr]
    texts += [text for _, text in places]
    decision = await view.guard(_subject("output", caller, name, texts))
    if decision.action != "modify":
        return result, decision
    content = list(result.content)
    for i, text in zip(blocks, decision.texts, strict=False):
        content[i] = content[i].model_copy(update={"text": text})
    update: dict[str, Any] = {"content": content}
    if structured is not None:
        masked = copy.deepcopy(structured)
        for (path, _), text in zip(places, decision.texts[len(blocks) :], strict=True):
            masked = _put(masked, path, text)
        update["structured_content"] = masked
    return result.model_copy(update=update), decision
