"""The rerank conformance suite against a fake vLLM server: the openai provider's ``/rerank``."""

from __future__ import annotations

from truckllm_testing.fakes.vllm_rerank import FakeVLLMRerank
from truckllm_testing.rerank_conformance import RerankConformance


class TestOpenAIRerankConformance(RerankConformance):
    provider_type = "openai"
    fake_upstream = FakeVLLMRerank
    model = "BAAI/bge-reranker-v2-m3"
    price = {"input": 0.01}
