"""The ``strategy-least-latency`` entry point loads through the kernel's plugin manager."""

from __future__ import annotations

import truckllm_strategy_least_latency

from truckllm_testing.selection import StrategyEntryPointConformance


class TestLeastLatencyEntryPoint(StrategyEntryPointConformance):
    module = truckllm_strategy_least_latency
    entry_point = "strategy-least-latency"
    strategy = "least-latency"
