"""The package loads through its entry point and registers the ``llm`` guardrail type."""

from __future__ import annotations

import truckllm_guardrail_llm
from truckllm_guardrail_llm import LlmGuardrail, LlmOptions

from truckllm._internal.plugins import make_plugin_manager
from truckllm.types import GuardrailSpec


def test_entry_point_registers_the_llm_type() -> None:
    host = make_plugin_manager(autoload=True)
    assert host.pm.get_plugin("guardrail-llm") is truckllm_guardrail_llm
    assert host.dists["guardrail-llm"].metadata["name"] == "truckllm-guardrail-llm"
    specs: list[GuardrailSpec] = []
    truckllm_guardrail_llm.register_guardrails(register=specs.append)
    assert [(s.type, s.options) for s in specs] == [("llm", LlmOptions)]
    guard = specs[0].make(LlmOptions(url="http://127.0.0.1:9/v1", model="judge"))
    assert isinstance(guard, LlmGuardrail)
    assert truckllm_guardrail_llm.TRUCKLLM_API == 1
