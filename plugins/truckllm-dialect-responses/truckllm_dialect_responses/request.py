"""Responses API requests: validation (:func:`read_request`) and translation to the chat form
(:func:`to_chat`).

:func:`read_request` validates a ``POST /v1/responses`` body as OpenAI does, strictly enough to
answer OpenAI-shaped 400s naming the field (``input[3].content[0].type``), and keeps the decoded
body: OpenAI deployments get the bytes as received (only ``model`` is rewritten), so every field
survives. Left to the upstream: unknown top-level fields and rules between fields.

:func:`to_chat` builds the same request as an OpenAI
:class:`~truckllm.kit.openai_schemas.ChatCompletionRequest` for deployments of other dialects,
from the whole conversation (stored turns, then this call's input). What only OpenAI can serve
(built-in tools, ``item_reference``, files by id) raises
:class:`~truckllm.errors.UnsupportedRequest` naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec
from loguru import logger
from msgspec import Raw

from truckllm.errors import GatewayError, UnsupportedRequest
from truckllm.kit.openai_schemas import (
    ChatCompletionRequest,
    JSONSchemaFormat,
    Message,
    ResponseFormat,
    StreamOptions,
    SystemMessage,
)
from truckllm.kit.safejson import decode_json

from .checks import ARRAY, BOOLEAN, INTEGER, NUMBER, OBJECT, STRING, need, number_in, one_of, opt
from .errors import invalid, invalid_type, missing, shown
from .items import Conversation, check_item, normalise
from .tools import chat_tools, check_tool_choice, check_tools

__all__ = ["ResponsesCall", "Translation", "read_request", "to_chat", "translate"]

MAX_INT = 2**31 - 1
_FORMATS = ("text", "json_object", "json_schema")
_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
_BAD_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
    "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)"
)


@dataclass(frozen=True)
class ResponsesCall:
    """A validated ``POST /v1/responses`` (or ``/v1/responses/input_tokens``) request.

    :ivar model: the ``model`` asked for (an alias).
    :ivar stream: the client asked for a stream.
    :ivar store: keep the response for ``previous_response_id`` and ``GET`` (default ``True``).
    :ivar previous_response_id: the response this one continues, if any.
    :ivar instructions: the system / developer instructions of this call (not carried over).
    :ivar background: the client asked for a background response.
    :ivar input: this call's input items, normalised (every item has its ``type``).
    :ivar fields: the decoded body.
    """

    model: str
    stream: bool
    store: bool
    previous_response_id: str | None
    instructions: str | None
    background: bool
    input: list[dict[str, Any]]
    fields: dict[str, Any] = field(repr=False)


@dataclass
class Translation:
    """A request in the chat form and what the translation lost.

    :ivar typed: the chat request.
    :ivar notes: one line per dropped field (for the debug log).
    """

    typed: ChatCompletionRequest
    notes: list[str] = field(default_factory=list)


# --- validation -------------------------------------------------------------------------------


def _check_text(text: object) -> None:
    if text is None:
        return
    if not isinstance(text, dict):
        raise invalid_type("text", "an object", text)
    one_of(opt(text, "verbosity", "text", STRING), "text.verbosity", ("low", "medium", "high"))
    fmt = opt(text, "format", "text", OBJECT)
    if fmt is None:
        return
    kind = need(fmt, "type", "text.format", STRING)
    one_of(kind, "text.format.type", _FORMATS)
    if kind != "json_schema":
        return
    name = need(fmt, "name", "text.format", STRING)
    if not 1 <= len(name) <= 64 or not set(name) <= _NAME_CHARS:
        raise invalid(
            "Invalid 'text.format.name': string does not match pattern. Expected a string that matches "
            "the pattern '^[a-zA-Z0-9_-]{1,64}$'.",
            "text.format.name",
            "invalid_value",
        )
    need(fmt, "schema", "text.format", OBJECT)
    opt(fmt, "description", "text.format", STRING)
    opt(fmt, "strict", "text.format", BOOLEAN)


def _check_reasoning(reasoning: object) -> None:
    if reasoning is None:
        return
    if not isinstance(reasoning, dict):
        raise invalid_type("reasoning", "an object", reasoning)
    one_of(opt(reasoning, "effort", "reasoning", STRING), "reasoning.effort", _EFFORTS)
    one_of(
        opt(reasoning, "summary", "reasoning", STRING), "reasoning.summary", ("auto", "concise", "detailed")
    )


def _check_metadata(metadata: object) -> None:
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise invalid_type("metadata", "an object", metadata)
    if len(metadata) > 16:
        raise invalid(
            f"Invalid 'metadata': too many properties. Expected an object with at most 16 properties, "
            f"but got an object with {len(metadata)} properties instead.",
            "metadata",
            "object_above_max_properties",
        )
    for key, value in metadata.items():
        if len(key) > 64:
            raise invalid(
                f"Invalid 'metadata': key '{key[:64]}...' is longer than 64 characters.", "metadata"
            )
        if not isinstance(value, str):
            raise invalid_type(f"metadata.{key}", "a string", value)
        if len(value) > 512:
            raise invalid(
                f"Invalid 'metadata.{key}': string too long. Expected a string with maximum length 512.",
                f"metadata.{key}",
                "string_above_max_length",
            )


def _check_ids(items: list[dict[str, Any]]) -> None:
    """Item ids are strings, none repeated (OpenAI's answer); a blank one is no id (the gateway
    gives the item one)."""
    seen: set[str] = set()
    for i, item in enumerate(items):
        given = item.get("id")
        if given is None or given == "":
            continue
        if not isinstance(given, str):
            raise invalid_type(f"input[{i}].id", "a string", given)
        if given in seen:
            raise invalid(
                f"Duplicate item found with id {shown(given)}. Remove duplicate items from your "
                "input and try again.",
                f"input[{i}].id",
            )
        seen.add(given)


def _check(body: dict[str, Any]) -> ResponsesCall:
    model = need(body, "model", "", STRING)
    if not model:
        raise invalid("Invalid 'model': empty string.", "model", "empty_string")
    items = normalise(body.get("input"))
    for i, item in enumerate(items):
        check_item(item, f"input[{i}]")
    _check_ids(items)
    instructions = opt(body, "instructions", "", STRING)
    previous = opt(body, "previous_response_id", "", STRING)
    if previous is not None and not previous:
        raise invalid("Invalid 'previous_response_id': empty string.", "previous_response_id", "empty_string")
    stream = opt(body, "stream", "", BOOLEAN)
    store = opt(body, "store", "", BOOLEAN)
    background = opt(body, "background", "", BOOLEAN)
    if background and store is False:  # OpenAI's answer: nothing could be polled
        raise invalid("Background mode requires 'store' to be true.", "background")
    check_tools(body.get("tools"))
    check_tool_choice(body.get("tool_choice"), body.get("tools"))
    _check_text(body.get("text"))
    _check_reasoning(body.get("reasoning"))
    _check_metadata(body.get("metadata"))
    max_output = opt(body, "max_output_tokens", "", INTEGER)
    number_in(max_output, "max_output_tokens", 16, MAX_INT)
    number_in(opt(body, "max_tool_calls", "", INTEGER), "max_tool_calls", 0, MAX_INT)
    number_in(opt(body, "top_logprobs", "", INTEGER), "top_logprobs", 0, 20)
    number_in(opt(body, "temperature", "", NUMBER), "temperature", 0, 2)
    number_in(opt(body, "top_p", "", NUMBER), "top_p", 0, 1)
    opt(body, "parallel_tool_calls", "", BOOLEAN)
    for name in ("user", "safety_identifier", "prompt_cache_key", "service_tier"):
        opt(body, name, "", STRING)
    one_of(opt(body, "truncation", "", STRING), "truncation", ("auto", "disabled"))
    for i, entry in enumerate(opt(body, "include", "", ARRAY) or ()):
        if not isinstance(entry, str):
            raise invalid_type(f"include[{i}]", "a string", entry)
    stream_options = opt(body, "stream_options", "", OBJECT)
    if stream_options is not None and not stream:
        raise invalid(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options"
        )
    return ResponsesCall(
        model=model,
        stream=bool(stream),
        store=store is not False,
        previous_response_id=previous,
        instructions=instructions,
        background=bool(background),
        input=items,
        fields=body,
    )


def read_request(body: bytes) -> ResponsesCall:
    """Decode and validate a Responses API request body.

    :param body: the request body as received.
    :raises GatewayError: 400 in OpenAI's shape naming the field at fault.
    """
    try:
        decoded = decode_json(body)  # bounded depth, no repeated keys (JSONBodyError: a 400)
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise GatewayError(400, _BAD_JSON) from None
    except msgspec.ValidationError as exc:  # a number out of range
        raise GatewayError(400, f"{_BAD_JSON} ({exc})") from None
    if not isinstance(decoded, dict):
        raise invalid_type("body", "an object", decoded)
    return _check(decoded)


# --- translation ------------------------------------------------------------------------------


def _format(text: object) -> ResponseFormat | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict):
        return None
    kind = fmt.get("type")
    if kind == "json_object":
        return ResponseFormat(type="json_object")
    if kind != "json_schema":
        return None  # text: the chat default
    schema = JSONSchemaFormat(name=str(fmt.get("name")), schema=Raw(msgspec.json.encode(fmt.get("schema"))))
    if isinstance(fmt.get("description"), str):
        schema.description = fmt["description"]
    if isinstance(fmt.get("strict"), bool):
        schema.strict = fmt["strict"]
    return ResponseFormat(type="json_schema", json_schema=schema)


def _dropped(fields: dict[str, Any], notes: list[str]) -> None:
    for name in (
        "metadata",
        "prompt_cache_key",
        "service_tier",
        "truncation",
        "include",
        "top_logprobs",
        "max_tool_calls",
    ):
        if fields.get(name) is not None:
            notes.append(f"{name} is not sent")
    text = fields.get("text")
    if isinstance(text, dict) and text.get("verbosity") is not None:
        notes.append("text.verbosity is not sent")


def translate(call: ResponsesCall, items: list[dict[str, Any]]) -> Translation:
    """The chat form of ``call`` with ``items`` as its conversation, and what it lost.

    :param call: the validated request.
    :param items: the whole conversation: stored turns (input and output items), then
        ``call.input`` last (a problem in an earlier item names ``previous_response_id``).
    :raises UnsupportedRequest: for what only OpenAI deployments can serve.
    :raises GatewayError: 400 when nothing is left to send.
    """
    fields = call.fields
    for name in ("conversation", "prompt"):
        if fields.get(name) is not None:
            raise UnsupportedRequest(
                f"'{name}' refers to objects stored by OpenAI: only OpenAI deployments can serve it",
                param=name,
            )
    conversation = Conversation(offset=max(0, len(items) - len(call.input)))
    messages: list[Message] = []
    if call.instructions:
        messages.append(SystemMessage(content=call.instructions))
    messages.extend(conversation.translate(items))
    if not messages:
        raise missing("input")
    typed = ChatCompletionRequest(model=call.model, messages=messages)
    notes = list(conversation.notes)
    if call.stream:
        typed.stream = True
        typed.stream_options = StreamOptions(include_usage=True)
    tools = chat_tools(fields.get("tools"), fields.get("tool_choice"))
    if tools.tools:
        typed.tools = tools.tools
        typed.tool_choice = tools.tool_choice
        if isinstance(fields.get("parallel_tool_calls"), bool):
            typed.parallel_tool_calls = fields["parallel_tool_calls"]
    fmt = _format(fields.get("text"))
    if fmt is not None:
        typed.response_format = fmt
    if isinstance(fields.get("max_output_tokens"), int):
        typed.max_completion_tokens = fields["max_output_tokens"]
    for name in ("temperature", "top_p"):
        value = fields.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            setattr(typed, name, float(value))
    reasoning = fields.get("reasoning")
    effort = reasoning.get("effort") if isinstance(reasoning, dict) else None
    if isinstance(effort, str):
        typed.reasoning_effort = effort
    for name in ("user", "safety_identifier"):
        if isinstance(fields.get(name), str):
            setattr(typed, name, fields[name])
    _dropped(fields, notes)
    return Translation(typed=typed, notes=notes)


def to_chat(call: ResponsesCall, items: list[dict[str, Any]]) -> ChatCompletionRequest:
    """The chat form of ``call`` with ``items`` as its whole conversation (see :func:`translate`);
    what it lost is logged at debug level."""
    translation = translate(call, items)
    if translation.notes:
        logger.debug("responses dialect: for deployments of other dialects: {}", "; ".join(translation.notes))
    return translation.typed
