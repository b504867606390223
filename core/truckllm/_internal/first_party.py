"""The distributions that are TruckLLM's own: made in this repository, released with the kernel.

Used for one thing: with no ``plugins.allow`` set, start-up warns about every distribution that
declares a ``truckllm`` entry point and is not one of these. The list is fixed here, not derived
from a name prefix or a marker a package could copy: ``truckllm-rogue`` is not TruckLLM's.
``tests/supply_chain/test_first_party.py`` checks it names exactly the packages under
``plugins/`` and ``contrib/`` (the plugin template excepted: a copy of it is someone else's).
"""

from __future__ import annotations

__all__ = ["FIRST_PARTY"]

FIRST_PARTY = frozenset(
    {
        "truckllm",
        "truckllm-testing",
        "truckllm-batches",
        "truckllm-cache",
        "truckllm-console",
        "truckllm-dialect-anthropic",
        "truckllm-dialect-gemini",
        "truckllm-dialect-responses",
        "truckllm-guardrail-llm",
        "truckllm-guardrail-pii",
        "truckllm-guardrail-policy",
        "truckllm-logger-file",
        "truckllm-logger-otel",
        "truckllm-logger-prometheus",
        "truckllm-logger-sql",
        "truckllm-logger-stdout",
        "truckllm-logger-webhook",
        "truckllm-mcp",
        "truckllm-prices",
        "truckllm-provider-anthropic",
        "truckllm-provider-azure",
        "truckllm-provider-bedrock",
        "truckllm-provider-cohere",
        "truckllm-provider-gemini",
        "truckllm-provider-jina",
        "truckllm-provider-mock",
        "truckllm-provider-openai",
        "truckllm-provider-vertex",
        "truckllm-provider-voyage",
        "truckllm-store-file",
        "truckllm-store-http",
        "truckllm-store-memory",
        "truckllm-store-redis",
        "truckllm-strategy-cost",
        "truckllm-strategy-header",
        "truckllm-strategy-least-busy",
        "truckllm-strategy-least-latency",
        "truckllm-strategy-priority",
        "truckllm-strategy-round-robin",
        "truckllm-strategy-usage",
        "truckllm-strategy-weighted",
    }
)
"""Normalized names (PyPI's comparison) of TruckLLM's own distributions."""
