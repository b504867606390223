"""Input items: their validation, and their translation to chat messages.

:func:`normalise` turns ``input`` (a string or a list) into the list of item objects the rest of
the dialect works on; :func:`check_item` validates one item as OpenAI does (400 naming
``input[i]...``); :class:`Conversation` translates a whole list of items (a stored conversation
and this call's input) into OpenAI chat messages:

- ``message`` items: roles ``user`` / ``system`` / ``developer`` (``input_text``,
  ``input_image``, ``input_file``, ``input_audio`` parts) and ``assistant`` (``output_text``,
  ``refusal`` parts, or a string);
- ``reasoning`` items, ``assistant`` messages and consecutive ``function_call`` items of one turn
  become one assistant message (``thinking_blocks`` from a gateway-made ``encrypted_content``,
  the text, then ``tool_calls`` with ``call_id`` as the tool call's id);
- ``function_call_output`` items become ``tool`` messages (images and files in an output follow
  in a ``user`` message, the tool text says ``(attached below)``).

Items only OpenAI can serve (``item_reference``, built-in tool calls, files by id or URL) raise
:class:`~truckllm.errors.UnsupportedRequest` from the translation: they stay valid for OpenAI
deployments, which get the request as received.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from msgspec import UNSET, Raw, UnsetType

from truckllm.errors import UnsupportedRequest
from truckllm.kit.openai_schemas import (
    AssistantMessage,
    ContentPart,
    DeveloperMessage,
    FileContent,
    FilePart,
    FunctionCall,
    ImagePart,
    ImageURL,
    InputAudio,
    InputAudioPart,
    Message,
    RefusalPart,
    SystemMessage,
    TextPart,
    ToolCall,
    ToolMessage,
    UserMessage,
)

from .cache import cache_mark, check_breakpoint
from .checks import ARRAY, OBJECT, STRING, join, need, one_of, opt
from .errors import invalid_type, invalid_value, missing
from .wire import open_thinking

__all__ = [
    "BUILTIN_ITEM_TYPES",
    "ITEM_TYPES",
    "Conversation",
    "check_item",
    "normalise",
]

TRANSLATED_ITEM_TYPES = ("message", "function_call", "function_call_output", "reasoning")
"""Item types translated for chat deployments."""

BUILTIN_ITEM_TYPES = (
    "item_reference",
    "file_search_call",
    "computer_call",
    "computer_call_output",
    "web_search_call",
    "tool_search_call",
    "tool_search_output",
    "additional_tools",
    "configuration_update",
    "compaction",
    "compaction_trigger",
    "image_generation_call",
    "code_interpreter_call",
    "local_shell_call",
    "local_shell_call_output",
    "shell_call",
    "shell_call_output",
    "apply_patch_call",
    "apply_patch_call_output",
    "mcp_list_tools",
    "mcp_approval_request",
    "mcp_approval_response",
    "mcp_call",
    "custom_tool_call",
    "custom_tool_call_output",
    "program",
    "program_output",
)
"""Valid item types that only OpenAI can serve (its own tools, its own stored items)."""

ITEM_TYPES = TRANSLATED_ITEM_TYPES + BUILTIN_ITEM_TYPES
"""Every item type OpenAI accepts in ``input``."""

_ROLES = ("user", "assistant", "system", "developer")
_INPUT_PARTS = ("input_text", "input_image", "input_file", "input_audio")
_OUTPUT_PARTS = ("output_text", "refusal")
_OUTPUT_ITEM_PARTS = ("input_text", "input_image", "input_file")
_DETAILS = ("low", "high", "auto", "original")
_AUDIO_FORMATS = ("mp3", "wav")


def normalise(value: object, at: str = "input") -> list[dict[str, Any]]:
    """``input`` as a list of item objects, each with its ``type``.

    A string is one ``user`` message with one ``input_text`` part; an item without ``type`` is a
    ``message`` when it has a ``role``, else an ``item_reference`` when it has an ``id``.
    The items are shallow copies: the decoded body is not changed.

    :raises GatewayError: 400 for an ``input`` that is neither, or an item that is not an object.
    """
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}]
    if not isinstance(value, list):
        raise invalid_type(at, "one of a string or array of input items", value)
    items: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        where = f"{at}[{i}]"
        if not isinstance(item, dict):
            raise invalid_type(where, "an object", item)
        item = dict(item)
        if item.get("type") is None:
            if "role" in item:
                item["type"] = "message"
            elif "id" in item:
                item["type"] = "item_reference"
            else:
                raise missing(join(where, "type"))
        items.append(item)
    return items


# --- validation -----------------------------------------------------------------------------


def check_item(item: dict[str, Any], at: str) -> None:
    """Validate one normalised item as OpenAI does (the shape of what the gateway reads).

    :raises GatewayError: 400 naming the field at fault (``input[3].content[0].type``).
    """
    kind = need(item, "type", at, STRING)
    if kind == "message":
        _check_message(item, at)
    elif kind == "function_call":
        need(item, "call_id", at, STRING)
        need(item, "name", at, STRING)
        need(item, "arguments", at, STRING)
    elif kind == "function_call_output":
        need(item, "call_id", at, STRING)
        output = item.get("output")
        if output is None:
            raise missing(join(at, "output"))
        if isinstance(output, list):
            for j, part in enumerate(output):
                _check_part(part, f"{at}.output[{j}]", _OUTPUT_ITEM_PARTS)
        elif not isinstance(output, str):
            raise invalid_type(join(at, "output"), "one of a string or array of content parts", output)
    elif kind == "reasoning":
        summary = need(item, "summary", at, ARRAY)
        for j, part in enumerate(summary):
            where = f"{at}.summary[{j}]"
            if not isinstance(part, dict):
                raise invalid_type(where, "an object", part)
            one_of(need(part, "type", where, STRING), join(where, "type"), ("summary_text",))
            need(part, "text", where, STRING)
        opt(item, "encrypted_content", at, STRING)
        opt(item, "content", at, ARRAY)
    elif kind == "item_reference":
        need(item, "id", at, STRING)
    elif kind not in BUILTIN_ITEM_TYPES:
        raise invalid_value(join(at, "type"), kind, ITEM_TYPES)


def _check_message(item: dict[str, Any], at: str) -> None:
    role = item.get("role")
    if role is None:
        raise missing(join(at, "role"))
    one_of(role, join(at, "role"), _ROLES)
    content = item.get("content")
    if content is None:
        raise missing(join(at, "content"))
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise invalid_type(join(at, "content"), "one of a string or array of content parts", content)
    allowed = _OUTPUT_PARTS if role == "assistant" else _INPUT_PARTS
    for j, part in enumerate(content):
        _check_part(part, f"{at}.content[{j}]", allowed)


def _check_part(part: object, at: str, allowed: tuple[str, ...]) -> None:
    if not isinstance(part, dict):
        raise invalid_type(at, "an object", part)
    kind = need(part, "type", at, STRING)
    one_of(kind, join(at, "type"), allowed)
    if kind in ("input_text", "input_image", "input_file"):
        check_breakpoint(part, at)
    if kind in ("input_text", "output_text"):
        need(part, "text", at, STRING)
    elif kind == "refusal":
        need(part, "refusal", at, STRING)
    elif kind == "input_image":
        url = opt(part, "image_url", at, STRING)
        file_id = opt(part, "file_id", at, STRING)
        if url is None and file_id is None:
            raise missing(join(at, "image_url"))
        one_of(opt(part, "detail", at, STRING), join(at, "detail"), _DETAILS)
    elif kind == "input_file":
        given = [opt(part, name, at, STRING) for name in ("file_data", "file_id", "file_url")]
        opt(part, "filename", at, STRING)
        if all(value is None for value in given):
            raise missing(join(at, "file_data"))
    elif kind == "input_audio":
        audio = need(part, "input_audio", at, OBJECT)
        where = join(at, "input_audio")
        need(audio, "data", where, STRING)
        one_of(need(audio, "format", where, STRING), join(where, "format"), _AUDIO_FORMATS)


# --- translation ----------------------------------------------------------------------------


@dataclass
class _Turn:
    """One assistant turn being gathered: reasoning, text and tool calls of consecutive items."""

    thinking: list[Raw] = field(default_factory=list)
    texts: list[TextPart | RefusalPart] = field(default_factory=list)
    calls: list[ToolCall] = field(default_factory=list)


class Conversation:
    """Translates a list of normalised, validated items into chat messages.

    :param offset: the index in ``items`` where this call's own input starts (earlier items come
        from a stored conversation: a problem with one of them names ``previous_response_id``).
    """

    def __init__(self, offset: int = 0) -> None:
        self.offset = offset
        self.messages: list[Message] = []
        self.notes: list[str] = []
        self._turn = _Turn()
        self._media: list[ContentPart] = []

    def note(self, text: str) -> None:
        """Record something the chat form loses (once per text)."""
        if text not in self.notes:
            self.notes.append(text)

    def where(self, index: int) -> str:
        """The path of item ``index``: ``input[k]`` for this call's items."""
        if index >= self.offset:
            return f"input[{index - self.offset}]"
        return "previous_response_id"

    def param(self, index: int, suffix: str) -> str:
        """The path of a field of item ``index`` (stored items: ``previous_response_id``)."""
        base = self.where(index)
        return base + suffix if index >= self.offset else base

    def translate(self, items: list[dict[str, Any]]) -> list[Message]:
        """The chat messages for ``items``, in order.

        :raises UnsupportedRequest: for an item only OpenAI can serve.
        """
        for i, item in enumerate(items):
            kind = item.get("type")
            if kind is None:  # not normalised: as normalise() reads it
                kind = "message" if "role" in item else "item_reference"
            if kind == "message":
                self._message(item, i)
            elif kind == "function_call":
                self._flush_media()
                self._turn.calls.append(
                    ToolCall(
                        id=str(item.get("call_id")),
                        function=FunctionCall(
                            name=str(item.get("name")), arguments=str(item.get("arguments"))
                        ),
                    )
                )
            elif kind == "function_call_output":
                self._flush_turn()
                self.messages.append(self._tool_message(item, i))
            elif kind == "reasoning":
                self._reasoning(item)
            else:
                self._unsupported(str(kind), i)
        self._flush_turn()
        self._flush_media()
        return self.messages

    # --- items -------------------------------------------------------------------------------

    def _unsupported(self, kind: str, index: int) -> None:
        if kind == "item_reference":
            message = (
                "item_reference items name items stored by OpenAI: only OpenAI deployments can "
                "serve them; send the items themselves"
            )
        else:
            message = f"'{kind}' items are OpenAI built-in tool items: only OpenAI deployments can serve them"
        if index < self.offset:
            message = "the previous response holds " + message
        raise UnsupportedRequest(message, param=self.param(index, ".type"))

    def _message(self, item: dict[str, Any], index: int) -> None:
        role = item.get("role")
        content = item.get("content")
        if role == "assistant":  # text after the turn's calls (before their outputs) joins them
            self._flush_media()
            if isinstance(content, str):
                if content:
                    self._turn.texts.append(TextPart(text=content, cache_control=cache_mark(item)))
                return
            for part in content if isinstance(content, list) else ():
                if part.get("type") == "refusal":
                    self._turn.texts.append(RefusalPart(refusal=str(part.get("refusal"))))
                elif part.get("text"):
                    self._turn.texts.append(
                        TextPart(text=str(part.get("text")), cache_control=cache_mark(part))
                    )
            own = cache_mark(item)
            last = self._turn.texts[-1] if self._turn.texts else None
            if (
                isinstance(own, Raw)
                and isinstance(last, TextPart)
                and isinstance(last.cache_control, UnsetType)
            ):
                last.cache_control = own  # the message's own mark: on its last part
            return
        self._flush_turn()
        self._flush_media()
        own = cache_mark(item)
        if isinstance(content, str):
            parts: list[ContentPart] = [TextPart(text=content)] if content else []
        else:
            parts = []
            for j, part in enumerate(content if isinstance(content, list) else ()):
                parts.extend(self._part(part, self.param(index, f".content[{j}]")))
        if role in ("system", "developer"):
            texts: list[TextPart] = []
            for part in parts:
                if not isinstance(part, TextPart):
                    raise UnsupportedRequest(
                        f"{role} messages can hold only text for this deployment",
                        param=self.param(index, ".content"),
                    )
                texts.append(part)
            if texts:
                body: str | list[TextPart] = texts[0].text if _plain(texts) else texts
                if role == "system":
                    self.messages.append(SystemMessage(content=body, cache_control=own))
                else:
                    self.messages.append(DeveloperMessage(content=body, cache_control=own))
            return
        first = parts[0] if parts else None
        if isinstance(first, TextPart) and _plain(parts):
            self.messages.append(UserMessage(content=first.text, cache_control=own))
        elif parts:
            self.messages.append(UserMessage(content=parts, cache_control=own))

    def _part(self, part: dict[str, Any], param: str) -> list[ContentPart]:
        kind = part.get("type")
        mark = cache_mark(part)
        if kind == "input_text":
            text = str(part.get("text"))
            return [TextPart(text=text, cache_control=mark)] if text else []
        if kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str) or not url:
                raise UnsupportedRequest(
                    "images by file_id need OpenAI's Files API: only OpenAI deployments can serve them; "
                    "send image_url (an https URL or a data URI)",
                    param=param + ".file_id",
                )
            detail = part.get("detail")
            image = ImageURL(url=url)
            if detail in ("low", "high", "auto"):
                image.detail = detail
            return [ImagePart(image_url=image, cache_control=mark)]
        if kind == "input_file":
            data = part.get("file_data")
            if not isinstance(data, str):
                name = "file_id" if part.get("file_id") is not None else "file_url"
                raise UnsupportedRequest(
                    f"files by {name} are fetched by OpenAI: only OpenAI deployments can serve them; "
                    "send file_data (a data URI) and filename",
                    param=f"{param}.{name}",
                )
            filename = part.get("filename")
            return [
                FilePart(
                    file=FileContent(
                        file_data=data, filename=filename if isinstance(filename, str) else UNSET
                    ),
                    cache_control=mark,
                )
            ]
        if kind == "input_audio":
            audio = part.get("input_audio")
            audio = audio if isinstance(audio, dict) else {}
            return [
                InputAudioPart(
                    input_audio=InputAudio(data=str(audio.get("data")), format=str(audio.get("format")))
                )
            ]
        return []  # output parts in a user message: refused by check_item

    def _tool_message(self, item: dict[str, Any], index: int) -> ToolMessage:
        output = item.get("output")
        mark = cache_mark(item)
        if isinstance(output, str):
            return ToolMessage(tool_call_id=str(item.get("call_id")), content=output, cache_control=mark)
        texts: list[str] = []
        for j, part in enumerate(output if isinstance(output, list) else ()):
            for translated in self._part(part, self.param(index, f".output[{j}]")):
                if isinstance(translated, TextPart):
                    texts.append(translated.text)
                    if isinstance(translated.cache_control, Raw):  # a marked part marks the result
                        mark = translated.cache_control
                else:  # chat tool messages hold text only: media follow in a user message
                    self._media.append(translated)
                    texts.append("(attached below)")
        return ToolMessage(
            tool_call_id=str(item.get("call_id")), content="\n".join(texts), cache_control=mark
        )

    def _reasoning(self, item: dict[str, Any]) -> None:
        if self._turn.texts or self._turn.calls:
            self._flush_turn()
        self._flush_media()
        blocks = open_thinking(item.get("encrypted_content"))
        if blocks is not None:
            self._turn.thinking.extend(blocks)
        else:
            self.note("reasoning items are dropped (only the gateway's own encrypted_content is sent back)")

    # --- flushing ----------------------------------------------------------------------------

    def _flush_turn(self) -> None:
        turn, self._turn = self._turn, _Turn()
        if not turn.texts and not turn.calls:
            if turn.thinking:
                self.note("thinking without text or tool calls is dropped")
            return
        content: str | list[TextPart | RefusalPart] | None = None
        if len(turn.texts) == 1 and isinstance(turn.texts[0], TextPart):
            content = turn.texts[0].text
        elif turn.texts:
            content = turn.texts
        message = AssistantMessage(content=content)
        if turn.calls:
            message.tool_calls = turn.calls
        if turn.thinking:
            message.thinking_blocks = turn.thinking
        self.messages.append(message)

    def _flush_media(self) -> None:
        if self._media:
            self.messages.append(UserMessage(content=self._media))
            self._media = []


def _plain(parts: list[Any]) -> bool:
    """One unmarked text part (sent as a plain string, as before marks existed)."""
    return (
        len(parts) == 1 and isinstance(parts[0], TextPart) and isinstance(parts[0].cache_control, UnsetType)
    )
