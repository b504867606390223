"""The rerank conformance suite against the fake Jina API."""

from __future__ import annotations

from truckllm_testing.fakes.jina import FakeJina
from truckllm_testing.rerank_conformance import RerankConformance


class TestJinaRerankConformance(RerankConformance):
    provider_type = "jina"
    fake_upstream = FakeJina
    model = "jina-reranker-v2-base-multilingual"
    price = {"input": 0.05}
