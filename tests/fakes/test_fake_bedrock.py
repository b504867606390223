"""The fake Bedrock Runtime speaks AWS's exact wire format: boto3's ``bedrock-runtime`` client and
Anthropic's ``AnthropicBedrock`` client use it unchanged, and it checks every SigV4 signature."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import urllib3
from anthropic import AnthropicBedrock
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError, EventStreamError

from truckllm_testing.fakes import Fault, Reply, ToolCall
from truckllm_testing.fakes.bedrock import FakeBedrock, reasoning_signature
from truckllm_testing.fakes.bedrock_wire import decode_frames

AKID, SECRET = "AKIDFAKEBEDROCK1", "fake-secret-1"
TOKEN_KEY = "ASIAFAKESESSION1:session-secret:the-session-token"
MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
USER = [{"role": "user", "content": [{"text": "what is the weather in Paris today"}]}]
TOOLS = {
    "tools": [
        {
            "toolSpec": {
                "name": "get_weather",
                "description": "the weather",
                "inputSchema": {"json": {"type": "object", "properties": {"where": {"type": "string"}}}},
            }
        }
    ]
}


_OPEN: list[Any] = []


@pytest.fixture
def fake() -> Iterator[FakeBedrock]:
    server = FakeBedrock(keys=[f"{AKID}:{SECRET}", TOKEN_KEY], api_keys=["bedrock-api-key-1"])
    with server.running():
        yield server
        while _OPEN:
            _OPEN.pop().close()
        POOL.clear()


POOL = urllib3.PoolManager()


def client(
    fake: FakeBedrock,
    *,
    secret: str = SECRET,
    region: str = "us-east-1",
    akid: str = AKID,
    token: str | None = None,
) -> Any:
    made = boto3.client(
        "bedrock-runtime",
        region_name=region,
        endpoint_url=fake.origin,
        aws_access_key_id=akid,
        aws_secret_access_key=secret,
        aws_session_token=token,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )
    _OPEN.append(made)
    return made


def test_converse_with_boto3(fake: FakeBedrock) -> None:
    fake.script(
        Reply(
            text="Sunny in Paris",
            prompt_tokens=30,
            cached_tokens=10,
            cache_write_tokens=5,
            completion_tokens=3,
        )
    )
    answer = client(fake).converse(
        modelId=MODEL,
        messages=USER,
        system=[{"text": "be brief"}],
        inferenceConfig={"maxTokens": 100, "temperature": 0.2},
    )
    assert answer["output"]["message"]["content"] == [{"text": "Sunny in Paris"}]
    assert answer["stopReason"] == "end_turn"
    assert answer["usage"] == {
        "inputTokens": 15,
        "outputTokens": 3,
        "totalTokens": 33,
        "cacheReadInputTokens": 10,
        "cacheWriteInputTokens": 5,
    }
    (received,) = fake.requests
    assert received.model == MODEL
    assert received.api_key == f"{AKID}:{SECRET}"
    assert fake.violations == []


def test_session_token_is_checked(fake: FakeBedrock) -> None:
    akid, secret, token = TOKEN_KEY.split(":")
    answer = client(fake, akid=akid, secret=secret, token=token).converse(modelId=MODEL, messages=USER)
    assert answer["stopReason"] == "end_turn"
    with pytest.raises(ClientError) as info:
        client(fake, akid=akid, secret=secret, token="another").converse(modelId=MODEL, messages=USER)
    assert info.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_temporary_credentials_added_later_expire(fake: FakeBedrock) -> None:
    now = dt.datetime.now(dt.UTC)
    fake.add_key("ASIALATER1:later-secret:later-token", expires=now + dt.timedelta(minutes=5))
    fake.add_key("ASIAGONE1:gone-secret:gone-token", expires=now - dt.timedelta(seconds=1))
    later = client(fake, akid="ASIALATER1", secret="later-secret", token="later-token")
    assert later.converse(modelId=MODEL, messages=USER)["stopReason"] == "end_turn"
    assert fake.requests[-1].api_key == "ASIALATER1:later-secret:later-token"
    with pytest.raises(ClientError) as info:
        client(fake, akid="ASIAGONE1", secret="gone-secret", token="gone-token").converse(
            modelId=MODEL, messages=USER
        )
    assert info.value.response["Error"]["Code"] == "ExpiredTokenException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert fake.violations == ["ExpiredTokenException: The security token included in the request is expired"]
    fake.violations.clear()


def test_converse_tool_use_and_reasoning(fake: FakeBedrock) -> None:
    fake.script(Reply(thinking="Let me think", tool_calls=[ToolCall("get_weather", {"where": "Paris"})]))
    answer = client(fake).converse(modelId=MODEL, messages=USER, toolConfig=TOOLS)
    content = answer["output"]["message"]["content"]
    assert content[0] == {
        "reasoningContent": {
            "reasoningText": {"text": "Let me think", "signature": reasoning_signature("Let me think")}
        }
    }
    assert content[1]["toolUse"]["name"] == "get_weather"
    assert content[1]["toolUse"]["input"] == {"where": "Paris"}
    assert answer["stopReason"] == "tool_use"


def test_converse_stream_with_boto3(fake: FakeBedrock) -> None:
    fake.script(
        Reply(
            text="one two three four",
            thinking="hmm yes",
            tool_calls=[ToolCall("get_weather", {"where": "Oslo"})],
            prompt_tokens=7,
            completion_tokens=9,
        )
    )
    answer = client(fake).converse_stream(modelId=MODEL, messages=USER, toolConfig=TOOLS)
    events = list(answer["stream"])
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    text = "".join(
        e["contentBlockDelta"]["delta"].get("text", "") for e in events if "contentBlockDelta" in e
    )
    assert text == "one two three four"
    reasoning = "".join(
        e["contentBlockDelta"]["delta"]["reasoningContent"].get("text", "")
        for e in events
        if "reasoningContent" in e.get("contentBlockDelta", {}).get("delta", {})
    )
    assert reasoning == "hmm yes"
    (start,) = [e["contentBlockStart"] for e in events if "contentBlockStart" in e]
    assert start["start"]["toolUse"]["name"] == "get_weather"
    arguments = "".join(
        e["contentBlockDelta"]["delta"]["toolUse"]["input"]
        for e in events
        if "toolUse" in e.get("contentBlockDelta", {}).get("delta", {})
    )
    assert json.loads(arguments) == {"where": "Oslo"}
    assert events[-2]["messageStop"]["stopReason"] == "tool_use"
    assert events[-1]["metadata"]["usage"]["inputTokens"] == 7


def test_mid_stream_exception_reaches_boto3(fake: FakeBedrock) -> None:
    fake.inject(Fault(error_after=2, kind="rate_limit"))
    answer = client(fake).converse_stream(modelId=MODEL, messages=USER)
    with pytest.raises(EventStreamError) as info:
        try:
            list(answer["stream"])
        finally:
            answer["stream"].close()
    assert info.value.response["Error"]["Code"] == "throttlingException"


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("rate_limit", 429, "ThrottlingException"),
        ("overloaded", 503, "ServiceUnavailableException"),
        ("model_not_ready", 429, "ModelNotReadyException"),
        ("permission", 403, "AccessDeniedException"),
        ("bad_request", 400, "ValidationException"),
    ],
)
def test_faults_are_aws_errors(fake: FakeBedrock, kind: str, status: int, code: str) -> None:
    fake.inject(Fault(kind=kind))
    with pytest.raises(ClientError) as info:
        client(fake).converse(modelId=MODEL, messages=USER)
    assert info.value.response["Error"]["Code"] == code
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"secret": "wrong"}, "signature we calculated does not match"),
        ({"region": "eu-west-1"}, "Credential should be scoped to a valid region"),
        ({"akid": "AKIDUNKNOWN"}, "security token included in the request is invalid"),
    ],
)
def test_bad_signatures_are_403(fake: FakeBedrock, change: dict[str, str], message: str) -> None:
    with pytest.raises(ClientError) as info:
        client(fake, **change).converse(modelId=MODEL, messages=USER)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert message in info.value.response["Error"]["Message"]
    assert fake.violations, "a refused signature is a violation"


def _signed(fake: FakeBedrock, when: dt.datetime, service: str = "bedrock") -> dict[str, str]:
    body = json.dumps({"messages": USER}).encode()
    request = AWSRequest(
        method="POST",
        url=f"{fake.origin}/model/{MODEL}/converse",
        data=body,
        headers={"content-type": "application/json"},
    )
    request.context["timestamp"] = when.strftime("%Y%m%dT%H%M%SZ")
    signer = SigV4Auth(Credentials(AKID, SECRET), service, "us-east-1")
    request.headers["X-Amz-Date"] = request.context["timestamp"]
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    scope = signer.credential_scope(request)
    signed = signer.signed_headers(signer.headers_to_sign(request))
    request.headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={AKID}/{scope}, SignedHeaders={signed}, Signature={signature}"
    )
    return {**dict(request.headers.items()), "_body": body.decode()}


@pytest.mark.parametrize(
    ("age", "service", "message"),
    [(dt.timedelta(minutes=20), "bedrock", "Signature expired"), (dt.timedelta(0), "s3", "correct service")],
)
def test_expired_date_and_wrong_service_are_403(
    fake: FakeBedrock, age: dt.timedelta, service: str, message: str
) -> None:
    headers = _signed(fake, dt.datetime.now(dt.UTC) - age, service)
    body = headers.pop("_body")
    answer = POOL.request("POST", f"{fake.origin}/model/{MODEL}/converse", body=body, headers=headers)
    assert answer.status == 403
    assert answer.headers["x-amzn-ErrorType"].startswith("InvalidSignatureException:")
    assert message in json.loads(answer.data)["message"]


def test_bearer_api_key(fake: FakeBedrock) -> None:
    body = json.dumps({"messages": USER})
    good = POOL.request(
        "POST",
        f"{fake.origin}/model/{MODEL}/converse",
        body=body,
        headers={"Authorization": "Bearer bedrock-api-key-1", "content-type": "application/json"},
    )
    assert good.status == 200, good.data
    assert fake.requests[-1].api_key == "bedrock-api-key-1"
    bad = POOL.request(
        "POST",
        f"{fake.origin}/model/{MODEL}/converse",
        body=body,
        headers={"Authorization": "Bearer nope", "content-type": "application/json"},
    )
    assert bad.status == 403


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"messages": USER, "temperature": 1}, "Unknown parameter"),
        ({"messages": [{"role": "user", "content": [{"text": 3}]}]}, "Invalid type"),
        (
            {"messages": [{"role": "assistant", "content": [{"text": "hi"}]}]},
            "must start with a user message",
        ),
        ({"messages": [{"role": "user", "content": [{"text": " "}]}]}, "is blank"),
        (
            {
                "messages": [
                    *USER,
                    {
                        "role": "assistant",
                        "content": [{"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {}}}],
                    },
                ]
            },
            "toolConfig field must be defined",
        ),
        (
            {
                "messages": [
                    *USER,
                    {
                        "role": "assistant",
                        "content": [
                            {"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {}}},
                            {"reasoningContent": {"reasoningText": {"text": "hm", "signature": "s"}}},
                        ],
                    },
                    {
                        "role": "user",
                        "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "sun"}]}}],
                    },
                ],
                "toolConfig": TOOLS,
            },
            "reasoningContent must come before toolUse",
        ),
    ],
)
def test_validation_exception(fake: FakeBedrock, params: dict[str, Any], message: str) -> None:
    body = json.dumps(params).encode()
    request = AWSRequest(
        method="POST",
        url=f"{fake.origin}/model/{MODEL}/converse",
        data=body,
        headers={"content-type": "application/json"},
    )
    SigV4Auth(Credentials(AKID, SECRET), "bedrock", "us-east-1").add_auth(request)
    answer = POOL.request("POST", str(request.url), body=body, headers=dict(request.headers.items()))
    assert answer.status == 400, answer.data
    assert answer.headers["x-amzn-ErrorType"].startswith("ValidationException:")
    assert message in json.loads(answer.data)["message"]
    assert fake.violations


def test_event_stream_frames_are_valid(fake: FakeBedrock) -> None:
    body = json.dumps({"messages": USER}).encode()
    request = AWSRequest(
        method="POST",
        url=f"{fake.origin}/model/{MODEL}/converse-stream",
        data=body,
        headers={"content-type": "application/json"},
    )
    SigV4Auth(Credentials(AKID, SECRET), "bedrock", "us-east-1").add_auth(request)
    answer = POOL.request("POST", str(request.url), body=body, headers=dict(request.headers.items()))
    assert answer.headers["content-type"] == "application/vnd.amazon.eventstream"
    messages = decode_frames(answer.data)
    assert next(m.headers[":event-type"] for m in messages) == "messageStart"
    assert all(m.headers[":message-type"] == "event" for m in messages)


def bedrock_anthropic(fake: FakeBedrock) -> AnthropicBedrock:
    made = AnthropicBedrock(
        aws_access_key=AKID,
        aws_secret_key=SECRET,
        aws_region="us-east-1",
        base_url=fake.origin,
        max_retries=0,
    )
    _OPEN.append(made)
    return made


def test_anthropic_bedrock_client(fake: FakeBedrock) -> None:
    fake.script(Reply(text="Bonjour", prompt_tokens=12, completion_tokens=1))
    message = bedrock_anthropic(fake).messages.create(
        model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "hello"}]
    )
    assert message.content[0].type == "text" and message.content[0].text == "Bonjour"
    assert message.usage.input_tokens == 12
    (received,) = fake.requests
    assert received.path.endswith("/invoke") and "anthropic_version" in received.json
    assert fake.violations == []


def test_anthropic_bedrock_client_stream(fake: FakeBedrock) -> None:
    fake.script(Reply(text="a b c d", tool_calls=[ToolCall("get_weather", {"where": "Rome"})]))
    with bedrock_anthropic(fake).messages.stream(
        model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "hello"}]
    ) as stream:
        final = stream.get_final_message()
    assert final.content[0].type == "text" and final.content[0].text == "a b c d"
    assert final.content[1].type == "tool_use" and final.content[1].input == {"where": "Rome"}
    assert final.stop_reason == "tool_use"
    assert fake.requests[0].path.endswith("/invoke-with-response-stream")


def test_invoke_chunks_carry_base64_anthropic_events(fake: FakeBedrock) -> None:
    body = json.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "hi"}],
        }
    ).encode()
    request = AWSRequest(
        method="POST",
        url=f"{fake.origin}/model/{MODEL}/invoke-with-response-stream",
        data=body,
        headers={"content-type": "application/json"},
    )
    SigV4Auth(Credentials(AKID, SECRET), "bedrock", "us-east-1").add_auth(request)
    answer = POOL.request("POST", str(request.url), body=body, headers=dict(request.headers.items()))
    types = [json.loads(base64.b64decode(m.json()["bytes"]))["type"] for m in decode_frames(answer.data)]
    assert types[0] == "message_start" and types[-1] == "message_stop"


def test_count_tokens_with_boto3(fake: FakeBedrock) -> None:
    runtime = client(fake)
    converse = runtime.count_tokens(
        modelId=MODEL, input={"converse": {"messages": USER, "system": [{"text": "be brief"}]}}
    )
    assert converse["inputTokens"] == 10  # 7 + 2 words, plus one
    body = json.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 1,
            "messages": [{"role": "user", "content": "three words here"}],
        }
    ).encode()
    invoke = runtime.count_tokens(modelId=MODEL, input={"invokeModel": {"body": body}})
    assert invoke["inputTokens"] == 4
    with pytest.raises(ClientError) as info:
        runtime.count_tokens(
            modelId=MODEL,
            input={"converse": {"messages": [{"role": "assistant", "content": [{"text": "x"}]}]}},
        )
    assert info.value.response["Error"]["Code"] == "ValidationException"
    fake.violations.clear()
