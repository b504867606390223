"""TruckLLM guardrail plugin ``policy``: size limits, blocked words and patterns, allowed tools.

Each rule is optional: ``max_input_tokens``, ``blocked_words`` (whole words, case-insensitive),
``blocked_patterns`` (regular expressions, compiled when the config loads: an invalid one is a
config error naming it), ``allowed_tools`` and ``max_output_chars``. A broken rule blocks, with
a reason naming the rule and its index, never the text that broke it.
"""

from __future__ import annotations

from collections.abc import Callable

from truckllm import hookimpl
from truckllm.types import GuardrailSpec

from .guard import ALLOW, PolicyGuardrail, PolicyOptions

__all__ = ["ALLOW", "SPEC", "TRUCKLLM_API", "PolicyGuardrail", "PolicyOptions", "register_guardrails"]

TRUCKLLM_API = 1
"""The plugin API version this plugin was written for."""

SPEC = GuardrailSpec(
    type="policy",
    make=PolicyGuardrail.make,
    options=PolicyOptions,
    description="size limits, blocked words and patterns, allowed tools",
)
"""The ``policy`` guardrail type."""


@hookimpl
def register_guardrails(register: Callable[[GuardrailSpec], None]) -> None:
    """Offer ``policy``."""
    register(SPEC)
