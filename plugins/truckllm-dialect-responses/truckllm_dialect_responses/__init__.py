"""TruckLLM inbound dialect plugin: OpenAI's Responses API at the gateway's front door.

Codex CLI, the OpenAI Agents SDK and the ``openai`` SDKs' ``client.responses`` talk to the
gateway as if it were OpenAI (``POST /v1/responses``...). Requests for OpenAI deployments pass
through; requests for deployments of other dialects are translated to chat completions, and their
answers and streams translated back. See the README for what is translated and what is not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from truckllm import hookimpl

from .dialect import NAME, ResponsesDialect

__all__ = ["NAME", "TRUCKLLM_API", "ResponsesDialect", "register_dialects"]

TRUCKLLM_API = 1
"""The plugin API version this plugin was written for."""


@hookimpl
def register_dialects(register: Callable[[Any], None]) -> None:
    """Offer the ``responses`` inbound dialect."""
    register(ResponsesDialect())
