"""The OpenAI Agents SDK (``openai-agents``): an Agent with a ``@function_tool`` that runs a shell
command, through the gateway's ``POST /v1/responses`` (OpenAIResponsesModel over an AsyncOpenAI
client pointed at the gateway, tracing off) to Anthropic and Gemini deployments."""

from __future__ import annotations

import subprocess

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


@pytest.mark.parametrize("stream", [False, True], ids=["run", "streamed"])
@pytest.mark.parametrize("alias", list(DEPLOYMENTS))
async def test_an_agent_with_a_function_tool_through_the_responses_door(
    gateway: GatewayServer, upstreams: Upstreams, responder: AgentResponder, alias: str, stream: bool
) -> None:
    agents = pytest.importorskip(
        "agents", reason="openai-agents is not installed (pip install openai-agents)"
    )
    async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=GATEWAY_KEY, max_retries=0) as client:
        agent = agents.Agent(
            name="truck",
            instructions="Use run_shell to run commands.",
            tools=[agents.function_tool(run_shell)],
            model=agents.OpenAIResponsesModel(model=alias, openai_client=client),
        )
        config = agents.RunConfig(tracing_disabled=True)
        task = "Run a shell command that prints the truck token, then tell me what it printed."
        if stream:
            streamed = agents.Runner.run_streamed(agent, task, run_config=config, max_turns=4)
            async for _ in streamed.stream_events():
                pass
            final = streamed.final_output
        else:
            final = (await agents.Runner.run(agent, task, run_config=config, max_turns=4)).final_output
    # the tool really ran: only the command's output carries the token
    assert responder.token in final
    assert [t.tool for t in responder.turns if t.action == "call"] == ["run_shell"]
    assert any(responder.token in r for r in responder.results), responder.turns
    # ... through the deployment of the alias, and the gateway counted it
    provider, dialect = DEPLOYMENTS[alias]
    fake = upstreams.by_name(provider)
    assert [dialect_of(r.path) for r in fake.requests] == [dialect, dialect]
    others = [f for f in upstreams.all() if f is not fake]
    assert not [r for f in others for r in f.requests if r.method == "POST"]
    assert fake.violations == []
    row = usage_row(gateway, alias, 2)
    assert row["group"] == {"alias": alias, "provider": provider}
    assert row["requests"] >= 2 and row["errors"] == 0 and row["prompt_tokens"] > 0
