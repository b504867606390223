"""The MCP gateway end to end: the official SDK's client through ``/mcp`` to real upstream MCP
servers written with the same SDK (three over streamable HTTP, one over stdio, one address where
nothing listens), in both protocol eras (the initialize handshake and 2026-07-28).

The issue's "done when": ``tools/list`` equals the sorted union of the allowed upstream tools on
every call; a tool call reaches the right server with its credentials; a key without access gets
the MCP error; a dead upstream server is reported and the others keep working.
"""

from __future__ import annotations

import asyncio
import sys
from contextlib import AsyncExitStack
from typing import Any

import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from truckllm_mcp import McpGateway
from truckllm_mcp.aggregate import RATE_LIMITED
from truckllm_mcp.names import namespaced
from truckllm_mcp.upstream import MAX_DEPTH, json_depth

from truckllm_testing.conformance import wait_for

MODES = ["legacy", "auto"]

Stack = Any  # the ``stack`` fixture's type lives in conftest.py (not importable by name)


async def upstream_tools(stack: Stack) -> list[types.Tool]:
    """Every tool of every reachable upstream, listed straight from it with its credentials,
    namespaced and filtered by the documented rules (a valid name, a schema at most 64 deep)."""
    targets: dict[str, tuple[str, dict[str, str]] | StdioServerParameters] = {
        "alpha": (stack.alpha.url, {"Authorization": f"Bearer {stack.alpha_token}"}),
        "beta": (stack.beta.url, {"X-Api-Key": stack.beta_key}),
        "hostile": (stack.hostile.url, {}),
        "notes": StdioServerParameters(
            command=sys.executable,
            args=[str(stack.server_script), "notes"],
            env={"stack.notes_token": stack.notes_token},
        ),
    }
    found: list[types.Tool] = []
    for server, target in targets.items():
        async with AsyncExitStack() as exits:
            if isinstance(target, StdioServerParameters):
                transport: Any = stdio_client(target)
            else:
                http = await exits.enter_async_context(httpx2.AsyncClient(headers=target[1], trust_env=False))
                transport = streamable_http_client(target[0], http_client=http)
            client = await exits.enter_async_context(Client(transport, cache=None))
            for tool in (await client.list_tools()).tools:
                full = namespaced(server, tool.name)
                if full is not None and json_depth(tool.input_schema) <= MAX_DEPTH:
                    found.append(tool.model_copy(update={"name": full}))
    return sorted(found, key=lambda t: t.name)


def text_of(result: types.CallToolResult) -> str:
    """The text blocks of a tool's result, joined."""
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


def _shape(tools: list[types.Tool]) -> list[tuple[str, str | None, dict[str, Any]]]:
    return [(t.name, t.description, t.input_schema) for t in tools]


@pytest.mark.parametrize("mode", MODES)
async def test_tools_list_is_the_sorted_union_of_the_allowed_upstream_tools(stack: Stack, mode: str) -> None:
    expected = _shape(await upstream_tools(stack))
    names = [name for name, _, _ in expected]
    assert names == sorted(names) and len(names) == len(set(names))
    # both servers' echo, each under its own name; the invalid and too-deep tools are left out
    assert {"alpha__echo", "beta__echo", "notes__read_note", "hostile__fine"} <= set(names)
    assert not any("bad name" in n or n.endswith("deep_schema") for n in names)
    async with stack.client("dev", mode) as client:
        for _ in range(5):  # on every call
            assert _shape((await client.list_tools()).tools) == expected
    async with stack.client("ops", mode) as client:
        assert [t.name for t in (await client.list_tools()).tools] == ["alpha__echo"]
    async with stack.client("slow", mode) as client:
        assert [t.name for t in (await client.list_tools()).tools] == ["alpha__add", "alpha__echo"]


@pytest.mark.parametrize("mode", MODES)
async def test_a_tool_call_reaches_the_right_server_with_its_credentials(stack: Stack, mode: str) -> None:
    text = f"hello-{mode}"
    async with stack.client("dev", mode) as client:
        a = await client.call_tool("alpha__echo", {"text": text})
        b = await client.call_tool("beta__echo", {"text": text})
        n = await client.call_tool("notes__read_note", {"name": mode})
        s = await client.call_tool("alpha__add", {"a": 2, "b": 40})
    assert [c.text for c in a.content if isinstance(c, types.TextContent)] == [f"alpha:{text}"]
    assert [c.text for c in b.content if isinstance(c, types.TextContent)] == [f"beta:{text}"]
    assert not n.is_error and "remember the milk" in str(n.content)
    assert s.structured_content == {"result": 42}
    alpha_calls = [e for e in stack.alpha.events("call") if e["args"].get("text") == text]
    beta_calls = [e for e in stack.beta.events("call") if e["args"].get("text") == text]
    assert len(alpha_calls) == 1 and len(beta_calls) == 1  # each call reached its own server once
    assert {e["header"] for e in stack.alpha.events("http")} == {f"Bearer {stack.alpha_token}"}
    assert {e["header"] for e in stack.beta.events("http")} == {stack.beta_key}  # opened from enc:v1
    notes_calls = [e for e in stack.notes.events("call") if e["args"].get("name") == mode]
    assert notes_calls and all(e["token_ok"] for e in notes_calls)


@pytest.mark.parametrize("mode", MODES)
async def test_a_key_without_access_gets_the_mcp_error(stack: Stack, mode: str) -> None:
    before = len(stack.beta.events("call"))
    async with stack.client("ops", mode) as client:
        for name in ("beta__echo", "alpha__add", "notes__read_note", "nosuch__tool", "echo", "alpha__nosuch"):
            with pytest.raises(MCPError) as caught:
                await client.call_tool(name, {"text": "x"})
            assert caught.value.code == types.INVALID_PARAMS
            assert caught.value.message == f"Unknown tool: {name}"  # forbidden looks like missing
    assert len(stack.beta.events("call")) == before
    # a key no rule names may not use the endpoint at all: the SDK's client fails to connect (how
    # it reports the 403 varies with the era and the race of its tasks; the answer itself, a
    # JSON-RPC error -32003 with HTTP 403, is checked in test_the_endpoint_needs_a_gateway_key)
    with pytest.raises(Exception):  # noqa: B017
        async with stack.client("none", mode) as client:
            await client.list_tools()


@pytest.mark.parametrize("presented", [None, "tllm_wrong_key_000000000", "admin"])
def test_the_endpoint_needs_a_gateway_key(stack: Stack, presented: str | None) -> None:
    token = stack.admin_token if presented == "admin" else presented
    headers = {"authorization": f"Bearer {token}"} if token is not None else {}
    status = 401
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    answer = httpx2.post(
        stack.url, json=body, headers={**headers, "accept": "application/json, text/event-stream"}
    )
    assert answer.status_code == status
    refused = httpx2.post(
        stack.url,
        json=body,
        headers={
            "authorization": f"Bearer {stack.keys['none']}",
            "accept": "application/json, text/event-stream",
        },
    )
    assert refused.status_code == 403 and refused.json()["error"]["code"] == -32003


def component(stack: Stack) -> McpGateway:
    assert stack.gateway.gateway is not None
    found = stack.gateway.gateway.view.component(McpGateway)
    assert isinstance(found, McpGateway)
    return found


def metrics(stack: Stack) -> str:
    answer = httpx2.get(
        stack.gateway.url + "/metrics", headers={"authorization": f"Bearer {stack.admin_token}"}
    )
    assert answer.status_code == 200
    return answer.text


@pytest.mark.parametrize("mode", MODES)
async def test_a_dead_server_is_reported_and_the_others_keep_working(stack: Stack, mode: str) -> None:
    dead = component(stack).upstreams["dead"]
    assert dead.state != "up" and dead.error is not None and "ConnectError" in dead.error
    text = metrics(stack)
    assert 'truckllm_mcp_server_up{server="dead"} 0' in text
    assert 'truckllm_mcp_server_up{server="alpha"} 1' in text
    async with stack.client("dev", mode) as client:
        names = [t.name for t in (await client.list_tools()).tools]
        assert not any(n.startswith("dead__") for n in names) and "alpha__echo" in names
        result = await client.call_tool("dead__anything", {})
        assert result.is_error and "unavailable" in str(result.content)
        assert text_of(await client.call_tool("alpha__echo", {"text": "still"})) == "alpha:still"


async def test_a_server_that_crashes_mid_call_is_removed_then_comes_back(stack: Stack) -> None:
    hostile = stack.hostile
    upstream = component(stack).upstreams["hostile"]
    failures = upstream.failures
    async with stack.client("dev") as client:
        crashed = await client.call_tool("hostile__crash", {})
        assert crashed.is_error and "hostile" in str(crashed.content)
        await asyncio.to_thread(hostile.wait_gone)
        await asyncio.to_thread(wait_for, lambda: upstream.state == "down", 20, "hostile marked down")
        names = [t.name for t in (await client.list_tools()).tools]
        assert not any(n.startswith("hostile__") for n in names)
        assert "alpha__echo" in names and "notes__read_note" in names
        assert text_of(await client.call_tool("beta__echo", {"text": "ok"})) == "beta:ok"
        assert upstream.failures > failures
        # it comes back on its port: reconnected with backoff, its tools listed again
        hostile.start()
        await asyncio.to_thread(wait_for, lambda: upstream.state == "up", 30, "hostile back")
        names = [t.name for t in (await client.list_tools()).tools]
        assert "hostile__fine" in names
        assert text_of(await client.call_tool("hostile__fine", {})) == "fine"


async def test_hostile_answers_never_break_the_endpoint(stack: Stack) -> None:
    async with stack.client("dev") as client:
        huge = await client.call_tool("hostile__huge", {})
        assert huge.is_error and "at most" in str(huge.content)
        deep = await client.call_tool("hostile__deep", {})
        assert deep.is_error and "could not" not in str(deep.content)  # unreadable: this call fails
        assert "Failed to parse" in str(deep.content) and len(str(deep.content)) < 1000
        bad = await client.call_tool("alpha__add", {"a": "not a number", "b": 1})
        assert bad.is_error  # the upstream's own validation, passed through
        assert text_of(await client.call_tool("alpha__echo", {"text": "after"})) == "alpha:after"


async def test_an_upstream_echoing_its_credential_is_scrubbed(stack: Stack) -> None:
    async with stack.client("dev") as client:
        result = await client.call_tool("beta__leak", {})
    text = str(result.content)
    assert stack.beta_key not in text and "<secret>" in text


async def test_every_tool_call_is_recorded_and_counted(stack: Stack) -> None:
    async with stack.client("dev") as client:
        await client.call_tool("alpha__echo", {"text": "recorded"})
    async with stack.client("ops") as client:
        with pytest.raises(MCPError):
            await client.call_tool("beta__echo", {"text": "denied"})

    def records() -> list[Any]:
        return [r for r in stack.recorder.records if r.endpoint == "mcp.tools/call"]

    wait_for(
        lambda: any(r.gateway_key == "ops" and r.provider == "beta" for r in records()), what="the records"
    )
    ok = [r for r in records() if r.gateway_key == "dev" and r.provider == "alpha" and r.model == "echo"]
    assert ok and ok[-1].status == 200 and ok[-1].team == "research" and ok[-1].latency_ms > 0
    assert ok[-1].alias == "alpha__echo" and ok[-1].extra["mcp_outcome"] == "ok"
    denied = [r for r in records() if r.gateway_key == "ops" and r.provider == "beta"]
    assert denied[-1].status == 403 and denied[-1].error_kind == "denied"
    text = metrics(stack)
    assert 'truckllm_mcp_tool_calls_total{server="alpha",tool="echo",outcome="ok"}' in text
    assert 'truckllm_mcp_tool_calls_total{server="beta",tool="echo",outcome="denied"}' in text
    assert 'truckllm_mcp_tool_call_seconds_count{server="alpha"}' in text


async def test_the_keys_rpm_limits_tool_calls(stack: Stack) -> None:
    async with stack.client("slow") as client:
        for _ in range(2):
            await client.call_tool("alpha__echo", {"text": "rpm"})
        with pytest.raises(MCPError) as caught:
            await client.call_tool("alpha__echo", {"text": "rpm"})
    assert caught.value.code == RATE_LIMITED and "Rate limit" in caught.value.message


def test_upstream_credentials_are_redacted_in_the_admin_config(stack: Stack) -> None:
    answer = httpx2.get(
        stack.gateway.url + "/admin/v1/config", headers={"authorization": f"Bearer {stack.admin_token}"}
    )
    assert answer.status_code == 200
    for secret in (stack.alpha_token, stack.beta_key, stack.notes_token):
        assert secret not in answer.text
    servers = answer.json()["config"]["loggers"][0]["mcp"]["servers"]
    assert servers["alpha"]["headers"]["Authorization"] == "<secret>"
    assert servers["notes"]["env"]["NOTES_TOKEN"] == "<secret>"
