"""The ``strategy-round-robin`` entry point loads through the kernel's plugin manager."""

from __future__ import annotations

import truckllm_strategy_round_robin

from truckllm_testing.selection import StrategyEntryPointConformance


class TestRoundRobinEntryPoint(StrategyEntryPointConformance):
    module = truckllm_strategy_round_robin
    entry_point = "strategy-round-robin"
    strategy = "round-robin"
