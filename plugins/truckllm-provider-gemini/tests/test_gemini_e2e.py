"""End to end: the official ``openai`` SDK → a real gateway (GatewayServer) → the fake Gemini.

Every test checks ``fake.violations == []``: what the gateway sent was a valid Gemini request.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from truckllm_provider_gemini.ids import decode_call_id

from truckllm_testing.fakes import FakeGemini, Fault, Reply, ToolCall
from truckllm_testing.server import GatewayServer

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
USER = {"role": "user", "content": "what is the weather in Paris today"}
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather",
            "parameters": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "unit": {"type": ["string", "null"], "enum": ["c", "f", None]},
                },
                "required": ["city"],
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
    },
]


def config(base_url: str, keys: str = "[{name: k1, value: test-key}]") -> str:
    return f"""
providers:
  gem:
    type: gemini
    base_url: {base_url}
    keys: {keys}
models:
  gemini: {{strategy: first, deployments: [{{provider: gem, model: gemini-2.5-flash}}]}}
  gemini3: {{strategy: first, deployments: [{{provider: gem, model: gemini-3-pro-preview}}]}}
  embed: {{strategy: first, deployments: [{{provider: gem, model: gemini-embedding-001}}]}}
routing: {{retries: 0, cooldown: {{failures: 1000}}}}
"""


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeGemini]:
    server = FakeGemini(keys=["test-key"])
    with server.running():
        yield server


@pytest.fixture(scope="module")
def gateway(fake: FakeGemini) -> Iterator[GatewayServer]:
    with GatewayServer(config(fake.base_url)) as gw:
        yield gw


@pytest.fixture
def client(fake: FakeGemini, gateway: GatewayServer) -> Iterator[Any]:
    """An SDK client (typed ``Any``: the tests send raw dicts the SDK's TypedDicts do not describe)."""
    fake.reset()
    fake.require_thought_signature = False
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", max_retries=0) as sdk:
        yield sdk
    assert fake.pending == 0


def sdk_for(gw: GatewayServer) -> Any:
    """An SDK client of a gateway, without retries."""
    return openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0)


def sent(fake: FakeGemini, n: int = -1) -> dict[str, Any]:
    body: dict[str, Any] = fake.requests[n].json
    return body


def collect_stream(stream: Any) -> tuple[str, dict[int, dict[str, Any]], list[str], Any, list[Any]]:
    """(content, tool calls by index, finish reasons, usage, chunks) of an SDK stream."""
    content, finishes, usage, chunks = "", [], None, []
    calls: dict[int, dict[str, Any]] = {}
    for chunk in stream:
        chunks.append(chunk)
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            delta = choice.delta
            content += delta.content or ""
            for call in delta.tool_calls or []:
                slot = calls.setdefault(call.index, {"id": None, "name": "", "arguments": ""})
                slot["id"] = call.id or slot["id"]
                slot["name"] += call.function.name or ""
                slot["arguments"] += call.function.arguments or ""
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    return content, calls, finishes, usage, chunks


def test_chat(client: Any, fake: FakeGemini) -> None:
    answer = client.chat.completions.create(
        model="gemini", messages=[{"role": "system", "content": "Be brief."}, USER], temperature=0
    )
    choice = answer.choices[0]
    assert choice.message.content == "echo: " + USER["content"]
    assert choice.finish_reason == "stop"
    assert answer.model == "gemini-2.5-flash"
    assert answer.usage is not None and answer.usage.prompt_tokens > 0
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    body = sent(fake)
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["generationConfig"] == {"temperature": 0.0}
    assert fake.requests[-1].headers["x-goog-api-key"] == "test-key"
    assert fake.violations == []


def test_stream_with_usage(client: Any, fake: FakeGemini) -> None:
    stream = client.chat.completions.create(
        model="gemini", messages=[USER], stream=True, stream_options={"include_usage": True}
    )
    content, calls, finishes, usage, chunks = collect_stream(stream)
    assert content == "echo: " + USER["content"]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert finishes == ["stop"] and calls == {}
    assert usage is not None and usage.completion_tokens > 0
    assert len({c.id for c in chunks}) == 1
    assert fake.requests[-1].query == {"alt": "sse"}
    assert fake.violations == []


def test_tool_calls_and_parallel_results_in_one_content(client: Any, fake: FakeGemini) -> None:
    fake.script(Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"}), ToolCall("get_time", {})]))
    answer = client.chat.completions.create(model="gemini", messages=[USER], tools=TOOLS, tool_choice="auto")
    message = answer.choices[0].message
    assert answer.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls is not None and len(message.tool_calls) == 2
    first, second = message.tool_calls
    assert first.function.name == "get_weather" and json.loads(first.function.arguments) == {"city": "Paris"}
    assert second.function.name == "get_time" and second.function.arguments == "{}"
    assert first.id != second.id and first.id.startswith("call_")
    followup = [
        USER,
        message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": second.id, "content": "12:00"},
        {"role": "tool", "tool_call_id": first.id, "content": json.dumps({"temp_c": 21})},
    ]
    final = client.chat.completions.create(model="gemini", messages=followup, tools=TOOLS)
    assert final.choices[0].finish_reason == "stop"
    contents = sent(fake)["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    answers = [p["functionResponse"] for p in contents[2]["parts"]]
    assert [a["name"] for a in answers] == ["get_weather", "get_time"]
    assert answers[0]["response"] == {"output": {"temp_c": 21}}
    assert contents[1]["parts"][0]["thoughtSignature"]  # the fake signs the first call
    assert fake.violations == []


def test_tool_calls_streamed(client: Any, fake: FakeGemini) -> None:
    fake.script(
        Reply(
            text="Let me look.",
            tool_calls=[ToolCall("get_weather", {"city": "Paris"}), ToolCall("get_time", {})],
        )
    )
    stream = client.chat.completions.create(
        model="gemini", messages=[USER], tools=TOOLS, stream=True, stream_options={"include_usage": True}
    )
    content, calls, finishes, usage, _ = collect_stream(stream)
    assert content == "Let me look."
    assert finishes == ["tool_calls"]
    assert [calls[i]["name"] for i in sorted(calls)] == ["get_weather", "get_time"]
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"} and calls[1]["arguments"] == "{}"
    assert usage is not None
    history = [
        USER,
        {
            "role": "assistant",
            "content": content,
            "tool_calls": [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"]},
                }
                for _, c in sorted(calls.items())
            ],
        },
        *({"role": "tool", "tool_call_id": c["id"], "content": "ok"} for c in calls.values()),
    ]
    again = client.chat.completions.create(model="gemini", messages=history, tools=TOOLS, stream=True)
    assert collect_stream(again)[2] == ["stop"]
    assert len(sent(fake)["contents"][2]["parts"]) == 2
    assert fake.violations == []


def test_thought_signature_round_trip(client: Any, fake: FakeGemini) -> None:
    fake.require_thought_signature = True  # Gemini 3: history without the signature is rejected
    fake.script(Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]))
    answer = client.chat.completions.create(model="gemini3", messages=[USER], tools=TOOLS)
    call = answer.choices[0].message.tool_calls[0]
    signature = decode_call_id(call.id).signature
    assert signature is not None and "__ts_" in call.id
    history = [
        USER,
        answer.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    final = client.chat.completions.create(model="gemini3", messages=history, tools=TOOLS)
    assert final.choices[0].message.content
    assert sent(fake)["contents"][1]["parts"][0]["thoughtSignature"] == signature
    assert fake.violations == []
    # control: the same history with an id that lost its signature is refused by "Gemini 3"
    history[1]["tool_calls"][0]["id"] = history[2]["tool_call_id"] = "call_lost_the_signature"
    with pytest.raises(openai.BadRequestError, match="thought_signature"):
        client.chat.completions.create(model="gemini3", messages=history, tools=TOOLS)
    fake.violations.clear()


def test_image_input(client: Any, fake: FakeGemini) -> None:
    content = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG, "detail": "low"}},
    ]
    answer = client.chat.completions.create(model="gemini", messages=[{"role": "user", "content": content}])
    assert answer.choices[0].message.content
    assert sent(fake)["contents"][0]["parts"][1] == {"inlineData": {"mimeType": "image/png", "data": PNG}}
    assert fake.violations == []
    with pytest.raises(openai.BadRequestError, match="data: URI"):
        client.chat.completions.create(
            model="gemini",
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}],
                }
            ],
        )


def test_usage_details_and_reasoning(client: Any, fake: FakeGemini) -> None:
    fake.script(
        Reply(
            text="Paris.",
            thinking="Let me think about it",
            prompt_tokens=20,
            completion_tokens=9,
            reasoning_tokens=4,
            cached_tokens=5,
        )
    )
    answer = client.chat.completions.create(model="gemini", messages=[USER], reasoning_effort="low")
    usage = answer.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (20, 9, 29)
    assert usage.prompt_tokens_details.cached_tokens == 5
    assert usage.completion_tokens_details.reasoning_tokens == 4
    message = answer.choices[0].message
    assert message.content == "Paris."
    assert (message.model_extra or {}).get("reasoning_content") == "Let me think about it"
    assert sent(fake)["generationConfig"]["thinkingConfig"] == {
        "thinkingBudget": 1024,
        "includeThoughts": True,
    }
    assert fake.violations == []


def test_embeddings(client: Any, fake: FakeGemini) -> None:
    floats = client.embeddings.create(model="embed", input=["hello world", "bonjour"], dimensions=4)
    assert [d.index for d in floats.data] == [0, 1]
    assert all(len(d.embedding) == 4 for d in floats.data)
    assert floats.usage.prompt_tokens == 0
    request = sent(fake)
    assert len(request["requests"]) == 2 and request["requests"][0]["outputDimensionality"] == 4
    raw = client.embeddings.with_raw_response.create(
        model="embed", input="hello world", dimensions=4, encoding_format="base64"
    )
    encoded = json.loads(raw.http_response.text)["data"][0]["embedding"]
    values = struct.unpack("<4f", base64.b64decode(encoded))
    assert values == pytest.approx(floats.data[0].embedding)
    assert fake.violations == []
    with pytest.raises(openai.BadRequestError, match="at most 100"):
        client.embeddings.create(model="embed", input=[f"t{i}" for i in range(101)])


def test_legacy_completions(client: Any, fake: FakeGemini) -> None:
    answer = client.completions.create(model="gemini", prompt="Once upon a time", max_tokens=50)
    assert answer.object == "text_completion"
    assert answer.choices[0].text == "echo: Once upon a time"
    stream = client.completions.create(model="gemini", prompt="Once upon a time", stream=True)
    assert "".join(c.choices[0].text for c in stream if c.choices) == "echo: Once upon a time"
    assert fake.violations == []


def test_blocked_prompt(client: Any, fake: FakeGemini) -> None:
    fake.script(Reply(blocked=True, times=2))
    answer = client.chat.completions.create(model="gemini", messages=[USER])
    assert answer.choices[0].finish_reason == "content_filter"
    assert answer.choices[0].message.content is None
    _, _, finishes, _, _ = collect_stream(
        client.chat.completions.create(model="gemini", messages=[USER], stream=True)
    )
    assert finishes == ["content_filter"]
    assert fake.violations == []


def test_structured_output(client: Any, fake: FakeGemini) -> None:
    schema = {
        "$defs": {
            "Day": {
                "type": "object",
                "properties": {"t": {"anyOf": [{"type": "number"}, {"type": "null"}]}},
                "required": ["t"],
                "additionalProperties": False,
            }
        },
        "type": "object",
        "properties": {
            "city": {"const": "Paris"},
            "days": {"type": "array", "items": {"$ref": "#/$defs/Day"}},
        },
        "required": ["city", "days"],
        "additionalProperties": False,
    }
    client.chat.completions.create(
        model="gemini",
        messages=[USER],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "forecast", "schema": schema, "strict": True},
        },
    )
    config = sent(fake)["generationConfig"]
    assert config["responseMimeType"] == "application/json" and config["responseSchema"]["type"] == "OBJECT"
    assert fake.violations == []


def test_mid_stream_raw_error_raises_api_error(client: Any, fake: FakeGemini) -> None:
    fake.inject(Fault(error_after=1))
    received = []
    with pytest.raises(openai.APIError, match="overloaded"):
        for chunk in client.chat.completions.create(model="gemini", messages=[USER], stream=True):
            received.append(chunk)
    assert received  # content was streamed before the error
    assert all(c.choices[0].finish_reason is None for c in received if c.choices)


def test_error_before_first_byte_is_an_http_error(client: Any, fake: FakeGemini) -> None:
    fake.inject(Fault(error_after=0))
    with pytest.raises(openai.InternalServerError) as info:
        list(client.chat.completions.create(model="gemini", messages=[USER], stream=True))
    assert info.value.status_code == 503


def test_dropped_connection_raises(client: Any, fake: FakeGemini) -> None:
    fake.inject(Fault(drop_after=1))
    received = []
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(model="gemini", messages=[USER], stream=True):
            received.append(chunk)
    assert received
    assert all(c.choices[0].finish_reason is None for c in received if c.choices)


def test_upstream_errors(client: Any, fake: FakeGemini) -> None:
    fake.inject(Fault(kind="overloaded"))
    with pytest.raises(openai.InternalServerError) as overloaded:
        client.chat.completions.create(model="gemini", messages=[USER])
    assert overloaded.value.status_code == 503
    fake.inject(Fault(kind="context_length"))
    with pytest.raises(openai.BadRequestError) as too_long:
        client.chat.completions.create(model="gemini", messages=[USER])
    assert too_long.value.code == "context_length_exceeded"
    fake.inject(Fault(kind="not_found"))
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gemini", messages=[USER])


def test_rate_limit_retry_after(fake: FakeGemini) -> None:
    fake.reset()
    with (
        GatewayServer(config(fake.base_url)) as gw,
        sdk_for(gw) as sdk,
    ):
        fake.inject(Fault(kind="rate_limit", retry_after=7))
        with pytest.raises(openai.RateLimitError) as info:
            sdk.chat.completions.create(model="gemini", messages=[USER])
        assert info.value.response.headers["retry-after"] == "7"
        assert info.value.code == "rate_limit_exceeded"
    fake.reset()
    with (
        GatewayServer(config(fake.base_url)) as gw,
        sdk_for(gw) as sdk,
    ):
        fake.inject(Fault(kind="quota_per_day"))  # RetryInfo says 1s, but a daily quota is not back in 1s
        with pytest.raises(openai.RateLimitError) as info:
            sdk.chat.completions.create(model="gemini", messages=[USER])
        # classified as quota: no retry-after (it is not back in seconds), OpenAI's insufficient_quota
        assert info.value.code == "insufficient_quota"
        assert "retry-after" not in info.value.response.headers
    assert fake.violations == []


def test_bad_key_fails_over_to_the_next_key(fake: FakeGemini) -> None:
    fake.reset()
    keys = "[{name: stale, value: not-a-key}, {name: good, value: test-key}]"
    with (
        GatewayServer(config(fake.base_url, keys)) as gw,
        sdk_for(gw) as sdk,
    ):
        answer = sdk.chat.completions.create(model="gemini", messages=[USER])
        assert answer.choices[0].message.content
        assert [r.status for r in fake.requests] == [400, 200]
        assert [r.api_key for r in fake.requests] == ["not-a-key", "test-key"]
        sdk.chat.completions.create(model="gemini", messages=[USER])  # the bad key is now disabled
        assert [r.api_key for r in fake.requests][2:] == ["test-key"]
    fake.reset()
    with (
        GatewayServer(config(fake.base_url, "[{name: stale, value: not-a-key}]")) as gw,
        sdk_for(gw) as sdk,
    ):
        with pytest.raises(openai.APIStatusError) as info:
            sdk.chat.completions.create(model="gemini", messages=[USER])
        assert info.value.status_code == 502  # our key was refused: not the client's fault
        assert info.value.code == "invalid_api_key"
    assert fake.violations == []
