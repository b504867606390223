"""TruckLLM provider plugin for Jina AI's reranker API (``type: jina``).

A client's ``POST /v1/rerank`` is sent to ``{base_url}/rerank`` (default
``https://api.jina.ai/v1``) as ``{model, query, documents: [text], top_n?, return_documents:
false}`` with ``Authorization: Bearer <key>`` (the gateway echoes the client's own documents when
asked, so Jina need not send them back); Jina's answer (``{model, usage: {total_tokens}, results:
[{index, relevance_score, document?}]}``) comes back in the gateway's rerank shape
(:mod:`truckllm.kit.rerank`). ``max_tokens_per_doc`` is not Jina's and is not sent.

Usage is the tokens Jina counted (``prompt_tokens``), charged at the deployment's ``price.input``
per million. Errors (FastAPI's ``{"detail"}``) are classified by status: 429 a rate limit
(``Retry-After`` honoured when sent), 401 the key's fault, 402 out of balance, 400 and 422 the
request's fault, 5xx worth another candidate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from truckllm import hookimpl
from truckllm.errors import UnsupportedRequest
from truckllm.kit.rerank import (
    bad_answer,
    read_count,
    read_error,
    read_results,
    rerank_answer,
    rerank_of,
    rerank_usage,
    texts,
)
from truckllm.types import (
    ChatRequest,
    Provider,
    ProviderResult,
    ProviderSpec,
    UpstreamRequest,
    UpstreamResponse,
    Usage,
)

__all__ = ["DEFAULT_BASE_URL", "PATH", "TYPE", "parse_usage", "register_providers", "transform_request",
           "transform_response"]  # fmt: skip

TRUCKLLM_API = 1

TYPE = "jina"
"""The YAML ``type:``."""
DEFAULT_BASE_URL = "https://api.jina.ai/v1"
"""Jina AI's API root."""
PATH = "/rerank"
"""The rerank path under ``base_url``."""


class _Answer(msgspec.Struct):
    results: Any = None
    usage: Any = None


_ANSWER = msgspec.json.Decoder(_Answer)
_UNREADABLE = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError)


@hookimpl
def register_providers(register: Callable[[ProviderSpec], None]) -> None:
    """Offer the ``jina`` provider type (rerank)."""
    register(
        ProviderSpec(
            type=TYPE, default_base_url=DEFAULT_BASE_URL, dialect="jina", endpoints=frozenset({"rerank"})
        )
    )


@hookimpl
def transform_request(
    provider: Provider, model: str, request: ChatRequest, api_key: str
) -> UpstreamRequest | None:
    """Jina's rerank call: the documents' texts, ``top_n``, no documents echoed."""
    if provider.type != TYPE:
        return None
    if request.endpoint != "rerank":
        raise UnsupportedRequest(f"Jina serves rerank here, not {request.endpoint}")
    typed = rerank_of(request)
    body: dict[str, object] = {"model": model, "query": typed.query, "documents": texts(typed)}
    if isinstance(typed.top_n, int):
        body["top_n"] = typed.top_n
    body["return_documents"] = False
    headers = {
        "authorization": f"Bearer {api_key}",
        "content-type": "application/json",
        "accept": "application/json",
        **provider.headers,
    }
    return UpstreamRequest(url=provider.base_url + PATH, headers=headers, body=msgspec.json.encode(body))


def _tokens(usage: Any) -> int | None:
    return read_count(usage.get("total_tokens")) if isinstance(usage, dict) else None


@hookimpl
def transform_response(
    provider: Provider, request: ChatRequest, response: UpstreamResponse, model: str
) -> ProviderResult | None:
    """Jina's answer in the gateway's rerank shape; an error classified."""
    if provider.type != TYPE:
        return None
    if response.status >= 400:
        return ProviderResult(error=read_error(response.status, response.headers, response.body))
    typed = rerank_of(request)
    try:
        answer = _ANSWER.decode(response.body)
    except _UNREADABLE:
        return ProviderResult(error=bad_answer("Jina's answer is not a rerank answer"))
    results = read_results(answer.results, len(typed.documents))
    if isinstance(results, str):
        return ProviderResult(error=bad_answer(f"Jina's answer is not a rerank answer: {results}"))
    return ProviderResult(body=rerank_answer(typed, results, model=model, tokens=_tokens(answer.usage)))


@hookimpl
def parse_usage(provider: Provider, request: ChatRequest, body: bytes) -> Usage | None:
    """The tokens Jina counted."""
    if provider.type != TYPE:
        return None
    try:
        answer = _ANSWER.decode(body)
    except _UNREADABLE:
        return Usage()
    return rerank_usage(tokens=_tokens(answer.usage))
