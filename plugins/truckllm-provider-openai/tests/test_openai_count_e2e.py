"""End to end: a token count asked in another dialect (the ``anthropic`` SDK's
``messages.count_tokens``, Claude Code's call) through a real gateway to an OpenAI deployment:
FakeOpenAI's ``/v1/responses/input_tokens`` gets a body it accepts, the client its count."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import truckllm_provider_openai as plugin

from truckllm_testing.fakes import FakeOpenAI
from truckllm_testing.server import GatewayServer

anthropic = pytest.importorskip("anthropic")
front_door = pytest.importorskip("truckllm_dialect_anthropic")

CONFIG = """
routing: {{retries: 0}}
providers:
  oai: {{type: openai, base_url: {base_url}, keys: [{{name: main, value: key-main}}]}}
models:
  gpt: {{deployments: [{{provider: oai, model: gpt-4o}}]}}
"""


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    """The fake upstream, served from a thread for this module."""
    upstream = FakeOpenAI(keys=["key-main"])
    with upstream.running():
        yield upstream


@pytest.fixture(scope="module")
def gateway(fake: FakeOpenAI) -> Iterator[GatewayServer]:
    """A real gateway with the Anthropic front door and this plugin."""
    config = CONFIG.format(base_url=fake.base_url)
    with GatewayServer(config, autoload=False, extra_plugins=(front_door, plugin)) as gw:
        yield gw


def test_an_anthropic_count_is_answered_by_openai(gateway: GatewayServer, fake: FakeOpenAI) -> None:
    fake.reset()
    with anthropic.Anthropic(base_url=gateway.url, api_key="anything", max_retries=0, timeout=20) as client:
        counted = client.messages.count_tokens(
            model="gpt",
            system="Be terse.",
            messages=[{"role": "user", "content": "count these five words please"}],
            tools=[{"name": "f", "input_schema": {"type": "object", "properties": {}}}],
        )
    assert counted.input_tokens > 0
    (received,) = fake.requests
    assert received.path == "/v1/responses/input_tokens" and received.api_key == "key-main"
    assert received.json["model"] == "gpt-4o" and received.json["instructions"] == "Be terse."
    assert set(received.json) <= {
        "model",
        "instructions",
        "input",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
    }
    assert fake.violations == []
