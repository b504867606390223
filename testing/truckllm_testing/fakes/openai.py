"""A fake OpenAI API: chat completions, legacy completions, embeddings, models and the
Responses API (its wire details are in :mod:`.openai_responses`).

Wire details reproduced (PROVIDERS.md §1 and §6):

- ``Authorization: Bearer <key>``; a missing key is 401 with ``code: null``, a wrong
  key 401 with ``code: "invalid_api_key"``.
- Success: pretty-printed JSON (2 spaces), ``x-request-id``, ``openai-processing-ms``
  and the ``x-ratelimit-*`` family with Go-style durations.
- Errors: ``{"error": {"message", "type", "param", "code"}}`` indented by 4 spaces.
- Streams: ``data: <json>\\n\\n`` events, every chunk with ``obfuscation`` (unless
  ``include_obfuscation: false``) and ``"usage": null`` when ``include_usage``, a final
  ``choices: []`` usage chunk, then ``data: [DONE]``.  Tool-call arguments are split
  mid-token with an empty first fragment; parallel calls use indexes 0, 1, ...
- Mid-stream errors: ``data: {"error": {...}}`` and the stream ends without ``[DONE]``.
"""

from __future__ import annotations

import json
import re
import secrets
import time
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
    float32_base64,
    fmt_seconds,
    go_duration,
    is_int,
    is_number,
    jtype,
    rand_id,
    split_json,
    split_text,
)
from .openai_batches import BatchesAPI
from .openai_images import ImagesAPI
from .openai_media import MediaAPI
from .openai_responses import ResponsesAPI

__all__ = ["FakeOpenAI"]

CHAT_FIELDS = frozenset(
    {
        "model", "messages", "audio", "frequency_penalty", "function_call", "functions",
        "logit_bias", "logprobs", "max_completion_tokens", "max_tokens", "metadata",
        "modalities", "n", "parallel_tool_calls", "prediction", "presence_penalty",
        "prompt_cache_key", "prompt_cache_retention", "reasoning_effort", "response_format",
        "safety_identifier", "seed", "service_tier", "stop", "store", "stream",
        "stream_options", "temperature", "tool_choice", "tools", "top_logprobs", "top_p",
        "user", "verbosity", "web_search_options",
    }
)  # fmt: skip
"""Top-level fields of ``CreateChatCompletionRequest``; anything else is rejected."""

COMPLETION_FIELDS = frozenset(
    {
        "model", "prompt", "best_of", "echo", "frequency_penalty", "logit_bias", "logprobs",
        "max_tokens", "n", "presence_penalty", "seed", "stop", "stream", "stream_options",
        "suffix", "temperature", "top_p", "user",
    }
)  # fmt: skip
"""Top-level fields of ``CreateCompletionRequest``."""

EMBEDDING_FIELDS = frozenset({"model", "input", "encoding_format", "dimensions", "user"})
"""Top-level fields of ``CreateEmbeddingRequest``."""

ROLES = ("system", "assistant", "user", "function", "tool", "developer")
_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_REASONING = ("o1", "o3", "o4", "gpt-5")
_FINISH = {"stop": "stop", "stop_sequence": "stop", "length": "length", "tool_calls": "tool_calls"}
_MISSING_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank "
    "username) if you're accessing the API from your browser and are prompted for a username and "
    "password. You can obtain an API key from https://platform.openai.com/account/api-keys."
)
_BAD_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
    "your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not "
    "valid JSON. If you have trouble figuring out how to fix this, please contact us through our "
    "help center at help.openai.com.)"
)
_STREAM_ERROR = (
    "The server had an error processing your request. Sorry about that! You can retry your "
    "request, or contact us through our help center at help.openai.com if you keep seeing this error."
)
LIMIT_REQUESTS = 5000
"""``x-ratelimit-limit-requests`` on every answer."""
LIMIT_TOKENS = 2_000_000
"""``x-ratelimit-limit-tokens`` on every answer."""


def _int_or(value: Any, default: int) -> int:
    return value if is_int(value) else default


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
    return []


def _range(problems: list[Problem], body: dict[str, Any], name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if not is_number(value):
        problems.append(
            Problem(f"Invalid type for '{name}': expected a number, but got a {jtype(value)} instead.", name)
        )
    elif value < low:
        problems.append(
            Problem(
                f"Invalid '{name}': decimal below minimum value. Expected a value >= {low:g}, "
                f"but got {value} instead.",
                name,
            )
        )
    elif value > high:
        problems.append(
            Problem(
                f"Invalid '{name}': decimal above maximum value. Expected a value <= {high:g}, "
                f"but got {value} instead.",
                name,
            )
        )


def _int_min(problems: list[Problem], body: dict[str, Any], name: str, low: int) -> None:
    value = body.get(name)
    if value is None:
        return
    if not is_int(value):
        problems.append(
            Problem(
                f"Invalid type for '{name}': expected an integer, but got a {jtype(value)} instead.", name
            )
        )
    elif value < low:
        problems.append(
            Problem(
                f"Invalid '{name}': integer below minimum value. Expected a value >= {low}, "
                f"but got {value} instead.",
                name,
            )
        )


def _unknown_fields(problems: list[Problem], body: dict[str, Any], allowed: frozenset[str]) -> None:
    for name in body:
        if name not in allowed:
            problems.append(Problem(f"Unrecognized request argument supplied: {name}"))


def _stream_options(problems: list[Problem], body: dict[str, Any]) -> None:
    options = body.get("stream_options")
    if "stream" in body and not isinstance(body["stream"], bool) and body["stream"] is not None:
        problems.append(
            Problem(
                f"Invalid type for 'stream': expected a boolean, but got a {jtype(body['stream'])} instead.",
                "stream",
            )
        )
    if options is None:
        return
    if body.get("stream") is not True:
        problems.append(
            Problem(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options"
            )
        )
    if not isinstance(options, dict):
        problems.append(Problem("Invalid type for 'stream_options': expected an object.", "stream_options"))
        return
    for name, value in options.items():
        if name not in ("include_usage", "include_obfuscation"):
            problems.append(Problem(f"Unrecognized request argument supplied: stream_options.{name}"))
        elif not isinstance(value, bool):
            problems.append(
                Problem(
                    f"Invalid type for 'stream_options.{name}': expected a boolean, "
                    f"but got a {jtype(value)} instead.",
                    f"stream_options.{name}",
                )
            )


def _stop(problems: list[Problem], body: dict[str, Any]) -> list[str]:
    stop = body.get("stop")
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        problems.append(Problem("Invalid type for 'stop': expected a string or an array of strings.", "stop"))
        return []
    if len(stop) > 4:
        problems.append(
            Problem(
                "Invalid 'stop': array too long. Expected an array with maximum length 4, "
                f"but got an array with length {len(stop)} instead.",
                "stop",
            )
        )
    return list(stop)


class FakeOpenAI(BatchesAPI, ResponsesAPI, MediaAPI, ImagesAPI):
    """Fake ``https://api.openai.com/v1``; :attr:`base_url` ends in ``/v1``.

    Fault kinds: ``bad_request`` and ``context_length`` (400), ``auth`` (401),
    ``permission`` (403), ``not_found`` (404), ``rate_limit`` (429, ``type: "tokens"``),
    ``rate_limit_requests`` (429, ``type: "requests"``), ``spend_limit`` (429
    ``insufficient_quota``), ``server`` (500), ``overloaded`` (503), ``timeout`` (504).
    The mid-stream error is a ``server_error`` (or the fault's ``kind``).
    """

    provider: ClassVar[str] = "openai"
    base_path: ClassVar[str] = "/v1"
    server_name: ClassVar[str] = "cloudflare"
    json_indent: ClassVar[int | None] = 2
    error_json_indent: ClassVar[int | None] = 4
    default_models: ClassVar[tuple[str, ...]] = (
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "o3-mini",
        "gpt-3.5-turbo-instruct",
        "text-embedding-3-small",
        "text-embedding-3-large",
    )
    error_kinds: ClassVar[dict[str, int]] = {
        "bad_request": 400,
        "context_length": 400,
        "auth": 401,
        "permission": 403,
        "not_found": 404,
        "rate_limit": 429,
        "rate_limit_requests": 429,
        "spend_limit": 429,
        "server": 500,
        "overloaded": 503,
        "timeout": 504,
    }

    # ------------------------------------------------------------------ routing and auth

    def routes(self) -> list[Route]:
        """Chat, legacy completions, embeddings, models and the Responses API."""
        return [
            *self.responses_routes(),
            *self.batches_routes(),
            *self.media_routes(),  # audio, image edits (openai_media)
            *self.images_routes(),  # image generations, moderations (openai_images)
            Route("POST", "/v1/chat/completions", self._chat, self._validate_chat),
            Route("POST", "/v1/completions", self._completions, self._validate_completions),
            Route("POST", "/v1/embeddings", self._embeddings, self._validate_embeddings),
            Route("GET", "/v1/models", self._models, needs_json=False),
            Route("GET", "/v1/models/{model_id}", self._model, needs_json=False),
        ]

    def api_key(self, request: web.Request) -> str | None:
        """The bearer token of ``Authorization``."""
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return token.strip()

    def auth_error(self, ctx: Ctx) -> web.Response | None:
        """401 for a missing or unknown key."""
        key = ctx.rec.api_key
        if key is None:
            return self.error(ctx, 401, "auth_missing", _MISSING_KEY)
        if self.keys and key not in self.keys:
            masked = key[:3] + "*" * 4 + key[-4:] if len(key) > 8 else key[:1] + "*" * 4
            return self.error(
                ctx,
                401,
                "auth",
                f"Incorrect API key provided: {masked}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
            )
        return None

    def bad_json(self, ctx: Ctx) -> web.Response:
        """400 for a body that is not JSON."""
        return self.error(ctx, 400, "bad_request", _BAD_JSON)

    def unknown_model(self, ctx: Ctx, model: str) -> web.Response:
        """404 ``model_not_found``."""
        return self.error(ctx, 404, "not_found", None)

    # ------------------------------------------------------------------ errors and headers

    def _request_headers(self) -> dict[str, str]:
        return {
            "x-request-id": "req_" + secrets.token_hex(16),
            "openai-processing-ms": str(secrets.randbelow(400) + 20),
            "openai-version": "2020-10-01",
            "openai-organization": "org-fake",
        }

    def error_body(
        self, ctx: Ctx, status: int, kind: str, message: str | None, param: str | None
    ) -> dict[str, Any]:
        """``{"error": {"message", "type", "param", "code"}}``."""
        model = ctx.rec.model or "gpt-4o"
        wait = go_duration(ctx.fault.retry_after) if ctx.fault and ctx.fault.retry_after else "1.574s"
        err_type, code = "invalid_request_error", None
        if kind == "auth":
            code = "invalid_api_key"
        elif kind == "auth_missing":
            pass
        elif kind == "context_length":
            message = message or (
                "This model's maximum context length is 128000 tokens. However, your messages "
                "resulted in 131072 tokens. Please reduce the length of the messages."
            )
            param, code = param or "messages", "context_length_exceeded"
        elif kind == "permission":
            message = message or "Country, region, or territory not supported"
            err_type, code = "request_forbidden", "unsupported_country_region_territory"
        elif kind == "not_found":
            message = message or f"The model `{model}` does not exist or you do not have access to it."
            code = "model_not_found"
        elif kind == "rate_limit":
            message = message or (
                f"Rate limit reached for {model} in organization org-fake on tokens per min (TPM): "
                f"Limit 30000, Used 30000, Requested 100. Please try again in {wait}. "
                "Visit https://platform.openai.com/account/rate-limits to learn more."
            )
            err_type, code = "tokens", "rate_limit_exceeded"
        elif kind == "rate_limit_requests":
            message = message or (
                f"Rate limit reached for {model} in organization org-fake on requests per min (RPM): "
                f"Limit 500, Used 500, Requested 1. Please try again in {wait}. "
                "Visit https://platform.openai.com/account/rate-limits to learn more."
            )
            err_type, code = "requests", "rate_limit_exceeded"
        elif kind == "spend_limit":
            message = message or (
                "You exceeded your current quota, please check your plan and billing details. For more "
                "information on this error, read the docs: "
                "https://platform.openai.com/docs/guides/error-codes/api-errors."
            )
            err_type, code = "insufficient_quota", "insufficient_quota"
        elif kind == "server":
            message = message or "The server had an error while processing your request. Sorry about that!"
            err_type = "server_error"
        elif kind == "overloaded":
            message = message or "The engine is currently overloaded, please try again later."
            err_type = "server_error"
        elif kind == "unknown_url":
            request = ctx.request
            message = message or f"Invalid URL ({request.method} {request.path})"
        elif kind == "timeout":
            message = message or "Request timed out."
            err_type = "server_error"
        elif status >= 500:
            err_type = "server_error"
        code = code or self.responses_error_code(ctx, status, kind, message)
        return {
            "error": {
                "message": message or f"fake {kind} error ({status})",
                "type": err_type,
                "param": param,
                "code": code,
            }
        }

    def error_headers(self, ctx: Ctx, status: int, kind: str, fault: Fault | None) -> dict[str, str]:
        """Request id; on 429 ``retry-after``, ``retry-after-ms`` and exhausted rate limits."""
        headers = self._request_headers()
        retry = fault.retry_after if fault is not None else None
        if retry is not None:
            headers["retry-after"] = fmt_seconds(retry)
            headers["retry-after-ms"] = str(round(retry * 1000))
        if status == 429 and kind != "spend_limit":
            requests, tokens = self.usage_of(ctx.rec.api_key)
            reset = go_duration(retry if retry is not None else 1.0)
            by_requests = kind == "rate_limit_requests"
            headers.update(
                {
                    "x-ratelimit-limit-requests": str(LIMIT_REQUESTS),
                    "x-ratelimit-limit-tokens": str(LIMIT_TOKENS),
                    "x-ratelimit-remaining-requests": "0" if by_requests else str(LIMIT_REQUESTS - requests),
                    "x-ratelimit-remaining-tokens": str(LIMIT_TOKENS - tokens) if by_requests else "0",
                    "x-ratelimit-reset-requests": reset if by_requests else "12ms",
                    "x-ratelimit-reset-tokens": "6ms" if by_requests else reset,
                }
            )
        return headers

    def success_headers(self, ctx: Ctx) -> dict[str, str]:
        """Request id and the ``x-ratelimit-*`` family."""
        requests, tokens = self.count_request(ctx.rec.api_key, ctx.tokens)
        return {
            **self._request_headers(),
            "x-ratelimit-limit-requests": str(LIMIT_REQUESTS),
            "x-ratelimit-limit-tokens": str(LIMIT_TOKENS),
            "x-ratelimit-remaining-requests": str(max(0, LIMIT_REQUESTS - requests)),
            "x-ratelimit-remaining-tokens": str(max(0, LIMIT_TOKENS - tokens)),
            "x-ratelimit-reset-requests": go_duration(60 * requests / LIMIT_REQUESTS),
            "x-ratelimit-reset-tokens": go_duration(60 * tokens / LIMIT_TOKENS),
        }

    def stream_error(self, ctx: Ctx, kind: str | None, index: int) -> bytes:
        """``data: {"error": {...}}``; on the Responses API an ``error`` event then ``response.failed``."""
        if ctx.rec.path.startswith("/v1/responses"):
            return self.responses_stream_error(ctx, kind, index)
        if kind is None or kind == "server":
            body: dict[str, Any] = {
                "error": {"message": _STREAM_ERROR, "type": "server_error", "param": None, "code": None}
            }
        else:
            body = self.error_body(ctx, self.error_kinds.get(kind, 500), kind, None, None)
        return b"data: " + self.dumps(body) + b"\n\n"

    # ------------------------------------------------------------------ validation

    def _validate_chat(self, ctx: Ctx) -> list[Problem]:
        body = ctx.body
        if not isinstance(body, dict):
            return [Problem(_BAD_JSON)]
        problems: list[Problem] = []
        _unknown_fields(problems, body, CHAT_FIELDS)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            problems.append(Problem("you must provide a model parameter", "model"))
            model = ""
        messages = body.get("messages")
        if messages is None:
            problems.append(Problem("Missing required parameter: 'messages'.", "messages"))
            messages = []
        elif not isinstance(messages, list):
            problems.append(
                Problem(
                    f"Invalid type for 'messages': expected an array, but got a {jtype(messages)} instead.",
                    "messages",
                )
            )
            messages = []
        elif not messages:
            problems.append(
                Problem(
                    "Invalid 'messages': empty array. Expected an array with minimum length 1, "
                    "but got an empty array instead.",
                    "messages",
                )
            )
        self._validate_messages(problems, messages)
        _range(problems, body, "temperature", 0, 2)
        _range(problems, body, "top_p", 0, 1)
        _range(problems, body, "presence_penalty", -2, 2)
        _range(problems, body, "frequency_penalty", -2, 2)
        _int_min(problems, body, "n", 1)
        _int_min(problems, body, "max_tokens", 1)
        _int_min(problems, body, "max_completion_tokens", 1)
        if is_int(body.get("n")) and body["n"] > 128:
            problems.append(
                Problem(
                    "Invalid 'n': integer above maximum value. Expected a value <= 128, "
                    f"but got {body['n']} instead.",
                    "n",
                )
            )
        top_logprobs = body.get("top_logprobs")
        if top_logprobs is not None and (not is_int(top_logprobs) or not 0 <= top_logprobs <= 20):
            problems.append(
                Problem("Invalid 'top_logprobs': expected an integer between 0 and 20.", "top_logprobs")
            )
        _stop(problems, body)
        _stream_options(problems, body)
        self._validate_tools(problems, body)
        self._validate_response_format(problems, body.get("response_format"))
        if model.startswith(_REASONING):
            if body.get("max_tokens") is not None:
                problems.append(
                    Problem(
                        "Unsupported parameter: 'max_tokens' is not supported with this model. "
                        "Use 'max_completion_tokens' instead.",
                        "max_tokens",
                    )
                )
            temperature = body.get("temperature")
            if temperature is not None and temperature != 1:
                problems.append(
                    Problem(
                        f"Unsupported value: 'temperature' does not support {temperature} with this model. "
                        "Only the default (1) value is supported.",
                        "temperature",
                    )
                )
        return problems

    def _validate_messages(self, problems: list[Problem], messages: list[Any]) -> None:
        pending: dict[str, int] = {}  # tool_call id -> index of its assistant message
        open_calls = False
        for i, msg in enumerate(messages):
            where = f"messages[{i}]"
            if not isinstance(msg, dict):
                problems.append(
                    Problem(
                        f"Invalid type for '{where}': expected an object, but got a {jtype(msg)} instead.",
                        where,
                    )
                )
                continue
            role = msg.get("role")
            if role is None:
                problems.append(Problem(f"Missing required parameter: '{where}.role'.", f"{where}.role"))
                continue
            if role not in ROLES:
                problems.append(
                    Problem(
                        f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', "
                        "'function', 'tool', and 'developer'.",
                        f"{where}.role",
                    )
                )
                continue
            if role != "tool" and open_calls:
                self._unanswered(problems, pending)
                pending, open_calls = {}, False
            content = msg.get("content")
            if role in ("system", "developer", "user"):
                self._check_content(problems, where, content, role, required=True)
            elif role == "assistant":
                calls = msg.get("tool_calls")
                if content is None and not calls and msg.get("function_call") is None:
                    problems.append(
                        Problem(
                            "Invalid value for 'content': expected a string, got null.", f"{where}.content"
                        )
                    )
                elif content is not None:
                    self._check_content(problems, where, content, role, required=False)
                if calls is not None:
                    pending = self._check_tool_calls(problems, where, calls)
                    open_calls = bool(pending)
            elif role == "tool":
                call_id = msg.get("tool_call_id")
                self._check_content(problems, where, content, role, required=True)
                if not isinstance(call_id, str):
                    problems.append(
                        Problem(
                            f"Missing required parameter: '{where}.tool_call_id'.", f"{where}.tool_call_id"
                        )
                    )
                elif not open_calls:
                    problems.append(
                        Problem(
                            "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                            "message with 'tool_calls'.",
                            f"{where}.role",
                        )
                    )
                elif call_id not in pending:
                    problems.append(
                        Problem(
                            f"Invalid parameter: 'tool_call_id' of '{call_id}' not found in 'tool_calls' "
                            "of previous message.",
                            f"{where}.tool_call_id",
                        )
                    )
                else:
                    del pending[call_id]
            else:  # function (deprecated)
                if not isinstance(msg.get("name"), str):
                    problems.append(Problem(f"Missing required parameter: '{where}.name'.", f"{where}.name"))
        if open_calls:
            self._unanswered(problems, pending)

    @staticmethod
    def _unanswered(problems: list[Problem], pending: dict[str, int]) -> None:
        if pending:
            first = min(pending.values())
            problems.append(
                Problem(
                    "An assistant message with 'tool_calls' must be followed by tool messages responding to "
                    "each 'tool_call_id'. The following tool_call_ids did not have response messages: "
                    + ", ".join(pending),
                    f"messages.[{first}].role",
                )
            )

    @staticmethod
    def _check_content(
        problems: list[Problem], where: str, content: Any, role: str, *, required: bool
    ) -> None:
        if content is None:
            if required:
                problems.append(
                    Problem(f"Missing required parameter: '{where}.content'.", f"{where}.content")
                )
            return
        if isinstance(content, str):
            return
        if not isinstance(content, list):
            problems.append(
                Problem(
                    f"Invalid type for '{where}.content': expected one of a string or array of objects, "
                    f"but got a {jtype(content)} instead.",
                    f"{where}.content",
                )
            )
            return
        if not content:
            problems.append(
                Problem(
                    f"Invalid '{where}.content': empty array. Expected an array with minimum length 1, "
                    "but got an empty array instead.",
                    f"{where}.content",
                )
            )
        allowed = {
            "user": ("text", "image_url", "input_audio", "file"),
            "assistant": ("text", "refusal"),
        }.get(role, ("text",))
        for j, part in enumerate(content):
            at = f"{where}.content[{j}]"
            if not isinstance(part, dict):
                problems.append(Problem(f"Invalid type for '{at}': expected an object.", at))
                continue
            kind = part.get("type")
            if kind not in allowed:
                supported = ", ".join(f"'{a}'" for a in allowed)
                problems.append(
                    Problem(f"Invalid value: '{kind}'. Supported values are: {supported}.", f"{at}.type")
                )
            elif kind == "text" and not isinstance(part.get("text"), str):
                problems.append(Problem(f"Missing required parameter: '{at}.text'.", f"{at}.text"))
            elif kind == "image_url":
                image = part.get("image_url")
                if not isinstance(image, dict) or not isinstance(image.get("url"), str):
                    problems.append(
                        Problem(f"Missing required parameter: '{at}.image_url.url'.", f"{at}.image_url.url")
                    )
                elif image.get("detail") not in (None, "auto", "low", "high"):
                    problems.append(
                        Problem(
                            f"Invalid value: '{image['detail']}'. "
                            "Supported values are: 'auto', 'low', and 'high'.",
                            f"{at}.image_url.detail",
                        )
                    )

    @staticmethod
    def _check_tool_calls(problems: list[Problem], where: str, calls: Any) -> dict[str, int]:
        pending: dict[str, int] = {}
        index = int(where[len("messages[") : -1])
        if not isinstance(calls, list):
            problems.append(
                Problem(f"Invalid type for '{where}.tool_calls': expected an array.", f"{where}.tool_calls")
            )
            return pending
        if not calls:
            problems.append(
                Problem(
                    f"Invalid '{where}.tool_calls': empty array. Expected an array with minimum length 1, "
                    "but got an empty array instead.",
                    f"{where}.tool_calls",
                )
            )
        for j, call in enumerate(calls):
            at = f"{where}.tool_calls[{j}]"
            if not isinstance(call, dict):
                problems.append(Problem(f"Invalid type for '{at}': expected an object.", at))
                continue
            if not isinstance(call.get("id"), str):
                problems.append(Problem(f"Missing required parameter: '{at}.id'.", f"{at}.id"))
            else:
                pending[call["id"]] = index
            if call.get("type") not in ("function", "custom"):
                problems.append(Problem(f"Missing required parameter: '{at}.type'.", f"{at}.type"))
            function = call.get("function")
            if call.get("type") == "function":
                if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                    problems.append(
                        Problem(f"Missing required parameter: '{at}.function.name'.", f"{at}.function")
                    )
                elif not isinstance(function.get("arguments"), str):
                    problems.append(
                        Problem(
                            f"Invalid type for '{at}.function.arguments': expected a string, but got a "
                            f"{jtype(function.get('arguments'))} instead.",
                            f"{at}.function.arguments",
                        )
                    )
        return pending

    @staticmethod
    def _validate_tools(problems: list[Problem], body: dict[str, Any]) -> None:
        tools = body.get("tools")
        names: set[str] = set()
        if tools is not None:
            if not isinstance(tools, list):
                problems.append(Problem("Invalid type for 'tools': expected an array.", "tools"))
                tools = []
            elif not tools:
                problems.append(
                    Problem(
                        "Invalid 'tools': empty array. Expected an array with minimum length 1, "
                        "but got an empty array instead.",
                        "tools",
                    )
                )
            for i, tool in enumerate(tools):
                at = f"tools[{i}]"
                if not isinstance(tool, dict) or tool.get("type") not in ("function", "custom"):
                    problems.append(Problem(f"Missing required parameter: '{at}.type'.", f"{at}.type"))
                    continue
                if tool["type"] == "custom":
                    continue
                function = tool.get("function")
                if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                    problems.append(
                        Problem(f"Missing required parameter: '{at}.function'.", f"{at}.function")
                    )
                    continue
                name = function["name"]
                if not _NAME.match(name):
                    problems.append(
                        Problem(
                            f"Invalid '{at}.function.name': string does not match pattern. Expected a string "
                            "that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                            f"{at}.function.name",
                        )
                    )
                names.add(name)
                if "parameters" in function and not isinstance(function["parameters"], dict):
                    problems.append(
                        Problem(
                            f"Invalid type for '{at}.function.parameters': expected an object, but got a "
                            f"{jtype(function['parameters'])} instead.",
                            f"{at}.function.parameters",
                        )
                    )
        choice = body.get("tool_choice")
        if choice is not None:
            if not tools and choice != "none":
                problems.append(
                    Problem(
                        "Invalid value for 'tool_choice': 'tool_choice' is only allowed when "
                        "'tools' are specified.",
                        "tool_choice",
                    )
                )
            elif isinstance(choice, str):
                if choice not in ("none", "auto", "required"):
                    problems.append(
                        Problem(
                            f"Invalid value: '{choice}'. "
                            "Supported values are: 'none', 'auto', and 'required'.",
                            "tool_choice",
                        )
                    )
            elif isinstance(choice, dict):
                if choice.get("type") == "function":
                    function = choice.get("function")
                    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                        problems.append(
                            Problem("Missing required parameter: 'tool_choice.function.name'.", "tool_choice")
                        )
                    elif names and function["name"] not in names:
                        problems.append(
                            Problem(
                                f"Invalid value for 'tool_choice': function '{function['name']}' "
                                "not found in 'tools'.",
                                "tool_choice",
                            )
                        )
                elif choice.get("type") not in ("allowed_tools", "custom"):
                    problems.append(
                        Problem("Missing required parameter: 'tool_choice.type'.", "tool_choice.type")
                    )
            else:
                problems.append(Problem("Invalid type for 'tool_choice'.", "tool_choice"))
        if body.get("parallel_tool_calls") is not None and not tools:
            problems.append(
                Problem(
                    "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed when "
                    "'tools' are specified.",
                    "parallel_tool_calls",
                )
            )

    @staticmethod
    def _validate_response_format(problems: list[Problem], fmt: Any) -> None:
        if fmt is None:
            return
        if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object", "json_schema"):
            problems.append(
                Problem(
                    "Invalid value for 'response_format.type': supported values are 'text', 'json_object' "
                    "and 'json_schema'.",
                    "response_format.type",
                )
            )
            return
        if fmt["type"] == "json_schema":
            schema = fmt.get("json_schema")
            if not isinstance(schema, dict):
                problems.append(
                    Problem(
                        "Missing required parameter: 'response_format.json_schema'.",
                        "response_format.json_schema",
                    )
                )
            elif not isinstance(schema.get("name"), str) or not _NAME.match(schema["name"]):
                problems.append(
                    Problem(
                        "Invalid 'response_format.json_schema.name': string does not match pattern. "
                        "Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                        "response_format.json_schema.name",
                    )
                )

    def _validate_completions(self, ctx: Ctx) -> list[Problem]:
        body = ctx.body
        if not isinstance(body, dict):
            return [Problem(_BAD_JSON)]
        problems: list[Problem] = []
        _unknown_fields(problems, body, COMPLETION_FIELDS)
        if not isinstance(body.get("model"), str) or not body["model"]:
            problems.append(Problem("you must provide a model parameter", "model"))
        prompt = body.get("prompt")
        if "prompt" not in body:
            problems.append(Problem("Missing required parameter: 'prompt'.", "prompt"))
        elif not (
            prompt is None
            or isinstance(prompt, str)
            or (isinstance(prompt, list) and all(isinstance(p, str) for p in prompt))
            or (isinstance(prompt, list) and all(is_int(p) for p in prompt))
            or (
                isinstance(prompt, list)
                and all(isinstance(p, list) and all(is_int(t) for t in p) for p in prompt)
            )
        ):
            problems.append(
                Problem(
                    "Invalid type for 'prompt': expected a string, an array of strings, an array of tokens "
                    "or an array of token arrays.",
                    "prompt",
                )
            )
        _range(problems, body, "temperature", 0, 2)
        _range(problems, body, "top_p", 0, 1)
        _int_min(problems, body, "max_tokens", 0)
        _int_min(problems, body, "n", 1)
        logprobs = body.get("logprobs")
        if logprobs is not None and (not is_int(logprobs) or not 0 <= logprobs <= 5):
            problems.append(Problem("Invalid 'logprobs': expected an integer between 0 and 5.", "logprobs"))
        if body.get("stream") is True and is_int(body.get("best_of")) and body["best_of"] > 1:
            problems.append(Problem("Cannot stream results with best_of > 1.", "best_of"))
        _stop(problems, body)
        _stream_options(problems, body)
        return problems

    def _validate_embeddings(self, ctx: Ctx) -> list[Problem]:
        body = ctx.body
        if not isinstance(body, dict):
            return [Problem(_BAD_JSON)]
        problems: list[Problem] = []
        _unknown_fields(problems, body, EMBEDDING_FIELDS)
        if not isinstance(body.get("model"), str) or not body["model"]:
            problems.append(Problem("you must provide a model parameter", "model"))
        invalid = Problem(
            "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
            "input",
        )
        inputs = body.get("input")
        if "input" not in body:
            problems.append(Problem("Missing required parameter: 'input'.", "input"))
        elif isinstance(inputs, str):
            if not inputs:
                problems.append(invalid)
        elif isinstance(inputs, list) and inputs and len(inputs) <= 2048:
            if all(isinstance(s, str) for s in inputs):
                if not all(inputs):
                    problems.append(invalid)
            elif not (
                all(is_int(t) for t in inputs)
                or all(isinstance(p, list) and p and all(is_int(t) for t in p) for p in inputs)
            ):
                problems.append(invalid)
        else:
            problems.append(invalid)
        fmt = body.get("encoding_format")
        if fmt is not None and fmt not in ("float", "base64"):
            problems.append(
                Problem(
                    f"Invalid value: '{fmt}'. Supported values are: 'float' and 'base64'.", "encoding_format"
                )
            )
        _int_min(problems, body, "dimensions", 1)
        return problems

    # ------------------------------------------------------------------ handlers

    @staticmethod
    def _usage(answer: Answer, n: int = 1) -> dict[str, Any]:
        completion = answer.completion_tokens * n
        return {
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": answer.prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": answer.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": answer.reasoning_tokens * n,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    @staticmethod
    def _max_tokens(body: dict[str, Any], *names: str) -> int | None:
        for name in names:
            value = body.get(name)
            if is_int(value):
                return int(value)
        return None

    async def _chat(self, ctx: Ctx) -> web.StreamResponse:
        body: dict[str, Any] = ctx.body
        messages = [m for m in body["messages"] if isinstance(m, dict)]
        texts = [t for m in messages for t in _texts(m.get("content"))]
        users = [m for m in messages if m.get("role") == "user"]
        prompt = " ".join(_texts(users[-1].get("content"))) if users else ""
        answer = self.build_answer(
            ctx,
            texts=texts,
            prompt=prompt,
            max_tokens=self._max_tokens(body, "max_completion_tokens", "max_tokens"),
            stops=_stop([], body),
        )
        n = _int_or(body.get("n"), 1)
        finish = answer.finish or _FINISH[answer.reason]
        usage = self._usage(answer, n)
        ctx.tokens = usage["total_tokens"]
        model = ctx.rec.model
        completion_id = rand_id("chatcmpl-", 29)
        created = int(time.time())
        calls: list[dict[str, Any]] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": json.dumps(c.arguments, separators=(",", ":"))},
            }
            for c in answer.tool_calls
        ]
        if not ctx.rec.stream:
            message: dict[str, Any] = {
                "role": "assistant",
                "content": answer.text if (answer.text or not calls) else None,
                "refusal": None,
                "annotations": [],
            }
            if calls:
                message["tool_calls"] = calls
            return self.json_response(
                ctx,
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {"index": i, "message": message, "logprobs": None, "finish_reason": finish}
                        for i in range(n)
                    ],
                    "usage": usage,
                    "service_tier": "default",
                    "system_fingerprint": "fp_fake00001",
                },
            )
        options = body.get("stream_options") or {}
        include_usage = options.get("include_usage") is True
        obfuscate = options.get("include_obfuscation") is not False
        head = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": "fp_fake00001",
        }

        def chunk(choices: list[dict[str, Any]], usage_value: dict[str, Any] | None = None) -> bytes:
            obj: dict[str, Any] = {**head, "choices": choices}
            if include_usage:
                obj["usage"] = usage_value
            if obfuscate:
                obj["obfuscation"] = rand_id("", secrets.randbelow(12) + 1)
            return b"data: " + self.dumps(obj) + b"\n\n"

        events: list[bytes] = []
        for i in range(n):

            def choice(
                delta: dict[str, Any], reason: str | None = None, index: int = i
            ) -> list[dict[str, Any]]:
                return [{"index": index, "delta": delta, "logprobs": None, "finish_reason": reason}]

            first: dict[str, Any] = {"role": "assistant", "content": "" if answer.text or not calls else None}
            first["refusal"] = None
            deltas: list[dict[str, Any]] = [
                {"content": piece} for piece in split_text(answer.text, self.chunks)
            ]
            for j, call in enumerate(calls):
                fragments = split_json(call["function"]["arguments"], self.chunks)
                deltas.append(
                    {
                        "tool_calls": [
                            {
                                "index": j,
                                "id": call["id"],
                                "type": "function",
                                "function": {"name": call["function"]["name"], "arguments": fragments[0]},
                            }
                        ]
                    }
                )
                deltas.extend(
                    {"tool_calls": [{"index": j, "function": {"arguments": fragment}}]}
                    for fragment in fragments[1:]
                )
            if deltas and "tool_calls" in deltas[0]:
                first.update(deltas.pop(0))
            events.append(chunk(choice(first)))
            events.extend(chunk(choice(delta)) for delta in deltas)
            events.append(chunk(choice({}, finish)))
        if include_usage:
            events.append(chunk([], usage))
        return await self.send_stream(
            ctx, events, content_type="text/event-stream; charset=utf-8", terminator=b"data: [DONE]\n\n"
        )

    async def _completions(self, ctx: Ctx) -> web.StreamResponse:
        body: dict[str, Any] = ctx.body
        raw = body.get("prompt")
        if raw is None:
            prompts = ["<|endoftext|>"]
        elif isinstance(raw, str):
            prompts = [raw]
        elif raw and all(is_int(t) for t in raw):
            prompts = [" ".join(str(t) for t in raw)]
        else:
            prompts = [p if isinstance(p, str) else " ".join(str(t) for t in p) for p in raw] or [""]
        max_tokens = body.get("max_tokens", 16)
        stops = _stop([], body)
        n = _int_or(body.get("n"), 1)
        answers = [
            self.build_answer(
                ctx,
                texts=[p],
                prompt=p,
                max_tokens=max_tokens if is_int(max_tokens) else None,
                stops=stops,
                tool_ids=False,
            )
            for p in prompts
        ]
        finishes = [a.finish or ("stop" if a.reason == "tool_calls" else _FINISH[a.reason]) for a in answers]
        prompt_tokens = sum(a.prompt_tokens for a in answers)
        completion_tokens = sum(a.completion_tokens for a in answers) * n
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        ctx.tokens = usage["total_tokens"]
        head = {
            "id": rand_id("cmpl-", 29),
            "object": "text_completion",
            "created": int(time.time()),
            "model": ctx.rec.model,
        }
        slots = [(p * n + k, answers[p], finishes[p]) for p in range(len(prompts)) for k in range(n)]
        if not ctx.rec.stream:
            return self.json_response(
                ctx,
                {
                    **head,
                    "choices": [
                        {"text": a.text, "index": idx, "logprobs": None, "finish_reason": f}
                        for idx, a, f in slots
                    ],
                    "usage": usage,
                    "system_fingerprint": None,
                },
            )
        options = body.get("stream_options") or {}
        include_usage = options.get("include_usage") is True

        def chunk(choices: list[dict[str, Any]], usage_value: dict[str, Any] | None = None) -> bytes:
            obj: dict[str, Any] = {**head, "choices": choices, "system_fingerprint": None}
            if include_usage:
                obj["usage"] = usage_value
            return b"data: " + self.dumps(obj) + b"\n\n"

        events: list[bytes] = []
        for idx, answer, finish in slots:
            for piece in split_text(answer.text, self.chunks):
                events.append(chunk([{"text": piece, "index": idx, "logprobs": None, "finish_reason": None}]))
            events.append(chunk([{"text": "", "index": idx, "logprobs": None, "finish_reason": finish}]))
        if include_usage:
            events.append(chunk([], usage))
        return await self.send_stream(
            ctx, events, content_type="text/event-stream; charset=utf-8", terminator=b"data: [DONE]\n\n"
        )

    async def _embeddings(self, ctx: Ctx) -> web.StreamResponse:
        body: dict[str, Any] = ctx.body
        raw = body["input"]
        if isinstance(raw, str):
            inputs, tokens = [raw], count_words(raw)
        elif all(isinstance(p, str) for p in raw):
            inputs, tokens = list(raw), count_words(*raw)
        elif all(is_int(t) for t in raw):
            inputs, tokens = [" ".join(str(t) for t in raw)], len(raw)
        else:
            inputs, tokens = [" ".join(str(t) for t in p) for p in raw], sum(len(p) for p in raw)
        dims = _int_or(body.get("dimensions"), 8)
        b64 = body.get("encoding_format") == "base64"
        data = []
        for i, text in enumerate(inputs):
            vector = deterministic_vector(text, dims)
            data.append(
                {"object": "embedding", "index": i, "embedding": float32_base64(vector) if b64 else vector}
            )
        ctx.tokens = tokens
        return self.json_response(
            ctx,
            {
                "object": "list",
                "data": data,
                "model": ctx.rec.model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    @staticmethod
    def _model_object(model: str) -> dict[str, Any]:
        return {"id": model, "object": "model", "created": 1686935002, "owned_by": "system"}

    async def _models(self, ctx: Ctx) -> web.StreamResponse:
        return self.json_response(
            ctx, {"object": "list", "data": [self._model_object(m) for m in self.served_models]}
        )

    async def _model(self, ctx: Ctx) -> web.StreamResponse:
        model = ctx.request.match_info["model_id"]
        ctx.rec.model = model
        if self.models is not None and model not in self.models:
            return self.error(ctx, 404, "not_found", f"The model '{model}' does not exist", "model")
        return self.json_response(ctx, self._model_object(model))
