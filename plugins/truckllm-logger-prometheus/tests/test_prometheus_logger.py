"""The prometheus logger: counters from records, bounded labels, gauges from a real Gateway's view;
every metric the README lists is on a scrape, and every metric on a scrape is in the README."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, get_args

import msgspec
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from truckllm_logger_prometheus import PrometheusLogger
from truckllm_logger_prometheus._gateway import KEY_STATES, GatewayPublisher

from truckllm import hookimpl
from truckllm._internal.config.loader import decode_options
from truckllm._internal.gateway import Gateway
from truckllm._internal.view import GatewayView
from truckllm.types import Alert, AlertKind, AttemptRecord, KeyHealth, ProviderSpec, RequestRecord, Usage

README = Path(__file__).resolve().parent.parent / "README.md"

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
        tags=("capped", "made-up", "free"),
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


def make_gateway(affinity: bool = False) -> Gateway:
    """A real gateway built from :data:`CONFIG` (not started), with no plugin autoloaded; with
    affinity routing on when ``affinity``."""
    text = CONFIG + ("affinity: {enabled: true, ttl: 60s}\n" if affinity else "")
    return Gateway(config_text=text, env={}, extra_plugins=(Providers(),), autoload=False)


async def pin(gateway: Gateway, *conversations: str) -> None:
    """Pin ``conversations`` of ``gpt-4o`` as the request path does, the strategy putting each
    next key first in turn (round robin)."""
    candidates = list(gateway.runtime.aliases["gpt-4o"].candidates)
    settings = gateway.runtime.config.affinity
    for turn, conversation in enumerate(conversations):
        start = turn % len(candidates)
        ordered = candidates[start:] + candidates[:start]
        name = gateway.affinity.name(None, "gpt-4o", conversation)
        await gateway.affinity.order(gateway.store, "gpt-4o", name, ordered, settings)


async def started(gateway: Gateway) -> PrometheusLogger:
    """A logger whose ``startup`` got ``gateway``'s view (as the kernel hands it)."""
    metrics = PrometheusLogger()
    await metrics.startup(gateway.view)
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

    cache = "truckllm_input_tokens_total"
    assert value(s, cache, key="oa-main", cache="cached", **route) == 20
    assert value(s, cache, key="oa-main", cache="fresh", **route) == 80
    assert value(s, cache, key="none", cache="fresh", **route) == 10
    assert value(s, cache, key="oa-main", cache="cache_write", **route) is None

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


class Silent:
    """A logger reporting no figures."""

    def emit_log(self, record: RequestRecord) -> None:
        """Nothing."""


class FakeWebhook(Silent):
    """Looks like a logger exposing ``metrics`` (the webhook logger's shape)."""

    name: ClassVar[str] = "webhook"
    metrics_counters: ClassVar[frozenset[str]] = frozenset({"dropped", "sent"})

    def __init__(self, queue: int, dropped: int, sent: int) -> None:
        self.metrics: dict[str, object] = {"queue": queue, "dropped": dropped, "sent": sent, "note": "text"}


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
        ("stdout", Silent()),
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
    await metrics.shutdown(gateway.view)


class FakeOtel(Silent):
    """Reports figures but declares no counters: every figure is a gauge."""

    name: ClassVar[str] = "otel"

    @property
    def metrics(self) -> dict[str, object]:
        """Numbers and one that is not."""
        return {"records": 3, "ratio": 0.5, "flag": True, "where": "collector:4317"}


class Broken(Silent):
    """A logger whose figures cannot be read."""

    name: ClassVar[str] = "broken"

    @property
    def metrics(self) -> dict[str, int]:
        """Raises."""
        raise RuntimeError("figures unavailable")


@pytest.mark.parametrize(
    "loggers, expected",
    [
        (
            [("webhook", FakeWebhook(5, 1, 10))],
            {("truckllm_logger_webhook_queue", "0"): 5, ("truckllm_logger_webhook_sent_total", "0"): 10},
        ),
        (
            [("otel", FakeOtel()), ("otel", FakeOtel())],
            {("truckllm_logger_otel_records", "0"): 3, ("truckllm_logger_otel_ratio", "1"): 0.5},
        ),
        (
            [("broken", Broken()), ("webhook", FakeWebhook(5, 1, 10)), ("broken", Broken())],
            {("truckllm_logger_webhook_queue", "0"): 5, ("truckllm_logger_webhook_dropped_total", "0"): 1},
        ),
    ],
    ids=["counters declared", "gauges only", "an unreadable logger"],
)
async def test_other_loggers_figures(
    loggers: list[tuple[str, Any]], expected: dict[tuple[str, str], float], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Other loggers' figures come from the snapshot: numbers only, counters as declared, a logger
    whose figures raise left out (the others kept)."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    gateway = make_gateway()
    gateway.loggers = loggers
    metrics = await started(gateway)
    s = scrape(metrics)
    for (name, index), number in expected.items():
        assert value(s, name, index=index) == pytest.approx(number)
    logged = {name for name, _ in s if name.startswith("truckllm_logger_")}
    assert not any(word in name for name in logged for word in ("flag", "where", "broken"))


async def test_unreadable_state_does_not_break_a_scrape(monkeypatch: pytest.MonkeyPatch) -> None:
    """A snapshot that cannot be taken (a kernel bug) leaves the gateway gauges out; the counters
    counted from records are still served."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)

    def fail(self: GatewayView) -> Any:
        raise RuntimeError("no state")

    metrics = await started(make_gateway())
    metrics.emit_log(record())
    monkeypatch.setattr(GatewayView, "snapshot", fail)
    s = scrape(metrics)
    assert value(s, "truckllm_in_flight") is None
    assert value(s, "truckllm_request_duration_seconds_count", alias="gpt-4o", provider="none") == 1


def readme_metrics() -> set[str]:
    """Every metric name in the README's tables (``<logger>_<key>`` stands for a logger's figures)."""
    names = set(re.findall(r"^\| `(truckllm_[a-z_<>]+)`", README.read_text(), re.MULTILINE))
    assert len(names) >= 20, "the README's metric tables were not found"
    return names


async def test_every_metric_the_readme_lists_is_scraped_and_no_other(monkeypatch: pytest.MonkeyPatch) -> None:
    """A gateway with a key, a plugin error, a logger reporting figures and records of every kind:
    the scrape holds every metric of the README's tables, and the README lists every metric on it."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    gateway = make_gateway(affinity=True)
    gateway.background.plugin_errors[("logger-webhook", "emit_log")] += 1
    gateway.loggers = [("webhook", FakeWebhook(1, 2, 3))]
    await pin(gateway, "a conversation")
    metrics = await started(gateway)
    for r in RECORDS:
        metrics.emit_log(r)
    families = {
        family.name: family.type
        for family in text_string_to_metric_families(metrics.render_metrics().decode())
        if family.samples and not family.name.endswith("_created")  # prometheus-client's own
    }
    scraped = {f"{name}_total" if kind == "counter" else name for name, kind in families.items()}
    listed = readme_metrics()
    pattern = "truckllm_logger_<logger>_<key>"
    assert pattern in listed
    figures = {name for name in scraped if name.startswith("truckllm_logger_")}
    assert figures == {
        "truckllm_logger_webhook_queue",
        "truckllm_logger_webhook_dropped_total",
        "truckllm_logger_webhook_sent_total",
    }
    assert listed - {pattern} == scraped - figures


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


async def test_input_tokens_split_by_cache_and_key_give_a_cached_ratio(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    metrics = await started(make_gateway())
    route = {"alias": "gpt-4o", "provider": "openai"}
    for key, usage in (
        ("oa-main", Usage(prompt_tokens=1000, cached_tokens=900, cache_write_tokens=50, total_tokens=1000)),
        ("oa-main", Usage(prompt_tokens=1000, cached_tokens=1000, total_tokens=1000)),
        ("oa-backup", Usage(prompt_tokens=1000, cache_write_tokens=1000, total_tokens=1000)),
        ("oa-backup", Usage(prompt_tokens=5, cached_tokens=9, total_tokens=5)),  # a provider's odd count
    ):
        metrics.emit_log(record(provider="openai", provider_key=key, usage=usage))
    metrics.emit_log(
        record(alias="mystery", provider="nowhere", provider_key="sk-live-123", usage=Usage(prompt_tokens=3))
    )
    s = scrape(metrics)
    cache = "truckllm_input_tokens_total"
    main = {
        c: value(s, cache, key="oa-main", cache=c, **route) or 0 for c in ("cached", "cache_write", "fresh")
    }
    assert main == {"cached": 1900, "cache_write": 50, "fresh": 50}
    assert main["cached"] / sum(main.values()) == pytest.approx(0.95)
    assert value(s, cache, key="oa-backup", cache="cache_write", **route) == 1000
    assert value(s, cache, key="oa-backup", cache="fresh", **route) is None  # never negative
    assert value(s, cache, key="oa-backup", cache="cached", **route) == 9
    # a record from outside the config never puts its key name in a label
    assert value(s, cache, alias="other", provider="other", key="other", cache="fresh") == 3
    assert "sk-live-123" not in metrics.render_metrics().decode()


async def test_affinity_pins_per_key_and_moves_by_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """Live pins per alias and provider key and pin writes by reason, from the snapshot; the pins
    of a key whose conversations' TTL ended are gone; nothing while affinity is off."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    now = [1000.0]
    gateway = make_gateway(affinity=True)
    gateway.affinity.clock = gateway.affinity.wall_clock = lambda: now[0]
    metrics = await started(gateway)
    s = scrape(metrics)
    assert {labels: v for (name, labels), v in s.items() if name == "truckllm_affinity_moves_total"} == {
        (("reason", reason),): 0 for reason in ("new", "moved", "failover", "refresh", "capped")
    }
    assert not any(name == "truckllm_affinity_pins" for name, _ in s)

    await pin(gateway, *(f"c{n}" for n in range(6)))  # round robin over three keys: two pins each
    s = scrape(metrics)
    pins = {
        dict(labels)["key"]: v
        for (name, labels), v in s.items()
        if name == "truckllm_affinity_pins" and dict(labels)["alias"] == "gpt-4o"
    }
    assert pins == {"oa-main": 2, "oa-backup": 2, "oa-old": 2}
    assert value(s, "truckllm_affinity_moves_total", reason="new") == 6
    assert value(s, "truckllm_affinity_moves_total", reason="capped") == 0

    now[0] += 40  # "c0" comes back past half its TTL: its pin is refreshed, on the same key
    await pin(gateway, "c0")
    s = scrape(metrics)
    assert value(s, "truckllm_affinity_pins", alias="gpt-4o", provider="openai", key="oa-main") == 2
    assert value(s, "truckllm_affinity_moves_total", reason="refresh") == 1

    now[0] += 21  # past every other pin's TTL
    s = scrape(metrics)
    assert value(s, "truckllm_affinity_pins", alias="gpt-4o", provider="openai", key="oa-main") == 1
    assert value(s, "truckllm_affinity_pins", alias="gpt-4o", provider="openai", key="oa-old") is None

    now[0] += 60  # past every pin's TTL
    s = scrape(metrics)
    assert not any(name == "truckllm_affinity_pins" for name, _ in s)
    assert value(s, "truckllm_affinity_moves_total", reason="new") == 6

    off = await started(make_gateway())
    assert not any(name.startswith("truckllm_affinity") for name, _ in scrape(off))


async def test_a_published_pin_gauge_goes_to_zero_when_its_pins_expire(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Multiprocess mode keeps a gauge's last value in the worker's file: a key whose last pin
    expired is published as 0, not left at its old count (the publisher's gauges, read in process)."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    now = [1000.0]
    gateway = make_gateway(affinity=True)
    gateway.affinity.clock = gateway.affinity.wall_clock = lambda: now[0]
    publisher = GatewayPublisher()

    def published() -> dict[str, float]:
        gauge = publisher._metrics["truckllm_affinity_pins"]
        return {s.labels["key"]: s.value for family in gauge.collect() for s in family.samples}

    await pin(gateway, "c0", "c1")
    publisher.publish(gateway.view)
    assert published() == {"oa-main": 1, "oa-backup": 1}
    now[0] += 30
    await pin(gateway, "c2")  # the share cap passes over the two keys holding a pin: the third
    publisher.publish(gateway.view)
    assert published() == {"oa-main": 1, "oa-backup": 1, "oa-old": 1}
    now[0] += 31  # the first two expired
    publisher.publish(gateway.view)
    assert published() == {"oa-main": 0, "oa-backup": 0, "oa-old": 1}


def test_alerts_counted_by_kind_every_kind_from_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    metrics = PrometheusLogger()
    for kind in ("key_ejected", "key_ejected", "budget"):
        metrics.emit_alert(Alert(id=f"{kind}:x", kind=kind, subject="provider:oa/k", message="m", at=1.0))
    s = scrape(metrics)
    assert value(s, "truckllm_alerts_total", kind="key_ejected") == 2
    assert value(s, "truckllm_alerts_total", kind="budget") == 1
    assert value(s, "truckllm_alerts_total", kind="credentials_failing") == 0
    assert {v for (name, labels) in s if name == "truckllm_alerts_total" for _, v in labels} == set(
        get_args(AlertKind)
    )


async def test_tags_become_labels_only_from_the_config_list(monkeypatch: pytest.MonkeyPatch) -> None:
    """``tag`` is a tag of ``tags.metrics`` or ``other`` (once per request): a client's made-up
    tags never become label values."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    from truckllm._internal.view import RuntimeView

    monkeypatch.setattr(RuntimeView, "metric_tags", ("capped",), raising=False)
    metrics = await started(make_gateway())
    for r in RECORDS:
        metrics.emit_log(r)
    metrics.emit_log(record(tags=("x1", "x2"), cost_usd=0.5))
    s = scrape(metrics)
    assert value(s, "truckllm_tag_requests_total", tag="capped") == 1
    assert value(s, "truckllm_tag_requests_total", tag="other") == 2
    assert value(s, "truckllm_tag_cost_usd_total", tag="capped") == pytest.approx(0.01)
    assert value(s, "truckllm_tag_cost_usd_total", tag="other") == pytest.approx(0.51)
    tags = {dict(labels)["tag"] for (name, labels) in s if name.startswith("truckllm_tag_")}
    assert tags == {"capped", "other"}


async def test_teams_and_orgs_become_labels_only_from_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """``team`` / ``org`` are the running config's names, ``none`` without one, ``other`` for a
    name the config does not have (a team a reload removed)."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    gateway = Gateway(
        config_text=CONFIG + "orgs: {acme: {}}\nteams: {eng: {org: acme}, ops: {}}\n",
        env={},
        extra_plugins=(Providers(),),
        autoload=False,
    )
    metrics = await started(gateway)
    metrics.emit_log(record(team="eng", org="acme", cost_usd=0.25))
    metrics.emit_log(record(team="eng", org="acme", cost_usd=0.5))
    metrics.emit_log(record(team="ops", cost_usd=1.0))
    metrics.emit_log(record(team="gone", org="old-org", cost_usd=2.0))
    metrics.emit_log(record())  # a key without a team
    s = scrape(metrics)
    assert value(s, "truckllm_team_requests_total", team="eng") == 2
    assert value(s, "truckllm_team_requests_total", team="ops") == 1
    assert value(s, "truckllm_team_requests_total", team="other") == 1
    assert value(s, "truckllm_team_requests_total", team="none") == 1
    assert value(s, "truckllm_team_cost_usd_total", team="eng") == pytest.approx(0.75)
    assert value(s, "truckllm_team_cost_usd_total", team="other") == pytest.approx(2.0)
    assert value(s, "truckllm_team_cost_usd_total", team="none") is None  # no spend: no sample
    assert value(s, "truckllm_org_requests_total", org="acme") == 2
    assert value(s, "truckllm_org_requests_total", org="none") == 2
    assert value(s, "truckllm_org_requests_total", org="other") == 1
    assert value(s, "truckllm_org_cost_usd_total", org="acme") == pytest.approx(0.75)
    assert value(s, "truckllm_org_cost_usd_total", org="none") == pytest.approx(1.0)
    teams = {dict(labels)["team"] for (name, labels) in s if name.startswith("truckllm_team_")}
    orgs = {dict(labels)["org"] for (name, labels) in s if name.startswith("truckllm_org_")}
    assert teams == {"eng", "ops", "other", "none"} and orgs == {"acme", "other", "none"}
    users = {k for (_, labels) in s for k, _ in labels}
    assert "user" not in users  # end users are unbounded: never a label


def test_every_key_state_has_a_sample() -> None:
    """``truckllm_key_state`` has a 0/1 sample for every state a key can be in (a state missing
    there reads as a key in no state at all)."""
    assert sorted(KEY_STATES) == sorted(get_args(KeyHealth))
