"""End to end: Anthropic clients (Claude Code's API) through a real gateway's Anthropic front door
to an Azure OpenAI deployment: messages (stream and not, tools) translated to chat completions at
the deployment URL, token counts through Azure's Responses API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import truckllm_provider_azure as plugin

from truckllm_testing.fakes import Reply, ToolCall
from truckllm_testing.fakes.azure import FakeAzure
from truckllm_testing.server import GatewayServer

anthropic = pytest.importorskip("anthropic")
front_door = pytest.importorskip("truckllm_dialect_anthropic")

CONFIG = """
routing: {{retries: 0}}
providers:
  az: {{type: azure, base_url: {base_url}, keys: [{{name: main, value: key-main}}]}}
models:
  claude-sonnet-4-5: {{deployments: [{{provider: az, model: my-gpt4o}}]}}
"""
TOOL: Any = {
    "name": "get_weather",
    "description": "weather of a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
USER: Any = [{"role": "user", "content": "what is the weather in Paris"}]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAzure]:
    """The fake Azure resource, served from a thread for this module."""
    upstream = FakeAzure(keys=["key-main"])
    with upstream.running():
        yield upstream


@pytest.fixture
def client(fake: FakeAzure) -> Iterator[Any]:
    """An Anthropic client of a gateway with the Anthropic front door and this plugin."""
    fake.reset()
    config = CONFIG.format(base_url=fake.base_url)
    with (
        GatewayServer(config, autoload=False, extra_plugins=(front_door, plugin)) as gw,
        anthropic.Anthropic(base_url=gw.url, api_key="anything", max_retries=0, timeout=20) as sdk,
    ):
        yield sdk
    assert fake.violations == []


def test_messages_reach_the_deployment(client: Any, fake: FakeAzure) -> None:
    message = client.messages.create(model="claude-sonnet-4-5", max_tokens=200, messages=USER)
    assert message.content[0].text == "echo: what is the weather in Paris"
    assert fake.requests[-1].path == "/openai/deployments/my-gpt4o/chat/completions"
    assert fake.requests[-1].headers["api-key"] == "key-main"


def test_streamed_tool_use(client: Any, fake: FakeAzure) -> None:
    fake.script(Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]))
    with client.messages.stream(
        model="claude-sonnet-4-5", max_tokens=200, messages=USER, tools=[TOOL]
    ) as stream:
        final = stream.get_final_message()
    (use,) = [block for block in final.content if block.type == "tool_use"]
    assert use.name == "get_weather" and use.input == {"city": "Paris"}
    assert final.stop_reason == "tool_use"


def test_token_counts_go_through_the_responses_api(client: Any, fake: FakeAzure) -> None:
    counted = client.messages.count_tokens(model="claude-sonnet-4-5", messages=USER)
    assert counted.input_tokens > 0
    assert fake.requests[-1].path == "/openai/responses/input_tokens"
    assert fake.requests[-1].query == {"api-version": plugin.DEFAULT_API_VERSION}
