"""Units of the Bedrock provider: the URL and its signature, the request rules, errors, credentials."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import msgspec
import pytest
import truckllm_provider_bedrock as plugin
import yarl
from truckllm_provider_bedrock.credentials import (
    AwsCredential,
    BedrockCredentials,
    NoCredentials,
    decode_credential,
)
from truckllm_provider_bedrock.errors import classify
from truckllm_provider_bedrock.options import Options
from truckllm_provider_bedrock.signing import model_path, sign

from truckllm._internal.schemas.openai import ChatCompletionRequest
from truckllm.errors import UnsupportedRequest
from truckllm.types import ChatRequest, Provider, UpstreamResponse, Usage
from truckllm_testing.fakes.bedrock_wire import check_sigv4

USER = [{"role": "user", "content": "hi"}]
MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
KEY = "AKIDUNITTEST0001:unit-test-secret"
MODEL_ID = MODEL
FIXED_NOW = dt.datetime(2026, 12, 7, 12, 0, 0, tzinfo=dt.UTC)


def provider(base_url: str = "https://bedrock-runtime.us-east-1.amazonaws.com", **options: Any) -> Provider:
    """A ``type: bedrock`` provider entry with these options."""
    return Provider(name="br", type="bedrock", base_url=base_url, options=msgspec.convert(options, Options))


def request(body: dict[str, Any]) -> ChatRequest:
    """A decoded OpenAI chat request, as the kernel builds it."""
    raw = json.dumps({"model": "alias", **body}).encode()
    stream = bool(body.get("stream"))
    return ChatRequest(
        endpoint="chat",
        body=raw,
        model="alias",
        stream=stream,
        typed=msgspec.json.decode(raw, type=ChatCompletionRequest),
    )


SECRETS = {"AKIDUNITTEST0001": ("unit-test-secret", None)}


def _body(upstream: Any) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(upstream.body)
    return decoded


@pytest.mark.parametrize(
    ("model", "path"),
    [
        (MODEL, f"/model/{MODEL}/converse"),
        ("amazon.nova-pro-v1:0", "/model/amazon.nova-pro-v1:0/converse"),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-x",
            "/model/arn:aws:bedrock:us-east-1:123456789012:inference-profile%2Fus.anthropic.claude-x/converse",
        ),
    ],
)
def test_the_model_is_one_segment_sent_as_signed(model: str, path: str) -> None:
    """The path signed is the path an HTTP client sends (yarl leaves it as it is)."""
    assert model_path(model, "converse") == path
    assert yarl.URL("https://h" + path).raw_path == path


@pytest.mark.parametrize("model", ["../../x", "a?b=c", "a#b", "a b", "", "é", ".hidden", "x" * 3000])
def test_a_model_that_cannot_be_a_model_id_is_refused(model: str) -> None:
    with pytest.raises(UnsupportedRequest) as info:
        plugin.transform_request(
            provider=provider(), model=model, request=request({"messages": USER}), api_key=KEY
        )
    assert info.value.param == "model"


def test_the_signature_is_what_aws_recomputes() -> None:
    url = "http://127.0.0.1:8080" + model_path(MODEL, "converse")
    headers = {"content-type": "application/json"}
    body = b'{"messages":[]}'
    added = sign(
        url=url,
        headers=headers,
        body=body,
        credential=AwsCredential("AKIDUNITTEST0001", "unit-test-secret"),
        region="us-east-1",
        now=lambda: FIXED_NOW,
    )
    assert added["X-Amz-Date"] == "20261207T120000Z"
    sent = {k.lower(): v for k, v in {**headers, **added, "host": "127.0.0.1:8080"}.items()}
    check = {
        "method": "POST",
        "origin": "http://127.0.0.1:8080",
        "raw_path": yarl.URL(url).raw_path,
        "headers": sent,
        "secrets": SECRETS,
        "service": "bedrock",
        "now": FIXED_NOW,
    }
    assert check_sigv4(**check, body=body, region="us-east-1") == ("AKIDUNITTEST0001", None)  # type: ignore[arg-type]
    _, tampered = check_sigv4(**check, body=body + b" ", region="us-east-1")  # type: ignore[arg-type]
    assert tampered is not None
    _, elsewhere = check_sigv4(**check, body=body, region="eu-west-1")  # type: ignore[arg-type]
    assert elsewhere is not None and "region" in elsewhere.message


def test_transform_request_signs_with_the_session_token() -> None:
    up = plugin.transform_request(
        provider=provider(region="eu-west-3"),
        model=MODEL,
        request=request({"messages": USER}),
        api_key='{"access_key":"ASIAX","secret_key":"s","token":"tok"}',
    )
    assert up is not None
    assert up.url == f"https://bedrock-runtime.eu-west-3.amazonaws.com/model/{MODEL}/converse"
    assert up.headers["X-Amz-Security-Token"] == "tok"
    assert "/eu-west-3/bedrock/aws4_request" in up.headers["Authorization"]
    assert up.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=ASIAX/")


def test_api_key_auth_is_a_bearer_token() -> None:
    up = plugin.transform_request(
        provider=provider(auth="api_key"),
        model=MODEL,
        request=request({"messages": USER, "stream": True}),
        api_key="bedrock-key",
    )
    assert up is not None and up.stream
    assert up.headers["authorization"] == "Bearer bedrock-key"
    assert "X-Amz-Date" not in up.headers
    assert up.url.endswith("/converse-stream")


def test_no_credentials_is_a_failed_attempt_naming_no_secret() -> None:
    with pytest.raises(plugin.MissingCredentials):
        plugin.transform_request(
            provider=provider(), model=MODEL, request=request({"messages": USER}), api_key=""
        )


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": USER, "n": 2}, "n"),
        ({"messages": USER, "logprobs": True}, "logprobs"),
        ({"messages": USER, "reasoning_effort": "extreme"}, "reasoning_effort"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
                    }
                ]
            },
            "messages[0].content[0].image_url.url",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
                        ],
                    }
                ]
            },
            "messages[0].content[0]",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "[1]"}}
                        ],
                    }
                ]
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
        ({"messages": USER, "tool_choice": "required"}, "tool_choice"),
        ({"messages": [{"role": "system", "content": "only a system prompt"}]}, "messages"),
    ],
)
def test_what_bedrock_cannot_do_is_refused_naming_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(UnsupportedRequest) as info:
        plugin.transform_request(provider=provider(), model=MODEL, request=request(body), api_key=KEY)
    assert info.value.param == param


def test_reasoning_effort_on_a_model_without_it_is_refused() -> None:
    with pytest.raises(UnsupportedRequest, match="Claude and Nova"):
        plugin.transform_request(
            provider=provider(),
            model="meta.llama3-70b-instruct-v1:0",
            request=request({"messages": USER, "reasoning_effort": "low"}),
            api_key=KEY,
        )


def test_nova_reasoning_effort() -> None:
    up = plugin.transform_request(
        provider=provider(),
        model="amazon.nova-2-lite-v1:0",
        request=request({"messages": USER, "reasoning_effort": "high"}),
        api_key=KEY,
    )
    assert _body(up)["additionalModelRequestFields"] == {
        "reasoningConfig": {"type": "enabled", "maxReasoningEffort": "high"}
    }


def test_reasoning_blocks_are_sent_before_tool_use() -> None:
    """Bedrock refuses a toolUse followed by reasoningContent (another gateway's bug)."""
    assistant = {
        "role": "assistant",
        "content": "let me look",
        "tool_calls": [{"id": "call.1", "type": "function", "function": {"name": "f", "arguments": ""}}],
        "thinking_blocks": [{"type": "thinking", "thinking": "hm", "signature": "sig"}],
    }
    body = {
        "messages": [*USER, assistant, {"role": "tool", "tool_call_id": "call.1", "content": ""}],
        "tools": [{"type": "function", "function": {"name": "f"}}],
    }
    turns = _body(
        plugin.transform_request(provider=provider(), model=MODEL, request=request(body), api_key=KEY)
    )["messages"]
    assert [next(iter(b)) for b in turns[1]["content"]] == ["reasoningContent", "text", "toolUse"]
    assert turns[1]["content"][2]["toolUse"] == {"toolUseId": "call_1", "name": "f", "input": {}}
    assert turns[2]["content"] == [{"toolResult": {"toolUseId": "call_1", "content": [{"text": "(empty)"}]}}]


@pytest.mark.parametrize(
    ("status", "error_type", "message", "kind", "client"),
    [
        (429, "ThrottlingException", "Too many requests", "rate_limit", 429),
        (429, "ModelNotReadyException", "not ready", "overloaded", 503),
        (503, "ServiceUnavailableException", "busy", "overloaded", 503),
        (500, "InternalServerException", "oops", "server", 500),
        (400, "ValidationException", "bad field", "bad_request", 400),
        (400, "ValidationException", "Input is too long for requested model.", "context_length", 400),
        (403, "AccessDeniedException", "no access", "permission", 502),
        (403, "UnrecognizedClientException", "bad token", "auth", 502),
        (403, "InvalidSignatureException", "sig", "auth", 502),
        (404, "ResourceNotFoundException", "no model", "not_found", 404),
        (418, "", "teapot", "bad_request", 418),
    ],
)
def test_errors_are_classified(status: int, error_type: str, message: str, kind: str, client: int) -> None:
    headers = (
        {"x-amzn-errortype": f"{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
        if error_type
        else {}
    )
    error = classify(status, headers, json.dumps({"message": message}).encode())
    assert (error.kind, error.status) == (kind, client)
    assert message in error.message and error_type in error.message


def test_throttling_retry_after_is_read() -> None:
    result = plugin.transform_response(
        model=MODEL_ID,
        provider=provider(),
        request=request({"messages": USER}),
        response=UpstreamResponse(
            status=429,
            headers={"x-amzn-errortype": "ThrottlingException", "retry-after": "7"},
            body=b'{"message":"slow down"}',
        ),
    )
    assert result is not None and result.error is not None
    assert (result.error.kind, result.error.retry_after) == ("rate_limit", 7.0)


@pytest.mark.parametrize(
    "body", [b"", b"<html>", b"[]", b'{"foo":1}', b'{"output":{"message":{"content":"x"}}}']
)
def test_a_2xx_that_is_not_an_answer_is_a_502(body: bytes) -> None:
    result = plugin.transform_response(
        model=MODEL_ID,
        provider=provider(),
        request=request({"messages": USER}),
        response=UpstreamResponse(status=200, body=body),
    )
    assert result is not None and result.error is not None
    assert (result.error.status, result.error.kind) == (502, "bad_response")


# --- credentials -------------------------------------------------------------------------------------


async def test_static_key_source() -> None:
    source = BedrockCredentials("AKIDX:secret:token", Options())
    assert await source.refresh() == math.inf
    assert decode_credential(source.current()) == AwsCredential("AKIDX", "secret", "token")
    await source.close()
    assert source.current() == ""


async def test_chain_source_reports_the_expiry_and_refreshes() -> None:
    issued = [AwsCredential("ASIA1", "s1", "t1"), AwsCredential("ASIA2", "s2", "t2")]
    calls: list[int] = []

    def resolver() -> tuple[AwsCredential, float]:
        calls.append(1)
        return issued[len(calls) - 1], 1000.0 * len(calls)

    source = BedrockCredentials("", Options(), resolver=resolver)
    assert await source.refresh() == 1000.0
    assert decode_credential(source.current()) == issued[0]
    assert await source.refresh() == 2000.0
    assert decode_credential(source.current()) == issued[1]


async def test_a_failing_chain_keeps_the_previous_credential() -> None:
    answers: list[Any] = [(AwsCredential("ASIA1", "s1"), 50.0), NoCredentials("expired")]

    def resolver() -> tuple[AwsCredential, float]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        result: tuple[AwsCredential, float] = answer
        return result

    source = BedrockCredentials("", Options(), resolver=resolver)
    await source.refresh()
    with pytest.raises(NoCredentials):
        await source.refresh()
    assert decode_credential(source.current()) == AwsCredential("ASIA1", "s1")


async def test_botocore_chain_reads_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    source = plugin.credentials.make_source(provider(), "")
    assert await source.refresh() == math.inf
    assert decode_credential(source.current()) == AwsCredential("AKIDFROMENV", "env-secret")


async def test_botocore_chain_reads_a_profile(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "credentials").write_text(
        "[prod]\naws_access_key_id = AKIDPROD\naws_secret_access_key = prod-secret\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    source = plugin.credentials.make_source(provider(profile="prod"), "")
    await source.refresh()
    assert decode_credential(source.current()) == AwsCredential("AKIDPROD", "prod-secret")


async def test_api_key_source_reads_the_environment() -> None:
    source = BedrockCredentials("", Options(auth="api_key"), environ={"AWS_BEARER_TOKEN_BEDROCK": "brk-key"})
    await source.refresh()
    assert source.current() == "brk-key"
    with pytest.raises(NoCredentials):
        await BedrockCredentials("", Options(auth="api_key"), environ={}).refresh()


def test_credential_json_round_trip() -> None:
    text = msgspec.json.encode(AwsCredential("A", "B")).decode()
    assert decode_credential(text) == AwsCredential("A", "B")
    assert decode_credential("{not json") is None
    assert decode_credential("no-colon") is None


async def test_a_chain_failure_is_a_credential_error_naming_no_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from truckllm.errors import CredentialError

    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    source = plugin.credentials.make_source(provider(profile="missing"), "")
    with pytest.raises(CredentialError, match="ProfileNotFound"):
        await source.refresh()
    with pytest.raises(CredentialError, match="ACCESS_KEY_ID:SECRET"):
        await BedrockCredentials("not-a-pair", Options()).refresh()


def test_a_count_is_sent_as_count_tokens_and_answered_as_openai_counts() -> None:
    body = {
        "messages": USER,
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "max_tokens": 9,
        "stream": True,
    }
    raw = json.dumps({"model": "alias", **body}).encode()
    count = ChatRequest(
        endpoint="count_tokens",
        body=raw,
        model="alias",
        typed=msgspec.json.decode(raw, type=ChatCompletionRequest),
    )
    up = plugin.transform_request(
        provider=provider(), model="amazon.nova-pro-v1:0", request=count, api_key=KEY
    )
    assert up is not None and not up.stream
    assert up.url.endswith("/model/amazon.nova-pro-v1:0/count-tokens")
    assert json.loads(up.body) == {
        "input": {
            "converse": {
                "messages": [{"role": "user", "content": [{"text": "hi"}]}],
                "toolConfig": {
                    "tools": [
                        {
                            "toolSpec": {
                                "name": "f",
                                "inputSchema": {"json": {"type": "object", "properties": {}}},
                            }
                        }
                    ]
                },
            }
        }
    }
    result = plugin.transform_response(
        provider=provider(),
        request=count,
        model="amazon.nova-pro-v1:0",
        response=UpstreamResponse(status=200, body=b'{"inputTokens": 12}'),
    )
    assert result is not None and json.loads(result.body) == {
        "object": "response.input_tokens",
        "input_tokens": 12,
    }
    assert plugin.parse_usage(provider=provider(), request=count, body=b'{"inputTokens": 12}') == Usage()
    bad = plugin.transform_response(
        provider=provider(),
        request=count,
        model="amazon.nova-pro-v1:0",
        response=UpstreamResponse(status=200, body=b'{"inputTokens": -3}'),
    )
    assert bad is not None and bad.error is not None and bad.error.kind == "bad_response"
