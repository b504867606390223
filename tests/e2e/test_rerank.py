"""Rerank end to end: the ``cohere`` client (v1 and v2) and plain HTTP (Jina's shape) -> the gateway
-> fake Cohere, Jina, Voyage and vLLM upstreams that validate every request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cohere
import httpx as cohere_httpx  # the cohere client's own HTTP library
import httpx2 as httpx
import pytest

from truckllm import hookimpl
from truckllm.types import RequestRecord
from truckllm_testing.conformance import wait_for
from truckllm_testing.fakes.base import Fault
from truckllm_testing.fakes.cohere import FakeCohere
from truckllm_testing.fakes.jina import FakeJina
from truckllm_testing.fakes.rerank import ranking
from truckllm_testing.fakes.vllm_rerank import FakeVLLMRerank
from truckllm_testing.fakes.voyage import FakeVoyage
from truckllm_testing.server import GatewayServer

CLIENT = "rerank-client-key-0123456789"
PAYER = "rerank-payer-key-0123456789"
QUERY = "which fruit is red"
DOCUMENTS = ["the sky is blue", "a red apple is a fruit", "bananas are yellow", "red cherries"]
SEARCH_UNIT = 0.002
JINA_INPUT = 0.02  # USD per million tokens


class Recorder:
    """Keeps every request record."""

    def __init__(self) -> None:
        self.records: list[RequestRecord] = []

    @hookimpl
    def emit_log(self, record: RequestRecord) -> None:
        """Keep the record."""
        self.records.append(record)


@dataclass
class Setup:
    gw: GatewayServer
    cohere: FakeCohere
    jina: FakeJina
    voyage: FakeVoyage
    vllm: FakeVLLMRerank
    recorder: Recorder

    def post(self, body: dict[str, Any], path: str = "/v1/rerank", key: str = CLIENT) -> httpx.Response:
        return httpx.post(self.gw.url + path, json=body, headers={"authorization": f"Bearer {key}"})

    def records(self, count: int) -> list[RequestRecord]:
        wait_for(lambda: len(self.recorder.records) >= count, what=f"{count} records")
        return self.recorder.records[:count]


def config(co: FakeCohere, ji: FakeJina, vo: FakeVoyage, vl: FakeVLLMRerank) -> str:
    return f"""
admin: {{token: admin-token}}
routing: {{backoff: {{base: 1ms, max: 5ms}}, cooldown: {{failures: 5, duration: 30s}}}}
keys:
  - {{name: client, value: {CLIENT}}}
  - {{name: payer, value: {PAYER}, budget: {{usd: 0.003}}}}
providers:
  cohere:
    type: cohere
    base_url: {co.origin}
    keys: [{{name: c1, value: co-key-1}}, {{name: c2, value: co-key-2}}]
  jina: {{type: jina, base_url: {ji.base_url}, keys: [{{name: j1, value: ji-key-1}}]}}
  voyage: {{type: voyage, base_url: {vo.base_url}, keys: [{{name: v1, value: vo-key-1}}]}}
  vllm: {{type: openai, base_url: {vl.base_url}, options: {{preset: vllm}}}}
models:
  rerank:
    strategy: first
    deployments: [{{provider: cohere, model: rerank-v3.5, price: {{search_unit: {SEARCH_UNIT}}}}}]
    fallbacks: [rerank-jina]
  rerank-jina:
    deployments: [{{provider: jina, model: jina-reranker-v2-base-multilingual, price: {{input: {JINA_INPUT}}}}}]
  rerank-voyage:
    deployments: [{{provider: voyage, model: rerank-2, price: {{input: 0.05}}}}]
  rerank-vllm:
    deployments: [{{provider: vllm, model: BAAI/bge-reranker-v2-m3}}]
"""


@pytest.fixture
def setup() -> Iterator[Setup]:
    co = FakeCohere(keys=["co-key-1", "co-key-2"])
    ji = FakeJina(keys=["ji-key-1"])
    vo = FakeVoyage(keys=["vo-key-1"])
    vl = FakeVLLMRerank(keys=())
    recorder = Recorder()
    with co.running(), ji.running(), vo.running(), vl.running():
        with GatewayServer(config(co, ji, vo, vl), extra_plugins=(recorder,)) as gw:
            yield Setup(gw, co, ji, vo, vl, recorder)
        for fake in (co, ji, vo, vl):
            assert fake.violations == []


def test_the_cohere_v2_client_reranks_through_the_gateway(setup: Setup) -> None:
    """``cohere.ClientV2.rerank`` (``POST /v2/rerank``): Cohere's order, the model rewritten, the
    search units billed; usage and cost recorded."""
    with cohere_httpx.Client() as http:
        client = cohere.ClientV2(base_url=setup.gw.url, api_key=CLIENT, httpx_client=http)
        answer = client.rerank(
            model="rerank", query=QUERY, documents=DOCUMENTS, top_n=2, max_tokens_per_doc=512
        )
    assert [(r.index, r.relevance_score) for r in answer.results] == ranking(QUERY, DOCUMENTS, 2)
    assert answer.meta is not None and answer.meta.billed_units is not None
    assert answer.meta.billed_units.search_units == 1
    (seen,) = setup.cohere.requests
    assert seen.path == "/v2/rerank"
    assert seen.json == {
        "model": "rerank-v3.5",
        "query": QUERY,
        "documents": DOCUMENTS,
        "top_n": 2,
        "max_tokens_per_doc": 512,
    }
    (record,) = setup.records(1)
    assert (record.endpoint, record.alias, record.provider, record.model) == (
        "rerank",
        "rerank",
        "cohere",
        "rerank-v3.5",
    )
    assert record.usage is not None and record.usage.search_units == 1
    assert record.cost_usd == pytest.approx(SEARCH_UNIT)


def test_the_cohere_v1_client_gets_its_documents_back(setup: Setup) -> None:
    """``cohere.Client.rerank`` (``POST /v1/rerank``) with object documents and
    ``return_documents``: each result carries the client's text."""
    documents: list[Any] = [{"text": d, "source": f"doc-{i}"} for i, d in enumerate(DOCUMENTS)]
    with cohere_httpx.Client() as http:
        client = cohere.Client(base_url=setup.gw.url, api_key=CLIENT, httpx_client=http)
        answer = client.rerank(model="rerank", query=QUERY, documents=documents, return_documents=True)
    assert [r.index for r in answer.results] == [i for i, _ in ranking(QUERY, DOCUMENTS)]
    for result in answer.results:
        assert result.document is not None and result.document.text == DOCUMENTS[result.index]
    (seen,) = setup.cohere.requests
    assert seen.json["documents"] == DOCUMENTS  # texts only: Cohere v2 takes strings


@pytest.mark.parametrize(
    ("alias", "fake", "top"),
    [
        ("rerank-jina", "jina", "top_n"),
        ("rerank-voyage", "voyage", "top_k"),
        ("rerank-vllm", "vllm", "top_n"),
    ],
)
def test_jina_style_clients_get_one_shape_from_every_provider(
    setup: Setup, alias: str, fake: str, top: str
) -> None:
    """Plain HTTP in Jina's shape: the same answer shape whoever serves, ``top_n`` sent as the
    provider's own member, tokens recorded."""
    answer = setup.post(
        {"model": alias, "query": QUERY, "documents": DOCUMENTS, "top_n": 3, "return_documents": True}
    )
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert [(r["index"], r["relevance_score"]) for r in data["results"]] == ranking(QUERY, DOCUMENTS, 3)
    assert all(r["document"] == {"text": DOCUMENTS[r["index"]]} for r in data["results"])
    assert data["usage"]["total_tokens"] > 0
    (seen,) = getattr(setup, fake).requests
    assert seen.json[top] == 3
    (record,) = setup.records(1)
    assert record.usage is not None and record.usage.prompt_tokens == data["usage"]["total_tokens"]


def test_a_rate_limited_key_fails_over_to_the_next_key(setup: Setup) -> None:
    """429 with Retry-After on Cohere's first key: the second answers; the first is cooling down
    and the next request goes to the second at once."""
    setup.cohere.inject(Fault(status=429, retry_after=30, key="co-key-1"))
    with cohere_httpx.Client() as http:
        client = cohere.ClientV2(base_url=setup.gw.url, api_key=CLIENT, httpx_client=http)
        for _ in range(2):
            client.rerank(model="rerank", query=QUERY, documents=DOCUMENTS)
    assert [r.api_key for r in setup.cohere.requests] == ["co-key-1", "co-key-2", "co-key-2"]


@pytest.mark.parametrize("status", [429, 500, 503])
def test_cohere_failing_on_every_key_falls_back_to_jina(setup: Setup, status: int) -> None:
    """Every Cohere key failing (rerank is idempotent): the alias's fallback, Jina, answers."""
    setup.cohere.inject(Fault(status=status, retry_after=1 if status == 429 else None, times=-1))
    answer = setup.post({"model": "rerank", "query": QUERY, "documents": DOCUMENTS})
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-truckllm-provider"] == "jina"
    assert len(setup.jina.requests) == 1
    (record,) = setup.records(1)
    assert record.provider == "jina" and record.fallbacks
    assert record.cost_usd == pytest.approx(record.usage.prompt_tokens * JINA_INPUT / 1e6)  # type: ignore[union-attr]


def test_a_budget_refuses_once_spent(setup: Setup) -> None:
    """A key with a $0.003 budget: one call billed one search unit ($0.002); the next call's
    reservation does not fit and is refused with 429 before reaching Cohere."""
    first = setup.post({"model": "rerank", "query": QUERY, "documents": DOCUMENTS}, key=PAYER)
    assert first.status_code == 200, first.text
    setup.records(1)
    refused = setup.post({"model": "rerank", "query": QUERY, "documents": DOCUMENTS}, key=PAYER)
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] in ("budget_exceeded", "insufficient_quota")
    assert len(setup.cohere.requests) == 1


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"query": "q", "documents": ["a"]}, "model"),
        ({"model": "rerank", "documents": ["a"]}, "query"),
        ({"model": "rerank", "query": "", "documents": ["a"]}, "query"),
        ({"model": "rerank", "query": 7, "documents": ["a"]}, "query"),
        ({"model": "rerank", "query": "q"}, "documents"),
        ({"model": "rerank", "query": "q", "documents": []}, "documents"),
        ({"model": "rerank", "query": "q", "documents": "a"}, "documents"),
        ({"model": "rerank", "query": "q", "documents": ["a"] * 1001}, "documents"),
        ({"model": "rerank", "query": "q", "documents": [7]}, "documents[0]"),
        ({"model": "rerank", "query": "q", "documents": [{"title": "no text"}]}, "documents[0].text"),
        ({"model": "rerank", "query": "q", "documents": ["a"], "top_n": 0}, "top_n"),
        ({"model": "rerank", "query": "q", "documents": ["a"], "top_n": -3}, "top_n"),
        ({"model": "rerank", "query": "q", "documents": ["a"], "top_n": "2"}, "top_n"),
        (
            {"model": "rerank", "query": "q", "documents": ["a"], "return_documents": "yes"},
            "return_documents",
        ),
        (
            {"model": "rerank", "query": "q", "documents": ["a"], "max_tokens_per_doc": 0},
            "max_tokens_per_doc",
        ),
    ],
)
def test_bad_input_is_a_400_naming_the_field(setup: Setup, body: dict[str, Any], param: str) -> None:
    """Each invalid member: a 400 in OpenAI's error shape with ``param`` naming it; nothing sent."""
    for path in ("/v1/rerank", "/v2/rerank"):
        answer = setup.post(body, path=path)
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["param"] == param and error["type"] == "invalid_request_error" and error["message"]
    assert setup.cohere.requests == [] and setup.jina.requests == []


def test_an_alias_without_a_reranker_refuses_rerank(setup: Setup) -> None:
    """A rerank call to an unknown model is a 404; the upstreams see nothing."""
    answer = setup.post({"model": "no-such-model", "query": "q", "documents": ["a"]})
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "model_not_found"


def test_a_body_that_is_not_json_is_a_400(setup: Setup) -> None:
    answer = httpx.post(
        setup.gw.url + "/v1/rerank",
        content=b"{not json",
        headers={"authorization": f"Bearer {CLIENT}", "content-type": "application/json"},
    )
    assert answer.status_code == 400
    assert json.loads(answer.text)["error"]["type"] == "invalid_request_error"
