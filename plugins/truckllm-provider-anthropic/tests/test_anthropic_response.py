"""``transform_response`` and ``parse_usage``: error classification, rate limits, pass-through."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import truckllm_provider_anthropic as plugin
from truckllm_provider_anthropic.errors import parse_ratelimits, parse_reset

MESSAGE = {
    "id": "msg_01ABC",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [{"type": "text", "text": "Hello"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 5,
        "cache_read_input_tokens": 7,
        "cache_creation_input_tokens": 3,
        "output_tokens": 2,
    },
}


def error_body(etype: str, message: str, **extra: Any) -> dict[str, Any]:
    """Anthropic's error JSON."""
    return {"type": "error", "error": {"type": etype, "message": message, **extra}, "request_id": "req_011CX"}


def in_seconds(seconds: float) -> str:
    """An RFC 3339 timestamp ``seconds`` from now."""
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(
    ("status", "etype", "message", "kind", "client_status", "openai_type", "code"),
    [
        (
            400,
            "invalid_request_error",
            "max_tokens: Field required",
            "bad_request",
            400,
            "invalid_request_error",
            None,
        ),
        (
            400,
            "invalid_request_error",
            "prompt is too long: 201234 tokens > 200000 maximum",
            "context_length",
            400,
            "invalid_request_error",
            "context_length_exceeded",
        ),
        (
            400,
            "invalid_request_error",
            "input length and `max_tokens` exceed context limit: 198000 + 8192 > 200000",
            "context_length",
            400,
            "invalid_request_error",
            "context_length_exceeded",
        ),
        (401, "authentication_error", "invalid x-api-key", "auth", 502, "invalid_request_error", None),
        (
            402,
            "billing_error",
            "Your credit balance is too low",
            "quota",
            429,
            "insufficient_quota",
            "insufficient_quota",
        ),
        (403, "permission_error", "no access", "permission", 502, "permission_error", None),
        (
            404,
            "not_found_error",
            "model: claude-nope",
            "not_found",
            404,
            "invalid_request_error",
            "model_not_found",
        ),
        (
            413,
            "request_too_large",
            "Request exceeds the maximum size",
            "too_large",
            413,
            "invalid_request_error",
            None,
        ),
        (
            429,
            "rate_limit_error",
            "rate limited",
            "rate_limit",
            429,
            "rate_limit_error",
            "rate_limit_exceeded",
        ),
        (500, "api_error", "Internal server error", "server", 500, "server_error", None),
        (504, "timeout_error", "Request timeout", "timeout", 504, "server_error", None),
        (529, "overloaded_error", "Overloaded", "overloaded", 503, "server_error", None),
        (409, "overloaded_error", "odd status", "overloaded", 409, "server_error", None),
    ],
)
def test_hook_transform_response_error_mapping(
    kit: Any,
    status: int,
    etype: str,
    message: str,
    kind: str,
    client_status: int,
    openai_type: str,
    code: str | None,
) -> None:
    result = kit.respond(error_body(etype, message), status=status)
    error = result.error
    assert (error.kind, error.status, error.type, error.code) == (kind, client_status, openai_type, code)
    assert error.message == f"{message} (request id: req_011CX)"
    assert result.body == b""


def test_spend_limit_429_is_quota_not_rate_limit(kit: Any) -> None:
    body = error_body(
        "rate_limit_error",
        "This request would exceed your account's monthly spend limit.",
        details={"error_code": "enforced_spend_limit_reached"},
    )
    error = kit.respond(body, status=429).error
    assert (error.kind, error.status, error.code) == ("quota", 429, "insufficient_quota")
    assert not error.retryable


def test_retry_after_header_wins(kit: Any) -> None:
    headers = {
        "retry-after": "7",
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": in_seconds(40),
    }
    error = kit.respond(error_body("rate_limit_error", "x"), status=429, headers=headers).error
    assert error.retry_after == 7.0


def test_529_with_retry_after(kit: Any) -> None:
    error = kit.respond(
        error_body("overloaded_error", "Overloaded"), status=529, headers={"retry-after": "3"}
    ).error
    assert error.retry_after == 3.0 and error.status == 503


@pytest.mark.parametrize(
    "body",
    [
        b"<html><head><title>413 Request Entity Too Large</title></head><body>cloudflare</body></html>",
        b"",
        b"\xff\xfe garbage",
    ],
)
def test_non_json_error_bodies(kit: Any, body: bytes) -> None:
    error = kit.respond(body, status=413).error
    assert error.kind == "too_large" and error.status == 413
    assert error.message.startswith("Anthropic answered HTTP 413")
    assert "<html>" not in error.message


def test_plain_text_error_body_is_quoted(kit: Any) -> None:
    error = kit.respond(b"upstream connect error", status=502).error
    assert error.kind == "server" and error.message == "Anthropic answered HTTP 502: upstream connect error"


def test_error_object_in_a_200_is_an_error(kit: Any) -> None:
    result = kit.respond(error_body("overloaded_error", "Overloaded"))
    assert result.error.kind == "overloaded"


@pytest.mark.parametrize(
    "body", [b"not json", b"[]", b'{"type":"completion"}', b'{"content":"text"}', b'{"content":[{"type":1}]}']
)
def test_unreadable_success_is_a_bad_response(kit: Any, body: bytes) -> None:
    result = kit.respond(body)
    assert result.error.kind == "bad_response" and result.error.status == 502


def test_redirect_is_a_bad_response(kit: Any) -> None:
    assert kit.respond(b"", status=302).error.kind == "bad_response"


def test_anthropic_dialect_success_passes_through(kit: Any) -> None:
    raw = json.dumps(MESSAGE).encode()
    request = kit.request({"model": "claude", "max_tokens": 5, "messages": []}, dialect="anthropic")
    from truckllm.types import UpstreamResponse

    result = plugin.transform_response(
        provider=kit.provider(), request=request, response=UpstreamResponse(status=200, headers={}, body=raw)
    )
    assert result is not None
    assert result.body is raw and result.dialect == "anthropic" and result.error is None
    error = plugin.transform_response(
        provider=kit.provider(),
        request=request,
        response=UpstreamResponse(
            status=429, headers={}, body=json.dumps(error_body("rate_limit_error", "x")).encode()
        ),
    )
    assert error is not None and error.error is not None and error.error.kind == "rate_limit"


def test_hook_parse_usage(kit: Any) -> None:
    request = kit.request({"model": "c", "messages": [{"role": "user", "content": "x"}]})
    usage = plugin.parse_usage(provider=kit.provider(), request=request, body=json.dumps(MESSAGE).encode())
    assert usage is not None
    assert (
        usage.prompt_tokens,
        usage.cached_tokens,
        usage.cache_write_tokens,
        usage.completion_tokens,
        usage.total_tokens,
    ) == (15, 7, 3, 2, 17)
    assert plugin.parse_usage(provider=kit.provider(), request=request, body=b"nope") is None
    assert plugin.parse_usage(provider=kit.provider(), request=request, body=b'{"id":"x"}') is None


def test_success_id_model_and_limits(kit: Any) -> None:
    headers = {
        "anthropic-ratelimit-requests-limit": "4000",
        "anthropic-ratelimit-requests-remaining": "3999",
        "anthropic-ratelimit-requests-reset": in_seconds(1),
        "anthropic-ratelimit-tokens-limit": "2000000",
        "anthropic-ratelimit-tokens-remaining": "1999000",
        "anthropic-ratelimit-tokens-reset": in_seconds(2),
    }
    result = kit.respond(MESSAGE, headers=headers)
    body = json.loads(result.body)
    assert body["id"] == "chatcmpl-01ABC" and body["model"] == "claude-sonnet-4-5"
    limits = result.limits
    assert (
        limits.limit_requests,
        limits.remaining_requests,
        limits.limit_tokens,
        limits.remaining_tokens,
    ) == (4000, 3999, 2000000, 1999000)
    assert 0 <= limits.reset_requests <= 1 and 0 < limits.reset_tokens <= 2


def test_ratelimits_fall_back_to_the_tighter_input_or_output_family() -> None:
    headers = {
        "anthropic-ratelimit-input-tokens-limit": "400000",
        "anthropic-ratelimit-input-tokens-remaining": "350000",
        "anthropic-ratelimit-input-tokens-reset": in_seconds(5),
        "anthropic-ratelimit-output-tokens-limit": "80000",
        "anthropic-ratelimit-output-tokens-remaining": "100",
        "anthropic-ratelimit-output-tokens-reset": in_seconds(9),
    }
    limits = parse_ratelimits(headers)
    assert limits is not None
    assert (limits.limit_tokens, limits.remaining_tokens) == (80000, 100)
    assert limits.reset_tokens is not None and 8 < limits.reset_tokens <= 9
    assert limits.remaining_requests is None
    assert parse_ratelimits({}) is None
    assert parse_ratelimits({"anthropic-ratelimit-requests-remaining": "many"}) is None


@pytest.mark.parametrize("value", ["", "tomorrow", "2025-01-01T00:00:00", "1700000000"])
def test_bad_reset_values_are_ignored(value: str) -> None:
    assert parse_reset(value) is None


def test_past_reset_is_zero() -> None:
    assert parse_reset("2001-01-01T00:00:00Z") == 0.0


def test_completions_endpoint_response(kit: Any) -> None:
    result = kit.respond(MESSAGE, endpoint="completions")
    body = json.loads(result.body)
    assert body["object"] == "text_completion" and body["id"] == "cmpl-01ABC"
    assert body["choices"] == [{"text": "Hello", "index": 0, "logprobs": None, "finish_reason": "stop"}]


def test_unknown_stop_reason_and_missing_fields(kit: Any) -> None:
    body = json.loads(
        kit.respond(
            {"type": "message", "content": [{"type": "text", "text": "x"}], "stop_reason": "brand_new"}
        ).body
    )
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["model"] == "claude"  # the client's model when the answer names none
    assert body["id"].startswith("chatcmpl-") and "usage" not in body


def test_tool_input_null_becomes_empty_object(kit: Any) -> None:
    answer = {
        **MESSAGE,
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": None}],
        "stop_reason": "tool_use",
    }
    calls = json.loads(kit.respond(answer).body)["choices"][0]["message"]["tool_calls"]
    assert calls[0]["function"]["arguments"] == "{}"
