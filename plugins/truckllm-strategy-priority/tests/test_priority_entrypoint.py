"""The ``strategy-priority`` entry point loads through the kernel's plugin manager."""

from __future__ import annotations

import truckllm_strategy_priority

from truckllm_testing.selection import StrategyEntryPointConformance


class TestPriorityEntryPoint(StrategyEntryPointConformance):
    module = truckllm_strategy_priority
    entry_point = "strategy-priority"
    strategy = "priority"
