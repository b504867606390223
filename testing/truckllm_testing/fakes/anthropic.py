"""A fake Anthropic Messages API: messages, token counting and models.

Wire details reproduced (PROVIDERS.md §2 and §6):

- ``x-api-key`` (or ``Authorization: Bearer``) and ``anthropic-version`` are required.
- Success: compact JSON, ``request-id`` and the ``anthropic-ratelimit-*`` headers with
  RFC 3339 reset times.
- Errors: ``{"type": "error", "error": {"type", "message"}, "request_id"}``; 529
  ``overloaded_error``; 429 ``rate_limit_error`` with ``retry-after``; the spend-limit 429
  carries ``details.error_code: "enforced_spend_limit_reached"`` and no ``retry-after``.
- Streams: named events ``event: x\\ndata: {...}\\n\\n``: ``message_start``, a ``ping``,
  ``content_block_start``/``_delta``/``_stop`` per block (thinking with
  ``signature_delta``, text, ``tool_use`` with ``input_json_delta`` fragments: ``""``
  first, then the JSON cut mid-token), ``message_delta`` with cumulative usage,
  ``message_stop``.  A mid-stream failure is ``event: error`` (``overloaded_error``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Collection
from typing import Any, ClassVar

from aiohttp import web

from .anthropic_batches import MessageBatchesAPI
from .base import (
    Answer,
    Ctx,
    Fault,
    Problem,
    Route,
    count_words,
    fmt_seconds,
    is_int,
    is_number,
    rand_id,
    rfc3339,
    split_json,
    split_text,
)

__all__ = ["FakeAnthropic", "thinking_signature"]

MESSAGE_FIELDS = frozenset(
    {
        "model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream",
        "temperature", "top_p", "top_k", "tools", "tool_choice", "thinking", "service_tier",
        "container", "mcp_servers", "context_management", "output_config", "output_format",
        "inference_geo", "cache_control",
    }
)  # fmt: skip
"""Top-level fields of ``POST /v1/messages``; anything else is "Extra inputs are not permitted"."""

COUNT_FIELDS = frozenset(
    {
        "model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers",
        "context_management", "output_config", "output_format", "cache_control",
    }
)  # fmt: skip
"""Top-level fields of ``POST /v1/messages/count_tokens``."""

VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")
"""Accepted ``anthropic-version`` values: any date (``2023-06-01``; newer SDKs send later dates)."""

IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_BLOCKS = (
    "text", "image", "document", "search_result", "thinking", "redacted_thinking", "tool_use",
    "tool_result", "server_tool_use", "web_search_tool_result",
)  # fmt: skip
_TOOL_FIELDS = frozenset(
    {
        "type", "name", "description", "input_schema", "cache_control", "strict", "input_examples",
        "defer_loading", "allowed_callers", "eager_input_streaming",
    }
)  # fmt: skip
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
_MAGIC = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}
_FINISH = {
    "stop": "end_turn",
    "stop_sequence": "stop_sequence",
    "length": "max_tokens",
    "tool_calls": "tool_use",
}
_SIGNING_KEY = b"truckllm-fake-anthropic-thinking"
_DOCS = "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
LIMITS = {"requests": 4000, "tokens": 2_000_000, "input-tokens": 2_000_000, "output-tokens": 400_000}
"""``anthropic-ratelimit-<family>-limit`` values."""

DISPLAY_NAMES = {
    "claude-sonnet-4-6": ("Claude Sonnet 4.6", "2026-02-17T00:00:00Z"),
    "claude-sonnet-4-5-20250929": ("Claude Sonnet 4.5", "2025-09-29T00:00:00Z"),
    "claude-haiku-4-5-20251001": ("Claude Haiku 4.5", "2025-10-01T00:00:00Z"),
    "claude-3-haiku-20240307": ("Claude Haiku 3", "2024-03-07T00:00:00Z"),
}


def thinking_signature(thinking: str) -> str:
    """The signature the fake gives a thinking block, and expects back unmodified."""
    mac = hmac.new(_SIGNING_KEY, thinking.encode(), hashlib.sha256).digest()
    return base64.b64encode(b"\x12\x08fakesig" + mac).decode()


def _event(name: str, data: dict[str, Any]) -> bytes:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {name}\ndata: {body}\n\n".encode()


PING = b'event: ping\ndata: {"type": "ping"}\n\n'
"""The ``ping`` event exactly as the API sends it."""


MAX_CACHE_BLOCKS = 4
"""Anthropic's limit on blocks with ``cache_control`` in one request."""


def _marked(blocks: Any) -> int:
    """How many of ``blocks`` (and of their ``tool_result`` contents) carry ``cache_control``."""
    count = 0
    for block in blocks if isinstance(blocks, list) else ():
        if isinstance(block, dict):
            count += block.get("cache_control") is not None
            count += _marked(block.get("content")) if block.get("type") == "tool_result" else 0
    return count


def _cache_marks(body: dict[str, Any]) -> int:
    """The blocks with ``cache_control`` in a request: tools, system blocks and message blocks."""
    messages = body.get("messages")
    turns = messages if isinstance(messages, list) else []
    in_turns = sum(_marked(m.get("content")) for m in turns if isinstance(m, dict))
    return _marked(body.get("tools")) + _marked(body.get("system")) + in_turns


def _block_texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    out: list[str] = []
    if isinstance(content, list):
        for block in content:
            if not isinstance(block, dict):
                continue
            if isinstance(block.get("text"), str):
                out.append(block["text"])
            elif block.get("type") == "tool_result":
                out.extend(_block_texts(block.get("content")))
    return out


class FakeAnthropic(MessageBatchesAPI):
    """Fake ``https://api.anthropic.com``; :attr:`base_url` has no path.

    :param reject_temperature_with_top_p: reject ``temperature`` and ``top_p`` together
        (``True``: every model; a collection: models starting with one of these names).
    :param verify_signatures: reject thinking blocks whose signature the fake did not
        issue for that exact text (see :func:`thinking_signature`).

    Fault kinds: ``bad_request``, ``context_length`` (400), ``auth`` (401), ``billing``
    (402), ``permission`` (403), ``not_found`` (404), ``too_large`` (413), ``rate_limit``
    and ``spend_limit`` (429), ``server`` (500), ``timeout`` (504), ``overloaded`` (529).
    The mid-stream error is ``overloaded_error`` (or the fault's ``kind``).
    """

    provider: ClassVar[str] = "anthropic"
    base_path: ClassVar[str] = ""
    server_name: ClassVar[str] = "cloudflare"
    default_models: ClassVar[tuple[str, ...]] = tuple(DISPLAY_NAMES)
    error_kinds: ClassVar[dict[str, int]] = {
        "bad_request": 400,
        "context_length": 400,
        "auth": 401,
        "billing": 402,
        "permission": 403,
        "not_found": 404,
        "too_large": 413,
        "rate_limit": 429,
        "spend_limit": 429,
        "server": 500,
        "timeout": 504,
        "overloaded": 529,
    }
    _ERROR_TYPES: ClassVar[dict[str, str]] = {
        "bad_request": "invalid_request_error",
        "context_length": "invalid_request_error",
        "auth": "authentication_error",
        "billing": "billing_error",
        "permission": "permission_error",
        "not_found": "not_found_error",
        "too_large": "request_too_large",
        "rate_limit": "rate_limit_error",
        "spend_limit": "rate_limit_error",
        "server": "api_error",
        "timeout": "timeout_error",
        "overloaded": "overloaded_error",
        "unknown_url": "not_found_error",
    }

    def __init__(
        self,
        keys: Collection[str] = ("test-key",),
        *,
        chunks: int = 3,
        chunk_delay: float = 0.0,
        strict: bool = True,
        models: Collection[str] | None = None,
        reject_temperature_with_top_p: bool | Collection[str] = True,
        verify_signatures: bool = True,
    ) -> None:
        super().__init__(keys, chunks=chunks, chunk_delay=chunk_delay, strict=strict, models=models)
        self.reject_temperature_with_top_p = reject_temperature_with_top_p
        """Reject ``temperature`` with ``top_p`` (all models, or models with these prefixes)."""
        self.verify_signatures = verify_signatures
        """Check thinking-block signatures."""

    # ------------------------------------------------------------------ routing and auth

    def routes(self) -> list[Route]:
        """Messages, token counting, models and Message Batches (:mod:`.anthropic_batches`)."""
        return [
            Route("POST", "/v1/messages", self._messages, self._validate_messages),
            Route("POST", "/v1/messages/count_tokens", self._count_tokens, self._validate_count),
            Route("GET", "/v1/models", self._models, self._validate_version, needs_json=False),
            Route("GET", "/v1/models/{model_id}", self._model, self._validate_version, needs_json=False),
            *self.batches_routes(),
        ]

    def api_key(self, request: web.Request) -> str | None:
        """``x-api-key``, else the bearer token of ``Authorization``."""
        key = request.headers.get("x-api-key")
        if key:
            return key
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return token.strip() or None if scheme.lower() == "bearer" else None

    def auth_error(self, ctx: Ctx) -> web.Response | None:
        """401 ``authentication_error`` for a missing or unknown key."""
        key = ctx.rec.api_key
        if key is None:
            return self.error(ctx, 401, "auth", "x-api-key header is required")
        if self.keys and key not in self.keys:
            return self.error(ctx, 401, "auth", "invalid x-api-key")
        return None

    def bad_json(self, ctx: Ctx) -> web.Response:
        """400 for a body that is not JSON."""
        return self.error(
            ctx,
            400,
            "bad_request",
            "There was an issue with the formatting or content of your request. Your request body "
            "must be valid JSON.",
        )

    def unknown_model(self, ctx: Ctx, model: str) -> web.Response:
        """404 ``not_found_error``."""
        return self.error(ctx, 404, "not_found", f"model: {model}")

    # ------------------------------------------------------------------ errors and headers

    def _request_id(self) -> str:
        return rand_id("req_011C", 20)

    def error_body(
        self, ctx: Ctx, status: int, kind: str, message: str | None, param: str | None
    ) -> dict[str, Any]:
        """``{"type": "error", "error": {"type", "message"}, "request_id"}``."""
        defaults = {
            "context_length": "prompt is too long: 201234 tokens > 200000 maximum",
            "auth": "invalid x-api-key",
            "billing": "Your credit balance is too low to access the Anthropic API. Please go to Plans "
            "& Billing to upgrade or purchase credits.",
            "permission": "Your API key does not have permission to use the specified resource.",
            "not_found": f"model: {ctx.rec.model}",
            "too_large": "Request exceeds the maximum allowed number of bytes.",
            "rate_limit": "This request would exceed the rate limit for your organization of 450,000 input "
            "tokens per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. You can "
            "see the response headers for current usage. Please reduce the prompt length or the maximum "
            "tokens requested, or try again later. You may also contact sales at "
            "https://www.anthropic.com/contact-sales to discuss your options for a rate limit increase.",
            "spend_limit": "This request would exceed your account's monthly spend limit. "
            "Please try again later.",
            "server": "Internal server error",
            "timeout": "Request timeout",
            "overloaded": "Overloaded",
            "unknown_url": "Not Found",
        }
        err_type = self._ERROR_TYPES.get(kind) or ("api_error" if status >= 500 else "invalid_request_error")
        error: dict[str, Any] = {
            "type": err_type,
            "message": message or defaults.get(kind, f"fake {kind} error"),
        }
        if kind == "spend_limit":
            error["details"] = {"error_code": "enforced_spend_limit_reached"}
        return {"type": "error", "error": error, "request_id": self._request_id()}

    def _ratelimit(self, key: str | None, exhausted: float | None = None) -> dict[str, str]:
        requests, tokens = self.usage_of(key)
        headers: dict[str, str] = {}
        for family, limit in LIMITS.items():
            used = requests if family == "requests" else tokens
            remaining = 0 if exhausted is not None else max(0, limit - used)
            reset = rfc3339(exhausted if exhausted is not None else 60.0 * used / limit)
            headers[f"anthropic-ratelimit-{family}-limit"] = str(limit)
            headers[f"anthropic-ratelimit-{family}-remaining"] = str(remaining)
            headers[f"anthropic-ratelimit-{family}-reset"] = reset
        return headers

    def error_headers(self, ctx: Ctx, status: int, kind: str, fault: Fault | None) -> dict[str, str]:
        """``request-id``; a 429 ``rate_limit`` also gets ``retry-after`` (default 1 s) and
        exhausted ``anthropic-ratelimit-*`` headers."""
        headers = {"request-id": self._request_id()}
        retry = fault.retry_after if fault is not None else None
        if status == 429 and kind != "spend_limit":
            retry = 1.0 if retry is None else retry
            headers.update(self._ratelimit(ctx.rec.api_key, exhausted=retry))
        if retry is not None:
            headers["retry-after"] = fmt_seconds(retry)
        return headers

    def success_headers(self, ctx: Ctx) -> dict[str, str]:
        """``request-id``, ``anthropic-organization-id`` and ``anthropic-ratelimit-*``."""
        self.count_request(ctx.rec.api_key, ctx.tokens)
        return {
            "request-id": self._request_id(),
            "anthropic-organization-id": str(uuid.UUID(int=0x5EED)),
            **self._ratelimit(ctx.rec.api_key),
        }

    def stream_error(self, ctx: Ctx, kind: str | None, index: int) -> bytes:
        """``event: error`` with ``overloaded_error`` (or the fault's kind)."""
        kind = kind or "overloaded"
        return _event("error", self.error_body(ctx, self.error_kinds.get(kind, 500), kind, None, None))

    def stream_error_status(self) -> int:
        """A mid-stream error on a non-streaming request answers 529."""
        return 529

    # ------------------------------------------------------------------ validation

    def _validate_version(self, ctx: Ctx) -> list[Problem]:
        version = ctx.request.headers.get("anthropic-version")
        if version is None:
            return [Problem("anthropic-version: header is required")]
        if not VERSION.match(version):
            return [Problem(f"anthropic-version: invalid version {version!r}")]
        return []

    def _validate_count(self, ctx: Ctx) -> list[Problem]:
        return self._validate_messages(ctx, count=True)

    def _validate_messages(self, ctx: Ctx, count: bool = False) -> list[Problem]:
        problems = self._validate_version(ctx)
        body = ctx.body
        if not isinstance(body, dict):
            return [*problems, Problem("Input should be a valid dictionary")]
        for name in body:
            if name not in (COUNT_FIELDS if count else MESSAGE_FIELDS):
                problems.append(Problem(f"{name}: Extra inputs are not permitted"))
        if not isinstance(body.get("model"), str):
            problems.append(Problem("model: Field required"))
        max_tokens = body.get("max_tokens")
        if not count:
            if "max_tokens" not in body:
                problems.append(Problem("max_tokens: Field required"))
            elif not is_int(max_tokens):
                problems.append(Problem("max_tokens: Input should be a valid integer"))
            elif max_tokens < 0:
                problems.append(Problem("max_tokens: Input should be greater than or equal to 0"))
        self._validate_system(problems, body.get("system"))
        messages = body.get("messages")
        if messages is None:
            problems.append(Problem("messages: Field required"))
        elif not isinstance(messages, list):
            problems.append(Problem("messages: Input should be a valid list"))
        else:
            self._validate_conversation(problems, messages)
        self._validate_sampling(problems, body)
        names = self._validate_tools(problems, body.get("tools"))
        self._validate_tool_choice(problems, body, names)
        self._validate_thinking(problems, body, count)
        metadata = body.get("metadata")
        if metadata is not None:
            if not isinstance(metadata, dict):
                problems.append(Problem("metadata: Input should be a valid dictionary"))
            else:
                problems.extend(
                    Problem(f"metadata.{k}: Extra inputs are not permitted")
                    for k in metadata
                    if k != "user_id"
                )
        stops = body.get("stop_sequences")
        if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)):
            problems.append(Problem("stop_sequences: Input should be a valid list of strings"))
        if "stream" in body and not isinstance(body["stream"], bool):
            problems.append(Problem("stream: Input should be a valid boolean"))
        marks = _cache_marks(body)
        if marks > MAX_CACHE_BLOCKS:
            cap = f"A maximum of {MAX_CACHE_BLOCKS} blocks with cache_control may be provided."
            problems.append(Problem(f"{cap} Found {marks}."))
        return problems

    @staticmethod
    def _validate_system(problems: list[Problem], system: Any) -> None:
        if system is None or isinstance(system, str):
            return
        if not isinstance(system, list):
            problems.append(Problem("system: Input should be a valid string or a list of text blocks"))
            return
        for i, block in enumerate(system):
            if (
                not isinstance(block, dict)
                or block.get("type") != "text"
                or not isinstance(block.get("text"), str)
            ):
                problems.append(Problem(f"system.{i}: Input should be a valid text block"))
            elif not block["text"]:
                problems.append(Problem("system: text content blocks must be non-empty"))

    def _validate_conversation(self, problems: list[Problem], messages: list[Any]) -> None:
        previous_role: str | None = None
        previous_tool_ids: list[str] = []
        seen_ids: set[str] = set()
        last = len(messages) - 1
        for i, msg in enumerate(messages):
            if not isinstance(msg, dict):
                problems.append(Problem(f"messages.{i}: Input should be a valid dictionary"))
                previous_role, previous_tool_ids = None, []
                continue
            role = msg.get("role")
            if role == "system":
                problems.append(
                    Problem(
                        f'messages.{i}.role: Unexpected role "system". The Messages API accepts a top-level '
                        '`system` parameter, not "system" as an input message role.'
                    )
                )
                continue
            if role not in ("user", "assistant"):
                problems.append(Problem(f"messages.{i}.role: Input should be 'user' or 'assistant'"))
                continue
            if role == previous_role:
                problems.append(
                    Problem(
                        'messages: roles must alternate between "user" and "assistant", but found multiple '
                        f'"{role}" roles in a row'
                    )
                )
            final_assistant = i == last and role == "assistant"
            content = msg.get("content")
            if "content" not in msg:
                problems.append(Problem(f"messages.{i}.content: Field required"))
                blocks: list[Any] = []
            elif isinstance(content, str):
                blocks = [{"type": "text", "text": content}] if content else []
                if final_assistant and content != content.rstrip():
                    problems.append(
                        Problem("messages: final assistant content cannot end with trailing whitespace")
                    )
            elif isinstance(content, list):
                blocks = content
            else:
                problems.append(Problem(f"messages.{i}.content: Input should be a valid string or list"))
                blocks = []
            if not blocks and "content" in msg and not final_assistant:
                problems.append(
                    Problem(
                        f"messages.{i}: all messages must have non-empty content except for the optional "
                        "final assistant message"
                    )
                )
            tool_ids: list[str] = []
            result_ids: list[tuple[int, str]] = []
            other_seen = False
            for j, block in enumerate(blocks if isinstance(content, list) else []):
                kind = self._validate_block(
                    problems, f"messages.{i}.content.{j}", block, role, final_assistant
                )
                if kind == "tool_use" and isinstance(block.get("id"), str):
                    if block["id"] in seen_ids:
                        problems.append(Problem("messages: `tool_use` ids must be unique"))
                    seen_ids.add(block["id"])
                    tool_ids.append(block["id"])
                elif kind == "tool_result" and isinstance(block.get("tool_use_id"), str):
                    result_ids.append((j, block["tool_use_id"]))
                    if other_seen:
                        problems.append(
                            Problem(
                                f"messages.{i}: `tool_result` blocks must come first in the user message, "
                                "before any other content"
                            )
                        )
                        other_seen = False
                elif kind is not None:
                    other_seen = True
            for j, tool_use_id in result_ids:
                if tool_use_id not in previous_tool_ids:
                    problems.append(
                        Problem(
                            f"messages.{i}.content.{j}: unexpected `tool_use_id` found in "
                            "`tool_result` blocks: "
                            f"{tool_use_id}. Each `tool_result` block must have a corresponding `tool_use` "
                            "block in the previous message."
                        )
                    )
            if previous_tool_ids:
                answered = {r for _, r in result_ids} if role == "user" else set()
                missing = [t for t in previous_tool_ids if t not in answered]
                if missing:
                    problems.append(self._unanswered(i - 1, missing))
            previous_role, previous_tool_ids = role, tool_ids
        if previous_tool_ids:
            problems.append(self._unanswered(last, previous_tool_ids))

    @staticmethod
    def _unanswered(index: int, missing: list[str]) -> Problem:
        return Problem(
            f"messages.{index}: `tool_use` ids were found without `tool_result` blocks immediately after: "
            f"{', '.join(missing)}. Each `tool_use` block must have a corresponding "
            "`tool_result` block in the "
            "next message."
        )

    def _validate_block(
        self, problems: list[Problem], at: str, block: Any, role: str, final_assistant: bool
    ) -> str | None:
        if not isinstance(block, dict):
            problems.append(Problem(f"{at}: Input should be a valid dictionary"))
            return None
        kind = block.get("type")
        if kind not in _BLOCKS:
            expected = ", ".join(f"'{b}'" for b in _BLOCKS)
            problems.append(
                Problem(
                    f"{at}: Input tag '{kind}' found using 'type' does not match any of the "
                    f"expected tags: {expected}"
                )
            )
            return None
        assistant_only = (
            "tool_use",
            "thinking",
            "redacted_thinking",
            "server_tool_use",
            "web_search_tool_result",
        )
        if kind in assistant_only and role != "assistant":
            problems.append(Problem(f"{at}: `{kind}` blocks can only be in `assistant` messages"))
        if kind == "tool_result" and role != "user":
            problems.append(Problem(f"{at}: `tool_result` blocks can only be in `user` messages"))
        if kind == "text":
            text = block.get("text")
            if not isinstance(text, str):
                problems.append(Problem(f"{at}.text: Field required"))
            elif not text:
                problems.append(Problem("messages: text content blocks must be non-empty"))
            elif final_assistant and text != text.rstrip():
                problems.append(
                    Problem("messages: final assistant content cannot end with trailing whitespace")
                )
        elif kind == "image":
            self._validate_image(problems, at, block.get("source"))
        elif kind == "tool_use":
            if not isinstance(block.get("id"), str) or not _TOOL_ID.match(block["id"]):
                problems.append(Problem(f"{at}.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'"))
            if not isinstance(block.get("name"), str):
                problems.append(Problem(f"{at}.tool_use.name: Field required"))
            if not isinstance(block.get("input"), dict):
                problems.append(Problem(f"{at}.tool_use.input: Input should be a valid dictionary"))
        elif kind == "tool_result":
            if not isinstance(block.get("tool_use_id"), str):
                problems.append(Problem(f"{at}.tool_result.tool_use_id: Field required"))
            inner = block.get("content")
            if isinstance(inner, list):
                for k, part in enumerate(inner):
                    if not isinstance(part, dict) or part.get("type") not in (
                        "text",
                        "image",
                        "document",
                        "search_result",
                    ):
                        problems.append(
                            Problem(f"{at}.tool_result.content.{k}: Input should be a valid block")
                        )
                    elif part["type"] == "text" and not part.get("text"):
                        problems.append(Problem("messages: text content blocks must be non-empty"))
                    elif part["type"] == "image":
                        self._validate_image(problems, f"{at}.tool_result.content.{k}", part.get("source"))
            elif inner is not None and not isinstance(inner, str):
                problems.append(Problem(f"{at}.tool_result.content: Input should be a valid string or list"))
            if "is_error" in block and not isinstance(block["is_error"], bool):
                problems.append(Problem(f"{at}.tool_result.is_error: Input should be a valid boolean"))
        elif kind == "thinking":
            thinking, signature = block.get("thinking"), block.get("signature")
            if not isinstance(thinking, str) or not isinstance(signature, str):
                problems.append(Problem(f"{at}.thinking: `thinking` and `signature` are required"))
            elif self.verify_signatures and not hmac.compare_digest(signature, thinking_signature(thinking)):
                problems.append(Problem(f"{at}: Invalid `signature` in `thinking` block"))
        elif kind == "redacted_thinking" and not isinstance(block.get("data"), str):
            problems.append(Problem(f"{at}.redacted_thinking.data: Field required"))
        return str(kind)

    @staticmethod
    def _validate_image(problems: list[Problem], at: str, source: Any) -> None:
        if not isinstance(source, dict):
            problems.append(Problem(f"{at}.image.source: Field required"))
            return
        if source.get("type") == "url":
            if not isinstance(source.get("url"), str):
                problems.append(Problem(f"{at}.image.source.url.url: Field required"))
            return
        if source.get("type") != "base64":
            problems.append(
                Problem(
                    f"{at}.image.source: Input tag '{source.get('type')}' found using 'type' "
                    "does not match any "
                    "of the expected tags: 'base64', 'url', 'file'"
                )
            )
            return
        media_type = source.get("media_type")
        if media_type not in IMAGE_TYPES:
            problems.append(
                Problem(
                    f"{at}.image.source.base64.media_type: Input should be 'image/jpeg', 'image/png', "
                    "'image/gif' or 'image/webp'"
                )
            )
            return
        data = source.get("data")
        try:
            raw = base64.b64decode(data if isinstance(data, str) else "", validate=True)
        except (binascii.Error, ValueError):
            problems.append(Problem(f"{at}.image.source.base64: invalid base64 data"))
            return
        if not raw:
            problems.append(Problem(f"{at}.image.source.base64: invalid base64 data"))
        elif not raw.startswith(_MAGIC[media_type]):
            problems.append(
                Problem(
                    f"{at}.image.source.base64.data: Image does not match the provided "
                    f"media type {media_type}"
                )
            )

    def _validate_sampling(self, problems: list[Problem], body: dict[str, Any]) -> None:
        for name, low, high in (("temperature", 0, 1), ("top_p", 0, 1)):
            value = body.get(name)
            if value is None:
                continue
            if not is_number(value):
                problems.append(Problem(f"{name}: Input should be a valid number"))
            elif value > high:
                problems.append(Problem(f"{name}: Input should be less than or equal to {high}"))
            elif value < low:
                problems.append(Problem(f"{name}: Input should be greater than or equal to {low}"))
        top_k = body.get("top_k")
        if top_k is not None and (not is_int(top_k) or top_k < 0):
            problems.append(Problem("top_k: Input should be a valid integer greater than or equal to 0"))
        if body.get("temperature") is not None and body.get("top_p") is not None:
            rule = self.reject_temperature_with_top_p
            model = body.get("model")
            model = model if isinstance(model, str) else ""
            applies = rule if isinstance(rule, bool) else any(model.startswith(prefix) for prefix in rule)
            if applies:
                problems.append(
                    Problem(
                        "`temperature` and `top_p` cannot both be specified for this model. "
                        "Please use only one."
                    )
                )

    @staticmethod
    def _validate_tools(problems: list[Problem], tools: Any) -> set[str]:
        names: set[str] = set()
        if tools is None:
            return names
        if not isinstance(tools, list):
            problems.append(Problem("tools: Input should be a valid list"))
            return names
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict):
                problems.append(Problem(f"tools.{i}: Input should be a valid dictionary"))
                continue
            kind = tool.get("type")
            name = tool.get("name")
            if kind not in (None, "custom"):  # a typed server tool (web_search_20250305, ...)
                if isinstance(name, str):
                    names.add(name)
                continue
            for key in tool:
                if key not in _TOOL_FIELDS:
                    problems.append(Problem(f"tools.{i}.custom.{key}: Extra inputs are not permitted"))
            if not isinstance(name, str) or not _TOOL_NAME.match(name):
                problems.append(
                    Problem(f"tools.{i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
                )
            elif name in names:
                problems.append(Problem("tools: Tool names must be unique."))
            else:
                names.add(name)
            schema = tool.get("input_schema")
            if schema is None:
                problems.append(Problem(f"tools.{i}.custom.input_schema: Field required"))
            elif not isinstance(schema, dict):
                problems.append(Problem(f"tools.{i}.custom.input_schema: Input should be a valid dictionary"))
            elif schema.get("type") != "object":
                problems.append(Problem(f"tools.{i}.custom.input_schema.type: Input should be 'object'"))
        return names

    @staticmethod
    def _validate_tool_choice(problems: list[Problem], body: dict[str, Any], names: set[str]) -> None:
        choice = body.get("tool_choice")
        if choice is None:
            return
        if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
            problems.append(
                Problem(
                    "tool_choice: Input tag found using 'type' does not match any of the expected tags: "
                    "'auto', 'any', 'tool', 'none'"
                )
            )
            return
        if choice["type"] == "tool":
            if not isinstance(choice.get("name"), str):
                problems.append(Problem("tool_choice.tool.name: Field required"))
            elif choice["name"] not in names:
                problems.append(Problem(f"Tool '{choice['name']}' not found in provided tools"))
        if choice["type"] in ("any", "tool") and not body.get("tools"):
            problems.append(Problem("tool_choice: tool_choice may only be specified while providing tools"))

    @staticmethod
    def _validate_thinking(problems: list[Problem], body: dict[str, Any], count: bool) -> None:
        thinking = body.get("thinking")
        if thinking is None:
            return
        if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "disabled", "adaptive"):
            problems.append(
                Problem(
                    "thinking: Input tag found using 'type' does not match any of the expected tags: "
                    "'enabled', 'disabled', 'adaptive'"
                )
            )
            return
        if thinking["type"] == "disabled":
            return
        if thinking["type"] == "enabled":
            budget = thinking.get("budget_tokens")
            max_tokens = body.get("max_tokens")
            if not is_int(budget):
                problems.append(Problem("thinking.enabled.budget_tokens: Field required"))
            elif budget < 1024:
                problems.append(
                    Problem("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
                )
            elif not count and is_int(max_tokens) and budget >= max_tokens:
                problems.append(
                    Problem(
                        "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
                        f"documentation at {_DOCS}#max-tokens-and-context-window-size"
                    )
                )
        choice = body.get("tool_choice")
        if isinstance(choice, dict) and choice.get("type") in ("any", "tool"):
            problems.append(Problem("Thinking may not be enabled when tool_choice forces tool use."))
        temperature, top_p = body.get("temperature"), body.get("top_p")
        if temperature is not None and temperature != 1:
            problems.append(
                Problem(
                    "`temperature` may only be set to 1 when thinking is enabled. Please consult our "
                    f"documentation at {_DOCS}#feature-compatibility"
                )
            )
        if is_number(top_p) and top_p < 0.95:
            problems.append(
                Problem(
                    "`top_p` must be greater than or equal to 0.95 or unset when thinking is enabled. Please "
                    f"consult our documentation at {_DOCS}#feature-compatibility"
                )
            )
        if body.get("top_k") is not None:
            problems.append(
                Problem(
                    "`top_k` must be unset when thinking is enabled. Please consult our documentation at "
                    f"{_DOCS}#feature-compatibility"
                )
            )
        messages = body.get("messages")
        if not isinstance(messages, list) or len(messages) < 2:
            return
        final, previous = messages[-1], messages[-2]
        if (
            not (isinstance(final, dict) and isinstance(previous, dict))
            or previous.get("role") != "assistant"
        ):
            return
        results = final.get("content")
        if not (
            isinstance(results, list)
            and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in results)
        ):
            return
        blocks = previous.get("content")
        first = blocks[0] if isinstance(blocks, list) and blocks else None
        first_type = first.get("type") if isinstance(first, dict) else "text"
        if first_type not in ("thinking", "redacted_thinking"):
            problems.append(
                Problem(
                    f"messages.{len(messages) - 2}.content.0.type: Expected `thinking` or "
                    "`redacted_thinking`, "
                    f"but found `{first_type}`. When `thinking` is enabled, a final `assistant` message must "
                    "start with a thinking block (preceeding the lastmost set of `tool_use` and "
                    "`tool_result` "
                    "blocks). We recommend you include thinking blocks from previous turns. To avoid this "
                    "requirement, disable `thinking`. Please consult our documentation at "
                    f"{_DOCS}"
                )
            )

    # ------------------------------------------------------------------ handlers

    @staticmethod
    def _request_texts(body: dict[str, Any]) -> tuple[list[str], str]:
        texts = _block_texts(body.get("system"))
        prompt = ""
        for msg in body.get("messages") or []:
            if not isinstance(msg, dict):
                continue
            found = _block_texts(msg.get("content"))
            texts.extend(found)
            if msg.get("role") == "user":
                prompt = " ".join(found)
        return texts, prompt

    @staticmethod
    def _usage(answer: Answer) -> dict[str, Any]:
        cached, written = answer.cached_tokens, answer.cache_write_tokens
        return {
            "input_tokens": max(0, answer.prompt_tokens - cached - written),
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": cached,
            "cache_creation": {"ephemeral_5m_input_tokens": written, "ephemeral_1h_input_tokens": 0},
            "output_tokens": answer.completion_tokens,
            "service_tier": "standard",
        }

    async def _messages(self, ctx: Ctx) -> web.StreamResponse:
        body: dict[str, Any] = ctx.body
        texts, prompt = self._request_texts(body)
        stops = [s for s in body.get("stop_sequences") or [] if isinstance(s, str)]
        max_tokens = body.get("max_tokens") if is_int(body.get("max_tokens")) else None
        answer = self.build_answer(
            ctx,
            texts=texts,
            prompt=prompt,
            max_tokens=max_tokens,
            stops=stops,
            id_prefix="toolu_01",
            id_length=22,
        )
        stop_reason = answer.finish or _FINISH[answer.reason]
        usage = self._usage(answer)
        ctx.tokens = answer.prompt_tokens + answer.completion_tokens
        message_id = rand_id("msg_01", 22)
        signature = thinking_signature(answer.thinking) if answer.thinking is not None else ""
        if not ctx.rec.stream:
            content: list[dict[str, Any]] = []
            if answer.thinking is not None:
                content.append({"type": "thinking", "thinking": answer.thinking, "signature": signature})
            if answer.text:
                content.append({"type": "text", "text": answer.text})
            content.extend(
                {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
                for c in answer.tool_calls
            )
            return self.json_response(
                ctx,
                {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": ctx.rec.model,
                    "content": content,
                    "stop_reason": stop_reason,
                    "stop_sequence": answer.stop_sequence,
                    "usage": usage,
                },
            )
        start_usage = {**usage, "output_tokens": 1}
        events = [
            _event(
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": message_id,
                        "type": "message",
                        "role": "assistant",
                        "model": ctx.rec.model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": start_usage,
                    },
                },
            )
        ]
        blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
        if answer.thinking is not None:
            deltas = [
                {"type": "thinking_delta", "thinking": p} for p in split_text(answer.thinking, self.chunks)
            ]
            deltas.append({"type": "signature_delta", "signature": signature})
            blocks.append(({"type": "thinking", "thinking": "", "signature": ""}, deltas))
        if answer.text:
            deltas = [{"type": "text_delta", "text": p} for p in split_text(answer.text, self.chunks)]
            blocks.append(({"type": "text", "text": ""}, deltas))
        for call in answer.tool_calls:
            fragments = split_json(json.dumps(call.arguments, ensure_ascii=False), self.chunks)
            deltas = [{"type": "input_json_delta", "partial_json": f} for f in fragments]
            blocks.append(({"type": "tool_use", "id": call.id, "name": call.name, "input": {}}, deltas))
        for index, (start, deltas) in enumerate(blocks):
            events.append(
                _event(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": start},
                )
            )
            if index == 0:
                events.append(PING)
            events.extend(
                _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
                for d in deltas
            )
            events.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
        if not blocks:
            events.append(PING)
        final_usage = {
            k: usage[k] for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        }
        final_usage["output_tokens"] = usage["output_tokens"]
        events.append(
            _event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": answer.stop_sequence},
                    "usage": final_usage,
                },
            )
        )
        events.append(_event("message_stop", {"type": "message_stop"}))
        return await self.send_stream(
            ctx,
            events,
            content_type="text/event-stream; charset=utf-8",
            headers={"Cache-Control": "no-cache"},
        )

    async def _count_tokens(self, ctx: Ctx) -> web.StreamResponse:
        texts, _ = self._request_texts(ctx.body)
        return self.json_response(ctx, {"input_tokens": count_words(*texts) + 1})

    @staticmethod
    def _model_object(model: str) -> dict[str, Any]:
        display, created = DISPLAY_NAMES.get(model, (model, "2025-01-01T00:00:00Z"))
        return {"type": "model", "id": model, "display_name": display, "created_at": created}

    async def _models(self, ctx: Ctx) -> web.StreamResponse:
        models = list(self.served_models)
        query = ctx.request.query
        limit = int(query["limit"]) if query.get("limit", "").isdigit() else 20
        if query.get("after_id") in models:
            models = models[models.index(query["after_id"]) + 1 :]
        elif query.get("before_id") in models:
            models = models[: models.index(query["before_id"])][-limit:]
        page = models[:limit]
        return self.json_response(
            ctx,
            {
                "data": [self._model_object(m) for m in page],
                "has_more": len(models) > limit,
                "first_id": page[0] if page else None,
                "last_id": page[-1] if page else None,
            },
        )

    async def _model(self, ctx: Ctx) -> web.StreamResponse:
        model = ctx.request.match_info["model_id"]
        ctx.rec.model = model
        if self.models is not None and model not in self.models:
            return self.error(ctx, 404, "not_found", f"model: {model}")
        return self.json_response(ctx, self._model_object(model))
