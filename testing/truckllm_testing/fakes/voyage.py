"""A fake Voyage AI reranker API: ``POST /v1/rerank`` (:class:`FakeVoyage`).

The request is ``{query, documents: [str], model, top_k?, return_documents?, truncation?}`` with
``Authorization: Bearer <key>``: ``top_k``, not ``top_n`` (``top_n`` is a violation and a 400,
as is any other member Voyage does not know). The answer::

    {"object": "list", "data": [{"relevance_score": 0.97, "index": 3}, ...],
     "model": "rerank-2", "usage": {"total_tokens": 815}}

with ``"document": "<text>"`` in each item when ``return_documents`` is true. Errors are
``{"detail": "..."}``: 400, 401, 403, 429 (``retry-after`` when the fault gives one), 500, 503.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import Ctx
from .rerank import FakeRerank

__all__ = ["FakeVoyage"]

_MESSAGES = {
    "auth": "Provided API key is invalid.",
    "quota": "You have exceeded your quota.",
    "rate_limit": "You have exceeded your rate limit. Please try again later.",
    "not_found": "Model not found.",
    "server": "Internal server error.",
    "overloaded": "The service is overloaded. Please try again later.",
    "permission": "Forbidden.",
}


class FakeVoyage(FakeRerank):
    """Voyage AI's rerank API (see the module docstring); ``base_url`` is ``<origin>/v1``."""

    provider: ClassVar[str] = "voyage"
    base_path: ClassVar[str] = "/v1"
    path: ClassVar[str] = "/v1/rerank"
    top_field: ClassVar[str] = "top_k"
    allowed_fields: ClassVar[frozenset[str]] = frozenset(
        {"query", "documents", "model", "top_k", "return_documents", "truncation"}
    )

    def answer(self, ctx: Ctx, body: dict[str, Any], ranked: list[tuple[int, float]], tokens: int) -> Any:
        """``{object: "list", data, model, usage: {total_tokens}}``."""
        echo = body.get("return_documents") is True
        documents = body["documents"]
        return {
            "object": "list",
            "data": [
                {"relevance_score": score, "index": i, **({"document": documents[i]} if echo else {})}
                for i, score in ranked
            ],
            "model": body["model"],
            "usage": {"total_tokens": tokens},
        }

    def error_body(
        self, ctx: Ctx, status: int, kind: str, message: str | None, param: str | None
    ) -> dict[str, Any]:
        """``{"detail": "..."}``."""
        return {
            "detail": message
            if kind == "bad_request" and message
            else _MESSAGES.get(kind, message or "error")
        }
