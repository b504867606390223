"""The ``strategy-cost`` entry point loads through the kernel's plugin manager."""

from __future__ import annotations

import truckllm_strategy_cost

from truckllm_testing.selection import StrategyEntryPointConformance


class TestCostEntryPoint(StrategyEntryPointConformance):
    module = truckllm_strategy_cost
    entry_point = "strategy-cost"
    strategy = "cost"
