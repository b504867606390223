"""A fake Jina AI reranker API: ``POST /v1/rerank`` (:class:`FakeJina`).

The request is ``{model, query, documents: [str], top_n?, return_documents?, truncation?}`` with
``Authorization: Bearer <key>``; another member is a violation and a 422 (FastAPI's validation
answer). The answer (``return_documents`` defaults to true, as Jina's)::

    {"model": "jina-reranker-v2-base-multilingual", "usage": {"total_tokens": 815},
     "results": [{"index": 3, "relevance_score": 0.97, "document": {"text": "..."}}, ...]}

Errors are FastAPI's ``{"detail": "..."}``: 401, 402 (no balance left), 422, 429 (``retry-after``
when the fault gives one), 500, 503.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import Ctx
from .rerank import FakeRerank

__all__ = ["FakeJina"]

_MESSAGES = {
    "auth": "Unauthorized: invalid API key",
    "quota": "Insufficient balance: please top up your API key",
    "rate_limit": "Rate limit exceeded: too many requests",
    "not_found": "Model not found",
    "server": "Internal Server Error",
    "overloaded": "Service temporarily overloaded",
    "permission": "Forbidden",
}


class FakeJina(FakeRerank):
    """Jina AI's rerank API (see the module docstring); ``base_url`` is ``<origin>/v1``."""

    provider: ClassVar[str] = "jina"
    base_path: ClassVar[str] = "/v1"
    path: ClassVar[str] = "/v1/rerank"
    top_field: ClassVar[str] = "top_n"
    allowed_fields: ClassVar[frozenset[str]] = frozenset(
        {"model", "query", "documents", "top_n", "return_documents", "truncation"}
    )
    bad_request_status: ClassVar[int] = 422

    def answer(self, ctx: Ctx, body: dict[str, Any], ranked: list[tuple[int, float]], tokens: int) -> Any:
        """``{model, usage: {total_tokens}, results}`` (documents echoed unless turned off)."""
        echo = body.get("return_documents", True) is not False
        documents = body["documents"]
        return {
            "model": body["model"],
            "usage": {"total_tokens": tokens},
            "results": [
                {
                    "index": i,
                    "relevance_score": score,
                    **({"document": {"text": documents[i]}} if echo else {}),
                }
                for i, score in ranked
            ],
        }

    def error_body(
        self, ctx: Ctx, status: int, kind: str, message: str | None, param: str | None
    ) -> dict[str, Any]:
        """``{"detail": ...}`` (a validation failure: FastAPI's list of ``{loc, msg, type}``)."""
        if kind == "bad_request":
            loc = ["body", param] if param else ["body"]
            return {"detail": [{"loc": loc, "msg": message or "invalid request", "type": "value_error"}]}
        return {"detail": _MESSAGES.get(kind, message or "error")}
