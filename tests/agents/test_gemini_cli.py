"""Gemini CLI, headless (``gemini -p``, yolo), through the gateway's Gemini front door to an
Anthropic deployment (FakeAnthropic): it runs run_shell_command and answers with its output."""

from __future__ import annotations

import json
from pathlib import Path

from tests.agents.harness import GATEWAY_KEY, OutboundTrap, Upstreams, agent_env, cli, run_agent, usage_row
from truckllm_testing.fakes.agent import AgentResponder
from truckllm_testing.server import GatewayServer

ALIAS = "gemini-via-anthropic"

SETTINGS = {
    "general": {"disableAutoUpdate": True, "disableUpdateNag": True},
    "privacy": {"usageStatisticsEnabled": False},
    "telemetry": {"enabled": False},
    "security": {"auth": {"selectedType": "gemini-api-key"}, "folderTrust": {"enabled": False}},
    "ide": {"enabled": False},
}
"""``~/.gemini/settings.json``: API-key auth, no usage statistics, telemetry, updates or IDE."""


def gemini_env(home: Path, gateway: GatewayServer, proxy: str) -> dict[str, str]:
    """Gemini CLI's settings for a gateway: its URL and key, the alias as the model, no relaunch."""
    (home / ".gemini").mkdir(exist_ok=True)
    (home / ".gemini" / "settings.json").write_text(json.dumps(SETTINGS))
    return agent_env(
        home,
        {
            "GOOGLE_GEMINI_BASE_URL": gateway.url,
            "GEMINI_API_KEY": GATEWAY_KEY,
            "GEMINI_MODEL": ALIAS,
            "GEMINI_CLI_NO_RELAUNCH": "true",
            "GEMINI_CLI_TRUST_WORKSPACE": "true",
        },
        proxy,
    )


def test_gemini_cli_runs_a_shell_command_through_the_gemini_door_to_anthropic(
    gateway: GatewayServer, upstreams: Upstreams, responder: AgentResponder, home: Path, trap: OutboundTrap
) -> None:
    gemini = cli("gemini")
    run = run_agent(
        [
            str(gemini),
            "-p",
            "Run a shell command that prints the truck token, then tell me what it printed.",
            "-m",
            ALIAS,
            "--approval-mode",
            "yolo",
            "--output-format",
            "json",
        ],
        gemini_env(home, gateway, trap.url),
        cwd=home / "work",
    )
    assert run.returncode == 0, run.describe()
    assert trap.attempts == [], "the agent tried to reach past loopback"
    result = json.loads(run.stdout)
    # the tool really ran: only the command's output carries the token
    assert responder.token in result["response"], run.describe()
    calls = [t for t in responder.turns if t.action == "call"]
    assert [t.tool for t in calls] == ["run_shell_command"], responder.turns
    assert any(responder.token in r for r in responder.results), responder.turns
    # ... through the Anthropic deployment, and the gateway counted it
    messages = [r for r in upstreams.ant.requests if r.path.endswith("/messages")]
    assert messages and all(r.json["model"] == "claude-sonnet-4-5-20250929" for r in messages)
    assert not [r for r in upstreams.oai.requests + upstreams.gem.requests if r.method == "POST"]
    assert upstreams.ant.violations == []
    row = usage_row(gateway, ALIAS, len(messages))
    assert row["group"] == {"alias": ALIAS, "provider": "ant"}
    assert row["requests"] == len(messages) and row["errors"] == 0 and row["prompt_tokens"] > 0
