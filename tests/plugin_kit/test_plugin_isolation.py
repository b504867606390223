"""A plugin that raises never takes the gateway down: through a real gateway on loopback.

- A provider plugin raising in any request-path hook is a failed attempt: the request fails over
  to the next candidate (another provider) and the client never sees a 500.
- A strategy raising: the kernel falls back to config order.
- A logger raising in ``emit_log`` (sync or async) is logged and counted; the request is fine and
  the other loggers still get every record.
- A plugin that fails to import is listed as failed by ``truckllm plugins`` and
  ``/admin/v1/plugins``, and the gateway serves the rest.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from truckllm import hookimpl
from truckllm._internal.cli import main
from truckllm.types import (
    Candidate,
    ChatRequest,
    Provider,
    ProviderResult,
    ProviderSpec,
    RequestRecord,
    SelectionContext,
    StrategySpec,
    UpstreamRequest,
    UpstreamResponse,
    Usage,
)
from truckllm_testing.conformance import GatewayClient, RecordingPlugin, wait_for
from truckllm_testing.fakes import FakeOpenAI
from truckllm_testing.server import GatewayServer

KEY = "sk-isolation"

HOOKS = (
    "transform_request",
    "transform_response",
    "transform_stream",
    "stream_feed",
    "parse_usage",
)


class Exploding:
    """Provider type ``exploding``: OpenAI-compatible, but raises ``RuntimeError`` in one hook."""

    def __init__(self, raise_in: str) -> None:
        self.__name__ = f"exploding-{raise_in}"
        self.raise_in = raise_in
        self.calls: list[str] = []

    def _maybe_raise(self, hook: str) -> None:
        self.calls.append(hook)
        if hook == self.raise_in:
            raise RuntimeError(f"exploding plugin: {hook}")

    @hookimpl
    def register_providers(self, register: Callable[[ProviderSpec], None]) -> None:
        register(ProviderSpec(type="exploding", endpoints=frozenset({"chat"})))

    @hookimpl
    def transform_request(
        self, provider: Provider, model: str, request: ChatRequest, api_key: str
    ) -> UpstreamRequest | None:
        if provider.type != "exploding":
            return None
        self._maybe_raise("transform_request")
        return UpstreamRequest(
            url=provider.base_url + "/chat/completions",
            headers={"authorization": f"Bearer {api_key}", "content-type": "application/json"},
            body=request.encode(model=model),
            stream=request.stream,
        )

    @hookimpl
    def transform_response(
        self, provider: Provider, request: ChatRequest, response: UpstreamResponse
    ) -> ProviderResult | None:
        if provider.type != "exploding":
            return None
        self._maybe_raise("transform_response")
        return ProviderResult(body=response.body)

    @hookimpl
    def transform_stream(self, provider: Provider, request: ChatRequest, response: UpstreamResponse) -> Any:
        if provider.type != "exploding":
            return None
        self._maybe_raise("transform_stream")
        plugin = self

        class Translator:
            dialect = "openai"
            usage: Usage | None = None

            def feed(self, chunk: bytes) -> bytes:
                plugin._maybe_raise("stream_feed")
                return chunk

            def close(self) -> bytes:
                return b""

        return Translator()

    @hookimpl
    def parse_usage(self, provider: Provider, request: ChatRequest, body: bytes) -> Usage | None:
        if provider.type != "exploding":
            return None
        self._maybe_raise("parse_usage")
        return None


def two_providers(fake: FakeOpenAI, strategy: str = "first") -> str:
    return f"""
admin: {{token: admin-token}}
routing: {{backoff: {{base: 1ms, max: 5ms}}}}
providers:
  bad: {{type: exploding, base_url: "{fake.base_url}", keys: [{{name: bad-key, value: {KEY}}}]}}
  good: {{type: openai, base_url: "{fake.base_url}", keys: [{{name: good-key, value: {KEY}}}]}}
models:
  m:
    strategy: {strategy}
    deployments: [{{provider: bad, model: from-bad}}, {{provider: good, model: from-good}}]
"""


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    upstream = FakeOpenAI(keys=[KEY])
    with upstream.running():
        yield upstream


BODY = {"model": "m", "messages": [{"role": "user", "content": "still served"}]}


@pytest.mark.parametrize("hook", HOOKS)
def test_provider_plugin_raising_fails_over_to_the_next_provider(fake: FakeOpenAI, hook: str) -> None:
    plugin = Exploding(hook)
    with GatewayServer(two_providers(fake), extra_plugins=(plugin,)) as gw:
        client = GatewayClient(gw)
        stream = hook in ("transform_stream", "stream_feed")
        if stream:
            answer = client.stream(BODY)
            assert answer.status == 200 and answer.done and answer.error is None, answer.raw
            assert answer.text() == "echo: still served"
            provider = answer.headers["x-truckllm-provider"]
        else:
            whole = client.chat(BODY)
            assert whole.status == 200, whole.body
            assert whole.json()["choices"][0]["message"]["content"] == "echo: still served"
            provider = whole.headers["x-truckllm-provider"]
        assert hook in plugin.calls, "the exploding hook was not reached"
        assert provider == "good"
        assert fake.requests[-1].json["model"] == "from-good"


def test_provider_plugin_raising_in_transform_request_on_every_call(fake: FakeOpenAI) -> None:
    """Every request, streamed or not: the bad provider's attempt fails, the good one answers."""
    plugin = Exploding("transform_request")
    recorder = RecordingPlugin()
    with GatewayServer(two_providers(fake), extra_plugins=(plugin, recorder)) as gw:
        client = GatewayClient(gw)
        for _ in range(3):
            assert client.chat(BODY).status == 200
            assert client.stream(BODY).done
        wait_for(lambda: len(recorder.records) == 6, what="6 records")
        assert {r.provider for r in recorder.records} == {"good"}
        assert all(r.status == 200 for r in recorder.records)
    assert plugin.calls.count("transform_request") >= 6


class ExplodingStrategy:
    __name__ = "exploding-strategy"

    @hookimpl
    def register_strategies(self, register: Callable[[StrategySpec], None]) -> None:
        register(StrategySpec(name="exploding"))

    @hookimpl
    def select_provider(
        self, strategy: str, candidates: Sequence[Candidate], context: SelectionContext
    ) -> list[Candidate] | None:
        if strategy != "exploding":
            return None
        raise RuntimeError("exploding strategy")


def test_strategy_raising_falls_back_to_config_order(fake: FakeOpenAI) -> None:
    config = two_providers(fake, strategy="exploding").replace("type: exploding,", "type: openai,")
    with GatewayServer(config, extra_plugins=(ExplodingStrategy(),)) as gw:
        answer = GatewayClient(gw).chat(BODY)
        assert answer.status == 200 and answer.headers["x-truckllm-provider"] == "bad"


class FailingLogger:
    """Logger ``failing``: raises in ``emit_log``, synchronously or from its awaitable."""

    def __init__(self, options: Any) -> None:
        self.calls = 0

    @hookimpl
    def emit_log(self, record: RequestRecord) -> Any:
        self.calls += 1
        raise RuntimeError("this logger is broken")


class FailingAsyncLogger:
    """Logger ``failing-async``: its ``emit_log`` coroutine raises."""

    def __init__(self, options: Any) -> None:
        self.calls = 0

    @hookimpl
    async def emit_log(self, record: RequestRecord) -> None:
        self.calls += 1
        raise RuntimeError("this async logger is broken")


class LoggerPlugin:
    __name__ = "failing-loggers"

    @hookimpl
    def register_loggers(self, register: Callable[[str, type], None]) -> None:
        register("failing", FailingLogger)
        register("failing-async", FailingAsyncLogger)


def test_logger_raising_in_emit_log_is_counted_and_requests_are_fine(fake: FakeOpenAI) -> None:
    config = two_providers(fake).replace("type: exploding,", "type: openai,")
    config = "loggers: [failing, failing-async]\n" + config
    recorder = RecordingPlugin()
    with GatewayServer(config, extra_plugins=(LoggerPlugin(), recorder)) as gw:
        assert gw.gateway is not None
        client = GatewayClient(gw)
        for _ in range(3):
            assert client.chat(BODY).status == 200
        assert client.stream(BODY).done
        wait_for(lambda: len(recorder.records) == 4, what="the healthy logger's 4 records")
        errors = gw.gateway.background.plugin_errors
        wait_for(
            lambda: sum(n for (name, hook), n in errors.items() if hook == "emit_log") == 8,
            what="8 counted emit_log failures",
        )
        counted = {name: n for (name, hook), n in errors.items() if hook == "emit_log"}
        assert sorted(counted.values()) == [4, 4], counted
        assert all("failing" in name for name in counted), counted


@pytest.fixture
def broken_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An installed distribution ``truckllm-provider-broken`` whose module fails to import."""
    monkeypatch.delenv("TRUCKLLM_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    info = tmp_path / "truckllm_provider_broken-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: truckllm-provider-broken\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text("[truckllm]\nprovider-broken = truckllm_provider_broken\n")
    (tmp_path / "truckllm_provider_broken.py").write_text("import truckllm_no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("truckllm_provider_broken", None)


def test_plugin_failing_to_import_is_reported_everywhere(
    broken_plugin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plugins", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    (row,) = [r for r in rows if r["name"] == "truckllm-provider-broken"]
    assert row["status"] == "failed" and row["version"] == "0.3"
    assert "ModuleNotFoundError" in row["error"] and "truckllm_no_such_dependency" in row["error"]
    assert main(["plugins"]) == 0
    assert "truckllm-provider-broken 0.3  [provider-broken]  FAILED: import failed" in capsys.readouterr().out

    config = """
admin: {token: admin-token}
providers:
  demo: {type: mock}
models:
  demo: {deployments: [{provider: demo, model: echo}]}
"""
    with GatewayServer(config) as gw:
        client = GatewayClient(gw)
        plugins = client.request("GET", "/admin/v1/plugins", token="admin-token").json()["plugins"]
        (failed,) = [p for p in plugins if p["status"] == "failed"]
        assert failed["name"] == "truckllm-provider-broken" and "ModuleNotFoundError" in failed["error"]
        assert any(p["status"] == "loaded" for p in plugins)
        ready = client.request("GET", "/admin/v1/ready").json()
        assert "provider-broken" in json.dumps(ready)
        assert client.chat({"model": "demo", "messages": [{"role": "user", "content": "hi"}]}).status == 200


class Metrics:
    def __init__(self, name: str, fail: bool) -> None:
        self.__name__ = name
        self.fail = fail

    @hookimpl
    def render_metrics(self) -> bytes | None:
        if self.fail:
            raise RuntimeError("broken metrics plugin")
        return b"# TYPE healthy_plugin_up gauge\nhealthy_plugin_up 1\n"


def test_metrics_plugin_raising_leaves_the_others_scraped() -> None:
    config = "admin: {token: admin-token}\nproviders:\n  d: {type: mock}\n"
    plugins = (Metrics("metrics-healthy", fail=False), Metrics("metrics-broken", fail=True))
    with GatewayServer(config, extra_plugins=plugins) as gw:
        answer = GatewayClient(gw).request("GET", "/metrics", token="admin-token")
        assert answer.status == 200, answer.body
        assert b"healthy_plugin_up 1" in answer.body
