"""The prometheus logger: counters from records, bounded labels, gauges from a real Gateway."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, ClassVar

import msgspec
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from truckllm_logger_prometheus import PrometheusLogger

from truckllm import hookimpl
from truckllm.config.loader import decode_options
from truckllm.gateway import Gateway
from truckllm.types import AttemptRecord, ProviderSpec, RequestRecord, Usage

CONFIG = """
providers:
  openai:
    type: openai
    keys:
      - {name: oa-main, value: sk-test-1}
      - {name: oa-backup, value: sk-test-2}
      - {name: oa-old, value: sk-test-3}
  demo:
    type: mock
models:
  gpt-4o:
    deployments: [{provider: openai, model: gpt-4o}]
    fallbacks: [demo]
  demo:
    deployments: [{provider: demo, model: echo}]
"""

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(metrics: PrometheusLogger) -> Samples:
    """Render and parse: every sample by (name, sorted labels)."""
    samples: Samples = {}
    for family in text_string_to_metric_families(metrics.render_metrics().decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """One sample's value, ``None`` if absent."""
    return samples.get((name, tuple(sorted(labels.items()))))


def label_values(samples: Samples, label: str) -> set[str]:
    """Every value ``label`` takes in ``samples`` of metrics counted from records."""
    return {
        v
        for (name, labels) in samples
        if not name.startswith("truckllm_key_")
        for k, v in labels
        if k == label
    }


def attempt(provider: str, status: int, kind: str | None = None, alias: str = "gpt-4o") -> AttemptRecord:
    """One attempt on ``provider``'s first key."""
    return AttemptRecord(
        provider=provider,
        provider_key="oa-main" if provider == "openai" else "-",
        deployment=f"{alias}#0",
        model="gpt-4o",
        status=status,
        latency_ms=10.0,
        error_kind=kind,
        alias=alias,
    )


def record(**changes: Any) -> RequestRecord:
    """A non-stream request for ``gpt-4o``; ``changes`` override fields."""
    fields: dict[str, Any] = {
        "request_id": "r",
        "started_at": 1748779200.0,
        "endpoint": "chat",
        "dialect": "openai",
        "alias": "gpt-4o",
        "gateway_key": "team-a",
        "stream": False,
        "status": 200,
        "latency_ms": 100.0,
    }
    fields.update(changes)
    return RequestRecord(**fields)


RECORDS = [
    record(  # a stream, first try
        stream=True,
        latency_ms=1000.0,
        ttft_ms=150.0,
        upstream_ms=990.0,
        provider="openai",
        provider_type="openai",
        provider_key="oa-main",
        attempts=(attempt("openai", 200),),
        usage=Usage(
            prompt_tokens=100, completion_tokens=50, total_tokens=150, cached_tokens=20, reasoning_tokens=10
        ),
        cost_usd=0.01,
    ),
    record(  # a 429, then a success on the same provider
        latency_ms=2000.0,
        upstream_ms=1500.0,
        provider="openai",
        attempts=(attempt("openai", 429, "rate_limit"), attempt("openai", 200)),
        usage=Usage(prompt_tokens=10, completion_tokens=5, total_tokens=15),
        cost_usd=0.001,
    ),
    record(  # a 500, then the fallback alias answers
        provider="demo",
        upstream_ms=50.0,
        attempts=(attempt("openai", 500, "server"), attempt("demo", 200, alias="demo")),
        fallbacks=("demo",),
    ),
    record(alias="mystery-model-from-a-client", status=404, error_kind="not_found"),
    record(status=401),
    record(stream=True, status=499, client_disconnected=True),
]


class Providers:
    """Throwaway provider types, so the test needs no provider plugin installed."""

    @hookimpl
    def register_providers(self, register: Callable[[ProviderSpec], None]) -> None:
        """``openai`` (with keys) and ``mock`` (without)."""
        register(ProviderSpec(type="openai", default_base_url="http://127.0.0.1:9"))
        register(ProviderSpec(type="mock", default_base_url="http://127.0.0.1:9", needs_keys=False))


def make_gateway() -> Gateway:
    """A real gateway built from :data:`CONFIG` (not started), with no plugin autoloaded."""
    return Gateway(config_text=CONFIG, env={}, extra_plugins=(Providers(),), autoload=False)


async def started(gateway: Any) -> PrometheusLogger:
    """A logger whose ``startup`` got ``gateway``."""
    metrics = PrometheusLogger()
    await metrics.startup(gateway)
    return metrics


async def test_counters_match_the_records(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    metrics = await started(make_gateway())
    for r in RECORDS:
        metrics.emit_log(r)
    s = scrape(metrics)
    requests = "truckllm_requests_total"
    common = {"dialect": "openai"}
    assert (
        value(s, requests, alias="gpt-4o", provider="openai", status_class="2xx", stream="true", **common)
        == 1
    )
    assert (
        value(s, requests, alias="gpt-4o", provider="openai", status_class="2xx", stream="false", **common)
        == 1
    )
    assert (
        value(s, requests, alias="gpt-4o", provider="demo", status_class="2xx", stream="false", **common) == 1
    )
    assert (
        value(s, requests, alias="other", provider="none", status_class="4xx", stream="false", **common) == 1
    )
    assert (
        value(s, requests, alias="gpt-4o", provider="none", status_class="4xx", stream="false", **common) == 1
    )
    assert (
        value(s, requests, alias="gpt-4o", provider="none", status_class="4xx", stream="true", **common) == 1
    )
    assert sum(v for (name, _), v in s.items() if name == requests) == len(RECORDS)

    route = {"alias": "gpt-4o", "provider": "openai"}
    assert value(s, "truckllm_request_duration_seconds_count", **route) == 2
    assert value(s, "truckllm_request_duration_seconds_sum", **route) == pytest.approx(3.0)
    assert value(s, "truckllm_request_duration_seconds_bucket", le="1.0", **route) == 1
    assert value(s, "truckllm_ttft_seconds_count", **route) == 1
    assert value(s, "truckllm_ttft_seconds_sum", **route) == pytest.approx(0.15)
    assert value(s, "truckllm_overhead_seconds_count", **route) == 2
    assert value(s, "truckllm_overhead_seconds_sum", **route) == pytest.approx(0.51)
    assert value(s, "truckllm_overhead_seconds_count", alias="gpt-4o", provider="demo") == 1

    tokens = "truckllm_tokens_total"
    assert value(s, tokens, kind="prompt", **route) == 110
    assert value(s, tokens, kind="completion", **route) == 55
    assert value(s, tokens, kind="cached", **route) == 20
    assert value(s, tokens, kind="reasoning", **route) == 10
    assert value(s, "truckllm_cost_usd_total", **route) == pytest.approx(0.011)

    attempts = "truckllm_attempts_total"
    assert value(s, attempts, outcome="success", **route) == 2
    assert value(s, attempts, outcome="rate_limit", **route) == 1
    assert value(s, attempts, outcome="server", **route) == 1
    assert value(s, attempts, alias="demo", provider="demo", outcome="success") == 1
    assert value(s, "truckllm_retries_total", alias="gpt-4o") == 2
    assert value(s, "truckllm_fallbacks_total", alias="gpt-4o") == 1

    errors = "truckllm_errors_total"
    assert value(s, errors, kind="not_found") == 1
    assert value(s, errors, kind="http_401") == 1
    assert value(s, errors, kind="client_disconnected") == 1
    assert sum(v for (name, _), v in s.items() if name == errors) == 3


async def test_label_values_are_bounded_by_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    metrics = await started(make_gateway())
    for n in range(50):
        metrics.emit_log(record(alias=f"client-model-{n}", provider=f"ghost-{n}", error_kind=f"weird-{n}"))
    metrics.emit_log(record(alias="openai/gpt-9-preview", provider="openai"))
    metrics.emit_log(record(alias="nowhere/gpt-9", dialect="Not A Dialect!"))
    metrics.emit_log(record(alias="", attempts=(attempt("phantom", 500, "bizarre", alias="phantom"),)))
    s = scrape(metrics)
    assert label_values(s, "alias") == {"other", "openai/*", "none"}
    assert label_values(s, "provider") == {"other", "openai", "none"}
    assert label_values(s, "dialect") == {"openai", "other"}
    assert value(s, "truckllm_errors_total", kind="other") == 50
    assert value(s, "truckllm_attempts_total", alias="other", provider="other", outcome="other") == 1
    assert metrics.alias_label("demo") == "demo"
    assert metrics.kind_label("quota") == "quota"


class FakeWebhook:
    """Looks like a logger exposing ``metrics`` (the webhook logger's shape)."""

    name: ClassVar[str] = "webhook"
    metrics_counters: ClassVar[frozenset[str]] = frozenset({"dropped", "sent"})

    def __init__(self, queue: int, dropped: int, sent: int) -> None:
        self.metrics = {"queue": queue, "dropped": dropped, "sent": sent, "note": "not a number"}


async def test_gauges_read_the_gateway_at_scrape_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    gateway = make_gateway()
    now = gateway.health.clock()
    gateway.health.key("openai", "oa-main").cool(now, 30, "429")
    gateway.health.key("openai", "oa-backup").disabled = "401 auth"
    gateway.health.key("openai", "oa-backup").in_flight = 2
    gateway.health.key("openai", "oa-old").ejected_until = now + 60
    gateway.background.dropped = 7
    gateway.background.plugin_errors[("logger-webhook", "emit_log")] += 3
    gateway.budget.denied = 4
    gateway.loggers = [
        ("webhook", FakeWebhook(5, 1, 10)),
        ("stdout", object()),
        ("webhook", FakeWebhook(0, 2, 20)),
    ]
    metrics = await started(gateway)

    gateway.in_flight = 3
    s = scrape(metrics)
    assert value(s, "truckllm_in_flight") == 3
    states = {
        (dict(labels)["key"], dict(labels)["state"]): v
        for (name, labels), v in s.items()
        if name == "truckllm_key_state" and v == 1
    }
    assert states == {
        ("oa-main", "cooldown"): 1,
        ("oa-backup", "disabled"): 1,
        ("oa-old", "ejected"): 1,
        ("-", "ok"): 1,
    }
    assert value(s, "truckllm_key_state", provider="openai", key="oa-main", state="ok") == 0
    assert value(s, "truckllm_key_in_flight", provider="openai", key="oa-backup") == 2
    assert value(s, "truckllm_background_queue_size") == 0
    assert value(s, "truckllm_background_dropped_total") == 7
    assert value(s, "truckllm_plugin_errors_total", plugin="logger-webhook", hook="emit_log") == 3
    assert value(s, "truckllm_retry_budget_denied_total") == 4
    assert value(s, "truckllm_config_version") == 1
    assert value(s, "truckllm_logger_webhook_queue", index="0") == 5
    assert value(s, "truckllm_logger_webhook_queue", index="1") == 0
    assert value(s, "truckllm_logger_webhook_dropped_total", index="1") == 2
    assert value(s, "truckllm_logger_webhook_sent_total", index="0") == 10
    assert not any(name.startswith("truckllm_logger_webhook_note") for name, _ in s)

    assert value(s, "truckllm_config_reloads_total", result="ok") == 0

    gateway.in_flight = 0
    gateway.reload(CONFIG)
    s = scrape(metrics)
    assert value(s, "truckllm_in_flight") == 0
    assert value(s, "truckllm_config_version") == 2
    assert value(s, "truckllm_config_reloads_total", result="ok") == 1
    assert value(s, "truckllm_config_reloads_total", result="failed") == 0
    await metrics.shutdown(gateway)


@pytest.mark.parametrize(
    "loggers",
    [
        {"webhook": FakeWebhook(5, 1, 10)},
        [FakeWebhook(5, 1, 10)],
        [("webhook", FakeWebhook(5, 1, 10))],
    ],
)
async def test_other_loggers_metrics_in_any_shape(loggers: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    metrics = await started(SimpleNamespace(loggers=loggers))
    s = scrape(metrics)
    assert value(s, "truckllm_logger_webhook_queue", index="0") == 5
    assert value(s, "truckllm_logger_webhook_sent_total", index="0") == 10


class Unreadable:
    """A gateway whose every piece of state raises."""

    @property
    def health(self) -> Any:
        """Raises."""
        raise RuntimeError("no health")

    @property
    def loggers(self) -> Any:
        """Raises."""
        raise RuntimeError("no loggers")

    in_flight = 1


async def test_unreadable_state_does_not_break_a_scrape(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    metrics = await started(Unreadable())
    metrics.emit_log(record())
    s = scrape(metrics)
    assert value(s, "truckllm_in_flight") == 1
    assert value(s, "truckllm_request_duration_seconds_count", alias="other", provider="none") == 1


def test_each_instance_has_its_own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    first, second = PrometheusLogger(), PrometheusLogger()
    first.emit_log(record())
    assert value(scrape(first), "truckllm_errors_total", kind="http_401") is None
    assert (
        value(scrape(first), "truckllm_request_duration_seconds_count", alias="other", provider="none") == 1
    )
    assert (
        value(scrape(second), "truckllm_request_duration_seconds_count", alias="other", provider="none")
        is None
    )
    assert not any(name.startswith("truckllm_") for name in REGISTRY._names_to_collectors)


def test_options_decode_strictly() -> None:
    options = decode_options(
        {"duration_buckets": [0.5, 1, 5], "refresh_interval": "2s"}, PrometheusLogger.Options
    )
    assert options.duration_buckets == (0.5, 1.0, 5.0)
    assert options.refresh_interval == 2.0
    assert decode_options({}, PrometheusLogger.Options) == PrometheusLogger.Options()
    bad: dict[str, Any]
    for bad in (
        {"duration_buckets": [1, 0.5]},
        {"ttft_buckets": []},
        {"overhead_buckets": [0, 1]},
        {"refresh_interval": 0},
        {"buckets": [1]},
    ):
        with pytest.raises(msgspec.ValidationError):
            decode_options(bad, PrometheusLogger.Options)
