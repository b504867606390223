"""OTLP/HTTP export to a real receiver on loopback (an aiohttp server decoding the protobuf)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import pytest
import truckllm_logger_otel
from aiohttp import web
from loguru import logger
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from truckllm_logger_otel import OtelLogger

from truckllm import hookimpl
from truckllm._internal.config.loader import decode_options
from truckllm.types import (
    AttemptRecord,
    ChatRequest,
    Provider,
    ProviderResult,
    ProviderSpec,
    RequestRecord,
    UpstreamRequest,
    UpstreamResponse,
    Usage,
)
from truckllm_testing.server import GatewayServer

SECRET = "otlp-secret-token-42"


def value(any_value: AnyValue) -> Any:
    """An OTLP ``AnyValue`` as a Python value (arrays as tuples)."""
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return tuple(value(v) for v in any_value.array_value.values)
    return getattr(any_value, str(kind))


def attributes(pairs: Any) -> dict[str, Any]:
    """OTLP ``KeyValue`` pairs as a dict."""
    result: dict[str, Any] = {}
    pair: KeyValue
    for pair in pairs:
        result[pair.key] = value(pair.value)
    return result


class Collector:
    """An OTLP/HTTP traces receiver: keeps every request's headers and decoded spans."""

    def __init__(self) -> None:
        self.status = 200
        self.calls: list[tuple[dict[str, str], ExportTraceServiceRequest]] = []
        self.changed = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Decode the body (aiohttp inflates a gzip one) and answer with an empty export response."""
        body = await request.read()
        message = ExportTraceServiceRequest()
        message.ParseFromString(body)
        self.calls.append(({k.lower(): v for k, v in request.headers.items()}, message))
        self.changed.set()
        if self.status != 200:
            return web.Response(status=self.status, text="refused")
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(), content_type="application/x-protobuf"
        )

    def spans(self) -> list[tuple[dict[str, Any], Span]]:
        """Every span received, with its resource's attributes."""
        found: list[tuple[dict[str, Any], Span]] = []
        for _, message in self.calls:
            for resource_spans in message.resource_spans:
                resource = attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    assert scope_spans.scope.name == "truckllm_logger_otel"
                    found.extend((resource, span) for span in scope_spans.spans)
        return found

    async def wait_for(self, condition: Callable[[], bool], limit: float = 5.0) -> None:
        """Wait (event-driven) until ``condition()`` holds."""
        async with asyncio.timeout(limit):
            while not condition():
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    """A receiver at ``http://127.0.0.1:<port>/v1/traces``."""
    receiver = Collector()
    app = web.Application()
    app.router.add_post("/v1/traces", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    receiver.url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1/traces"
    try:
        yield receiver
    finally:
        await runner.cleanup()


class Logs:
    """Every loguru message and stdlib log record (the OTel SDK and urllib3 log through ``logging``)."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog
        self.lines: list[str] = []

    def all(self) -> list[str]:
        """Everything logged so far."""
        return [*self.lines, *(r.getMessage() for r in self.caplog.records), self.caplog.text]


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[Logs]:
    """Capture loguru (at DEBUG) and stdlib logging (at DEBUG) for the test."""
    captured = Logs(caplog)
    sink = logger.add(captured.lines.append, level="DEBUG", format="{level} {message} {extra}")
    caplog.set_level(logging.DEBUG)
    yield captured
    logger.remove(sink)


def closed_port_url() -> str:
    """An endpoint on a loopback port nobody listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1/traces"


def make_logger(**changes: Any) -> OtelLogger:
    """An OTLP logger with options decoded like the kernel does."""
    options: OtelLogger.Options = decode_options(changes, OtelLogger.Options)
    return OtelLogger(options)


def record(n: int, **changes: Any) -> RequestRecord:
    """Request ``n``: one failed attempt (503), then a success."""
    fields: dict[str, Any] = {
        "request_id": f"req-{n}",
        "started_at": 1748779200.0 + n,
        "endpoint": "chat",
        "dialect": "openai",
        "alias": "gpt-4o",
        "gateway_key": "team-a",
        "stream": False,
        "status": 200,
        "latency_ms": 250.0,
        "upstream_ms": 200.0,
        "provider": "openai",
        "provider_type": "openai",
        "deployment": "gpt-4o#0",
        "model": "gpt-4o-2024-08-06",
        "provider_key": "oa-main",
        "attempts": (
            AttemptRecord(
                provider="openai",
                provider_key="oa-backup",
                deployment="gpt-4o#0",
                model="gpt-4o-2024-08-06",
                status=503,
                latency_ms=40.0,
                error_kind="overloaded",
            ),
            AttemptRecord(
                provider="openai",
                provider_key="oa-main",
                deployment="gpt-4o#0",
                model="gpt-4o-2024-08-06",
                status=200,
                latency_ms=200.0,
            ),
        ),
        "usage": Usage(prompt_tokens=12, completion_tokens=34, total_tokens=46),
        "cost_usd": 0.0004,
    }
    fields.update(changes)
    return RequestRecord(**fields)


@pytest.mark.parametrize("compression", ["none", "gzip"])
async def test_spans_arrive_after_the_shutdown_flush(
    collector: Collector, logs: Logs, compression: str
) -> None:
    otel = make_logger(
        endpoint=collector.url,
        headers={"x-api-key": SECRET},
        flush_interval="1h",
        compression=compression,
        resource_attributes={"deployment.environment.name": "e2e"},
    )
    otel.startup(None)
    for n in range(3):
        otel.emit_log(record(n))
    await asyncio.sleep(0.05)
    assert collector.calls == []  # batched: nothing sent before the flush interval or shutdown
    await otel.shutdown(None)

    assert len(collector.calls) == 1
    headers, _ = collector.calls[0]
    assert headers["x-api-key"] == SECRET
    assert headers["content-type"] == "application/x-protobuf"
    assert headers.get("content-encoding") == ("gzip" if compression == "gzip" else None)

    spans = collector.spans()
    assert len(spans) == 9
    resource = spans[0][0]
    assert resource["service.name"] == "truckllm"
    assert resource["deployment.environment.name"] == "e2e"
    roots = {attributes(s.attributes)["truckllm.request_id"]: s for _, s in spans if not s.parent_span_id}
    assert sorted(roots) == ["req-0", "req-1", "req-2"]
    root = roots["req-1"]
    assert root.name == "chat gpt-4o"
    assert root.kind == Span.SpanKind.SPAN_KIND_SERVER
    assert root.start_time_unix_nano == 1748779201 * 10**9
    assert root.end_time_unix_nano == 1748779201 * 10**9 + 250_000_000
    root_attributes = attributes(root.attributes)
    assert {k: root_attributes[k] for k in root_attributes if k.startswith("gen_ai.")} == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 34,
        "gen_ai.request.stream": False,
    }
    assert root_attributes["truckllm.gateway_key"] == "team-a"
    assert root_attributes["truckllm.provider_key"] == "oa-main"
    assert root_attributes["truckllm.attempts"] == 2
    assert root_attributes["truckllm.cost_usd"] == 0.0004

    children = [s for _, s in spans if s.parent_span_id == root.span_id]
    assert [c.name for c in children] == ["chat gpt-4o-2024-08-06"] * 2
    assert all(c.trace_id == root.trace_id and c.kind == Span.SpanKind.SPAN_KIND_CLIENT for c in children)
    failed = next(c for c in children if attributes(c.attributes)["truckllm.attempt"] == 1)
    assert failed.status.code == failed.status.STATUS_CODE_ERROR
    assert attributes(failed.attributes)["error.type"] == "overloaded"
    assert attributes(failed.attributes)["truckllm.provider_key"] == "oa-backup"

    assert otel.metrics == {"records": 3, "exported_spans": 9, "failed_spans": 0, "dropped": 0}
    assert all(SECRET not in line for line in logs.all())


async def test_a_refusing_receiver_is_counted_never_raised(collector: Collector, logs: Logs) -> None:
    collector.status = 401
    otel = make_logger(
        endpoint=collector.url, headers={"authorization": f"Bearer {SECRET}"}, flush_interval="10ms"
    )
    otel.emit_log(record(1))
    await collector.wait_for(lambda: len(collector.calls) == 1)
    await otel.shutdown(None)
    assert len(collector.calls) == 1  # a 401 is not retried
    assert otel.metrics == {"records": 1, "exported_spans": 0, "failed_spans": 3, "dropped": 0}
    assert any("3 spans not exported" in line for line in logs.all())
    assert any(r.name.startswith("opentelemetry.") and "401" in r.getMessage() for r in logs.caplog.records)
    assert all(SECRET not in line for line in logs.all())


async def test_a_down_receiver_never_fails_or_delays_emit_log(logs: Logs) -> None:
    url = closed_port_url()
    otel = make_logger(
        endpoint=url,
        headers={"x-api-key": SECRET},
        batch_size=1,
        flush_interval="10ms",
        timeout="5s",
        shutdown_timeout="300ms",
    )
    otel.startup(None)
    slowest = 0.0
    began = time.perf_counter()
    for n in range(200):
        before = time.perf_counter()
        otel.emit_log(record(n))
        slowest = max(slowest, time.perf_counter() - before)
        if n == 100:
            await asyncio.sleep(0.05)  # let the exporter thread hit the refused port meanwhile
    # no call waits on the network: one that did would take the exporter's 5 s timeout (bounds
    # are loose on purpose, so a busy CI machine cannot make the test flaky)
    assert time.perf_counter() - began < 4.0
    assert slowest < 2.5

    started = time.monotonic()
    await otel.shutdown(None)  # the exporter is backing off: shutdown gives up after 300ms
    assert time.monotonic() - started < 3.0
    async with asyncio.timeout(3):
        while otel.metrics["failed_spans"] < 600:
            await asyncio.sleep(0.01)
    assert otel.metrics == {"records": 200, "exported_spans": 0, "failed_spans": 600, "dropped": 0}
    port = url.split(":")[2].split("/")[0]
    assert any(
        f"otel http://127.0.0.1:{port}: spans not exported within shutdown_timeout" in x for x in logs.all()
    )
    assert all(SECRET not in line for line in logs.all())


# --- the whole gateway: loggers: [{otel: {...}}] -------------------------------------------------

ANSWER = (
    b'{"id":"chatcmpl-1","object":"chat.completion","created":1748779200,"model":"fake-model-v1",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}'
)


class FakeProvider:
    """A throwaway provider type ``fake`` answering in-process (no provider plugin needed)."""

    @hookimpl
    def register_providers(self, register: Callable[[ProviderSpec], None]) -> None:
        """Offer ``fake``."""
        register(ProviderSpec(type="fake", default_base_url="https://llm.example.com/v1", needs_keys=False))

    @hookimpl
    def transform_request(
        self, provider: Provider, model: str, request: ChatRequest, api_key: str
    ) -> UpstreamRequest | None:
        """Answer locally."""
        if provider.type != "fake":
            return None

        async def answer() -> UpstreamResponse:
            return UpstreamResponse(status=200, headers={"content-type": "application/json"}, body=ANSWER)

        return UpstreamRequest(url=f"{provider.base_url}/chat/completions", local=answer)

    @hookimpl
    def transform_response(
        self, provider: Provider, request: ChatRequest, response: UpstreamResponse
    ) -> ProviderResult | None:
        """Already in OpenAI's form."""
        return ProviderResult(body=response.body) if provider.type == "fake" else None

    @hookimpl
    def parse_usage(self, provider: Provider, request: ChatRequest, body: bytes) -> Usage | None:
        """Fixed usage."""
        return (
            Usage(prompt_tokens=7, completion_tokens=3, total_tokens=10) if provider.type == "fake" else None
        )


GATEWAY_CONFIG = """
loggers:
  - otel:
      endpoint: {url}
      headers: {{x-api-key: "${{OTEL_KEY}}"}}
      flush_interval: 1h
      service_name: gateway-e2e
providers:
  fake:
    type: fake
models:
  gpt-4o:
    deployments: [{{provider: fake, model: fake-model-v1}}]
"""


async def test_the_gateway_builds_the_logger_from_config(collector: Collector, logs: Logs) -> None:
    server = GatewayServer(
        GATEWAY_CONFIG.format(url=collector.url),
        env={"OTEL_KEY": SECRET},
        extra_plugins=(FakeProvider(), truckllm_logger_otel),
        autoload=False,
    )
    await asyncio.to_thread(server.start)
    try:
        assert server.gateway is not None
        assert [type(instance) for _, instance in server.gateway.loggers] == [OtelLogger]
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{server.url}/v1/chat/completions",
                json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]},
            ) as response,
        ):
            assert response.status == 200, await response.text()
            await response.read()
            request_id = response.headers.get("x-request-id")
    finally:
        await asyncio.to_thread(server.stop)  # drains, then the logger's shutdown flushes

    spans = collector.spans()
    assert len(spans) == 2
    assert collector.calls[0][0]["x-api-key"] == SECRET
    resource, root = next((r, s) for r, s in spans if not s.parent_span_id)
    assert resource["service.name"] == "gateway-e2e"
    assert root.name == "chat gpt-4o"
    found = attributes(root.attributes)
    assert found["gen_ai.provider.name"] == "fake"
    assert found["gen_ai.response.model"] == "fake-model-v1"
    assert found["gen_ai.usage.input_tokens"] == 7
    assert found["gen_ai.usage.output_tokens"] == 3
    assert found["server.address"] == "llm.example.com"
    assert found["server.port"] == 443
    assert found["http.response.status_code"] == 200
    assert request_id and found["truckllm.request_id"] == request_id
    child = next(s for _, s in spans if s.parent_span_id)
    assert child.name == "chat fake-model-v1"
    assert attributes(child.attributes)["server.address"] == "llm.example.com"
    assert all(SECRET not in line for line in logs.all())
