"""TruckLLM inbound dialect plugin: Anthropic's Messages API at the gateway's front door.

Claude Code and the ``anthropic`` SDKs talk to the gateway as if it were Anthropic
(``POST /v1/messages``, ``POST /v1/messages/count_tokens``). Requests for Anthropic deployments
pass through byte for byte (only ``model`` is rewritten by the provider plugin); requests for
OpenAI-dialect deployments (OpenAI, Gemini, ...) are translated, and their answers and streams
translated back. See the README for what is translated and what is not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from truckllm import hookimpl

from .dialect import NAME, AnthropicDialect

__all__ = ["NAME", "TRUCKLLM_API", "AnthropicDialect", "register_dialects"]

TRUCKLLM_API = 1
"""The plugin API version this plugin was written for."""


@hookimpl
def register_dialects(register: Callable[[Any], None]) -> None:
    """Offer the ``anthropic`` inbound dialect."""
    register(AnthropicDialect())
