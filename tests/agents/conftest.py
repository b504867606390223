"""Real coding agents through a real gateway to the fake upstreams (``make test-agents``).

These tests start the agents' own CLIs (installed by ``npm ci --prefix tests/agents``) and the
OpenAI Agents SDK; they run only when ``TRUCKLLM_AGENTS=1`` so that ``make test`` stays fast.
Each agent gets a home of its own under ``tmp_path`` (``HOME``, ``XDG_*``, its config dir), every
telemetry, update check and IDE probe its makers document turned off, and a proxy that refuses
every connection for anything not on loopback: nothing reaches a real provider.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agents.harness import AGENT_TIMEOUT, HERE, OutboundTrap, Upstreams, gateway_config
from truckllm_testing.fakes import FakeAnthropic, FakeGemini, FakeOpenAI
from truckllm_testing.fakes.agent import AgentResponder
from truckllm_testing.server import GatewayServer


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip every agent test unless ``TRUCKLLM_AGENTS=1`` (``make test-agents`` sets it); when
    they run, give each the agent's bound plus two minutes for the gateway and the fakes."""
    enabled = os.environ.get("TRUCKLLM_AGENTS") == "1"
    skip = pytest.mark.skip(reason="coding-agent tests run under `make test-agents` (TRUCKLLM_AGENTS=1)")
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.timeout(AGENT_TIMEOUT + 120) if enabled else skip)


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Upstreams]:
    """The fakes, running in threads for the whole module."""
    up = Upstreams(
        FakeOpenAI(keys=["oai-upstream-key"]),
        FakeAnthropic(keys=["ant-upstream-key"]),
        FakeGemini(keys=["gem-upstream-key"]),
    )
    with up.oai.running(), up.ant.running(), up.gem.running():
        yield up


@pytest.fixture
def gateway(upstreams: Upstreams) -> Iterator[GatewayServer]:
    """A real gateway on loopback in front of the fakes, fresh for each test (its usage counts
    that test's requests only)."""
    with GatewayServer(gateway_config(upstreams)) as server:
        yield server


@pytest.fixture
def responder(upstreams: Upstreams) -> Iterator[AgentResponder]:
    """A fresh scripted model on every fake; the fakes forget earlier tests' requests."""
    agent = AgentResponder()
    for fake in upstreams.all():
        fake.reset()
        fake.responder = agent
    yield agent
    for fake in upstreams.all():
        fake.responder = None


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty home directory for one agent run."""
    path = tmp_path / "home"
    for sub in ("", ".config", ".cache", ".local/share", ".local/state", "work"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def trap() -> Iterator[OutboundTrap]:
    """The proxy every agent process gets: it refuses and records any request leaving loopback."""
    proxy = OutboundTrap()
    yield proxy
    proxy.close()
