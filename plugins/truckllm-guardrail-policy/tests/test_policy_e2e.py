"""The ``policy`` guardrail on a real gateway: a broken rule answers 400 naming the rule, and
nothing goes upstream; a request within the rules passes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest

from truckllm_testing.fakes import FakeOpenAI
from truckllm_testing.server import GatewayServer

pytest.importorskip("truckllm_provider_openai")  # the upstream is an OpenAI provider

PROVIDER_KEY = "sk-test-aaaaaaaaaaaaaaaaaaaa"
CLIENT_KEY = "client-key-0123456789"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    upstream = FakeOpenAI(keys=[PROVIDER_KEY])
    with upstream.running():
        yield upstream


@pytest.fixture(scope="module")
def gw(fake: FakeOpenAI) -> Iterator[GatewayServer]:
    config = f"""
keys: [{{name: client, value: {CLIENT_KEY}}}]
providers:
  oa: {{type: openai, base_url: {fake.base_url}, keys: [{{name: k, value: {PROVIDER_KEY}}}]}}
models:
  gpt-4o: {{deployments: [{{provider: oa, model: gpt-4o}}]}}
guardrails:
  - type: policy
    options:
      max_input_tokens: 200
      blocked_words: [password, project falcon]
      blocked_patterns: ['(?i)internal[-_ ]only']
      allowed_tools: [search]
"""
    with GatewayServer(config) as server:
        yield server


def _chat(gw: GatewayServer, text: str, **extra: Any) -> httpx.Response:
    return httpx.post(
        gw.url + "/v1/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": text}], **extra},
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
        timeout=30,
    )


def _tool(name: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": name, "parameters": {"type": "object", "properties": {}}},
    }


@pytest.mark.parametrize(
    ("text", "extra", "reason"),
    [
        ("tell me about Project Falcon", {}, "the text holds blocked_words[1]"),
        ("this is INTERNAL ONLY", {}, "the text matches blocked_patterns[0]"),
        ("word " * 400, {}, "over max_input_tokens 200"),
        (
            "list files",
            {"tools": [_tool("search"), _tool("shell")]},
            "the request offers 1 tool(s) not in allowed_tools",
        ),
    ],
)
def test_a_broken_rule_blocks_before_the_upstream(
    gw: GatewayServer, fake: FakeOpenAI, text: str, extra: dict[str, Any], reason: str
) -> None:
    before = len(fake.requests)
    response = _chat(gw, text, **extra)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "guardrail_blocked"
    assert error["message"].startswith("Blocked by guardrail 'policy': ") and reason in error["message"]
    assert len(fake.requests) == before


def test_a_request_within_the_rules_passes(gw: GatewayServer, fake: FakeOpenAI) -> None:
    response = _chat(gw, "what is a falcon?", tools=[_tool("search")])
    assert response.status_code == 200, response.text
