"""TruckLLM provider plugin for Cohere's rerank API (``type: cohere``).

A client's ``POST /v1/rerank`` (or ``/v2/rerank``) is sent to ``{base_url}/v2/rerank`` as
``{model, query, documents: [text], top_n?, max_tokens_per_doc?}`` with ``Authorization: Bearer
<key>``; Cohere's answer (``{id, results: [{index, relevance_score}], meta: {billed_units:
{search_units}}}``) comes back in the gateway's rerank shape (:mod:`truckllm.kit.rerank`), the
documents' texts added from the client's request when it asked for ``return_documents``.

Usage is the search units Cohere billed (``Usage.search_units``), charged at the deployment's
``price.search_unit``. Errors (``{"id", "message"}``) are classified by status: 429 a rate limit
(``Retry-After`` honoured when sent), 401 and 498 (an invalid or expired token) the key's fault,
402 out of credit, 400 and 422 the request's fault, 5xx worth another candidate.
"""

from __future__ import annotations

import re
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

TYPE = "cohere"
"""The YAML ``type:``."""
DEFAULT_BASE_URL = "https://api.cohere.com"
"""Cohere's API root."""
PATH = "/v2/rerank"
"""The rerank path under ``base_url``."""


class _Answer(msgspec.Struct):
    id: Any = None
    results: Any = None
    meta: Any = None


_ANSWER = msgspec.json.Decoder(_Answer)
_ID = re.compile(r"[0-9A-Fa-f-]{8,64}")  # Cohere's ids are UUIDs: nothing else is echoed
_UNREADABLE = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError)


@hookimpl
def register_providers(register: Callable[[ProviderSpec], None]) -> None:
    """Offer the ``cohere`` provider type (rerank)."""
    register(
        ProviderSpec(
            type=TYPE, default_base_url=DEFAULT_BASE_URL, dialect="cohere", endpoints=frozenset({"rerank"})
        )
    )


@hookimpl
def transform_request(
    provider: Provider, model: str, request: ChatRequest, api_key: str
) -> UpstreamRequest | None:
    """Cohere's v2 rerank call: the documents' texts, ``top_n`` and ``max_tokens_per_doc``."""
    if provider.type != TYPE:
        return None
    if request.endpoint != "rerank":
        raise UnsupportedRequest(f"Cohere serves rerank here, not {request.endpoint}")
    typed = rerank_of(request)
    body: dict[str, object] = {"model": model, "query": typed.query, "documents": texts(typed)}
    if isinstance(typed.top_n, int):
        body["top_n"] = typed.top_n
    if isinstance(typed.max_tokens_per_doc, int):
        body["max_tokens_per_doc"] = typed.max_tokens_per_doc
    headers = {
        "authorization": f"Bearer {api_key}",
        "content-type": "application/json",
        "accept": "application/json",
        **provider.headers,
    }
    return UpstreamRequest(url=provider.base_url + PATH, headers=headers, body=msgspec.json.encode(body))


def _billed(meta: Any) -> int | None:
    billed = meta.get("billed_units") if isinstance(meta, dict) else None
    return read_count(billed.get("search_units")) if isinstance(billed, dict) else None


@hookimpl
def transform_response(
    provider: Provider, request: ChatRequest, response: UpstreamResponse, model: str
) -> ProviderResult | None:
    """Cohere's answer in the gateway's rerank shape; an error classified (498: the key's)."""
    if provider.type != TYPE:
        return None
    if response.status >= 400:
        status = 401 if response.status == 498 else response.status  # 498: an invalid or expired token
        return ProviderResult(error=read_error(status, response.headers, response.body))
    typed = rerank_of(request)
    try:
        answer = _ANSWER.decode(response.body)
    except _UNREADABLE:
        return ProviderResult(error=bad_answer("Cohere's answer is not a rerank answer"))
    results = read_results(answer.results, len(typed.documents))
    if isinstance(results, str):
        return ProviderResult(error=bad_answer(f"Cohere's answer is not a rerank answer: {results}"))
    answer_id = answer.id if isinstance(answer.id, str) and _ID.fullmatch(answer.id) else None
    body = rerank_answer(typed, results, model=model, answer_id=answer_id, search_units=_billed(answer.meta))
    return ProviderResult(body=body)


@hookimpl
def parse_usage(provider: Provider, request: ChatRequest, body: bytes) -> Usage | None:
    """The search units Cohere billed."""
    if provider.type != TYPE:
        return None
    try:
        answer = _ANSWER.decode(body)
    except _UNREADABLE:
        return Usage()
    return rerank_usage(search_units=_billed(answer.meta))
