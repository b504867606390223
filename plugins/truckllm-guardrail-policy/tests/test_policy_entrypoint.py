"""The package loads through its entry point and registers the ``policy`` guardrail type."""

from __future__ import annotations

import truckllm_guardrail_policy
from truckllm_guardrail_policy import PolicyGuardrail, PolicyOptions

from truckllm._internal.plugins import make_plugin_manager
from truckllm.types import GuardrailSpec


def test_entry_point_registers_the_policy_type() -> None:
    host = make_plugin_manager(autoload=True)
    assert host.pm.get_plugin("guardrail-policy") is truckllm_guardrail_policy
    assert host.dists["guardrail-policy"].metadata["name"] == "truckllm-guardrail-policy"
    specs: list[GuardrailSpec] = []
    truckllm_guardrail_policy.register_guardrails(register=specs.append)
    assert [(s.type, s.options) for s in specs] == [("policy", PolicyOptions)]
    assert isinstance(specs[0].make(PolicyOptions(max_input_tokens=10)), PolicyGuardrail)
    assert truckllm_guardrail_policy.TRUCKLLM_API == 1
