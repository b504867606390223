"""MCP tool calls through the gateway's guardrails (issue 19's "every request whatever API it came
through"), with the real ``pii`` and ``policy`` guardrail plugins, the official SDK as the client
and the SDK-written ``alpha`` server upstream (its ``echo`` answers ``alpha:<text>``).

The key ``in`` has the input stage (e-mail addresses masked, ``forbidden-topic`` blocked), the key
``out`` the output stage (the same, on results): a masked argument never reaches the upstream
server; a masked result never reaches the client (the upstream saw the original); a block is the
JSON-RPC error ``GUARDRAIL_BLOCKED`` naming the guardrail; each call's record carries what the
guardrails decided and never the masked text.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from truckllm_mcp.guard import ENDPOINT, GUARDRAIL_BLOCKED

from truckllm_testing.conformance import RecordingPlugin, wait_for
from truckllm_testing.server import GatewayServer

ALPHA_TOKEN = "alpha-upstream-token-7f3c9a2e51"
KEYS = {"in": "tllm_guard_in_0123456789abcd", "out": "tllm_guard_out_0123456789abc"}
EMAIL = "bob.secret@example.com"


def config(alpha_url: str) -> str:
    words = {"blocked_words": ["forbidden-topic"]}
    return json.dumps(
        {
            "providers": {"demo": {"type": "mock"}},
            "models": {"m": {"deployments": [{"provider": "demo", "model": "echo"}]}},
            "keys": [{"name": name, "value": value} for name, value in KEYS.items()],
            "guardrails": [
                {"type": "pii", "name": "pii-in", "keys": ["in"], "options": {"entities": ["email"]}},
                {"type": "policy", "name": "words-in", "keys": ["in"], "options": words},
                {"type": "pii", "name": "pii-out", "stages": ["output"], "keys": ["out"]},
                {
                    "type": "policy",
                    "name": "words-out",
                    "stages": ["output"],
                    "keys": ["out"],
                    "options": words,
                },
            ],
            "loggers": [
                {
                    "mcp": {
                        "servers": {
                            "alpha": {"url": alpha_url, "headers": {"Authorization": f"Bearer {ALPHA_TOKEN}"}}
                        },
                        "access": [{"keys": ["in", "out"], "servers": ["alpha"]}],
                    }
                }
            ],
        }
    )


@pytest.fixture(scope="module")
def recorder() -> RecordingPlugin:
    return RecordingPlugin()


@pytest.fixture(scope="module")
def gw(alpha_upstream: Any, recorder: RecordingPlugin) -> Iterator[GatewayServer]:
    with GatewayServer(config(alpha_upstream.url), extra_plugins=(recorder,), autoload=True) as server:
        yield server


@asynccontextmanager
async def connect(gw: GatewayServer, key: str) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {KEYS[key]}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0), trust_env=False) as http,
        Client(streamable_http_client(gw.url + "/mcp", http_client=http), cache=None) as client,
    ):
        yield client


def calls(alpha: Any, marker: str) -> list[dict[str, Any]]:
    """The upstream's logged tool calls whose text holds ``marker``."""
    return [e for e in alpha.events("call") if marker in json.dumps(e["args"])]


def text_of(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


def records(recorder: RecordingPlugin, count: int) -> list[Any]:
    wait_for(lambda: len([r for r in recorder.records if r.endpoint == ENDPOINT]) >= count)
    return [r for r in recorder.records if r.endpoint == ENDPOINT]


async def test_arguments_are_masked_before_the_upstream_sees_them(
    gw: GatewayServer, alpha_upstream: Any, recorder: RecordingPlugin
) -> None:
    recorder.records.clear()
    async with connect(gw, "in") as client:
        result = await client.call_tool("alpha__echo", {"text": f"in-1 write to {EMAIL} today"})
    assert text_of(result) == "alpha:in-1 write to <EMAIL> today"
    (seen,) = calls(alpha_upstream, "in-1")
    assert seen["args"]["text"] == "in-1 write to <EMAIL> today"
    assert calls(alpha_upstream, EMAIL) == []
    (record,) = records(recorder, 1)
    assert record.status == 200 and record.extra["mcp_outcome"] == "ok"
    assert [(g.name, g.stage, g.action) for g in record.guardrails] == [
        ("pii-in", "input", "modify"),
        ("words-in", "input", "allow"),
    ]
    assert EMAIL not in repr(record)


async def test_results_are_masked_before_the_client_reads_them(
    gw: GatewayServer, alpha_upstream: Any, recorder: RecordingPlugin
) -> None:
    recorder.records.clear()
    async with connect(gw, "out") as client:
        result = await client.call_tool("alpha__echo", {"text": f"out-1 {EMAIL}"})
    assert text_of(result) == "alpha:out-1 <EMAIL>"
    (seen,) = calls(alpha_upstream, "out-1")
    assert seen["args"]["text"] == f"out-1 {EMAIL}"  # the input stage is the other key's
    (record,) = records(recorder, 1)
    assert [(g.name, g.stage, g.action) for g in record.guardrails] == [
        ("pii-out", "output", "modify"),
        ("words-out", "output", "allow"),
    ]


async def test_a_blocked_argument_never_reaches_the_upstream(
    gw: GatewayServer, alpha_upstream: Any, recorder: RecordingPlugin
) -> None:
    recorder.records.clear()
    async with connect(gw, "in") as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("alpha__echo", {"text": "in-2 the forbidden-topic please"})
    assert caught.value.code == GUARDRAIL_BLOCKED
    assert caught.value.message.startswith("Blocked by guardrail 'words-in'")
    assert calls(alpha_upstream, "in-2") == []
    (record,) = records(recorder, 1)
    assert record.status == 400 and record.extra["mcp_outcome"] == "blocked"
    assert record.upstream_ms is None  # never sent


async def test_a_blocked_result_is_an_error_for_the_client(
    gw: GatewayServer, alpha_upstream: Any, recorder: RecordingPlugin
) -> None:
    recorder.records.clear()
    async with connect(gw, "out") as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("alpha__echo", {"text": "out-2 forbidden-topic"})
        assert caught.value.code == GUARDRAIL_BLOCKED
        assert "words-out" in caught.value.message
        numbers = await client.call_tool("alpha__add", {"a": 2, "b": 40})  # no text: allowed
    assert numbers.structured_content == {"result": 42}
    assert len(calls(alpha_upstream, "out-2")) == 1  # the upstream answered; the answer was held
    blocked = [r for r in records(recorder, 2) if r.extra["mcp_outcome"] == "blocked"]
    assert len(blocked) == 1 and blocked[0].upstream_ms is not None
