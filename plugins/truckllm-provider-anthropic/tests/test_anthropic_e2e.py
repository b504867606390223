"""End to end: the official ``openai`` SDK → a real gateway (GatewayServer) → FakeAnthropic.

Every test checks that the fake found nothing wrong with what the gateway sent (``violations``).
Each failure scenario has its own provider entry and key, so that one test's cooldowns do not
leak into another's.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import truckllm_provider_anthropic as plugin

from truckllm_testing.fakes import FakeAnthropic, Fault, Reply, ToolCall
from truckllm_testing.server import GatewayServer

MODEL = "claude-sonnet-4-5-20250929"
SCENARIOS = ("main", "r429", "r529", "r401", "mid", "drop")
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME: Any = {"type": "function", "function": {"name": "get_time"}}


def _config(base_url: str) -> str:
    providers = []
    models = []
    for name in SCENARIOS:
        key = "bad-key" if name == "r401" else f"key-{name}"
        providers.append(
            f"  anth-{name}:\n    type: anthropic\n    base_url: {base_url}\n"
            f"    keys: [{{name: {name}, value: {key}}}]\n"
        )
        models.append(f"  claude-{name}:\n    deployments: [{{provider: anth-{name}, model: {MODEL}}}]\n")
    return (
        "routing:\n  retries: 0\n  stream_idle_timeout: 10s\n"
        "providers:\n" + "".join(providers) + "models:\n" + "".join(models)
    )


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    """The fake upstream, served from a thread for this module."""
    upstream = FakeAnthropic(keys=[f"key-{n}" for n in SCENARIOS if n != "r401"])
    with upstream.running():
        yield upstream


@pytest.fixture(scope="module")
def gateway(fake: FakeAnthropic) -> Iterator[GatewayServer]:
    """A real gateway whose aliases ``claude-<scenario>`` all point at the fake."""
    # only the kernel and this plugin: other installed plugins cannot disturb these tests
    with GatewayServer(_config(fake.base_url), autoload=False, extra_plugins=(plugin,)) as gw:
        yield gw


@pytest.fixture
def client(gateway: GatewayServer, fake: FakeAnthropic) -> Iterator[openai.OpenAI]:
    """An SDK client without retries; the fake starts clean and must end without violations."""
    fake.reset()
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key="anything", max_retries=0, timeout=20) as sdk:
        yield sdk
    assert fake.violations == []


def _last_body(fake: FakeAnthropic) -> dict[str, Any]:
    body: dict[str, Any] = fake.requests[-1].json
    return body


def test_e2e_chat(client: openai.OpenAI, fake: FakeAnthropic) -> None:
    reply = client.chat.completions.create(
        model="claude-main",
        messages=[
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "Hello gateway"},
            {"role": "developer", "content": "Answer in English."},
        ],
        temperature=1.6,
        top_p=0.8,
        stop=["###"],
        user="u-1",
        seed=3,
    )
    assert reply.choices[0].message.content == "echo: Hello gateway"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.model == MODEL and reply.id.startswith("chatcmpl-")
    assert (
        reply.usage is not None
        and reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    )
    sent = _last_body(fake)
    assert sent["system"] == "Be terse.\n\nAnswer in English."
    assert sent["temperature"] == 1.0 and "top_p" not in sent and sent["max_tokens"] == 4096
    assert fake.requests[-1].headers["x-api-key"] == "key-main"
    assert fake.requests[-1].headers["anthropic-version"] == "2023-06-01"


def test_e2e_stream_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="claude-main",
        messages=[{"role": "user", "content": "stream this answer please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: stream this answer please"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert (
        chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    )
    assert len({c.id for c in chunks}) == 1


def test_e2e_parallel_tool_calls_and_results_round_trip(client: openai.OpenAI, fake: FakeAnthropic) -> None:
    fake.script(Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"}), ToolCall("get_time", {})]))
    messages: list[Any] = [{"role": "user", "content": "Weather and time in Paris?"}]
    first = client.chat.completions.create(model="claude-main", messages=messages, tools=[WEATHER, TIME])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]  # type: ignore[union-attr]
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    assert calls[1].function.arguments == "{}"  # type: ignore[union-attr]
    messages.append(choice.message.model_dump(exclude_none=True))
    # results answered in reverse order, then a user remark: one user turn, results first
    messages.append({"role": "tool", "tool_call_id": calls[1].id, "content": "12:00"})
    messages.append({"role": "tool", "tool_call_id": calls[0].id, "content": ""})
    messages.append({"role": "user", "content": "Thanks!"})
    second = client.chat.completions.create(model="claude-main", messages=messages, tools=[WEATHER, TIME])
    assert (second.choices[0].message.content or "").endswith("Thanks!")
    sent = _last_body(fake)["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert [b.get("tool_use_id") for b in sent[2]["content"]] == [calls[0].id, calls[1].id, None]


def test_e2e_streamed_tool_calls(client: openai.OpenAI, fake: FakeAnthropic) -> None:
    fake.script(
        Reply(
            text="Checking.", tool_calls=[ToolCall("get_weather", {"city": "Rome"}), ToolCall("get_time", {})]
        )
    )
    stream = client.chat.completions.create(
        model="claude-main",
        messages=[{"role": "user", "content": "weather?"}],
        tools=[WEATHER, TIME],
        stream=True,
    )
    text = ""
    names: dict[int, str] = {}
    args: dict[int, str] = {}
    ids: dict[int, str] = {}
    finish = None
    for chunk in stream:
        delta = chunk.choices[0].delta
        text += delta.content or ""
        for call in delta.tool_calls or []:
            if call.id:
                ids[call.index] = call.id
            if call.function and call.function.name:
                names[call.index] = call.function.name
            if call.function and call.function.arguments:
                args[call.index] = args.get(call.index, "") + call.function.arguments
        finish = chunk.choices[0].finish_reason or finish
    assert text == "Checking." and finish == "tool_calls"
    assert names == {0: "get_weather", 1: "get_time"}
    assert json.loads(args[0]) == {"city": "Rome"} and json.loads(args[1]) == {}
    assert all(i.startswith("toolu_") for i in ids.values())


def test_e2e_thinking_round_trip(client: openai.OpenAI, fake: FakeAnthropic) -> None:
    fake.script(
        Reply(thinking="The user wants the weather.", tool_calls=[ToolCall("get_weather", {"city": "Oslo"})])
    )
    messages: list[Any] = [{"role": "user", "content": "Weather in Oslo?"}]
    first = client.chat.completions.create(
        model="claude-main", messages=messages, tools=[WEATHER], reasoning_effort="low", temperature=0.3
    )
    message: dict[str, Any] = first.choices[0].message.to_dict()
    assert message["reasoning_content"] == "The user wants the weather."
    assert message["thinking_blocks"][0]["signature"]
    sent = _last_body(fake)
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 1024} and "temperature" not in sent
    messages.append(message)
    messages.append({"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": "-3C"})
    second = client.chat.completions.create(
        model="claude-main", messages=messages, tools=[WEATHER], reasoning_effort="low"
    )
    assert second.choices[0].message.content
    assert _last_body(fake)["messages"][1]["content"][0] == message["thinking_blocks"][0]


def test_e2e_streamed_thinking(client: openai.OpenAI, fake: FakeAnthropic) -> None:
    fake.script(Reply(text="Done.", thinking="Let me reason about it."))
    chunks = list(
        client.chat.completions.create(
            model="claude-main",
            messages=[{"role": "user", "content": "think"}],
            reasoning_effort="medium",
            stream=True,
        )
    )
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content", "") for c in chunks)
    assert reasoning == "Let me reason about it."
    blocks = [b for c in chunks for b in (c.choices[0].delta.model_extra or {}).get("thinking_blocks", [])]
    assert blocks and blocks[0]["thinking"] == reasoning and blocks[0]["signature"]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Done."


def test_e2e_image_input(client: openai.OpenAI, fake: FakeAnthropic) -> None:
    data_uri = "data:image/png;base64," + base64.b64encode(PNG).decode()
    reply = client.chat.completions.create(
        model="claude-main",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in these?"},
                    {"type": "image_url", "image_url": {"url": data_uri}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                ],
            }
        ],
    )
    assert reply.choices[0].message.content == "echo: What is in these?"
    blocks = _last_body(fake)["messages"][0]["content"]
    assert blocks[1]["source"]["type"] == "base64" and blocks[2]["source"]["type"] == "url"


def test_e2e_unsupported_image_type_is_a_400(client: openai.OpenAI, fake: FakeAnthropic) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="claude-main",
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "data:image/tiff;base64,SUkq"}}],
                }
            ],
        )
    assert "image/tiff" in str(info.value)
    assert fake.requests == []  # refused before anything was sent


def test_e2e_usage_with_cache(client: openai.OpenAI, fake: FakeAnthropic) -> None:
    fake.script(
        Reply(
            text="ok",
            prompt_tokens=1000,
            cached_tokens=800,
            cache_write_tokens=150,
            completion_tokens=20,
            reasoning_tokens=0,
        )
    )
    reply = client.chat.completions.create(model="claude-main", messages=[{"role": "user", "content": "x"}])
    usage = reply.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (1000, 20, 1020)
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 800
    assert (usage.prompt_tokens_details.model_extra or {}).get("cache_write_tokens") == 150 or getattr(
        usage.prompt_tokens_details, "cache_write_tokens", None
    ) == 150


def test_e2e_json_mode(client: openai.OpenAI, fake: FakeAnthropic) -> None:
    fmt: Any = {
        "type": "json_schema",
        "json_schema": {
            "name": "city",
            "schema": {"type": "object", "properties": {"name": {"type": "string"}}},
        },
    }
    fake.script(Reply(tool_calls=[ToolCall("json_tool_call", {"name": "Paris"})]))
    reply = client.chat.completions.create(
        model="claude-main", messages=[{"role": "user", "content": "a city"}], response_format=fmt
    )
    assert json.loads(reply.choices[0].message.content or "") == {"name": "Paris"}
    assert reply.choices[0].message.tool_calls is None and reply.choices[0].finish_reason == "stop"
    assert _last_body(fake)["tool_choice"] == {"type": "tool", "name": "json_tool_call"}
    fake.script(Reply(tool_calls=[ToolCall("json_tool_call", {"name": "Rome"})]))
    chunks = list(
        client.chat.completions.create(
            model="claude-main",
            messages=[{"role": "user", "content": "a city"}],
            response_format=fmt,
            stream=True,
        )
    )
    assert json.loads("".join(c.choices[0].delta.content or "" for c in chunks)) == {"name": "Rome"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["stop"]


def test_e2e_legacy_completions(client: openai.OpenAI) -> None:
    reply = client.completions.create(model="claude-main", prompt="Once upon a time", max_tokens=50)
    assert reply.object == "text_completion" and reply.choices[0].text == "echo: Once upon a time"
    chunks = list(client.completions.create(model="claude-main", prompt="Once upon a time", stream=True))
    assert "".join(c.choices[0].text for c in chunks) == "echo: Once upon a time"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_e2e_429_maps_to_rate_limit_with_retry_after(client: openai.OpenAI, fake: FakeAnthropic) -> None:
    fake.inject(Fault(status=429, retry_after=7, key="key-r429"))
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="claude-r429", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "7"
    assert info.value.code == "rate_limit_exceeded"


def test_e2e_529_maps_to_503_with_retry_after(client: openai.OpenAI, fake: FakeAnthropic) -> None:
    fake.inject(Fault(status=529, retry_after=2, key="key-r529"))
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="claude-r529", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 503
    assert info.value.response.headers["retry-after"] == "2"
    assert "Overloaded" in info.value.message


def test_e2e_401_is_our_key_not_the_clients(client: openai.OpenAI, fake: FakeAnthropic) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="claude-r401", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 502  # the provider refused the gateway's key
    assert "invalid x-api-key" in info.value.message
    assert fake.requests[-1].status == 401


def test_e2e_mid_stream_error_raises_api_error(client: openai.OpenAI, fake: FakeAnthropic) -> None:
    fake.inject(Fault(error_after=4, chunk_delay=0.05, key="key-mid"))
    received: list[Any] = []
    with pytest.raises(openai.APIError) as info:
        for chunk in client.chat.completions.create(
            model="claude-mid", messages=[{"role": "user", "content": "long answer please"}], stream=True
        ):
            received.append(chunk)
    assert received and received[0].choices[0].delta.role == "assistant"
    assert not any(c.choices and c.choices[0].finish_reason for c in received)
    assert "Overloaded" in str(info.value)


def test_e2e_dropped_connection_is_an_error_not_a_success(client: openai.OpenAI, fake: FakeAnthropic) -> None:
    fake.inject(Fault(drop_after=5, chunk_delay=0.05, key="key-drop"))
    received: list[Any] = []
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(
            model="claude-drop", messages=[{"role": "user", "content": "long answer please"}], stream=True
        ):
            received.append(chunk)
    assert received  # the stream had started: the error came mid-stream
    assert not any(c.choices and c.choices[0].finish_reason for c in received)
    assert fake.requests[-1].dropped


def test_e2e_cache_control_reaches_anthropic_and_cached_usage_comes_back(
    client: openai.OpenAI, fake: FakeAnthropic
) -> None:
    fake.script(Reply(text="ok", prompt_tokens=1200, cached_tokens=1000, cache_write_tokens=150))
    mark = {"type": "ephemeral"}
    tool: Any = {**WEATHER, "cache_control": mark}
    parts: Any = [
        {"type": "text", "text": "A long shared prefix.", "cache_control": mark},
        {"type": "text", "text": "Q?"},
    ]
    system: Any = {"role": "system", "content": [{"type": "text", "text": "Rules.", "cache_control": mark}]}
    reply = client.chat.completions.create(
        model="claude-main", messages=[system, {"role": "user", "content": parts}], tools=[TIME, tool]
    )
    sent = _last_body(fake)
    assert sent["system"] == [{"type": "text", "text": "Rules.", "cache_control": mark}]
    assert sent["messages"][0]["content"][0]["cache_control"] == mark
    assert "cache_control" not in sent["messages"][0]["content"][1]
    assert [t["name"] for t in sent["tools"]] == ["get_time", "get_weather"]
    assert sent["tools"][1]["cache_control"] == mark
    usage = reply.usage
    assert usage is not None and usage.prompt_tokens == 1200
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 1000
