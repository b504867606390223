"""TruckLLM guardrail plugin ``llm``: a judge model allows or blocks.

Each check sends the subject's texts (cut to ``max_chars``) to an OpenAI-compatible chat
endpoint, the gateway itself included, with a judging instruction asking for
``{"allowed": bool, "reason": str}``. Verdicts are reused for the same texts (an in-process LRU
with a time to live). A judge that fails, times out or answers anything else raises, and the
entry's ``on_error`` decides (``block`` by default).
"""

from __future__ import annotations

from collections.abc import Callable

from truckllm import hookimpl
from truckllm.types import GuardrailSpec

from .cache import VerdictCache
from .guard import ALLOW, DEFAULT_PROMPT, JudgeAnswer, JudgeError, LlmGuardrail, LlmOptions, render

__all__ = [
    "ALLOW",
    "DEFAULT_PROMPT",
    "SPEC",
    "TRUCKLLM_API",
    "JudgeAnswer",
    "JudgeError",
    "LlmGuardrail",
    "LlmOptions",
    "VerdictCache",
    "register_guardrails",
    "render",
]

TRUCKLLM_API = 1
"""The plugin API version this plugin was written for."""

SPEC = GuardrailSpec(
    type="llm",
    make=LlmGuardrail.make,
    options=LlmOptions,
    description="a judge model (OpenAI-compatible, the gateway itself included) allows or blocks",
)
"""The ``llm`` guardrail type."""


@hookimpl
def register_guardrails(register: Callable[[GuardrailSpec], None]) -> None:
    """Offer ``llm``."""
    register(SPEC)
