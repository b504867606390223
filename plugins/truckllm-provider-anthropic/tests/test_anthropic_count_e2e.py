"""End to end: counting tokens on an Anthropic deployment from other dialects' front doors.

The official SDKs → a real gateway (GatewayServer) → FakeAnthropic, whose ``count_tokens`` checks
the body strictly (Messages-only members are "Extra inputs are not permitted") and counts the
words of the system prompt and messages, plus one. Every test ends with ``violations == []``.
The inbound dialects are other distributions: a test skips when the one it needs is not installed.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import anthropic
import openai
import pytest
import truckllm_provider_anthropic as plugin

from truckllm_testing.fakes import FakeAnthropic, Fault
from truckllm_testing.server import GatewayServer

MODEL = "claude-sonnet-4-5-20250929"
KEY = "team-secret"
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def _installed(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


DIALECTS = {name: _installed(f"truckllm_dialect_{name}") for name in ("responses", "gemini", "anthropic")}


def _need(dialect: str) -> None:
    if DIALECTS[dialect] is None:
        pytest.skip(f"truckllm-dialect-{dialect} is not installed")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    """The fake upstream, served from a thread for this module."""
    upstream = FakeAnthropic(keys=["ak"])
    with upstream.running():
        yield upstream


@pytest.fixture(scope="module")
def gateway(fake: FakeAnthropic) -> Iterator[GatewayServer]:
    """A real gateway: this plugin and the installed dialects, alias ``claude`` on the fake."""
    config = (
        f"keys: [{{name: team, value: {KEY}}}]\n"
        "routing: {retries: 0, cooldown: {failures: 1000}}\n"
        f"providers:\n  ant: {{type: anthropic, base_url: {fake.base_url}, keys: [{{name: a, value: ak}}]}}\n"
        f"  ant-faults: {{type: anthropic, base_url: {fake.base_url}, keys: [{{name: af, value: ak}}]}}\n"
        f"models:\n  claude: {{deployments: [{{provider: ant, model: {MODEL}}}]}}\n"
        f"  claude-faults: {{deployments: [{{provider: ant-faults, model: {MODEL}}}]}}\n"
    )
    plugins = (plugin, *(module for module in DIALECTS.values() if module is not None))
    with GatewayServer(config, autoload=False, extra_plugins=plugins) as gw:
        yield gw


@pytest.fixture
def clean(fake: FakeAnthropic) -> Iterator[FakeAnthropic]:
    """The fake starts clean and must end without violations."""
    fake.reset()
    yield fake
    assert fake.violations == []


def _counted(fake: FakeAnthropic) -> dict[str, Any]:
    """The one request the fake received: a count, whose body is returned."""
    assert [(r.method, r.path) for r in fake.requests] == [("POST", "/v1/messages/count_tokens")]
    assert fake.requests[0].api_key == "ak" and not fake.requests[0].stream
    body: dict[str, Any] = fake.requests[0].json
    return body


def test_responses_sdk_input_tokens_count(gateway: GatewayServer, clean: FakeAnthropic) -> None:
    _need("responses")
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0, timeout=20) as client:
        counted = client.responses.input_tokens.count(
            model="claude", instructions="Be terse.", input="how many tokens is this?"
        )
    assert counted.object == "response.input_tokens"
    assert counted.input_tokens == 8  # the fake's count: 2 + 5 words, plus one
    assert _counted(clean) == {
        "model": MODEL,
        "system": "Be terse.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "how many tokens is this?"}]}],
    }


def test_responses_sdk_counts_a_tool_loop_with_its_tools(
    gateway: GatewayServer, clean: FakeAnthropic
) -> None:
    _need("responses")
    items: Any = [
        {"role": "user", "content": "weather in Paris?"},
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city": "Paris"}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny and warm"},
    ]
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0, timeout=20) as client:
        counted = client.responses.input_tokens.count(
            model="claude", input=items, tools=[WEATHER], tool_choice="required"
        )
    assert counted.input_tokens == 7  # "weather in Paris?" + the tool result's text, plus one
    sent = _counted(clean)
    assert sent["tools"] == [
        {"name": "get_weather", "description": "Weather in a city", "input_schema": WEATHER["parameters"]}
    ]
    assert sent["tool_choice"] == {"type": "any"}
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][1]["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}
    ]


def test_genai_sdk_count_tokens(gateway: GatewayServer, clean: FakeAnthropic) -> None:
    _need("gemini")
    from google import genai
    from google.genai import types

    client = genai.Client(
        api_key=KEY, http_options=types.HttpOptions(base_url=gateway.url, api_version="v1beta")
    )
    counted = client.models.count_tokens(model="claude", contents=["count these four words", "and two"])
    assert counted.total_tokens == 7  # the fake's count: 4 + 2 words, plus one
    assert _counted(clean) == {
        "model": MODEL,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "count these four words"},
                    {"type": "text", "text": "and two"},
                ],
            }
        ],
    }


def test_anthropic_sdk_count_tokens_still_passes_through(
    gateway: GatewayServer, clean: FakeAnthropic
) -> None:
    _need("anthropic")
    with anthropic.Anthropic(base_url=gateway.url, api_key=KEY, max_retries=0, timeout=20) as client:
        counted = client.messages.count_tokens(
            model="claude", system="sys", messages=[{"role": "user", "content": "one two"}]
        )
    assert counted.input_tokens == 4
    assert _counted(clean) == {
        "model": MODEL,
        "system": "sys",
        "messages": [{"role": "user", "content": "one two"}],
    }


def test_an_upstream_failure_reaches_the_client_in_its_dialect(
    gateway: GatewayServer, clean: FakeAnthropic
) -> None:
    _need("responses")
    clean.inject(Fault(status=429, retry_after=7, path="count_tokens"))
    with (
        openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0, timeout=20) as client,
        pytest.raises(openai.RateLimitError) as caught,
    ):
        client.responses.input_tokens.count(model="claude-faults", input="hi")
    assert caught.value.status_code == 429
    assert caught.value.response.headers.get("retry-after") == "7"
