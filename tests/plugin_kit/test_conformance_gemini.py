"""The provider conformance suite (the hostile-upstream checks included), run against the
built-in ``gemini`` provider plugin."""

from __future__ import annotations

from truckllm_testing.conformance import ProviderConformance
from truckllm_testing.fakes import FakeGemini


class TestGeminiConformance(ProviderConformance):
    provider_type = "gemini"
    fake_upstream = FakeGemini
    model = "gemini-2.5-flash"
