"""TruckLLM logger plugin: OpenTelemetry traces with the GenAI semantic conventions, over OTLP/HTTP.

Active only when listed in ``loggers:`` (``loggers: [{otel: {endpoint: ...}}]``). Every finished
request becomes one span (``chat gpt-4o``, kind ``SERVER``) with one child span per upstream
attempt (``chat gpt-4o-2024-08-06``, kind ``CLIENT``), timed from the record (``started_at`` plus
``latency_ms``); see :mod:`truckllm_logger_otel._spans` for the attributes.

Each logger instance has its own :class:`~opentelemetry.sdk.trace.TracerProvider` (the global
provider is never set or read) and a :class:`~opentelemetry.sdk.trace.export.BatchSpanProcessor`:
``emit_log`` only builds spans and queues them in memory (a full queue drops spans); the
processor's own thread sends batches with the OTLP/HTTP exporter. ``shutdown`` flushes what is
queued, within ``shutdown_timeout``, and closes the provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import os
import random
import threading
from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

import msgspec
import requests
from loguru import logger
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode

from truckllm import hookimpl
from truckllm.kit.options import Duration, Secret
from truckllm.types import RequestRecord
from truckllm_logger_otel._exporter import CountingExporter
from truckllm_logger_otel._spans import (
    Upstream,
    attempt_attributes,
    attempt_failed,
    attempt_windows,
    operation_name,
    request_attributes,
    request_failed,
    request_window,
    span_name,
    upstream_of,
)

__all__ = ["DEFAULT_ENDPOINT", "TRUCKLLM_API", "OtelLogger", "register_loggers"]

TRUCKLLM_API = 1
"""The plugin API version this plugin was written for."""

DEFAULT_ENDPOINT = "http://127.0.0.1:4318/v1/traces"
"""A local OpenTelemetry Collector's OTLP/HTTP traces endpoint."""

_VERSION = "0.1.0"
_SCOPE = "truckllm_logger_otel"
_ABORT_GRACE = 1.0  # seconds shutdown still waits after aborting a late export
_ROOT = Context()  # request spans start new traces, whatever context is current

PosInt = Annotated[int, msgspec.Meta(ge=1)]
"""An integer of at least 1 (options)."""
Ratio = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
"""A fraction from 0 to 1 (options)."""
ResourceValue = str | bool | int | float
"""A resource attribute value."""


def _kernel_version() -> str | None:
    try:
        return importlib.metadata.version("truckllm")
    except importlib.metadata.PackageNotFoundError:
        return None


def _where(url: str) -> str:
    """``scheme://host[:port]`` of an URL: what logs may show (never the path or query)."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


async def _wait(event: asyncio.Event, limit: float) -> bool:
    """Wait up to ``limit`` seconds for ``event``; did it happen?"""
    try:
        async with asyncio.timeout(limit):
            await event.wait()
    except TimeoutError:
        return False
    return True


class _OwnIdGenerator(RandomIdGenerator):
    """Trace and span ids from this logger's own random source, not the global ``random`` module
    (which other code, and the application, may seed or rely on)."""

    def __init__(self) -> None:
        self._random = random.Random(os.urandom(16))

    def generate_span_id(self) -> int:
        """A random, non-zero 64-bit span id."""
        span_id = 0
        while span_id == 0:
            span_id = self._random.getrandbits(64)
        return span_id

    def generate_trace_id(self) -> int:
        """A random, non-zero 128-bit trace id."""
        trace_id = 0
        while trace_id == 0:
            trace_id = self._random.getrandbits(128)
        return trace_id


class OtelLogger:
    """Turns each request record into spans and exports them in batches over OTLP/HTTP.

    :param options: decoded from the ``loggers:`` entry.
    :param exporter: tests only: export to this instead of OTLP/HTTP (an ``InMemorySpanExporter``).
    """

    class Options(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
        """``loggers: [{otel: {...}}]``.

        :ivar endpoint: the OTLP/HTTP traces URL (``http`` or ``https``, path included).
        :ivar headers: request headers, e.g. a vendor's API key; values are secrets, never logged.
        :ivar service_name: the ``service.name`` resource attribute.
        :ivar resource_attributes: more resource attributes (``deployment.environment.name``...).
        :ivar sample_ratio: the fraction of requests traced (by trace id), from 0 to 1.
        :ivar timeout: per export call, retries of a 429/502/503/504 or refused connection included.
        :ivar compression: ``none`` or ``gzip`` request bodies.
        :ivar batch_size: the most spans in one export request.
        :ivar flush_interval: the longest a span waits before its batch is sent.
        :ivar max_queue: spans held while the receiver is slow or down; more are dropped.
        :ivar shutdown_timeout: the longest ``shutdown`` spends sending what is queued.
        """

        endpoint: str = DEFAULT_ENDPOINT
        headers: dict[str, Secret] = msgspec.field(default_factory=dict)
        service_name: Annotated[str, msgspec.Meta(min_length=1)] = "truckllm"
        resource_attributes: dict[str, ResourceValue] = msgspec.field(default_factory=dict)
        sample_ratio: Ratio = 1.0
        timeout: Duration = Duration(10)
        compression: Literal["none", "gzip"] = "none"
        batch_size: PosInt = 512
        flush_interval: Duration = Duration(5)
        max_queue: PosInt = 2048
        shutdown_timeout: Duration = Duration(10)

        def __post_init__(self) -> None:
            parts = urlsplit(self.endpoint)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("endpoint must be an absolute http:// or https:// URL")
            if parts.username is not None or parts.password is not None:
                raise ValueError("endpoint must not hold credentials: put them in headers")
            if self.timeout <= 0:
                raise ValueError("timeout must be positive")
            if self.flush_interval <= 0:
                raise ValueError("flush_interval must be positive")
            if self.batch_size > self.max_queue:
                raise ValueError("batch_size must not exceed max_queue")
            if "service.name" in self.resource_attributes:
                raise ValueError("set service.name with service_name, not resource_attributes")
            for name in self.headers:
                if not name or any(c in name for c in ":\r\n ") or not name.isascii():
                    raise ValueError(f"invalid header name {name!r}")

    name: ClassVar[str] = "otel"
    """The name in ``loggers:``."""

    metrics_counters: ClassVar[frozenset[str]] = frozenset(
        {"records", "exported_spans", "failed_spans", "dropped"}
    )
    """The keys of :attr:`metrics` that only ever grow (exported as counters)."""

    def __init__(self, options: Options, *, exporter: SpanExporter | None = None) -> None:
        self.options = options
        self._where = _where(options.endpoint)
        self._log = logger.bind(plugin="logger-otel")
        self._exporter = CountingExporter(exporter if exporter is not None else self._otlp_exporter())
        attributes: dict[str, ResourceValue] = {}
        version = _kernel_version()
        if version is not None:
            attributes["service.version"] = version
        attributes.update(options.resource_attributes)
        attributes["service.name"] = options.service_name
        self.provider = TracerProvider(
            sampler=ParentBased(TraceIdRatioBased(options.sample_ratio)),
            resource=Resource.create(attributes),
            shutdown_on_exit=False,
            id_generator=_OwnIdGenerator(),
        )
        """This logger's own tracer provider (never installed as the global one)."""
        self.provider.add_span_processor(
            BatchSpanProcessor(
                self._exporter,
                max_queue_size=options.max_queue,
                schedule_delay_millis=options.flush_interval * 1000,
                max_export_batch_size=options.batch_size,
                export_timeout_millis=options.timeout * 1000,
            )
        )
        self._tracer = self.provider.get_tracer(_SCOPE, _VERSION)
        self._app: Any = None
        self._upstreams: dict[str, Upstream | None] = {}
        self._closed = False
        self.records = 0
        """Records turned into spans (sampled or not)."""
        self.dropped = 0
        """Records that arrived after shutdown."""

    def _otlp_exporter(self) -> OTLPSpanExporter:
        session = requests.Session()
        session.trust_env = False  # no proxy or netrc from the environment, like the kernel
        return OTLPSpanExporter(
            endpoint=self.options.endpoint,
            headers={name: value.reveal() for name, value in self.options.headers.items()},
            timeout=float(self.options.timeout),
            compression=Compression.Gzip if self.options.compression == "gzip" else Compression.NoCompression,
            session=session,
        )

    @property
    def metrics(self) -> dict[str, int]:
        """``records``, ``exported_spans``, ``failed_spans`` and ``dropped``, for the metrics logger."""
        return {
            "records": self.records,
            "exported_spans": self._exporter.exported,
            "failed_spans": self._exporter.failed,
            "dropped": self.dropped,
        }

    # --- hooks ------------------------------------------------------------------------------------

    @hookimpl
    def startup(self, app: Any) -> None:
        """Keep the gateway: its providers give spans their ``server.address``."""
        self._app = app
        self._log.info("otel: sending traces to {}", self._where)

    @hookimpl
    def emit_log(self, record: RequestRecord) -> None:
        """Build the request's spans; the batch processor queues them (never waits on the network)."""
        if self._closed:
            self.dropped += 1
            return
        self.records += 1
        operation = operation_name(record.endpoint)
        start, end = request_window(record)
        span = self._tracer.start_span(
            span_name(operation, self._span_alias(record)),
            context=_ROOT,
            kind=SpanKind.SERVER,
            attributes=request_attributes(record, self._upstream(record.provider)),
            start_time=start,
        )
        if span.is_recording():
            self._attempt_spans(record, operation, trace.set_span_in_context(span, _ROOT))
            if request_failed(record):
                message = record.error_message or record.error_kind or f"HTTP {record.status}"
                span.set_status(Status(StatusCode.ERROR, message[:1024]))
        span.end(end_time=end)

    def _attempt_spans(self, record: RequestRecord, operation: str, parent: Context) -> None:
        """One ended child span per upstream attempt, under ``parent``."""
        windows = attempt_windows(record)
        for number, (attempt, (begin, finish)) in enumerate(zip(record.attempts, windows, strict=True), 1):
            if attempt.provider == record.provider:
                provider_type = record.provider_type
            else:
                provider_type = self._provider_type(attempt.provider)
            child = self._tracer.start_span(
                span_name(operation, attempt.model),
                context=parent,
                kind=SpanKind.CLIENT,
                attributes=attempt_attributes(
                    record, number, attempt, provider_type, self._upstream(attempt.provider)
                ),
                start_time=begin,
            )
            if attempt_failed(attempt):
                child.set_status(Status(StatusCode.ERROR))
            child.end(end_time=finish)

    @hookimpl
    async def shutdown(self, app: Any) -> None:
        """Export what is queued (at most ``shutdown_timeout``), then close the provider."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        finished = asyncio.Event()

        def stop() -> None:  # on its own thread: the provider's shutdown blocks on the export
            try:
                self.provider.shutdown()
            except Exception as exc:
                self._log.opt(exception=exc).error("otel {}: shutdown failed", self._where)
            finally:
                with contextlib.suppress(RuntimeError):  # the event loop may be gone already
                    loop.call_soon_threadsafe(finished.set)

        threading.Thread(target=stop, name="truckllm-logger-otel-shutdown", daemon=True).start()
        if not await _wait(finished, self.options.shutdown_timeout):
            self._exporter.abort()
            self._log.warning(
                "otel {}: spans not exported within shutdown_timeout {:g}s were given up",
                self._where,
                self.options.shutdown_timeout,
            )
            await _wait(finished, _ABORT_GRACE)
        if self._exporter.failed:
            self._log.warning(
                "otel {}: {} spans not exported ({} exported)",
                self._where,
                self._exporter.failed,
                self._exporter.exported,
            )

    # --- the gateway's providers ------------------------------------------------------------------

    def _providers(self) -> Mapping[str, Any]:
        providers = getattr(getattr(self._app, "runtime", None), "providers", None)
        return providers if isinstance(providers, Mapping) else {}

    def _span_alias(self, record: RequestRecord) -> str | None:
        """The alias for the span's name: only a configured one (span names stay low-cardinality).

        A routed request's alias is configured; otherwise the running config is asked (a model a
        client made up stays in ``gen_ai.request.model`` only).
        """
        if not record.alias or record.provider is not None or record.attempts:
            return record.alias or None
        aliases = getattr(getattr(self._app, "runtime", None), "aliases", None)
        if isinstance(aliases, Mapping) and record.alias not in aliases:
            return None
        return record.alias

    def _provider_type(self, name: str) -> str | None:
        kind = getattr(self._providers().get(name), "type", None)
        return kind if isinstance(kind, str) else None

    def _upstream(self, name: str | None) -> Upstream | None:
        """Where provider ``name`` is reached, from the running config (``None`` if unknown)."""
        if name is None:
            return None
        base_url = getattr(self._providers().get(name), "base_url", None)
        if not isinstance(base_url, str):
            return None
        if base_url not in self._upstreams:
            if len(self._upstreams) >= 1024:
                self._upstreams.clear()
            self._upstreams[base_url] = upstream_of(base_url)
        return self._upstreams[base_url]


@hookimpl
def register_loggers(register: Callable[[str, type], None]) -> None:
    """Offer ``otel``."""
    register("otel", OtelLogger)
