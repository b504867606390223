"""The ``strategy-usage`` entry point loads through the kernel's plugin manager."""

from __future__ import annotations

import truckllm_strategy_usage

from truckllm_testing.selection import StrategyEntryPointConformance


class TestUsageEntryPoint(StrategyEntryPointConformance):
    module = truckllm_strategy_usage
    entry_point = "strategy-usage"
    strategy = "usage"
