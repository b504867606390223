"""Fixtures: upstream MCP servers written with the official SDK (child processes: three over
streamable HTTP, one over stdio, and an address where nothing listens), a real gateway on
loopback serving ``/mcp``, and the SDK's client connected through it with a gateway key."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from truckllm._internal.crypto import Keyring, parse_master_key, seal
from truckllm_testing.conformance import RecordingPlugin
from truckllm_testing.server import GatewayServer

HERE = Path(__file__).parent
SERVER_SCRIPT = HERE / "upstream_server.py"
ALPHA_TOKEN = "alpha-upstream-token-7f3c9a2e51"
BETA_KEY = "beta-upstream-key-0d8b4e6f27"
NOTES_TOKEN = "notes-upstream-token-93ab41c7"
MASTER_KEY = "41" * 32
ADMIN_TOKEN = "admin-token-mcp-0123456789"
KEYS = {
    "dev": "tllm_mcp_dev_0123456789abcdef",
    "ops": "tllm_mcp_ops_0123456789abcdef",
    "none": "tllm_mcp_none_0123456789abcde",
    "slow": "tllm_mcp_slow_0123456789abcde",
}


class UpstreamProcess:
    """One upstream MCP server in a child process (see ``upstream_server.py``)."""

    def __init__(self, kind: str, log: Path, port: int = 0) -> None:
        self.kind = kind
        self.log = log
        self.port = port
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> UpstreamProcess:
        """Start it; return once it listens."""
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()  # a process started before (it has exited)
        env = {**os.environ, "MCP_TEST_PORT": str(self.port)}
        self.process = subprocess.Popen(
            [sys.executable, str(SERVER_SCRIPT), self.kind, str(self.log)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        assert line.startswith("port="), f"{self.kind} did not start: {line!r}"
        self.port = int(line.removeprefix("port="))
        return self

    @property
    def url(self) -> str:
        """Its streamable-HTTP endpoint."""
        return f"http://127.0.0.1:{self.port}/mcp"

    def events(self, event: str | None = None) -> list[dict[str, Any]]:
        """What it logged (of one kind of event)."""
        if not self.log.exists():
            return []
        rows = [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]
        return [
            r for r in rows if r.get("server") == self.kind and (event is None or r.get("event") == event)
        ]

    def stop(self) -> None:
        """Stop it (and wait until it is gone)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()

    def wait_gone(self) -> None:
        """Wait until the process has exited (it crashed on purpose)."""
        assert self.process is not None
        self.process.wait(20)


def free_port() -> int:
    """A loopback port where nothing listens (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sealed(value: str) -> str:
    """``value`` as an ``enc:v1:`` config value under :data:`MASTER_KEY`."""
    return seal(value, Keyring(parse_master_key(MASTER_KEY)))


def gateway_config(
    alpha: UpstreamProcess, beta: UpstreamProcess, hostile: UpstreamProcess, log: Path, dead_port: int
) -> str:
    """A gateway with four reachable upstream servers, one dead address, and access rules."""
    servers = {
        "alpha": {"url": alpha.url, "headers": {"Authorization": "Bearer ${ALPHA_TOKEN}"}},
        "beta": {"url": beta.url, "headers": {"X-Api-Key": sealed(BETA_KEY)}},
        "hostile": {"url": hostile.url, "timeout": "3s"},
        "notes": {
            "command": sys.executable,
            "args": [str(SERVER_SCRIPT), "notes", str(log)],
            "env": {"NOTES_TOKEN": "${NOTES_TOKEN}"},
            "connect_timeout": "30s",
        },
        "dead": {"url": f"http://127.0.0.1:{dead_port}/mcp", "connect_timeout": "2s"},
    }
    mcp = {
        "refresh": "1s",
        "backoff_base": "200ms",
        "backoff_max": "1s",
        "servers": servers,
        "access": [
            {"teams": ["research"], "servers": ["*"]},
            {"keys": ["ops"], "servers": ["alpha", "beta"], "tools": ["alpha__echo"]},
            {"keys": ["slow"], "servers": ["alpha"]},
        ],
    }
    config = {
        "admin": {"token": ADMIN_TOKEN},
        "providers": {"demo": {"type": "mock"}},
        "models": {"m": {"deployments": [{"provider": "demo", "model": "echo"}]}},
        "teams": {"research": {}},
        "keys": [
            {"name": "dev", "value": KEYS["dev"], "team": "research"},
            {"name": "ops", "value": KEYS["ops"]},
            {"name": "none", "value": KEYS["none"]},
            {"name": "slow", "value": KEYS["slow"], "rpm": 2},
        ],
        "loggers": [{"mcp": mcp}],
    }
    return json.dumps(config)


class Stack:
    """The upstream servers, the gateway, and what its loggers received."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.log = tmp / "upstreams.jsonl"
        self.alpha = UpstreamProcess("alpha", self.log).start()
        self.beta = UpstreamProcess("beta", self.log).start()
        self.hostile = UpstreamProcess("hostile", self.log).start()
        self.notes = UpstreamProcess("notes", self.log)  # started by the gateway (stdio)
        self.dead_port = free_port()
        self.recorder = RecordingPlugin()
        self.gateway = GatewayServer(
            gateway_config(self.alpha, self.beta, self.hostile, self.log, self.dead_port),
            env={
                "ALPHA_TOKEN": ALPHA_TOKEN,
                "NOTES_TOKEN": NOTES_TOKEN,
                "TRUCKLLM_MASTER_KEY": MASTER_KEY,
            },
            extra_plugins=(self.recorder,),
            autoload=True,
        ).start()

    keys = KEYS
    admin_token = ADMIN_TOKEN
    alpha_token = ALPHA_TOKEN
    beta_key = BETA_KEY
    notes_token = NOTES_TOKEN
    server_script = SERVER_SCRIPT

    @property
    def url(self) -> str:
        """The gateway's MCP endpoint."""
        return self.gateway.url + "/mcp"

    def client(self, key: str | None, mode: str = "auto") -> AbstractAsyncContextManager[Client]:
        """The SDK's client connected to the gateway with the gateway key ``key`` (a name of
        :data:`KEYS`, or ``None``)."""
        return mcp_client(self.url, KEYS[key] if key is not None else None, mode)

    def stop(self) -> None:
        """Stop the gateway, then the upstream servers."""
        self.gateway.stop()
        for upstream in (self.alpha, self.beta, self.hostile):
            upstream.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A running stack, shared by a module's tests (none of them leaves it changed)."""
    running = Stack(tmp_path_factory.mktemp("mcp"))
    try:
        yield running
    finally:
        running.stop()


@asynccontextmanager
async def mcp_client(url: str, key: str | None, mode: str = "auto") -> AsyncIterator[Client]:
    """The SDK's client connected to ``url`` with the gateway key ``key``."""
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0), trust_env=False) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode, cache=None) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def alpha_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpstreamProcess]:
    """The ``alpha`` server alone (for tests that build their own gateways)."""
    process = UpstreamProcess("alpha", tmp_path_factory.mktemp("alpha") / "log.jsonl").start()
    try:
        yield process
    finally:
        process.stop()
