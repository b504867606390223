"""The rerank conformance suite against the fake Cohere API."""

from __future__ import annotations

from truckllm_testing.fakes.cohere import FakeCohere
from truckllm_testing.fakes.rerank import FakeRerank
from truckllm_testing.rerank_conformance import RerankConformance


class TestCohereRerankConformance(RerankConformance):
    provider_type = "cohere"
    fake_upstream = FakeCohere
    model = "rerank-v3.5"
    price = {"search_unit": 0.002}

    def base_url(self, fake: FakeRerank) -> str:
        """Cohere's root is the origin (the plugin adds ``/v2/rerank``)."""
        return fake.origin
