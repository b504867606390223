"""Gemini's request messages (``v1beta``) as msgspec Structs, and how a body is decoded into them.

Field names are camelCase on the wire (``rename="camel"``); like Google's JSON parser, the gateway
also accepts snake_case names (``system_instruction``): a body that fails the fast camelCase decode
because of an unknown name is rewritten to camelCase, guided by these Structs, and decoded again.
Unknown names are rejected as Gemini rejects them (``Unknown name "x" at '...': Cannot find
field.``), and so are values of the wrong type. Opaque members (``functionCall.args``,
``functionResponse.response``, JSON Schemas, built-in tools) stay :class:`msgspec.Raw`.
"""

from __future__ import annotations

import re
import types
import typing
from functools import cache
from typing import Any, TypeVar

import msgspec
from msgspec import Raw, Struct

from truckllm.errors import GatewayError
from truckllm.kit.safejson import JSONBodyError, check_json

__all__ = [
    "BUILTIN_TOOLS",
    "DATA_FIELDS",
    "NO_RAW",
    "BatchEmbedContentsRequest",
    "Blob",
    "Content",
    "CountTokensRequest",
    "EmbedContentRequest",
    "FileData",
    "FunctionCall",
    "FunctionCallingConfig",
    "FunctionDeclaration",
    "FunctionResponse",
    "GenerateContentRequest",
    "GenerationConfig",
    "Part",
    "Schema",
    "ThinkingConfig",
    "Tool",
    "ToolConfig",
    "decode",
    "given",
    "invalid",
]

_T = TypeVar("_T")

NO_RAW = Raw()
"""The default of an opaque member: not given."""


def given(value: object) -> bool:
    """Whether a member was given (not absent, not JSON ``null``)."""
    if isinstance(value, Raw):
        return bool(value) and bytes(value) != b"null"
    return value is not None


class _Message(Struct, rename="camel", forbid_unknown_fields=True, omit_defaults=True):
    """A proto message: camelCase names, unknown names rejected, unset members omitted."""


class Blob(_Message):
    """``inlineData``: base64 bytes and their media type."""

    mime_type: str | None = None
    data: str | None = None
    display_name: str | None = None


class FileData(_Message):
    """``fileData``: a URI the backend fetches (Files API, ``gs://``, YouTube)."""

    file_uri: str | None = None
    mime_type: str | None = None
    display_name: str | None = None


class FunctionCall(_Message):
    """A ``functionCall`` part: ``args`` is a JSON object."""

    name: str | None = None
    args: Raw = NO_RAW
    id: str | None = None


class FunctionResponse(_Message):
    """A ``functionResponse`` part: ``response`` is a JSON object (``{"output": ...}`` by convention)."""

    name: str | None = None
    response: Raw = NO_RAW
    id: str | None = None
    parts: list[Raw] | None = None
    will_continue: bool | None = None
    scheduling: str | None = None


class Part(_Message):
    """One part of a content: exactly one data member, plus flags."""

    text: str | None = None
    inline_data: Blob | None = None
    file_data: FileData | None = None
    function_call: FunctionCall | None = None
    function_response: FunctionResponse | None = None
    executable_code: Raw = NO_RAW
    code_execution_result: Raw = NO_RAW
    tool_call: Raw = NO_RAW
    tool_response: Raw = NO_RAW
    thought: bool | None = None
    thought_signature: str | None = None
    video_metadata: Raw = NO_RAW
    part_metadata: Raw = NO_RAW
    media_resolution: Raw = NO_RAW
    media_processing: Raw = NO_RAW
    audio_metadata: Raw = NO_RAW
    audio_transcription: Raw = NO_RAW
    document_metadata: Raw = NO_RAW
    speech_metadata: Raw = NO_RAW
    spreadsheet_metadata: Raw = NO_RAW


DATA_FIELDS = (
    "text",
    "inline_data",
    "file_data",
    "function_call",
    "function_response",
    "executable_code",
    "code_execution_result",
    "tool_call",
    "tool_response",
)
"""The members of ``Part``'s ``data`` oneof (Python names)."""


class Content(_Message):
    """A turn: ``role`` (``user`` or ``model``) and its parts."""

    parts: list[Part] | None = None
    role: str | None = None


class Schema(_Message):
    """The OpenAPI-subset ``Schema`` of ``parameters`` and ``responseSchema``."""

    type: str | None = None
    format: str | None = None
    title: str | None = None
    description: str | None = None
    nullable: bool | None = None
    enum: list[str] | None = None
    max_items: int | str | None = None
    min_items: int | str | None = None
    properties: dict[str, Schema] | None = None
    required: list[str] | None = None
    min_properties: int | str | None = None
    max_properties: int | str | None = None
    min_length: int | str | None = None
    max_length: int | str | None = None
    pattern: str | None = None
    example: Raw = NO_RAW
    any_of: list[Schema] | None = None
    property_ordering: list[str] | None = None
    default: Raw = NO_RAW
    items: Schema | None = None
    minimum: float | None = None
    maximum: float | None = None
    additional_properties: Raw = NO_RAW
    defs: dict[str, Schema] | None = None
    ref: str | None = None


class FunctionDeclaration(_Message):
    """One function the model may call."""

    name: str | None = None
    description: str | None = None
    parameters: Schema | None = None
    parameters_json_schema: Raw = NO_RAW
    response: Schema | None = None
    response_json_schema: Raw = NO_RAW
    behavior: str | None = None


class Tool(_Message):
    """``tools[]``: function declarations, or one of Gemini's built-in tools."""

    function_declarations: list[FunctionDeclaration] | None = None
    google_search: Raw = NO_RAW
    google_search_retrieval: Raw = NO_RAW
    code_execution: Raw = NO_RAW
    url_context: Raw = NO_RAW
    computer_use: Raw = NO_RAW
    file_search: Raw = NO_RAW
    google_maps: Raw = NO_RAW
    mcp_servers: Raw = NO_RAW


BUILTIN_TOOLS = (
    "google_search",
    "google_search_retrieval",
    "code_execution",
    "url_context",
    "computer_use",
    "file_search",
    "google_maps",
    "mcp_servers",
)
"""``Tool`` members that only Gemini itself can run (Python names)."""


class FunctionCallingConfig(_Message):
    """``toolConfig.functionCallingConfig``."""

    mode: str | None = None
    allowed_function_names: list[str] | None = None


class ToolConfig(_Message):
    """``toolConfig``."""

    function_calling_config: FunctionCallingConfig | None = None
    retrieval_config: Raw = NO_RAW
    include_server_side_tool_invocations: bool | None = None


class ThinkingConfig(_Message):
    """``generationConfig.thinkingConfig``."""

    include_thoughts: bool | None = None
    thinking_budget: int | None = None
    thinking_level: str | None = None


class GenerationConfig(_Message):
    """``generationConfig``: sampling, length, output format, thinking."""

    stop_sequences: list[str] | None = None
    response_mime_type: str | None = None
    response_schema: Schema | None = None
    response_json_schema: Raw = NO_RAW
    response_modalities: list[str] | None = None
    candidate_count: int | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: float | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    response_logprobs: bool | None = None
    logprobs: int | None = None
    enable_enhanced_civic_answers: bool | None = None
    speech_config: Raw = NO_RAW
    thinking_config: ThinkingConfig | None = None
    media_resolution: str | None = None
    image_config: Raw = NO_RAW
    audio_transcription_config: Raw = NO_RAW


class GenerateContentRequest(_Message):
    """``models/{model}:generateContent`` and ``:streamGenerateContent``."""

    contents: list[Content] | None = None
    model: str | None = None
    system_instruction: Content | None = None
    tools: list[Tool] | None = None
    tool_config: ToolConfig | None = None
    generation_config: GenerationConfig | None = None
    safety_settings: list[Raw] | None = None
    cached_content: str | None = None
    labels: Raw = NO_RAW
    service_tier: str | None = None
    store: bool | None = None
    continuation_token: str | None = None


class EmbedContentRequest(_Message):
    """``models/{model}:embedContent`` (and each item of a batch)."""

    content: Content | None = None
    model: str | None = None
    task_type: str | None = None
    title: str | None = None
    output_dimensionality: int | None = None


class BatchEmbedContentsRequest(_Message):
    """``models/{model}:batchEmbedContents``."""

    requests: list[EmbedContentRequest] | None = None


class CountTokensRequest(_Message):
    """``models/{model}:countTokens``: ``contents`` or a whole ``generateContentRequest``."""

    contents: list[Content] | None = None
    generate_content_request: GenerateContentRequest | None = None


# --- decoding ------------------------------------------------------------------------------------


def invalid(message: str) -> GatewayError:
    """A 400 ``INVALID_ARGUMENT`` with Gemini's wording."""
    return GatewayError(400, message)


_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")
_AT = re.compile(r" - at `\$(.*)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(.*)`$")
_MISSING = re.compile(r"^Object missing required field `(.*)`$")


def snake(name: str) -> str:
    """``generationConfig`` → ``generation_config`` (Google names fields so in error paths)."""
    return _SNAKE.sub("_", name).lower()


def _where(path: str) -> str:
    """msgspec's ``.contents[0].parts[1]`` → Google's ``contents[0].parts[1]`` (snake_case)."""
    return re.sub(r"[A-Za-z_][A-Za-z0-9_]*", lambda m: snake(m.group(0)), path.lstrip("."))


def _error(exc: msgspec.ValidationError | msgspec.DecodeError) -> GatewayError:
    text = str(exc)
    if not isinstance(exc, msgspec.ValidationError):
        return invalid(f"Invalid JSON payload received. {text.rstrip('.')}.")
    match = _AT.search(text)
    where = _where(match.group(1)) if match else ""
    problem = text[: match.start()] if match else text
    unknown = _UNKNOWN.match(problem)
    if unknown:
        at = f" at '{where}'" if where else ""
        return invalid(
            f'Invalid JSON payload received. Unknown name "{unknown.group(1)}"{at}: Cannot find field.'
        )
    missing = _MISSING.match(problem)
    if missing:
        return invalid(f"* {where + '.' if where else ''}{snake(missing.group(1))}: is required")
    problem = problem.replace("`", "")
    if where:
        return invalid(f"Invalid value at '{where}': {problem}")
    return invalid(f"Invalid JSON payload received. {problem}")


_DECODERS: dict[type, msgspec.json.Decoder[Any]] = {}


def _decoder(kind: type[_T]) -> msgspec.json.Decoder[_T]:
    decoder = _DECODERS.get(kind)
    if decoder is None:
        decoder = _DECODERS[kind] = msgspec.json.Decoder(kind)
    return decoder


def decode(body: bytes, kind: type[_T]) -> _T:
    """Decode and validate ``body`` as ``kind``, accepting snake_case names too.

    :raises GatewayError: 400 ``INVALID_ARGUMENT`` in Gemini's words.
    """
    try:
        decoded = _decode(body, kind)
        check_json(body)  # bounded depth, no repeated keys
    except JSONBodyError as exc:
        raise invalid(f"Invalid JSON payload received. {exc.message}") from None
    except RecursionError:
        raise invalid("Invalid JSON payload received. The request is nested too deeply.") from None
    except UnicodeDecodeError:
        raise invalid("Invalid JSON payload received. The body is not valid UTF-8.") from None
    return decoded


def _decode(body: bytes, kind: type[_T]) -> _T:
    try:
        return _decoder(kind).decode(body)
    except msgspec.ValidationError as exc:
        if "unknown field" not in str(exc):
            raise _error(exc) from None
        first = exc
    except msgspec.DecodeError as exc:
        raise _error(exc) from None
    renamed, changed = _camel(msgspec.json.decode(body), kind)
    if not changed:
        raise _error(first)
    try:
        return _decoder(kind).decode(msgspec.json.encode(renamed))
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise _error(exc) from None


# --- snake_case → camelCase, guided by the Structs ------------------------------------------------


@cache
def _fields(kind: type[Struct]) -> dict[str, tuple[str, Any]]:
    """Every accepted name (camelCase and snake_case) → (camelCase name, member type)."""
    hints = typing.get_type_hints(kind)
    names: dict[str, tuple[str, Any]] = {}
    for info in msgspec.structs.fields(kind):
        entry = (info.encode_name, hints[info.name])
        names[info.encode_name] = entry
        names[info.name] = entry
    return names


def _members(hint: Any) -> list[Any]:
    """The alternatives of a union (or the type itself)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return list(typing.get_args(hint))
    return [hint]


def _camel(value: Any, hint: Any) -> tuple[Any, bool]:
    """``value`` with snake_case member names renamed for type ``hint``; whether anything changed."""
    changed = False
    for member in _members(hint):
        origin = typing.get_origin(member)
        if isinstance(value, dict) and isinstance(member, type) and issubclass(member, Struct):
            fields = _fields(member)
            out: dict[str, Any] = {}
            for key, item in value.items():
                known = fields.get(key)
                if known is None:
                    out[key] = item
                    continue
                name, sub = known
                if name != key:
                    changed = True
                    if name in value or name in out:
                        raise invalid(
                            f'Invalid JSON payload received. Duplicate name "{key}" (also given as "{name}").'
                        )
                out[name], sub_changed = _camel(item, sub)
                changed = changed or sub_changed
            return out, changed
        if isinstance(value, list) and origin is list:
            (item_type,) = typing.get_args(member)
            items = []
            for item in value:
                new, sub_changed = _camel(item, item_type)
                items.append(new)
                changed = changed or sub_changed
            return items, changed
        if isinstance(value, dict) and origin is dict:
            _, item_type = typing.get_args(member)
            mapping = {}
            for key, item in value.items():
                mapping[key], sub_changed = _camel(item, item_type)
                changed = changed or sub_changed
            return mapping, changed
    return value, False
