"""End to end: the ``openai`` SDK and the ``anthropic`` SDK (through the gateway's Anthropic front
door) → a real gateway (GatewayServer) → FakeBedrock, which checks every SigV4 signature and
validates every Converse body against botocore's service model."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
import truckllm_dialect_anthropic
import truckllm_provider_bedrock as plugin

from truckllm_testing.fakes import Fault, Reply, ToolCall
from truckllm_testing.fakes.bedrock import FakeBedrock, reasoning_signature
from truckllm_testing.server import GatewayServer

MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
KEYS = {
    "main": "AKIDE2EMAIN:main-secret",
    "session": "ASIAE2ESESSION:session-secret:the-token",
    "r429": "AKIDE2E429:secret-429",
    "mid": "AKIDE2EMID:secret-mid",
    "wrong": "AKIDE2EWRONG:not-the-secret",
}
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
PROFILE_ARN = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123def456"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def _config(base_url: str) -> str:
    providers, models = [], []
    for name, value in KEYS.items():
        providers.append(
            f"  br-{name}:\n    type: bedrock\n    base_url: {base_url}\n    options: {{region: us-east-1}}\n"
            f"    keys: [{{name: {name}, value: '{value}'}}]\n"
        )
        models.append(f"  claude-{name}:\n    deployments: [{{provider: br-{name}, model: '{MODEL}'}}]\n")
    models.append("  nova:\n    deployments: [{provider: br-main, model: 'amazon.nova-pro-v1:0'}]\n")
    models.append(f"  profile-arn:\n    deployments: [{{provider: br-main, model: '{PROFILE_ARN}'}}]\n")
    return (
        "routing:\n  retries: 0\n  stream_idle_timeout: 10s\nproviders:\n"
        + "".join(providers)
        + "models:\n"
        + "".join(models)
    )


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeBedrock]:
    """The fake Bedrock, knowing every key but ``wrong``'s secret."""
    known = [v for k, v in KEYS.items() if k != "wrong"] + ["AKIDE2EWRONG:the-real-secret"]
    with FakeBedrock(keys=known).running() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def gateway(fake: FakeBedrock) -> Iterator[GatewayServer]:
    """A gateway with this plugin and the Anthropic front door only."""
    with GatewayServer(
        _config(fake.origin), autoload=False, extra_plugins=(plugin, truckllm_dialect_anthropic)
    ) as gw:
        yield gw


@pytest.fixture
def client(gateway: GatewayServer, fake: FakeBedrock) -> Iterator[openai.OpenAI]:
    """An SDK client without retries; the fake starts clean and must end without violations."""
    fake.reset()
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key="anything", max_retries=0, timeout=20) as sdk:
        yield sdk
    assert fake.violations == []


def _body(fake: FakeBedrock) -> dict[str, Any]:
    body: dict[str, Any] = fake.requests[-1].json
    return body


def test_chat_signed_and_translated(client: openai.OpenAI, fake: FakeBedrock) -> None:
    fake.script(
        Reply(text="Sunny", prompt_tokens=40, cached_tokens=30, cache_write_tokens=4, completion_tokens=2)
    )
    answer = client.chat.completions.create(
        model="claude-main",
        messages=[{"role": "system", "content": "Be brief"}, {"role": "user", "content": "Weather?"}],
        max_tokens=50,
        temperature=0.3,
        stop=["END"],
    )
    assert answer.choices[0].message.content == "Sunny"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (40, 2)
    assert answer.usage.prompt_tokens_details is not None
    assert answer.usage.prompt_tokens_details.cached_tokens == 30
    received = fake.requests[-1]
    assert received.path == f"/model/{MODEL}/converse"
    assert received.api_key == KEYS["main"]
    assert _body(fake) == {
        "system": [{"text": "Be brief"}],
        "messages": [{"role": "user", "content": [{"text": "Weather?"}]}],
        "inferenceConfig": {"maxTokens": 50, "temperature": 0.3, "stopSequences": ["END"]},
    }


def test_session_token_is_sent_and_signed(client: openai.OpenAI, fake: FakeBedrock) -> None:
    answer = client.chat.completions.create(
        model="claude-session", messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.choices[0].message.content == "echo: hi"
    assert fake.requests[-1].headers["x-amz-security-token"] == "the-token"


def test_stream(client: openai.OpenAI, fake: FakeBedrock) -> None:
    fake.script(Reply(text="one two three four five", prompt_tokens=5, completion_tokens=5))
    chunks = list(
        client.chat.completions.create(
            model="claude-main",
            messages=[{"role": "user", "content": "count"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four five"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 10
    assert fake.requests[-1].path.endswith("/converse-stream")


def test_tools_round_trip(client: openai.OpenAI, fake: FakeBedrock) -> None:
    fake.script(Reply(thinking="I should look", tool_calls=[ToolCall("get_weather", {"city": "Paris"})]))
    first = client.chat.completions.create(
        model="claude-main",
        messages=[{"role": "user", "content": "Paris?"}],
        tools=[WEATHER],
        reasoning_effort="low",
    )
    message = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls is not None
    (call,) = message.tool_calls
    assert call.type == "function" and json.loads(call.function.arguments) == {"city": "Paris"}
    body = _body(fake)
    assert body["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    assert body["inferenceConfig"]["maxTokens"] > 1024
    extra = message.model_extra or {}
    assert extra["reasoning_content"] == "I should look"
    blocks = extra["thinking_blocks"]
    assert blocks == [
        {"type": "thinking", "thinking": "I should look", "signature": reasoning_signature("I should look")}
    ]
    fake.script(Reply(text="It is sunny"))
    assistant: Any = {
        "role": "assistant",
        "content": None,
        "tool_calls": [call.model_dump()],
        "thinking_blocks": blocks,
    }
    second = client.chat.completions.create(
        model="claude-main",
        messages=[
            {"role": "user", "content": "Paris?"},
            assistant,
            {"role": "tool", "tool_call_id": call.id, "content": "sunny, 24C"},
        ],
        tools=[WEATHER],
    )
    assert second.choices[0].message.content == "It is sunny"
    turns = _body(fake)["messages"]
    assert list(turns[1]["content"][0]) == [
        "reasoningContent"
    ]  # reasoning first: Bedrock refuses toolUse before it
    assert turns[1]["content"][1]["toolUse"]["toolUseId"] == call.id
    assert turns[2]["content"][0]["toolResult"] == {"toolUseId": call.id, "content": [{"text": "sunny, 24C"}]}


def test_tools_streamed(client: openai.OpenAI, fake: FakeBedrock) -> None:
    fake.script(
        Reply(
            tool_calls=[ToolCall("get_weather", {"city": "Oslo"}), ToolCall("get_weather", {"city": "Rome"})]
        )
    )
    chunks = list(
        client.chat.completions.create(
            model="claude-main",
            messages=[{"role": "user", "content": "Oslo and Rome?"}],
            tools=[WEATHER],
            tool_choice="required",
            stream=True,
        )
    )
    arguments: dict[int, str] = {}
    for chunk in chunks:
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            arguments[call.index] = arguments.get(call.index, "") + (
                call.function.arguments or "" if call.function else ""
            )
    assert {i: json.loads(a) for i, a in arguments.items()} == {0: {"city": "Oslo"}, 1: {"city": "Rome"}}
    assert _body(fake)["toolConfig"]["toolChoice"] == {"any": {}}


def test_image(client: openai.OpenAI, fake: FakeBedrock) -> None:
    url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    client.chat.completions.create(
        model="claude-main",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what?"},
                    {"type": "image_url", "image_url": {"url": url}},
                ],
            }
        ],
    )
    image = _body(fake)["messages"][0]["content"][1]["image"]
    assert image == {"format": "png", "source": {"bytes": base64.b64encode(PNG).decode()}}


def test_throttling_is_a_429_with_cooldown(client: openai.OpenAI, fake: FakeBedrock) -> None:
    fake.inject(Fault(kind="rate_limit", retry_after=5, key=KEYS["r429"]))
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="claude-r429", messages=[{"role": "user", "content": "hi"}])
    assert "cooling down for 5s (rate_limit)" in info.value.message  # Retry-After read, key cooled


def test_wrong_secret_is_refused_by_the_fake(client: openai.OpenAI, fake: FakeBedrock) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="claude-wrong", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 502
    assert "not-the-secret" not in str(info.value.body)
    assert fake.violations and "InvalidSignatureException" in fake.violations[0]
    fake.violations.clear()


def test_mid_stream_exception_is_an_error_event(client: openai.OpenAI, fake: FakeBedrock) -> None:
    fake.inject(Fault(error_after=2, kind="rate_limit", chunk_delay=0.05))
    fake.script(Reply(text="one two three four five six"))
    stream = client.chat.completions.create(
        model="claude-mid", messages=[{"role": "user", "content": "x"}], stream=True
    )
    with pytest.raises(openai.APIError) as info:
        list(stream)
    assert "ThrottlingException" in str(info.value)


def test_anthropic_front_door(gateway: GatewayServer, fake: FakeBedrock) -> None:
    fake.reset()
    fake.script(Reply(text="Bonjour", prompt_tokens=9, completion_tokens=1))
    with anthropic.Anthropic(base_url=gateway.url, api_key="anything", max_retries=0) as sdk:
        message = sdk.messages.create(
            model="claude-main", max_tokens=64, messages=[{"role": "user", "content": "hello"}]
        )
        assert message.content[0].type == "text" and message.content[0].text == "Bonjour"
        assert message.usage.input_tokens == 9
        fake.script(Reply(text="a b c", tool_calls=[ToolCall("get_weather", {"city": "Lima"})]))
        tools: Any = [
            {
                "name": "get_weather",
                "description": "weather",
                "input_schema": WEATHER["function"]["parameters"],
            }
        ]
        with sdk.messages.stream(
            model="claude-main", max_tokens=64, messages=[{"role": "user", "content": "Lima?"}], tools=tools
        ) as stream:
            final = stream.get_final_message()
    assert [b.type for b in final.content] == ["text", "tool_use"]
    assert final.stop_reason == "tool_use"
    received = fake.requests[-1]
    assert received.path == f"/model/{MODEL}/invoke-with-response-stream"  # Claude: passed through
    assert received.json["anthropic_version"] == "bedrock-2023-05-31"
    assert "model" not in received.json and "stream" not in received.json
    assert received.json["tools"] == tools
    assert fake.violations == []


def test_anthropic_thinking_blocks_reach_claude_untouched(gateway: GatewayServer, fake: FakeBedrock) -> None:
    """Claude Code's history (signed thinking before tool_use, cache_control) goes as it came."""
    fake.reset()
    history: Any = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "Lima?", "cache_control": {"type": "ephemeral"}}],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "look it up", "signature": "c2lnbmF0dXJl"},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Lima"}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]},
    ]
    with anthropic.Anthropic(base_url=gateway.url, api_key="anything", max_retries=0) as sdk:
        message = sdk.messages.create(
            model="claude-main",
            max_tokens=2048,
            messages=history,
            thinking={"type": "enabled", "budget_tokens": 1024},
            extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"},
        )
    assert message.content[-1].type == "text"
    sent = fake.requests[-1].json
    assert sent["messages"] == history
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert sent["anthropic_beta"] == ["interleaved-thinking-2025-05-14"]
    assert fake.violations == []


def test_anthropic_client_to_a_model_that_is_not_claude(gateway: GatewayServer, fake: FakeBedrock) -> None:
    """Not Claude: the Anthropic request is translated to Converse."""
    fake.reset()
    fake.script(Reply(text="Nova here"))
    with anthropic.Anthropic(base_url=gateway.url, api_key="anything", max_retries=0) as sdk:
        message = sdk.messages.create(
            model="nova", max_tokens=64, messages=[{"role": "user", "content": "hello"}]
        )
    assert message.content[0].type == "text" and message.content[0].text == "Nova here"
    assert fake.requests[-1].path == "/model/amazon.nova-pro-v1:0/converse"
    assert fake.violations == []


def test_keyless_provider_uses_the_credential_chain(
    fake: FakeBedrock, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """No ``keys:``: the environment's credentials (session token included), through botocore's chain."""
    akid, secret, token = KEYS["session"].split(":")
    for name, value in {
        "AWS_ACCESS_KEY_ID": akid,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_SESSION_TOKEN": token,
        "AWS_CONFIG_FILE": str(tmp_path / "c"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "k"),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    config = (
        f"providers:\n  chain:\n    type: bedrock\n    base_url: {fake.origin}\n    options: {{region: us-east-1}}\n"
        f"models:\n  c:\n    deployments: [{{provider: chain, model: '{MODEL}'}}]\n"
    )
    fake.reset()
    with (
        GatewayServer(config, autoload=False, extra_plugins=(plugin,)) as gw,
        openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0) as sdk,
    ):
        answer = sdk.chat.completions.create(model="c", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "echo: hi"
    assert fake.requests[-1].headers["x-amz-security-token"] == token
    assert fake.violations == []


def test_an_inference_profile_arn_is_one_signed_segment(client: openai.OpenAI, fake: FakeBedrock) -> None:
    answer = client.chat.completions.create(model="profile-arn", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "echo: hi"
    received = fake.requests[-1]
    assert received.model == PROFILE_ARN
    assert received.path == f"/model/{PROFILE_ARN}/converse"  # decoded: the raw path had %2F


@pytest.mark.parametrize(("alias", "operation_input"), [("claude-main", "invokeModel"), ("nova", "converse")])
def test_anthropic_count_tokens(
    gateway: GatewayServer, fake: FakeBedrock, alias: str, operation_input: str
) -> None:
    """``/v1/messages/count_tokens`` through Bedrock's CountTokens: Claude counts the InvokeModel
    body the request would make, other models the Converse body."""
    fake.reset()
    with anthropic.Anthropic(base_url=gateway.url, api_key="anything", max_retries=0) as sdk:
        count = sdk.messages.count_tokens(
            model=alias, messages=[{"role": "user", "content": "count these four words"}]
        )
    assert count.input_tokens == 5
    received = fake.requests[-1]
    assert received.path.endswith("/count-tokens")
    assert list(received.json["input"]) == [operation_input]
    assert fake.violations == []
