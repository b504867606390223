"""The rerank conformance suite against the fake Voyage API."""

from __future__ import annotations

from truckllm_testing.fakes.voyage import FakeVoyage
from truckllm_testing.rerank_conformance import RerankConformance


class TestVoyageRerankConformance(RerankConformance):
    provider_type = "voyage"
    fake_upstream = FakeVoyage
    model = "rerank-2"
    price = {"input": 0.05}
