"""Claude Code, headless, with the gateway as its MCP server (``--mcp-config`` naming ``/mcp``):
the fake model asks for the upstream MCP server's tool, Claude Code calls it through the gateway,
and the upstream server (written with the official MCP SDK) sees the call with the credential the
gateway holds for it, a credential Claude Code never sees."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agents.harness import GATEWAY_KEY, OutboundTrap, Upstreams, cli, gateway_config, run_agent
from tests.agents.test_claude_code import ALIAS, claude_env
from truckllm_testing.conformance import RecordingPlugin, wait_for
from truckllm_testing.fakes.agent import AgentResponder
from truckllm_testing.server import GatewayServer

BOX_SCRIPT = Path(__file__).parents[2] / "plugins" / "truckllm-mcp" / "tests" / "upstream_server.py"
BOX_TOKEN = "box-upstream-token-5e2f8c1a94"
TOOL = "mcp__truck__box__run_shell"
"""Claude Code's name for the gateway's (``truck``) tool ``box__run_shell``."""


class Box:
    """The upstream MCP server ``box`` (``upstream_server.py box``) in a child process."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, str(BOX_SCRIPT), "box", str(log)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        assert line.startswith("port="), line
        self.url = f"http://127.0.0.1:{line.removeprefix('port=')}/mcp"

    def events(self, event: str) -> list[dict[str, Any]]:
        """What the server logged."""
        if not self.log.exists():
            return []
        rows = [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]
        return [r for r in rows if r.get("event") == event]

    def stop(self) -> None:
        """Stop it."""
        self.process.terminate()
        self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    """The upstream MCP server, fresh for the test."""
    server = Box(tmp_path / "box.jsonl")
    try:
        yield server
    finally:
        server.stop()


def mcp_section(box_url: str) -> str:
    """The gateway's ``mcp`` component: the box, its credential, the agents' key allowed."""
    return f"""
loggers:
  - mcp:
      servers:
        box: {{url: "{box_url}", headers: {{Authorization: "Bearer {BOX_TOKEN}"}}}}
      access:
        - {{keys: [agents], servers: [box]}}
"""


def test_claude_code_calls_an_upstream_mcp_tool_through_the_gateway(
    upstreams: Upstreams, box: Box, home: Path, trap: OutboundTrap
) -> None:
    claude = cli("claude")
    recorder = RecordingPlugin()
    responder = AgentResponder(shells=(TOOL,))
    for fake in upstreams.all():
        fake.reset()
        fake.responder = responder
    try:
        with GatewayServer(
            gateway_config(upstreams) + mcp_section(box.url), extra_plugins=(recorder,), autoload=True
        ) as gateway:
            mcp_config = {
                "mcpServers": {
                    "truck": {
                        "type": "http",
                        "url": gateway.url + "/mcp",
                        "headers": {"Authorization": f"Bearer {GATEWAY_KEY}"},
                    }
                }
            }
            run = run_agent(
                [
                    str(claude),
                    "-p",
                    "Use the box's shell tool to print the truck token, then tell me what it printed.",
                    "--model",
                    ALIAS,
                    "--output-format",
                    "json",
                    "--mcp-config",
                    json.dumps(mcp_config),
                    "--strict-mcp-config",
                    "--allowedTools",
                    TOOL,
                    "--permission-mode",
                    "bypassPermissions",
                    "--no-session-persistence",
                ],
                # MCP tools offered up front, not behind Claude Code's deferred tool search
                {
                    **claude_env(home, gateway, trap.url, "ANTHROPIC_AUTH_TOKEN"),
                    "ENABLE_TOOL_SEARCH": "false",
                },
                cwd=home / "work",
            )
            assert run.returncode == 0, run.describe()
            assert trap.attempts == [], "the agent tried to reach past loopback"
            result = json.loads(run.stdout)
            assert result["is_error"] is False, run.describe()
            # the model asked for the gateway's tool, under Claude Code's name for it
            calls = [t for t in responder.turns if t.action == "call"]
            offered = {
                t["function"]["name"]
                for r in upstreams.oai.requests
                if isinstance(r.json, dict)
                for t in r.json.get("tools", [])
            }
            assert [t.tool for t in calls] == [TOOL], (sorted(offered), run.describe())
            # the upstream server ran it, with the credential only the gateway holds ...
            ran = box.events("call")
            assert [e["args"]["command"] for e in ran] == [responder.command], ran
            assert {e["header"] for e in box.events("http")} == {f"Bearer {BOX_TOKEN}"}
            # ... its output came back to the model and into the answer
            assert any(responder.token in r for r in responder.results), responder.turns
            assert responder.token in result["result"], run.describe()
            # and the gateway recorded the call for the agents' key
            wait_for(lambda: any(r.endpoint == "mcp.tools/call" for r in recorder.records), 10, "the record")
            record = next(r for r in recorder.records if r.endpoint == "mcp.tools/call")
            assert record.gateway_key == "agents" and record.provider == "box" and record.model == "run_shell"
            assert record.status == 200
    finally:
        for fake in upstreams.all():
            fake.responder = None
