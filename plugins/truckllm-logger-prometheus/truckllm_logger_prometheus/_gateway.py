"""Live gateway state as metrics, read when ``GET /metrics`` is scraped.

:func:`read_gateway` takes one snapshot of the :class:`truckllm.gateway.Gateway` (in flight, key
states, the after-response queue, plugin errors, the config version, other loggers' ``metrics``).
A single process exports it through :class:`GatewayCollector` at scrape time; several processes
sharing ``PROMETHEUS_MULTIPROC_DIR`` write it into their files with :class:`GatewayPublisher`.

Every attribute is read with ``getattr`` so that a gateway without one simply exports less: a
scrape never fails because the kernel changed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from loguru import logger
from prometheus_client import Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["KEY_STATES", "GatewayCollector", "GatewayPublisher", "Reading", "read_gateway"]

KEY_STATES = ("ok", "cooldown", "ejected", "disabled", "recovering")
"""Every value of the ``state`` label of ``truckllm_key_state`` (one is 1, the others 0)."""

GaugeMode = Literal["livesum", "livemax"]
"""How several processes' values of a gauge combine in multiprocess mode."""

_UNSAFE = re.compile(r"[^a-zA-Z0-9_]")

# What this process has added to each counter in its multiprocess files. Per process, like the
# files themselves: a second publisher in the same process (a rebuilt logger) must not add the
# same counts again.
_PUBLISHED: dict[tuple[str, tuple[str, ...]], float] = {}


@dataclass
class Reading:
    """One metric of the snapshot.

    :ivar name: the metric name (a counter's without ``_total``).
    :ivar mode: how several processes' values of a gauge combine (multiprocess mode).
    """

    name: str
    doc: str
    kind: Literal["gauge", "counter"]
    labels: tuple[str, ...] = ()
    samples: list[tuple[tuple[str, ...], float]] = field(default_factory=list)
    mode: GaugeMode = "livesum"


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _scalar(name: str, doc: str, kind: Literal["gauge", "counter"], value: object) -> list[Reading]:
    number = _number(value)
    if number is None:
        return []
    return [Reading(name, doc, kind, samples=[((), number)])]


def _keys(app: Any) -> list[Reading]:
    health = getattr(app, "health", None)
    keys = getattr(health, "keys", None)
    if not isinstance(keys, Mapping):
        return []
    clock: Callable[[], float] = getattr(health, "clock", time.monotonic)
    now = clock()
    state = Reading(
        "truckllm_key_state",
        "Provider key state: 1 for the current state (ok, cooldown, ejected, disabled, recovering).",
        "gauge",
        ("provider", "key", "state"),
        mode="livemax",
    )
    in_flight = Reading(
        "truckllm_key_in_flight", "Requests in flight on a provider key.", "gauge", ("provider", "key")
    )
    for (provider, name), key in sorted(keys.items()):
        current = key.state(now)
        for value in KEY_STATES:
            state.samples.append(((str(provider), str(name), value), 1.0 if value == current else 0.0))
        in_flight.samples.append(((str(provider), str(name)), float(key.in_flight)))
    return [state, in_flight]


def _background(app: Any) -> list[Reading]:
    background = getattr(app, "background", None)
    if background is None:
        return []
    readings: list[Reading] = []
    queue = getattr(background, "queue", None)
    if queue is not None:
        readings += _scalar(
            "truckllm_background_queue_size",
            "Request records waiting for store_usage and emit_log.",
            "gauge",
            queue.qsize(),
        )
    readings += _scalar(
        "truckllm_background_dropped",
        "Request records dropped because the after-response queue was full.",
        "counter",
        getattr(background, "dropped", None),
    )
    errors = getattr(background, "plugin_errors", None)
    if isinstance(errors, Mapping):
        reading = Reading(
            "truckllm_plugin_errors",
            "Exceptions raised by plugins in after-response hooks.",
            "counter",
            ("plugin", "hook"),
        )
        for (plugin, hook), count in sorted(errors.items()):
            reading.samples.append(((str(plugin), str(hook)), float(count)))
        readings.append(reading)
    return readings


def _named_loggers(loggers: object) -> list[tuple[str, object]]:
    """``(name, instance)`` pairs from the gateway's ``loggers``: a list of such pairs (the
    kernel's shape), a mapping of name to instance, or a list of instances with a ``name``."""
    if isinstance(loggers, Mapping):
        return [(str(name), instance) for name, instance in loggers.items()]
    if not isinstance(loggers, Iterable) or isinstance(loggers, str | bytes):
        return []
    pairs: list[tuple[str, object]] = []
    for item in loggers:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            pairs.append((item[0], item[1]))
        else:
            pairs.append((str(getattr(item, "name", None) or type(item).__name__.lower()), item))
    return pairs


def _loggers(app: Any) -> list[Reading]:
    readings: dict[tuple[str, str], Reading] = {}
    seen: dict[str, int] = {}
    for name, instance in _named_loggers(getattr(app, "loggers", None)):
        index = seen.get(name, 0)
        seen[name] = index + 1
        try:
            metrics = getattr(instance, "metrics", None)
            counters = frozenset(getattr(instance, "metrics_counters", ()))
        except Exception:
            logger.opt(exception=True).warning("logger {} metrics unreadable", name)
            continue
        if not isinstance(metrics, Mapping):
            continue
        for key, value in metrics.items():
            number = _number(value)
            if number is None:
                continue
            metric = f"truckllm_logger_{_UNSAFE.sub('_', name)}_{_UNSAFE.sub('_', str(key))}"
            kind: Literal["gauge", "counter"] = "counter" if key in counters else "gauge"
            reading = readings.get((metric, kind))
            if reading is None:
                reading = readings[(metric, kind)] = Reading(
                    metric, f"The {name} logger's {key!r} figure.", kind, ("index",)
                )
            reading.samples.append(((str(index),), number))
    return list(readings.values())


def _reloads(app: Any) -> list[Reading]:
    reading = Reading(
        "truckllm_config_reloads",
        "Config reloads by result: ok (applied) or failed (refused; the running config stayed).",
        "counter",
        ("result",),
    )
    for result, attribute in (("ok", "reloads_ok"), ("failed", "reloads_failed")):
        number = _number(getattr(app, attribute, None))
        if number is not None:
            reading.samples.append(((result,), number))
    return [reading] if reading.samples else []


def read_gateway(app: Any) -> list[Reading]:
    """One snapshot of the gateway's live state (what it lacks is left out)."""
    readings: list[Reading] = []
    runtime = getattr(app, "runtime", None)
    sections: list[Callable[[], list[Reading]]] = [
        lambda: _scalar(
            "truckllm_in_flight", "Requests being served now.", "gauge", getattr(app, "in_flight", None)
        ),
        lambda: _keys(app),
        lambda: _background(app),
        lambda: _scalar(
            "truckllm_retry_budget_denied",
            "Retries not made because the retry budget was spent.",
            "counter",
            getattr(getattr(app, "budget", None), "denied", None),
        ),
        lambda: _reloads(app),
        lambda: _scalar(
            "truckllm_config_version",
            "The running config's version (1 at start, +1 per reload).",
            "gauge",
            getattr(runtime, "version", None),
        ),
        lambda: _loggers(app),
    ]
    for section in sections:
        try:
            readings += section()
        except Exception:  # a scrape must not fail because one piece of state could not be read
            logger.opt(exception=True).warning("metrics: gateway state unreadable")
    for reading in readings:
        if reading.name == "truckllm_config_version":
            reading.mode = "livemax"
    return readings


class GatewayCollector(Collector):
    """Exports :func:`read_gateway` at every scrape (one process).

    :param source: returns the gateway, or ``None`` before ``startup``.
    """

    def __init__(self, source: Callable[[], Any]) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        """The snapshot as metric families."""
        app = self._source()
        if app is None:
            return
        for reading in read_gateway(app):
            family: GaugeMetricFamily | CounterMetricFamily
            if reading.kind == "counter":
                family = CounterMetricFamily(reading.name, reading.doc, labels=reading.labels)
            else:
                family = GaugeMetricFamily(reading.name, reading.doc, labels=reading.labels)
            for labels, value in reading.samples:
                family.add_metric(list(labels), value)
            yield family

    def describe(self) -> Iterable[Metric]:
        """Nothing up front: the metrics depend on the gateway given to ``startup``."""
        return []


class GatewayPublisher:
    """Writes :func:`read_gateway` into this process's multiprocess files.

    Gauges are set (``truckllm_key_state`` and ``truckllm_config_version`` combine across live
    processes with ``livemax``, the others with ``livesum``); counters are increased by what
    was counted since the last publish, so dead workers' counts are kept like any counter's.
    """

    def __init__(self) -> None:
        self._metrics: dict[str, Gauge | Counter] = {}

    def _metric(self, reading: Reading) -> Gauge | Counter:
        metric = self._metrics.get(reading.name)
        if metric is None:
            if reading.kind == "counter":
                metric = Counter(reading.name, reading.doc, reading.labels, registry=None)
            else:
                metric = Gauge(
                    reading.name,
                    reading.doc,
                    reading.labels,
                    registry=None,
                    multiprocess_mode=reading.mode,
                )
            self._metrics[reading.name] = metric
        return metric

    def publish(self, app: Any) -> None:
        """Read the gateway and write what it says."""
        for reading in read_gateway(app):
            metric = self._metric(reading)
            for labels, value in reading.samples:
                child = metric.labels(*labels) if reading.labels else metric
                if isinstance(child, Gauge):
                    child.set(value)
                    continue
                last = _PUBLISHED.get((reading.name, labels), 0.0)
                delta = value - last if value >= last else value  # a smaller value: the source restarted
                if delta:
                    child.inc(delta)
                _PUBLISHED[(reading.name, labels)] = value
