"""OpenAI requests → Gemini ``generateContent``, ``countTokens`` and ``batchEmbedContents`` requests.

Everything here is pure: :func:`build_request` reads the client's typed request and returns the
:class:`~truckllm.types.UpstreamRequest` the kernel sends. What cannot be expressed for Gemini
raises :class:`~truckllm.errors.UnsupportedRequest` naming the field, so that the kernel can try
another provider (or answer 400 when none can serve the request).
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import re
from typing import Any
from urllib.parse import unquote_to_bytes

import msgspec
from msgspec import UNSET

from truckllm.errors import UnsupportedRequest
from truckllm.kit.openai_schemas import (
    AssistantMessage,
    ChatCompletionRequest,
    CompletionRequest,
    DeveloperMessage,
    EmbeddingRequest,
    FilePart,
    FunctionMessage,
    ImagePart,
    InputAudioPart,
    Message,
    RefusalPart,
    SystemMessage,
    TextPart,
    ToolMessage,
    UserMessage,
    is_set,
    text_of,
)
from truckllm.types import ChatRequest, Provider, UpstreamRequest

from .count import count_body
from .ids import decode_call_id
from .options import Options, options_of
from .schema import to_gemini_schema
from .urls import method_url, model_resource

__all__ = [
    "MAX_EMBED_BATCH",
    "build_request",
    "chat_body",
    "completion_body",
    "embed_body",
    "upstream_url",
]

MAX_EMBED_BATCH = 100
"""Gemini's limit of ``batchEmbedContents`` requests per call."""

MAX_STOP_SEQUENCES = 5
_FUNCTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$")
_FILES_API = re.compile(r"^https://generativelanguage\.googleapis\.com/(?:v\d[a-z0-9]*/)?files/[^/?#]+$")
_YOUTUBE = re.compile(r"^https://(?:www\.|m\.)?(?:youtube\.com/watch\?|youtu\.be/)")
_AUDIO_TYPES = {"mp3": "audio/mp3", "wav": "audio/wav", "flac": "audio/flac", "ogg": "audio/ogg"}
_JSON = msgspec.json.Decoder()


# --- URLs ----------------------------------------------------------------------------------------

_METHODS = {"count_tokens": "countTokens", "embeddings": "batchEmbedContents"}


def upstream_url(base_url: str, model: str, endpoint: str, stream: bool) -> str:
    """The method URL for one client endpoint (the model checked and encoded by :mod:`.urls`).

    :raises UnsupportedRequest: when ``model`` cannot be a Gemini model name.
    """
    method = _METHODS.get(endpoint)
    if method is not None:
        return method_url(base_url, model, method)
    if stream:
        return method_url(base_url, model, "streamGenerateContent", stream=True)
    return method_url(base_url, model, "generateContent")


# --- content parts -------------------------------------------------------------------------------


def _b64(data: str, param: str) -> str:
    """Standard base64 (Gemini's ``bytes`` JSON form) from a client's base64 text."""
    data = "".join(data.split())
    try:
        base64.b64decode(data, validate=True)
        return data
    except (binascii.Error, ValueError):
        pass
    try:  # URL-safe or unpadded base64: re-encode
        raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        raise UnsupportedRequest("the media data is not valid base64", param=param) from None
    return base64.b64encode(raw).decode()


def _data_uri(url: str, param: str) -> dict[str, Any]:
    header, comma, payload = url[5:].partition(",")
    if not comma:
        raise UnsupportedRequest("malformed data URI (no ',')", param=param)
    params = [p.strip() for p in header.split(";")]
    mime = params[0].lower()
    if not mime or "/" not in mime:
        raise UnsupportedRequest("a data URI needs a media type (data:image/png;base64,...)", param)
    if "base64" in (p.lower() for p in params[1:]):
        data = _b64(payload, param)
    else:
        data = base64.b64encode(unquote_to_bytes(payload)).decode()
    if not data:
        raise UnsupportedRequest("the data URI is empty", param=param)
    return {"inlineData": {"mimeType": mime, "data": data}}


def _file_uri(url: str, options: Options) -> bool:
    return (
        url.startswith("gs://")
        or bool(_FILES_API.match(url))
        or bool(_YOUTUBE.match(url))
        or any(url.startswith(prefix) for prefix in options.file_uri_prefixes)
    )


def _file_data(url: str, mime: str | None = None) -> dict[str, Any]:
    if mime is None:
        path = url.split("?", 1)[0].split("#", 1)[0]
        mime, _ = mimetypes.guess_type(path, strict=False)
        if mime is None and _YOUTUBE.match(url):
            mime = "video/mp4"
    data: dict[str, Any] = {"fileUri": url}
    if mime:
        data = {"mimeType": mime, **data}
    return {"fileData": data}


def media_part(url: str, param: str, options: Options) -> dict[str, Any]:
    """``inlineData`` for a data URI, ``fileData`` for a URI Gemini fetches itself.

    The gateway never downloads URLs: any other ``http(s)`` URL is unsupported.
    """
    if url[:5].lower() == "data:":
        return _data_uri(url, param)
    if _file_uri(url, options):
        return _file_data(url)
    raise UnsupportedRequest(
        "Gemini cannot fetch this URL and the gateway does not download media: send the image as a "
        "data: URI (data:image/png;base64,...), a gs:// or Gemini Files API URI",
        param=param,
    )


def _user_parts(content: Any, at: str, options: Options) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        param = f"{at}.content[{j}]"
        if isinstance(part, TextPart):
            if part.text:
                parts.append({"text": part.text})
        elif isinstance(part, RefusalPart):
            if part.refusal:
                parts.append({"text": part.refusal})
        elif isinstance(part, ImagePart):
            parts.append(media_part(part.image_url.url, f"{param}.image_url.url", options))
        elif isinstance(part, InputAudioPart):
            fmt = part.input_audio.format.lower()
            mime = _AUDIO_TYPES.get(fmt, f"audio/{fmt}")
            data = _b64(part.input_audio.data, f"{param}.input_audio.data")
            if not data:
                raise UnsupportedRequest("the audio data is empty", param=f"{param}.input_audio.data")
            parts.append({"inlineData": {"mimeType": mime, "data": data}})
        elif isinstance(part, FilePart):
            parts.append(_file_part(part, param, options))
    return parts


def _file_part(part: FilePart, param: str, options: Options) -> dict[str, Any]:
    file = part.file
    if isinstance(file.file_data, str) and file.file_data:
        data = file.file_data
        if data[:5].lower() == "data:":
            return _data_uri(data, f"{param}.file.file_data")
        mime = None
        if isinstance(file.filename, str):
            mime, _ = mimetypes.guess_type(file.filename, strict=False)
        if mime is None:
            raise UnsupportedRequest(
                "file_data needs a data: URI or a filename with a known extension", f"{param}.file"
            )
        return {"inlineData": {"mimeType": mime, "data": _b64(data, f"{param}.file.file_data")}}
    if isinstance(file.file_id, str) and file.file_id:
        uri = file.file_id
        if uri.startswith("files/"):
            uri = "https://generativelanguage.googleapis.com/v1beta/" + uri
        if _file_uri(uri, options):
            name = file.filename if isinstance(file.filename, str) else ""
            return _file_data(uri, mimetypes.guess_type(name, strict=False)[0] if name else None)
        raise UnsupportedRequest(
            "file_id must name a Gemini file (files/... or a Files API URI)", param=f"{param}.file.file_id"
        )
    raise UnsupportedRequest("the file part has no data", param=f"{param}.file")


# --- conversation --------------------------------------------------------------------------------


class _Turn:
    """One Gemini ``Content`` being built; ``responses`` marks a turn of ``functionResponse`` parts."""

    __slots__ = ("call_names", "calls", "parts", "responses", "role")

    def __init__(self, role: str, responses: bool = False) -> None:
        self.role = role
        self.parts: list[dict[str, Any]] = []
        self.calls: list[tuple[str, str, str | None]] = []  # tool calls: (client id, name, gemini id)
        self.call_names: list[str] = []  # every functionCall part, legacy function_call included
        self.responses = responses

    def json(self) -> dict[str, Any]:
        return {"role": self.role, "parts": self.parts}


def _tool_output(content: Any) -> Any:
    text = text_of(content)
    try:
        return _JSON.decode(text)
    except (msgspec.DecodeError, RecursionError):
        return text


def _arguments(text: str, param: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        args = _JSON.decode(text)
    except (msgspec.DecodeError, RecursionError):
        raise UnsupportedRequest("tool call arguments are not valid JSON", param=param) from None
    if not isinstance(args, dict):
        raise UnsupportedRequest("tool call arguments must be a JSON object for Gemini", param=param)
    return args


class _Conversation:
    """Builds ``contents`` and ``systemInstruction`` from OpenAI messages."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.turns: list[_Turn] = []
        self.system: list[str] = []

    def add(
        self,
        role: str,
        parts: list[dict[str, Any]],
        calls: list[tuple[str, str, str | None]] | None = None,
        responses: bool = False,
    ) -> None:
        """Append parts as a turn, merged into the last turn when it has the same role.

        A turn of ``functionResponse`` parts is never merged with text: Gemini wants the answers to
        one model turn alone in one content.
        """
        if not parts:
            return
        last = self.turns[-1] if self.turns else None
        if last is not None and last.role == role and not last.responses and not responses:
            turn = last
        else:
            turn = _Turn(role, responses)
            self.turns.append(turn)
        turn.parts.extend(parts)
        if calls:
            turn.calls.extend(calls)
        turn.call_names.extend(p["functionCall"]["name"] for p in parts if "functionCall" in p)

    def assistant(self, message: AssistantMessage, i: int) -> None:
        at = f"messages[{i}]"
        parts: list[dict[str, Any]] = []
        content = message.content
        if isinstance(content, str):
            if content:
                parts.append({"text": content})
        elif isinstance(content, list):
            for item in content:
                text = item.text if isinstance(item, TextPart) else item.refusal
                if text:
                    parts.append({"text": text})
        if not parts and isinstance(message.refusal, str) and message.refusal:
            parts.append({"text": message.refusal})
        calls: list[tuple[str, str, str | None]] = []
        if isinstance(message.tool_calls, list):
            for j, call in enumerate(message.tool_calls):
                param = f"{at}.tool_calls[{j}].function"
                name = call.function.name
                if not _FUNCTION_NAME.match(name):
                    raise UnsupportedRequest(f"{name!r} is not a valid Gemini function name", f"{param}.name")
                ref = decode_call_id(call.id)
                args = _arguments(call.function.arguments, f"{param}.arguments")
                function: dict[str, Any] = {"name": name, "args": args}
                if ref.gemini_id:
                    function = {"id": ref.gemini_id, **function}
                part: dict[str, Any] = {"functionCall": function}
                if ref.signature:
                    part["thoughtSignature"] = ref.signature
                parts.append(part)
                calls.append((call.id, name, ref.gemini_id))
        elif message.function_call is not UNSET and message.function_call is not None:
            legacy = message.function_call
            args = _arguments(legacy.arguments, f"{at}.function_call.arguments")
            parts.append({"functionCall": {"name": legacy.name, "args": args}})
        self.add("model", parts, calls)

    def tool_results(self, run: list[tuple[int, ToolMessage]]) -> None:
        first = run[0][0]
        turn = self.turns[-1] if self.turns else None
        if turn is None or turn.role != "model" or not turn.calls or len(turn.calls) != len(turn.call_names):
            raise UnsupportedRequest(
                "a tool message must follow an assistant message with tool_calls", param=f"messages[{first}]"
            )
        answers: dict[str, tuple[int, ToolMessage]] = {}
        expected = {call[0] for call in turn.calls}
        for i, message in run:
            if message.tool_call_id not in expected:
                raise UnsupportedRequest(
                    f"tool_call_id {message.tool_call_id!r} answers no tool call of the preceding "
                    "assistant message",
                    param=f"messages[{i}].tool_call_id",
                )
            if message.tool_call_id in answers:
                raise UnsupportedRequest(
                    f"tool_call_id {message.tool_call_id!r} is answered twice",
                    param=f"messages[{i}].tool_call_id",
                )
            answers[message.tool_call_id] = (i, message)
        parts: list[dict[str, Any]] = []
        for call_id, name, gemini_id in turn.calls:
            if call_id not in answers:
                raise UnsupportedRequest(
                    f"no tool message answers tool_call_id {call_id!r}: Gemini needs an answer to every call "
                    "of a turn",
                    param=f"messages[{first}]",
                )
            output = _tool_output(answers[call_id][1].content)
            response: dict[str, Any] = {"name": name, "response": {"output": output}}
            if gemini_id:
                response = {"id": gemini_id, **response}
            parts.append({"functionResponse": response})
        self.add("user", parts, responses=True)

    def function_results(self, run: list[tuple[int, FunctionMessage]]) -> None:
        turn = self.turns[-1] if self.turns else None
        names = sorted(m.name for _, m in run)
        if turn is None or turn.role != "model" or sorted(turn.call_names) != names:
            raise UnsupportedRequest(
                "a function message must answer the function_call of the assistant message before it",
                param=f"messages[{run[0][0]}]",
            )
        parts = [
            {"functionResponse": {"name": m.name, "response": {"output": _tool_output(m.content)}}}
            for _, m in run
        ]
        self.add("user", parts, responses=True)

    def read(self, messages: list[Message]) -> None:
        i = 0
        while i < len(messages):
            message = messages[i]
            if isinstance(message, SystemMessage | DeveloperMessage):
                text = text_of(message.content)
                if text:
                    self.system.append(text)
            elif isinstance(message, UserMessage):
                self.add("user", _user_parts(message.content, f"messages[{i}]", self.options))
            elif isinstance(message, AssistantMessage):
                self.assistant(message, i)
            elif isinstance(message, ToolMessage):
                run: list[tuple[int, ToolMessage]] = []
                while i < len(messages) and isinstance(messages[i], ToolMessage):
                    run.append((i, messages[i]))  # type: ignore[arg-type]
                    i += 1
                self.tool_results(run)
                continue
            elif isinstance(message, FunctionMessage):
                legacy: list[tuple[int, FunctionMessage]] = []
                while i < len(messages) and isinstance(messages[i], FunctionMessage):
                    legacy.append((i, messages[i]))  # type: ignore[arg-type]
                    i += 1
                self.function_results(legacy)
                continue
            i += 1

    def finish(self, body: dict[str, Any]) -> None:
        """Write ``contents`` (and ``systemInstruction``) into ``body``."""
        for k, turn in enumerate(self.turns):
            answered = k + 1 < len(self.turns) and self.turns[k + 1].responses
            if turn.call_names and not answered:
                raise UnsupportedRequest(
                    "an assistant message with tool calls must be followed by the tool messages "
                    "answering them",
                    param="messages",
                )
        system = "\n\n".join(self.system)
        if system and (not self.options.system_instruction or not self.turns):
            first = self.turns[0] if self.turns else None
            if first is not None and first.role == "user" and not first.responses:
                first.parts.insert(0, {"text": system})
            else:
                turn = _Turn("user")
                turn.parts.append({"text": system})
                self.turns.insert(0, turn)
        elif system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        if not self.turns:
            raise UnsupportedRequest("every message is empty: Gemini needs some content", param="messages")
        body["contents"] = [turn.json() for turn in self.turns]


# --- generation config ---------------------------------------------------------------------------


def _stop(stop: Any) -> list[str] | None:
    if stop is UNSET or stop is None:
        return None
    values = [stop] if isinstance(stop, str) else list(stop)
    values = [s for s in values if s]
    if len(values) > MAX_STOP_SEQUENCES:
        raise UnsupportedRequest(f"Gemini takes at most {MAX_STOP_SEQUENCES} stop sequences", param="stop")
    return values or None


def _sampling(typed: ChatCompletionRequest | CompletionRequest, config: dict[str, Any]) -> None:
    for field, name in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        value = getattr(typed, field, UNSET)
        if is_set(value):
            config[name] = value
    limit = getattr(typed, "max_completion_tokens", UNSET)
    field = "max_completion_tokens"
    if not is_set(limit):
        limit, field = typed.max_tokens, "max_tokens"
    if isinstance(limit, int):
        if limit < 1:
            raise UnsupportedRequest(f"{field} must be at least 1 for Gemini", param=field)
        config["maxOutputTokens"] = limit
    stops = _stop(typed.stop)
    if stops:
        config["stopSequences"] = stops
    n = typed.n
    if isinstance(n, int) and n > 1:
        config["candidateCount"] = n


def _response_format(typed: ChatCompletionRequest, config: dict[str, Any], options: Options) -> None:
    fmt = typed.response_format
    if fmt is UNSET or fmt.type == "text":
        return
    config["responseMimeType"] = "application/json"
    if fmt.type != "json_schema" or fmt.json_schema is UNSET or fmt.json_schema.schema is UNSET:
        return
    raw = fmt.json_schema.schema
    schema = _JSON.decode(raw)
    if not isinstance(schema, dict):
        raise UnsupportedRequest(
            "the response schema must be a JSON object", param="response_format.json_schema.schema"
        )
    if options.schema_mode == "json_schema":
        config["responseJsonSchema"] = raw
    else:
        config["responseSchema"] = to_gemini_schema(schema)


def _thinking(typed: ChatCompletionRequest, config: dict[str, Any], options: Options) -> None:
    effort = typed.reasoning_effort
    if not isinstance(effort, str):
        return
    value = options.thinking(effort)
    if value is None:
        raise UnsupportedRequest(
            f"reasoning_effort {effort!r} has no Gemini thinking budget (see the provider's "
            "thinking_budget_by_effort option)",
            param="reasoning_effort",
        )
    if isinstance(value, str):
        config["thinkingConfig"] = {"thinkingLevel": value, "includeThoughts": True}
    elif value == 0:
        config["thinkingConfig"] = {"thinkingBudget": 0}
    else:
        config["thinkingConfig"] = {"thinkingBudget": value, "includeThoughts": True}


# --- tools ---------------------------------------------------------------------------------------


def _tools(typed: ChatCompletionRequest, body: dict[str, Any], options: Options) -> None:
    if typed.tools is UNSET or not typed.tools:
        return
    declarations: list[dict[str, Any]] = []
    names: set[str] = set()
    for k, tool in enumerate(typed.tools):
        function = tool.function
        if tool.type != "function" or function is UNSET:
            raise UnsupportedRequest(f"Gemini supports only function tools, not {tool.type!r}", f"tools[{k}]")
        if not _FUNCTION_NAME.match(function.name):
            raise UnsupportedRequest(
                f"{function.name!r} is not a valid Gemini function name (it must start with a letter or '_')",
                param=f"tools[{k}].function.name",
            )
        names.add(function.name)
        declaration: dict[str, Any] = {"name": function.name}
        if isinstance(function.description, str) and function.description:
            declaration["description"] = function.description
        if function.parameters is not UNSET:
            schema = _JSON.decode(function.parameters)
            if schema is not None and not isinstance(schema, dict):
                raise UnsupportedRequest(
                    "parameters must be a JSON Schema object", param=f"tools[{k}].function.parameters"
                )
            if isinstance(schema, dict):
                if options.schema_mode == "json_schema":
                    declaration["parametersJsonSchema"] = function.parameters
                else:
                    cleaned = to_gemini_schema(schema)
                    if cleaned.get("properties") or cleaned.get("type") not in (None, "OBJECT"):
                        declaration["parameters"] = cleaned
        declarations.append(declaration)
    body["tools"] = [{"functionDeclarations": declarations}]
    choice = typed.tool_choice
    if choice is UNSET:
        return
    config: dict[str, Any]
    if choice == "auto":
        config = {"mode": "AUTO"}
    elif choice == "none":
        config = {"mode": "NONE"}
    elif choice == "required":
        config = {"mode": "ANY"}
    elif not isinstance(choice, str) and choice.type == "function" and choice.function is not UNSET:
        if choice.function.name not in names:
            raise UnsupportedRequest(
                f"tool_choice names {choice.function.name!r}, which is not in tools", param="tool_choice"
            )
        config = {"mode": "ANY", "allowedFunctionNames": [choice.function.name]}
    else:
        raise UnsupportedRequest("this tool_choice has no Gemini equivalent", param="tool_choice")
    body["toolConfig"] = {"functionCallingConfig": config}


# --- bodies --------------------------------------------------------------------------------------


def _finish_config(body: dict[str, Any], config: dict[str, Any], options: Options) -> None:
    if config:
        body["generationConfig"] = config
    if options.safety_settings:
        body["safetySettings"] = list(options.safety_settings)


def chat_body(typed: ChatCompletionRequest, options: Options) -> dict[str, Any]:
    """The ``GenerateContentRequest`` for a chat completion request."""
    conversation = _Conversation(options)
    conversation.read(typed.messages)
    body: dict[str, Any] = {}
    conversation.finish(body)
    _tools(typed, body, options)
    config: dict[str, Any] = {}
    _sampling(typed, config)
    if typed.logprobs is True:
        config["responseLogprobs"] = True
        if is_set(typed.top_logprobs):
            config["logprobs"] = typed.top_logprobs
    _response_format(typed, config, options)
    _thinking(typed, config, options)
    _finish_config(body, config, options)
    return body


def completion_body(typed: CompletionRequest, options: Options) -> dict[str, Any]:
    """The ``GenerateContentRequest`` for a legacy completion: the prompt is one user turn."""
    for field, value, bad in (
        ("echo", typed.echo, typed.echo is True),
        ("suffix", typed.suffix, is_set(typed.suffix)),
        ("best_of", typed.best_of, is_set(typed.best_of) and typed.best_of != 1),
        ("logprobs", typed.logprobs, is_set(typed.logprobs)),
    ):
        if bad:
            raise UnsupportedRequest(f"{field}={value!r} is not supported with Gemini", param=field)
    prompt = typed.prompt
    if isinstance(prompt, list):
        if len(prompt) != 1 or not isinstance(prompt[0], str):
            raise UnsupportedRequest(
                "Gemini takes one text prompt per request (not a batch or token ids)", param="prompt"
            )
        prompt = prompt[0]
    if not prompt:
        raise UnsupportedRequest("the prompt is empty", param="prompt")
    body: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": prompt}]}]}
    config: dict[str, Any] = {}
    _sampling(typed, config)
    _finish_config(body, config, options)
    return body


def embed_body(typed: EmbeddingRequest, model: str, options: Options) -> dict[str, Any]:
    """The ``BatchEmbedContentsRequest``: one request per input, at most :data:`MAX_EMBED_BATCH`."""
    inputs: list[Any] = [typed.input] if isinstance(typed.input, str) else list(typed.input)
    if not all(isinstance(item, str) for item in inputs):
        raise UnsupportedRequest("Gemini embeds text only, not token arrays", param="input")
    if len(inputs) > MAX_EMBED_BATCH:
        raise UnsupportedRequest(
            f"Gemini embeds at most {MAX_EMBED_BATCH} inputs per request; got {len(inputs)}", param="input"
        )
    extra: dict[str, Any] = {}
    if options.embedding_task_type:
        extra["taskType"] = options.embedding_task_type
    if is_set(typed.dimensions):
        extra["outputDimensionality"] = typed.dimensions
    name = model_resource(model)
    return {"requests": [{"model": name, "content": {"parts": [{"text": text}]}, **extra} for text in inputs]}


def build_request(provider: Provider, model: str, request: ChatRequest, api_key: str) -> UpstreamRequest:
    """The upstream call for one attempt (``provider.type`` is ``gemini``)."""
    options = options_of(provider.options)
    stream = request.stream and request.endpoint not in ("embeddings", "count_tokens")
    url = upstream_url(provider.base_url, model, request.endpoint, stream)
    headers = {
        "content-type": "application/json",
        "accept": "text/event-stream" if stream else "application/json",
    }
    if api_key:
        headers["x-goog-api-key"] = api_key
    headers.update(provider.headers)
    if request.dialect == "gemini":
        raw = request.body
        if request.endpoint == "embeddings":
            fields = request.fields()
            if "requests" in fields:  # batchEmbedContents: every request names the URL's model
                items = msgspec.json.decode(fields["requests"])
                raw = request.encode(requests=[{**item, "model": model_resource(model)} for item in items])
            else:  # embedContent
                url = method_url(provider.base_url, model, "embedContent")
        elif request.endpoint == "count_tokens" and "generateContentRequest" in request.fields():
            inner = msgspec.json.decode(request.fields()["generateContentRequest"])
            if isinstance(inner, dict):  # it names the model too: the deployment's, as in the URL
                raw = request.encode(generateContentRequest={**inner, "model": model_resource(model)})
        return UpstreamRequest(url=url, headers=headers, body=raw, stream=stream)
    try:
        body = _body(request, model, options)
        if request.endpoint == "count_tokens":
            body = count_body(body, model)
        raw = msgspec.json.encode(body)
    except RecursionError:  # client JSON (a schema, tool arguments) nested deeper than can be followed
        raise UnsupportedRequest("the request is nested too deeply to translate for Gemini") from None
    return UpstreamRequest(url=url, headers=headers, body=raw, stream=stream)


def _body(request: ChatRequest, model: str, options: Options) -> dict[str, Any]:
    typed = request.typed
    if isinstance(typed, ChatCompletionRequest):
        return chat_body(typed, options)
    if isinstance(typed, CompletionRequest):
        return completion_body(typed, options)
    if isinstance(typed, EmbeddingRequest) and request.endpoint == "embeddings":
        return embed_body(typed, model, options)
    raise UnsupportedRequest(f"the gemini provider cannot serve the {request.endpoint} endpoint")
