"""The ``strategy-weighted`` entry point loads through the kernel's plugin manager."""

from __future__ import annotations

import truckllm_strategy_weighted

from truckllm_testing.selection import StrategyEntryPointConformance


class TestWeightedEntryPoint(StrategyEntryPointConformance):
    module = truckllm_strategy_weighted
    entry_point = "strategy-weighted"
    strategy = "weighted"
