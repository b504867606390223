"""End to end: counting tokens on a Gemini deployment from other dialects' front doors.

The official SDKs → a real gateway (GatewayServer) → FakeGemini, whose ``countTokens`` checks the
body strictly (field names of ``CountTokensRequest`` and ``GenerateContentRequest``, and the
semantics of a generate request) and counts the words of the system instruction and contents,
plus one. Every test ends with ``violations == []``. The inbound dialects are other
distributions: a test skips when the one it needs is not installed.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import anthropic
import openai
import pytest
import truckllm_provider_gemini as plugin

from truckllm_testing.fakes import FakeGemini, Fault
from truckllm_testing.server import GatewayServer

MODEL = "gemini-2.5-flash"
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


DIALECTS = {name: _installed(f"truckllm_dialect_{name}") for name in ("responses", "anthropic", "gemini")}


def _need(dialect: str) -> None:
    if DIALECTS[dialect] is None:
        pytest.skip(f"truckllm-dialect-{dialect} is not installed")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeGemini]:
    """The fake upstream, served from a thread for this module."""
    upstream = FakeGemini(keys=["gk"])
    with upstream.running():
        yield upstream


@pytest.fixture(scope="module")
def gateway(fake: FakeGemini) -> Iterator[GatewayServer]:
    """A real gateway: this plugin and the installed dialects, alias ``flash`` on the fake."""
    config = (
        f"keys: [{{name: team, value: {KEY}}}]\n"
        "routing: {retries: 0, cooldown: {failures: 1000}}\n"
        f"providers:\n  gem: {{type: gemini, base_url: {fake.base_url}, keys: [{{name: g, value: gk}}]}}\n"
        f"  gem-faults: {{type: gemini, base_url: {fake.base_url}, keys: [{{name: gf, value: gk}}]}}\n"
        f"models:\n  flash: {{deployments: [{{provider: gem, model: {MODEL}}}]}}\n"
        f"  flash-faults: {{deployments: [{{provider: gem-faults, model: {MODEL}}}]}}\n"
    )
    plugins = (plugin, *(module for module in DIALECTS.values() if module is not None))
    with GatewayServer(config, autoload=False, extra_plugins=plugins) as gw:
        yield gw


@pytest.fixture
def clean(fake: FakeGemini) -> Iterator[FakeGemini]:
    """The fake starts clean and must end without violations."""
    fake.reset()
    yield fake
    assert fake.violations == []


def _counted(fake: FakeGemini) -> dict[str, Any]:
    """The one request the fake received: a count, whose body is returned."""
    assert [(r.method, r.path) for r in fake.requests] == [("POST", f"/v1beta/models/{MODEL}:countTokens")]
    assert fake.requests[0].api_key == "gk" and fake.requests[0].query == {}
    body: dict[str, Any] = fake.requests[0].json
    return body


def test_responses_sdk_input_tokens_count(gateway: GatewayServer, clean: FakeGemini) -> None:
    _need("responses")
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0, timeout=20) as client:
        counted = client.responses.input_tokens.count(
            model="flash", instructions="Be terse.", input="how many tokens is this?"
        )
    assert counted.object == "response.input_tokens"
    assert counted.input_tokens == 8  # the fake's count: 2 + 5 words, plus one
    assert _counted(clean) == {
        "generateContentRequest": {
            "model": f"models/{MODEL}",
            "contents": [{"role": "user", "parts": [{"text": "how many tokens is this?"}]}],
            "systemInstruction": {"parts": [{"text": "Be terse."}]},
        }
    }


def test_responses_sdk_counts_a_tool_loop_with_its_tools(gateway: GatewayServer, clean: FakeGemini) -> None:
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
            model="flash", input=items, tools=[WEATHER], tool_choice="required"
        )
    sent = _counted(clean)["generateContentRequest"]
    assert [c["role"] for c in sent["contents"]] == ["user", "model", "user"]
    assert sent["contents"][1]["parts"][0]["functionCall"] == {
        "name": "get_weather",
        "args": {"city": "Paris"},
    }
    assert sent["contents"][2]["parts"][0]["functionResponse"]["name"] == "get_weather"
    assert [d["name"] for d in sent["tools"][0]["functionDeclarations"]] == ["get_weather"]
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert sent["contents"][2]["parts"][0]["functionResponse"]["response"] == {"output": "sunny and warm"}
    # the fake counts "weather in Paris?" and the result as JSON text ({"output": "sunny and warm"})
    assert counted.input_tokens == 3 + 4 + 1


def test_anthropic_sdk_count_tokens(gateway: GatewayServer, clean: FakeGemini) -> None:
    _need("anthropic")
    with anthropic.Anthropic(base_url=gateway.url, api_key=KEY, max_retries=0, timeout=20) as client:
        counted = client.messages.count_tokens(
            model="flash",
            system="Answer in French.",
            messages=[
                {"role": "user", "content": "one two three"},
                {"role": "assistant", "content": "four"},
                {"role": "user", "content": "five six"},
            ],
        )
    assert counted.input_tokens == 10  # the fake's count: 3 + 3 + 1 + 2 words, plus one
    assert _counted(clean) == {
        "generateContentRequest": {
            "model": f"models/{MODEL}",
            "contents": [
                {"role": "user", "parts": [{"text": "one two three"}]},
                {"role": "model", "parts": [{"text": "four"}]},
                {"role": "user", "parts": [{"text": "five six"}]},
            ],
            "systemInstruction": {"parts": [{"text": "Answer in French."}]},
        }
    }


def test_genai_sdk_count_tokens_still_passes_through(gateway: GatewayServer, clean: FakeGemini) -> None:
    _need("gemini")
    from google import genai
    from google.genai import types

    client = genai.Client(
        api_key=KEY, http_options=types.HttpOptions(base_url=gateway.url, api_version="v1beta")
    )
    counted = client.models.count_tokens(model="flash", contents="count these four words")
    assert counted.total_tokens == 5
    assert _counted(clean) == {"contents": [{"role": "user", "parts": [{"text": "count these four words"}]}]}


def test_an_upstream_failure_reaches_the_client_in_its_dialect(
    gateway: GatewayServer, clean: FakeGemini
) -> None:
    _need("anthropic")
    clean.inject(Fault(status=429, retry_after=7, path="countTokens"))
    with (
        anthropic.Anthropic(base_url=gateway.url, api_key=KEY, max_retries=0, timeout=20) as client,
        pytest.raises(anthropic.RateLimitError) as caught,
    ):
        client.messages.count_tokens(model="flash-faults", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 429
    assert caught.value.response.headers.get("retry-after") == "7"
