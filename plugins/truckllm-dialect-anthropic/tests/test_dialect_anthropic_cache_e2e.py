"""End to end, prompt caching on a translated deployment: the official ``anthropic`` SDK → a real
gateway (GatewayServer) → FakeBedrock (Converse, Nova: ``cachePoint`` blocks after the marked
blocks) and FakeOpenAI with ``api: responses`` (``prompt_cache_breakpoint`` on marked user parts).

The marks reach those providers through the typed form the Anthropic dialect builds. The provider
plugins are other distributions: the module is skipped when one is not installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
import truckllm_dialect_anthropic

from truckllm_testing.fakes import FakeOpenAI, Reply
from truckllm_testing.server import GatewayServer

bedrock = pytest.importorskip("truckllm_provider_bedrock")
openai_provider = pytest.importorskip("truckllm_provider_openai")
FakeBedrock = pytest.importorskip("truckllm_testing.fakes.bedrock").FakeBedrock

NOVA = "us.amazon.nova-pro-v1:0"
AWS_KEY = "AKIDCACHE:cache-secret"
MARK = {"type": "ephemeral"}
POINT = {"cachePoint": {"type": "default"}}
WEATHER: Any = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def _config(bedrock_url: str, openai_url: str) -> str:
    return (
        "routing:\n  retries: 0\n  stream_idle_timeout: 10s\nproviders:\n"
        f"  br:\n    type: bedrock\n    base_url: {bedrock_url}\n    options: {{region: us-east-1}}\n"
        f"    keys: [{{name: main, value: '{AWS_KEY}'}}]\n"
        f"  oa-resp:\n    type: openai\n    base_url: {openai_url}\n    options: {{api: responses}}\n"
        "    keys: [{name: main, value: key-resp}]\n"
        "models:\n"
        f"  nova:\n    deployments: [{{provider: br, model: '{NOVA}'}}]\n"
        "  resp:\n    deployments: [{provider: oa-resp, model: gpt-4o}]\n"
    )


@pytest.fixture(scope="module")
def fake_bedrock() -> Iterator[Any]:
    """The fake Bedrock, checking every signature and Converse body."""
    with FakeBedrock(keys=[AWS_KEY]).running() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[FakeOpenAI]:
    """The fake OpenAI, validating every Responses request."""
    upstream = FakeOpenAI(keys=["key-resp"])
    with upstream.running():
        yield upstream


@pytest.fixture(scope="module")
def gateway(fake_bedrock: Any, fake_openai: FakeOpenAI) -> Iterator[GatewayServer]:
    """A gateway with both providers and the Anthropic front door."""
    plugins = (bedrock, openai_provider, truckllm_dialect_anthropic)
    with GatewayServer(
        _config(fake_bedrock.origin, fake_openai.base_url), autoload=False, extra_plugins=plugins
    ) as gw:
        yield gw


@pytest.fixture
def sdk(gateway: GatewayServer, fake_bedrock: Any, fake_openai: FakeOpenAI) -> Iterator[anthropic.Anthropic]:
    """An Anthropic SDK client without retries; the fakes start clean and end without violations."""
    fake_bedrock.reset()
    fake_openai.reset()
    with anthropic.Anthropic(base_url=gateway.url, api_key="anything", max_retries=0, timeout=20) as client:
        yield client
    assert fake_bedrock.violations == []
    assert fake_openai.violations == []


def _ask(sdk: anthropic.Anthropic, model: str, marked: bool) -> None:
    """A request with a marked tool, system block and user block (or none marked)."""
    mark: Any = {"cache_control": MARK} if marked else {}
    system: Any = [{"type": "text", "text": "You are terse.", **mark}, {"type": "text", "text": "Be kind."}]
    tools: Any = [{**WEATHER, **mark}]
    content: Any = [
        {"type": "text", "text": "A long shared document.", **mark},
        {"type": "text", "text": "Weather in Paris?"},
    ]
    message = sdk.messages.create(
        model=model,
        max_tokens=64,
        system=system,
        tools=tools,
        messages=[{"role": "user", "content": content}],
    )
    assert message.content[0].type == "text"


def test_marks_become_bedrock_cache_points(sdk: anthropic.Anthropic, fake_bedrock: Any) -> None:
    fake_bedrock.script(Reply(text="Sunny"))
    _ask(sdk, "nova", marked=True)
    body = fake_bedrock.requests[-1].json
    assert body["system"] == [{"text": "You are terse."}, POINT, {"text": "Be kind."}]
    assert body["messages"] == [
        {
            "role": "user",
            "content": [{"text": "A long shared document."}, POINT, {"text": "Weather in Paris?"}],
        }
    ]
    assert body["toolConfig"]["tools"][-1] == POINT


def test_unmarked_requests_get_no_bedrock_cache_points(sdk: anthropic.Anthropic, fake_bedrock: Any) -> None:
    fake_bedrock.script(Reply(text="Sunny"))
    _ask(sdk, "nova", marked=False)
    body = fake_bedrock.requests[-1].json
    assert "cachePoint" not in str(body)
    assert body["system"] == [{"text": "You are terse.\n\nBe kind."}]


def test_marks_become_responses_breakpoints(sdk: anthropic.Anthropic, fake_openai: FakeOpenAI) -> None:
    _ask(sdk, "resp", marked=True)
    request = fake_openai.requests[-1]
    assert request.path == "/v1/responses"
    (turn,) = request.json["input"]
    assert turn["content"] == [
        {
            "type": "input_text",
            "text": "A long shared document.",
            "prompt_cache_breakpoint": {"mode": "explicit"},
        },
        {"type": "input_text", "text": "Weather in Paris?"},
    ]
    assert "cache_control" not in str(request.json)


def test_unmarked_requests_get_no_responses_breakpoints(
    sdk: anthropic.Anthropic, fake_openai: FakeOpenAI
) -> None:
    _ask(sdk, "resp", marked=False)
    request = fake_openai.requests[-1]
    assert "prompt_cache_breakpoint" not in str(request.json)
