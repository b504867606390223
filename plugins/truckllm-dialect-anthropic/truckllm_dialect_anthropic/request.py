"""Anthropic Messages requests: validation, and translation to OpenAI's typed form.

:func:`read_request` validates a ``POST /v1/messages`` (or ``/v1/messages/count_tokens``) body
strictly enough to answer Anthropic-shaped 400s naming the field (``messages.2.content.0.text:
Field required``), and builds the same request as an OpenAI
:class:`~truckllm.kit.openai_schemas.ChatCompletionRequest` for deployments of other dialects.
The original bytes are never touched: Anthropic deployments get them as received (only
``model`` is rewritten by the provider), so thinking blocks, ``cache_control``, citations, beta
fields and anything newer survive.

``cache_control`` marks also reach the typed form, for deployments with prompt caching of their
own (Bedrock's ``cachePoint``, the Responses API's ``prompt_cache_breakpoint``): a marked text,
image or document block marks the (last) content part built from it, a marked ``tool_result``
(or a marked block inside it) its tool message, a marked ``tool_use`` its assistant message, a
marked tool its :class:`Tool`; a marked system block keeps the system message a list of text
parts. A marked single text stays a one-part list rather than becoming a plain string.

The rule for validation: the shape and the ranges of what the gateway reads are checked here;
rules between fields (``budget_tokens < max_tokens``, ``tool_result`` placement, alternation,
non-empty texts) and unknown fields or block types are left to the upstream, so that new API
features pass through to Anthropic deployments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from msgspec import UNSET, Raw, UnsetType

from truckllm.errors import GatewayError
from truckllm.kit.openai_schemas import (
    AssistantMessage,
    ChatCompletionRequest,
    ContentPart,
    FileContent,
    FilePart,
    FunctionCall,
    FunctionDef,
    ImagePart,
    ImageURL,
    JSONSchemaFormat,
    Message,
    NamedFunction,
    NamedToolChoice,
    RefusalPart,
    ResponseFormat,
    StreamOptions,
    SystemMessage,
    TextPart,
    Tool,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from truckllm.kit.safejson import decode_json

from .errors import invalid

__all__ = [
    "IMAGE_TYPES",
    "MAX_STOP",
    "AnthropicRequest",
    "effort_for_budget",
    "read_request",
]

IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
"""The image media types Anthropic accepts."""

MAX_STOP = 4
"""OpenAI's limit on ``stop``: later ``stop_sequences`` are dropped."""

MAX_INT = 2**31 - 1
_ROLES = ("user", "assistant")
_ASSISTANT_ONLY = frozenset({"tool_use", "thinking", "redacted_thinking", "server_tool_use"})
_BAD_JSON = (
    "There was an issue with the formatting or content of your request. Your request body must be valid JSON."
)


@dataclass
class AnthropicRequest:
    """A validated Anthropic request.

    :ivar body: the decoded body (the original bytes are kept by the caller).
    :ivar model: the ``model`` asked for (an alias).
    :ivar stream: the client asked for a stream.
    :ivar typed: the same request in OpenAI's typed form.
    :ivar notes: what the OpenAI form lost (dropped for non-Anthropic deployments).
    """

    body: dict[str, Any]
    model: str
    stream: bool
    typed: ChatCompletionRequest
    notes: list[str] = field(default_factory=list)


# --- small checks ------------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _need(obj: dict[str, Any], name: str, at: str, check: Callable[[object], bool], kind: str) -> Any:
    """``obj[name]``, required and of ``kind``."""
    if name not in obj or obj[name] is None:
        raise invalid("Field required", f"{at}.{name}" if at else name)
    value = obj[name]
    if not check(value):
        raise invalid(f"Input should be a valid {kind}", f"{at}.{name}" if at else name)
    return value


def _opt(obj: dict[str, Any], name: str, at: str, check: Callable[[object], bool], kind: str) -> Any:
    """``obj[name]`` when given (``None`` counts as not given), of ``kind``."""
    value = obj.get(name)
    if value is None:
        return None
    if not check(value):
        raise invalid(f"Input should be a valid {kind}", f"{at}.{name}" if at else name)
    return value


def _is_str(value: object) -> bool:
    return isinstance(value, str)


def _is_dict(value: object) -> bool:
    return isinstance(value, dict)


def _is_list(value: object) -> bool:
    return isinstance(value, list)


def _is_bool(value: object) -> bool:
    return isinstance(value, bool)


def _range(value: Any, name: str, low: float, high: float) -> None:
    if value < low:
        raise invalid(f"Input should be greater than or equal to {low}", name)
    if value > high:
        raise invalid(f"Input should be less than or equal to {high}", name)


def _block_type(block: object, at: str) -> str:
    if not isinstance(block, dict):
        raise invalid("Input should be a valid dictionary", at)
    kind = block.get("type")
    if kind is None:
        raise invalid("Field required", f"{at}.type")
    if not isinstance(kind, str):
        raise invalid("Input should be a valid string", f"{at}.type")
    return kind


def _cache_mark(block: dict[str, Any]) -> Raw | UnsetType:
    """A block's ``cache_control`` as the typed form holds it (unset when absent or not an object)."""
    mark = block.get("cache_control")
    return Raw(msgspec.json.encode(mark)) if isinstance(mark, dict) else UNSET


def _mark_last(parts: list[ContentPart], mark: Raw | UnsetType) -> list[ContentPart]:
    """``parts``, the last one carrying ``mark`` (when it can: text, image and file parts)."""
    if not isinstance(mark, UnsetType) and parts and isinstance(parts[-1], TextPart | ImagePart | FilePart):
        parts[-1].cache_control = mark
    return parts


def _is_marked(part: object) -> bool:
    return not isinstance(getattr(part, "cache_control", UNSET), UnsetType)


def effort_for_budget(budget: int) -> str:
    """OpenAI's ``reasoning_effort`` for an Anthropic thinking budget.

    The inverse of the Anthropic provider's mapping (low 1024, medium 4096, high 16384):
    below 4096 ``low``, below 16384 ``medium``, else ``high``.
    """
    if budget < 4096:
        return "low"
    if budget < 16384:
        return "medium"
    return "high"


# --- the translator ---------------------------------------------------------------------------


class _Reader:
    """One request's validation and translation, in a single walk over the body."""

    def __init__(self, body: dict[str, Any], endpoint: str) -> None:
        self.body = body
        self.endpoint = endpoint
        self.notes: list[str] = []
        self._noted: set[str] = set()

    def note(self, text: str) -> None:
        if text not in self._noted:
            self._noted.add(text)
            self.notes.append(text)

    # top level ---------------------------------------------------------------------------------

    def read(self) -> AnthropicRequest:
        body = self.body
        model = _need(body, "model", "", _is_str, "string")
        if not model:
            raise invalid("String should have at least 1 character", "model")
        max_tokens = None
        if self.endpoint == "chat":
            max_tokens = _need(body, "max_tokens", "", _is_int, "integer")
            _range(max_tokens, "max_tokens", 0, MAX_INT)
        stream = bool(_opt(body, "stream", "", _is_bool, "boolean")) and self.endpoint == "chat"
        messages: list[Message] = self.system(body.get("system"))
        raw_messages = _need(body, "messages", "", _is_list, "list")
        if not raw_messages:
            raise invalid("at least one message is required", "messages")
        for i, message in enumerate(raw_messages):
            messages.extend(self.message(message, f"messages.{i}"))
        if all(isinstance(m, SystemMessage) for m in messages):  # Anthropic refuses it too
            raise invalid(
                "all messages must have non-empty content except for the optional final assistant message",
                "messages",
            )
        typed = ChatCompletionRequest(model=model, messages=messages)
        if max_tokens is not None:
            typed.max_completion_tokens = max_tokens
        if stream:
            typed.stream = True
            typed.stream_options = StreamOptions(include_usage=True)
        self.sampling(typed)
        self.tools(typed)
        self.thinking(typed)
        self.output(typed)
        metadata = _opt(body, "metadata", "", _is_dict, "dictionary")
        if metadata is not None:
            user = _opt(metadata, "user_id", "metadata", _is_str, "string")
            if user:
                typed.user = user
        return AnthropicRequest(body=body, model=model, stream=stream, typed=typed, notes=self.notes)

    def system(self, system: Any) -> list[Message]:
        if system is None:
            return []
        if isinstance(system, str):
            return [SystemMessage(content=system)] if system else []
        if not isinstance(system, list):
            raise invalid("Input should be a valid string or a list of text blocks", "system")
        texts: list[TextPart] = []
        for i, block in enumerate(system):
            at = f"system.{i}"
            if _block_type(block, at) != "text":
                raise invalid("Input should be a valid text block", f"{at}.type")
            text = _need(block, "text", at, _is_str, "string")
            if text:
                texts.append(TextPart(text=text, cache_control=_cache_mark(block)))
        if not texts:
            return []
        if any(_is_marked(t) for t in texts):  # the marks' positions matter: one part a block
            return [SystemMessage(content=texts)]
        return [SystemMessage(content="\n\n".join(t.text for t in texts))]

    def sampling(self, typed: ChatCompletionRequest) -> None:
        body = self.body
        for name in ("temperature", "top_p"):
            value = _opt(body, name, "", _is_number, "number")
            if value is not None:
                _range(value, name, 0, 1)
                setattr(typed, name, float(value))
        top_k = _opt(body, "top_k", "", _is_int, "integer")
        if top_k is not None:
            _range(top_k, "top_k", 0, MAX_INT)
            typed.top_k = top_k
        stops = _opt(body, "stop_sequences", "", _is_list, "list")
        if stops is not None:
            for i, stop in enumerate(stops):
                if not isinstance(stop, str):
                    raise invalid("Input should be a valid string", f"stop_sequences.{i}")
            kept = [s for s in stops if s]
            if len(kept) > MAX_STOP:
                self.note(f"stop_sequences: only the first {MAX_STOP} are sent (OpenAI's limit)")
                kept = kept[:MAX_STOP]
            if kept:
                typed.stop = kept

    def tools(self, typed: ChatCompletionRequest) -> None:
        body = self.body
        raw_tools = _opt(body, "tools", "", _is_list, "list")
        tools: list[Tool] = []
        for i, tool in enumerate(raw_tools or ()):
            at = f"tools.{i}"
            if not isinstance(tool, dict):
                raise invalid("Input should be a valid dictionary", at)
            kind = _opt(tool, "type", at, _is_str, "string")
            if kind not in (None, "custom"):  # a server tool (web_search_20250305, bash_20250124...)
                self.note(f"tools: Anthropic's {kind!r} tool is dropped")
                continue
            name = _need(tool, "name", at, _is_str, "string")
            if not name:
                raise invalid("String should have at least 1 character", f"{at}.name")
            schema = _need(tool, "input_schema", at, _is_dict, "dictionary")
            description = _opt(tool, "description", at, _is_str, "string")
            tools.append(
                Tool(
                    function=FunctionDef(
                        name=name,
                        description=description if description is not None else UNSET,
                        parameters=Raw(msgspec.json.encode(schema)),
                    ),
                    cache_control=_cache_mark(tool),
                )
            )
        if tools:
            typed.tools = tools
        choice = _opt(body, "tool_choice", "", _is_dict, "dictionary")
        if choice is None:
            return
        kind = _need(choice, "type", "tool_choice", _is_str, "string")
        if kind not in ("auto", "any", "tool", "none"):
            raise invalid(
                "Input tag found using 'type' does not match any of the expected tags: "
                "'auto', 'any', 'tool', 'none'",
                "tool_choice.type",
            )
        name = _need(choice, "name", "tool_choice", _is_str, "string") if kind == "tool" else None
        serial = _opt(choice, "disable_parallel_tool_use", "tool_choice", _is_bool, "boolean")
        if not tools:  # OpenAI refuses tool_choice and parallel_tool_calls without tools
            return
        if kind == "auto":
            typed.tool_choice = "auto"
        elif kind == "any":
            typed.tool_choice = "required"
        elif kind == "none":
            typed.tool_choice = "none"
        else:
            typed.tool_choice = NamedToolChoice(type="function", function=NamedFunction(name=str(name)))
        if serial and kind != "none":
            typed.parallel_tool_calls = False

    def thinking(self, typed: ChatCompletionRequest) -> None:
        thinking = _opt(self.body, "thinking", "", _is_dict, "dictionary")
        if thinking is None:
            return
        kind = _need(thinking, "type", "thinking", _is_str, "string")
        if kind not in ("enabled", "disabled", "adaptive"):
            raise invalid(
                "Input tag found using 'type' does not match any of the expected tags: "
                "'enabled', 'disabled', 'adaptive'",
                "thinking.type",
            )
        if kind == "enabled":
            budget = _need(thinking, "budget_tokens", "thinking", _is_int, "integer")
            _range(budget, "thinking.budget_tokens", 1024, MAX_INT)
            typed.reasoning_effort = effort_for_budget(budget)

    def output(self, typed: ChatCompletionRequest) -> None:
        body = self.body
        config = _opt(body, "output_config", "", _is_dict, "dictionary")
        formats: list[tuple[str, Any]] = [("output_format", body.get("output_format"))]
        if config is not None:
            formats.insert(0, ("output_config.format", config.get("format")))
            effort = _opt(config, "effort", "output_config", _is_str, "string")
            if effort is not None and typed.reasoning_effort is UNSET:
                typed.reasoning_effort = "high" if effort == "max" else effort
        for at, fmt in formats:
            if fmt is None:
                continue
            if not isinstance(fmt, dict):
                raise invalid("Input should be a valid dictionary", at)
            kind = _need(fmt, "type", at, _is_str, "string")
            if kind != "json_schema":
                raise invalid(
                    "Input tag found using 'type' does not match any of the expected tags: 'json_schema'",
                    f"{at}.type",
                )
            schema = _need(fmt, "schema", at, _is_dict, "dictionary")
            typed.response_format = ResponseFormat(
                type="json_schema",
                json_schema=JSONSchemaFormat(name="response", schema=Raw(msgspec.json.encode(schema))),
            )
            return

    # messages ----------------------------------------------------------------------------------

    def message(self, message: Any, at: str) -> list[Message]:
        if not isinstance(message, dict):
            raise invalid("Input should be a valid dictionary", at)
        role = message.get("role")
        if role is None:
            raise invalid("Field required", f"{at}.role")
        if role == "system":
            raise invalid(
                'Unexpected role "system". The Messages API accepts a top-level `system` parameter, '
                'not "system" as an input message role.',
                f"{at}.role",
            )
        if role not in _ROLES:
            raise invalid("Input should be 'user' or 'assistant'", f"{at}.role")
        if "content" not in message or message["content"] is None:
            raise invalid("Field required", f"{at}.content")
        content = message["content"]
        if isinstance(content, str):
            if not content:
                return []
            return [UserMessage(content=content) if role == "user" else AssistantMessage(content=content)]
        if not isinstance(content, list):
            raise invalid("Input should be a valid string or a list of content blocks", f"{at}.content")
        if role == "user":
            return self.user(content, f"{at}.content")
        return self.assistant(content, f"{at}.content")

    def user(self, blocks: list[Any], at: str) -> list[Message]:
        results: list[Message] = []
        result_media: list[ContentPart] = []
        parts: list[ContentPart] = []
        for j, block in enumerate(blocks):
            where = f"{at}.{j}"
            kind = _block_type(block, where)
            if kind in _ASSISTANT_ONLY:
                raise invalid(f"`{kind}` blocks can only be in `assistant` messages", where)
            if kind == "tool_result":
                results.append(self.tool_result(block, where, result_media))
            else:
                parts.extend(_mark_last(self.part(block, kind, where), _cache_mark(block)))
        parts = result_media + parts
        if len(parts) == 1 and isinstance(parts[0], TextPart) and not _is_marked(parts[0]):
            results.append(UserMessage(content=parts[0].text))
        elif parts:
            results.append(UserMessage(content=parts))
        return results

    def assistant(self, blocks: list[Any], at: str) -> list[Message]:
        texts: list[TextPart | RefusalPart] = []
        calls: list[ToolCall] = []
        call_mark: Raw | UnsetType = UNSET
        for j, block in enumerate(blocks):
            where = f"{at}.{j}"
            kind = _block_type(block, where)
            if kind == "tool_result":
                raise invalid("`tool_result` blocks can only be in `user` messages", where)
            if kind == "text":
                text = _need(block, "text", where, _is_str, "string")
                if text:
                    texts.append(TextPart(text=text, cache_control=_cache_mark(block)))
            elif kind == "tool_use":
                call_id = _need(block, "id", where, _is_str, "string")
                name = _need(block, "name", where, _is_str, "string")
                arguments = _need(block, "input", where, _is_dict, "dictionary")
                calls.append(
                    ToolCall(
                        id=call_id,
                        function=FunctionCall(name=name, arguments=msgspec.json.encode(arguments).decode()),
                    )
                )
                call_mark = _cache_mark(block) if "cache_control" in block else call_mark
            elif kind == "thinking":
                _need(block, "thinking", where, _is_str, "string")
                _need(block, "signature", where, _is_str, "string")
                self.note("thinking blocks in the history are dropped")
            elif kind == "redacted_thinking":
                _need(block, "data", where, _is_str, "string")
                self.note("thinking blocks in the history are dropped")
            else:
                self.note(f"{kind!r} blocks in assistant turns are dropped")
        if not texts and not calls:
            return []
        content: str | list[TextPart | RefusalPart] | None = None
        if len(texts) == 1 and isinstance(texts[0], TextPart) and not _is_marked(texts[0]):
            content = texts[0].text
        elif texts:
            content = texts
        message = AssistantMessage(content=content, cache_control=call_mark)
        if calls:
            message.tool_calls = calls
        return [message]

    def tool_result(self, block: dict[str, Any], at: str, media: list[ContentPart]) -> ToolMessage:
        call_id = _need(block, "tool_use_id", at, _is_str, "string")
        is_error = _opt(block, "is_error", at, _is_bool, "boolean")
        content = block.get("content")
        texts: list[str] = []
        mark = _cache_mark(block)
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            for k, inner in enumerate(content):
                where = f"{at}.content.{k}"
                kind = _block_type(inner, where)
                inner_mark = _cache_mark(inner)
                for part in _mark_last(self.part(inner, kind, where), inner_mark):
                    if isinstance(part, TextPart):
                        texts.append(part.text)
                        mark = inner_mark if isinstance(mark, UnsetType) else mark
                    else:  # OpenAI tool messages hold text only: media follow in a user turn
                        media.append(part)
                        texts.append("(attached below)")
        elif content is not None:
            raise invalid("Input should be a valid string or a list of content blocks", f"{at}.content")
        text = "\n".join(texts)
        if is_error:
            text = f"Error: {text}" if text else "Error"
        return ToolMessage(tool_call_id=call_id, content=text, cache_control=mark)

    def part(self, block: dict[str, Any], kind: str, at: str) -> list[ContentPart]:
        """A user-side block as OpenAI content parts (none when it has no equivalent)."""
        if kind == "text":
            text = _need(block, "text", at, _is_str, "string")
            return [TextPart(text=text)] if text else []
        if kind == "image":
            return self.image(_need(block, "source", at, _is_dict, "dictionary"), f"{at}.source")
        if kind == "document":
            return self.document(block, at)
        if kind == "search_result":
            inner = block.get("content")
            texts = [b.get("text") for b in inner if isinstance(b, dict)] if isinstance(inner, list) else []
            text = "\n".join(t for t in texts if isinstance(t, str) and t)
            return [TextPart(text=text)] if text else []
        self.note(f"{kind!r} blocks are dropped")
        return []

    def image(self, source: dict[str, Any], at: str) -> list[ContentPart]:
        kind = _need(source, "type", at, _is_str, "string")
        if kind == "base64":
            media_type = _need(source, "media_type", at, _is_str, "string")
            if media_type not in IMAGE_TYPES:
                raise invalid(
                    "Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'",
                    f"{at}.media_type",
                )
            data = _need(source, "data", at, _is_str, "string")
            return [ImagePart(image_url=ImageURL(url=f"data:{media_type};base64,{data}"))]
        if kind == "url":
            url = _need(source, "url", at, _is_str, "string")
            if not url:
                raise invalid("String should have at least 1 character", f"{at}.url")
            return [ImagePart(image_url=ImageURL(url=url))]
        if kind == "file":
            _need(source, "file_id", at, _is_str, "string")
            self.note("images by file_id (Files API) are dropped")
            return []
        raise invalid(
            f"Input tag '{kind}' found using 'type' does not match any of the expected tags: "
            "'base64', 'url', 'file'",
            f"{at}.type",
        )

    def document(self, block: dict[str, Any], at: str) -> list[ContentPart]:
        source = _need(block, "source", at, _is_dict, "dictionary")
        where = f"{at}.source"
        kind = _need(source, "type", where, _is_str, "string")
        title = block.get("title") if isinstance(block.get("title"), str) else None
        if kind == "base64":
            media_type = _need(source, "media_type", where, _is_str, "string")
            data = _need(source, "data", where, _is_str, "string")
            return [
                FilePart(
                    file=FileContent(
                        file_data=f"data:{media_type};base64,{data}", filename=title or "document.pdf"
                    )
                )
            ]
        if kind == "text":
            data = _need(source, "data", where, _is_str, "string")
            return [TextPart(text=data)] if data else []
        if kind == "content":
            inner = source.get("content")
            if isinstance(inner, str):
                return [TextPart(text=inner)] if inner else []
            parts: list[ContentPart] = []
            for k, sub in enumerate(inner if isinstance(inner, list) else ()):
                sub_at = f"{where}.content.{k}"
                parts.extend(self.part(sub, _block_type(sub, sub_at), sub_at))
            return parts
        if kind in ("url", "file"):
            self.note(f"documents by {kind} are dropped")
            return []
        raise invalid(
            f"Input tag '{kind}' found using 'type' does not match any of the expected tags: "
            "'base64', 'text', 'content', 'url', 'file'",
            f"{where}.type",
        )


def read_request(body: bytes, endpoint: str) -> AnthropicRequest:
    """Decode and validate an Anthropic request body; build its OpenAI typed form.

    :param body: the request body as received.
    :param endpoint: ``chat`` (``/v1/messages``: ``max_tokens`` required) or ``count_tokens``.
    :raises GatewayError: 400 naming the field at fault.
    """
    try:
        decoded = decode_json(body)  # bounded depth, no repeated keys (JSONBodyError: a 400)
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise GatewayError(400, _BAD_JSON) from None
    except msgspec.ValidationError as exc:  # a number out of range
        raise GatewayError(400, f"{_BAD_JSON} ({exc})") from None
    if not isinstance(decoded, dict):
        raise invalid("Input should be a valid dictionary")
    return _Reader(decoded, endpoint).read()
