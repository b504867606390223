"""Nothing an upstream sends reaches a log unscrubbed, the MCP SDK's own log lines included.

Every log output of the process is captured at DEBUG (the root logger and its handlers, the
gateway's loguru sinks, the file descriptors 1 and 2) while hostile servers answer with the
credential the gateway holds for them, malformed in every way the SDK logs: a body that is not
JSON, JSON of the wrong shape, an event that is not JSON-RPC, an unknown event name, an error
page, and a stdio line that is not JSON-RPC. The credentials must appear nowhere; the SDK's lines
must be there, scrubbed (so that the test cannot pass by logging nothing).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger
from truckllm_mcp import McpGateway
from truckllm_mcp.sdklog import MAX_LINE, SDK_LOGGERS, SdkLogRoute

from truckllm_testing.conformance import wait_for
from truckllm_testing.server import GatewayServer

from .conftest import SERVER_SCRIPT, UpstreamProcess, mcp_client
from .upstream_server import LEAKY_KEY, LEAKY_TOOLS

STDIO_TOKEN = "st-6b2e9f0c48d1a7e3b5c9"  # likewise
KEY = "tllm_sdklog_0123456789abcdef"


class Everything(logging.Handler):
    """Keeps every record the root logger sees, formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def captured() -> Iterator[tuple[Everything, list[str]]]:
    """The root logger at DEBUG into :class:`Everything`; a loguru sink at DEBUG."""
    root = logging.getLogger()
    everything, level = Everything(), root.level
    root.addHandler(everything)
    root.setLevel(logging.DEBUG)
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="DEBUG", format="{message}")
    try:
        yield everything, lines
    finally:
        logger.remove(sink)
        root.removeHandler(everything)
        root.setLevel(level)


def config(leaky: UpstreamProcess, log: Path) -> str:
    servers = {
        "leaky": {"url": leaky.url, "headers": {"X-Api-Key": LEAKY_KEY}},
        "stdioleak": {
            "command": sys.executable,
            "args": [str(SERVER_SCRIPT), "stdio-leaky", str(log)],
            "env": {"NOTES_TOKEN": STDIO_TOKEN},
            "connect_timeout": "5s",
        },
    }
    return json.dumps(
        {
            "providers": {"demo": {"type": "mock"}},
            "models": {"m": {"deployments": [{"provider": "demo", "model": "echo"}]}},
            "keys": [{"name": "dev", "value": KEY}],
            "loggers": [
                {
                    "mcp": {
                        "servers": servers,
                        "access": [{"keys": ["dev"]}],
                        "backoff_base": "1h",
                        "backoff_max": "1h",
                    }
                }
            ],
        }
    )


def test_no_log_output_carries_a_credential_an_upstream_echoed(
    tmp_path: Path, captured: tuple[Everything, list[str]], capfd: pytest.CaptureFixture[str]
) -> None:
    everything, lines = captured
    log = tmp_path / "upstreams.jsonl"
    leaky = UpstreamProcess("leaky", log).start()
    try:
        with GatewayServer(config(leaky, log), autoload=True) as gw:
            assert gw.gateway is not None
            component = gw.gateway.view.component(McpGateway)
            assert component is not None
            wait_for(lambda: component.upstreams["stdioleak"].state == "down", 30, "the stdio server down")
            assert component.upstreams["leaky"].state == "up"

            async def call_all() -> dict[str, Any]:
                results: dict[str, Any] = {}
                async with mcp_client(gw.url + "/mcp", KEY) as client:
                    for tool in LEAKY_TOOLS:
                        try:
                            results[tool] = await client.call_tool(f"leaky__{tool}", {})
                        except Exception as exc:  # an MCP error is an answer too
                            results[tool] = exc
                return results

            results = asyncio.run(call_all())
        called = {event["tool"] for event in leaky.events("call")}
        assert called == set(LEAKY_TOOLS) - {"fine"}  # each hostile answer was really sent
        assert [
            e
            for e in json.loads("[" + ",".join(log.read_text().splitlines()) + "]")
            if e["event"] == "leaked"
        ]
    finally:
        leaky.stop()
    out, err = capfd.readouterr()
    everything_text = "\n".join([*everything.lines, *lines, out, err, repr(results)])
    for secret in (LEAKY_KEY, STDIO_TOKEN):
        assert secret not in everything_text
        for start in range(0, len(secret) - 8):  # nor any 8-character piece of it
            assert secret[start : start + 8] not in everything_text, secret[start : start + 8]
    sdk_lines = [line.rstrip("\n") for line in lines if line.startswith("mcp sdk ")]
    assert any("Error parsing JSON response" in line for line in sdk_lines), sdk_lines
    assert any("<secret>" in line for line in sdk_lines), sdk_lines  # the echo was there, scrubbed
    assert all(len(line) <= MAX_LINE + 100 and "\n" not in line for line in sdk_lines)
    assert not any(
        name.split(".")[0] in SDK_LOGGERS for name in (line.split(" ")[0] for line in everything.lines)
    )


# --- the route on its own ----------------------------------------------------------------------------


def test_routes_scrub_with_every_installed_route_and_write_once() -> None:
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="DEBUG", format="{message}")
    sdk = logging.getLogger("mcp.client.test")
    old = SdkLogRoute(lambda text: text.replace("old-secret", "<secret>"))
    new = SdkLogRoute(lambda text: text.replace("new-secret", "<secret>"))
    try:
        old.install()
        new.install()  # a reload: both installed for a moment
        try:
            raise ValueError("input_value='new-secret'\nsecond line old-secret")
        except ValueError:
            sdk.error("failed %s and %s", "old-secret", "new-secret", exc_info=True)
        old.uninstall()
        sdk.warning("after the reload: %s", "new-secret")
        new.uninstall()
        sdk.error("no route: %s", "new-secret")  # silent: the loggers no longer propagate
    finally:
        logger.remove(sink)
        old.uninstall()
        new.uninstall()
    assert [line.rstrip("\n") for line in lines] == [
        "mcp sdk ERROR mcp.client.test: failed <secret> and <secret> (ValueError: input_value='<secret>')",
        "mcp sdk WARNING mcp.client.test: after the reload: <secret>",
    ]
    assert all(not logging.getLogger(name).propagate for name in SDK_LOGGERS)
