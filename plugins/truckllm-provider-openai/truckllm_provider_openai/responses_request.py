"""A chat-completions request as a Responses API request (``api: responses``).

Reads the kernel's typed OpenAI request (``request.typed``: the client's own for an OpenAI
client, the inbound dialect's translation for another) and builds the body of
``POST /responses``: leading system and developer messages become ``instructions``, the rest
input items (``message``, ``function_call``, ``function_call_output``); function tools flat;
``tool_choice``; ``response_format`` as ``text.format``; ``max_tokens``/``max_completion_tokens``
as ``max_output_tokens`` (at least 16, the Responses API's minimum); ``reasoning_effort`` as
``reasoning.effort``; ``store: false`` (the gateway keeps nothing upstream for a chat client);
``cache_control`` marks on user content parts (or a user message) as ``prompt_cache_breakpoint``
(marks elsewhere are dropped: the Responses API has breakpoints on input parts only).
A chat parameter the Responses API cannot
honour raises :class:`~truckllm.errors.UnsupportedRequest` naming it; harmless ones (``seed``,
``top_k``, zero penalties) are dropped.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, Raw, UnsetType

from truckllm.errors import UnsupportedRequest
from truckllm.kit.openai_schemas import (
    AssistantMessage,
    ChatCompletionRequest,
    DeveloperMessage,
    FilePart,
    FunctionMessage,
    ImagePart,
    InputAudioPart,
    RefusalPart,
    ResponseFormat,
    SystemMessage,
    TextPart,
    Tool,
    ToolMessage,
    UserMessage,
    is_set,
    text_of,
)
from truckllm.types import ChatRequest

__all__ = [
    "COPIED_FIELDS",
    "COUNT_FIELDS",
    "MIN_OUTPUT_TOKENS",
    "REFUSED_FIELDS",
    "count_request",
    "translate_request",
]

MIN_OUTPUT_TOKENS = 16
"""The Responses API's least ``max_output_tokens``: a smaller chat ``max_tokens`` is raised to it."""

COPIED_FIELDS = ("prompt_cache_key", "prompt_cache_retention", "service_tier")
"""Chat parameters an OpenAI client may send that the Responses API takes under the same name
(read from the client's body: the typed request does not hold them)."""

REFUSED_FIELDS = {
    "audio": "audio output",
    "prediction": "predicted outputs",
    "web_search_options": "web_search_options",
    "functions": "the deprecated functions (use tools)",
    "function_call": "the deprecated function_call (use tool_choice)",
}
"""Chat parameters (outside the typed request) the Responses API translation cannot honour."""

COUNT_FIELDS = (
    "model",
    "instructions",
    "input",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning",
    "text",
)
"""The members of a translated request that ``POST /responses/input_tokens`` takes (its
``InputTokenCountParams``); ``max_output_tokens``, sampling, ``store``, ``stream``, ``metadata``
and the rest are not part of the prompt and are dropped."""

_EMPTY_SCHEMA = Raw(b'{"type":"object","properties":{}}')


def translate_request(request: ChatRequest, model: str) -> dict[str, Any]:
    """The ``/responses`` body for a chat request.

    :raises UnsupportedRequest: for a parameter the Responses API cannot honour, naming it.
    """
    typed = request.typed
    if not isinstance(typed, ChatCompletionRequest):
        raise UnsupportedRequest(f"the {request.endpoint} endpoint cannot be served through /responses")
    raw = request.fields() if request.dialect == "openai" else {}
    _refuse(typed, raw)
    body: dict[str, Any] = {"model": model}
    instructions, items = _conversation(typed.messages)
    if instructions:
        body["instructions"] = instructions
    body["input"] = items
    _tools(body, typed)
    _sampling(body, typed)
    _text(body, typed.response_format, _given(raw, "verbosity"))
    effort = typed.reasoning_effort
    if isinstance(effort, str):
        body["reasoning"] = {"effort": effort}
    for name in ("metadata", "user", "safety_identifier"):
        value = getattr(typed, name)
        if is_set(value):
            body[name] = value
    for name in COPIED_FIELDS:
        value = _given(raw, name)
        if value is not None:
            body[name] = value
    body["store"] = False
    if request.stream:
        body["stream"] = True
        options = typed.stream_options
        if options is not UNSET and options is not None and options.include_obfuscation is not UNSET:
            body["stream_options"] = {"include_obfuscation": options.include_obfuscation}
    return body


def count_request(request: ChatRequest, model: str) -> dict[str, Any]:
    """The ``/responses/input_tokens`` body for a count asked in another dialect (in OpenAI's
    chat form): the request translated as a call would be, kept to what the count takes.

    :raises UnsupportedRequest: as :func:`translate_request`.
    """
    body = translate_request(request, model)
    return {name: body[name] for name in COUNT_FIELDS if name in body}


def _refuse(typed: ChatCompletionRequest, raw: dict[str, Raw]) -> None:
    """Raise for what the Responses API cannot do as a chat client asked it."""
    if is_set(typed.n) and typed.n != 1:
        raise UnsupportedRequest("n > 1 is not supported through the Responses API", param="n")
    if typed.logprobs is True:
        raise UnsupportedRequest("logprobs are not supported through the Responses API", param="logprobs")
    if is_set(typed.top_logprobs) and typed.top_logprobs:
        raise UnsupportedRequest("logprobs are not supported through the Responses API", param="top_logprobs")
    if is_set(typed.logit_bias) and typed.logit_bias:
        raise UnsupportedRequest("the Responses API has no logit_bias", param="logit_bias")
    if is_set(typed.stop) and typed.stop:
        raise UnsupportedRequest("the Responses API has no stop sequences", param="stop")
    for name in ("presence_penalty", "frequency_penalty"):
        value = getattr(typed, name)
        if is_set(value) and value != 0:
            raise UnsupportedRequest(f"the Responses API has no {name}", param=name)
    for name, what in REFUSED_FIELDS.items():
        if _given(raw, name) is not None:
            raise UnsupportedRequest(f"{what} cannot be served through the Responses API", param=name)
    modalities = _given(raw, "modalities")
    if modalities is not None and msgspec.json.decode(modalities) != ["text"]:
        raise UnsupportedRequest("only text output is served through the Responses API", param="modalities")


def _given(raw: dict[str, Raw], name: str) -> Raw | None:
    """A member of the client's body, ``None`` when absent or ``null``."""
    value = raw.get(name)
    return None if value is None or bytes(value).strip() == b"null" else value


# --- conversation -------------------------------------------------------------------------------


def _conversation(messages: list[Any]) -> tuple[str, list[dict[str, Any]]]:
    """``instructions`` (the leading system and developer messages) and the input items."""
    instructions: list[str] = []
    items: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if isinstance(msg, SystemMessage | DeveloperMessage):
            text = text_of(msg.content)
            if not items:
                if text:
                    instructions.append(text)
            else:
                role = "system" if isinstance(msg, SystemMessage) else "developer"
                items.append({"type": "message", "role": role, "content": text})
        elif isinstance(msg, UserMessage):
            content = _user_content(msg.content, where)
            point = _breakpoint(msg.cache_control)
            if point is not None:  # the message's own mark: on its last part
                if isinstance(content, str):
                    content = [{"type": "input_text", "text": content}]
                if content and "prompt_cache_breakpoint" not in content[-1]:
                    content[-1]["prompt_cache_breakpoint"] = point
            items.append({"type": "message", "role": "user", "content": content})
        elif isinstance(msg, AssistantMessage):
            items.extend(_assistant_items(msg, where))
        elif isinstance(msg, ToolMessage):
            items.append(
                {"type": "function_call_output", "call_id": msg.tool_call_id, "output": text_of(msg.content)}
            )
        elif isinstance(msg, FunctionMessage):
            raise UnsupportedRequest(
                "the deprecated 'function' role cannot be served through the Responses API; use tools",
                param=where,
            )
    return "\n\n".join(instructions), items


def _breakpoint(mark: Raw | UnsetType) -> dict[str, Any] | None:
    """The ``prompt_cache_breakpoint`` for a ``cache_control`` mark (``{"type": "ephemeral"}``);
    ``None`` for no mark or another shape. Anthropic's ``ttl`` (5m, 1h) has no Responses
    equivalent (30m, 12h): the breakpoint takes the request's TTL."""
    if isinstance(mark, UnsetType):
        return None
    try:
        value = msgspec.json.decode(mark)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    if isinstance(value, dict) and value.get("type") == "ephemeral":
        return {"mode": "explicit"}
    return None


def _with_breakpoint(entry: dict[str, Any], mark: Raw | UnsetType) -> dict[str, Any]:
    point = _breakpoint(mark)
    if point is not None:
        entry["prompt_cache_breakpoint"] = point
    return entry


def _user_content(content: Any, where: str) -> Any:
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        if isinstance(part, TextPart):
            parts.append(_with_breakpoint({"type": "input_text", "text": part.text}, part.cache_control))
        elif isinstance(part, ImagePart):
            detail = part.image_url.detail if part.image_url.detail is not UNSET else "auto"
            image = {"type": "input_image", "image_url": part.image_url.url, "detail": detail}
            parts.append(_with_breakpoint(image, part.cache_control))
        elif isinstance(part, FilePart):
            entry: dict[str, Any] = {"type": "input_file"}
            for name in ("file_data", "file_id", "filename"):
                value = getattr(part.file, name)
                if value is not UNSET:
                    entry[name] = value
            parts.append(_with_breakpoint(entry, part.cache_control))
        elif isinstance(part, InputAudioPart):
            raise UnsupportedRequest(
                "audio input cannot be served through the Responses API", param=f"{where}.content[{j}]"
            )
        elif isinstance(part, RefusalPart):
            parts.append({"type": "input_text", "text": part.refusal})
    return parts


def _assistant_items(msg: AssistantMessage, where: str) -> list[dict[str, Any]]:
    if msg.function_call is not UNSET and msg.function_call is not None:
        raise UnsupportedRequest(
            "the deprecated function_call cannot be served through the Responses API; use tool_calls",
            param=f"{where}.function_call",
        )
    items: list[dict[str, Any]] = []
    content = msg.content
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = "".join(p.text if isinstance(p, TextPart) else p.refusal for p in content)
    else:
        text = ""
    if not text and isinstance(msg.refusal, str):
        text = msg.refusal
    if text:
        items.append({"type": "message", "role": "assistant", "content": text})
    for call in msg.tool_calls or ():
        items.append(
            {
                "type": "function_call",
                "call_id": call.id,
                "name": call.function.name,
                "arguments": call.function.arguments,
            }
        )
    return items


# --- tools, sampling, format --------------------------------------------------------------------


def _tools(body: dict[str, Any], typed: ChatCompletionRequest) -> None:
    if typed.tools is not UNSET:
        body["tools"] = [_tool(tool, f"tools[{i}]") for i, tool in enumerate(typed.tools)]
    choice = typed.tool_choice
    if isinstance(choice, str):
        body["tool_choice"] = choice
    elif choice is not UNSET:
        if choice.type != "function" or choice.function is UNSET:
            raise UnsupportedRequest(
                f"tool_choice type {choice.type!r} cannot be served through the Responses API",
                param="tool_choice",
            )
        body["tool_choice"] = {"type": "function", "name": choice.function.name}
    if typed.parallel_tool_calls is not UNSET:
        body["parallel_tool_calls"] = typed.parallel_tool_calls


def _tool(tool: Tool, param: str) -> dict[str, Any]:
    fn = tool.function
    if tool.type != "function" or fn is UNSET:
        raise UnsupportedRequest(
            f"tool type {tool.type!r} cannot be served through the Responses API", param=param
        )
    entry: dict[str, Any] = {"type": "function", "name": fn.name}
    if isinstance(fn.description, str):
        entry["description"] = fn.description
    entry["parameters"] = fn.parameters if fn.parameters is not UNSET else _EMPTY_SCHEMA
    # a chat tool is strict only when it says so; a Responses tool is strict unless it says not
    entry["strict"] = fn.strict is True
    return entry


def _sampling(body: dict[str, Any], typed: ChatCompletionRequest) -> None:
    limit = typed.max_completion_tokens if is_set(typed.max_completion_tokens) else typed.max_tokens
    if isinstance(limit, int):
        # below the Responses API's minimum OpenAI answers 400 about a field the client never sent
        body["max_output_tokens"] = max(limit, MIN_OUTPUT_TOKENS)
    for name in ("temperature", "top_p"):
        value = getattr(typed, name)
        if is_set(value):
            body[name] = value


def _text(body: dict[str, Any], fmt: ResponseFormat | Any, verbosity: Raw | None) -> None:
    text: dict[str, Any] = {}
    if fmt is not UNSET:
        if fmt.type == "json_schema":
            spec = fmt.json_schema
            if spec is UNSET:
                raise UnsupportedRequest(
                    "response_format json_schema needs its json_schema member", param="response_format"
                )
            out: dict[str, Any] = {"type": "json_schema", "name": spec.name}
            out["schema"] = spec.schema if spec.schema is not UNSET else Raw(b'{"type":"object"}')
            if isinstance(spec.description, str):
                out["description"] = spec.description
            if isinstance(spec.strict, bool):
                out["strict"] = spec.strict
            text["format"] = out
        else:
            text["format"] = {"type": fmt.type}
    if verbosity is not None:
        text["verbosity"] = verbosity
    if text:
        body["text"] = text
