"""Shared helpers of the Responses dialect tests: an in-memory DialectState, requests, events."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, NamedTuple

import msgspec
import pytest
import truckllm_dialect_responses as dialect_plugin
from truckllm_dialect_responses import ResponsesDialect

from truckllm import hookimpl
from truckllm.kit.dialect import DialectRoute, ServedBy
from truckllm.types import (
    ChatRequest,
    Provider,
    ProviderResult,
    ProviderSpec,
    RequestRecord,
    UpstreamRequest,
    UpstreamResponse,
)
from truckllm_testing.fakes import FakeAnthropic, FakeGemini, FakeOpenAI
from truckllm_testing.server import GatewayServer


def _plugin(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


class FakeState:
    """A :class:`~truckllm.kit.dialect.DialectState` over a shared dict, scoped by key as the
    kernel scopes it; ``put`` writes at once (the kernel's flush is not what these tests test)."""

    def __init__(self, shared: dict[tuple[str | None, str], bytes], key: str | None = "team") -> None:
        self.shared = shared
        self.key = key
        self.ttl = 2_592_000.0
        self.served_by: ServedBy | None = None
        self.ttls: dict[str, float | None] = {}

    async def get(self, name: str) -> bytes | None:
        """The value under ``name`` for this key."""
        return self.shared.get((self.key, name))

    def put(self, name: str, value: bytes, ttl: float | None = None) -> None:
        """Store ``value`` for this key."""
        self.shared[(self.key, name)] = value
        self.ttls[name] = ttl

    async def delete(self, name: str) -> bool:
        """Remove ``name`` for this key."""
        return self.shared.pop((self.key, name), None) is not None


def served(provider: str = "ant", dialect: str = "anthropic", key: str = "a") -> ServedBy:
    """A ServedBy for a deployment of ``dialect``."""
    return ServedBy(provider=provider, provider_type=dialect, key=key, model="m", dialect=dialect)


def route(name: str = "responses") -> DialectRoute:
    """The dialect's route named ``name``."""
    (found,) = [r for r in ResponsesDialect.routes if r.name == name]
    return found


def parse(body: dict[str, Any] | bytes, name: str = "responses") -> ChatRequest:
    """``ResponsesDialect.parse`` for this body, as the kernel calls it."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return ResponsesDialect().parse(route(name), raw, {}, {}, {"content-type": "application/json"})


def chat_completion(text: str = "hi there", tool_calls: list[dict[str, Any]] | None = None) -> bytes:
    """A ``chat.completion`` body as provider plugins answer."""
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "m",
            "choices": [
                {"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}
            ],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
        }
    ).encode()


# --- a real gateway on loopback with the fake upstreams (end-to-end tests) -------------------------

KEY = "team-secret"
"""The gateway key the end-to-end tests use (name ``team``)."""
OTHER_KEY = "other-secret"
"""Another gateway key (name ``other``): it never sees ``team``'s responses."""

PROVIDER_PLUGINS = {name: _plugin(f"truckllm_provider_{name}") for name in ("anthropic", "gemini", "openai")}
"""The installed provider plugins (a case needing a missing one is skipped)."""


class Records:
    """A throwaway plugin keeping every usage record (``store_usage``)."""

    __name__ = "throwaway-records"

    def __init__(self) -> None:
        self.records: list[RequestRecord] = []

    @hookimpl
    def store_usage(self, record: RequestRecord) -> None:
        """Keep the record."""
        self.records.append(record)


class Counter:
    """A throwaway provider that lists ``count_tokens``: counts 100 + the messages of ``typed``."""

    __name__ = "throwaway-counter"

    @hookimpl
    def register_providers(self, register: Callable[[ProviderSpec], None]) -> None:
        """The ``counter`` provider type."""
        register(
            ProviderSpec(type="counter", endpoints=frozenset({"chat", "count_tokens"}), needs_keys=False)
        )

    @hookimpl
    def transform_request(
        self, provider: Provider, model: str, request: ChatRequest, api_key: str
    ) -> UpstreamRequest | None:
        """An in-process answer: ``{"prompt_tokens": N}``."""
        if provider.type != "counter":
            return None
        typed: Any = request.typed
        body = msgspec.json.encode({"prompt_tokens": 100 + len(typed.messages)})

        async def answer() -> UpstreamResponse:
            return UpstreamResponse(status=200, body=body)

        return UpstreamRequest(url="counter://local", local=answer)

    @hookimpl
    def transform_response(
        self, provider: Provider, request: ChatRequest, response: UpstreamResponse
    ) -> ProviderResult | None:
        """The body as it is."""
        return ProviderResult(body=response.body) if provider.type == "counter" else None


def has(provider: str) -> bool:
    """``truckllm-provider-<provider>`` is installed."""
    return PROVIDER_PLUGINS[provider] is not None


def gateway_config(anth: FakeAnthropic, gem: FakeGemini, oai: FakeOpenAI) -> str:
    """Aliases ``claude`` (Anthropic), ``gem`` (Gemini), ``gpt`` (OpenAI), ``gpt-r`` (an OpenAI
    reasoning model), ``gpt-pair`` (two OpenAI accounts: keys ``ok`` and ``ok2`` of the fake),
    ``counted`` (a counter); gateway keys ``team`` and ``other``. A provider whose plugin is not installed is left out (its tests skip)."""
    providers = {
        "anthropic": [
            f"  ant: {{type: anthropic, base_url: {anth.base_url}, keys: [{{name: a, value: ak}}]}}"
        ],
        "gemini": [f"  gem: {{type: gemini, base_url: {gem.base_url}, keys: [{{name: g, value: gk}}]}}"],
        "openai": [
            f"  oai: {{type: openai, base_url: {oai.base_url}, keys: [{{name: o, value: ok}}]}}",
            f"  oai2: {{type: openai, base_url: {oai.base_url}, keys: [{{name: o2, value: ok2}}]}}",
        ],
    }
    models = {
        "anthropic": ["  claude: {deployments: [{provider: ant, model: claude-sonnet-4-5-20250929}]}"],
        "gemini": ["  gem: {deployments: [{provider: gem, model: gemini-2.5-flash}]}"],
        "openai": [
            "  gpt: {deployments: [{provider: oai, model: gpt-4o}]}",
            "  gpt-r: {deployments: [{provider: oai, model: o4-mini}]}",
            "  gpt-pair: {routing: {retries: 2}, deployments: [{provider: oai, model: gpt-4o},"
            " {provider: oai2, model: gpt-4o}]}",
        ],
    }
    installed = [name for name in PROVIDER_PLUGINS if has(name)]
    lines = [
        f"keys: [{{name: team, value: {KEY}}}, {{name: other, value: {OTHER_KEY}}}]",
        "routing: {retries: 0, cooldown: {failures: 1000}}",
        "providers:",
        "  cnt: {type: counter}",
        *(line for name in installed for line in providers[name]),
        "models:",
        "  counted: {deployments: [{provider: cnt, model: words}]}",
        *(line for name in installed for line in models[name]),
    ]
    return "\n".join(lines) + "\n"


class Upstreams(NamedTuple):
    """The three fake upstreams."""

    anthropic: FakeAnthropic
    gemini: FakeGemini
    openai: FakeOpenAI


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Upstreams]:
    """The fake upstreams, served from threads for one test module."""
    fakes = Upstreams(FakeAnthropic(keys=["ak"]), FakeGemini(keys=["gk"]), FakeOpenAI(keys=["ok", "ok2"]))
    with fakes.anthropic.running(), fakes.gemini.running(), fakes.openai.running():
        yield fakes


@pytest.fixture(scope="module")
def records() -> Records:
    """Every usage record the module's gateway made."""
    return Records()


@pytest.fixture(scope="module")
def gateway(upstreams: Upstreams, records: Records) -> Iterator[GatewayServer]:
    """A real gateway with this dialect, the installed provider plugins and the records plugin."""
    plugins = (dialect_plugin, records, Counter(), *(p for p in PROVIDER_PLUGINS.values() if p is not None))
    with GatewayServer(gateway_config(*upstreams), autoload=False, extra_plugins=plugins) as gw:
        yield gw


@pytest.fixture
def fresh(upstreams: Upstreams) -> Iterator[Upstreams]:
    """The fakes, reset before a test and checked after it: what the gateway sent was valid."""
    for fake in upstreams:
        fake.reset()
    yield upstreams
    for fake in upstreams:
        assert fake.violations == []


def need(provider: str) -> None:
    """Skip unless ``truckllm-provider-<provider>`` is installed."""
    if PROVIDER_PLUGINS[provider] is None:
        pytest.skip(f"truckllm-provider-{provider} is not installed")


class Kit:
    """The helpers above, handed to tests as the ``kit`` fixture (tests cannot import conftest)."""

    FakeState = FakeState
    served = staticmethod(served)
    route = staticmethod(route)
    parse = staticmethod(parse)
    chat_completion = staticmethod(chat_completion)
    need = staticmethod(need)
    has = staticmethod(has)
    key = KEY
    other_key = OTHER_KEY


@pytest.fixture
def kit() -> Kit:
    """State, request and answer builders."""
    return Kit()
