"""Claude Code, headless (``claude -p``), through the gateway's Anthropic front door to an OpenAI
chat deployment (FakeOpenAI): it runs the Bash tool and answers with the command's output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.agents.harness import GATEWAY_KEY, OutboundTrap, Upstreams, agent_env, cli, run_agent, usage_row
from truckllm_testing.fakes.agent import AgentResponder
from truckllm_testing.server import GatewayServer

ALIAS = "claude-via-openai"


def claude_env(home: Path, gateway: GatewayServer, proxy: str, key_variable: str) -> dict[str, str]:
    """Claude Code's settings for a gateway: its URL and key (``ANTHROPIC_AUTH_TOKEN`` is sent as
    ``Authorization: Bearer``, ``ANTHROPIC_API_KEY`` as ``x-api-key``), every model an alias, no
    traffic of its own (telemetry, error reports, auto-update, IDE probes)."""
    return agent_env(
        home,
        {
            "ANTHROPIC_BASE_URL": gateway.url,
            key_variable: GATEWAY_KEY,
            "ANTHROPIC_MODEL": ALIAS,
            "ANTHROPIC_DEFAULT_OPUS_MODEL": ALIAS,
            "ANTHROPIC_DEFAULT_SONNET_MODEL": ALIAS,
            "ANTHROPIC_DEFAULT_HAIKU_MODEL": ALIAS,
            "ANTHROPIC_SMALL_FAST_MODEL": ALIAS,
            "CLAUDE_CONFIG_DIR": str(home / ".claude"),
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_BUG_COMMAND": "1",
            "DISABLE_COST_WARNINGS": "1",
            "CLAUDE_CODE_IDE_SKIP_AUTO_INSTALL": "1",
            "IS_SANDBOX": "1",
        },
        proxy,
    )


@pytest.mark.parametrize("key_variable", ["ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_API_KEY"])
def test_claude_code_runs_bash_through_the_anthropic_door_to_openai(
    gateway: GatewayServer,
    upstreams: Upstreams,
    responder: AgentResponder,
    home: Path,
    trap: OutboundTrap,
    key_variable: str,
) -> None:
    claude = cli("claude")
    run = run_agent(
        [
            str(claude),
            "-p",
            "Run a shell command that prints the truck token, then tell me what it printed.",
            "--model",
            ALIAS,
            "--output-format",
            "json",
            "--allowedTools",
            "Bash",
            "--permission-mode",
            "bypassPermissions",
            "--no-session-persistence",
        ],
        claude_env(home, gateway, trap.url, key_variable),
        cwd=home / "work",
    )
    assert run.returncode == 0, run.describe()
    assert trap.attempts == [], "the agent tried to reach past loopback"
    result = json.loads(run.stdout)
    assert result["is_error"] is False, run.describe()
    # the tool really ran: only the command's output carries the token
    assert responder.token in result["result"], run.describe()
    calls = [t for t in responder.turns if t.action == "call"]
    assert [t.tool for t in calls] == ["Bash"], responder.turns
    assert any(responder.token in r for r in responder.results), responder.turns
    # ... through the OpenAI deployment, and the gateway counted it
    chat = [r for r in upstreams.oai.requests if r.path.endswith("/chat/completions")]
    assert chat and all(r.json["model"] == "gpt-4o-2024-08-06" for r in chat)
    assert not [r for r in upstreams.ant.requests + upstreams.gem.requests if r.method == "POST"]
    assert upstreams.oai.violations == []
    row = usage_row(gateway, ALIAS, len(chat))
    assert row["group"] == {"alias": ALIAS, "provider": "oai"}
    assert row["requests"] == len(chat) and row["errors"] == 0 and row["prompt_tokens"] > 0
