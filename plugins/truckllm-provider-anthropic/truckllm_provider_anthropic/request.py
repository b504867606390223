"""OpenAI request → Anthropic Messages request (PROVIDERS.md §4.1, §4.2 and §5).

The translation reads the kernel's typed OpenAI request (``request.typed``) and builds the JSON
body of ``POST /v1/messages``. What Anthropic cannot do raises
:class:`~truckllm.errors.UnsupportedRequest` naming the parameter, so that the kernel may try a
deployment of another provider; what is harmless to lose is dropped and noted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import msgspec
from msgspec import UNSET, Raw

from truckllm.errors import UnsupportedRequest
from truckllm.kit.openai_schemas import (
    AssistantMessage,
    ChatCompletionRequest,
    CompletionRequest,
    DeveloperMessage,
    FilePart,
    FunctionMessage,
    ImagePart,
    InputAudioPart,
    RefusalPart,
    SystemMessage,
    TextPart,
    Tool,
    ToolMessage,
    UserMessage,
    is_set,
    text_of,
)
from truckllm.types import ChatRequest

from .cache import MAX_BREAKPOINTS, NO_MARKS, CacheMarks, cache_marks, keep_last_breakpoints
from .options import Options

__all__ = [
    "EMPTY_TOOL_RESULT",
    "IMAGE_TYPES",
    "JSON_TOOL",
    "MAX_REQUEST_BYTES",
    "THINKING_BUDGETS",
    "Translation",
    "sanitize_tool_id",
    "thinking_budget",
    "translate",
    "uses_json_tool",
]

JSON_TOOL = "json_tool_call"
"""The synthetic tool that carries ``response_format`` JSON answers (never shown to clients)."""

THINKING_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 4096, "high": 16384, "xhigh": 32768}
"""``reasoning_effort`` → ``thinking.budget_tokens``."""

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
"""The only image media types Anthropic accepts."""

EMPTY_TOOL_RESULT = "(empty)"
"""Sent for an empty tool result (Anthropic rejects empty text)."""

MAX_REQUEST_BYTES = 32 * 1024 * 1024
"""Anthropic's Messages API request size limit."""

_DEFAULT_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}
_JSON_OBJECT_SCHEMA: dict[str, Any] = {"type": "object"}
_BAD_ID_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_decode = msgspec.json.decode


@dataclass
class Translation:
    """A translated request body and what was changed on the way (for the debug log).

    :ivar body: the Anthropic request body, ready to encode (values may be ``msgspec.Raw``).
    :ivar notes: one line per dropped or adjusted parameter.
    """

    body: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def sanitize_tool_id(tool_id: str) -> str:
    """A tool-call id Anthropic accepts (``^[A-Za-z0-9_-]+$``); the same input gives the same id."""
    return _BAD_ID_CHARS.sub("_", tool_id) or "_"


def thinking_budget(typed: Any) -> int | None:
    """The thinking budget ``reasoning_effort`` asks for, ``None`` for no thinking.

    :raises UnsupportedRequest: for an effort this plugin does not know.
    """
    effort = getattr(typed, "reasoning_effort", None)
    if not isinstance(effort, str) or effort == "none":
        return None
    budget = THINKING_BUDGETS.get(effort)
    if budget is None:
        raise UnsupportedRequest(
            f"reasoning_effort {effort!r} is not supported; use one of: none, " + ", ".join(THINKING_BUDGETS),
            param="reasoning_effort",
        )
    return budget


def uses_json_tool(request: ChatRequest, options: Options) -> bool:
    """Whether this request's JSON answer comes back through the synthetic :data:`JSON_TOOL`."""
    typed = request.typed
    if request.dialect == "anthropic" or not isinstance(typed, ChatCompletionRequest):
        return False
    fmt = typed.response_format
    return fmt is not UNSET and fmt.type != "text" and options.json_mode == "tool"


def translate(request: ChatRequest, model: str, options: Options) -> Translation:
    """The Anthropic body for an OpenAI chat or completions request.

    :raises UnsupportedRequest: for a parameter Anthropic cannot honour.
    """
    typed = request.typed
    if isinstance(typed, ChatCompletionRequest):
        translation = _chat(typed, model, options, request)
    elif isinstance(typed, CompletionRequest):
        translation = _completion(typed, model, options)
    else:
        raise UnsupportedRequest(f"Anthropic does not serve the {request.endpoint} endpoint")
    if request.stream:
        translation.body["stream"] = True
    return translation


# --- chat ---------------------------------------------------------------------------------------


def _chat(typed: ChatCompletionRequest, model: str, options: Options, request: ChatRequest) -> Translation:
    _refuse_unsupported(typed)
    out = Translation(body={"model": model})
    notes = out.notes
    budget = thinking_budget(typed)
    max_tokens = _max_tokens(typed.max_completion_tokens, typed.max_tokens, model, options)
    if budget is not None and max_tokens <= budget:
        raised = budget + (max_tokens if max_tokens > 0 else options.default_max_tokens(model))
        notes.append(f"max_tokens raised from {max_tokens} to {raised} above the thinking budget {budget}")
        max_tokens = raised
    out.body["max_tokens"] = max_tokens
    marks = cache_marks(request)
    system, messages = _conversation(typed.messages, marks)
    if system:
        out.body["system"] = system
    out.body["messages"] = messages
    _sampling(out, typed.temperature, typed.top_p, typed.top_k, budget is not None, options)
    _stop(out, typed.stop)
    _user(out, typed.safety_identifier, typed.user)
    for name in ("seed", "presence_penalty", "frequency_penalty", "metadata"):
        if is_set(getattr(typed, name)):
            notes.append(f"{name} dropped (Anthropic has no equivalent)")
    _tools(out, typed, budget is not None, options, uses_json_tool(request, options), marks)
    dropped = keep_last_breakpoints(out.body)
    if dropped:
        notes.append(
            f"the {dropped} earliest cache_control marks dropped (Anthropic takes {MAX_BREAKPOINTS})"
        )
    if budget is not None:
        out.body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    return out


def _refuse_unsupported(typed: ChatCompletionRequest) -> None:
    if is_set(typed.n) and typed.n != 1:
        raise UnsupportedRequest("Anthropic does not support n > 1", param="n")
    if typed.logprobs is True:
        raise UnsupportedRequest("Anthropic does not return logprobs", param="logprobs")
    if is_set(typed.top_logprobs) and typed.top_logprobs:
        raise UnsupportedRequest("Anthropic does not return logprobs", param="top_logprobs")
    if is_set(typed.logit_bias) and typed.logit_bias:
        raise UnsupportedRequest("Anthropic does not support logit_bias", param="logit_bias")


def _max_tokens(completion: Any, legacy: Any, model: str, options: Options) -> int:
    if is_set(completion):
        return int(completion)
    if is_set(legacy):
        return int(legacy)
    return options.default_max_tokens(model)


def _sampling(
    out: Translation, temperature: Any, top_p: Any, top_k: Any, thinking: bool, options: Options
) -> None:
    notes = out.notes
    temperature = temperature if is_set(temperature) else None
    top_p = top_p if is_set(top_p) else None
    top_k = top_k if is_set(top_k) else None
    if thinking:
        for name, value in (("temperature", temperature), ("top_p", top_p), ("top_k", top_k)):
            if value is not None:
                notes.append(f"{name} dropped (Anthropic extended thinking fixes it)")
        return
    if temperature is not None:
        if temperature > 1:
            notes.append(f"temperature {temperature} clamped to 1 (Anthropic's range is 0-1)")
            temperature = 1.0
        out.body["temperature"] = temperature
    if top_p is not None:
        if temperature is not None and not options.temperature_with_top_p:
            notes.append("top_p dropped (the model rejects temperature and top_p together)")
        else:
            out.body["top_p"] = top_p
    if top_k is not None:
        out.body["top_k"] = top_k


def _stop(out: Translation, stop: Any) -> None:
    if not is_set(stop):
        return
    stops = [stop] if isinstance(stop, str) else list(stop)
    kept = [s for s in stops if s and not s.isspace()]
    if len(kept) != len(stops):
        out.notes.append("empty or whitespace-only stop sequences dropped")
    if kept:
        out.body["stop_sequences"] = kept


def _user(out: Translation, safety_identifier: Any, user: Any) -> None:
    for value in (safety_identifier, user):
        if isinstance(value, str) and value:
            out.body["metadata"] = {"user_id": value}
            return


# --- conversation -------------------------------------------------------------------------------


def _conversation(
    messages: list[Any], marks: CacheMarks = NO_MARKS
) -> tuple[str | list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[str] = []
    system_blocks: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if isinstance(msg, SystemMessage | DeveloperMessage):
            text = text_of(msg.content)
            if text and not text.isspace():
                system.append(text)
            system_blocks.extend(_marked(_system_blocks(msg.content, i, marks), marks.message(i)))
        elif isinstance(msg, UserMessage):
            _append(turns, "user", _marked(_user_blocks(msg.content, where, i, marks), marks.message(i)))
        elif isinstance(msg, AssistantMessage):
            _append(turns, "assistant", _marked(_assistant_blocks(msg, where, i, marks), marks.message(i)))
        elif isinstance(msg, ToolMessage):
            text = text_of(msg.content)
            result: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": sanitize_tool_id(msg.tool_call_id),
                "content": text if text and not text.isspace() else EMPTY_TOOL_RESULT,
            }
            mark = marks.any_in(i)
            if mark is not None:
                result["cache_control"] = mark
            _append(turns, "user", [result])
        elif isinstance(msg, FunctionMessage):
            raise UnsupportedRequest(
                "the deprecated 'function' role is not supported by Anthropic; use tools", param=where
            )
    _order_tool_results(turns)
    _trim_prefill(turns)
    if not turns:
        raise UnsupportedRequest(
            "Anthropic needs at least one non-empty user or assistant message", param="messages"
        )
    if any("cache_control" in block for block in system_blocks):
        return system_blocks, turns
    return "\n\n".join(system), turns


def _marked(blocks: list[Any], mark: dict[str, Any] | None) -> list[Any]:
    """The blocks, the last one carrying the message's own ``cache_control`` (when it has one)."""
    if mark is not None and blocks and isinstance(blocks[-1], dict) and "cache_control" not in blocks[-1]:
        blocks[-1]["cache_control"] = mark
    return blocks


def _system_blocks(content: Any, index: int, marks: CacheMarks) -> list[dict[str, Any]]:
    """A system message as text blocks, one per part (sent as blocks only when one is marked)."""
    if isinstance(content, str):
        return _text_block(content)
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        blocks.extend(_with_mark(_text_block(part.text), marks.part(index, j)))
    return blocks


def _with_mark(blocks: list[dict[str, Any]], mark: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The part's block (zero or one) with the part's ``cache_control``."""
    if mark is not None:
        for block in blocks:
            block["cache_control"] = mark
    return blocks


def _append(turns: list[dict[str, Any]], role: str, blocks: list[Any]) -> None:
    """Add a turn, merging it into the previous one when the role repeats (§5 item 6)."""
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def _order_tool_results(turns: list[dict[str, Any]]) -> None:
    """In each user turn, ``tool_result`` blocks first, in the previous turn's call order (§5 item 5)."""
    calls: list[str] = []
    for turn in turns:
        if turn["role"] == "assistant":
            calls = [b["id"] for b in turn["content"] if isinstance(b, dict) and b.get("type") == "tool_use"]
            continue
        blocks = turn["content"]
        results = [b for b in blocks if b.get("type") == "tool_result"]
        if not results:
            continue
        order = {tool_id: n for n, tool_id in enumerate(calls)}
        results.sort(key=lambda b: order.get(b["tool_use_id"], len(order)))
        turn["content"] = results + [b for b in blocks if b.get("type") != "tool_result"]


def _trim_prefill(turns: list[dict[str, Any]]) -> None:
    """A final assistant turn (prefill) may not end with whitespace."""
    if not turns or turns[-1]["role"] != "assistant":
        return
    blocks = turns[-1]["content"]
    last = blocks[-1]
    if isinstance(last, dict) and last.get("type") == "text":
        text = last["text"].rstrip()
        if text:
            last["text"] = text
        else:
            blocks.pop()
            if not blocks:
                turns.pop()


def _text_block(text: str) -> list[dict[str, Any]]:
    """A text block, or none for empty or whitespace-only text (Anthropic rejects both)."""
    return [{"type": "text", "text": text}] if text and not text.isspace() else []


def _user_blocks(
    content: Any, where: str, index: int = 0, marks: CacheMarks = NO_MARKS
) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return _text_block(content)
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        param = f"{where}.content[{j}]"
        mark = marks.part(index, j)
        if isinstance(part, TextPart):
            blocks.extend(_with_mark(_text_block(part.text), mark))
        elif isinstance(part, ImagePart):
            blocks.extend(_with_mark([_image_block(part.image_url.url, param)], mark))
        elif isinstance(part, FilePart):
            blocks.extend(_with_mark([_document_block(part, param)], mark))
        elif isinstance(part, InputAudioPart):
            raise UnsupportedRequest("Anthropic does not accept audio input", param=param)
        elif isinstance(part, RefusalPart):
            blocks.extend(_with_mark(_text_block(part.refusal), mark))
    return blocks


def _split_data_uri(url: str, param: str, what: str) -> tuple[str, str]:
    header, sep, data = url[5:].partition(",")
    pieces = header.split(";")
    if not sep or not data or "base64" not in (p.strip().lower() for p in pieces[1:]):
        raise UnsupportedRequest(f"{what} data URIs must be base64-encoded and non-empty", param=param)
    return pieces[0].strip().lower(), data.strip()


def _image_block(url: str, param: str) -> dict[str, Any]:
    if url[:5].lower() == "data:":
        media_type, data = _split_data_uri(url, param, "image")
        if media_type == "image/jpg":
            media_type = "image/jpeg"
        if media_type not in IMAGE_TYPES:
            raise UnsupportedRequest(
                f"image type {media_type or '(none)'!r} is not supported by Anthropic "
                "(jpeg, png, gif and webp are)",
                param=param,
            )
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url[:8].lower() == "https://" or url[:7].lower() == "http://":
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise UnsupportedRequest("image_url must be an http(s) URL or a base64 data URI", param=param)


def _document_block(part: FilePart, param: str) -> dict[str, Any]:
    data = part.file.file_data
    if not isinstance(data, str) or data[:5].lower() != "data:":
        raise UnsupportedRequest("Anthropic accepts files only as inline PDF data URIs", param=param)
    media_type, payload = _split_data_uri(data, param, "file")
    if media_type != "application/pdf":
        raise UnsupportedRequest(
            f"file type {media_type or '(none)'!r} is not supported by Anthropic (PDF is)", param=param
        )
    return {"type": "document", "source": {"type": "base64", "media_type": media_type, "data": payload}}


def _assistant_blocks(
    msg: AssistantMessage, where: str, index: int = 0, marks: CacheMarks = NO_MARKS
) -> list[Any]:
    blocks: list[Any] = []
    if isinstance(msg.thinking_blocks, list):
        for k, raw in enumerate(msg.thinking_blocks):
            blocks.append(_thinking_block(raw, f"{where}.thinking_blocks[{k}]"))
    content = msg.content
    if isinstance(content, str):
        blocks.extend(_text_block(content))
    elif isinstance(content, list):
        for j, part in enumerate(content):
            text = part.text if isinstance(part, TextPart) else part.refusal
            blocks.extend(_with_mark(_text_block(text), marks.part(index, j)))
    if (
        not any(isinstance(b, dict) and b.get("type") == "text" for b in blocks)
        and isinstance(msg.refusal, str)
        and msg.refusal
    ):
        blocks.extend(_text_block(msg.refusal))
    if msg.function_call is not UNSET and msg.function_call is not None:
        raise UnsupportedRequest(
            "the deprecated function_call is not supported by Anthropic; use tool_calls",
            param=f"{where}.function_call",
        )
    if isinstance(msg.tool_calls, list):
        for k, call in enumerate(msg.tool_calls):
            blocks.append(
                {
                    "type": "tool_use",
                    "id": sanitize_tool_id(call.id),
                    "name": call.function.name,
                    "input": _arguments(
                        call.function.arguments, f"{where}.tool_calls[{k}].function.arguments"
                    ),
                }
            )
    return blocks


def _thinking_block(raw: Raw, param: str) -> Raw:
    """A thinking block from an earlier answer, re-sent byte for byte (§5 item 15)."""
    try:
        block = _decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        block = None
    if not isinstance(block, dict) or block.get("type") not in ("thinking", "redacted_thinking"):
        raise UnsupportedRequest(
            "thinking_blocks items must be Anthropic thinking or redacted_thinking blocks", param=param
        )
    return raw


def _arguments(arguments: str, param: str) -> Any:
    """Tool-call arguments (a JSON string) as the ``tool_use.input`` object; ``""`` is ``{}``."""
    text = arguments.strip()
    if not text:
        return {}
    try:
        value = _decode(text)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        raise UnsupportedRequest("tool call arguments are not valid JSON", param=param) from None
    if not isinstance(value, dict):
        raise UnsupportedRequest("tool call arguments must be a JSON object", param=param)
    return Raw(text.encode())


# --- tools --------------------------------------------------------------------------------------


def _tools(
    out: Translation,
    typed: ChatCompletionRequest,
    thinking: bool,
    options: Options,
    json_tool: bool,
    marks: CacheMarks = NO_MARKS,
) -> None:
    body = out.body
    tools = [_tool(tool, f"tools[{i}]", marks.tool(i)) for i, tool in enumerate(typed.tools or ())]
    has_user_tools = bool(tools)
    fmt = typed.response_format
    forced_json = False
    if fmt is not UNSET and fmt.type != "text":
        schema, description = _json_format(fmt)
        if json_tool:
            if any(t["name"] == JSON_TOOL for t in tools):
                raise UnsupportedRequest(
                    f"the tool name {JSON_TOOL!r} is reserved when response_format is set", param="tools"
                )
            tools.append({"name": JSON_TOOL, "description": description, "input_schema": schema})
            forced_json = not has_user_tools
        else:
            body["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    if not tools:
        choice = typed.tool_choice
        if choice == "required" or isinstance(choice, msgspec.Struct):
            raise UnsupportedRequest("tool_choice needs tools", param="tool_choice")
        return
    body["tools"] = tools
    choice_obj = _tool_choice(typed)
    if forced_json:
        choice_obj = {"type": "tool", "name": JSON_TOOL}
    elif json_tool and typed.tool_choice is UNSET:
        choice_obj = {"type": "any"}  # answer with a tool: the user's, or the JSON one
    if thinking and choice_obj is not None and choice_obj["type"] in ("any", "tool"):
        out.notes.append("forced tool_choice relaxed to auto (Anthropic extended thinking forbids forcing)")
        choice_obj = {"type": "auto"}
    if typed.parallel_tool_calls is False:
        if choice_obj is None:
            choice_obj = {"type": "auto"}
        if choice_obj["type"] != "none":
            choice_obj["disable_parallel_tool_use"] = True
    if choice_obj is not None:
        body["tool_choice"] = choice_obj


def _tool(tool: Tool, param: str, mark: dict[str, Any] | None = None) -> dict[str, Any]:
    fn = tool.function
    if tool.type != "function" or fn is UNSET:
        raise UnsupportedRequest(f"tool type {tool.type!r} is not supported by Anthropic", param=param)
    entry: dict[str, Any] = {"name": fn.name}
    if isinstance(fn.description, str) and fn.description:
        entry["description"] = fn.description
    entry["input_schema"] = _object_schema(fn.parameters, f"{param}.function.parameters")
    if mark is not None:
        entry["cache_control"] = mark
    return entry


def _object_schema(raw: Any, param: str) -> Any:
    """An ``input_schema``: the JSON Schema as given when it is an object schema (kept byte for byte)."""
    if raw is UNSET:
        return dict(_DEFAULT_SCHEMA)
    try:
        schema = _decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        raise UnsupportedRequest("the schema is not valid JSON", param=param) from None
    if schema is None or schema == {}:
        return dict(_DEFAULT_SCHEMA)
    if not isinstance(schema, dict):
        raise UnsupportedRequest("the schema must be a JSON object", param=param)
    if "type" not in schema:
        return {"type": "object", **schema}
    if schema["type"] != "object":
        raise UnsupportedRequest("Anthropic needs an object schema (type: object)", param=param)
    return raw


def _json_format(fmt: Any) -> tuple[Any, str]:
    if fmt.type == "json_schema" and fmt.json_schema is not UNSET:
        spec = fmt.json_schema
        schema = _object_schema(spec.schema, "response_format.json_schema.schema")
        if schema == _DEFAULT_SCHEMA and spec.schema is UNSET:
            schema = dict(_JSON_OBJECT_SCHEMA)
        description = spec.description if isinstance(spec.description, str) and spec.description else ""
        return schema, description or f"Respond with the JSON object {spec.name}."
    return dict(_JSON_OBJECT_SCHEMA), "Respond with a JSON object."


def _tool_choice(typed: ChatCompletionRequest) -> dict[str, Any] | None:
    choice = typed.tool_choice
    if choice is UNSET:
        return None
    if choice == "auto":
        return {"type": "auto"}
    if choice == "none":
        return {"type": "none"}
    if choice == "required":
        return {"type": "any"}
    if isinstance(choice, str):  # pragma: no cover - the schema allows no other string
        raise UnsupportedRequest(f"tool_choice {choice!r} is not supported", param="tool_choice")
    if choice.type != "function" or choice.function is UNSET:
        raise UnsupportedRequest(
            f"tool_choice type {choice.type!r} is not supported by Anthropic", param="tool_choice"
        )
    return {"type": "tool", "name": choice.function.name}


# --- legacy completions -------------------------------------------------------------------------


def _completion(typed: CompletionRequest, model: str, options: Options) -> Translation:
    if typed.echo is True:
        raise UnsupportedRequest("Anthropic cannot echo the prompt", param="echo")
    if isinstance(typed.suffix, str) and typed.suffix:
        raise UnsupportedRequest("Anthropic does not support suffix", param="suffix")
    if is_set(typed.best_of) and typed.best_of != 1:
        raise UnsupportedRequest("Anthropic does not support best_of", param="best_of")
    if is_set(typed.logprobs):
        raise UnsupportedRequest("Anthropic does not return logprobs", param="logprobs")
    if is_set(typed.n) and typed.n != 1:
        raise UnsupportedRequest("Anthropic does not support n > 1", param="n")
    prompt: Any = typed.prompt
    if isinstance(prompt, list):
        if len(prompt) != 1 or not isinstance(prompt[0], str):
            if prompt and all(isinstance(p, str) for p in prompt):
                raise UnsupportedRequest("Anthropic takes one prompt per request", param="prompt")
            raise UnsupportedRequest("Anthropic does not accept token prompts", param="prompt")
        prompt = prompt[0]
    if not prompt:
        raise UnsupportedRequest("the prompt must not be empty", param="prompt")
    out = Translation(
        body={
            "model": model,
            "max_tokens": _max_tokens(UNSET, typed.max_tokens, model, options),
            "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}],
        }
    )
    _sampling(out, typed.temperature, typed.top_p, UNSET, False, options)
    _stop(out, typed.stop)
    _user(out, UNSET, typed.user)
    for name in ("seed", "presence_penalty", "frequency_penalty"):
        if is_set(getattr(typed, name)):
            out.notes.append(f"{name} dropped (Anthropic has no equivalent)")
    return out
