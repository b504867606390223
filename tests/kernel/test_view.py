"""What lifecycle hooks see of the gateway: a typed snapshot of its live state, typed names of the
running aliases and providers, no secret, and the old untyped accessors deprecated."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, ClassVar

import msgspec
import pytest

from truckllm import hookimpl
from truckllm._internal.gateway import Gateway
from truckllm._internal.view import GatewayView, logger_figures
from truckllm.errors import ConfigError
from truckllm.types import (
    AliasInfo,
    GatewaySnapshot,
    KeySnapshot,
    LoggerFigures,
    PluginErrorCount,
    Provider,
    ProviderSpec,
    RequestRecord,
)

CONFIG = """
providers:
  openai:
    type: openai
    keys:
      - {name: oa-main, value: sk-secret-value-one}
      - {name: oa-backup, value: sk-secret-value-two}
  demo: {type: mock}
models:
  gpt-4o:
    strategy: first
    deployments: [{provider: openai, model: gpt-4o}, {provider: openai, model: gpt-4o-mini}]
    fallbacks: [demo]
  demo:
    deployments: [{provider: demo, model: echo}]
"""


class Providers:
    """``openai`` (with keys) and ``mock`` (without), so that no provider plugin is needed."""

    @hookimpl
    def register_providers(self, register: Callable[[ProviderSpec], None]) -> None:
        register(ProviderSpec(type="openai", default_base_url="http://127.0.0.1:9"))
        register(ProviderSpec(type="mock", default_base_url="http://127.0.0.1:9", needs_keys=False))


def make_gateway(config: str = CONFIG) -> Gateway:
    return Gateway(config_text=config, env={}, extra_plugins=(Providers(),), autoload=False)


class Reporting:
    """A logger with figures (two of them counters)."""

    metrics_counters: ClassVar[frozenset[str]] = frozenset({"sent", "dropped"})

    def __init__(self, **figures: object) -> None:
        self.metrics = figures

    def emit_log(self, record: RequestRecord) -> None:
        """Nothing."""


class Quiet:
    """A logger with no figures."""

    def emit_log(self, record: RequestRecord) -> None:
        """Nothing."""


class Raising(Quiet):
    """A logger whose figures raise."""

    @property
    def metrics(self) -> dict[str, int]:
        """Raises."""
        raise RuntimeError("unreadable")


class NotAMapping(Quiet):
    """A logger whose ``metrics`` is not a mapping."""

    metrics = 42


def test_the_snapshot_is_the_gateways_state() -> None:
    gateway = make_gateway()
    view = gateway.view
    now = gateway.health.clock()
    gateway.health.key("openai", "oa-main").cool(now, 30, "rate_limit")
    gateway.health.key("openai", "oa-backup").in_flight = 2
    gateway.in_flight = 3
    gateway.background.dropped = 7
    gateway.background.plugin_errors[("logger-0-webhook", "emit_log")] += 2
    gateway.background.plugin_errors[("store", "settle")] += 1
    gateway.budget.denied = 4
    gateway.loggers = [("webhook", Reporting(queue=5, sent=10, dropped=1)), ("stdout", Quiet())]
    snapshot = view.snapshot()
    assert snapshot == GatewaySnapshot(
        version=1,
        in_flight=3,
        draining=False,
        keys=(
            KeySnapshot(provider="demo", name="-", state="ok"),
            KeySnapshot(provider="openai", name="oa-backup", state="ok", in_flight=2),
            KeySnapshot(provider="openai", name="oa-main", state="cooldown"),
        ),
        background_queue=0,
        background_dropped=7,
        plugin_errors=(
            PluginErrorCount(plugin="logger-0-webhook", hook="emit_log", count=2),
            PluginErrorCount(plugin="store", hook="settle", count=1),
        ),
        retry_budget_denied=4,
        reloads_ok=0,
        reloads_failed=0,
        last_reload_ok=True,
        loggers=(
            LoggerFigures(
                name="webhook",
                index=0,
                figures={"queue": 5.0, "sent": 10.0, "dropped": 1.0},
                counters=frozenset({"sent", "dropped"}),
            ),
        ),
    )
    gateway.reload(CONFIG)
    with pytest.raises(ConfigError):
        gateway.reload("providers: [")
    gateway.draining = True
    later = view.snapshot()
    assert (later.version, later.reloads_ok, later.reloads_failed, later.last_reload_ok) == (2, 1, 1, False)
    assert later.draining and view.draining


def test_the_snapshot_holds_no_secret_and_encodes() -> None:
    gateway = make_gateway()
    view = gateway.view
    encoded = msgspec.json.encode(view.snapshot())
    assert b"sk-secret" not in encoded
    assert msgspec.json.decode(encoded, type=GatewaySnapshot) == view.snapshot()
    runtime = msgspec.json.encode((dict(view.runtime.aliases), dict(view.runtime.providers)))
    assert b"sk-secret" not in runtime and b"oa-main" not in runtime


def test_the_runtime_view_names_aliases_and_providers_and_follows_reloads() -> None:
    gateway = make_gateway()
    runtime = gateway.view.runtime
    assert runtime is gateway.view.runtime
    gpt = runtime.aliases["gpt-4o"]
    assert isinstance(gpt, AliasInfo)
    assert (gpt.name, gpt.strategy, gpt.fallbacks) == ("gpt-4o", "first", ("demo",))
    assert [(d.index, d.provider, d.model) for d in gpt.deployments] == [
        (0, "openai", "gpt-4o"),
        (1, "openai", "gpt-4o-mini"),
    ]
    assert runtime.aliases is runtime.aliases  # made once per config version
    assert set(runtime.providers) == {"openai", "demo"}
    assert all(isinstance(p, Provider) for p in runtime.providers.values())
    with pytest.raises(TypeError):
        runtime.aliases["new"] = gpt  # type: ignore[index]
    gateway.reload(
        CONFIG.replace("  demo:\n    deployments", "  other:\n    deployments").replace("[demo]", "[]")
    )
    assert runtime.version == 2 and set(runtime.aliases) == {"gpt-4o", "other"}


@pytest.mark.parametrize(
    ("loggers", "expected"),
    [
        ([], ()),
        ([("quiet", Quiet())], ()),
        (
            [("w", Reporting(a=1)), ("w", Reporting(b=2.5, sent=3))],
            (
                LoggerFigures(name="w", index=0, figures={"a": 1.0}, counters=frozenset({"sent", "dropped"})),
                LoggerFigures(
                    name="w",
                    index=1,
                    figures={"b": 2.5, "sent": 3.0},
                    counters=frozenset({"sent", "dropped"}),
                ),
            ),
        ),
        (
            [("w", Raising()), ("w", NotAMapping()), ("w", Reporting(ok=1, flag=True, text="x", none=None))],
            (LoggerFigures(name="w", index=2, figures={"ok": 1.0}, counters=frozenset({"sent", "dropped"})),),
        ),
    ],
    ids=["none", "no figures", "two of one name", "unreadable, not a mapping, not numbers"],
)
def test_logger_figures(loggers: list[tuple[str, object]], expected: tuple[LoggerFigures, ...]) -> None:
    assert logger_figures(loggers) == expected


class NoCounters(Quiet):
    """Figures, and no ``metrics_counters``: all gauges."""

    metrics: ClassVar[dict[str, int]] = {"queue": 1}


def test_figures_without_declared_counters_are_gauges() -> None:
    (figures,) = logger_figures([("q", NoCounters())])
    assert figures.counters == frozenset() and figures.figures == {"queue": 1.0}


@pytest.mark.parametrize("name", ["health", "background", "budget", "loggers"])
def test_the_untyped_accessors_are_deprecated_but_still_answer(name: str) -> None:
    gateway = make_gateway()
    with pytest.warns(DeprecationWarning, match=f"GatewayView.{name} is deprecated"):
        value: Any = getattr(gateway.view, name)
    expected = getattr(gateway, name)
    assert value == expected if name == "loggers" else value is expected


def test_the_typed_accessors_do_not_warn() -> None:
    view: GatewayView = make_gateway().view
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert view.snapshot().version == view.runtime.version == 1
        assert isinstance(view.clock(), float)
        assert (view.in_flight, view.draining, view.reloads_ok, view.reloads_failed) == (0, False, 0, 0)
        assert view.last_reload_ok
