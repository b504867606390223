"""The rerank request schema: ``POST /v1/rerank`` (and ``/v2/rerank``) in the Cohere/Jina shape.

``{model, query, documents: [str | {text, ...}], top_n?, return_documents?, max_tokens_per_doc?}``
is what RAG frameworks send (LangChain, LlamaIndex, Haystack, the ``cohere`` client v1 and v2,
Jina-style clients). Decoded once, so that a bad request gets a 400 naming the field before any
upstream is called; members of other vendors (Cohere v1's ``rank_fields``, ``max_chunks_per_doc``,
Voyage's ``truncation``...) are accepted and not sent on.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import UNSET, Meta, Struct, UnsetType

__all__ = ["MAX_DOCUMENTS", "RerankDocument", "RerankRequest", "document_text", "rerank_size"]

MAX_DOCUMENTS = 1000
"""Documents one request may rank (Cohere's, Jina's and Voyage's limit)."""

_PosInt = Annotated[int, Meta(ge=1, le=2**31 - 1)]


class RerankDocument(Struct):
    """A document given as an object (Cohere v1, Jina): its ``text`` is what is ranked; other
    members are accepted and not sent upstream."""

    text: str


class RerankRequest(Struct, omit_defaults=True):
    """``POST /v1/rerank``: rank ``documents`` by relevance to ``query``.

    :ivar model: the alias.
    :ivar query: the search query (not empty).
    :ivar documents: 1 to :data:`MAX_DOCUMENTS` texts, each a string or ``{"text": ...}``.
    :ivar top_n: how many results to return (all when unset).
    :ivar return_documents: echo each ranked document's text (``document: {"text"}``).
    :ivar max_tokens_per_doc: truncate each document to this many tokens (Cohere; others ignore it).
    :ivar user: the end user (for the gateway's records; not sent upstream).
    """

    model: Annotated[str, Meta(min_length=1)]
    query: Annotated[str, Meta(min_length=1)]
    documents: Annotated[list[str | RerankDocument], Meta(min_length=1, max_length=MAX_DOCUMENTS)]
    top_n: _PosInt | UnsetType = UNSET
    return_documents: bool | UnsetType = UNSET
    max_tokens_per_doc: _PosInt | UnsetType = UNSET
    user: str | UnsetType = UNSET


def document_text(document: str | RerankDocument) -> str:
    """The text of one document as the client gave it."""
    return document if isinstance(document, str) else document.text


def rerank_size(request: RerankRequest) -> int:
    """UTF-8 bytes a reranker reads: the query once per document, and every document (Jina's
    and Voyage's token count is ``query tokens × documents + document tokens``)."""
    query = len(request.query.encode())
    return sum(query + len(document_text(d).encode()) for d in request.documents)
