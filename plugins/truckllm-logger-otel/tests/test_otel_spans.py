"""Span content, checked with the SDK's in-memory exporter."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import pytest
from loguru import logger
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from truckllm_logger_otel import OtelLogger
from truckllm_logger_otel._spans import attempt_windows, upstream_of

from truckllm import hookimpl
from truckllm._internal.config.loader import decode_options
from truckllm._internal.gateway import Gateway
from truckllm.types import AttemptRecord, ProviderSpec, RequestRecord, Usage

CONFIG = """
providers:
  openai:
    type: openai
    base_url: https://api.openai.com/v1
    keys: [{name: oa-main, value: sk-test-1}]
  gem:
    type: gemini
    keys: [{name: g1, value: gk-test-1}]
models:
  gpt-4o:
    deployments: [{provider: openai, model: gpt-4o-2024-08-06}]
    fallbacks: [flash]
  flash:
    deployments: [{provider: gem, model: gemini-2.0-flash}]
"""

STARTED = 1748779200.25
SECRET = "hdr-secret-value-123"


class Providers:
    """Throwaway provider types, so the test needs no provider plugin installed."""

    @hookimpl
    def register_providers(self, register: Callable[[ProviderSpec], None]) -> None:
        """``openai`` and ``gemini``, with their public base URLs."""
        register(ProviderSpec(type="openai", default_base_url="https://api.openai.com/v1"))
        register(
            ProviderSpec(type="gemini", default_base_url="https://generativelanguage.googleapis.com/v1beta")
        )


def options(**changes: Any) -> OtelLogger.Options:
    """Options decoded like the kernel does from ``loggers: [{otel: {...}}]``."""
    result: OtelLogger.Options = decode_options(changes, OtelLogger.Options)
    return result


@pytest.fixture
def make() -> Iterator[Callable[..., tuple[OtelLogger, InMemorySpanExporter]]]:
    """Build loggers exporting to memory; any left running are shut down after the test."""
    made: list[OtelLogger] = []

    def build(**changes: Any) -> tuple[OtelLogger, InMemorySpanExporter]:
        memory = InMemorySpanExporter()
        otel = OtelLogger(options(**changes), exporter=memory)
        made.append(otel)
        return otel, memory

    yield build
    for otel in made:
        otel.provider.shutdown()


def record(**changes: Any) -> RequestRecord:
    """A streamed chat request: a 429 on openai, then the ``flash`` fallback answered."""
    fields: dict[str, Any] = {
        "request_id": "req-1",
        "started_at": STARTED,
        "endpoint": "chat",
        "dialect": "openai",
        "alias": "gpt-4o",
        "gateway_key": "team-a",
        "stream": True,
        "status": 200,
        "latency_ms": 1200.0,
        "ttft_ms": 300.0,
        "upstream_ms": 1100.0,
        "provider": "gem",
        "provider_type": "gemini",
        "deployment": "flash#0",
        "model": "gemini-2.0-flash",
        "provider_key": "g1",
        "attempts": (
            AttemptRecord(
                provider="openai",
                provider_key="oa-main",
                deployment="gpt-4o#0",
                model="gpt-4o-2024-08-06",
                status=429,
                latency_ms=80.0,
                error_kind="rate_limit",
                alias="gpt-4o",
            ),
            AttemptRecord(
                provider="gem",
                provider_key="g1",
                deployment="flash#0",
                model="gemini-2.0-flash",
                status=200,
                latency_ms=1000.0,
                alias="flash",
            ),
        ),
        "fallbacks": ("flash",),
        "usage": Usage(
            prompt_tokens=100,
            completion_tokens=50,
            total_tokens=150,
            cached_tokens=20,
            cache_write_tokens=5,
            reasoning_tokens=10,
        ),
        "cost_usd": 0.0125,
    }
    fields.update(changes)
    return RequestRecord(**fields)


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    """Spans by name (names are unique in these tests)."""
    result = {span.name: span for span in spans}
    assert len(result) == len(spans)
    return result


def ns(seconds: float) -> int:
    """Seconds since the epoch in nanoseconds."""
    return round(seconds * 1e9)


async def test_request_span_and_attempt_spans(
    make: Callable[..., tuple[OtelLogger, InMemorySpanExporter]],
) -> None:
    otel, memory = make(resource_attributes={"deployment.environment.name": "test"})
    gateway = Gateway(config_text=CONFIG, env={}, extra_plugins=(Providers(),), autoload=False)
    otel.startup(gateway)
    otel.emit_log(record())
    assert memory.get_finished_spans() == ()  # queued, not exported on the caller's thread
    await otel.shutdown(gateway)

    spans = by_name(memory.get_finished_spans())
    assert sorted(spans) == ["chat gemini-2.0-flash", "chat gpt-4o", "chat gpt-4o-2024-08-06"]
    root = spans["chat gpt-4o"]
    first = spans["chat gpt-4o-2024-08-06"]
    second = spans["chat gemini-2.0-flash"]

    assert root.kind is SpanKind.SERVER
    assert root.parent is None
    assert root.status.status_code is StatusCode.UNSET
    assert (root.start_time, root.end_time) == (ns(STARTED), ns(STARTED) + 1_200_000_000)
    assert dict(root.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "gcp.gemini",
        "gen_ai.system": "gcp.gemini",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gemini-2.0-flash",
        "gen_ai.usage.input_tokens": 100,
        "gen_ai.usage.output_tokens": 50,
        "gen_ai.usage.cache_read.input_tokens": 20,
        "gen_ai.usage.cache_creation.input_tokens": 5,
        "gen_ai.usage.reasoning.output_tokens": 10,
        "gen_ai.request.stream": True,
        "gen_ai.response.time_to_first_chunk": 0.3,
        "http.response.status_code": 200,
        "server.address": "generativelanguage.googleapis.com",
        "server.port": 443,
        "truckllm.request_id": "req-1",
        "truckllm.endpoint": "chat",
        "truckllm.dialect": "openai",
        "truckllm.alias": "gpt-4o",
        "truckllm.gateway_key": "team-a",
        "truckllm.provider": "gem",
        "truckllm.provider_type": "gemini",
        "truckllm.deployment": "flash#0",
        "truckllm.provider_key": "g1",
        "truckllm.stream": True,
        "truckllm.status": 200,
        "truckllm.attempts": 2,
        "truckllm.fallbacks": ("flash",),
        "truckllm.latency_ms": 1200.0,
        "truckllm.ttft_ms": 300.0,
        "truckllm.upstream_ms": 1100.0,
        "truckllm.overhead_ms": 100.0,
        "truckllm.usage.total_tokens": 150,
        "truckllm.cost_usd": 0.0125,
    }

    for child in (first, second):
        assert child.kind is SpanKind.CLIENT
        assert child.parent is not None
        assert child.parent.span_id == root.context.span_id
        assert child.context.trace_id == root.context.trace_id
    assert (first.start_time, first.end_time) == (ns(STARTED), ns(STARTED) + 80_000_000)
    assert (second.start_time, second.end_time) == (ns(STARTED) + 80_000_000, ns(STARTED) + 1_080_000_000)
    assert first.status.status_code is StatusCode.ERROR
    assert second.status.status_code is StatusCode.UNSET
    assert dict(first.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o-2024-08-06",
        "error.type": "rate_limit",
        "http.response.status_code": 429,
        "server.address": "api.openai.com",
        "server.port": 443,
        "truckllm.request_id": "req-1",
        "truckllm.attempt": 1,
        "truckllm.alias": "gpt-4o",
        "truckllm.provider": "openai",
        "truckllm.provider_type": "openai",
        "truckllm.deployment": "gpt-4o#0",
        "truckllm.provider_key": "oa-main",
        "truckllm.status": 429,
        "truckllm.latency_ms": 80.0,
        "truckllm.error_kind": "rate_limit",
    }
    assert second.attributes is not None
    assert second.attributes["truckllm.attempt"] == 2
    assert second.attributes["gen_ai.provider.name"] == "gcp.gemini"
    assert "error.type" not in second.attributes

    resource = dict(root.resource.attributes)
    assert resource["service.name"] == "truckllm"
    assert resource["deployment.environment.name"] == "test"
    assert resource["service.version"] == "0.1.0"
    assert root.instrumentation_scope is not None
    assert root.instrumentation_scope.name == "truckllm_logger_otel"
    assert otel.metrics == {"records": 1, "exported_spans": 3, "failed_spans": 0, "dropped": 0}


async def test_only_configured_aliases_name_spans(
    make: Callable[..., tuple[OtelLogger, InMemorySpanExporter]],
) -> None:
    otel, memory = make()
    otel.startup(Gateway(config_text=CONFIG, env={}, extra_plugins=(Providers(),), autoload=False))
    unrouted: dict[str, Any] = {"provider": None, "provider_type": None, "attempts": (), "status": 404}
    otel.emit_log(record(**unrouted, request_id="made-up", alias="gpt-made-up", error_kind="not_found"))
    otel.emit_log(record(**unrouted | {"status": 429}, request_id="limited", alias="flash"))
    await otel.shutdown(None)
    spans = {(s.attributes or {})["truckllm.request_id"]: s for s in memory.get_finished_spans()}
    assert spans["made-up"].name == "chat"
    assert (spans["made-up"].attributes or {})["gen_ai.request.model"] == "gpt-made-up"
    assert spans["limited"].name == "chat flash"


async def test_without_a_gateway_only_the_answering_provider_type_is_known(
    make: Callable[..., tuple[OtelLogger, InMemorySpanExporter]],
) -> None:
    otel, memory = make()
    otel.emit_log(record())
    await otel.shutdown(None)
    spans = by_name(memory.get_finished_spans())
    root = spans["chat gpt-4o"].attributes or {}
    first = spans["chat gpt-4o-2024-08-06"].attributes or {}
    second = spans["chat gemini-2.0-flash"].attributes or {}
    assert "server.address" not in root
    assert "gen_ai.provider.name" not in first  # another provider: its type is unknown here
    assert second["gen_ai.provider.name"] == "gcp.gemini"


async def test_operation_names_follow_the_endpoint(
    make: Callable[..., tuple[OtelLogger, InMemorySpanExporter]],
) -> None:
    otel, memory = make()
    attempt = AttemptRecord(
        provider="openai",
        provider_key="k",
        deployment="e#0",
        model="text-embedding-3-small",
        status=200,
        latency_ms=5,
    )
    otel.emit_log(
        record(endpoint="embeddings", alias="embed", stream=False, ttft_ms=None, attempts=(attempt,))
    )
    otel.emit_log(record(request_id="req-2", endpoint="completions", alias="legacy", attempts=()))
    await otel.shutdown(None)
    spans = by_name(memory.get_finished_spans())
    assert sorted(spans) == [
        "embeddings embed",
        "embeddings text-embedding-3-small",
        "text_completion legacy",
    ]
    embed = spans["embeddings embed"].attributes or {}
    assert embed["gen_ai.operation.name"] == "embeddings"
    assert "gen_ai.request.stream" not in embed
    assert "gen_ai.response.time_to_first_chunk" not in embed
    assert (spans["text_completion legacy"].attributes or {})["gen_ai.operation.name"] == "text_completion"


def roots(memory: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    """Request spans by request id."""
    return {
        str((s.attributes or {})["truckllm.request_id"]): s
        for s in memory.get_finished_spans()
        if s.parent is None
    }


async def test_errors(make: Callable[..., tuple[OtelLogger, InMemorySpanExporter]]) -> None:
    otel, memory = make()
    failed = AttemptRecord(
        provider="openai",
        provider_key="oa-main",
        deployment="gpt-4o#0",
        model="gpt-4o-2024-08-06",
        status=502,
        latency_ms=3000.0,
        error_kind="timeout",
    )
    unanswered: dict[str, Any] = {
        "provider": None,
        "provider_type": None,
        "deployment": None,
        "model": None,
        "provider_key": None,
        "attempts": (),
        "fallbacks": (),
        "usage": None,
        "cost_usd": 0.0,
        "ttft_ms": None,
        "upstream_ms": None,
    }
    # every candidate failed: a 5xx is the gateway's error
    otel.emit_log(
        record(
            **unanswered | {"attempts": (failed,)},
            request_id="req-502",
            status=502,
            latency_ms=100.0,
            error_kind="timeout",
            error_message="upstream timed out after 3s",
        )
    )
    # the gateway key's own limit: a 4xx is the client's, not a span error
    otel.emit_log(
        record(
            **unanswered, request_id="req-429", status=429, error_kind="rate_limit", error_message="over rpm"
        )
    )
    # refused before the body was read: no alias
    otel.emit_log(record(**unanswered, request_id="req-401", alias="", status=401, stream=False))
    otel.emit_log(record(request_id="req-499", status=499, client_disconnected=True, error_kind="cancelled"))
    await otel.shutdown(None)
    spans = roots(memory)

    server_error = spans["req-502"]
    assert server_error.status.status_code is StatusCode.ERROR
    assert server_error.status.description == "upstream timed out after 3s"
    attributes = server_error.attributes or {}
    assert attributes["error.type"] == "timeout"
    assert attributes["http.response.status_code"] == 502
    assert attributes["truckllm.error_message"] == "upstream timed out after 3s"
    assert attributes["truckllm.cost_usd"] == 0.0
    for absent in (
        "gen_ai.provider.name",
        "gen_ai.response.model",
        "gen_ai.usage.input_tokens",
        "truckllm.provider",
    ):
        assert absent not in attributes
    attempt = next(
        s
        for s in memory.get_finished_spans()
        if s.parent and s.parent.span_id == server_error.context.span_id
    )
    assert attempt.name == "chat gpt-4o-2024-08-06"
    assert attempt.status.status_code is StatusCode.ERROR
    assert (attempt.start_time, attempt.end_time) == (ns(STARTED), ns(STARTED) + 100_000_000)  # clamped

    limited = spans["req-429"]
    assert limited.status.status_code is StatusCode.UNSET
    assert (limited.attributes or {})["error.type"] == "rate_limit"

    refused = spans["req-401"]
    assert refused.name == "chat"
    assert "gen_ai.request.model" not in (refused.attributes or {})
    assert (refused.attributes or {})["error.type"] == "401"
    assert (refused.attributes or {})["http.response.status_code"] == 401

    gone = spans["req-499"].attributes or {}
    assert gone["truckllm.client_disconnected"] is True
    assert gone["error.type"] == "cancelled"
    assert spans["req-499"].status.status_code is StatusCode.UNSET


async def test_sample_ratio_zero_exports_nothing(
    make: Callable[..., tuple[OtelLogger, InMemorySpanExporter]],
) -> None:
    otel, memory = make(sample_ratio=0)
    for n in range(20):
        otel.emit_log(record(request_id=f"req-{n}"))
    await otel.shutdown(None)
    assert memory.get_finished_spans() == ()
    assert otel.metrics["records"] == 20


async def test_sample_ratio_keeps_whole_traces(
    make: Callable[..., tuple[OtelLogger, InMemorySpanExporter]],
) -> None:
    otel, memory = make(sample_ratio=0.5)
    for n in range(200):
        otel.emit_log(record(request_id=f"req-{n}"))
    await otel.shutdown(None)
    spans = memory.get_finished_spans()
    roots = [s for s in spans if s.parent is None]
    assert 40 < len(roots) < 160
    assert len(spans) == 3 * len(roots)  # children follow their parent's decision


async def test_own_provider_never_the_global_one(
    make: Callable[..., tuple[OtelLogger, InMemorySpanExporter]],
) -> None:
    before = trace.get_tracer_provider()
    first, memory_a = make()
    second, memory_b = make(service_name="gateway-b")
    assert trace.get_tracer_provider() is before
    assert first.provider is not second.provider
    with trace.get_tracer("some.app").start_as_current_span("ambient"):  # a current span is never a parent
        first.emit_log(record())
    second.emit_log(record(request_id="req-b"))
    await first.shutdown(None)
    await second.shutdown(None)
    assert len(memory_a.get_finished_spans()) == 3
    assert all(s.resource.attributes["service.name"] == "truckllm" for s in memory_a.get_finished_spans())
    assert all(s.resource.attributes["service.name"] == "gateway-b" for s in memory_b.get_finished_spans())
    assert next(s for s in memory_a.get_finished_spans() if s.name == "chat gpt-4o").parent is None


async def test_records_after_shutdown_are_dropped_and_counted(
    make: Callable[..., tuple[OtelLogger, InMemorySpanExporter]],
) -> None:
    otel, memory = make()
    await otel.shutdown(None)
    otel.emit_log(record())
    await otel.shutdown(None)  # twice is harmless
    assert memory.get_finished_spans() == ()
    assert otel.metrics == {"records": 0, "exported_spans": 0, "failed_spans": 0, "dropped": 1}


def test_option_defaults() -> None:
    opts = options()
    assert opts.endpoint == "http://127.0.0.1:4318/v1/traces"
    assert (opts.service_name, opts.sample_ratio, opts.timeout, opts.compression) == (
        "truckllm",
        1.0,
        10.0,
        "none",
    )
    assert (opts.batch_size, opts.flush_interval, opts.max_queue, opts.shutdown_timeout) == (
        512,
        5.0,
        2048,
        10.0,
    )
    assert opts.headers == {} and opts.resource_attributes == {}
    custom = options(timeout="1500ms", flush_interval="1s", resource_attributes={"a": 1, "b": True, "c": "x"})
    assert (custom.timeout, custom.flush_interval) == (1.5, 1.0)
    assert custom.resource_attributes == {"a": 1, "b": True, "c": "x"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"endpoint": "ftp://collector:4318/v1/traces"}, "http:// or https://"),
        ({"endpoint": "/v1/traces"}, "http:// or https://"),
        ({"endpoint": "https://user:pw@collector/v1/traces"}, "must not hold credentials"),
        ({"sample_ratio": 1.5}, "<= 1.0"),
        ({"sample_ratio": -0.1}, ">= 0.0"),
        ({"timeout": 0}, "timeout must be positive"),
        ({"flush_interval": "0s"}, "flush_interval must be positive"),
        ({"batch_size": 100, "max_queue": 10}, "batch_size must not exceed max_queue"),
        ({"batch_size": 0}, ">= 1"),
        ({"resource_attributes": {"service.name": "x"}}, "service_name"),
        ({"headers": {"bad name": "x"}}, "invalid header name"),
        ({"headers": {"x-api-key": 5}}, "expected a string"),
        ({"compression": "brotli"}, "Invalid enum value 'brotli'"),
        ({"service_name": ""}, "length >= 1"),
        ({"endpiont": "http://x"}, "unknown field"),
    ],
)
def test_bad_options_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=re.escape(message)):
        options(**changes)


async def test_header_values_are_secrets(
    make: Callable[..., tuple[OtelLogger, InMemorySpanExporter]], caplog: pytest.LogCaptureFixture
) -> None:
    lines: list[str] = []
    sink = logger.add(lines.append, level="DEBUG", format="{message} {extra}")
    try:
        with caplog.at_level(logging.DEBUG):
            otel, _ = make(headers={"x-honeycomb-team": SECRET}, endpoint="https://api.example.com/v1/traces")
            otel.startup(None)
            otel.emit_log(record())
            await otel.shutdown(None)
    finally:
        logger.remove(sink)
    shown = " ".join([repr(otel.options), str(otel.options.headers), str(otel.metrics), *lines, caplog.text])
    assert SECRET not in shown
    assert "<secret>" in repr(otel.options)
    assert any("https://api.example.com" in line for line in lines)


def test_attempt_windows_and_upstreams() -> None:
    attempt = AttemptRecord(
        provider="p", provider_key="k", deployment="d#0", model="m", status=500, latency_ms=30.0
    )
    windows = attempt_windows(record(latency_ms=50.0, attempts=(attempt, attempt, attempt)))
    start = ns(STARTED)
    assert windows == [
        (start, start + 30_000_000),
        (start + 30_000_000, start + 50_000_000),
        (start + 50_000_000,) * 2,
    ]
    assert upstream_of("https://user:pw@llm.example.com:8443/v1?key=x") is not None
    upstream = upstream_of("https://user:pw@llm.example.com:8443/v1?key=x")
    assert upstream is not None and (upstream.address, upstream.port) == ("llm.example.com", 8443)
    local = upstream_of("http://127.0.0.1/v1")
    assert local is not None and local.port == 80
    assert upstream_of("") is None
    assert upstream_of("mock://local") is None
    assert upstream_of("http://[::1") is None
