"""End to end: the official ``anthropic`` SDK → a real gateway (GatewayServer) → each fake upstream.

- ``claude*`` aliases: FakeAnthropic, pass-through (the body reaches the fake unchanged but for
  ``model``).
- ``gpt*`` aliases: FakeOpenAI, translated both ways.
- ``gem``: FakeGemini, translated to OpenAI's form here and to Gemini's by its provider plugin.

Every test ends with ``violations == []`` on every fake: what the gateway sent upstream was valid.
The provider plugins are other distributions: a case is skipped when its plugin is not installed.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import anthropic
import httpx2 as httpx
import msgspec
import pytest
import truckllm_dialect_anthropic as dialect_plugin

from truckllm import hookimpl
from truckllm.types import (
    ChatRequest,
    Provider,
    ProviderResult,
    ProviderSpec,
    UpstreamRequest,
    UpstreamResponse,
)
from truckllm_testing.fakes import (
    FakeAnthropic,
    FakeGemini,
    FakeOpenAI,
    Fault,
    Reply,
    ToolCall,
    thinking_signature,
)
from truckllm_testing.server import GatewayServer

CLAUDE = "claude-sonnet-4-5-20250929"
KEY = "team-secret"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
WEATHER: Any = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
TIME: Any = {"name": "get_time", "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}}}
CALLS = [ToolCall("get_weather", {"city": "Paris"}), ToolCall("get_time", {"tz": "Europe/Paris"})]


def _plugin(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


PROVIDERS = {
    "anthropic": _plugin("truckllm_provider_anthropic"),
    "openai": _plugin("truckllm_provider_openai"),
    "gemini": _plugin("truckllm_provider_gemini"),
}
# alias → the provider plugin it needs
ALIASES = {
    "claude": "anthropic",
    CLAUDE: "anthropic",
    "claude-faults": "anthropic",
    "gpt": "openai",
    "gpt-faults": "openai",
    "gem": "gemini",
}


class Counter:
    """A throwaway provider that lists ``count_tokens``: answers how many messages ``typed`` has."""

    __name__ = "throwaway-counter"

    @hookimpl
    def register_providers(self, register: Callable[[ProviderSpec], None]) -> None:
        register(
            ProviderSpec(type="counter", endpoints=frozenset({"chat", "count_tokens"}), needs_keys=False)
        )

    @hookimpl
    def transform_request(
        self, provider: Provider, model: str, request: ChatRequest, api_key: str
    ) -> UpstreamRequest | None:
        if provider.type != "counter":
            return None
        typed: Any = request.typed
        body = msgspec.json.encode({"prompt_tokens": 100 + len(typed.messages)})

        async def answer() -> UpstreamResponse:
            return UpstreamResponse(status=200, body=body)

        return UpstreamRequest(url="counter://local", local=answer)

    @hookimpl
    def transform_response(
        self, provider: Provider, request: ChatRequest, response: UpstreamResponse
    ) -> ProviderResult | None:
        return ProviderResult(body=response.body) if provider.type == "counter" else None


def _config(anth: FakeAnthropic, oai: FakeOpenAI, gem: FakeGemini) -> str:
    return f"""
keys: [{{name: team, value: {KEY}}}]
routing: {{retries: 0, cooldown: {{failures: 1000}}}}
providers:
  ant: {{type: anthropic, base_url: {anth.base_url}, keys: [{{name: a, value: ak}}]}}
  oai: {{type: openai, base_url: {oai.base_url}, keys: [{{name: o, value: ok}}]}}
  gem: {{type: gemini, base_url: {gem.base_url}, keys: [{{name: g, value: gk}}]}}
  ant-faults: {{type: anthropic, base_url: {anth.base_url}, keys: [{{name: af, value: ak}}]}}
  oai-faults: {{type: openai, base_url: {oai.base_url}, keys: [{{name: of, value: ok}}]}}
  cnt: {{type: counter}}
models:
  claude: {{deployments: [{{provider: ant, model: {CLAUDE}}}]}}
  {CLAUDE}: {{deployments: [{{provider: ant, model: {CLAUDE}}}]}}
  gpt: {{deployments: [{{provider: oai, model: gpt-4o}}]}}
  gem: {{deployments: [{{provider: gem, model: gemini-2.5-flash}}]}}
  claude-faults: {{deployments: [{{provider: ant-faults, model: {CLAUDE}}}]}}
  gpt-faults: {{deployments: [{{provider: oai-faults, model: gpt-4o}}]}}
  counted: {{deployments: [{{provider: cnt, model: words}}]}}
"""


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeAnthropic, FakeOpenAI, FakeGemini]]:
    """The three fake upstreams, served from threads for this module."""
    anth, oai, gem = FakeAnthropic(keys=["ak"]), FakeOpenAI(keys=["ok"]), FakeGemini(keys=["gk"])
    with anth.running(), oai.running(), gem.running():
        yield anth, oai, gem


@pytest.fixture(scope="module")
def gateway(fakes: tuple[FakeAnthropic, FakeOpenAI, FakeGemini]) -> Iterator[GatewayServer]:
    """A real gateway with this dialect, the installed provider plugins and the counter."""
    plugins = (dialect_plugin, Counter(), *(p for p in PROVIDERS.values() if p is not None))
    with GatewayServer(_config(*fakes), autoload=False, extra_plugins=plugins) as gw:
        yield gw


@pytest.fixture
def client(
    gateway: GatewayServer, fakes: tuple[FakeAnthropic, FakeOpenAI, FakeGemini]
) -> Iterator[anthropic.Anthropic]:
    """An SDK client without retries; every fake starts clean and must end without violations."""
    for fake in fakes:
        fake.reset()
    with anthropic.Anthropic(base_url=gateway.url, api_key=KEY, max_retries=0, timeout=20) as sdk:
        yield sdk
    for fake in fakes:
        assert fake.violations == []


def _need(alias: str) -> None:
    if PROVIDERS[ALIASES[alias]] is None:
        pytest.skip(f"truckllm-provider-{ALIASES[alias]} is not installed")


def _fake(fakes: tuple[FakeAnthropic, FakeOpenAI, FakeGemini], alias: str) -> Any:
    return {"anthropic": fakes[0], "openai": fakes[1], "gemini": fakes[2]}[ALIASES[alias]]


# --- whole answers --------------------------------------------------------------------------------


@pytest.mark.parametrize("alias", ["claude", "gpt", "gem"])
def test_create_text(client: anthropic.Anthropic, alias: str) -> None:
    _need(alias)
    message = client.messages.create(
        model=alias,
        max_tokens=200,
        system=[{"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "hello gateway"}],
    )
    assert message.type == "message" and message.role == "assistant"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "echo: hello gateway"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn" and message.usage.output_tokens > 0
    assert message.id.startswith("msg_")
    assert message.model == (CLAUDE if alias == "claude" else alias)  # translated: the alias asked for


@pytest.mark.parametrize("alias", ["claude", "gpt", "gem"])
def test_create_parallel_tool_calls_and_the_round_trip(
    client: anthropic.Anthropic, fakes: Any, alias: str
) -> None:
    _need(alias)
    fake = _fake(fakes, alias)
    fake.script(Reply(text="", tool_calls=CALLS))
    question: Any = {"role": "user", "content": [{"type": "text", "text": "weather and time in Paris?"}]}
    message = client.messages.create(model=alias, max_tokens=300, messages=[question], tools=[WEATHER, TIME])
    assert [b.type for b in message.content] == ["tool_use", "tool_use"]  # no empty text block
    assert message.stop_reason == "tool_use"
    uses = [b for b in message.content if b.type == "tool_use"]
    assert [(u.name, u.input) for u in uses] == [(c.name, c.arguments) for c in CALLS]
    history: Any = [
        question,
        {
            "role": "assistant",
            "content": [u.model_dump(include={"type", "id", "name", "input"}) for u in uses],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": uses[0].id, "content": "21°C"},
                {
                    "type": "tool_result",
                    "tool_use_id": uses[1].id,
                    "content": [{"type": "text", "text": "no clock"}],
                    "is_error": True,
                },
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                {"type": "text", "text": "thanks"},
            ],
        },
    ]
    answer = client.messages.create(model=alias, max_tokens=300, tools=[WEATHER, TIME], messages=history)
    assert answer.stop_reason == "end_turn" and answer.content[0].type == "text"
    assert len(fake.requests) == 2


# --- streams --------------------------------------------------------------------------------------


@pytest.mark.parametrize("alias", ["claude", "gpt", "gem"])
def test_stream_text(client: anthropic.Anthropic, alias: str) -> None:
    _need(alias)
    with client.messages.stream(
        model=alias, max_tokens=100, messages=[{"role": "user", "content": "stream this please"}]
    ) as stream:
        kinds = [event.type for event in stream]
        text = stream.get_final_text()
        final = stream.get_final_message()
    assert text == "echo: stream this please"
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop" and "text" in kinds
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0  # corrected by message_delta


@pytest.mark.parametrize("alias", ["claude", "gpt", "gem"])
def test_stream_tool_use_with_input_json_events(client: anthropic.Anthropic, fakes: Any, alias: str) -> None:
    _need(alias)
    _fake(fakes, alias).script(Reply(text="Let me check.", tool_calls=CALLS))
    partial: dict[int, str] = {}
    with client.messages.stream(
        model=alias,
        max_tokens=300,
        messages=[{"role": "user", "content": "weather and time?"}],
        tools=[WEATHER, TIME],
    ) as stream:
        index = -1
        for event in stream:
            if event.type == "content_block_start":
                index = event.index
            elif event.type == "input_json":
                partial[index] = partial.get(index, "") + event.partial_json
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["text", "tool_use", "tool_use"]
    assert final.stop_reason == "tool_use"
    assert [json.loads(partial[i]) for i in (1, 2)] == [c.arguments for c in CALLS]
    assert [b.input for b in final.content if b.type == "tool_use"] == [c.arguments for c in CALLS]


@pytest.mark.parametrize(
    ("alias", "fault"),
    [
        ("claude-faults", Fault(error_after=3, chunk_delay=0.05)),
        ("gpt-faults", Fault(error_after=2, chunk_delay=0.05)),
    ],
)
def test_stream_error_after_start_is_an_error_event(
    client: anthropic.Anthropic, fakes: Any, alias: str, fault: Fault
) -> None:
    _need(alias)
    _fake(fakes, alias).inject(fault)
    with (
        pytest.raises(anthropic.APIStatusError) as info,
        client.messages.stream(
            model=alias, max_tokens=100, messages=[{"role": "user", "content": "a long story please"}]
        ) as stream,
    ):
        for _ in stream:
            pass
    assert info.value.status_code == 200  # the stream had started: an ``event: error``, not an HTTP error
    body: Any = info.value.body
    assert body["type"] == "error" and body["error"]["type"] in ("overloaded_error", "api_error")


# --- pass-through to Anthropic ----------------------------------------------------------------------


def _thinking_turns() -> list[Any]:
    thought = "The user wants the weather; call the tool."
    return [
        {
            "role": "user",
            "content": [{"type": "text", "text": "Weather?", "cache_control": {"type": "ephemeral"}}],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": thought, "signature": thinking_signature(thought)},
                {"type": "tool_use", "id": "toolu_01X", "name": "get_weather", "input": {"city": "Paris"}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01X", "content": "21°C"}]},
    ]


def test_anthropic_pass_through_is_byte_identical_but_for_model(gateway: GatewayServer, fakes: Any) -> None:
    _need("claude")
    anth = fakes[0]
    anth.reset()
    anth.script(Reply(thinking="It is warm.", text="Warm.", times=2))
    body = {
        "model": "claude",
        "max_tokens": 4096,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "system": [
            {"type": "text", "text": "Be helpful.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}
        ],
        "tools": [{**WEATHER, "cache_control": {"type": "ephemeral"}}],
        "messages": _thinking_turns(),
        "metadata": {"user_id": "u-1"},
    }
    raw = json.dumps(body, indent=1).encode()  # unusual whitespace survives too
    headers = {
        "x-api-key": KEY,
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "interleaved-thinking-2025-05-14",
    }
    answer = httpx.post(gateway.url + "/v1/messages", content=raw, headers=headers, timeout=20)
    assert answer.status_code == 200, answer.text
    assert [b["type"] for b in answer.json()["content"]] == ["thinking", "text"]
    sent = anth.requests[-1]
    received = msgspec.json.decode(sent.body, type=dict[str, msgspec.Raw])
    original = msgspec.json.decode(raw, type=dict[str, msgspec.Raw])
    assert received.pop("model") == msgspec.Raw(json.dumps(CLAUDE).encode())
    original.pop("model")
    assert received == original  # every other member byte for byte: thinking, signatures, cache_control
    assert sent.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    # an alias named like the upstream model: the very same bytes
    same = httpx.post(gateway.url + "/v1/messages", content=raw.replace(b'"claude"', json.dumps(CLAUDE).encode(), 1),
                      headers=headers, timeout=20)  # fmt: skip
    assert same.status_code == 200 and anth.requests[-1].body == raw.replace(
        b'"claude"', f'"{CLAUDE}"'.encode(), 1
    )
    assert anth.violations == []


def test_anthropic_pass_through_stream_keeps_thinking_signatures(
    client: anthropic.Anthropic, fakes: Any
) -> None:
    _need("claude")
    fakes[0].script(Reply(thinking="Hmm, warm.", text="Warm."))
    with client.messages.stream(
        model="claude",
        max_tokens=4096,
        thinking={"type": "enabled", "budget_tokens": 2048},
        tools=[WEATHER],
        messages=_thinking_turns(),
    ) as stream:
        final = stream.get_final_message()
    thinking = final.content[0]
    assert thinking.type == "thinking" and thinking.signature == thinking_signature("Hmm, warm.")


# --- errors and the other route -------------------------------------------------------------------


def test_errors_are_typed_sdk_exceptions(
    gateway: GatewayServer, client: anthropic.Anthropic, fakes: Any
) -> None:
    user: Any = [{"role": "user", "content": "hi"}]
    bad_key = anthropic.Anthropic(base_url=gateway.url, api_key="wrong", max_retries=0)
    with bad_key, pytest.raises(anthropic.AuthenticationError) as auth:
        bad_key.messages.create(model="gpt", max_tokens=10, messages=user)
    assert auth.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid x-api-key"},
    }
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="no-such-model", max_tokens=10, messages=user)
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError) as bad:
        client.messages.create(model="gpt", max_tokens=10, messages=user, extra_body={"temperature": 1.5})
    assert bad.value.body["error"]["message"] == "temperature: Input should be less than or equal to 1"  # type: ignore[index]
    if PROVIDERS["openai"] is not None:
        fakes[1].inject(Fault(status=429, retry_after=0.05))
        with pytest.raises(anthropic.RateLimitError) as limited:
            client.messages.create(model="gpt-faults", max_tokens=10, messages=user)
        assert limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
        assert limited.value.response.headers["retry-after"] == "1"
    if PROVIDERS["anthropic"] is not None:
        fakes[0].inject(Fault(status=529))
        with pytest.raises(anthropic.APIStatusError) as overloaded:
            client.messages.create(model="claude-faults", max_tokens=10, messages=user)
        assert overloaded.value.status_code in (503, 529)
        assert overloaded.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"x-api-key": KEY, "anthropic-version": "2023-06-01"}, 200),
        ({"authorization": f"Bearer {KEY}", "anthropic-version": "2023-06-01"}, 200),
        ({"x-api-key": KEY}, 400),
        ({"anthropic-version": "2023-06-01"}, 401),
    ],
)
def test_key_headers_and_anthropic_version(
    gateway: GatewayServer, headers: dict[str, str], status: int
) -> None:
    _need("gpt")
    body = {"model": "gpt", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    answer = httpx.post(gateway.url + "/v1/messages?beta=true", json=body, headers=headers, timeout=20)
    assert answer.status_code == status, answer.text
    if status != 200:
        assert answer.json()["type"] == "error" and "x-request-id" in answer.headers
    if status == 400:
        assert answer.json()["error"] == {
            "type": "invalid_request_error",
            "message": "anthropic-version: header is required",
        }


def test_count_tokens(client: anthropic.Anthropic, gateway: GatewayServer) -> None:
    counted = client.messages.count_tokens(
        model="counted",
        system="sys",
        messages=[{"role": "user", "content": "one"}, {"role": "assistant", "content": "two"}],
    )
    assert counted.input_tokens == 103  # system + two messages, counted from the typed form
    for alias in ("claude", "gpt"):
        if PROVIDERS[ALIASES[alias]] is None:
            continue
        spec = gateway.gateway.runtime.specs["ant" if alias == "claude" else "oai"]  # type: ignore[union-attr]
        if "count_tokens" in spec.endpoints:
            assert (
                client.messages.count_tokens(
                    model=alias, messages=[{"role": "user", "content": "hi"}]
                ).input_tokens
                > 0
            )
        else:
            with pytest.raises(anthropic.BadRequestError) as info:
                client.messages.count_tokens(model=alias, messages=[{"role": "user", "content": "hi"}])
            assert "count_tokens" in info.value.message
