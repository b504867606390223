"""OpenAI's request contract for ``POST /v1/responses``: the checks that need no stored state.

Every function appends :class:`~truckllm_testing.fakes.base.Problem` values worded as OpenAI
words them; :func:`error_code` gives the ``code`` OpenAI sends with each message.  The checks
that need the fake's stored responses (``previous_response_id``, item references, tool-call
pairing across turns) live in :mod:`.openai_responses`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .base import Problem, is_int, is_number, jtype

__all__ = [
    "COUNT_FIELDS",
    "CREATE_FIELDS",
    "INCLUDABLE",
    "REASONING_MODELS",
    "check_count",
    "check_create",
    "error_code",
    "is_reasoning_model",
]

CREATE_FIELDS = frozenset(
    {
        "access_programs", "background", "background_options", "client_metadata", "context_management",
        "conversation", "image", "include", "input", "instructions", "max_output_tokens", "max_tool_calls",
        "metadata",
        "model", "moderation", "parallel_tool_calls", "previous_response_id", "prompt",
        "prompt_cache_key", "prompt_cache_options", "prompt_cache_retention", "reasoning",
        "safety_identifier", "service_tier", "store", "stream", "stream_options", "temperature", "text",
        "tool_choice", "tools", "top_logprobs", "top_p", "truncation", "user",
    }
)  # fmt: skip
"""Top-level fields of ``ResponseCreateParams`` (and ``client_metadata``, which OpenAI's API takes and
Codex CLI sends on every request); anything else is ``unknown_parameter``."""

COUNT_FIELDS = frozenset(
    {
        "conversation", "input", "instructions", "model", "parallel_tool_calls", "personality",
        "previous_response_id", "reasoning", "text", "tool_choice", "tools", "truncation",
    }
)  # fmt: skip
"""Top-level fields of ``InputTokenCountParams`` (``POST /v1/responses/input_tokens``)."""

INCLUDABLE = (
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "message.input_image.image_url",
    "computer_call_output.output.image_url",
    "code_interpreter_call.outputs",
    "reasoning.encrypted_content",
    "message.output_text.logprobs",
)
"""Values of ``include``."""

REASONING_MODELS = ("o1", "o3", "o4", "gpt-5", "codex")
"""Model name prefixes that reason (``reasoning.effort`` allowed, ``temperature`` not)."""

TOOL_TYPES = (
    "function", "file_search", "computer", "computer_use_preview", "web_search",
    "web_search_2025_08_26", "mcp", "code_interpreter", "programmatic_tool_calling",
    "image_generation", "local_shell", "shell", "custom", "namespace", "tool_search",
    "web_search_preview", "web_search_preview_2025_03_11", "apply_patch",
)  # fmt: skip
"""Tool types the API knows (function tools and the built-in ones)."""

ITEM_TYPES = (
    "message", "file_search_call", "computer_call", "computer_call_output", "web_search_call",
    "function_call", "function_call_output", "tool_search_call", "tool_search_output",
    "additional_tools", "configuration_update", "reasoning", "compaction", "image_generation_call",
    "code_interpreter_call", "local_shell_call", "local_shell_call_output", "shell_call",
    "shell_call_output", "apply_patch_call", "apply_patch_call_output", "mcp_list_tools",
    "mcp_approval_request", "mcp_approval_response", "mcp_call", "custom_tool_call_output",
    "custom_tool_call", "compaction_trigger", "item_reference", "program", "program_output",
)  # fmt: skip
"""Input item types the API knows."""

_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
_SUMMARIES = ("auto", "concise", "detailed")
_TIERS = ("auto", "default", "flex", "scale", "priority", "fast", "ultrafast")
_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_USER_PARTS = ("input_text", "input_image", "input_file")
_ASSISTANT_PARTS = ("output_text", "refusal")

_CODES = (
    ("Missing required parameter", "missing_required_parameter"),
    ("Unknown parameter", "unknown_parameter"),
    ("Invalid type for", "invalid_type"),
    ("integer below minimum value", "integer_below_min_value"),
    ("integer above maximum value", "integer_above_max_value"),
    ("decimal below minimum value", "decimal_below_min_value"),
    ("decimal above maximum value", "decimal_above_max_value"),
    ("empty array", "empty_array"),
    ("array too long", "array_above_max_length"),
    ("string too long", "string_above_max_length"),
    ("Unsupported parameter", "unsupported_parameter"),
    ("Unsupported value", "unsupported_value"),
    ("Previous response with id", "previous_response_not_found"),
    ("The encrypted content", "invalid_encrypted_content"),
    ("Invalid value", "invalid_value"),
    ("Invalid '", "invalid_value"),
)


def error_code(message: str) -> str | None:
    """The ``code`` OpenAI sends with a Responses 400 of this message (``None`` for most others)."""
    for fragment, code in _CODES:
        if fragment in message:
            return code
    return None


def is_reasoning_model(model: str) -> bool:
    """Whether ``model`` is a reasoning model (o-series, gpt-5, codex)."""
    return model.startswith(REASONING_MODELS)


def _supported(values: Iterable[str]) -> str:
    quoted = [f"'{v}'" for v in values]
    return ", ".join(quoted[:-1]) + f", and {quoted[-1]}" if len(quoted) > 2 else " and ".join(quoted)


def _enum(problems: list[Problem], value: Any, where: str, allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    if value is not None and value not in allowed:
        problems.append(
            Problem(f"Invalid value: '{value}'. Supported values are: {_supported(allowed)}.", where)
        )


def _typed(
    problems: list[Problem], value: Any, where: str, kind: type | tuple[type, ...], label: str
) -> bool:
    """Append an ``invalid_type`` problem unless ``value`` is None or of ``kind``; True when usable."""
    if value is None:
        return False
    ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
    if not ok:
        problems.append(
            Problem(
                f"Invalid type for '{where}': expected {label}, but got {_a(jtype(value))} instead.", where
            )
        )
    return ok


def _a(name: str) -> str:
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


def _number(problems: list[Problem], body: dict[str, Any], name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if not is_number(value):
        problems.append(
            Problem(
                f"Invalid type for '{name}': expected a decimal, but got {_a(jtype(value))} instead.", name
            )
        )
    elif not low <= value <= high:
        side, bound, sign = ("below minimum", low, ">=") if value < low else ("above maximum", high, "<=")
        problems.append(
            Problem(
                f"Invalid '{name}': decimal {side} value. Expected a value {sign} {bound:g}, "
                f"but got {value} instead.",
                name,
            )
        )


def _integer(
    problems: list[Problem], body: dict[str, Any], name: str, low: int, high: int | None = None
) -> None:
    value = body.get(name)
    if value is None:
        return
    if not is_int(value):
        problems.append(
            Problem(
                f"Invalid type for '{name}': expected an integer, but got {_a(jtype(value))} instead.", name
            )
        )
    elif value < low:
        problems.append(
            Problem(
                f"Invalid '{name}': integer below minimum value. Expected a value >= {low}, "
                f"but got {value} instead.",
                name,
            )
        )
    elif high is not None and value > high:
        problems.append(
            Problem(
                f"Invalid '{name}': integer above maximum value. Expected a value <= {high}, "
                f"but got {value} instead.",
                name,
            )
        )


def _missing(problems: list[Problem], obj: dict[str, Any], where: str, *names: str) -> bool:
    """Append a problem per absent field; True when all are present."""
    ok = True
    for name in names:
        if obj.get(name) is None:
            problems.append(Problem(f"Missing required parameter: '{where}.{name}'.", f"{where}.{name}"))
            ok = False
    return ok


# --------------------------------------------------------------------------- input items


def _content(problems: list[Problem], item: dict[str, Any], where: str) -> None:
    role = item.get("role")
    content = item.get("content")
    if content is None:
        problems.append(Problem(f"Missing required parameter: '{where}.content'.", f"{where}.content"))
        return
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        problems.append(
            Problem(
                f"Invalid type for '{where}.content': expected one of a string or array of input content, "
                f"but got {_a(jtype(content))} instead.",
                f"{where}.content",
            )
        )
        return
    allowed = _ASSISTANT_PARTS if role == "assistant" else _USER_PARTS
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        if not isinstance(part, dict):
            problems.append(
                Problem(
                    f"Invalid type for '{at}': expected an object, but got {_a(jtype(part))} instead.", at
                )
            )
            continue
        kind = part.get("type")
        if kind not in allowed:
            problems.append(
                Problem(
                    f"Invalid value: '{kind}'. Supported values are: {_supported(allowed)}.", f"{at}.type"
                )
            )
        elif kind in ("input_text", "output_text"):
            if _missing(problems, part, at, "text"):
                _typed(problems, part["text"], f"{at}.text", str, "a string")
        elif kind == "refusal":
            _missing(problems, part, at, "refusal")
        elif kind == "input_image":
            if part.get("image_url") is None and part.get("file_id") is None:
                problems.append(Problem(f"Missing required parameter: '{at}.image_url'.", f"{at}.image_url"))
            _enum(problems, part.get("detail"), f"{at}.detail", ("low", "high", "auto", "original"))
        elif kind == "input_file" and not any(
            part.get(name) is not None for name in ("file_id", "file_data", "file_url")
        ):
            problems.append(Problem(f"Missing required parameter: '{at}.file_id'.", f"{at}.file_id"))


def check_item(problems: list[Problem], item: Any, where: str) -> None:
    """Check one input item (a message, a function call or its output, a reasoning item...)."""
    if not isinstance(item, dict):
        problems.append(
            Problem(
                f"Invalid type for '{where}': expected an input item, but got {_a(jtype(item))} instead.",
                where,
            )
        )
        return
    kind = item.get("type", "message" if "role" in item else None)
    if kind is None:
        problems.append(Problem(f"Missing required parameter: '{where}.type'.", f"{where}.type"))
        return
    if kind not in ITEM_TYPES:
        problems.append(
            Problem(
                f"Invalid value: '{kind}'. Supported values are: {_supported(ITEM_TYPES)}.", f"{where}.type"
            )
        )
        return
    for name in ("id", "call_id", "name"):
        _typed(problems, item.get(name), f"{where}.{name}", str, "a string")
    if kind == "message":
        role = item.get("role")
        if role is None:
            problems.append(Problem(f"Missing required parameter: '{where}.role'.", f"{where}.role"))
            return
        _enum(problems, role, f"{where}.role", ("user", "assistant", "system", "developer"))
        _content(problems, item, where)
    elif kind == "function_call":
        if _missing(problems, item, where, "call_id", "name", "arguments"):
            _typed(problems, item["arguments"], f"{where}.arguments", str, "a string")
    elif kind == "function_call_output":
        if _missing(problems, item, where, "call_id", "output"):
            _typed(problems, item["output"], f"{where}.output", (str, list), "a string or array")
    elif kind == "reasoning":
        if _missing(problems, item, where, "summary"):
            _typed(problems, item["summary"], f"{where}.summary", list, "an array")
        _typed(problems, item.get("encrypted_content"), f"{where}.encrypted_content", str, "a string")
        if item.get("id") is None and item.get("encrypted_content") is None:
            problems.append(Problem(f"Missing required parameter: '{where}.id'.", f"{where}.id"))
    elif kind == "item_reference":
        _missing(problems, item, where, "id")


def _input(problems: list[Problem], body: dict[str, Any]) -> None:
    value = body.get("input")
    if value is None or isinstance(value, str):
        return
    if not isinstance(value, list):
        problems.append(
            Problem(
                "Invalid type for 'input': expected one of a string or array of input items, "
                f"but got {_a(jtype(value))} instead.",
                "input",
            )
        )
        return
    for i, item in enumerate(value):
        check_item(problems, item, f"input[{i}]")


# --------------------------------------------------------------------------- tools and formats


def _tools(problems: list[Problem], body: dict[str, Any]) -> set[str]:
    """Check ``tools``; returns the names of its function and custom tools."""
    names: set[str] = set()
    tools = body.get("tools")
    if not _typed(problems, tools, "tools", list, "an array") or not isinstance(tools, list):
        return names
    for i, tool in enumerate(tools):
        at = f"tools[{i}]"
        if not isinstance(tool, dict):
            problems.append(
                Problem(
                    f"Invalid type for '{at}': expected an object, but got {_a(jtype(tool))} instead.", at
                )
            )
            continue
        kind = tool.get("type")
        if kind is None:
            problems.append(Problem(f"Missing required parameter: '{at}.type'.", f"{at}.type"))
            continue
        if kind not in TOOL_TYPES:
            problems.append(
                Problem(
                    f"Invalid value: '{kind}'. Supported values are: {_supported(TOOL_TYPES)}.", f"{at}.type"
                )
            )
            continue
        if kind in ("function", "custom"):
            if not _missing(problems, tool, at, "name"):
                continue
            name = tool["name"]
            if not isinstance(name, str) or not _NAME.match(name):
                problems.append(
                    Problem(
                        f"Invalid '{at}.name': string does not match pattern. Expected a string that "
                        "matches the pattern '^[a-zA-Z0-9_-]+$'.",
                        f"{at}.name",
                    )
                )
                continue
            if name in names:
                problems.append(Problem(f"Duplicate tool name: '{name}'.", f"{at}.name"))
            names.add(name)
            if kind == "function":
                _typed(problems, tool.get("parameters"), f"{at}.parameters", dict, "an object")
                _typed(problems, tool.get("strict"), f"{at}.strict", bool, "a boolean")
        elif kind == "file_search":
            _missing(problems, tool, at, "vector_store_ids")
        elif kind == "mcp":
            _missing(problems, tool, at, "server_label")
    return names


def _tool_choice(problems: list[Problem], body: dict[str, Any], names: set[str]) -> None:
    choice = body.get("tool_choice")
    if choice is None:
        return
    if isinstance(choice, str):
        _enum(problems, choice, "tool_choice", ("none", "auto", "required"))
        return
    if not isinstance(choice, dict):
        problems.append(
            Problem(
                "Invalid type for 'tool_choice': expected one of a string or object, "
                f"but got {_a(jtype(choice))} instead.",
                "tool_choice",
            )
        )
        return
    kind = choice.get("type")
    if kind is None:
        problems.append(Problem("Missing required parameter: 'tool_choice.type'.", "tool_choice.type"))
    elif kind in ("function", "custom"):
        if not _missing(problems, choice, "tool_choice", "name"):
            return
        if not isinstance(choice["name"], str):
            _typed(problems, choice["name"], "tool_choice.name", str, "a string")
        elif choice["name"] not in names:
            problems.append(Problem(f"Tool choice '{kind}' not found in 'tools' parameter.", "tool_choice"))
    elif kind == "allowed_tools":
        if _missing(problems, choice, "tool_choice", "mode", "tools"):
            _enum(problems, choice["mode"], "tool_choice.mode", ("auto", "required"))
    elif kind == "mcp":
        _missing(problems, choice, "tool_choice", "server_label")


def _text(problems: list[Problem], body: dict[str, Any]) -> None:
    text = body.get("text")
    if not _typed(problems, text, "text", dict, "an object") or not isinstance(text, dict):
        return
    _enum(problems, text.get("verbosity"), "text.verbosity", ("low", "medium", "high"))
    fmt = text.get("format")
    if not _typed(problems, fmt, "text.format", dict, "an object") or not isinstance(fmt, dict):
        return
    kind = fmt.get("type")
    if kind is None:
        problems.append(Problem("Missing required parameter: 'text.format.type'.", "text.format.type"))
        return
    _enum(problems, kind, "text.format.type", ("text", "json_schema", "json_object"))
    if kind == "json_schema" and _missing(problems, fmt, "text.format", "name", "schema"):
        if not isinstance(fmt["name"], str) or not _NAME.match(fmt["name"]):
            problems.append(
                Problem(
                    "Invalid 'text.format.name': string does not match pattern. Expected a string that "
                    "matches the pattern '^[a-zA-Z0-9_-]+$'.",
                    "text.format.name",
                )
            )
        _typed(problems, fmt["schema"], "text.format.schema", dict, "an object")
    if kind == "json_object" and "json" not in _all_text(body).lower():
        problems.append(
            Problem(
                "Response input messages must contain the word 'json' in some form to use 'text.format' "
                "of type 'json_object'.",
                "input",
            )
        )


def _all_text(body: dict[str, Any]) -> str:
    parts: list[str] = []
    if isinstance(body.get("instructions"), str):
        parts.append(body["instructions"])
    raw = body.get("input")
    if isinstance(raw, str):
        parts.append(raw)
    elif isinstance(raw, list):
        for item in raw:
            content = item.get("content") if isinstance(item, dict) else None
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts.extend(
                    p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
                )
    return " ".join(parts)


def _reasoning(problems: list[Problem], body: dict[str, Any], model: str) -> None:
    reasoning = body.get("reasoning")
    if not _typed(problems, reasoning, "reasoning", dict, "an object") or not isinstance(reasoning, dict):
        return
    _enum(problems, reasoning.get("effort"), "reasoning.effort", _EFFORTS)
    _enum(problems, reasoning.get("summary"), "reasoning.summary", _SUMMARIES)
    _enum(problems, reasoning.get("generate_summary"), "reasoning.generate_summary", _SUMMARIES)
    if model and not is_reasoning_model(model) and reasoning.get("effort") is not None:
        problems.append(
            Problem(
                "Unsupported parameter: 'reasoning.effort' is not supported with this model.",
                "reasoning.effort",
            )
        )


def _metadata(problems: list[Problem], body: dict[str, Any]) -> None:
    metadata = body.get("metadata")
    if not _typed(problems, metadata, "metadata", dict, "an object") or not isinstance(metadata, dict):
        return
    if len(metadata) > 16:
        problems.append(
            Problem(
                "Invalid 'metadata': too many properties. Expected an object with at most 16 properties, "
                f"but got an object with {len(metadata)} properties instead.",
                "metadata",
            )
        )
    for name, value in metadata.items():
        if len(name) > 64:
            problems.append(
                Problem(
                    f"Invalid 'metadata': string too long. Expected a key with maximum length 64, "
                    f"but got a key with length {len(name)} instead.",
                    "metadata",
                )
            )
        if not isinstance(value, str):
            problems.append(
                Problem(
                    f"Invalid type for 'metadata.{name}': expected a string, "
                    f"but got {_a(jtype(value))} instead.",
                    f"metadata.{name}",
                )
            )
        elif len(value) > 512:
            problems.append(
                Problem(
                    f"Invalid 'metadata.{name}': string too long. Expected a string with maximum length 512, "
                    f"but got a string with length {len(value)} instead.",
                    f"metadata.{name}",
                )
            )


def _include(problems: list[Problem], body: dict[str, Any]) -> None:
    include = body.get("include")
    if not _typed(problems, include, "include", list, "an array") or not isinstance(include, list):
        return
    for i, value in enumerate(include):
        _enum(problems, value, f"include[{i}]", INCLUDABLE)


# --------------------------------------------------------------------------- whole requests


def _unknown(problems: list[Problem], body: dict[str, Any], allowed: frozenset[str]) -> None:
    for name in body:
        if name not in allowed:
            problems.append(Problem(f"Unknown parameter: '{name}'.", name))


def _model(problems: list[Problem], body: dict[str, Any], required: bool) -> str:
    model = body.get("model")
    if model is None:
        if required:
            problems.append(Problem("Missing required parameter: 'model'.", "model"))
        return ""
    if not isinstance(model, str) or not model:
        problems.append(
            Problem(
                f"Invalid type for 'model': expected a string, but got {_a(jtype(model))} instead.", "model"
            )
        )
        return ""
    return model


def _common(problems: list[Problem], body: dict[str, Any], model: str) -> None:
    _input(problems, body)
    _typed(problems, body.get("instructions"), "instructions", str, "a string")
    _typed(problems, body.get("previous_response_id"), "previous_response_id", str, "a string")
    _typed(problems, body.get("parallel_tool_calls"), "parallel_tool_calls", bool, "a boolean")
    _enum(problems, body.get("truncation"), "truncation", ("auto", "disabled"))
    _tool_choice(problems, body, _tools(problems, body))
    _text(problems, body)
    _reasoning(problems, body, model)
    if body.get("previous_response_id") is not None and body.get("conversation") is not None:
        problems.append(
            Problem(
                "Mutually exclusive parameters: Ensure you are only providing one of: "
                "'previous_response_id' or 'conversation'.",
                "previous_response_id",
            )
        )


def check_create(body: Any) -> list[Problem]:
    """Every stateless problem of a ``POST /v1/responses`` body."""
    if not isinstance(body, dict):
        return [Problem("Invalid type for 'body': expected an object.", None)]
    problems: list[Problem] = []
    _unknown(problems, body, CREATE_FIELDS)
    model = _model(problems, body, required=True)
    if all(body.get(name) is None for name in ("input", "prompt", "previous_response_id", "conversation")):
        problems.append(Problem("Missing required parameter: 'input'.", "input"))
    _common(problems, body, model)
    for name in ("stream", "store", "background"):
        _typed(problems, body.get(name), name, bool, "a boolean")
    if body.get("stream_options") is not None and body.get("stream") is not True:
        problems.append(
            Problem(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options"
            )
        )
    if body.get("background") is True and body.get("store") is False:
        problems.append(Problem("Background mode requires 'store' to be true.", "background"))
    _integer(problems, body, "max_output_tokens", 16)
    _integer(problems, body, "max_tool_calls", 1)
    _integer(problems, body, "top_logprobs", 0, 20)
    _number(problems, body, "temperature", 0, 2)
    _number(problems, body, "top_p", 0, 1)
    if model and is_reasoning_model(model):
        for name in ("temperature", "top_p"):
            if body.get(name) is not None and body[name] != 1:
                problems.append(
                    Problem(f"Unsupported parameter: '{name}' is not supported with this model.", name)
                )
    _metadata(problems, body)
    _include(problems, body)
    _enum(problems, body.get("service_tier"), "service_tier", _TIERS)
    _enum(problems, body.get("prompt_cache_retention"), "prompt_cache_retention", ("in_memory", "24h"))
    for name in ("prompt_cache_key", "safety_identifier", "user"):
        _typed(problems, body.get(name), name, str, "a string")
    return problems


def check_count(body: Any) -> list[Problem]:
    """Every stateless problem of a ``POST /v1/responses/input_tokens`` body."""
    if not isinstance(body, dict):
        return [Problem("Invalid type for 'body': expected an object.", None)]
    problems: list[Problem] = []
    _unknown(problems, body, COUNT_FIELDS)
    model = _model(problems, body, required=False)
    _common(problems, body, model)
    return problems
