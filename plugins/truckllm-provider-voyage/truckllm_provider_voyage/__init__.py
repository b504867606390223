"""TruckLLM provider plugin for Voyage AI's reranker API (``type: voyage``).

A client's ``POST /v1/rerank`` is sent to ``{base_url}/rerank`` (default
``https://api.voyageai.com/v1``) as ``{query, documents: [text], model, top_k?}`` with
``Authorization: Bearer <key>``: the client's ``top_n`` is Voyage's ``top_k``, and documents are
not asked back (the gateway echoes the client's own when it asked for ``return_documents``).
Voyage's answer (``{object: "list", data: [{index, relevance_score}], model, usage:
{total_tokens}}``) comes back in the gateway's rerank shape (:mod:`truckllm.kit.rerank`), with
``results``, not ``data``. ``max_tokens_per_doc`` is not Voyage's and is not sent (Voyage
truncates to the model's context by default).

Usage is the tokens Voyage counted (``prompt_tokens``), charged at the deployment's
``price.input`` per million. Errors (``{"detail"}``) are classified by status: 429 a rate limit
(``Retry-After`` honoured when sent), 401 the key's fault, 400 the request's fault, 5xx worth
another candidate.
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

TYPE = "voyage"
"""The YAML ``type:``."""
DEFAULT_BASE_URL = "https://api.voyageai.com/v1"
"""Voyage AI's API root."""
PATH = "/rerank"
"""The rerank path under ``base_url``."""


class _Answer(msgspec.Struct):
    data: Any = None
    usage: Any = None


_ANSWER = msgspec.json.Decoder(_Answer)
_UNREADABLE = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError)


@hookimpl
def register_providers(register: Callable[[ProviderSpec], None]) -> None:
    """Offer the ``voyage`` provider type (rerank)."""
    register(
        ProviderSpec(
            type=TYPE, default_base_url=DEFAULT_BASE_URL, dialect="voyage", endpoints=frozenset({"rerank"})
        )
    )


@hookimpl
def transform_request(
    provider: Provider, model: str, request: ChatRequest, api_key: str
) -> UpstreamRequest | None:
    """Voyage's rerank call: the documents' texts and ``top_k`` (the client's ``top_n``)."""
    if provider.type != TYPE:
        return None
    if request.endpoint != "rerank":
        raise UnsupportedRequest(f"Voyage serves rerank here, not {request.endpoint}")
    typed = rerank_of(request)
    body: dict[str, object] = {"query": typed.query, "documents": texts(typed), "model": model}
    if isinstance(typed.top_n, int):
        body["top_k"] = typed.top_n
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
    """Voyage's answer (``data``) in the gateway's rerank shape (``results``); an error classified."""
    if provider.type != TYPE:
        return None
    if response.status >= 400:
        return ProviderResult(error=read_error(response.status, response.headers, response.body))
    typed = rerank_of(request)
    try:
        answer = _ANSWER.decode(response.body)
    except _UNREADABLE:
        return ProviderResult(error=bad_answer("Voyage's answer is not a rerank answer"))
    results = read_results(answer.data, len(typed.documents))
    if isinstance(results, str):
        return ProviderResult(error=bad_answer(f"Voyage's answer is not a rerank answer: {results}"))
    return ProviderResult(body=rerank_answer(typed, results, model=model, tokens=_tokens(answer.usage)))


@hookimpl
def parse_usage(provider: Provider, request: ChatRequest, body: bytes) -> Usage | None:
    """The tokens Voyage counted."""
    if provider.type != TYPE:
        return None
    try:
        answer = _ANSWER.decode(body)
    except _UNREADABLE:
        return Usage()
    return rerank_usage(tokens=_tokens(answer.usage))
