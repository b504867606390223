"""Building and reading OpenAI wire objects: what every provider plugin translates to and from.

The gateway's canonical dialect is OpenAI's. Provider plugins that speak another API build
OpenAI responses and stream chunks with these helpers, so that every plugin emits the same exact
shapes (one ``id`` and ``created`` per response, ``usage: null`` on chunks when usage was asked
for, the final ``choices: []`` usage chunk, ``data: [DONE]``).
"""

from __future__ import annotations

import functools
import math
import secrets
import time
from typing import Any

import msgspec
from msgspec import Struct

from truckllm.types import RateLimits, UpstreamError, Usage

__all__ = [
    "DONE_FRAME",
    "ChunkBuilder",
    "chat_completion",
    "classify_status",
    "completion_id",
    "parse_go_duration",
    "parse_openai_usage",
    "parse_ratelimit_headers",
    "parse_retry_after",
    "upstream_error",
    "usage_object",
]

DONE_FRAME = b"data: [DONE]\n\n"


def completion_id(prefix: str = "chatcmpl-") -> str:
    """A fresh response id, e.g. ``chatcmpl-<24 hex>``."""
    return prefix + secrets.token_hex(12)


def usage_object(usage: Usage) -> dict[str, Any]:
    """OpenAI's ``usage`` object for ``usage``."""
    obj: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
    }
    details: dict[str, int] = {"cached_tokens": usage.cached_tokens}
    if usage.cache_write_tokens:
        details["cache_write_tokens"] = usage.cache_write_tokens
    obj["prompt_tokens_details"] = details
    obj["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return obj


class _PromptDetails(Struct):
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None


class _CompletionDetails(Struct):
    reasoning_tokens: int | None = None


class _OpenAIUsage(Struct):
    prompt_tokens: int | None = 0
    completion_tokens: int | None = 0
    total_tokens: int | None = 0
    prompt_tokens_details: _PromptDetails | None = None
    completion_tokens_details: _CompletionDetails | None = None


class _WithUsage(Struct):
    usage: _OpenAIUsage | None = None


_USAGE_DECODER = msgspec.json.Decoder(_WithUsage)


def convert_openai_usage(raw: Any) -> Usage | None:
    """:class:`Usage` from a decoded OpenAI usage struct (or ``None``)."""
    if raw is None:
        return None
    prompt = raw.prompt_tokens or 0
    completion = raw.completion_tokens or 0
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=raw.total_tokens or prompt + completion,
        cached_tokens=(raw.prompt_tokens_details.cached_tokens or 0) if raw.prompt_tokens_details else 0,
        cache_write_tokens=(raw.prompt_tokens_details.cache_write_tokens or 0)
        if raw.prompt_tokens_details
        else 0,
        reasoning_tokens=(raw.completion_tokens_details.reasoning_tokens or 0)
        if raw.completion_tokens_details
        else 0,
    )


def parse_openai_usage(body: bytes) -> Usage | None:
    """The ``usage`` of an OpenAI response or chunk body, ``None`` when absent or unreadable."""
    try:
        return convert_openai_usage(_USAGE_DECODER.decode(body).usage)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return None


@functools.lru_cache(maxsize=1024)
def parse_go_duration(text: str) -> float | None:
    """Seconds from OpenAI's reset durations: ``12ms``, ``1s``, ``6m0s``, ``1h2m3.5s``."""
    total = 0.0
    number = ""
    i = 0
    found = False
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = "ms" if text.startswith("ms", i) else ch
        if not number:
            return None
        try:
            value = float(number)
        except ValueError:
            return None
        factor = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}.get(unit)
        if factor is None:
            return None
        total += value * factor
        found = True
        number = ""
        i += len(unit)
    if number:
        return None
    return total if found else None


MAX_RATE_FIGURE = 10**15
"""Rate-limit counts above this are not believed (read as unknown)."""
MAX_RESET_SECONDS = 86400.0
"""Rate-limit resets further away than a day are not believed (read as unknown)."""


def _int(value: str | None) -> int | None:
    """A rate-limit count: ``None`` unless a whole number in ``[0, MAX_RATE_FIGURE]``."""
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    return number if 0 <= number <= MAX_RATE_FIGURE else None


def _seconds(value: float | None) -> float | None:
    """A non-negative, finite number of seconds, else ``None``."""
    if value is None or not math.isfinite(value) or value < 0:
        return None
    return value


def parse_retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date).

    ``None`` for anything that is not a non-negative finite number of seconds (negative, ``nan``,
    ``inf``, text, a malformed date); an HTTP date in the past is ``0``. Large values are returned
    as they are: the kernel caps them (``routing.cooldown.max_retry_after``).
    """
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            value = _seconds(float(ms) / 1000)
        except ValueError:
            value = None
        if value is not None:
            return value
    text = headers.get("retry-after")
    if text is None:
        return None
    try:
        return _seconds(float(text))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(text)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def parse_ratelimit_headers(headers: Any) -> RateLimits | None:
    """OpenAI's ``x-ratelimit-*`` headers, ``None`` when there are none.

    A figure that is not a whole number in ``[0, MAX_RATE_FIGURE]``, or a reset that is not a
    duration of at most ``MAX_RESET_SECONDS``, is unknown (``None``).
    """
    remaining_requests = _int(headers.get("x-ratelimit-remaining-requests"))
    remaining_tokens = _int(headers.get("x-ratelimit-remaining-tokens"))
    if remaining_requests is None and remaining_tokens is None:
        return None
    reset_r = headers.get("x-ratelimit-reset-requests")
    reset_t = headers.get("x-ratelimit-reset-tokens")
    return RateLimits(
        limit_requests=_int(headers.get("x-ratelimit-limit-requests")),
        limit_tokens=_int(headers.get("x-ratelimit-limit-tokens")),
        remaining_requests=remaining_requests,
        remaining_tokens=remaining_tokens,
        reset_requests=_reset(reset_r),
        reset_tokens=_reset(reset_t),
    )


def _reset(text: str | None) -> float | None:
    seconds = _seconds(parse_go_duration(text)) if text else None
    return seconds if seconds is not None and seconds <= MAX_RESET_SECONDS else None


_KINDS = {
    400: ("bad_request", "invalid_request_error"),
    401: ("auth", "invalid_request_error"),
    402: ("quota", "insufficient_quota"),
    403: ("permission", "permission_error"),
    404: ("not_found", "invalid_request_error"),
    408: ("timeout", "server_error"),
    409: ("server", "server_error"),
    413: ("too_large", "invalid_request_error"),
    422: ("bad_request", "invalid_request_error"),
    429: ("rate_limit", "rate_limit_error"),
    500: ("server", "server_error"),
    502: ("server", "server_error"),
    503: ("overloaded", "server_error"),
    504: ("timeout", "server_error"),
    529: ("overloaded", "server_error"),
}


def classify_status(status: int) -> tuple[str, str, int]:
    """``(kind, openai_type, client_status)`` for an upstream HTTP error status."""
    kind, type_ = _KINDS.get(
        status,
        (
            "server" if status >= 500 else "bad_request",
            "server_error" if status >= 500 else "invalid_request_error",
        ),
    )
    client_status = status
    if status == 529:
        client_status = 503
    elif status >= 500 and status not in (500, 502, 503, 504):
        client_status = 502
    elif status == 401:
        client_status = 502  # our key was refused: not the client's fault
    elif status == 403:
        client_status = 502
    return kind, type_, client_status


def upstream_error(
    status: int,
    message: str,
    *,
    kind: str | None = None,
    code: str | None = None,
    param: str | None = None,
    retry_after: float | None = None,
    type: str | None = None,
) -> UpstreamError:
    """A classified :class:`UpstreamError` for an upstream status (``kind`` overrides).

    Defensive about what upstream sent: a status that is not an HTTP error (below 400, above
    599) is a ``bad_response`` 502; a ``retry_after`` that is not a non-negative finite number is
    dropped; ``message`` is made a string (kept whole: the kernel scrubs it, then cuts it).
    """
    if not 400 <= status <= 599:
        status, kind = 502, kind or "bad_response"
    retry_after = _seconds(retry_after) if isinstance(retry_after, int | float) else None
    message = message if isinstance(message, str) else str(message)
    k, t, client_status = classify_status(status)
    if kind == "context_length":
        client_status, t = 400, "invalid_request_error"
        code = code or "context_length_exceeded"
    if kind == "quota":
        client_status, t = 429, "insufficient_quota"
        code = code or "insufficient_quota"
    if (kind or k) == "rate_limit":
        code = code or "rate_limit_exceeded"
    return UpstreamError(
        status=client_status,
        message=message,
        kind=kind or k,
        type=type or t,
        code=code,
        param=param,
        retry_after=retry_after,
    )


class ChunkBuilder:
    """Builds one response's ``chat.completion.chunk`` frames with a shared id, created and model."""

    __slots__ = ("_content", "_prefix", "_suffix", "created", "id", "include_usage", "model")

    def __init__(self, model: str, include_usage: bool, response_id: str | None = None) -> None:
        self.id = response_id or completion_id()
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage
        enc = msgspec.json.encode
        self._prefix = (
            b'data: {"id":'
            + enc(self.id)
            + b',"object":"chat.completion.chunk","created":'
            + str(self.created).encode()
            + b',"model":'
            + enc(model)
            + b',"choices":['
        )
        self._suffix = b'],"usage":null}\n\n' if include_usage else b"]}\n\n"
        self._content = (  # a content delta's frame around its text, encoded once
            self._prefix + b'{"index":0,"delta":{"content":',
            b'},"logprobs":null,"finish_reason":null}' + self._suffix,
        )

    def delta(self, delta: dict[str, Any], index: int = 0, finish_reason: str | None = None) -> bytes:
        """One chunk frame with ``delta`` for choice ``index``."""
        choice = msgspec.json.encode(
            {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        )
        return self._prefix + choice + self._suffix

    def content(self, text: str) -> bytes:
        """The frame of ``delta({"content": text})``, its constant parts encoded once."""
        head, tail = self._content
        return head + msgspec.json.encode(text) + tail

    def usage(self, usage: Usage) -> bytes:
        """The final ``choices: []`` chunk with ``usage`` (empty unless the client asked)."""
        if not self.include_usage:
            return b""
        return self._prefix + b'],"usage":' + msgspec.json.encode(usage_object(usage)) + b"}\n\n"

    def done(self) -> bytes:
        """``data: [DONE]``."""
        return DONE_FRAME


def chat_completion(
    *,
    model: str,
    choices: list[dict[str, Any]],
    usage: Usage | None,
    response_id: str | None = None,
    created: int | None = None,
) -> bytes:
    """A whole ``chat.completion`` response body."""
    body: dict[str, Any] = {
        "id": response_id or completion_id(),
        "object": "chat.completion",
        "created": created or int(time.time()),
        "model": model,
        "choices": choices,
    }
    if usage is not None:
        body["usage"] = usage_object(usage)
    return msgspec.json.encode(body)
