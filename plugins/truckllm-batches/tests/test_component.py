"""The ``batches`` component's options: decoded strictly when the config is loaded (a bad value
is a config error naming ``loggers[i].batches``), durations in any of the kernel's forms, and the
settings the poller gets from them."""

from __future__ import annotations

from typing import Any

import pytest
import truckllm_batches
from truckllm_batches import BatchesOptions, BatchPoller

from truckllm._internal.components import build_loggers
from truckllm._internal.config.loader import parse_config
from truckllm._internal.plugins import make_plugin_manager
from truckllm.errors import ConfigError


def _host() -> Any:
    return make_plugin_manager(autoload=False, extra=(truckllm_batches,))


def _poller(entry: str) -> BatchPoller:
    host = _host()
    config = parse_config(f"loggers: [{entry}]", host.registry(), env={})
    ((name, instance),) = build_loggers(host, config)
    assert name == "batches" and isinstance(instance, BatchPoller)
    return instance


@pytest.mark.parametrize(
    ("entry", "interval", "most"),
    [
        ("batches", 60.0, 900.0),
        ("{batches: {}}", 60.0, 900.0),
        ("{batches: {poll_interval: 0}}", 0.0, 900.0),
        ("{batches: {poll_interval: 30s, poll_max: 1m30s}}", 30.0, 90.0),
        ("{batches: {poll_interval: 2h}}", 7200.0, 7200.0),  # poll_max unset: never below the interval
        ("{batches: {poll_interval: 500ms, poll_max: 500ms}}", 0.5, 0.5),
        ("{batches: {poll_interval: 10, poll_max: 3600}}", 10.0, 3600.0),
    ],
)
def test_good_options(entry: str, interval: float, most: float) -> None:
    settings = _poller(entry).options.settings()
    assert (settings.interval, settings.most) == (interval, most)


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("{batches: {poll_interval: -1}}", "negative"),
        ("{batches: {poll_interval: soon}}", "duration"),
        ("{batches: {poll_interval: 1m, poll_max: 30s}}", "poll_max must be at least poll_interval"),
        ("{batches: {poll_max: 0}}", "poll_max must be at least poll_interval"),
        ("{batches: {poll_intervall: 1m}}", "poll_intervall"),
        ("{batches: {poll_interval: true}}", "duration"),
        ("{batches: {poll_interval: [1]}}", ""),
    ],
)
def test_bad_options_are_a_config_error_naming_the_entry(entry: str, why: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f"loggers: [{entry}]", _host().registry(), env={})
    assert "loggers[0].batches" in str(caught.value)
    assert why in str(caught.value)


def test_no_module_level_state() -> None:
    """Nothing a gateway runs is kept in the module (two gateways in a process: two pollers)."""
    assert not [
        name
        for name, value in vars(truckllm_batches).items()
        if isinstance(value, dict | list | set) and not name.startswith("__")
    ]
    first, second = BatchPoller(BatchesOptions()), BatchPoller(BatchesOptions())
    assert first.poller is None and second.poller is None and first.metrics == {"polls": 0.0}
