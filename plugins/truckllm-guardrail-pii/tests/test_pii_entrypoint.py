"""The package loads through its entry point and registers the ``pii`` guardrail type."""

from __future__ import annotations

import truckllm_guardrail_pii
from truckllm_guardrail_pii import PiiGuardrail, PiiOptions

from truckllm._internal.plugins import make_plugin_manager
from truckllm.types import GuardrailSpec


def test_entry_point_registers_the_pii_type() -> None:
    host = make_plugin_manager(autoload=True)
    assert host.pm.get_plugin("guardrail-pii") is truckllm_guardrail_pii
    assert host.dists["guardrail-pii"].metadata["name"] == "truckllm-guardrail-pii"
    specs: list[GuardrailSpec] = []
    truckllm_guardrail_pii.register_guardrails(register=specs.append)
    assert [(s.type, s.options) for s in specs] == [("pii", PiiOptions)]
    assert isinstance(specs[0].make(PiiOptions()), PiiGuardrail)
    assert truckllm_guardrail_pii.TRUCKLLM_API == 1
