"""TruckLLM inbound dialect plugin: Google Gemini's ``generateContent`` API at the gateway's front door.

The ``google-genai`` SDKs, the Gemini CLI and plain REST clients talk to the gateway as if it were
``generativelanguage.googleapis.com``. Requests for Gemini deployments pass through byte for byte
(the model is in the URL); requests for other deployments (OpenAI, Anthropic, ...) are translated
to OpenAI's typed form, and their answers and streams translated back into Gemini's. See the README
for what is translated and what is not.

Modules: :mod:`.dialect` (the routes and the kernel's interface), :mod:`.schema` (Gemini's request
messages), :mod:`.request` (checks and Gemini → OpenAI), :mod:`.openapi` (schemas),
:mod:`.response` and :mod:`.stream` (OpenAI → Gemini), :mod:`.errors` (``google.rpc.Status``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from truckllm import hookimpl

from .dialect import NAME, GeminiDialect, GeminiRequest

__all__ = ["NAME", "TRUCKLLM_API", "GeminiDialect", "GeminiRequest", "register_dialects"]

TRUCKLLM_API = 1
"""The plugin API version this plugin was written for."""


@hookimpl
def register_dialects(register: Callable[[Any], None]) -> None:
    """Offer the ``gemini`` inbound dialect."""
    register(GeminiDialect())
