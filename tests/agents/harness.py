"""What the coding-agent tests share: the gateway's config, an agent's environment, running an
agent within its time bound, and reading the gateway's usage records."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from truckllm_testing.fakes import FakeAnthropic, FakeGemini, FakeOpenAI, FakeUpstream
from truckllm_testing.server import GatewayServer

HERE = Path(__file__).parent
BIN = HERE / "node_modules" / ".bin"
GATEWAY_KEY = "tllm-agents-" + secrets.token_hex(8)
ADMIN_TOKEN = "agents-admin-" + secrets.token_hex(8)
AGENT_TIMEOUT = 120.0
"""Seconds an agent CLI may take for its task."""

ALIASES = {
    "claude-via-openai": ("oai", "gpt-4o-2024-08-06"),
    "gemini-via-anthropic": ("ant", "claude-sonnet-4-5-20250929"),
    "codex-openai": ("oai", "gpt-5-codex"),
    "codex-anthropic": ("ant", "claude-sonnet-4-5-20250929"),
    "sdk-anthropic": ("ant", "claude-sonnet-4-5-20250929"),
    "sdk-gemini": ("gem", "gemini-2.5-flash"),
}
"""Gateway alias -> (provider, upstream model): each agent test has aliases of its own."""


@dataclass
class Upstreams:
    """The three fakes behind the gateway, by provider name."""

    oai: FakeOpenAI
    ant: FakeAnthropic
    gem: FakeGemini

    def by_name(self, name: str) -> FakeUpstream:
        """The fake of a gateway provider name (``oai``, ``ant``, ``gem``)."""
        fake: FakeUpstream = getattr(self, name)
        return fake

    def all(self) -> tuple[FakeUpstream, ...]:
        """Every fake."""
        return (self.oai, self.ant, self.gem)


def gateway_config(up: Upstreams) -> str:
    """The gateway's YAML: one gateway key, the three fakes, the agents' aliases."""
    models = "\n".join(
        f"  {alias}: {{deployments: [{{provider: {provider}, model: {model}}}]}}"
        for alias, (provider, model) in ALIASES.items()
    )
    return f"""
admin: {{token: {ADMIN_TOKEN}}}
keys: [{{name: agents, value: {GATEWAY_KEY}}}]
routing: {{retries: 0}}
providers:
  oai: {{type: openai, base_url: {up.oai.base_url}, keys: [{{name: o, value: oai-upstream-key}}]}}
  ant: {{type: anthropic, base_url: {up.ant.base_url}, keys: [{{name: a, value: ant-upstream-key}}]}}
  gem: {{type: gemini, base_url: {up.gem.base_url}, keys: [{{name: g, value: gem-upstream-key}}]}}
models:
{models}
"""


class OutboundTrap:
    """An HTTP proxy on loopback that refuses everything and remembers what was asked of it.

    Agents get it as ``HTTPS_PROXY``/``HTTP_PROXY`` (loopback excepted): a request that would
    have left the machine (telemetry, update checks, a real provider) ends here with a 403 and
    is listed in :attr:`attempts` (``CONNECT host:443`` or ``GET http://...``).
    """

    def __init__(self) -> None:
        self.attempts: list[str] = []
        """The request line of every connection made through the proxy."""
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._thread = threading.Thread(target=self._serve, name="outbound-trap", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """The proxy's URL."""
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:  # closed
                return
            with conn:
                conn.settimeout(5)
                try:
                    line = conn.recv(4096).split(b"\r\n", 1)[0]
                    self.attempts.append(line.decode(errors="replace"))
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    continue

    def close(self) -> None:
        """Stop listening."""
        self._sock.close()
        self._thread.join(5)


def agent_env(home: Path, extra: Mapping[str, str], proxy: str = "http://127.0.0.1:9") -> dict[str, str]:
    """The environment of an agent process: a private home, no proxy for loopback, ``proxy``
    (an :class:`OutboundTrap`; a closed port by default) for everything else, and ``extra``."""
    dead = proxy
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "NO_COLOR": "1",
        "CI": "1",
        "HOME": str(home),
        "USERPROFILE": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_STATE_HOME": str(home / ".local/state"),
        "TMPDIR": str(home.parent),
        "HTTP_PROXY": dead,
        "HTTPS_PROXY": dead,
        "http_proxy": dead,
        "https_proxy": dead,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    env.update(extra)
    return env


@dataclass
class Run:
    """A finished agent process."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def describe(self) -> str:
        """Exit code and the ends of both outputs, for an assertion message."""
        return f"exit {self.returncode} after {self.seconds:.1f}s\nstdout: {self.stdout[-3000:]}\nstderr: {self.stderr[-3000:]}"


def cli(name: str) -> Path:
    """The installed CLI ``name``; a skip saying why when it is not installed or cannot run on
    this machine (no native build for the platform, a Node.js too old for it)."""
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed: run `npm ci --prefix tests/agents` (make test-agents does)")
    try:
        with tempfile.TemporaryDirectory() as home:  # the probe touches no real home either
            probe = subprocess.run(
                [str(path), "--version"],
                env=agent_env(Path(home), {}),
                capture_output=True,
                text=True,
                timeout=60,
                stdin=subprocess.DEVNULL,
            )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"{name} is installed but cannot run on this machine: {exc}")
    if probe.returncode != 0:
        pytest.skip(
            f"{name} is installed but cannot run on this machine: {(probe.stderr or probe.stdout)[-500:]}"
        )
    return path


def run_agent(argv: list[str], env: Mapping[str, str], cwd: Path, timeout: float = AGENT_TIMEOUT) -> Run:
    """Run an agent to completion within ``timeout`` seconds (a hung agent fails the test)."""
    started = time.monotonic()
    try:
        done = subprocess.run(
            argv,
            env=dict(env),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        pytest.fail(
            f"{argv[0]} did not finish within {timeout:.0f}s\nstdout: {out[-3000:]}\nstderr: {err[-3000:]}"
        )
    return Run(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


def usage_row(gateway: GatewayServer, alias: str, requests: int) -> dict[str, Any]:
    """The gateway's one usage row for ``alias`` grouped by provider, once it counts
    ``requests`` requests (records are written off the response path; waits up to 10 s)."""
    deadline = time.monotonic() + 10
    while True:
        answer = httpx.get(
            gateway.url + "/admin/v1/usage",
            params={"group_by": "alias,provider", "alias": alias},
            headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=10,
        )
        answer.raise_for_status()
        rows: list[dict[str, Any]] = answer.json()["rows"]
        if sum(r["requests"] for r in rows) >= requests or time.monotonic() > deadline:
            assert len(rows) == 1, rows
            return rows[0]
        time.sleep(0.2)
