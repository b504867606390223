"""TruckLLM logger plugin: Prometheus metrics named ``truckllm_*`` (``loggers: [prometheus]``).

Counters and histograms are fed by ``emit_log`` (one record per finished request); gauges of the
gateway's live state are read at scrape time from a snapshot of the gateway view given to
``startup`` (``GatewayView.snapshot()``). The kernel's ``GET /metrics`` returns what
:meth:`PrometheusLogger.render_metrics` renders.

Each instance has its own :class:`~prometheus_client.CollectorRegistry` (never the global one).
When ``PROMETHEUS_MULTIPROC_DIR`` is set (several hypercorn workers), values go to that directory
instead and every scrape merges all workers' files with prometheus-client's multiprocess mode.

Label values are bounded: ``alias`` and ``provider`` only take names from the running config
(``other`` for anything else, ``none`` when absent), error kinds a fixed set, ``tag`` only the
tags the config's ``tags.metrics`` lists (``other`` for any other), ``team`` and ``org`` only the
running config's ``teams:`` / ``orgs:`` names (``none`` for a request without one, ``other`` for
a name the config no longer has); a model name or a tag a client made up never becomes a label,
and end users never do (unbounded: they are grouped in ``/admin/v1/usage`` instead).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
from collections.abc import Callable, Collection
from typing import Annotated, ClassVar, get_args

import msgspec
from loguru import logger
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from truckllm import hookimpl
from truckllm.kit.options import Duration
from truckllm.kit.tasks import stop_task
from truckllm.kit.view import GatewayView
from truckllm.types import Alert, AlertKind, Logger, RequestRecord
from truckllm_logger_prometheus._gateway import GatewayCollector, GatewayPublisher

__all__ = [
    "DURATION_BUCKETS",
    "ERROR_KINDS",
    "OVERHEAD_BUCKETS",
    "TRUCKLLM_API",
    "TTFT_BUCKETS",
    "PrometheusLogger",
    "multiprocess_dir",
    "register_loggers",
]

TRUCKLLM_API = 1
"""The plugin API version this plugin was written for."""

DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
"""Default buckets of ``truckllm_request_duration_seconds``."""

TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
"""Default buckets of ``truckllm_ttft_seconds``."""

OVERHEAD_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Default buckets of ``truckllm_overhead_seconds``."""

ERROR_KINDS = frozenset(
    {
        "rate_limit",
        "quota",
        "overloaded",
        "server",
        "timeout",
        "connect",
        "auth",
        "permission",
        "bad_request",
        "context_length",
        "not_found",
        "too_large",
        "stream",
        "plugin",
        "cancelled",
    }
)
"""Error kinds kept as label values; any other kind is ``other``."""

_DIALECT = re.compile(r"[a-z0-9_-]{1,32}")
_KEY_NAME = re.compile(r"[A-Za-z0-9_.:@/-]{1,64}")
_STATUS_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}

# prometheus-client leaves these two untyped
_merge_process_files: Callable[..., object] = MultiProcessCollector
_mark_process_dead: Callable[[int, str], object] = mark_process_dead

Buckets = Annotated[tuple[float, ...], msgspec.Meta(min_length=1)]
"""Histogram bucket bounds, seconds (positive, increasing; ``+Inf`` is added)."""


def _check_buckets(name: str, buckets: tuple[float, ...]) -> None:
    if any(b <= a for a, b in itertools.pairwise(buckets)) or buckets[0] <= 0:
        raise ValueError(f"{name} must be positive and increasing")


def multiprocess_dir() -> str | None:
    """The directory named by ``PROMETHEUS_MULTIPROC_DIR``, if set."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class PrometheusLogger:
    """Counts every finished request and exports the gateway's live state.

    :param options: decoded from the ``loggers:`` entry.
    """

    class Options(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
        """``loggers: [{prometheus: {...}}]``.

        :ivar duration_buckets: histogram buckets of request latency, seconds.
        :ivar ttft_buckets: histogram buckets of time to first token, seconds.
        :ivar overhead_buckets: histogram buckets of gateway overhead, seconds.
        :ivar refresh_interval: multiprocess mode only: how often each worker writes its live
            state (in flight, key states...) for the others' scrapes.
        """

        duration_buckets: Buckets = DURATION_BUCKETS
        ttft_buckets: Buckets = TTFT_BUCKETS
        overhead_buckets: Buckets = OVERHEAD_BUCKETS
        refresh_interval: Duration = Duration(5)

        def __post_init__(self) -> None:
            _check_buckets("duration_buckets", self.duration_buckets)
            _check_buckets("ttft_buckets", self.ttft_buckets)
            _check_buckets("overhead_buckets", self.overhead_buckets)
            if self.refresh_interval <= 0:
                raise ValueError("refresh_interval must be positive")

    name: ClassVar[str] = "prometheus"
    """The name in ``loggers:``."""

    def __init__(self, options: Options | None = None) -> None:
        self.options = options if options is not None else self.Options()
        self.multiprocess_dir = multiprocess_dir()
        """Set: values are written to this directory and scrapes merge every process's files."""
        self.registry = CollectorRegistry()
        """This instance's registry (single-process mode)."""
        self._app: GatewayView | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._publisher: GatewayPublisher | None = None
        target = None if self.multiprocess_dir else self.registry
        by_route = ("alias", "provider")
        self.requests = Counter(
            "truckllm_requests_total",
            "Finished requests.",
            ("alias", "provider", "status_class", "dialect", "stream"),
            registry=target,
        )
        self.duration = Histogram(
            "truckllm_request_duration_seconds",
            "Whole-request latency, retries and streaming included.",
            by_route,
            buckets=self.options.duration_buckets,
            registry=target,
        )
        self.ttft = Histogram(
            "truckllm_ttft_seconds",
            "Time from the request to the first byte of a stream sent to the client.",
            by_route,
            buckets=self.options.ttft_buckets,
            registry=target,
        )
        self.overhead = Histogram(
            "truckllm_overhead_seconds",
            "Gateway overhead: latency minus the answering attempt's upstream time.",
            by_route,
            buckets=self.options.overhead_buckets,
            registry=target,
        )
        self.tokens = Counter(
            "truckllm_tokens_total",
            "Tokens by kind: prompt (cached included), completion (reasoning included), "
            "cached, cache_write, reasoning.",
            ("alias", "provider", "kind"),
            registry=target,
        )
        self.input_tokens = Counter(
            "truckllm_input_tokens_total",
            "Prompt tokens by provider key and cache: cached (read from the provider's prompt cache), "
            "cache_write (written to it), fresh (the rest).",
            ("alias", "provider", "key", "cache"),
            registry=target,
        )
        self.cost = Counter("truckllm_cost_usd_total", "Spend in USD.", by_route, registry=target)
        self.attempts = Counter(
            "truckllm_attempts_total",
            "Upstream attempts by outcome: success or the error kind.",
            ("alias", "provider", "outcome"),
            registry=target,
        )
        self.retries = Counter(
            "truckllm_retries_total",
            "Attempts after a request's first (same or other candidate, fallbacks included).",
            ("alias",),
            registry=target,
        )
        self.fallbacks = Counter(
            "truckllm_fallbacks_total",
            "Fallback aliases tried because every deployment of the alias failed.",
            ("alias",),
            registry=target,
        )
        self.errors = Counter(
            "truckllm_errors_total",
            "Failed requests by kind: an error kind, http_<status> or client_disconnected.",
            ("kind",),
            registry=target,
        )
        self.tag_requests = Counter(
            "truckllm_tag_requests_total",
            "Finished requests per tag (a request counts once under each of its tags; tags not in "
            "the config's tags.metrics count under other).",
            ("tag",),
            registry=target,
        )
        self.tag_cost = Counter(
            "truckllm_tag_cost_usd_total", "Spend in USD per tag.", ("tag",), registry=target
        )
        self.team_requests = Counter(
            "truckllm_team_requests_total",
            "Finished requests per team of the gateway key (none: no team; other: a team the "
            "running config does not have).",
            ("team",),
            registry=target,
        )
        self.team_cost = Counter(
            "truckllm_team_cost_usd_total", "Spend in USD per team.", ("team",), registry=target
        )
        self.org_requests = Counter(
            "truckllm_org_requests_total",
            "Finished requests per organisation of the gateway key's team (none: no organisation; "
            "other: one the running config does not have).",
            ("org",),
            registry=target,
        )
        self.org_cost = Counter(
            "truckllm_org_cost_usd_total", "Spend in USD per organisation.", ("org",), registry=target
        )
        self.alerts = Counter(
            "truckllm_alerts_total", "Alerts sent to the loggers, by kind.", ("kind",), registry=target
        )
        for kind in get_args(AlertKind):  # a fixed set: every kind shows, from 0
            self.alerts.labels(kind)
        if self.multiprocess_dir:
            self._publisher = GatewayPublisher()
        else:
            self.registry.register(GatewayCollector(lambda: self._app))

    # --- labels -----------------------------------------------------------------------------------

    def _aliases(self) -> Collection[str]:
        return self._app.runtime.aliases if self._app is not None else ()

    def _providers(self) -> Collection[str]:
        return self._app.runtime.providers if self._app is not None else ()

    def alias_label(self, alias: str | None) -> str:
        """``alias`` if the running config has it; ``<provider>/*`` for ``provider/model``;
        ``none`` if empty; else ``other``."""
        if not alias:
            return "none"
        if alias in self._aliases():
            return alias
        head, slash, _ = alias.partition("/")
        if slash and head in self._providers():
            return f"{head}/*"
        return "other"

    @staticmethod
    def _named(name: str | None, names: Collection[str]) -> str:
        """``name`` if ``names`` (the running config's) has it; ``none`` if absent; else ``other``."""
        if not name:
            return "none"
        return name if name in names else "other"

    def provider_label(self, provider: str | None) -> str:
        """``provider`` if the running config has it; ``none`` if absent; else ``other``."""
        return self._named(provider, self._providers())

    def key_label(self, provider: str, key: str | None) -> str:
        """A provider key's config name when ``provider`` is a configured provider (names come
        from the config only); ``none`` if absent; else ``other``."""
        if not key:
            return "none"
        return key if provider not in ("none", "other") and _KEY_NAME.fullmatch(key) else "other"

    def tag_labels(self, tags: Collection[str]) -> set[str]:
        """The label values of a request's tags: each one the config's ``tags.metrics`` lists, and
        ``other`` (once) for any other."""
        listed: Collection[str] = (
            getattr(self._app.runtime, "metric_tags", ()) if self._app is not None else ()
        )
        return {tag if tag in listed else "other" for tag in tags}

    def team_label(self, team: str | None) -> str:
        """``team`` if the running config has it; ``none`` if absent; else ``other``."""
        return self._named(team, getattr(self._app.runtime, "teams", ()) if self._app is not None else ())

    def org_label(self, org: str | None) -> str:
        """``org`` if the running config has it; ``none`` if absent; else ``other``."""
        return self._named(org, getattr(self._app.runtime, "orgs", ()) if self._app is not None else ())

    @staticmethod
    def kind_label(kind: str) -> str:
        """An error kind, or ``other`` for one outside :data:`ERROR_KINDS`."""
        return kind if kind in ERROR_KINDS else "other"

    # --- hooks ------------------------------------------------------------------------------------

    @hookimpl
    def emit_log(self, record: RequestRecord) -> None:
        """Count one finished request (CPU only)."""
        alias = self.alias_label(record.alias)
        provider = self.provider_label(record.provider)
        status_class = _STATUS_CLASSES.get(record.status // 100, "other")
        dialect = record.dialect if _DIALECT.fullmatch(record.dialect) else "other"
        stream = "true" if record.stream else "false"
        self.requests.labels(alias, provider, status_class, dialect, stream).inc()
        for tag in self.tag_labels(record.tags) if record.tags else ():
            self.tag_requests.labels(tag).inc()
            if record.cost_usd > 0:
                self.tag_cost.labels(tag).inc(record.cost_usd)
        team = self.team_label(record.team)
        org = self.org_label(record.org)
        self.team_requests.labels(team).inc()
        self.org_requests.labels(org).inc()
        if record.cost_usd > 0:
            self.team_cost.labels(team).inc(record.cost_usd)
            self.org_cost.labels(org).inc(record.cost_usd)
        self.duration.labels(alias, provider).observe(record.latency_ms / 1000)
        if record.ttft_ms is not None:
            self.ttft.labels(alias, provider).observe(record.ttft_ms / 1000)
        if record.upstream_ms is not None:
            overhead = max(0.0, record.latency_ms - record.upstream_ms)
            self.overhead.labels(alias, provider).observe(overhead / 1000)
        usage = record.usage
        if usage is not None:
            for kind, count in (
                ("prompt", usage.prompt_tokens),
                ("completion", usage.completion_tokens),
                ("cached", usage.cached_tokens),
                ("cache_write", usage.cache_write_tokens),
                ("reasoning", usage.reasoning_tokens),
            ):
                if count > 0:
                    self.tokens.labels(alias, provider, kind).inc(count)
            self._count_input(alias, provider, self.key_label(provider, record.provider_key), record)
        if record.cost_usd > 0:
            self.cost.labels(alias, provider).inc(record.cost_usd)
        for attempt in record.attempts:
            if attempt.error_kind is None and attempt.status < 400:
                outcome = "success"
            else:
                outcome = self.kind_label(attempt.error_kind or "other")
            attempt_alias = self.alias_label(attempt.alias) if attempt.alias else alias
            self.attempts.labels(attempt_alias, self.provider_label(attempt.provider), outcome).inc()
        if len(record.attempts) > 1:
            self.retries.labels(alias).inc(len(record.attempts) - 1)
        if record.fallbacks:
            self.fallbacks.labels(alias).inc(len(record.fallbacks))
        if record.error_kind is not None:
            self.errors.labels(self.kind_label(record.error_kind)).inc()
        elif record.client_disconnected:
            self.errors.labels("client_disconnected").inc()
        elif record.status >= 400:
            status = record.status if 400 <= record.status <= 599 else "other"
            self.errors.labels(f"http_{status}").inc()

    @hookimpl
    def emit_alert(self, alert: Alert) -> None:
        """Count one alert the kernel sent (once across the processes sharing the store)."""
        self.alerts.labels(alert.kind).inc()

    def _count_input(self, alias: str, provider: str, key: str, record: RequestRecord) -> None:
        """Split the prompt tokens into cached, cache_write and fresh (never below zero)."""
        usage = record.usage
        assert usage is not None
        cached = max(usage.cached_tokens, 0)
        written = max(usage.cache_write_tokens, 0)
        fresh = max(usage.prompt_tokens - cached - written, 0)
        for cache, count in (("cached", cached), ("cache_write", written), ("fresh", fresh)):
            if count > 0:
                self.input_tokens.labels(alias, provider, key, cache).inc(count)

    @hookimpl
    def render_metrics(self) -> bytes:
        """Prometheus text: this registry, or every process's files in multiprocess mode."""
        if not self.multiprocess_dir:
            return generate_latest(self.registry)
        self._publish()
        registry = CollectorRegistry()
        _merge_process_files(registry, path=self.multiprocess_dir)
        return generate_latest(registry)

    @hookimpl
    async def startup(self, app: GatewayView) -> None:
        """Keep the gateway's view for scrape-time gauges; in multiprocess mode, start publishing
        them."""
        self._app = app
        if self._publisher is not None and self._refresher is None:
            self._publish()
            self._refresher = asyncio.get_running_loop().create_task(
                self._refresh(), name="truckllm-logger-prometheus"
            )

    @hookimpl
    async def shutdown(self, app: GatewayView) -> None:
        """Stop publishing; in multiprocess mode, when the gateway is stopping (not when a reload
        replaces this logger), drop this process's live gauges."""
        task, self._refresher = self._refresher, None
        await stop_task(task)
        if self.multiprocess_dir and app.draining:
            _mark_process_dead(os.getpid(), self.multiprocess_dir)

    # --- multiprocess -----------------------------------------------------------------------------

    def _publish(self) -> None:
        if self._publisher is not None and self._app is not None:
            self._publisher.publish(self._app)

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self.options.refresh_interval)
            try:
                self._publish()
            except Exception:
                logger.opt(exception=True).warning("metrics: publishing gateway state failed")


@hookimpl
def register_loggers(register: Callable[[str, type[Logger]], None]) -> None:
    """Offer ``prometheus``."""
    register("prometheus", PrometheusLogger)
