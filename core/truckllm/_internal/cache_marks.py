"""Prompt-cache marks a chat request carries (``cache_control``), by position.

Clients that target Anthropic through OpenAI's format (LiteLLM, OpenRouter, Claude-aware SDKs) put
Anthropic's ``cache_control`` object on content parts, on whole messages or on tools (or a tool's
``function``). For such a client the marks are read from the body as received; for a client of
another dialect, from the typed form, where the dialect's translation put them (the Responses
API's ``prompt_cache_breakpoint``, kept on stored turns too). Either way by position
(``messages[i].content[j]``, ``messages[i]``, ``tools[k]``), so that a provider's translation
puts each one on the block built from the marked part (Anthropic breakpoints, Bedrock cache
points). A body without the string ``"cache_control"`` is never decoded twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec
from msgspec import UNSET, Raw, UnsetType

from truckllm._internal.schemas.openai import ChatCompletionRequest
from truckllm.types import ChatRequest

__all__ = ["NO_MARKS", "CacheMarks", "cache_marks", "typed_marks"]

_MARKER = b'"cache_control"'


@dataclass(frozen=True)
class CacheMarks:
    """The ``cache_control`` objects of one request, by position.

    :ivar parts: ``(message index, part index)`` → the part's ``cache_control``.
    :ivar messages: message index → the message's own ``cache_control``.
    :ivar tools: tool index → the tool's ``cache_control``.
    """

    parts: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    tools: dict[int, dict[str, Any]] = field(default_factory=dict)

    def part(self, message: int, index: int) -> dict[str, Any] | None:
        """The ``cache_control`` of ``messages[message].content[index]``, if any."""
        return self.parts.get((message, index))

    def message(self, message: int) -> dict[str, Any] | None:
        """The ``cache_control`` of ``messages[message]`` itself, if any."""
        return self.messages.get(message)

    def any_in(self, message: int) -> dict[str, Any] | None:
        """The message's own mark, else the last mark on one of its parts (``None``: unmarked)."""
        found = self.messages.get(message)
        for (m, _), mark in sorted(self.parts.items()):
            if m == message:
                found = mark
        return found

    def tool(self, index: int) -> dict[str, Any] | None:
        """The ``cache_control`` of ``tools[index]``, if any."""
        return self.tools.get(index)


NO_MARKS = CacheMarks()
"""The marks of a request that has none."""


def _mark(value: Any) -> dict[str, Any] | None:
    """Anthropic's ``cache_control`` (``{"type": "ephemeral", "ttl"?}``); other shapes are ignored."""
    if not isinstance(value, dict) or value.get("type") != "ephemeral":
        return None
    mark: dict[str, Any] = {"type": "ephemeral"}
    if isinstance(value.get("ttl"), str):
        mark["ttl"] = value["ttl"]
    return mark


def _typed_mark(value: Raw | UnsetType) -> dict[str, Any] | None:
    """A typed struct's ``cache_control`` as a mark (``None``: unmarked or another shape)."""
    if isinstance(value, UnsetType):
        return None
    try:
        return _mark(msgspec.json.decode(value))
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None


def typed_marks(typed: ChatCompletionRequest) -> CacheMarks:
    """The ``cache_control`` marks of a typed chat request (set by an inbound dialect's translation,
    e.g. the Responses API's ``prompt_cache_breakpoint``), by the same positions."""
    marks = CacheMarks()
    for i, message in enumerate(typed.messages):
        own = _typed_mark(getattr(message, "cache_control", UNSET))
        if own is not None:
            marks.messages[i] = own
        content = getattr(message, "content", None)
        for j, part in enumerate(content if isinstance(content, list) else ()):
            mark = _typed_mark(getattr(part, "cache_control", UNSET))
            if mark is not None:
                marks.parts[(i, j)] = mark
    for k, tool in enumerate(typed.tools if isinstance(typed.tools, list) else ()):
        mark = _typed_mark(tool.cache_control)
        if mark is not None:
            marks.tools[k] = mark
    return marks


def cache_marks(request: ChatRequest) -> CacheMarks:
    """The ``cache_control`` marks of a chat request: read from the body as received for an
    OpenAI-dialect client (a function's own mark included), from the typed form for another."""
    if request.endpoint != "chat":
        return NO_MARKS
    if request.dialect != "openai":
        typed = request.typed
        return typed_marks(typed) if isinstance(typed, ChatCompletionRequest) else NO_MARKS
    if _MARKER not in request.body:
        return NO_MARKS
    try:
        body = msgspec.json.decode(request.body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return NO_MARKS
    if not isinstance(body, dict):
        return NO_MARKS
    marks = CacheMarks()
    messages = body.get("messages")
    for i, message in enumerate(messages if isinstance(messages, list) else ()):
        if not isinstance(message, dict):
            continue
        own = _mark(message.get("cache_control"))
        if own is not None:
            marks.messages[i] = own
        content = message.get("content")
        for j, part in enumerate(content if isinstance(content, list) else ()):
            mark = _mark(part.get("cache_control")) if isinstance(part, dict) else None
            if mark is not None:
                marks.parts[(i, j)] = mark
    tools = body.get("tools")
    for k, tool in enumerate(tools if isinstance(tools, list) else ()):
        if not isinstance(tool, dict):
            continue
        function = tool.get("function")
        mark = _mark(tool.get("cache_control"))
        if mark is None and isinstance(function, dict):
            mark = _mark(function.get("cache_control"))
        if mark is not None:
            marks.tools[k] = mark
    return marks
