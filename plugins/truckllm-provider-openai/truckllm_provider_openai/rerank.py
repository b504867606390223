"""Rerank on an OpenAI-compatible server (vLLM, and others exposing Jina's rerank API at
``{base_url}/rerank``).

The client's request is sent as ``{model, query, documents: [text], top_n?}``; the answer
(``{id?, model, usage: {total_tokens}, results: [{index, relevance_score, document?}]}``) comes
back in the gateway's rerank shape (:mod:`truckllm.kit.rerank`); usage is the tokens the server
counted. Errors are OpenAI-shaped and read as the plugin's other errors are.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from truckllm.kit.rerank import (
    bad_answer,
    read_count,
    read_results,
    rerank_answer,
    rerank_of,
    rerank_usage,
    texts,
)
from truckllm.types import ChatRequest, ProviderResult, RateLimits, Usage

__all__ = ["RERANK_PATH", "rerank_body", "rerank_result", "rerank_tokens"]

RERANK_PATH = "/rerank"
"""The rerank path under ``base_url`` (vLLM serves ``/v1/rerank``; ``base_url`` ends in ``/v1``)."""


class _Answer(msgspec.Struct):
    id: Any = None
    results: Any = None
    usage: Any = None


_ANSWER = msgspec.json.Decoder(_Answer)
_UNREADABLE = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError)
_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")


def rerank_body(request: ChatRequest, model: str) -> bytes:
    """The upstream body: the documents' texts and ``top_n`` (nothing a server may not know)."""
    typed = rerank_of(request)
    body: dict[str, object] = {"model": model, "query": typed.query, "documents": texts(typed)}
    if isinstance(typed.top_n, int):
        body["top_n"] = typed.top_n
    return msgspec.json.encode(body)


def _tokens(usage: Any) -> int | None:
    return read_count(usage.get("total_tokens")) if isinstance(usage, dict) else None


def rerank_result(request: ChatRequest, body: bytes, model: str, limits: RateLimits | None) -> ProviderResult:
    """A successful upstream answer in the gateway's rerank shape, or a ``bad_response``."""
    typed = rerank_of(request)
    try:
        answer = _ANSWER.decode(body)
    except _UNREADABLE:
        return ProviderResult(error=bad_answer("the answer is not a rerank answer"), limits=limits)
    results = read_results(answer.results, len(typed.documents))
    if isinstance(results, str):
        return ProviderResult(
            error=bad_answer(f"the answer is not a rerank answer: {results}"), limits=limits
        )
    answer_id = answer.id if isinstance(answer.id, str) and _ID.fullmatch(answer.id) else None
    out = rerank_answer(typed, results, model=model, answer_id=answer_id, tokens=_tokens(answer.usage))
    return ProviderResult(body=out, limits=limits, dialect="openai")


def rerank_tokens(body: bytes) -> Usage:
    """The usage of a rerank answer: the tokens the server counted."""
    try:
        answer = _ANSWER.decode(body)
    except _UNREADABLE:
        return Usage()
    return rerank_usage(tokens=_tokens(answer.usage))
