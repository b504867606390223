"""OpenAI chat requests → Bedrock Converse request bodies (pure; see the README's table).

What Bedrock cannot express raises :class:`~truckllm.errors.UnsupportedRequest` naming the
field, so the kernel tries another provider or answers 400; what has no equivalent but changes
nothing essential is dropped with a note (logged at debug).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

import msgspec
from msgspec import UNSET, Raw

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
    SystemMessage,
    TextPart,
    ToolMessage,
    UserMessage,
    is_set,
    text_of,
)

from .cache import MAX_CACHE_POINTS, NO_MARKS, CacheMarks, cache_point, keep_last_cache_points

__all__ = [
    "EMPTY_TOOL_RESULT",
    "REASONING_EFFORTS",
    "THINKING_BUDGETS",
    "Translation",
    "is_claude",
    "translate",
]

THINKING_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 4096, "high": 16384, "xhigh": 32768}
"""``reasoning_effort`` → Claude's ``thinking.budget_tokens`` (as the Anthropic provider)."""
REASONING_EFFORTS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "high"}
"""``reasoning_effort`` → Amazon Nova's ``reasoningConfig.maxReasoningEffort``."""
EMPTY_TOOL_RESULT = "(empty)"
"""Sent for an empty tool result (Bedrock refuses blank text)."""
IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
DOCUMENT_FORMATS = {
    "application/pdf": "pdf",
    "text/csv": "csv",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/html": "html",
    "text/plain": "txt",
    "text/markdown": "md",
}
MAX_STOP_SEQUENCES = 2500
_BAD_ID = re.compile(r"[^A-Za-z0-9_-]")
_BAD_NAME = re.compile(r"[^A-Za-z0-9 \-()\[\]]")
_decode = msgspec.json.decode


@dataclass
class Translation:
    """A Converse body and what was changed on the way (for the debug log)."""

    body: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def is_claude(model: str) -> bool:
    """An Anthropic Claude model id, inference profile id or ARN (``us.anthropic.claude-...``)."""
    return "anthropic.claude" in model


def _is_nova(model: str) -> bool:
    return "amazon.nova" in model


def tool_id(value: str) -> str:
    """A ``toolUseId`` Bedrock accepts (``[A-Za-z0-9_-]``, at most 64); same input, same id."""
    return (_BAD_ID.sub("_", value) or "_")[:64]


def translate(
    typed: ChatCompletionRequest,
    model: str,
    *,
    max_tokens: int | None,
    thinking_max_tokens: int,
    marks: CacheMarks = NO_MARKS,
) -> Translation:
    """The Converse body for an OpenAI chat request to ``model``.

    :param max_tokens: ``maxTokens`` when the client gives none (``None``: the model's default).
    :param thinking_max_tokens: added to the thinking budget when the client gave no limit.
    :param marks: the request's ``cache_control`` marks, sent as ``cachePoint`` blocks to the
        models with prompt caching (Claude, Nova); dropped with a note for the others.
    :raises UnsupportedRequest: for a parameter Bedrock cannot honour.
    """
    _refuse_unsupported(typed)
    out = Translation(body={})
    if marks is not NO_MARKS and not (is_claude(model) or _is_nova(model)):
        out.notes.append("cache_control dropped (the model has no prompt caching on Bedrock)")
        marks = NO_MARKS
    system, messages = _conversation(typed.messages, marks)
    if system:
        out.body["system"] = system
    out.body["messages"] = messages
    budget = _reasoning(out, typed, model)
    config = _inference(out, typed, max_tokens, budget, thinking_max_tokens)
    if config:
        out.body["inferenceConfig"] = config
    _tools(out, typed, messages, marks)
    _output(out, typed)
    dropped = keep_last_cache_points(out.body)
    if dropped:
        out.notes.append(f"the {dropped} earliest cache points dropped (Bedrock takes {MAX_CACHE_POINTS})")
    for name in (
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "parallel_tool_calls",
        "user",
        "safety_identifier",
        "metadata",
    ):
        if is_set(getattr(typed, name)):
            out.notes.append(f"{name} dropped (Converse has no equivalent)")
    return out


def _refuse_unsupported(typed: ChatCompletionRequest) -> None:
    if is_set(typed.n) and typed.n != 1:
        raise UnsupportedRequest("Bedrock does not support n > 1", param="n")
    if typed.logprobs is True or (is_set(typed.top_logprobs) and typed.top_logprobs):
        raise UnsupportedRequest("Bedrock does not return logprobs", param="logprobs")
    if is_set(typed.logit_bias) and typed.logit_bias:
        raise UnsupportedRequest("Bedrock does not support logit_bias", param="logit_bias")


# --- sampling and reasoning ----------------------------------------------------------------------


def _reasoning(out: Translation, typed: ChatCompletionRequest, model: str) -> int | None:
    effort = typed.reasoning_effort
    if not isinstance(effort, str) or effort == "none":
        return None
    if effort not in THINKING_BUDGETS:
        raise UnsupportedRequest(
            f"reasoning_effort {effort!r} is not supported; use one of: none, " + ", ".join(THINKING_BUDGETS),
            param="reasoning_effort",
        )
    if is_claude(model):
        budget = THINKING_BUDGETS[effort]
        out.body["additionalModelRequestFields"] = {"thinking": {"type": "enabled", "budget_tokens": budget}}
        return budget
    if _is_nova(model):
        out.body["additionalModelRequestFields"] = {
            "reasoningConfig": {"type": "enabled", "maxReasoningEffort": REASONING_EFFORTS[effort]}
        }
        return None
    raise UnsupportedRequest(
        f"reasoning_effort is not supported for the Bedrock model {model[:100]!r} "
        "(Claude and Nova models take it)",
        param="reasoning_effort",
    )


def _inference(
    out: Translation, typed: ChatCompletionRequest, default: int | None, budget: int | None, extra: int
) -> dict[str, Any]:
    config: dict[str, Any] = {}
    limit = typed.max_completion_tokens if is_set(typed.max_completion_tokens) else typed.max_tokens
    maximum = limit if isinstance(limit, int) else default
    if maximum == 0:
        raise UnsupportedRequest("max_tokens must be at least 1 for Bedrock", param="max_tokens")
    if budget is not None and (maximum is None or maximum <= budget):
        raised = budget + (maximum or extra)
        out.notes.append(f"maxTokens raised to {raised}, above the thinking budget {budget}")
        maximum = raised
    if maximum is not None:
        config["maxTokens"] = maximum
    for name, key in (("temperature", "temperature"), ("top_p", "topP")):
        value = getattr(typed, name)
        if not is_set(value):
            continue
        if budget is not None:
            out.notes.append(f"{name} dropped (Claude's extended thinking fixes it)")
            continue
        if value > 1:
            out.notes.append(f"{name} {value} clamped to 1 (Bedrock's range is 0-1)")
            value = 1.0
        config[key] = value
    if is_set(typed.top_k):
        out.notes.append("top_k dropped (Converse has no portable top_k)")
    stop = typed.stop
    if isinstance(stop, str | list):
        stops = [stop] if isinstance(stop, str) else list(stop)
        kept = [s for s in stops if s and not s.isspace()]
        if len(kept) != len(stops):
            out.notes.append("empty or whitespace-only stop sequences dropped")
        if kept:
            config["stopSequences"] = kept[:MAX_STOP_SEQUENCES]
    return config


# --- conversation --------------------------------------------------------------------------------


def _conversation(
    messages: list[Any], marks: CacheMarks = NO_MARKS
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if isinstance(msg, SystemMessage | DeveloperMessage):
            system.extend(_system_blocks(msg.content, i, marks))
        elif isinstance(msg, UserMessage):
            _append(turns, "user", _marked(_user_blocks(msg.content, where, i, marks), marks.message(i)))
        elif isinstance(msg, AssistantMessage):
            _append(turns, "assistant", _marked(_assistant_blocks(msg, where, i, marks), marks.message(i)))
        elif isinstance(msg, ToolMessage):
            text = text_of(msg.content)
            result = {
                "toolResult": {
                    "toolUseId": tool_id(msg.tool_call_id),
                    "content": [{"text": text if text.strip() else EMPTY_TOOL_RESULT}],
                }
            }
            _append(turns, "user", _marked([result], marks.any_in(i)))
        elif isinstance(msg, FunctionMessage):
            raise UnsupportedRequest(
                "the deprecated 'function' role is not supported by Bedrock; use tools", where
            )
    _order_tool_results(turns)
    for turn in turns:
        turn["content"] = _with_cache_points(turn["content"])
    if not turns:
        raise UnsupportedRequest("Bedrock needs at least one non-empty user or assistant message", "messages")
    if turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": [{"text": "(continue)"}]})
    return system, turns


_MARK = "\x00cache"
"""The key a block carries, while the turns are ordered, for the cache point to put after it."""


def _marked(blocks: list[dict[str, Any]], mark: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The blocks, the last one marked for a cache point after it (when ``mark`` is given)."""
    if mark is not None and blocks:
        blocks[-1].setdefault(_MARK, mark)
    return blocks


def _with_cache_points(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The blocks with a ``cachePoint`` block after each marked one (the marks removed)."""
    out: list[dict[str, Any]] = []
    for block in blocks:
        mark = block.pop(_MARK, None)
        out.append(block)
        if mark is not None:
            out.append(cache_point(mark))
    return out


def _system_blocks(content: Any, index: int, marks: CacheMarks) -> list[dict[str, Any]]:
    """A system message as one text block (one per part when a part is marked), with cache points."""
    if isinstance(content, list) and any(marks.part(index, j) for j in range(len(content))):
        blocks: list[dict[str, Any]] = []
        for j, part in enumerate(content):
            if part.text.strip():
                blocks.append({"text": part.text})
                _marked(blocks, marks.part(index, j))
        return _with_cache_points(_marked(blocks, marks.message(index)))
    text = text_of(content)
    return _with_cache_points(_marked([{"text": text}] if text.strip() else [], marks.message(index)))


def _append(turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Add a turn, merged into the previous one when the role repeats (Converse alternates)."""
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
        if role == "assistant":
            _reasoning_first(turns[-1]["content"])
    else:
        turns.append({"role": role, "content": blocks})


def _reasoning_first(blocks: list[dict[str, Any]]) -> None:
    """Reasoning blocks before every other block of an assistant turn: Bedrock refuses a
    ``toolUse`` followed by ``reasoningContent``."""
    blocks.sort(key=lambda b: 0 if "reasoningContent" in b else 1)


def _order_tool_results(turns: list[dict[str, Any]]) -> None:
    """In each user turn, ``toolResult`` blocks first, in the order of the calls they answer."""
    calls: list[str] = []
    for turn in turns:
        blocks = turn["content"]
        if turn["role"] == "assistant":
            calls = [b["toolUse"]["toolUseId"] for b in blocks if "toolUse" in b]
            continue
        results = [b for b in blocks if "toolResult" in b]
        if results:
            order = {call: n for n, call in enumerate(calls)}
            results.sort(key=lambda b: order.get(b["toolResult"]["toolUseId"], len(order)))
            turn["content"] = results + [b for b in blocks if "toolResult" not in b]


def _user_blocks(
    content: Any, where: str, index: int = 0, marks: CacheMarks = NO_MARKS
) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}] if content.strip() else []
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        param = f"{where}.content[{j}]"
        before = len(blocks)
        if isinstance(part, TextPart | RefusalPart):
            text = part.text if isinstance(part, TextPart) else part.refusal
            if text.strip():
                blocks.append({"text": text})
        elif isinstance(part, ImagePart):
            blocks.append(_image(part.image_url.url, f"{param}.image_url.url"))
        elif isinstance(part, FilePart):
            blocks.append(_document(part, len(blocks), param))
        elif isinstance(part, InputAudioPart):
            raise UnsupportedRequest("Bedrock's Converse API takes no audio input", param=param)
        if len(blocks) > before:
            _marked(blocks, marks.part(index, j))
    return blocks


def _data_uri(url: str, param: str) -> tuple[str, str]:
    """``(media type, standard base64)`` of a ``data:`` URI; the gateway never downloads URLs."""
    if url[:5].lower() != "data:":
        raise UnsupportedRequest(
            "Bedrock takes images and files as data: URIs (data:image/png;base64,...); "
            "the gateway does not download URLs",
            param=param,
        )
    header, comma, payload = url[5:].partition(",")
    params = [p.strip().lower() for p in header.split(";")]
    if not comma or "base64" not in params[1:]:
        raise UnsupportedRequest("a data URI must be base64 (data:<type>;base64,...)", param=param)
    payload = "".join(payload.split())
    try:
        raw = base64.b64decode(
            payload + "=" * (-len(payload) % 4),
            altchars=b"-_" if "-" in payload or "_" in payload else None,
            validate=True,
        )
    except (binascii.Error, ValueError):
        raise UnsupportedRequest("the data URI is not valid base64", param=param) from None
    if not raw:
        raise UnsupportedRequest("the data URI is empty", param=param)
    return params[0], base64.b64encode(raw).decode()


def _image(url: str, param: str) -> dict[str, Any]:
    media, data = _data_uri(url, param)
    image_format = IMAGE_FORMATS.get(media)
    if image_format is None:
        raise UnsupportedRequest(
            f"image type {media!r} is not supported by Bedrock (png, jpeg, gif, webp)", param
        )
    return {"image": {"format": image_format, "source": {"bytes": data}}}


def _document(part: FilePart, index: int, param: str) -> dict[str, Any]:
    data = part.file.file_data
    if not isinstance(data, str):
        raise UnsupportedRequest("Bedrock takes files as inline file_data data: URIs", param=f"{param}.file")
    media, payload = _data_uri(data, f"{param}.file.file_data")
    document_format = DOCUMENT_FORMATS.get(media)
    if document_format is None:
        raise UnsupportedRequest(f"file type {media!r} is not supported by Bedrock", param=f"{param}.file")
    name = part.file.filename if isinstance(part.file.filename, str) else ""
    name = _BAD_NAME.sub(" ", name.rsplit(".", 1)[0]).strip()[:200] or f"document {index + 1}"
    return {"document": {"format": document_format, "name": name, "source": {"bytes": payload}}}


def _assistant_blocks(
    msg: AssistantMessage, where: str, index: int = 0, marks: CacheMarks = NO_MARKS
) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if isinstance(msg.thinking_blocks, list):
        blocks.extend(
            _thinking(raw, f"{where}.thinking_blocks[{k}]") for k, raw in enumerate(msg.thinking_blocks)
        )
    content = msg.content
    texts = (
        [content]
        if isinstance(content, str)
        else [p.text if isinstance(p, TextPart) else p.refusal for p in content or []]
    )
    for j, text in enumerate(texts):
        if text.strip():
            blocks.append({"text": text})
            if not isinstance(content, str):
                _marked(blocks, marks.part(index, j))
    if not any("text" in b for b in blocks) and isinstance(msg.refusal, str) and msg.refusal.strip():
        blocks.append({"text": msg.refusal})
    if is_set(msg.function_call):
        raise UnsupportedRequest(
            "the deprecated function_call is not supported by Bedrock; use tool_calls",
            f"{where}.function_call",
        )
    for k, call in enumerate(msg.tool_calls or []):
        arguments = _arguments(call.function.arguments, f"{where}.tool_calls[{k}].function.arguments")
        blocks.append(
            {"toolUse": {"toolUseId": tool_id(call.id), "name": call.function.name, "input": arguments}}
        )
    _reasoning_first(blocks)
    return blocks


def _thinking(raw: Raw, param: str) -> dict[str, Any]:
    """A reasoning block of an earlier answer (Anthropic's ``thinking``/``redacted_thinking``
    shape, as this plugin and the Anthropic provider return them) as ``reasoningContent``."""
    try:
        block = _decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        block = None
    if isinstance(block, dict) and block.get("type") == "thinking" and isinstance(block.get("thinking"), str):
        text: dict[str, Any] = {"text": block["thinking"]}
        if isinstance(block.get("signature"), str) and block["signature"]:
            text["signature"] = block["signature"]
        return {"reasoningContent": {"reasoningText": text}}
    if (
        isinstance(block, dict)
        and block.get("type") == "redacted_thinking"
        and isinstance(block.get("data"), str)
    ):
        return {"reasoningContent": {"redactedContent": block["data"]}}
    raise UnsupportedRequest(
        "thinking_blocks items must be thinking or redacted_thinking blocks", param=param
    )


def _arguments(arguments: str, param: str) -> Any:
    """Tool-call arguments (a JSON string) as the ``toolUse.input`` object; ``""`` is ``{}``."""
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


# --- tools and output ------------------------------------------------------------------------------


def _tools(
    out: Translation,
    typed: ChatCompletionRequest,
    messages: list[dict[str, Any]],
    marks: CacheMarks = NO_MARKS,
) -> None:
    specs: list[dict[str, Any]] = []
    for i, tool in enumerate(typed.tools or ()):
        function = tool.function
        if tool.type != "function" or function is UNSET:
            raise UnsupportedRequest("Bedrock takes only function tools", param=f"tools[{i}]")
        spec: dict[str, Any] = {"name": function.name}
        if isinstance(function.description, str) and function.description:
            spec["description"] = function.description
        schema = (
            function.parameters
            if function.parameters is not UNSET
            else Raw(b'{"type":"object","properties":{}}')
        )
        spec["inputSchema"] = {"json": schema}
        specs.append({"toolSpec": spec})
        mark = marks.tool(i)
        if mark is not None:
            specs.append(cache_point(mark))
    history = any("toolUse" in b or "toolResult" in b for m in messages for b in m["content"])
    choice = typed.tool_choice
    if choice == "none":
        if not history:
            if specs:
                out.notes.append("tools not sent (tool_choice none)")
            return
        out.notes.append("tool_choice none sent as auto (Converse has no 'none'; the history has tool calls)")
        choice = "auto"
    if not specs:
        if choice == "required" or isinstance(choice, msgspec.Struct):
            raise UnsupportedRequest("tool_choice needs tools", param="tool_choice")
        if history:
            raise UnsupportedRequest(
                "Bedrock needs the tools' definitions when the conversation has tool calls", param="tools"
            )
        return
    config: dict[str, Any] = {"tools": specs}
    if choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, msgspec.Struct):
        name = choice.function.name if choice.function is not UNSET else ""
        if name not in {s["toolSpec"]["name"] for s in specs if "toolSpec" in s}:
            raise UnsupportedRequest(f"tool_choice names no tool of the request: {name!r}", "tool_choice")
        config["toolChoice"] = {"tool": {"name": name}}
    elif choice == "auto":
        config["toolChoice"] = {"auto": {}}
    out.body["toolConfig"] = config


def _output(out: Translation, typed: ChatCompletionRequest) -> None:
    fmt = typed.response_format
    if fmt is UNSET or fmt.type == "text":
        return
    name, description, schema = "response", None, b'{"type":"object"}'
    if fmt.type == "json_schema" and fmt.json_schema is not UNSET:
        name = fmt.json_schema.name
        if isinstance(fmt.json_schema.description, str):
            description = fmt.json_schema.description
        if fmt.json_schema.schema is not UNSET:
            schema = bytes(fmt.json_schema.schema)
    definition: dict[str, Any] = {"schema": schema.decode(), "name": name}
    if description:
        definition["description"] = description
    out.body["outputConfig"] = {
        "textFormat": {"type": "json_schema", "structure": {"jsonSchema": definition}}
    }
