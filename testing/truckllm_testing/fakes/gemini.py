"""A fake Gemini Developer API (``generativelanguage.googleapis.com/v1beta``).

Wire details reproduced (PROVIDERS.md §3 and §6):

- The key comes from ``x-goog-api-key`` or ``?key=``; a bad key is **400**
  ``INVALID_ARGUMENT`` with an ``API_KEY_INVALID`` ``ErrorInfo``; no key is 403.
- Non-streamed JSON is pretty-printed (2 spaces); there are no request-id or
  rate-limit headers.
- ``:streamGenerateContent?alt=sse``: ``data: {...}\\r\\n\\r\\n`` events (JSON with
  ``": "`` separators as Google sends), no ``[DONE]``; ``usageMetadata`` on every chunk,
  partial (prompt only) then final; zero-valued fields (``index``,
  ``candidatesTokenCount``...) omitted.  Without ``alt=sse`` the same chunks stream as
  one pretty-printed JSON array (``[{...}\\n,\\r\\n{...}\\n]``).
- ``functionCall`` parts arrive whole, without ``id``, the first with a
  ``thoughtSignature``; the finish reason stays ``STOP``.
- A mid-stream failure is a raw, non-SSE ``{"error": {"code": 503, ...}}`` object.
- Errors are ``google.rpc.Status``; a 429 carries ``QuotaFailure``, ``Help`` and
  ``RetryInfo`` details.
- Request JSON must be camelCase: a snake_case name (``system_instruction``) or an
  unknown name is rejected as "Unknown name ... Cannot find field", and so are the JSON
  Schema keywords the OpenAPI subset lacks (``$schema``, ``additionalProperties``,
  ``const``, ``$ref``, ``$defs``, ``propertyNames``, type arrays).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Collection, Sequence
from typing import Any, ClassVar

from aiohttp import web

from .base import (
    Answer,
    Ctx,
    Fault,
    Problem,
    Route,
    count_words,
    deterministic_vector,
    fmt_seconds,
    is_base64,
    is_int,
    is_number,
    rand_id,
    split_text,
)
from .gemini_images import GeminiImagesAPI, is_image_model

__all__ = ["FakeGemini"]

STRUCT = "Struct"
"""Marker: any JSON object (``google.protobuf.Struct``)."""

SCHEMA_FIELDS = {
    "type": None, "format": None, "title": None, "description": None, "nullable": None, "enum": None,
    "maxItems": None, "minItems": None, "properties": "SchemaMap", "required": None,
    "minProperties": None, "maxProperties": None, "minLength": None, "maxLength": None, "pattern": None,
    "example": None, "anyOf": ["Schema"], "propertyOrdering": None, "default": None, "items": "Schema",
    "minimum": None, "maximum": None,
}  # fmt: skip
"""Fields of the OpenAPI-subset ``Schema`` message."""

MESSAGES: dict[str, dict[str, Any]] = {
    "GenerateContentRequest": {
        "model": None, "contents": ["Content"], "systemInstruction": "Content", "tools": ["Tool"],
        "toolConfig": "ToolConfig", "generationConfig": "GenerationConfig",
        "safetySettings": ["SafetySetting"], "cachedContent": None,
    },
    "Content": {"role": None, "parts": ["Part"]},
    "Part": {
        "text": None, "inlineData": "Blob", "fileData": "FileData", "functionCall": "FunctionCall",
        "functionResponse": "FunctionResponse", "executableCode": STRUCT, "codeExecutionResult": STRUCT,
        "thought": None, "thoughtSignature": None, "videoMetadata": STRUCT, "partMetadata": STRUCT,
        "mediaResolution": None,
    },
    "Blob": {"mimeType": None, "data": None},
    "FileData": {"mimeType": None, "fileUri": None},
    "FunctionCall": {"id": None, "name": None, "args": STRUCT},
    "FunctionResponse": {
        "id": None, "name": None, "response": STRUCT, "parts": None, "willContinue": None, "scheduling": None,
    },
    "Tool": {
        "functionDeclarations": ["FunctionDeclaration"], "googleSearch": STRUCT,
        "googleSearchRetrieval": STRUCT, "codeExecution": STRUCT, "urlContext": STRUCT,
        "computerUse": STRUCT, "fileSearch": STRUCT, "googleMaps": STRUCT,
    },
    "FunctionDeclaration": {
        "name": None, "description": None, "parameters": "Schema", "parametersJsonSchema": STRUCT,
        "response": "Schema", "responseJsonSchema": STRUCT, "behavior": None,
    },
    "ToolConfig": {"functionCallingConfig": "FunctionCallingConfig", "retrievalConfig": STRUCT},
    "FunctionCallingConfig": {"mode": None, "allowedFunctionNames": None},
    "GenerationConfig": {
        "stopSequences": None, "responseMimeType": None, "responseSchema": "Schema",
        "responseJsonSchema": STRUCT, "responseModalities": None, "candidateCount": None,
        "maxOutputTokens": None, "temperature": None, "topP": None, "topK": None, "seed": None,
        "presencePenalty": None, "frequencyPenalty": None, "responseLogprobs": None, "logprobs": None,
        "enableEnhancedCivicAnswers": None, "speechConfig": STRUCT, "thinkingConfig": "ThinkingConfig",
        "mediaResolution": None, "imageConfig": STRUCT,
    },
    "ThinkingConfig": {"includeThoughts": None, "thinkingBudget": None, "thinkingLevel": None},
    "SafetySetting": {"category": None, "threshold": None, "method": None},
    "Schema": SCHEMA_FIELDS,
    "EmbedContentRequest": {
        "model": None, "content": "Content", "taskType": None, "title": None, "outputDimensionality": None,
    },
    "BatchEmbedContentsRequest": {"requests": ["EmbedContentRequest"]},
    "CountTokensRequest": {"contents": ["Content"], "generateContentRequest": "GenerateContentRequest"},
}  # fmt: skip
"""The request messages the fake knows, field name (camelCase) to child message."""

SCHEMA_TYPES = ("STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL", "TYPE_UNSPECIFIED")
TASK_TYPES = (
    "TASK_TYPE_UNSPECIFIED", "RETRIEVAL_QUERY", "RETRIEVAL_DOCUMENT", "SEMANTIC_SIMILARITY",
    "CLASSIFICATION", "CLUSTERING", "QUESTION_ANSWERING", "FACT_VERIFICATION", "CODE_RETRIEVAL_QUERY",
)  # fmt: skip
_DATA_FIELDS = (
    "text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode",
    "codeExecutionResult",
)  # fmt: skip
_FUNCTION_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.:-]{0,127}$")
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
_PACKAGE = "type.googleapis.com/google.ai.generativelanguage.v1beta"
_STATUS = {
    400: "INVALID_ARGUMENT",
    402: "RESOURCE_EXHAUSTED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_EMPTY_TEXT = (
    "Unable to submit request because it has an empty text parameter. Add a value to the parameter and "
    "try again. To learn more, see https://cloud.google.com/vertex-ai/generative-ai/docs/multimodal/"
    "send-chat-prompts-gemini"
)
_METHODS = (
    "generateContent", "streamGenerateContent", "embedContent", "batchEmbedContents", "countTokens",
    "predict",
)  # fmt: skip


def _snake(name: str) -> str:
    return _CAMEL.sub("_", name).lower()


def _sse_json(obj: Any) -> bytes:
    """Single-line JSON as Google's SSE sends it: ``{"a": 1,"b": 2}``."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ": ")).encode()


def _pretty(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, indent=2).encode()


def _signature(seed: str) -> str:
    return base64.b64encode(b"\x0a\x24fake" + hashlib.sha256(seed.encode()).digest()).decode()


class FakeGemini(GeminiImagesAPI):
    """Fake ``https://generativelanguage.googleapis.com``; :attr:`base_url` ends in ``/v1beta``.

    :param require_thought_signature: Gemini 3 mode: reject a history whose model turns
        (in the current turn) have a first ``functionCall`` part without ``thoughtSignature``.

    Fault kinds: ``bad_request``, ``context_length``, ``auth`` (400), ``spend_limit``
    (402), ``permission`` (403), ``not_found`` (404), ``rate_limit`` and
    ``quota_per_day`` (429, with ``QuotaFailure`` and ``RetryInfo``, default retry delay
    1 s), ``server`` (500), ``overloaded`` (503), ``timeout`` (504).  The mid-stream
    error is 503 ``UNAVAILABLE`` (or the fault's ``kind``).
    """

    provider: ClassVar[str] = "gemini"
    base_path: ClassVar[str] = "/v1beta"
    server_name: ClassVar[str] = "scaffolding on HTTPServer2"
    json_indent: ClassVar[int | None] = 2
    error_json_indent: ClassVar[int | None] = 2
    json_content_type: ClassVar[str] = "application/json; charset=UTF-8"
    default_models: ClassVar[tuple[str, ...]] = (
        "gemini-2.5-flash",
        "gemini-2.5-pro",
        "gemini-3-pro-preview",
        "gemini-embedding-001",
    )
    error_kinds: ClassVar[dict[str, int]] = {
        "bad_request": 400,
        "context_length": 400,
        "auth": 400,
        "spend_limit": 402,
        "permission": 403,
        "not_found": 404,
        "rate_limit": 429,
        "quota_per_day": 429,
        "server": 500,
        "overloaded": 503,
        "timeout": 504,
    }

    def __init__(
        self,
        keys: Collection[str] = ("test-key",),
        *,
        chunks: int = 3,
        chunk_delay: float = 0.0,
        strict: bool = True,
        models: Collection[str] | None = None,
        require_thought_signature: bool = False,
    ) -> None:
        super().__init__(keys, chunks=chunks, chunk_delay=chunk_delay, strict=strict, models=models)
        self.require_thought_signature = require_thought_signature
        """Gemini 3 mode: function calls in history need their ``thoughtSignature``."""

    # ------------------------------------------------------------------ routing and auth

    def routes(self) -> list[Route]:
        """The ``models/{model}:{method}`` endpoints and the model list."""
        return [
            Route("POST", "/v1beta/models/{target:[^/]+}", self._post, self._validate),
            Route("GET", "/v1beta/models", self._models, needs_json=False),
            Route("GET", "/v1beta/models/{target:[^/:]+}", self._model, needs_json=False),
        ]

    @staticmethod
    def _target(ctx: Ctx) -> tuple[str, str]:
        target = ctx.request.match_info.get("target", "")
        model, _, method = target.partition(":")
        return model, method

    def model_of(self, ctx: Ctx) -> str | None:
        """The model named in the URL path."""
        model, _ = self._target(ctx)
        return model or None

    def is_stream(self, ctx: Ctx) -> bool:
        """``:streamGenerateContent``."""
        return self._target(ctx)[1] == "streamGenerateContent"

    def api_key(self, request: web.Request) -> str | None:
        """``x-goog-api-key``, else ``?key=``."""
        return request.headers.get("x-goog-api-key") or request.query.get("key") or None

    def auth_error(self, ctx: Ctx) -> web.Response | None:
        """403 without a key; 400 ``API_KEY_INVALID`` for an unknown one."""
        key = ctx.rec.api_key
        if key is None:
            return self.error(
                ctx,
                403,
                "auth_missing",
                "Method doesn't allow unregistered callers (callers without established identity). "
                "Please use API Key or other form of API consumer identity to call this API.",
            )
        if self.keys and key not in self.keys:
            return self.error(ctx, 400, "auth", None)
        return None

    def bad_json(self, ctx: Ctx) -> web.Response:
        """400 ``INVALID_ARGUMENT`` for a body that is not JSON."""
        return self.error(ctx, 400, "bad_request", "Invalid JSON payload received. Unexpected token.")

    def unknown_model(self, ctx: Ctx, model: str) -> web.Response:
        """404 ``NOT_FOUND``."""
        return self.error(ctx, 404, "not_found", None)

    def combine(self, problems: Sequence[Problem]) -> tuple[str, str | None]:
        """Gemini lists every problem, one per line."""
        return "\n".join(p.message for p in problems), None

    # ------------------------------------------------------------------ errors

    def error_body(
        self, ctx: Ctx, status: int, kind: str, message: str | None, param: str | None
    ) -> dict[str, Any]:
        """``google.rpc.Status``: ``{"error": {"code", "message", "status", "details"?}}``."""
        model, method = self._target(ctx)
        model = model or "gemini-2.5-flash"
        retry = ctx.fault.retry_after if ctx.fault is not None else None
        details: list[dict[str, Any]] | None = None
        if kind == "auth":
            message = message or "API key not valid. Please pass a valid API key."
            details = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                },
                {
                    "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                    "locale": "en-US",
                    "message": "API key not valid. Please pass a valid API key.",
                },
            ]
        elif kind in ("rate_limit", "quota_per_day"):
            retry = 1.0 if retry is None else retry
            per = "PerDay" if kind == "quota_per_day" else "PerMinute"
            metric = "generativelanguage.googleapis.com/generate_content_free_tier_requests"
            message = message or (
                "You exceeded your current quota, please check your plan and billing details. For more "
                "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. "
                "To monitor your current usage, head to: https://ai.dev/usage?tab=rate-limit. \n"
                f"* Quota exceeded for metric: {metric}, limit: 10, model: {model}\n"
                f"Please retry in {fmt_seconds(retry)}s."
            )
            details = [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {
                            "quotaMetric": metric,
                            "quotaId": f"GenerateRequests{per}PerProjectPerModel-FreeTier",
                            "quotaDimensions": {"location": "global", "model": model},
                            "quotaValue": "10",
                        }
                    ],
                },
                {
                    "@type": "type.googleapis.com/google.rpc.Help",
                    "links": [
                        {
                            "description": "Learn more about Gemini API quotas",
                            "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                        }
                    ],
                },
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{fmt_seconds(retry)}s"},
            ]
        elif kind == "context_length":
            message = message or (
                "The input token count (1048577) exceeds the maximum number of tokens allowed (1048576)."
            )
        elif kind == "not_found":
            message = message or (
                f"models/{model} is not found for API version v1beta, or is not supported for "
                f"{method or 'generateContent'}. Call ListModels to see the list of available models and "
                "their supported methods."
            )
        defaults = {
            "spend_limit": "Your prepayment credits are depleted. Please go to AI Studio at "
            "https://ai.studio/projects to manage your project and billing.",
            "permission": "The caller does not have permission",
            "server": "An internal error has occurred. Please retry or report in "
            "https://developers.generativeai.google/guide/troubleshooting",
            "overloaded": "The model is overloaded. Please try again later.",
            "timeout": "Deadline expired before operation could complete.",
            "unknown_url": f"Method not found: {ctx.request.method} {ctx.request.path}",
        }
        error: dict[str, Any] = {
            "code": status,
            "message": message or defaults.get(kind, f"fake {kind} error"),
            "status": _STATUS.get(status, "UNKNOWN"),
        }
        if details is not None:
            error["details"] = details
        return {"error": error}

    def error_headers(self, ctx: Ctx, status: int, kind: str, fault: Fault | None) -> dict[str, str]:
        """Google's generic headers; never a ``retry-after`` (the delay is in the body)."""
        return {"Vary": "Origin, X-Origin, Referer", "X-Content-Type-Options": "nosniff"}

    def success_headers(self, ctx: Ctx) -> dict[str, str]:
        """Google's generic headers; no request id, no rate limits."""
        self.count_request(ctx.rec.api_key, ctx.tokens)
        return {
            "Vary": "Origin, X-Origin, Referer",
            "X-Content-Type-Options": "nosniff",
            "Server-Timing": "gfet4t7; dur=42",
        }

    def stream_error(self, ctx: Ctx, kind: str | None, index: int) -> bytes:
        """A raw ``{"error": {...}}`` object: not SSE-framed (or an array element without ``alt=sse``)."""
        kind = kind or "overloaded"
        body = _pretty(self.error_body(ctx, self.error_kinds.get(kind, 500), kind, None, None))
        if ctx.request.query.get("alt") == "sse":
            return body + b"\n"
        return (b"\n,\r\n" if index else b"") + body + b"\n]"

    def stream_error_status(self) -> int:
        """A mid-stream error on a non-streaming request answers 503."""
        return 503

    # ------------------------------------------------------------------ validation

    def _validate(self, ctx: Ctx) -> list[Problem]:
        model, method = self._target(ctx)
        if method not in _METHODS:
            return []  # answered 404 by the handler
        body = ctx.body
        if not isinstance(body, dict):
            return [Problem("Invalid JSON payload received. Expected an object.")]
        if method in ("generateContent", "streamGenerateContent"):
            problems = self._validate_generate(body, "GenerateContentRequest")
            return problems + self.validate_image_generation(model, body)  # image models (gemini_images)
        if method == "predict":  # Imagen (gemini_images)
            return self.validate_predict(ctx, model)
        if method == "countTokens":
            problems = self._walk(body, "CountTokensRequest", "")
            if "contents" in body and "generateContentRequest" in body:
                problems.append(
                    Problem("* CountTokensRequest: contents and generate_content_request cannot both be set.")
                )
            inner = body.get("generateContentRequest")
            if isinstance(inner, dict):
                root = "CountTokensRequest.generate_content_request"
                inner_model = inner.get("model")  # required in a GenerateContentRequest
                prefixes = ("models/", "tunedModels/")
                if not isinstance(inner_model, str) or not inner_model.startswith(prefixes):
                    problems.append(Problem(f"* {root}.model: unexpected model name format"))
                elif inner_model.partition("/")[2] != model:
                    problems.append(
                        Problem(
                            f"* {root}.model: Model in the request ({inner_model}) does not match the "
                            f"model in the URL (models/{model})."
                        )
                    )
                problems.extend(self._semantics(inner, root))
            elif isinstance(body.get("contents"), list):
                problems.extend(self._check_contents(body["contents"], "CountTokensRequest"))
            return problems
        if method == "embedContent":
            problems = self._walk(body, "EmbedContentRequest", "")
            problems.extend(self._check_embed(body, "EmbedContentRequest", model, in_batch=False))
            return problems
        problems = self._walk(body, "BatchEmbedContentsRequest", "")
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            problems.append(Problem("* BatchEmbedContentsRequest.requests: requests is not specified"))
        elif len(requests) > 100:
            problems.append(
                Problem("* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch")
            )
        else:
            for i, item in enumerate(requests):
                if isinstance(item, dict):
                    problems.extend(
                        self._check_embed(
                            item, f"BatchEmbedContentsRequest.requests[{i}]", model, in_batch=True
                        )
                    )
        return problems

    def _validate_generate(self, body: dict[str, Any], root: str) -> list[Problem]:
        problems = self._walk(body, root, "")
        problems.extend(self._semantics(body, root))
        return problems

    def _walk(self, value: Any, message: Any, path: str) -> list[Problem]:
        """Check field names recursively against :data:`MESSAGES` (camelCase only)."""
        problems: list[Problem] = []
        if message is None:
            return problems
        if message == STRUCT:
            return problems
        if message == "SchemaMap":
            if isinstance(value, dict):
                for index, item in enumerate(value.values()):
                    problems.extend(self._walk(item, "Schema", f"{path}[{index}].value"))
            return problems
        if isinstance(message, list):
            if not isinstance(value, list):
                problems.append(Problem(f"Invalid value at '{path}', expected a list of {message[0]}"))
                return problems
            for index, item in enumerate(value):
                problems.extend(self._walk(item, message[0], f"{path}[{index}]"))
            return problems
        if not isinstance(value, dict):
            shown = json.dumps(value)
            problems.append(Problem(f"Invalid value at '{path}' ({_PACKAGE}.{message}), {shown}"))
            return problems
        fields = MESSAGES[message]
        at = f" at '{path}'" if path else ""
        for name, child in value.items():
            if name not in fields:
                problems.append(
                    Problem(f'Invalid JSON payload received. Unknown name "{name}"{at}: Cannot find field.')
                )
                continue
            sub = f"{path}.{_snake(name)}" if path else _snake(name)
            if message == "Schema" and name == "type":
                if isinstance(child, list):
                    problems.append(
                        Problem(
                            f'Invalid JSON payload received. Unknown name "type"{at}: Proto field is not '
                            "repeating, cannot start list."
                        )
                    )
                elif not isinstance(child, str) or child.upper() not in SCHEMA_TYPES:
                    problems.append(
                        Problem(f"Invalid value at '{sub}' ({_PACKAGE}.Type), {json.dumps(child)}")
                    )
                continue
            if message == "Schema" and name == "enum" and isinstance(child, list):
                for index, item in enumerate(child):
                    if not isinstance(item, str):
                        problems.append(
                            Problem(f"Invalid value at '{sub}[{index}]' (TYPE_STRING), {json.dumps(item)}")
                        )
                continue
            if fields[name] == STRUCT and child is not None and not isinstance(child, dict):
                if isinstance(child, list):
                    problems.append(
                        Problem(
                            f'Invalid JSON payload received. Unknown name "{name}"{at}: Proto field is not '
                            "repeating, cannot start list."
                        )
                    )
                else:
                    problems.append(
                        Problem(
                            f"Invalid value at '{sub}' (type.googleapis.com/google.protobuf.Struct), "
                            f"{json.dumps(child)}"
                        )
                    )
                continue
            problems.extend(self._walk(child, fields[name], sub))
        return problems

    def _semantics(self, body: dict[str, Any], root: str) -> list[Problem]:
        problems: list[Problem] = []
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            problems.append(Problem(f"* {root}.contents: contents is not specified"))
        else:
            problems.extend(self._check_contents(contents, root))
        system = body.get("systemInstruction")
        if isinstance(system, dict):
            for j, part in enumerate(system.get("parts") or []):
                if isinstance(part, dict) and part.get("text") == "":
                    problems.append(Problem(_EMPTY_TEXT))
                elif isinstance(part, dict) and not any(f in part for f in _DATA_FIELDS):
                    problems.append(
                        Problem(
                            f"* {root}.system_instruction.parts[{j}].data: required oneof field 'data' must "
                            "have one initialized field"
                        )
                    )
        problems.extend(self._check_tools(body, root))
        problems.extend(self._check_generation_config(body.get("generationConfig"), root))
        return problems

    def _check_contents(self, contents: list[Any], root: str) -> list[Problem]:
        problems: list[Problem] = []
        calls: list[list[str]] = []  # per content: functionCall names
        responses: list[list[str]] = []
        roles: list[str] = []
        for i, content in enumerate(contents):
            names_called: list[str] = []
            names_answered: list[str] = []
            calls.append(names_called)
            responses.append(names_answered)
            if not isinstance(content, dict):
                roles.append("user")
                continue
            role = content.get("role") or "user"
            roles.append(role)
            if role not in ("user", "model"):
                problems.append(Problem("Please use a valid role: user, model."))
            parts = content.get("parts")
            if not isinstance(parts, list) or not parts:
                problems.append(Problem(f"* {root}.contents[{i}].parts: contents.parts must not be empty."))
                continue
            for j, part in enumerate(parts):
                if not isinstance(part, dict):
                    continue
                at = f"{root}.contents[{i}].parts[{j}]"
                present = [f for f in _DATA_FIELDS if f in part]
                if not present:
                    problems.append(
                        Problem(f"* {at}.data: required oneof field 'data' must have one initialized field")
                    )
                    continue
                if len(present) > 1:
                    problems.append(
                        Problem(
                            "Invalid JSON payload received. Oneof field 'data' is already set. Cannot set "
                            f"'{present[1]}'"
                        )
                    )
                if "text" in present and part["text"] == "" and "thoughtSignature" not in part:
                    problems.append(Problem(_EMPTY_TEXT))
                signature = part.get("thoughtSignature")
                if signature is not None and (not isinstance(signature, str) or not is_base64(signature)):
                    problems.append(
                        Problem(
                            f"Invalid value at 'contents[{i}].parts[{j}].thought_signature' (TYPE_BYTES), "
                            f'Base64 decoding failed for "{signature}"'
                        )
                    )
                blob = part.get("inlineData")
                if isinstance(blob, dict):
                    if not blob.get("mimeType"):
                        problems.append(Problem(f"* {at}.inline_data.mime_type: mime_type is not specified"))
                    data = blob.get("data")
                    if not isinstance(data, str) or not data or not is_base64(data):
                        problems.append(
                            Problem(
                                f"Invalid value at 'contents[{i}].parts[{j}].inline_data.data' (TYPE_BYTES), "
                                f"Base64 decoding failed for {json.dumps(data)[:40]}"
                            )
                        )
                call = part.get("functionCall")
                if isinstance(call, dict):
                    if not call.get("name"):
                        problems.append(Problem(f"* {at}.function_call.name: Name cannot be empty."))
                    names_called.append(str(call.get("name")))
                response = part.get("functionResponse")
                if isinstance(response, dict):
                    if not response.get("name"):
                        problems.append(Problem(f"* {at}.function_response.name: Name cannot be empty."))
                    if "response" not in response:
                        problems.append(
                            Problem(f"* {at}.function_response.response: response is not specified")
                        )
                    names_answered.append(str(response.get("name")))
            if names_called and role != "model":
                problems.append(Problem("Please ensure that function call turns are model turns."))
            if names_answered and role != "user":
                problems.append(Problem("Please ensure that function response turns are user turns."))
        for i in range(len(contents)):
            if calls[i]:
                if i == 0 or roles[i - 1] != "user":
                    problems.append(
                        Problem(
                            "Please ensure that function call turn comes immediately after a user turn or "
                            "after "
                            "a function response turn."
                        )
                    )
                if i + 1 < len(contents) and len(responses[i + 1]) != len(calls[i]):
                    problems.append(
                        Problem(
                            "Please ensure that the number of function response parts is equal to the "
                            "number of "
                            "function call parts of the function call turn."
                        )
                    )
                elif i + 1 < len(contents) and sorted(responses[i + 1]) != sorted(calls[i]):
                    problems.append(
                        Problem(
                            f"* {root}.contents[{i + 1}]: function response names "
                            f"{sorted(responses[i + 1])} do not match the function call names "
                            f"{sorted(calls[i])} "
                            "of the function call turn."
                        )
                    )
            if responses[i] and (i == 0 or not calls[i - 1]):
                problems.append(
                    Problem(
                        "Please ensure that function response turn comes immediately after a "
                        "function call turn."
                    )
                )
        if self.require_thought_signature:
            problems.extend(self._check_signatures(contents, responses))
        return problems

    @staticmethod
    def _check_signatures(contents: list[Any], responses: list[list[str]]) -> list[Problem]:
        """Gemini 3: in the current turn, each model step's first functionCall part needs a signature."""
        start = 0
        for i, content in enumerate(contents):
            if isinstance(content, dict) and (content.get("role") or "user") == "user" and not responses[i]:
                start = i
        problems: list[Problem] = []
        for content in contents[start:]:
            if not isinstance(content, dict) or content.get("role") != "model":
                continue
            parts = [p for p in content.get("parts") or [] if isinstance(p, dict)]
            for position, part in enumerate(parts, start=1):
                if "functionCall" in part:
                    if not part.get("thoughtSignature"):
                        name = (
                            part["functionCall"].get("name")
                            if isinstance(part["functionCall"], dict)
                            else "?"
                        )
                        problems.append(
                            Problem(
                                "Function call is missing a thought_signature in functionCall parts. This is "
                                "required for tools to work correctly, and missing thought_signature may "
                                "lead "
                                f"to degraded model performance. Additional data, function call "
                                f"`default_api:{name}` , position {position}. Please refer to "
                                "https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
                            )
                        )
                    break
        return problems

    @staticmethod
    def _check_schema(schema: Any, at: str) -> list[Problem]:
        problems: list[Problem] = []
        if not isinstance(schema, dict):
            return problems
        properties = schema.get("properties")
        required = schema.get("required")
        if isinstance(required, list):
            defined = properties if isinstance(properties, dict) else {}
            for k, name in enumerate(required):
                if name not in defined:
                    problems.append(Problem(f"* {at}.required[{k}]: property is not defined"))
        if isinstance(properties, dict):
            for name, sub in properties.items():
                problems.extend(FakeGemini._check_schema(sub, f"{at}.properties[{name}]"))
        problems.extend(FakeGemini._check_schema(schema.get("items"), f"{at}.items"))
        for k, sub in enumerate(schema.get("anyOf") or []):
            problems.extend(FakeGemini._check_schema(sub, f"{at}.any_of[{k}]"))
        return problems

    def _check_tools(self, body: dict[str, Any], root: str) -> list[Problem]:
        problems: list[Problem] = []
        tools = body.get("tools")
        for i, tool in enumerate(tools if isinstance(tools, list) else []):
            if not isinstance(tool, dict):
                continue
            declarations = tool.get("functionDeclarations")
            for j, decl in enumerate(declarations if isinstance(declarations, list) else []):
                if not isinstance(decl, dict):
                    continue
                at = f"{root}.tools[{i}].function_declarations[{j}]"
                name = decl.get("name")
                if not isinstance(name, str) or not _FUNCTION_NAME.match(name):
                    problems.append(
                        Problem(
                            f"* {at}.name: Invalid function name. Must start with a letter or an underscore. "
                            "Must be a-z, A-Z, 0-9, or contain underscores, dots, colons and dashes, with a "
                            "maximum length of 128."
                        )
                    )
                if "parameters" in decl and "parametersJsonSchema" in decl:
                    problems.append(
                        Problem(
                            f"* {at}.parameters: parameters and parameters_json_schema cannot both be set."
                        )
                    )
                problems.extend(self._check_schema(decl.get("parameters"), f"{at}.parameters"))
        config = body.get("toolConfig")
        calling = config.get("functionCallingConfig") if isinstance(config, dict) else None
        if isinstance(calling, dict):
            mode = calling.get("mode", "AUTO")
            if mode not in ("MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"):
                problems.append(
                    Problem(
                        "Invalid value at 'tool_config.function_calling_config.mode' "
                        f"({_PACKAGE}.FunctionCallingConfig.Mode), {json.dumps(mode)}"
                    )
                )
            elif calling.get("allowedFunctionNames") and mode not in ("ANY", "VALIDATED"):
                problems.append(
                    Problem(
                        f"* {root}.tool_config.function_calling_config.allowed_function_names: "
                        "allowed_function_names may only be set when mode is ANY."
                    )
                )
        return problems

    def _check_generation_config(self, config: Any, root: str) -> list[Problem]:
        problems: list[Problem] = []
        if not isinstance(config, dict):
            return problems
        at = f"{root}.generation_config"
        stops = config.get("stopSequences")
        if isinstance(stops, list) and len(stops) > 5:
            problems.append(Problem(f"* {at}.stop_sequences: the number of stop_sequences must not exceed 5"))
        for name, low, high in (("temperature", 0, 2), ("topP", 0, 1)):
            value = config.get(name)
            if value is not None and (not is_number(value) or not low <= value <= high):
                problems.append(
                    Problem(f"* {at}.{_snake(name)}: {_snake(name)} must be in the range [{low}, {high}]")
                )
        for name in ("candidateCount", "maxOutputTokens"):
            value = config.get(name)
            if value is not None and (not is_int(value) or value < 1):
                problems.append(Problem(f"* {at}.{_snake(name)}: {_snake(name)} must be positive"))
        if "responseSchema" in config and "responseJsonSchema" in config:
            problems.append(
                Problem(
                    f"* {at}.response_schema: response_schema and response_json_schema cannot both be set."
                )
            )
        if ("responseSchema" in config or "responseJsonSchema" in config) and config.get(
            "responseMimeType"
        ) not in (
            "application/json",
            "text/x.enum",
        ):
            problems.append(
                Problem(
                    f"* {at}.response_mime_type: When using response_schema, response_mime_type "
                    "must be one of: "
                    "application/json, text/x.enum."
                )
            )
        problems.extend(self._check_schema(config.get("responseSchema"), f"{at}.response_schema"))
        return problems

    def _check_embed(self, body: dict[str, Any], root: str, model: str, *, in_batch: bool) -> list[Problem]:
        problems: list[Problem] = []
        if in_batch:
            item_model = body.get("model")
            if not isinstance(item_model, str) or not item_model.startswith("models/"):
                problems.append(Problem(f"* {root}.model: unexpected model name format"))
            elif item_model != f"models/{model}":
                problems.append(
                    Problem(
                        f"* {root}.model: Model in the request ({item_model}) does not match the "
                        "model in the "
                        f"URL (models/{model})."
                    )
                )
        content = body.get("content")
        if not isinstance(content, dict):
            problems.append(Problem(f"* {root}.content: content is not specified"))
        else:
            parts = content.get("parts")
            if not isinstance(parts, list) or not parts:
                problems.append(Problem(f"* {root}.content.parts: contents.parts must not be empty."))
            elif any(isinstance(p, dict) and p.get("text") == "" for p in parts):
                problems.append(Problem(_EMPTY_TEXT))
        task = body.get("taskType")
        if task is not None and task not in TASK_TYPES:
            problems.append(
                Problem(f"Invalid value at 'task_type' ({_PACKAGE}.TaskType), {json.dumps(task)}")
            )
        dims = body.get("outputDimensionality")
        if dims is not None and (not is_int(dims) or dims < 1):
            problems.append(
                Problem(f"* {root}.output_dimensionality: output_dimensionality must be positive")
            )
        return problems

    # ------------------------------------------------------------------ handlers

    @staticmethod
    def _part_texts(content: Any) -> list[str]:
        out: list[str] = []
        if not isinstance(content, dict):
            return out
        for part in content.get("parts") or []:
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("text"), str):
                out.append(part["text"])
            elif isinstance(part.get("functionResponse"), dict):
                out.append(json.dumps(part["functionResponse"].get("response"), ensure_ascii=False))
        return out

    def _request_texts(self, body: dict[str, Any]) -> tuple[list[str], str]:
        texts = self._part_texts(body.get("systemInstruction"))
        prompt = ""
        for content in body.get("contents") or []:
            found = self._part_texts(content)
            texts.extend(found)
            if isinstance(content, dict) and (content.get("role") or "user") == "user":
                prompt = " ".join(found)
        return texts, prompt

    async def _post(self, ctx: Ctx) -> web.StreamResponse:
        model, method = self._target(ctx)
        if method in ("generateContent", "streamGenerateContent"):
            if is_image_model(model):
                return await self.generate_images(ctx)
            return await self._generate(ctx)
        if method == "predict":
            return await self.predict(ctx)
        if method == "countTokens":
            body = ctx.body
            inner = (
                body.get("generateContentRequest")
                if isinstance(body.get("generateContentRequest"), dict)
                else body
            )
            texts, _ = self._request_texts(inner)
            total = count_words(*texts) + 1
            return self.json_response(
                ctx,
                {"totalTokens": total, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}]},
            )
        if method == "embedContent":
            return self.json_response(ctx, {"embedding": {"values": self._embed(ctx.body)}})
        if method == "batchEmbedContents":
            return self.json_response(
                ctx, {"embeddings": [{"values": self._embed(r)} for r in ctx.body["requests"]]}
            )
        message = f"unknown method {ctx.request.method} {ctx.request.path}"
        ctx.rec.violations.append(message)
        self.violations.append(message)
        return self.error(ctx, 404, "not_found", f"Method not found: {method or '(none)'}.")

    def _embed(self, body: dict[str, Any]) -> list[float]:
        text = " ".join(self._part_texts(body.get("content")))
        dims = body.get("outputDimensionality")
        return deterministic_vector(text, dims if is_int(dims) and dims > 0 else 8)

    @staticmethod
    def _usage(answer: Answer, final: bool) -> dict[str, Any]:
        prompt = answer.prompt_tokens
        candidates = 0
        usage: dict[str, Any] = {"promptTokenCount": prompt}
        if final:
            candidates = max(0, answer.completion_tokens - answer.reasoning_tokens)
            if candidates:
                usage["candidatesTokenCount"] = candidates
            usage["totalTokenCount"] = prompt + answer.completion_tokens
            if answer.cached_tokens:
                usage["cachedContentTokenCount"] = answer.cached_tokens
            if answer.reasoning_tokens:
                usage["thoughtsTokenCount"] = answer.reasoning_tokens
        else:
            usage["totalTokenCount"] = prompt
        usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
        if final and answer.cached_tokens:
            usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": answer.cached_tokens}]
        if final and candidates:
            usage["candidatesTokensDetails"] = [{"modality": "TEXT", "tokenCount": candidates}]
        return usage

    async def _generate(self, ctx: Ctx) -> web.StreamResponse:
        body: dict[str, Any] = ctx.body
        texts, prompt = self._request_texts(body)
        config = body.get("generationConfig")
        if not isinstance(config, dict):
            config = {}
        max_tokens = config.get("maxOutputTokens")
        stops = [s for s in config.get("stopSequences") or [] if isinstance(s, str)]
        answer = self.build_answer(
            ctx,
            texts=texts,
            prompt=prompt,
            max_tokens=max_tokens if is_int(max_tokens) else None,
            stops=stops,
            tool_ids=False,
        )
        ctx.tokens = answer.prompt_tokens + answer.completion_tokens
        finish = answer.finish or ("MAX_TOKENS" if answer.reason == "length" else "STOP")
        head = {"modelVersion": ctx.rec.model, "responseId": rand_id("", 22)}
        call_parts: list[dict[str, Any]] = []
        for k, call in enumerate(answer.tool_calls):
            function: dict[str, Any] = {"name": call.name, "args": call.arguments}
            if call.id is not None:
                function = {"id": call.id, **function}
            part: dict[str, Any] = {"functionCall": function}
            if k == 0:
                part["thoughtSignature"] = _signature(call.name + json.dumps(call.arguments, sort_keys=True))
            call_parts.append(part)

        def response(parts: list[dict[str, Any]], reason: str | None, final: bool) -> dict[str, Any]:
            candidate: dict[str, Any] = {}
            if parts:
                candidate["content"] = {"parts": parts, "role": "model"}
            if reason is not None:
                candidate["finishReason"] = reason
            return {"candidates": [candidate], "usageMetadata": self._usage(answer, final), **head}

        if answer.blocked:
            blocked = {"promptFeedback": {"blockReason": answer.finish or "SAFETY"}}
            chunks = [{**blocked, "usageMetadata": self._usage(answer, final=False), **head}]
        elif not ctx.rec.stream:
            parts: list[dict[str, Any]] = []
            if answer.thinking:
                parts.append({"text": answer.thinking, "thought": True})
            if answer.text:
                parts.append({"text": answer.text})
            parts.extend(call_parts)
            chunks = [response(parts, finish, final=True)]
        else:
            steps: list[list[dict[str, Any]]] = [
                [{"text": piece, "thought": True}] for piece in split_text(answer.thinking or "", self.chunks)
            ]
            steps.extend([{"text": piece}] for piece in split_text(answer.text, self.chunks))
            if call_parts:
                steps.append(call_parts)
            if not steps:
                steps.append([])
            chunks = [
                response(parts, finish if n == len(steps) - 1 else None, final=n == len(steps) - 1)
                for n, parts in enumerate(steps)
            ]
        if not ctx.rec.stream:
            return self.json_response(ctx, chunks[0])
        if ctx.request.query.get("alt") == "sse":
            events = [b"data: " + _sse_json(c) + b"\r\n\r\n" for c in chunks]
            return await self.send_stream(ctx, events, content_type="text/event-stream")
        events = [(b"\n,\r\n" if n else b"") + _pretty(c) for n, c in enumerate(chunks)]
        return await self.send_stream(
            ctx, events, content_type=self.json_content_type, prefix=b"[", terminator=b"\n]"
        )

    @staticmethod
    def _model_object(model: str) -> dict[str, Any]:
        embedding = "embedding" in model
        methods = ["embedContent", "countTextTokens", "countTokens"] if embedding else [
            "generateContent", "countTokens", "createCachedContent", "batchGenerateContent",
        ]  # fmt: skip
        obj: dict[str, Any] = {
            "name": f"models/{model}",
            "version": "001",
            "displayName": model.replace("-", " ").title(),
            "description": f"Fake {model}",
            "inputTokenLimit": 2048 if embedding else 1048576,
            "outputTokenLimit": 1 if embedding else 65536,
            "supportedGenerationMethods": methods,
        }
        if not embedding:
            obj.update({"temperature": 1, "maxTemperature": 2, "topP": 0.95, "topK": 64, "thinking": True})
        return obj

    async def _models(self, ctx: Ctx) -> web.StreamResponse:
        models = list(self.served_models)
        query = ctx.request.query
        size = (
            int(query["pageSize"]) if query.get("pageSize", "").isdigit() and int(query["pageSize"]) else 50
        )
        token = query.get("pageToken", "")
        start = int(base64.urlsafe_b64decode(token.encode()).decode()) if token else 0
        page = models[start : start + size]
        body: dict[str, Any] = {"models": [self._model_object(m) for m in page]}
        if start + size < len(models):
            body["nextPageToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
        return self.json_response(ctx, body)

    async def _model(self, ctx: Ctx) -> web.StreamResponse:
        model = ctx.request.match_info["target"]
        if self.models is not None and model not in self.models:
            return self.error(ctx, 404, "not_found", f"models/{model} is not found for API version v1beta.")
        return self.json_response(ctx, self._model_object(model))
