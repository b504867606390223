"""TruckLLM's pytest plugin (entry point ``pytest11``): fixtures for plugin authors.

Enabled automatically wherever ``truckllm-testing`` is installed (the kernel alone does not bring
it); nothing to put in ``conftest.py``; ``-p no:truckllm`` turns it off.
Importing this module has no side effects and imports nothing heavy: the fixtures import the
gateway and the fakes when they are first used.

- ``truckllm_gateway``: a factory that starts a real gateway on loopback from config text (or a
  dict) with extra plugin objects, and stops it after the test::

      def test_my_plugin(truckllm_gateway, fake_openai):
          gw = truckllm_gateway(CONFIG.format(base_url=fake_openai.base_url), extra_plugins=[my_plugin])
          httpx.post(gw.url + "/v1/chat/completions", ...)

- ``fake_openai``, ``fake_anthropic``, ``fake_gemini``: a running fake upstream (accepting the
  key ``test-key``), stopped after the test.
- ``truckllm_fake``: a factory for a fake with other settings:
  ``truckllm_fake(FakeOpenAI, keys=["k1", "k2"], chunks=5)``.
- ``hostile_upstream``: a running :class:`~truckllm_testing.hostile.HostileUpstream` (OpenAI,
  Anthropic and Gemini paths; ``hostile_upstream.script(Hostile("html"))``), stopped after the test.

For the checks every provider plugin must pass, subclass
:class:`truckllm_testing.conformance.ProviderConformance` in a test module.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    from truckllm_testing.fakes import FakeAnthropic, FakeGemini, FakeOpenAI, FakeUpstream
    from truckllm_testing.hostile import HostileUpstream
    from truckllm_testing.server import GatewayServer

__all__ = [
    "fake_anthropic",
    "fake_gemini",
    "fake_openai",
    "hostile_upstream",
    "truckllm_fake",
    "truckllm_gateway",
]

F = TypeVar("F", bound="FakeUpstream")

TEST_KEY = "test-key"
"""The API key the ``fake_*`` fixtures accept."""


@pytest.fixture
def truckllm_gateway() -> Iterator[Callable[..., GatewayServer]]:
    """Start gateways for the test; each is stopped (drained like SIGTERM) when the test ends.

    The factory takes ``config`` (YAML or JSON text, or a mapping written as JSON) and the
    keyword arguments of :class:`~truckllm_testing.server.GatewayServer`: ``extra_plugins``
    (plugin objects or modules to register besides the installed ones), ``env`` (for
    ``${VAR}`` in the config), ``autoload`` (``False``: load no installed entry point).
    It returns the started :class:`~truckllm_testing.server.GatewayServer` (``.url``,
    ``.port``, ``.gateway``).
    """
    from truckllm_testing.server import GatewayServer

    started: list[GatewayServer] = []

    def start(
        config: str | Mapping[str, Any],
        *,
        extra_plugins: Sequence[object] = (),
        env: Mapping[str, str] | None = None,
        autoload: bool | None = None,
        **kwargs: Any,
    ) -> GatewayServer:
        text = config if isinstance(config, str) else json.dumps(config)
        server = GatewayServer(text, extra_plugins=tuple(extra_plugins), env=env, autoload=autoload, **kwargs)
        server.start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def truckllm_fake() -> Iterator[Callable[..., FakeUpstream]]:
    """Start fake upstreams for the test: ``truckllm_fake(FakeOpenAI, keys=[...], chunks=...)``.

    Takes the fake's class and its constructor's keyword arguments; returns it serving from a
    thread on ``127.0.0.1`` (``.base_url``); stops it when the test ends.
    """
    running: list[FakeUpstream] = []

    def start(cls: type[F], **kwargs: Any) -> F:
        fake = cls(**kwargs)
        fake.start_in_thread()
        running.append(fake)
        return fake

    yield start
    for fake in reversed(running):
        fake.stop_thread()


@pytest.fixture
def fake_openai(truckllm_fake: Callable[..., FakeUpstream]) -> FakeOpenAI:
    """A running fake OpenAI API (``.base_url`` ends in ``/v1``), accepting the key ``test-key``."""
    from truckllm_testing.fakes import FakeOpenAI

    fake = truckllm_fake(FakeOpenAI, keys=[TEST_KEY])
    assert isinstance(fake, FakeOpenAI)
    return fake


@pytest.fixture
def fake_anthropic(truckllm_fake: Callable[..., FakeUpstream]) -> FakeAnthropic:
    """A running fake Anthropic Messages API, accepting the key ``test-key``."""
    from truckllm_testing.fakes import FakeAnthropic

    fake = truckllm_fake(FakeAnthropic, keys=[TEST_KEY])
    assert isinstance(fake, FakeAnthropic)
    return fake


@pytest.fixture
def fake_gemini(truckllm_fake: Callable[..., FakeUpstream]) -> FakeGemini:
    """A running fake Gemini API, accepting the key ``test-key``."""
    from truckllm_testing.fakes import FakeGemini

    fake = truckllm_fake(FakeGemini, keys=[TEST_KEY])
    assert isinstance(fake, FakeGemini)
    return fake


@pytest.fixture
def hostile_upstream() -> Iterator[HostileUpstream]:
    """A running hostile upstream serving from a thread (``.base_url("openai")``, ``.script(...)``,
    ``.requests``), stopped after the test."""
    from truckllm_testing.hostile import HostileUpstream

    with HostileUpstream().running() as hostile:
        yield hostile
