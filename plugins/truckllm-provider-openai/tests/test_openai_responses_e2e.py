"""End to end, ``api: responses``: the official ``openai`` SDK's chat client → a real gateway
(GatewayServer, loopback) → FakeOpenAI's ``/v1/responses``, which validates every request as
OpenAI does (its violations must stay empty) and records what it received.

Aliases: ``resp`` is ``gpt-4o`` on a provider with ``api: responses``; ``pro`` is ``o3-pro`` on a
provider with default options (a Responses-only model: ``responses_models``); ``chat`` is
``gpt-4o`` on that same provider (chat completions, untouched).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import truckllm_provider_openai as plugin

from truckllm_testing.fakes import FakeOpenAI, Fault, Reply, ToolCall
from truckllm_testing.server import GatewayServer

KEYS = ("key-resp", "key-default", "key-faults")
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
    return (
        "routing:\n  retries: 0\n  stream_idle_timeout: 10s\n"
        "providers:\n"
        f"  oa-resp:\n    type: openai\n    base_url: {base_url}\n    options: {{api: responses}}\n"
        "    keys: [{name: main, value: key-resp}]\n"
        f"  oa-default:\n    type: openai\n    base_url: {base_url}\n"
        "    keys: [{name: main, value: key-default}]\n"
        f"  oa-faults:\n    type: openai\n    base_url: {base_url}\n    options: {{api: responses}}\n"
        "    keys: [{name: main, value: key-faults}]\n"
        "models:\n"
        "  resp:\n    deployments: [{provider: oa-resp, model: gpt-4o}]\n"
        "  pro:\n    deployments: [{provider: oa-default, model: o3-pro}]\n"
        "  chat:\n    deployments: [{provider: oa-default, model: gpt-4o}]\n"
        "  faults:\n    deployments: [{provider: oa-faults, model: gpt-4o}]\n"
    )


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    """The fake upstream, served from a thread for this module."""
    upstream = FakeOpenAI(keys=list(KEYS))
    with upstream.running():
        yield upstream


@pytest.fixture(scope="module")
def gateway(fake: FakeOpenAI) -> Iterator[GatewayServer]:
    """A real gateway with only the kernel and this plugin."""
    with GatewayServer(_config(fake.base_url), autoload=False, extra_plugins=(plugin,)) as gw:
        yield gw


@pytest.fixture
def client(gateway: GatewayServer, fake: FakeOpenAI) -> Iterator[openai.OpenAI]:
    """An SDK client without retries; the fake starts clean and must end without violations."""
    fake.reset()
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key="anything", max_retries=0, timeout=20) as sdk:
        yield sdk
    assert fake.violations == []


def _sent(fake: FakeOpenAI) -> dict[str, Any]:
    request = fake.requests[-1]
    assert request.path == "/v1/responses"
    body: dict[str, Any] = request.json
    return body


def test_a_chat_request_is_served_through_responses(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    reply = client.chat.completions.create(
        model="resp",
        messages=[
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "Hello gateway"},
        ],
        max_tokens=50,
        temperature=0.5,
    )
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    choice = reply.choices[0]
    assert choice.message.content == "echo: Hello gateway" and choice.finish_reason == "stop"
    assert reply.usage is not None and reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    sent = _sent(fake)
    assert sent["model"] == "gpt-4o" and sent["instructions"] == "Be terse."
    assert sent["input"] == [{"type": "message", "role": "user", "content": "Hello gateway"}]
    assert sent["max_output_tokens"] == 50 and sent["store"] is False and "stream" not in sent
    assert fake.requests[-1].api_key == "key-resp"


def test_a_responses_only_model_goes_to_responses_and_others_stay_on_chat(
    client: openai.OpenAI, fake: FakeOpenAI
) -> None:
    assert (
        client.chat.completions.create(
            model="pro", messages=[{"role": "user", "content": "hi"}], reasoning_effort="high"
        )
        .choices[0]
        .message.content
        == "echo: hi"
    )
    assert _sent(fake)["model"] == "o3-pro" and _sent(fake)["reasoning"] == {"effort": "high"}
    assert client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    assert fake.requests[-1].path == "/v1/chat/completions"


def test_a_stream_comes_back_as_chat_chunks_with_usage(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    stream = client.chat.completions.create(
        model="resp",
        messages=[{"role": "user", "content": "stream this answer please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "echo: stream this answer please"
    )
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "stop"
    ]
    assert (
        chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    )
    assert len({c.id for c in chunks}) == 1 and all(c.object == "chat.completion.chunk" for c in chunks)
    assert _sent(fake)["stream"] is True and fake.requests[-1].stream


def test_tool_calls_and_their_results_round_trip(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    fake.script(Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"}), ToolCall("get_time", {})]))
    messages: list[Any] = [{"role": "user", "content": "Weather and time in Paris?"}]
    first = client.chat.completions.create(model="resp", messages=messages, tools=[WEATHER, TIME])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls is not None
    calls = choice.message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]  # type: ignore[union-attr]
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    tools = _sent(fake)["tools"]
    assert tools[0]["name"] == "get_weather" and tools[0]["strict"] is False and "function" not in tools[0]
    messages.append(choice.message.to_dict())
    messages += [{"role": "tool", "tool_call_id": c.id, "content": f"result {c.id}"} for c in calls]
    second = client.chat.completions.create(model="resp", messages=messages, tools=[WEATHER, TIME])
    assert second.choices[0].finish_reason == "stop"
    items = _sent(fake)["input"]
    assert [i["type"] for i in items] == [
        "message",
        "function_call",
        "function_call",
        "function_call_output",
        "function_call_output",
    ]
    assert [i["call_id"] for i in items[1:3]] == [c.id for c in calls] == [i["call_id"] for i in items[3:]]


def test_streamed_tool_calls(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    fake.script(
        Reply(text="Checking.", tool_calls=[ToolCall("get_weather", {"city": "Rome"}), ToolCall("get_time")])
    )
    stream = client.chat.completions.create(
        model="resp",
        messages=[{"role": "user", "content": "weather?"}],
        tools=[WEATHER, TIME],
        tool_choice="required",
        stream=True,
    )
    text, names, args, ids, finish = "", {}, {}, {}, None
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
    assert json.loads(args[0]) == {"city": "Rome"} and json.loads(args.get(1) or "{}") == {}
    assert len(set(ids.values())) == 2
    assert _sent(fake)["tool_choice"] == "required"


def test_structured_output_and_reasoning(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    fake.script(Reply(text='{"name":"Ada"}', thinking="A person is asked for.", reasoning_tokens=7))
    reply = client.chat.completions.create(
        model="pro",
        messages=[{"role": "user", "content": "A person"}],
        response_format={
            "type": "json_schema",
            "json_schema": {
                "name": "person",
                "schema": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}},
                    "required": ["name"],
                },
                "strict": True,
            },
        },
        reasoning_effort="low",
        max_completion_tokens=500,
    )
    assert json.loads(reply.choices[0].message.content or "") == {"name": "Ada"}
    assert reply.usage is not None and reply.usage.completion_tokens_details is not None
    assert reply.usage.completion_tokens_details.reasoning_tokens == 7
    sent = _sent(fake)
    assert sent["text"]["format"]["type"] == "json_schema" and sent["text"]["format"]["name"] == "person"
    assert sent["max_output_tokens"] == 500


def test_an_answer_cut_at_max_tokens_finishes_with_length(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    reply = client.chat.completions.create(
        model="resp", messages=[{"role": "user", "content": " ".join(["word"] * 40)}], max_tokens=16
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 16
    assert _sent(fake)["max_output_tokens"] == 16


def test_a_chat_field_the_responses_api_lacks_is_a_400_naming_it(
    client: openai.OpenAI, fake: FakeOpenAI
) -> None:
    for extra, param in (({"n": 2}, "n"), ({"logprobs": True}, "logprobs"), ({"stop": ["x"]}, "stop")):
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(
                model="resp", messages=[{"role": "user", "content": "hi"}], **extra
            )
        assert refused.value.param == param and "Responses API" in refused.value.message
    assert fake.requests == []


def test_a_mid_stream_failure_ends_the_stream_with_an_error(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    # events spaced out, so that the first ones reach the client before the failure
    fake.inject(Fault(error_after=7, chunk_delay=0.02, key="key-faults"))
    stream = client.chat.completions.create(
        model="faults", messages=[{"role": "user", "content": "a long enough answer to stream"}], stream=True
    )
    received = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            received.append(chunk)
    assert received and received[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in received if c.choices)  # text came first


def test_an_upstream_error_before_the_stream_reaches_the_client_as_its_status(
    client: openai.OpenAI, fake: FakeOpenAI
) -> None:
    fake.inject(Fault(status=400, kind="bad_request", key="key-faults"))
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="faults", messages=[{"role": "user", "content": "hi"}], stream=True
        )
