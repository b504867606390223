"""The openai provider's rerank: the upstream body and the answer, as values (no server)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from truckllm_provider_openai import parse_usage, transform_request, transform_response

from truckllm.kit.rerank import RerankRequest
from truckllm.types import ChatRequest, Provider, UpstreamResponse

PROVIDER = Provider(name="vllm", type="openai", base_url="http://127.0.0.1:8000/v1")


def rerank(body: dict[str, Any]) -> ChatRequest:
    raw = json.dumps(body).encode()
    return ChatRequest(
        endpoint="rerank", body=raw, model=body["model"], typed=msgspec.json.decode(raw, type=RerankRequest)
    )


@pytest.mark.parametrize(
    ("client", "upstream"),
    [
        ({"documents": ["a", "b"]}, {"documents": ["a", "b"]}),
        ({"documents": ["a", {"text": "b", "id": 7}]}, {"documents": ["a", "b"]}),
        ({"documents": ["a"], "top_n": 1}, {"documents": ["a"], "top_n": 1}),
        # members no OpenAI-compatible server knows stay at the gateway
        ({"documents": ["a"], "return_documents": True, "max_tokens_per_doc": 9, "rank_fields": ["x"]},
         {"documents": ["a"]}),
    ],
)  # fmt: skip
def test_the_upstream_body_has_only_what_the_server_takes(
    client: dict[str, Any], upstream: dict[str, Any]
) -> None:
    request = rerank({"model": "alias", "query": "q", **client})
    call = transform_request(provider=PROVIDER, model="BAAI/bge-reranker-v2-m3", request=request, api_key="k")
    assert call is not None
    assert call.url == "http://127.0.0.1:8000/v1/rerank"
    assert call.headers["authorization"] == "Bearer k"
    assert json.loads(call.body) == {"model": "BAAI/bge-reranker-v2-m3", "query": "q", **upstream}


def test_a_vllm_answer_becomes_the_gateway_shape_with_its_tokens() -> None:
    request = rerank({"model": "alias", "query": "q", "documents": ["a", "b"], "return_documents": True})
    body = json.dumps(
        {
            "id": "rerank-abc",
            "model": "m",
            "usage": {"total_tokens": 12},
            "results": [
                {"index": 1, "document": {"text": "upstream's copy"}, "relevance_score": 0.9},
                {"index": 0, "document": {"text": "a"}, "relevance_score": 0.1},
            ],
        }
    ).encode()
    result = transform_response(
        provider=PROVIDER, request=request, response=UpstreamResponse(status=200, body=body), model="m"
    )
    assert result is not None and result.error is None
    answer = json.loads(result.body)
    assert answer["id"] == "rerank-abc"
    # the client's own text, not what the upstream echoed
    assert answer["results"] == [
        {"index": 1, "relevance_score": 0.9, "document": {"text": "b"}},
        {"index": 0, "relevance_score": 0.1, "document": {"text": "a"}},
    ]
    assert answer["usage"] == {"prompt_tokens": 12, "total_tokens": 12}
    usage = parse_usage(provider=PROVIDER, request=request, body=body)
    assert usage is not None and (usage.prompt_tokens, usage.total_tokens, usage.search_units) == (12, 12, 0)


def test_an_openai_shaped_error_is_read_as_the_plugins_other_errors() -> None:
    request = rerank({"model": "alias", "query": "q", "documents": ["a"]})
    body = b'{"error": {"message": "slow down", "type": "RateLimitError", "param": null, "code": 429}}'
    response = UpstreamResponse(status=429, headers={"retry-after": "3"}, body=body)
    result = transform_response(provider=PROVIDER, request=request, response=response, model="m")
    assert result is not None and result.error is not None
    assert (result.error.kind, result.error.retry_after, result.error.message) == (
        "rate_limit",
        3.0,
        "slow down",
    )
