"""Gemini requests → checked the way Gemini checks them, and translated to OpenAI's typed form.

:func:`read_generate`, :func:`read_embed`, :func:`read_batch_embed` and :func:`read_count_tokens`
decode a body (camelCase or snake_case), reject what Gemini would reject with Gemini's own words
(every problem found, one per line, as Gemini lists them), and build the request in OpenAI's typed
form (:mod:`truckllm.kit.openai_schemas`) that providers of other dialects translate from.

What has no OpenAI equivalent is left out of the typed form (it still reaches Gemini deployments,
which get the body as received); :class:`Parsed` lists it in ``notes``.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import re
from typing import Any

import msgspec
from msgspec import UNSET, Raw

from truckllm.kit.openai_schemas import (
    AssistantMessage,
    ChatCompletionRequest,
    EmbeddingRequest,
    FileContent,
    FilePart,
    FunctionCall,
    FunctionDef,
    ImagePart,
    ImageURL,
    InputAudio,
    InputAudioPart,
    JSONSchemaFormat,
    Message,
    NamedFunction,
    NamedToolChoice,
    ResponseFormat,
    StreamOptions,
    SystemMessage,
    TextPart,
    Tool,
    ToolCall,
    ToolMessage,
    UserMessage,
)

from . import schema
from .openapi import json_schema, schema_problems
from .schema import (
    DATA_FIELDS,
    BatchEmbedContentsRequest,
    Content,
    CountTokensRequest,
    EmbedContentRequest,
    GenerateContentRequest,
    GenerationConfig,
    Part,
    given,
    invalid,
)

__all__ = [
    "MAX_EMBED_BATCH",
    "Parsed",
    "call_id",
    "chat_typed",
    "read_batch_embed",
    "read_count_tokens",
    "read_embed",
    "read_generate",
]

MAX_EMBED_BATCH = 100
"""Gemini's limit of requests in one ``batchEmbedContents``."""
MAX_STOP_SEQUENCES = 5
"""Gemini's limit of ``stopSequences``."""
OPENAI_MAX_STOP = 4
"""OpenAI's limit of ``stop`` sequences."""
EMPTY_TEXT = (
    "Unable to submit request because it has an empty text parameter. Add a value to the parameter and "
    "try again. To learn more, see https://cloud.google.com/vertex-ai/generative-ai/docs/multimodal/"
    "send-chat-prompts-gemini"
)
TASK_TYPES = frozenset(
    {
        "TASK_TYPE_UNSPECIFIED",
        "RETRIEVAL_QUERY",
        "RETRIEVAL_DOCUMENT",
        "SEMANTIC_SIMILARITY",
        "CLASSIFICATION",
        "CLUSTERING",
        "QUESTION_ANSWERING",
        "FACT_VERIFICATION",
        "CODE_RETRIEVAL_QUERY",
    }
)
MODES = frozenset({"MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"})
_PACKAGE = "type.googleapis.com/google.ai.generativelanguage.v1beta"
_FUNCTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$")
_OPENAI_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_AUDIO_FORMATS = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/mp3": "mp3",
    "audio/mpeg": "mp3",
}
_JSON = msgspec.json.Decoder()


class Parsed(msgspec.Struct, kw_only=True):
    """A checked request: its OpenAI typed form, and what that form leaves out.

    :ivar typed: a :class:`ChatCompletionRequest` or :class:`EmbeddingRequest`.
    :ivar include_thoughts: ``thinkingConfig.includeThoughts`` (thought parts are answered).
    :ivar notes: what the typed form does not carry (for the debug log and the tests).
    """

    typed: Any
    include_thoughts: bool = False
    notes: list[str] = msgspec.field(default_factory=list)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


def _is_base64(data: str) -> bool:
    try:
        base64.b64decode(data, validate=True)
        return True
    except (binascii.Error, ValueError):
        pass
    try:
        base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return False
    return bool(re.fullmatch(r"[A-Za-z0-9_=-]*", data))


def _standard_base64(data: str) -> str:
    """Proto JSON ``bytes`` accept URL-safe base64; a data URI wants the standard alphabet."""
    if "-" in data or "_" in data or len(data) % 4:
        data = data.replace("-", "+").replace("_", "/")
        data += "=" * (-len(data) % 4)
    return data


def _object(raw: Raw) -> Any:
    """An opaque member's JSON value (``None`` when not given)."""
    return _JSON.decode(raw) if given(raw) else None


# --- checks --------------------------------------------------------------------------------------


class _Problems:
    """Every problem found in a request, reported together as Gemini does."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, message: str) -> None:
        if message not in self.items:
            self.items.append(message)

    def raise_any(self) -> None:
        if self.items:
            raise invalid("\n".join(self.items))


def _check_part(part: Part, at: str, where: str, problems: _Problems) -> None:
    present = [name for name in DATA_FIELDS if given(getattr(part, name))]
    if not present:
        problems.add(f"* {at}.data: required oneof field 'data' must have one initialized field")
        return
    if len(present) > 1:
        problems.add(
            "Invalid JSON payload received. Oneof field 'data' is already set. "
            f"Cannot set '{_camel(present[1])}'"
        )
    if part.text == "" and part.thought_signature is None:
        problems.add(EMPTY_TEXT)
    if part.thought_signature is not None and not _is_base64(part.thought_signature):
        problems.add(
            f"Invalid value at '{where}.thought_signature' (TYPE_BYTES), Base64 decoding failed for "
            f'"{part.thought_signature[:40]}"'
        )
    blob = part.inline_data
    if blob is not None:
        if not blob.mime_type:
            problems.add(f"* {at}.inline_data.mime_type: mime_type is not specified")
        if not blob.data or not _is_base64(blob.data):
            shown = msgspec.json.encode((blob.data or "")[:40]).decode()
            problems.add(
                f"Invalid value at '{where}.inline_data.data' (TYPE_BYTES), "
                f"Base64 decoding failed for {shown}"
            )
    if part.file_data is not None and not part.file_data.file_uri:
        problems.add(f"* {at}.file_data.file_uri: file_uri is not specified")
    call = part.function_call
    if call is not None:
        if not call.name:
            problems.add(f"* {at}.function_call.name: Name cannot be empty.")
        if given(call.args) and not isinstance(_object(call.args), dict):
            problems.add(
                f"Invalid value at '{where}.function_call.args' (type.googleapis.com/google.protobuf.Struct)"
            )
    response = part.function_response
    if response is not None:
        if not response.name:
            problems.add(f"* {at}.function_response.name: Name cannot be empty.")
        if not given(response.response):
            problems.add(f"* {at}.function_response.response: response is not specified")
        elif not isinstance(_object(response.response), dict):
            problems.add(
                f"Invalid value at '{where}.function_response.response' "
                "(type.googleapis.com/google.protobuf.Struct)"
            )


def _check_contents(contents: list[Content] | None, root: str, problems: _Problems) -> None:
    if not contents:
        problems.add(f"* {root}.contents: contents is not specified")
        return
    calls: list[int] = []
    answers: list[int] = []
    roles: list[str] = []
    for i, content in enumerate(contents):
        role = content.role or "user"
        roles.append(role)
        if role not in ("user", "model"):
            problems.add("Please use a valid role: user, model.")
        n_calls = n_answers = 0
        if not content.parts:
            problems.add(f"* {root}.contents[{i}].parts: contents.parts must not be empty.")
        for j, part in enumerate(content.parts or ()):
            _check_part(part, f"{root}.contents[{i}].parts[{j}]", f"contents[{i}].parts[{j}]", problems)
            n_calls += part.function_call is not None
            n_answers += part.function_response is not None
        if n_calls and role != "model":
            problems.add("Please ensure that function call turns are model turns.")
        if n_answers and role != "user":
            problems.add("Please ensure that function response turns are user turns.")
        calls.append(n_calls)
        answers.append(n_answers)
    # Consecutive model contents are one turn: a streamed answer, kept chunk by chunk (as
    # google-genai's chat sessions keep it), may bring its function calls in its last chunk.
    turn_calls = 0
    for i in range(len(contents)):
        after_model = i > 0 and roles[i - 1] == "model"
        if roles[i] == "model":
            if calls[i] and i == 0:
                problems.add(
                    "Please ensure that function call turn comes immediately after a user turn or after a "
                    "function response turn."
                )
            turn_calls = turn_calls + calls[i] if after_model else calls[i]
            following = i + 1 < len(contents) and roles[i + 1] != "model"
            if turn_calls and following and answers[i + 1] != turn_calls:
                problems.add(
                    "Please ensure that the number of function response parts is equal to the number of "
                    "function call parts of the function call turn."
                )
        elif answers[i] and not (after_model and turn_calls):
            problems.add(
                "Please ensure that function response turn comes immediately after a function call turn."
            )


def _check_tools(request: GenerateContentRequest, root: str, problems: _Problems) -> None:
    for i, tool in enumerate(request.tools or ()):
        for j, decl in enumerate(tool.function_declarations or ()):
            at = f"{root}.tools[{i}].function_declarations[{j}]"
            if not decl.name or not _FUNCTION_NAME.match(decl.name):
                problems.add(
                    f"* {at}.name: Invalid function name. Must start with a letter or an underscore. "
                    "Must be a-z, A-Z, 0-9, or contain underscores, dots, colons and dashes, with a maximum "
                    "length of 128."
                )
            if decl.parameters is not None and given(decl.parameters_json_schema):
                problems.add(f"* {at}.parameters: parameters and parameters_json_schema cannot both be set.")
            if decl.response is not None and given(decl.response_json_schema):
                problems.add(f"* {at}.response: response and response_json_schema cannot both be set.")
            for message in schema_problems(decl.parameters, f"{at}.parameters"):
                problems.add(message)
            for message in schema_problems(decl.response, f"{at}.response"):
                problems.add(message)
    config = request.tool_config.function_calling_config if request.tool_config else None
    if config is not None:
        mode = config.mode or "AUTO"
        if mode not in MODES:
            problems.add(
                "Invalid value at 'tool_config.function_calling_config.mode' "
                f"({_PACKAGE}.FunctionCallingConfig.Mode), {msgspec.json.encode(mode).decode()}"
            )
        elif config.allowed_function_names and mode not in ("ANY", "VALIDATED"):
            problems.add(
                f"* {root}.tool_config.function_calling_config.allowed_function_names: "
                "allowed_function_names may only be set when mode is ANY."
            )


def _check_generation(config: GenerationConfig | None, root: str, problems: _Problems) -> None:
    if config is None:
        return
    at = f"{root}.generation_config"
    if config.stop_sequences is not None and len(config.stop_sequences) > MAX_STOP_SEQUENCES:
        problems.add(
            f"* {at}.stop_sequences: the number of stop_sequences must not exceed {MAX_STOP_SEQUENCES}"
        )
    for name, value, low, high in (
        ("temperature", config.temperature, 0.0, 2.0),
        ("top_p", config.top_p, 0.0, 1.0),
    ):
        if value is not None and not low <= value <= high:
            problems.add(f"* {at}.{name}: {name} must be in the range [{low:g}, {high:g}]")
    for name, number in (
        ("candidate_count", config.candidate_count),
        ("max_output_tokens", config.max_output_tokens),
    ):
        if number is not None and number < 1:
            problems.add(f"* {at}.{name}: {name} must be positive")
    if config.top_k is not None and config.top_k < 0:
        problems.add(f"* {at}.top_k: top_k must be non-negative")
    if config.logprobs is not None and not 0 <= config.logprobs <= 20:
        problems.add(f"* {at}.logprobs: logprobs must be in the range [0, 20]")
    if config.response_schema is not None and given(config.response_json_schema):
        problems.add(f"* {at}.response_schema: response_schema and response_json_schema cannot both be set.")
    has_schema = config.response_schema is not None or given(config.response_json_schema)
    if has_schema and config.response_mime_type not in ("application/json", "text/x.enum"):
        problems.add(
            f"* {at}.response_mime_type: When using response_schema, response_mime_type must be one of: "
            "application/json, text/x.enum."
        )
    for message in schema_problems(config.response_schema, f"{at}.response_schema"):
        problems.add(message)


def _check_generate(request: GenerateContentRequest, root: str, problems: _Problems) -> None:
    _check_contents(request.contents, root, problems)
    system = request.system_instruction
    if system is not None:
        for j, part in enumerate(system.parts or ()):
            _check_part(
                part, f"{root}.system_instruction.parts[{j}]", f"system_instruction.parts[{j}]", problems
            )
    _check_tools(request, root, problems)
    _check_generation(request.generation_config, root, problems)


# --- contents → messages --------------------------------------------------------------------------


def call_id(content: int, call: int) -> str:
    """The tool-call id synthesized for the ``call``-th ``functionCall`` of ``contents[content]``.

    Stable: the same history gives the same ids on every turn, so the answers of a turn always find
    their calls.
    """
    return f"call_{content}_{call}"


def _code_text(part: Part) -> str:
    """``executableCode`` / ``codeExecutionResult`` as text (the conversation stays readable)."""
    result = not given(part.executable_code)
    raw = part.code_execution_result if result else part.executable_code
    value = _object(raw)
    if not isinstance(value, dict):
        return ""
    if result:
        output = value.get("output")
        return f"Code execution result ({value.get('outcome', 'OUTCOME_OK')}):\n{output}" if output else ""
    code = value.get("code")
    language = str(value.get("language", "")).lower().replace("language_unspecified", "")
    return f"```{language}\n{code}\n```" if code else ""


def _media(part: Part) -> Any:
    """An OpenAI content part for an ``inlineData`` or ``fileData`` part."""
    blob = part.inline_data
    if blob is not None:
        mime = (blob.mime_type or "application/octet-stream").lower()
        data = _standard_base64(blob.data or "")
        if mime.startswith("image/"):
            return ImagePart(image_url=ImageURL(url=f"data:{mime};base64,{data}"))
        audio = _AUDIO_FORMATS.get(mime)
        if audio is not None:
            return InputAudioPart(input_audio=InputAudio(data=data, format=audio))
        name = blob.display_name or "file" + (mimetypes.guess_extension(mime, strict=False) or "")
        return FilePart(file=FileContent(file_data=f"data:{mime};base64,{data}", filename=name))
    file = part.file_data
    assert file is not None
    mime = (file.mime_type or "").lower()
    uri = file.file_uri or ""
    if not mime or mime.startswith("image/"):
        return ImagePart(image_url=ImageURL(url=uri))
    return FilePart(file=FileContent(file_id=uri, filename=file.display_name or UNSET))


def _join(texts: list[tuple[str, bool]]) -> str:
    """A turn's text parts joined as Gemini joins them (directly), code parts on lines of their own."""
    out: list[str] = []
    for k, (text, code) in enumerate(texts):
        if k and (code or texts[k - 1][1]) and not out[-1].endswith("\n"):
            out.append("\n")
        out.append(text)
    return "".join(out)


def _tool_content(raw: Raw) -> str:
    """A ``functionResponse.response`` as a tool message's text: ``{"output": x}`` gives ``x``."""
    value = _object(raw)
    if isinstance(value, dict) and list(value) == ["output"]:
        value = value["output"]
        if isinstance(value, str):
            return value
    return msgspec.json.encode(value).decode()


class _Conversation:
    """Builds OpenAI messages from Gemini contents."""

    def __init__(self, notes: list[str]) -> None:
        self.notes = notes
        self.messages: list[Message] = []
        # the calls of the model turn being answered: (OpenAI id, name, Gemini id)
        self.calls: list[tuple[str, str, str | None]] = []
        self.used: set[str] = set()
        self.turn: AssistantMessage | None = None  # the model turn being read

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def system(self, content: Content | None) -> None:
        if content is None:
            return
        parts = content.parts or []
        texts = [p.text for p in parts if p.text and not p.thought]
        if any(p.text is None for p in parts):
            self.note("systemInstruction: only text parts are translated")
        if texts:
            self.messages.append(SystemMessage(content="\n".join(texts)))

    def _id(self, i: int, k: int, gemini_id: str | None) -> str:
        ident = (
            gemini_id if gemini_id and _OPENAI_ID.match(gemini_id) and gemini_id not in self.used else None
        )
        if ident is None:
            ident = call_id(i, k)
            while ident in self.used:
                ident += "_"
        self.used.add(ident)
        return ident

    def model(self, i: int, content: Content) -> None:
        """A model content; consecutive ones (a streamed answer kept chunk by chunk) make one message."""
        texts: list[tuple[str, bool]] = []  # (text, is code) in order
        calls: list[ToolCall] = []
        for part in content.parts or ():
            if part.function_call is not None:
                call = part.function_call
                name = call.name or ""
                ident = self._id(i, len(calls), call.id)
                args = bytes(call.args).decode() if given(call.args) else "{}"
                calls.append(
                    ToolCall(id=ident, function=FunctionCall(name=name, arguments=args))
                )
                self.calls.append((ident, name, call.id))
                if part.thought_signature is not None:
                    self.note("thoughtSignature: kept only for Gemini deployments")
            elif part.thought:
                self.note("thought parts: not sent to other deployments")
            elif part.text:
                texts.append((part.text, False))
            elif given(part.executable_code) or given(part.code_execution_result):
                text = _code_text(part)
                if text:
                    texts.append((text, True))
            elif part.text is None:
                self.note(f"contents[{i}]: model parts other than text and functionCall are not translated")
        if not texts and not calls:
            return
        last = self.turn
        if last is None:
            self.turn = AssistantMessage(content=_join(texts) if texts else None, tool_calls=calls or UNSET)
            self.messages.append(self.turn)
            return
        if texts:
            before = last.content if isinstance(last.content, str) else ""
            last.content = _join([(before, False), *texts]) if before else _join(texts)
        if calls:
            last.tool_calls = [*(last.tool_calls or ()), *calls]

    def _answers(self, i: int, content: Content) -> list[ToolMessage]:
        pending: list[tuple[str, str, str | None] | None] = list(self.calls)
        answered: list[tuple[int, ToolMessage]] = []
        for part in content.parts or ():
            response = part.function_response
            if response is None:
                continue
            match = next(
                (k for k, c in enumerate(pending) if c and response.id and c[2] == response.id), None
            )
            if match is None:
                match = next((k for k, c in enumerate(pending) if c and c[1] == response.name), None)
            if match is None:
                match = next((k for k, c in enumerate(pending) if c), None)
            if match is None:  # more answers than calls: Gemini rejects it, so never reached
                continue
            found = pending[match]
            assert found is not None  # matched among the calls not answered yet
            ident = found[0]
            pending[match] = None
            if response.parts:
                self.note(f"contents[{i}]: functionResponse.parts are not translated")
            answered.append(
                (match, ToolMessage(tool_call_id=ident, content=_tool_content(response.response)))
            )
        answered.sort(key=lambda pair: pair[0])
        return [message for _, message in answered]

    def user(self, i: int, content: Content) -> None:
        """A user content: the answers to the last model turn's calls first, then the rest."""
        self.messages.extend(self._answers(i, content))
        self.calls = []
        self.turn = None
        parts: list[Any] = []
        for part in content.parts or ():
            if part.function_response is not None:
                continue
            if part.text:
                parts.append(TextPart(text=part.text))
            elif part.inline_data is not None or part.file_data is not None:
                parts.append(_media(part))
            elif given(part.executable_code) or given(part.code_execution_result):
                text = _code_text(part)
                if text:
                    parts.append(TextPart(text=text))
            elif part.text is None:
                self.note(f"contents[{i}]: user parts of this kind are not translated")
        if not parts:
            return
        if len(parts) == 1 and isinstance(parts[0], TextPart):
            self.messages.append(UserMessage(content=parts[0].text))
        else:
            self.messages.append(UserMessage(content=parts))

    def read(self, contents: list[Content]) -> None:
        for i, content in enumerate(contents):
            if (content.role or "user") == "model":
                self.model(i, content)
            else:
                self.user(i, content)


# --- tools and generation config -------------------------------------------------------------------


def _tools(request: GenerateContentRequest, fields: dict[str, Any], notes: list[str]) -> None:
    declared: list[Tool] = []
    for tool in request.tools or ():
        for name in schema.BUILTIN_TOOLS:
            if given(getattr(tool, name)):
                text = f"tools: {_camel(name)} is Gemini's own tool, not sent to other deployments"
                if text not in notes:
                    notes.append(text)
        for decl in tool.function_declarations or ():
            parameters: Raw | Any = UNSET
            if given(decl.parameters_json_schema):
                parameters = decl.parameters_json_schema
            elif decl.parameters is not None:
                parameters = Raw(msgspec.json.encode(json_schema(decl.parameters)))
            function = FunctionDef(
                name=decl.name or "",
                description=decl.description if decl.description else UNSET,
                parameters=parameters,
            )
            declared.append(Tool(function=function))
    config = request.tool_config.function_calling_config if request.tool_config else None
    mode = (config.mode or "AUTO") if config is not None else None
    if declared:
        fields["tools"] = declared
    if mode in (None, "MODE_UNSPECIFIED") or not declared:
        return
    if mode in ("AUTO", "VALIDATED"):
        fields["tool_choice"] = "auto"
    elif mode == "NONE":
        fields["tool_choice"] = "none"
    else:
        allowed = (config.allowed_function_names if config else None) or []
        if len(allowed) == 1:
            fields["tool_choice"] = NamedToolChoice(type="function", function=NamedFunction(name=allowed[0]))
        else:
            fields["tool_choice"] = "required"
            if allowed:
                fields["tools"] = [t for t in declared if t.function and t.function.name in allowed]


def _effort(budget: int | None, level: str | None) -> str | None:
    """``thinkingConfig`` → ``reasoning_effort``: a level as is, a budget by size (-1: the model's own)."""
    if level:
        return level.lower()
    if budget is None or budget < 0:
        return None
    if budget == 0:
        return "none"
    if budget <= 512:
        return "minimal"
    if budget <= 2048:
        return "low"
    if budget <= 8192:
        return "medium"
    return "high"


def _generation(config: GenerationConfig | None, fields: dict[str, Any], notes: list[str]) -> bool:
    """Sampling, length and format fields; returns ``includeThoughts``."""
    if config is None:
        return False
    for name, target in (
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("seed", "seed"),
        ("presence_penalty", "presence_penalty"),
        ("frequency_penalty", "frequency_penalty"),
        ("max_output_tokens", "max_completion_tokens"),
    ):
        value = getattr(config, name)
        if value is not None:
            fields[target] = value
    if config.top_k is not None:
        fields["top_k"] = int(config.top_k)
    if config.candidate_count is not None:
        fields["n"] = config.candidate_count
    stops = [s for s in config.stop_sequences or () if s]
    if stops:
        if len(stops) > OPENAI_MAX_STOP:
            notes.append(f"stopSequences: only the first {OPENAI_MAX_STOP} reach OpenAI-dialect deployments")
        fields["stop"] = stops[:OPENAI_MAX_STOP]
    if config.response_logprobs:
        fields["logprobs"] = True
        if config.logprobs is not None:
            fields["top_logprobs"] = config.logprobs
    mime = config.response_mime_type
    if mime == "application/json":
        schema_raw: Raw | None = config.response_json_schema if given(config.response_json_schema) else None
        if schema_raw is None and config.response_schema is not None:
            schema_raw = Raw(msgspec.json.encode(json_schema(config.response_schema)))
        if schema_raw is not None:
            fields["response_format"] = ResponseFormat(
                type="json_schema", json_schema=JSONSchemaFormat(name="response", schema=schema_raw)
            )
        else:
            fields["response_format"] = ResponseFormat(type="json_object")
    elif mime not in (None, "", "text/plain"):
        notes.append(f"responseMimeType {mime}: not translated")
    thinking = config.thinking_config
    if thinking is not None:
        effort = _effort(thinking.thinking_budget, thinking.thinking_level)
        if effort is not None:
            fields["reasoning_effort"] = effort
    for name in ("response_modalities", "speech_config", "image_config", "media_resolution"):
        if given(getattr(config, name)):
            notes.append(f"generationConfig.{_camel(name)}: not translated")
    return bool(thinking is not None and thinking.include_thoughts)


def chat_typed(request: GenerateContentRequest, alias: str, stream: bool) -> Parsed:
    """The OpenAI chat request for a checked ``GenerateContentRequest``."""
    notes: list[str] = []
    conversation = _Conversation(notes)
    conversation.system(request.system_instruction)
    conversation.read(request.contents or [])
    fields: dict[str, Any] = {}
    _tools(request, fields, notes)
    include_thoughts = _generation(request.generation_config, fields, notes)
    if stream:
        fields["stream"] = True
        fields["stream_options"] = StreamOptions(include_usage=True)
    for name, value in (
        ("safetySettings", request.safety_settings),
        ("cachedContent", request.cached_content),
        ("serviceTier", request.service_tier),
    ):
        if value is not None:
            notes.append(f"{name}: not sent to other deployments")
    typed = ChatCompletionRequest(model=alias, messages=conversation.messages, **fields)
    return Parsed(typed=typed, include_thoughts=include_thoughts, notes=notes)


# --- entry points --------------------------------------------------------------------------------


def read_generate(body: bytes, alias: str, stream: bool) -> Parsed:
    """Check a ``generateContent`` / ``streamGenerateContent`` body and translate it.

    :raises GatewayError: 400 ``INVALID_ARGUMENT`` listing every problem.
    """
    request = schema.decode(body, GenerateContentRequest)
    problems = _Problems()
    _check_generate(request, "GenerateContentRequest", problems)
    problems.raise_any()
    return chat_typed(request, alias, stream)


def _embed_text(item: EmbedContentRequest, root: str, where: str, problems: _Problems) -> str:
    content = item.content
    if content is None:
        problems.add(f"* {root}.content: content is not specified")
        return ""
    if not content.parts:
        problems.add(f"* {root}.content.parts: contents.parts must not be empty.")
        return ""
    for j, part in enumerate(content.parts):
        _check_part(part, f"{root}.content.parts[{j}]", f"{where}content.parts[{j}]", problems)
    if item.task_type is not None and item.task_type not in TASK_TYPES:
        problems.add(
            f"Invalid value at 'task_type' ({_PACKAGE}.TaskType), "
            f"{msgspec.json.encode(item.task_type).decode()}"
        )
    if item.output_dimensionality is not None and item.output_dimensionality < 1:
        problems.add(f"* {root}.output_dimensionality: output_dimensionality must be positive")
    return " ".join(p.text for p in content.parts if p.text)


def read_embed(body: bytes, alias: str) -> Parsed:
    """Check an ``embedContent`` body; its typed form embeds the content's text as one input."""
    item = schema.decode(body, EmbedContentRequest)
    problems = _Problems()
    text = _embed_text(item, "EmbedContentRequest", "", problems)
    problems.raise_any()
    if not text:
        raise invalid("* EmbedContentRequest.content: the gateway embeds text; this content has no text part")
    typed = EmbeddingRequest(
        model=alias,
        input=text,
        dimensions=item.output_dimensionality if item.output_dimensionality is not None else UNSET,
    )
    notes = [
        f"{name}: not translated"
        for name, value in (("taskType", item.task_type), ("title", item.title))
        if value
    ]
    return Parsed(typed=typed, notes=notes)


def read_batch_embed(body: bytes, alias: str, url_model: str) -> Parsed:
    """Check a ``batchEmbedContents`` body (at most 100 requests, each naming the URL's model)."""
    batch = schema.decode(body, BatchEmbedContentsRequest)
    problems = _Problems()
    requests = batch.requests or []
    if not requests:
        problems.add("* BatchEmbedContentsRequest.requests: requests is not specified")
    elif len(requests) > MAX_EMBED_BATCH:
        problems.add(
            f"* BatchEmbedContentsRequest.requests: at most {MAX_EMBED_BATCH} requests can be in one batch"
        )
    texts: list[str | int | list[int]] = []
    dimensions: set[int] = set()
    notes: list[str] = []
    for i, item in enumerate(requests[:MAX_EMBED_BATCH]):
        root = f"BatchEmbedContentsRequest.requests[{i}]"
        expected = f"models/{url_model}"
        if not item.model or not item.model.startswith("models/"):
            problems.add(f"* {root}.model: unexpected model name format")
        elif item.model != expected:
            problems.add(
                f"* {root}.model: Model in the request ({item.model}) does not match the model in the URL "
                f"({expected})."
            )
        texts.append(_embed_text(item, root, f"requests[{i}].", problems))
        if item.output_dimensionality is not None:
            dimensions.add(item.output_dimensionality)
        if (item.task_type or item.title) and "taskType, title: not translated" not in notes:
            notes.append("taskType, title: not translated")
    problems.raise_any()
    if len(dimensions) > 1:
        notes.append("outputDimensionality differs between requests: the first one is used")
    first = next((item.output_dimensionality for item in requests if item.output_dimensionality), None)
    typed = EmbeddingRequest(model=alias, input=texts, dimensions=first if first is not None else UNSET)
    return Parsed(typed=typed, notes=notes)


def read_count_tokens(body: bytes, alias: str) -> Parsed:
    """Check a ``countTokens`` body; its typed form is the chat request whose prompt is counted."""
    count = schema.decode(body, CountTokensRequest)
    problems = _Problems()
    inner = count.generate_content_request
    if count.contents is not None and inner is not None:
        problems.add("* CountTokensRequest: contents and generate_content_request cannot both be set.")
    if inner is not None:
        _check_generate(inner, "CountTokensRequest.generate_content_request", problems)
    else:
        _check_contents(count.contents, "CountTokensRequest", problems)
    problems.raise_any()
    request = inner if inner is not None else GenerateContentRequest(contents=count.contents)
    return chat_typed(request, alias, stream=False)
