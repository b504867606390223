"""The provider conformance suite (the hostile-upstream checks included), run against the
built-in ``anthropic`` provider plugin."""

from __future__ import annotations

from truckllm_testing.conformance import ProviderConformance
from truckllm_testing.fakes import FakeAnthropic


class TestAnthropicConformance(ProviderConformance):
    provider_type = "anthropic"
    fake_upstream = FakeAnthropic
    model = "claude-sonnet-4-5"
