"""The OpenAI Agents SDK (``openai-agents``): an Agent with a ``@function_tool`` that runs a shell
command, through the gateway's ``POST /v1/responses`` (OpenAIResponsesModel over an AsyncOpenAI
client pointed at the gateway, tracing off) to Anthropic and Gemini deployments."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

import httpx2 as httpx
import openai
import pytest

from tests.agents.harness import GATEWAY_KEY, Upstreams, usage_row
from truckllm_testing.fakes.agent import AgentResponder, dialect_of
from truckllm_testing.server import GatewayServer

DEPLOYMENTS = {"sdk-anthropic": ("ant", "anthropic"), "sdk-gemini": ("gem", "gemini")}


def run_shell(command: str) -> str:
    """Run a shell command and return what it printed.

    :param command: the command line, run by ``sh -c``.
    """
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=30)
    return done.stdout + done.stderr


@pytest.mark.parametrize("mode", ["run", "streamed", "chained"])
@pytest.mark.parametrize("alias", list(DEPLOYMENTS))
async def test_an_agent_with_a_function_tool_through_the_responses_door(
    gateway: GatewayServer, upstreams: Upstreams, responder: AgentResponder, alias: str, mode: str
) -> None:
    """``run`` and ``streamed`` send the whole conversation each turn; ``chained`` sends only the
    tool's output with ``previous_response_id`` (the gateway keeps the rest)."""
    provider, dialect = DEPLOYMENTS[alias]
    agents = pytest.importorskip(
        "agents", reason="openai-agents is not installed (pip install openai-agents)"
    )
    sent: list[dict[str, Any]] = []
    answered: list[httpx.Response] = []

    async def on_request(request: httpx.Request) -> None:
        sent.append(json.loads(request.content))

    async def on_response(response: httpx.Response) -> None:
        answered.append(response)

    hooks: dict[str, list[Callable[..., Any]]] = {"request": [on_request], "response": [on_response]}
    async with openai.AsyncOpenAI(
        base_url=gateway.url + "/v1",
        api_key=GATEWAY_KEY,
        max_retries=0,
        http_client=httpx.AsyncClient(event_hooks=hooks),
    ) as client:
        agent = agents.Agent(
            name="truck",
            instructions="Use run_shell to run commands.",
            tools=[agents.function_tool(run_shell)],
            model=agents.OpenAIResponsesModel(model=alias, openai_client=client),
        )
        config = agents.RunConfig(tracing_disabled=True)
        task = "Run a shell command that prints the truck token, then tell me what it printed."
        if mode == "streamed":
            streamed = agents.Runner.run_streamed(agent, task, run_config=config, max_turns=4)
            async for _ in streamed.stream_events():
                pass
            final = streamed.final_output
        else:
            chained = mode == "chained"
            result = await agents.Runner.run(
                agent, task, run_config=config, max_turns=4, auto_previous_response_id=chained
            )
            final = result.final_output
    # the tool really ran: only the command's output carries the token
    assert responder.token in final
    # two requests; chained, the second sends only the tool's output after the first answer's id
    first, second = sent
    assert "previous_response_id" not in first
    outputs = [i for i in second["input"] if i.get("type") == "function_call_output"]
    assert len(outputs) == 1 and responder.token in outputs[0]["output"]
    if mode == "chained":
        assert second["previous_response_id"].startswith("resp_") and second["input"] == outputs
    else:
        assert "previous_response_id" not in second and len(second["input"]) == 3
    # the gateway answered each, naming the provider
    assert [r.headers["x-truckllm-provider"] for r in answered] == [provider, provider]
    assert all(r.headers["x-request-id"] for r in answered)
    assert [t.tool for t in responder.turns if t.action == "call"] == ["run_shell"]
    assert any(responder.token in r for r in responder.results), responder.turns
    # ... through the deployment of the alias, and the gateway counted it
    fake = upstreams.by_name(provider)
    assert [dialect_of(r.path) for r in fake.requests] == [dialect, dialect]
    others = [f for f in upstreams.all() if f is not fake]
    assert not [r for f in others for r in f.requests if r.method == "POST"]
    assert fake.violations == []
    row = usage_row(gateway, alias, 2)
    assert row["group"] == {"alias": alias, "provider": provider}
    assert row["requests"] == 2 and row["errors"] == 0 and row["prompt_tokens"] > 0
