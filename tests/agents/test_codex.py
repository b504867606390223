"""Codex CLI (``codex exec``), with the gateway as a custom ``model_provider``
(``wire_api = "responses"``), to an OpenAI deployment (the Responses API passed through to
FakeOpenAI) and to an Anthropic deployment (translated): it runs its shell tool and answers with
the command's output."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.agents.harness import GATEWAY_KEY, OutboundTrap, Upstreams, agent_env, cli, run_agent, usage_row
from truckllm_testing.fakes.agent import AgentResponder, dialect_of
from truckllm_testing.server import GatewayServer

DEPLOYMENTS = {"codex-openai": ("oai", "responses"), "codex-anthropic": ("ant", "anthropic")}
"""Alias -> (provider, the dialect the fake is spoken to in)."""
OPENAI_ONLY_TOOLS = """\
web_search = "disabled"

[agents]
enabled = false
"""
"""Codex's hosted web search and sub-agent tools (a ``namespace`` tool) are OpenAI's built-in
tools: a deployment of another provider cannot run them and the gateway answers 400 naming the
tool, so Codex is told not to offer them."""
KEY_VARIABLE = "TRUCKLLM_API_KEY"


def codex_config(gateway_url: str, alias: str, openai: bool) -> str:
    """``$CODEX_HOME/config.toml``: the gateway as the model provider, the alias as the model,
    no update check, analytics, feedback or OpenTelemetry export, no plugin marketplace sync
    (github.com, chatgpt.com); OpenAI's built-in tools only when ``openai`` serves the alias."""
    return f"""\
model = "{alias}"
model_provider = "truckllm"
check_for_update_on_startup = false
{"" if openai else OPENAI_ONLY_TOOLS}
[features]
plugins = false

[model_providers.truckllm]
name = "TruckLLM"
base_url = "{gateway_url}/v1"
env_key = "{KEY_VARIABLE}"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0

[analytics]
enabled = false

[feedback]
enabled = false

[otel]
exporter = "none"
"""


def codex_env(home: Path, gateway_url: str, alias: str, proxy: str) -> dict[str, str]:
    """Codex's environment: its home (``CODEX_HOME``) with the config above, the gateway key."""
    codex_home = home / ".codex"
    codex_home.mkdir(exist_ok=True)
    openai = DEPLOYMENTS[alias][0] == "oai"
    (codex_home / "config.toml").write_text(codex_config(gateway_url, alias, openai))
    return agent_env(home, {"CODEX_HOME": str(codex_home), KEY_VARIABLE: GATEWAY_KEY}, proxy)


def run_codex(home: Path, gateway_url: str, alias: str, trap: OutboundTrap) -> tuple[str, str]:
    """``codex exec`` on the task; returns (its last message, a description of the run)."""
    codex = cli("codex")
    out = home / "last-message.txt"
    run = run_agent(
        [
            str(codex),
            "exec",
            "--skip-git-repo-check",
            "--ephemeral",
            "--dangerously-bypass-approvals-and-sandbox",
            "--color",
            "never",
            "--output-last-message",
            str(out),
            "Run a shell command that prints the truck token, then tell me what it printed.",
        ],
        codex_env(home, gateway_url, alias, trap.url),
        cwd=home / "work",
    )
    assert run.returncode == 0, run.describe()
    assert trap.attempts == [], "codex tried to reach past loopback"
    return out.read_text(), run.describe()


@pytest.mark.parametrize("alias", list(DEPLOYMENTS))
def test_codex_runs_its_shell_tool_through_the_responses_door(
    gateway: GatewayServer,
    upstreams: Upstreams,
    responder: AgentResponder,
    home: Path,
    trap: OutboundTrap,
    alias: str,
) -> None:
    final, described = run_codex(home, gateway.url, alias, trap)
    # the tool really ran: only the command's output carries the token
    assert responder.token in final, described
    calls = [t for t in responder.turns if t.action == "call"]
    assert len(calls) == 1, responder.turns
    provider, dialect = DEPLOYMENTS[alias]
    fake = upstreams.by_name(provider)
    if provider == "oai":  # passed through: OpenAI's built-in tools reach OpenAI as Codex sent them
        types = {tool["type"] for tool in fake.requests[0].json["tools"]}
        assert {"web_search", "namespace"} <= types, types
    assert any(responder.token in r for r in responder.results), responder.turns
    # ... through the deployment of the alias, and the gateway counted it
    generated = [r for r in fake.requests if dialect_of(r.path) == dialect]
    assert len(generated) >= 2
    others = [f for f in upstreams.all() if f is not fake]
    assert not [r for f in others for r in f.requests if r.method == "POST"]
    assert fake.violations == []
    row = usage_row(gateway, alias, len(generated))
    assert row["group"] == {"alias": alias, "provider": provider}
    assert row["requests"] == len(generated) and row["errors"] == 0 and row["prompt_tokens"] > 0
