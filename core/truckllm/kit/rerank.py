"""Rerank (``POST /v1/rerank``): the request schema and the gateway's answer, for provider plugins.

A rerank request reaches a provider as a :class:`~truckllm.types.ChatRequest` with ``endpoint ==
"rerank"`` and ``typed`` a :class:`RerankRequest`. The provider sends its own wire format and
turns the answer into the gateway's one shape with :func:`rerank_answer`, which every client
reads (the ``cohere`` client v1 and v2, Jina-style clients, LangChain, LlamaIndex, Haystack)::

    {"id": "...", "model": "...",
     "results": [{"index": 3, "relevance_score": 0.98, "document": {"text": "..."}}, ...],
     "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}},
     "usage": {"prompt_tokens": 812, "total_tokens": 812}}

``document`` is there only when the client asked for ``return_documents``: it is the client's own
text, whatever the upstream echoed. ``billed_units.search_units`` is there when the upstream bills
search units (Cohere), ``usage`` when it counts tokens (Jina, Voyage, vLLM).

- :class:`RerankRequest`, :class:`RerankDocument`, :data:`MAX_DOCUMENTS`, :func:`document_text`:
  the request as decoded (``documents`` are strings or ``{"text"}`` objects).
- :func:`rerank_of`: the :class:`RerankRequest` of a ``ChatRequest``.
- :func:`texts`: the documents' texts, in order (what every upstream takes).
- :class:`RerankResult`: one ranked document (``index``, ``relevance_score``).
- :func:`read_results`: an upstream's ``results`` list, checked (each index a document's, once;
  each score a finite number), or the reason it is not an answer.
- :func:`rerank_answer`: the gateway's answer (JSON bytes), cut to ``top_n``.
- :func:`read_count`: a usage count read defensively (``None`` unless a non-negative number).
- :func:`rerank_usage`: the :class:`~truckllm.types.Usage` of search units and tokens.
- :func:`bad_answer`: the failure for a 2xx that is not an answer (``bad_response``, 502).
- :func:`read_error`: an upstream's error answer classified, whatever its shape (``message``,
  FastAPI's ``detail``, OpenAI's ``error``), ``Retry-After`` read on 429 and 503.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import msgspec

from truckllm._internal.schemas.rerank import MAX_DOCUMENTS as MAX_DOCUMENTS
from truckllm._internal.schemas.rerank import RerankDocument as RerankDocument
from truckllm._internal.schemas.rerank import RerankRequest as RerankRequest
from truckllm._internal.schemas.rerank import document_text as document_text
from truckllm.kit.openai_wire import parse_retry_after, upstream_error
from truckllm.types import ChatRequest, UpstreamError, Usage

__all__ = [
    "MAX_DOCUMENTS",
    "RerankDocument",
    "RerankRequest",
    "RerankResult",
    "bad_answer",
    "document_text",
    "read_count",
    "read_error",
    "read_results",
    "rerank_answer",
    "rerank_of",
    "rerank_usage",
    "texts",
]


class RerankResult(msgspec.Struct, frozen=True):
    """One ranked document: its position in the request's ``documents`` and its score."""

    index: int
    relevance_score: float


class _Document(msgspec.Struct):
    text: str


class _Result(msgspec.Struct, omit_defaults=True):
    index: int
    relevance_score: float
    document: _Document | None = None


class _Version(msgspec.Struct):
    version: str = "2"


class _Billed(msgspec.Struct, omit_defaults=True):
    search_units: int | None = None
    input_tokens: int | None = None


class _Meta(msgspec.Struct):
    api_version: _Version
    billed_units: _Billed


class _Usage(msgspec.Struct):
    prompt_tokens: int
    total_tokens: int


class _Answer(msgspec.Struct, omit_defaults=True):
    id: str
    model: str
    results: list[_Result]
    meta: _Meta
    usage: _Usage | None = None


_ENCODER = msgspec.json.Encoder()


def rerank_of(request: ChatRequest) -> RerankRequest:
    """The typed rerank request of ``request``.

    :raises TypeError: ``request`` is not a decoded rerank request.
    """
    typed = request.typed
    if not isinstance(typed, RerankRequest):
        raise TypeError(f"not a rerank request: {request.endpoint}")
    return typed


def texts(request: RerankRequest) -> list[str]:
    """The documents' texts, in the client's order."""
    return [document_text(d) for d in request.documents]


def bad_answer(message: str) -> UpstreamError:
    """The failure for a 2xx answer that is not a rerank answer (another candidate may serve)."""
    return UpstreamError(status=502, kind="bad_response", type="server_error", message=message)


def read_count(value: Any) -> int | None:
    """A count an upstream reported: a non-negative finite number (a float is rounded up: a
    part of a unit is billed as one), else ``None`` (negative, text, ``null``, ``nan``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float):
        if not math.isfinite(value) or value < 0:
            return None
        return math.ceil(value)
    return value if value >= 0 else None


def _score(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    score = float(value)
    return score if math.isfinite(score) else None


def read_results(
    items: Any, documents: int, index: str = "index", score: str = "relevance_score"
) -> list[RerankResult] | str:
    """An upstream's list of ranked documents, checked.

    :param items: the decoded ``results`` (``data`` for Voyage) member.
    :param documents: how many documents the request had.
    :param index: the member naming the document's position.
    :param score: the member holding its score.
    :returns: the results in the upstream's order, or why they are not an answer (not a list,
        an index out of range or given twice, a score that is not a finite number, more results
        than documents).
    """
    if not isinstance(items, list):
        return "the answer has no list of results"
    if len(items) > documents:
        return f"the answer ranks {len(items)} results for {documents} documents"
    seen: set[int] = set()
    results: list[RerankResult] = []
    for item in items:
        if not isinstance(item, dict):
            return "a result is not an object"
        position = item.get(index)
        if isinstance(position, bool) or not isinstance(position, int) or not 0 <= position < documents:
            return "a result's index is not one of the documents'"
        if position in seen:
            return "a document is ranked twice"
        seen.add(position)
        value = _score(item.get(score))
        if value is None:
            return "a result's relevance score is not a number"
        results.append(RerankResult(index=position, relevance_score=value))
    return results


def rerank_answer(
    request: RerankRequest,
    results: Sequence[RerankResult],
    *,
    model: str,
    answer_id: str | None = None,
    search_units: int | None = None,
    tokens: int | None = None,
) -> bytes:
    """The gateway's rerank answer (see the module's docstring).

    :param request: the client's request (its ``top_n`` cuts the results, its
        ``return_documents`` adds each document's text).
    :param results: checked results (:func:`read_results`), best first as the upstream ranked them.
    :param model: the model that answered.
    :param answer_id: the upstream's id, when it gave one (else a new ``rerank-...`` id).
    :param search_units: search units billed, when the upstream bills them.
    :param tokens: tokens read, when the upstream counts them.
    """
    documents = request.documents
    echo = request.return_documents is True
    limit = request.top_n if isinstance(request.top_n, int) else len(results)
    answer = _Answer(
        id=answer_id if isinstance(answer_id, str) and answer_id else "rerank-" + os.urandom(12).hex(),
        model=model,
        results=[
            _Result(
                index=r.index,
                relevance_score=r.relevance_score,
                document=_Document(document_text(documents[r.index])) if echo else None,
            )
            for r in results[:limit]
        ],
        meta=_Meta(
            api_version=_Version(),
            billed_units=_Billed(search_units=search_units, input_tokens=tokens),
        ),
        usage=_Usage(prompt_tokens=tokens, total_tokens=tokens) if tokens is not None else None,
    )
    return _ENCODER.encode(answer)


def rerank_usage(search_units: int | None = None, tokens: int | None = None) -> Usage:
    """The usage of one rerank call: search units billed and tokens read (prompt tokens)."""
    count = tokens or 0
    return Usage(search_units=search_units or 0, prompt_tokens=count, total_tokens=count)


_UNREADABLE = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError)


def _message(value: Any) -> str | None:
    """The text of an error member: a string, FastAPI's ``[{"msg"}]``, an object's ``message``."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, list):
        parts = [_message(item) for item in value]
        return "; ".join(p for p in parts if p) or None
    if isinstance(value, dict):
        for name in ("message", "msg", "detail", "error"):
            text = _message(value.get(name))
            if text:
                return text
    return None


def read_error(status: int, headers: Any, body: bytes, *, kind: str | None = None) -> UpstreamError:
    """Classify an upstream's error answer (``kind`` overrides the status's class).

    The message is the body's ``message``, ``detail`` or ``error`` (the upstream's text, kept
    whole: the kernel scrubs and cuts it), else the body as text; ``Retry-After`` is read on 429
    and 503, defensively (anything but a non-negative finite number is none).
    """
    try:
        parsed = msgspec.json.decode(body)
    except _UNREADABLE:
        parsed = None
    message = _message(parsed) if isinstance(parsed, dict) else None
    if message is None:
        message = body.decode("utf-8", "replace").strip() or f"upstream answered HTTP {status}"
    retry_after = parse_retry_after(headers) if status in (429, 503) else None
    return upstream_error(status, message, kind=kind, retry_after=retry_after)
