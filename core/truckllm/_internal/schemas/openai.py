"""OpenAI's Chat Completions, Completions and Embeddings request schemas: the canonical dialect.

Every inbound request in OpenAI's dialect is validated against these structs once, so that a bad
request gets a 400 naming the field before any upstream is called. Provider plugins that translate
to another API read these typed structs; same-dialect pass-through forwards the original bytes.

Optional scalars default to ``msgspec.UNSET`` so that "not set" stays distinct from ``0``.
Tool schemas and arguments stay ``msgspec.Raw`` so that they round-trip byte for byte.

``cache_control`` (Anthropic's prompt-cache mark, ``{"type": "ephemeral", "ttl"?}``) is not in
OpenAI's schema, but OpenAI-format clients aiming at Anthropic send it on content parts, messages
and tools, and other dialects' translations (the Responses API's ``prompt_cache_breakpoint``)
set it: it is kept raw on those structs so that providers with prompt caching read the marks from
the typed form, and OpenAI providers re-encoding the typed form leave it out.
"""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import UNSET, Meta, Raw, Struct, UnsetType

__all__ = [
    "AssistantMessage",
    "ChatCompletionRequest",
    "CompletionRequest",
    "ContentPart",
    "DeveloperMessage",
    "EmbeddingRequest",
    "FileContent",
    "FilePart",
    "FunctionCall",
    "FunctionDef",
    "ImagePart",
    "ImageURL",
    "InputAudio",
    "InputAudioPart",
    "Message",
    "NamedToolChoice",
    "RefusalPart",
    "ResponseFormat",
    "StreamOptions",
    "SystemMessage",
    "TextPart",
    "Tool",
    "ToolCall",
    "ToolMessage",
    "UserMessage",
]

NonNegInt = Annotated[int, Meta(ge=0, le=2**31 - 1)]
PosInt = Annotated[int, Meta(ge=1, le=2**31 - 1)]


class TextPart(Struct, tag_field="type", tag="text", omit_defaults=True):
    """A text content part."""

    text: str
    cache_control: Raw | UnsetType = UNSET


class ImageURL(Struct, omit_defaults=True):
    """An image reference: an http(s) URL or a ``data:<mime>;base64,...`` URI."""

    url: Annotated[str, Meta(min_length=1)]
    detail: Literal["auto", "low", "high"] | UnsetType = UNSET


class ImagePart(Struct, tag_field="type", tag="image_url", omit_defaults=True):
    """An image content part."""

    image_url: ImageURL
    cache_control: Raw | UnsetType = UNSET


class InputAudio(Struct):
    """Base64 audio data and its format."""

    data: str
    format: str


class InputAudioPart(Struct, tag_field="type", tag="input_audio"):
    """An audio content part."""

    input_audio: InputAudio


class FileContent(Struct, omit_defaults=True):
    """A file given inline (``file_data``, a data URI) or by id."""

    file_data: str | UnsetType = UNSET
    file_id: str | UnsetType = UNSET
    filename: str | UnsetType = UNSET


class FilePart(Struct, tag_field="type", tag="file", omit_defaults=True):
    """A file (e.g. PDF) content part."""

    file: FileContent
    cache_control: Raw | UnsetType = UNSET


class RefusalPart(Struct, tag_field="type", tag="refusal"):
    """An assistant refusal part."""

    refusal: str


ContentPart = TextPart | ImagePart | InputAudioPart | FilePart | RefusalPart


class FunctionCall(Struct, omit_defaults=True):
    """A function call made by the assistant; ``arguments`` is a JSON-encoded string."""

    name: str
    arguments: str = ""


class ToolCall(Struct):
    """One tool call in an assistant message."""

    id: str
    function: FunctionCall
    type: Literal["function"] = "function"


class SystemMessage(Struct, tag_field="role", tag="system", omit_defaults=True):
    """A system instruction."""

    content: str | list[TextPart]
    name: str | UnsetType = UNSET
    cache_control: Raw | UnsetType = UNSET


class DeveloperMessage(Struct, tag_field="role", tag="developer", omit_defaults=True):
    """A developer instruction (treated exactly like ``system``)."""

    content: str | list[TextPart]
    name: str | UnsetType = UNSET
    cache_control: Raw | UnsetType = UNSET


class UserMessage(Struct, tag_field="role", tag="user", omit_defaults=True):
    """A user turn."""

    content: str | list[ContentPart]
    name: str | UnsetType = UNSET
    cache_control: Raw | UnsetType = UNSET


class AssistantMessage(Struct, tag_field="role", tag="assistant", omit_defaults=True):
    """An assistant turn, possibly with tool calls."""

    content: str | list[TextPart | RefusalPart] | None = None
    tool_calls: list[ToolCall] | UnsetType = UNSET
    function_call: FunctionCall | UnsetType | None = UNSET
    refusal: str | UnsetType | None = UNSET
    name: str | UnsetType = UNSET
    reasoning_content: str | UnsetType | None = UNSET
    thinking_blocks: list[Raw] | UnsetType | None = UNSET
    cache_control: Raw | UnsetType = UNSET


class ToolMessage(Struct, tag_field="role", tag="tool", omit_defaults=True):
    """The result of one tool call."""

    tool_call_id: str
    content: str | list[TextPart]
    cache_control: Raw | UnsetType = UNSET


class FunctionMessage(Struct, tag_field="role", tag="function", omit_defaults=True):
    """The deprecated ``function`` role."""

    name: str
    content: str | None = None


Message = SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage | FunctionMessage


class FunctionDef(Struct, omit_defaults=True):
    """A function tool's declaration; ``parameters`` is raw JSON Schema."""

    name: Annotated[str, Meta(pattern=r"^[a-zA-Z0-9_\-]{1,64}$")]
    description: str | UnsetType = UNSET
    parameters: Raw | UnsetType = UNSET
    strict: bool | UnsetType | None = UNSET


class Tool(Struct):
    """A tool offered to the model (``function``; other types pass through where supported)."""

    type: str = "function"
    function: FunctionDef | UnsetType = UNSET
    custom: Raw | UnsetType = UNSET
    cache_control: Raw | UnsetType = UNSET


class NamedFunction(Struct):
    """The function a named tool choice forces."""

    name: str


class NamedToolChoice(Struct, omit_defaults=True):
    """``{"type": "function", "function": {"name": ...}}`` (and other typed choices)."""

    type: str
    function: NamedFunction | UnsetType = UNSET


class JSONSchemaFormat(Struct, omit_defaults=True):
    """The ``json_schema`` member of a ``response_format``."""

    name: Annotated[str, Meta(pattern=r"^[a-zA-Z0-9_\-]{1,64}$")]
    schema: Raw | UnsetType = UNSET
    description: str | UnsetType = UNSET
    strict: bool | UnsetType | None = UNSET


class ResponseFormat(Struct, omit_defaults=True):
    """``text``, ``json_object`` or ``json_schema``."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | UnsetType = UNSET


class StreamOptions(Struct, omit_defaults=True):
    """Stream options; ``include_usage`` asks for the final usage chunk."""

    include_usage: bool | UnsetType = UNSET
    include_obfuscation: bool | UnsetType = UNSET


Temperature = Annotated[float, Meta(ge=0, le=2)]
Unit = Annotated[float, Meta(ge=0, le=1)]
Penalty = Annotated[float, Meta(ge=-2, le=2)]
Stop = str | Annotated[list[str], Meta(max_length=4)] | None


class ChatCompletionRequest(Struct, omit_defaults=True):
    """``POST /v1/chat/completions``."""

    model: Annotated[str, Meta(min_length=1)]
    messages: Annotated[list[Message], Meta(min_length=1)]
    stream: bool | UnsetType | None = UNSET
    stream_options: StreamOptions | UnsetType | None = UNSET
    max_tokens: NonNegInt | UnsetType | None = UNSET
    max_completion_tokens: NonNegInt | UnsetType | None = UNSET
    temperature: Temperature | UnsetType | None = UNSET
    top_p: Unit | UnsetType | None = UNSET
    n: Annotated[int, Meta(ge=1, le=128)] | UnsetType | None = UNSET
    stop: Stop | UnsetType = UNSET
    presence_penalty: Penalty | UnsetType | None = UNSET
    frequency_penalty: Penalty | UnsetType | None = UNSET
    seed: int | UnsetType | None = UNSET
    logprobs: bool | UnsetType | None = UNSET
    top_logprobs: Annotated[int, Meta(ge=0, le=20)] | UnsetType | None = UNSET
    logit_bias: dict[str, float] | UnsetType | None = UNSET
    user: str | UnsetType = UNSET
    safety_identifier: str | UnsetType = UNSET
    tools: list[Tool] | UnsetType = UNSET
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | UnsetType = UNSET
    parallel_tool_calls: bool | UnsetType = UNSET
    response_format: ResponseFormat | UnsetType = UNSET
    reasoning_effort: str | UnsetType | None = UNSET
    top_k: NonNegInt | UnsetType = UNSET
    metadata: dict[str, str] | UnsetType | None = UNSET


Prompt = str | list[str | int | list[int]]
"""A prompt: a string, strings, tokens or token lists (homogeneity is checked by :func:`check_input`)."""


class CompletionRequest(Struct, omit_defaults=True):
    """``POST /v1/completions`` (legacy text completions)."""

    model: Annotated[str, Meta(min_length=1)]
    prompt: Prompt = ""
    stream: bool | UnsetType | None = UNSET
    stream_options: StreamOptions | UnsetType | None = UNSET
    max_tokens: NonNegInt | UnsetType | None = UNSET
    temperature: Temperature | UnsetType | None = UNSET
    top_p: Unit | UnsetType | None = UNSET
    n: Annotated[int, Meta(ge=1, le=128)] | UnsetType | None = UNSET
    stop: Stop | UnsetType = UNSET
    presence_penalty: Penalty | UnsetType | None = UNSET
    frequency_penalty: Penalty | UnsetType | None = UNSET
    seed: int | UnsetType | None = UNSET
    logprobs: Annotated[int, Meta(ge=0, le=5)] | UnsetType | None = UNSET
    echo: bool | UnsetType | None = UNSET
    suffix: str | UnsetType | None = UNSET
    best_of: int | UnsetType | None = UNSET
    user: str | UnsetType = UNSET


EmbeddingInput = (
    Annotated[str, Meta(min_length=1)]
    | Annotated[
        list[Annotated[str, Meta(min_length=1)] | int | Annotated[list[int], Meta(min_length=1)]],
        Meta(min_length=1, max_length=2048),
    ]
)


class EmbeddingRequest(Struct, omit_defaults=True):
    """``POST /v1/embeddings``."""

    model: Annotated[str, Meta(min_length=1)]
    input: EmbeddingInput
    encoding_format: Literal["float", "base64"] | UnsetType = UNSET
    dimensions: PosInt | UnsetType = UNSET
    user: str | UnsetType = UNSET


def check_input(value: object, field: str) -> str | None:
    """Why a prompt / embedding input list is invalid (mixed kinds), or ``None`` when it is fine."""
    if isinstance(value, list) and value:
        kinds = {type(v) for v in value}
        if len(kinds) > 1:
            return (
                f"'{field}' must be a string, an array of strings, of tokens, or of token arrays, not a mix"
            )
    return None


def text_of(content: str | list[TextPart] | list[ContentPart] | list[TextPart | RefusalPart] | None) -> str:
    """The concatenated text of a message's content (non-text parts are skipped)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.text for p in content if isinstance(p, TextPart))


def is_set(value: object) -> bool:
    """True when an optional field was given (neither ``UNSET`` nor ``None``)."""
    return value is not UNSET and value is not None


msgspec_unset = UNSET
