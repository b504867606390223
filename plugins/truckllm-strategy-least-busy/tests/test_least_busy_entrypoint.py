"""The ``strategy-least-busy`` entry point loads through the kernel's plugin manager."""

from __future__ import annotations

import truckllm_strategy_least_busy

from truckllm_testing.selection import StrategyEntryPointConformance


class TestLeastBusyEntryPoint(StrategyEntryPointConformance):
    module = truckllm_strategy_least_busy
    entry_point = "strategy-least-busy"
    strategy = "least-busy"
