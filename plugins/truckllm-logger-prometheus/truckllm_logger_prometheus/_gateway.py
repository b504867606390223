"""Live gateway state as metrics, read when ``GET /metrics`` is scraped.

:func:`read_snapshot` turns one :class:`~truckllm.types.GatewaySnapshot` (what
``GatewayView.snapshot()`` returns: key states, in flight, the after-response queue, plugin
errors, retry-budget denials, the config version and reloads, other loggers' figures, affinity
pins and pin moves) into readings. A single process exports them through
:class:`GatewayCollector` at scrape time; several processes sharing ``PROMETHEUS_MULTIPROC_DIR``
write them into their files with :class:`GatewayPublisher`.

Every figure comes typed from the kernel's snapshot: a kernel change that would take one away is a
type error in the kernel, not a metric that silently disappears. Should taking the snapshot fail
all the same, the scrape still answers, with the counters counted from records.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from loguru import logger
from prometheus_client import Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from truckllm.kit.view import GatewayView
from truckllm.types import AffinitySnapshot, GatewaySnapshot, LoggerFigures

__all__ = ["KEY_STATES", "GatewayCollector", "GatewayPublisher", "Reading", "read_snapshot", "snapshot_of"]

KEY_STATES = ("ok", "cooldown", "ejected", "half_open", "disabled", "credential", "recovering")
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


def _scalar(
    name: str, doc: str, kind: Literal["gauge", "counter"], value: float, mode: GaugeMode = "livesum"
) -> Reading:
    return Reading(name, doc, kind, samples=[((), float(value))], mode=mode)


def _keys(snapshot: GatewaySnapshot) -> list[Reading]:
    state = Reading(
        "truckllm_key_state",
        "Provider key state: 1 for the current state"
        " (ok, cooldown, ejected, half_open, disabled, credential, recovering).",
        "gauge",
        ("provider", "key", "state"),
        mode="livemax",
    )
    in_flight = Reading(
        "truckllm_key_in_flight", "Requests in flight on a provider key.", "gauge", ("provider", "key")
    )
    for key in snapshot.keys:
        for value in KEY_STATES:
            state.samples.append(((key.provider, key.name, value), 1.0 if value == key.state else 0.0))
        in_flight.samples.append(((key.provider, key.name), float(key.in_flight)))
    return [state, in_flight]


def _background(snapshot: GatewaySnapshot) -> list[Reading]:
    errors = Reading(
        "truckllm_plugin_errors",
        "Exceptions raised by plugins in after-response hooks.",
        "counter",
        ("plugin", "hook"),
        samples=[((e.plugin, e.hook), float(e.count)) for e in snapshot.plugin_errors],
    )
    return [
        _scalar(
            "truckllm_background_queue_size",
            "Request records waiting for store_usage and emit_log.",
            "gauge",
            snapshot.background_queue,
        ),
        _scalar(
            "truckllm_background_dropped",
            "Request records dropped because the after-response queue was full.",
            "counter",
            snapshot.background_dropped,
        ),
        errors,
    ]


def _loggers(figures: Iterable[LoggerFigures]) -> list[Reading]:
    readings: dict[tuple[str, str], Reading] = {}
    for reported in figures:
        for key, value in reported.figures.items():
            metric = f"truckllm_logger_{_UNSAFE.sub('_', reported.name)}_{_UNSAFE.sub('_', key)}"
            kind: Literal["gauge", "counter"] = "counter" if key in reported.counters else "gauge"
            reading = readings.get((metric, kind))
            if reading is None:
                reading = readings[(metric, kind)] = Reading(
                    metric, f"The {reported.name} logger's {key!r} figure.", kind, ("index",)
                )
            reading.samples.append(((str(reported.index),), value))
    return list(readings.values())


def _affinity(affinity: AffinitySnapshot | None) -> list[Reading]:
    """Live pins per alias and provider key, and pin writes by reason (nothing while it is off)."""
    if affinity is None:
        return []
    pins = Reading(
        "truckllm_affinity_pins",
        "Live affinity pins (conversations kept on one provider key) per alias and provider key.",
        "gauge",
        ("alias", "provider", "key"),
        samples=[((row.alias, row.provider, row.key), float(row.pins)) for row in affinity.live],
    )
    moves = Reading(
        "truckllm_affinity_moves",
        "Affinity pin writes by reason: new, moved, failover, refresh, capped.",
        "counter",
        ("reason",),
        samples=[((reason,), float(count)) for reason, count in sorted(affinity.moves.items())],
    )
    return [pins, moves]


def read_snapshot(snapshot: GatewaySnapshot) -> list[Reading]:
    """The gateway's live state as readings."""
    reloads = Reading(
        "truckllm_config_reloads",
        "Config reloads by result: ok (applied) or failed (refused; the running config stayed).",
        "counter",
        ("result",),
        samples=[(("ok",), float(snapshot.reloads_ok)), (("failed",), float(snapshot.reloads_failed))],
    )
    return [
        _scalar("truckllm_in_flight", "Requests being served now.", "gauge", snapshot.in_flight),
        *_keys(snapshot),
        *_background(snapshot),
        _scalar(
            "truckllm_retry_budget_denied",
            "Retries not made because the retry budget was spent.",
            "counter",
            snapshot.retry_budget_denied,
        ),
        reloads,
        _scalar(
            "truckllm_config_version",
            "The running config's version (1 at start, +1 per reload).",
            "gauge",
            snapshot.version,
            mode="livemax",
        ),
        *_loggers(snapshot.loggers),
        *_affinity(snapshot.affinity),
    ]


def snapshot_of(view: GatewayView) -> GatewaySnapshot | None:
    """``view.snapshot()``, or ``None`` (logged) if taking it failed: a scrape never fails for it."""
    try:
        return view.snapshot()
    except Exception:
        logger.opt(exception=True).warning("metrics: the gateway's state could not be read")
        return None


class GatewayCollector(Collector):
    """Exports :func:`read_snapshot` at every scrape (one process).

    :param source: returns the gateway's view, or ``None`` before ``startup``.
    """

    def __init__(self, source: Callable[[], GatewayView | None]) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        """The snapshot as metric families."""
        view = self._source()
        snapshot = snapshot_of(view) if view is not None else None
        if snapshot is None:
            return
        for reading in read_snapshot(snapshot):
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
    """Writes :func:`read_snapshot` into this process's multiprocess files.

    Gauges are set (``truckllm_key_state`` and ``truckllm_config_version`` combine across live
    processes with ``livemax``, the others with ``livesum``); counters are increased by what
    was counted since the last publish, so dead workers' counts are kept like any counter's.
    A gauge's labels that were published before and are gone from the snapshot (a key's last
    affinity pin expired) are set to 0.
    """

    def __init__(self) -> None:
        self._metrics: dict[str, Gauge | Counter] = {}
        self._gauge_labels: dict[str, set[tuple[str, ...]]] = {}

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

    def publish(self, view: GatewayView) -> None:
        """Take a snapshot and write what it says."""
        snapshot = snapshot_of(view)
        if snapshot is None:
            return
        for reading in read_snapshot(snapshot):
            metric = self._metric(reading)
            if isinstance(metric, Gauge) and reading.labels:
                now = {labels for labels, _ in reading.samples}
                for labels in self._gauge_labels.get(reading.name, set()) - now:
                    metric.labels(*labels).set(0.0)
                self._gauge_labels[reading.name] = now | self._gauge_labels.get(reading.name, set())
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
