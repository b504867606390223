"""TruckLLM guardrail plugin ``pii``: personal data and secrets masked or blocked.

Regex and checksum detectors (e-mail, phone numbers, payment cards with Luhn, IBANs with mod-97,
API-key shapes, optionally IPv4), precompiled; optionally presidio-analyzer as well. In ``mask``
mode every finding is replaced by ``<EMAIL>``, ``<CARD>``...; in ``block`` mode the request is
refused with a reason naming the kinds found (never the values).
"""

from __future__ import annotations

from collections.abc import Callable

from truckllm import hookimpl
from truckllm.types import GuardrailSpec

from .detectors import DEFAULT_ENTITIES, ENTITIES, IBAN_LENGTHS, MASKS, Scanner, iban_ok, luhn_ok, mask
from .guard import ALLOW, PiiGuardrail, PiiOptions

__all__ = [
    "ALLOW",
    "DEFAULT_ENTITIES",
    "ENTITIES",
    "IBAN_LENGTHS",
    "MASKS",
    "SPEC",
    "TRUCKLLM_API",
    "PiiGuardrail",
    "PiiOptions",
    "Scanner",
    "iban_ok",
    "luhn_ok",
    "mask",
    "register_guardrails",
]

TRUCKLLM_API = 1
"""The plugin API version this plugin was written for."""

SPEC = GuardrailSpec(
    type="pii",
    make=PiiGuardrail.make,
    options=PiiOptions,
    description="personal data and secrets (e-mail, phone, card, IBAN, API keys) masked or blocked",
)
"""The ``pii`` guardrail type."""


@hookimpl
def register_guardrails(register: Callable[[GuardrailSpec], None]) -> None:
    """Offer ``pii``."""
    register(SPEC)
