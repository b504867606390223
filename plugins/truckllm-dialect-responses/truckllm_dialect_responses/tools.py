"""Tools and ``tool_choice``: validation, and translation to the chat form.

Responses function tools are flat (``{"type": "function", "name", "description", "parameters",
"strict"}``); chat tools nest them under ``function``. OpenAI's built-in tools (web search, file
search, computer use, code interpreter, image generation, MCP, shells, custom tools...) run on
OpenAI's side: a chat deployment cannot run them, so the translation raises
:class:`~truckllm.errors.UnsupportedRequest` naming ``tools[i].type`` (OpenAI deployments get the
request as received).
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from msgspec import UNSET, Raw

from truckllm.errors import UnsupportedRequest
from truckllm.kit.openai_schemas import FunctionDef, NamedFunction, NamedToolChoice, Tool

from .cache import cache_mark
from .checks import ARRAY, BOOLEAN, OBJECT, STRING, join, need, one_of, opt
from .errors import invalid, invalid_type, shown

__all__ = ["BUILTIN_TOOL_TYPES", "TOOL_TYPES", "ChatTools", "chat_tools", "check_tool_choice", "check_tools"]

BUILTIN_TOOL_TYPES = (
    "file_search",
    "computer",
    "computer_use_preview",
    "web_search",
    "web_search_2025_08_26",
    "web_search_preview",
    "web_search_preview_2025_03_11",
    "mcp",
    "code_interpreter",
    "programmatic_tool_calling",
    "image_generation",
    "local_shell",
    "shell",
    "custom",
    "namespace",
    "tool_search",
    "apply_patch",
)
"""Tool types OpenAI accepts that only OpenAI can run."""

TOOL_TYPES = ("function", *BUILTIN_TOOL_TYPES)
"""Every tool type OpenAI accepts."""

_CHOICE_MODES = ("none", "auto", "required")
_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def check_tools(tools: object) -> None:
    """Validate ``tools`` (absent or ``null`` is fine).

    :raises GatewayError: 400 naming ``tools[i]...``.
    """
    if tools is None:
        return
    if not isinstance(tools, list):
        raise invalid_type("tools", "an array", tools)
    for i, tool in enumerate(tools):
        at = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise invalid_type(at, "an object", tool)
        kind = need(tool, "type", at, STRING)
        one_of(kind, join(at, "type"), TOOL_TYPES)
        if kind != "function":
            continue
        name = need(tool, "name", at, STRING)
        if not _NAME.match(name):
            raise invalid(
                f"Invalid '{at}.name': string does not match pattern. Expected a string that matches "
                "the pattern '^[a-zA-Z0-9_-]{1,64}$'.",
                join(at, "name"),
                "invalid_value",
            )
        opt(tool, "description", at, STRING)
        opt(tool, "parameters", at, OBJECT)
        opt(tool, "strict", at, BOOLEAN)


def _function_names(tools: object) -> set[str]:
    return {
        t["name"]
        for t in (tools if isinstance(tools, list) else ())
        if isinstance(t, dict) and t.get("type") == "function" and isinstance(t.get("name"), str)
    }


def _known(name: str, names: set[str], param: str) -> None:
    if name not in names:
        raise invalid(
            f"Invalid '{param}': tool '{shown(name)}' not found in 'tools' parameter.", param, "invalid_value"
        )


def check_tool_choice(choice: object, tools: object) -> None:
    """Validate ``tool_choice`` (a mode or a typed object) against the validated ``tools``.

    :raises GatewayError: 400 naming ``tool_choice...`` (a function not in ``tools`` too).
    """
    if choice is None:
        return
    if isinstance(choice, str):
        one_of(choice, "tool_choice", _CHOICE_MODES)
        return
    if not isinstance(choice, dict):
        raise invalid_type("tool_choice", "one of a string or an object", choice)
    kind = need(choice, "type", "tool_choice", STRING)
    if kind == "function":
        _known(need(choice, "name", "tool_choice", STRING), _function_names(tools), "tool_choice.name")
    elif kind == "custom":
        need(choice, "name", "tool_choice", STRING)
    elif kind == "allowed_tools":
        one_of(need(choice, "mode", "tool_choice", STRING), "tool_choice.mode", ("auto", "required"))
        for j, entry in enumerate(need(choice, "tools", "tool_choice", ARRAY)):
            where = f"tool_choice.tools[{j}]"
            if not isinstance(entry, dict):
                raise invalid_type(where, "an object", entry)
            if need(entry, "type", where, STRING) == "function":
                _known(need(entry, "name", where, STRING), _function_names(tools), join(where, "name"))
    elif kind == "mcp":
        need(choice, "server_label", "tool_choice", STRING)


class ChatTools(msgspec.Struct):
    """The chat form's ``tools`` and ``tool_choice`` (``UNSET`` when not sent)."""

    tools: list[Tool]
    tool_choice: Any = UNSET


def _function(tool: dict[str, Any]) -> Tool:
    description = tool.get("description")
    parameters = tool.get("parameters")
    strict = tool.get("strict")
    return Tool(
        function=FunctionDef(
            name=str(tool.get("name")),
            description=description if isinstance(description, str) else UNSET,
            parameters=Raw(msgspec.json.encode(parameters)) if isinstance(parameters, dict) else UNSET,
            strict=strict if isinstance(strict, bool) else UNSET,
        ),
        cache_control=cache_mark(tool),
    )


def chat_tools(tools: object, choice: object) -> ChatTools:
    """The chat tools and ``tool_choice`` for validated Responses ``tools`` and ``tool_choice``.

    ``allowed_tools`` keeps only the functions it names (mode ``auto`` / ``required``). Without
    any tool, ``tool_choice`` is left out (OpenAI refuses it without tools).

    :raises UnsupportedRequest: for a built-in tool, or a choice that forces one.
    """
    translated: list[Tool] = []
    for i, tool in enumerate(tools if isinstance(tools, list) else ()):
        kind = tool.get("type")
        if kind != "function":
            raise UnsupportedRequest(
                f"the '{kind}' tool is one of OpenAI's built-in tools: only OpenAI deployments can run it",
                param=f"tools[{i}].type",
            )
        translated.append(_function(tool))
    result = ChatTools(tools=translated)
    if choice is None or not translated:
        return result
    if isinstance(choice, str):
        result.tool_choice = choice
        return result
    if not isinstance(choice, dict):
        return result
    kind = choice.get("type")
    if kind == "function":
        named = NamedFunction(name=str(choice.get("name")))
        result.tool_choice = NamedToolChoice(type="function", function=named)
    elif kind == "allowed_tools":
        names: set[object] = set()
        for j, entry in enumerate(choice.get("tools") or ()):
            if entry.get("type") != "function":
                raise UnsupportedRequest(
                    f"allowed_tools names the '{shown(str(entry.get('type')))}' tool: only OpenAI "
                    "deployments can run it",
                    param=f"tool_choice.tools[{j}].type",
                )
            names.add(entry.get("name"))
        result.tools = [t for t in translated if t.function is not UNSET and t.function.name in names]
        result.tool_choice = str(choice.get("mode"))
    else:
        raise UnsupportedRequest(
            f"tool_choice '{kind}' forces one of OpenAI's built-in tools: only OpenAI deployments can run it",
            param="tool_choice.type",
        )
    return result
