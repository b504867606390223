"""The provider conformance suite, run against the built-in ``openai`` provider plugin.

This proves the suite itself: a provider the rest of the test suite trusts passes every check.
"""

from __future__ import annotations

from truckllm_testing.conformance import ProviderConformance
from truckllm_testing.fakes import FakeOpenAI


class TestOpenAIConformance(ProviderConformance):
    provider_type = "openai"
    fake_upstream = FakeOpenAI
