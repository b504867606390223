"""The ``prices`` entry point loads through the kernel's plugin manager and fills its price book."""

from __future__ import annotations

import importlib.metadata as md

import truckllm_prices

from truckllm._internal.plugins import list_plugins, make_plugin_manager


def test_the_entry_point_names_the_module() -> None:
    (ep,) = [e for e in md.entry_points(group="truckllm") if e.name == "prices"]
    assert ep.value == "truckllm_prices"
    assert ep.load() is truckllm_prices


def test_the_gateway_loads_the_book() -> None:
    host = make_plugin_manager(autoload=True)
    assert not [f for f in host.failures if f.name == "prices"]
    assert len(host.prices) == len({(e.provider_type, e.model) for e in truckllm_prices.entries()})
    entry = host.prices.lookup("openai", "gpt-4o-2024-11-20")  # a snapshot, priced as its family
    assert entry is not None and entry.model == "gpt-4o" and entry.price.input == 2.5
    (row,) = [r for r in list_plugins(host) if r["entry_point"] and r["entry_point"].startswith("prices =")]
    assert row["name"] == "truckllm-prices" and row["hooks"] == ["register_prices"]


def test_disabling_the_plugin_empties_the_book() -> None:
    host = make_plugin_manager(disabled=["prices"], autoload=True)
    assert host.prices.lookup("openai", "gpt-4o") is None
