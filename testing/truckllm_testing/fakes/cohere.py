"""A fake Cohere API: ``POST /v2/rerank`` (:class:`FakeCohere`).

The request is ``{model, query, documents: [str], top_n?, max_tokens_per_doc?, relevant_spans?,
priority?}`` with ``Authorization: Bearer <key>``; any other member (``return_documents``, which
v2 dropped, ``rank_fields``...) is a violation and a 400. The answer::

    {"id": "<uuid>", "results": [{"index": 3, "relevance_score": 0.97}, ...],
     "meta": {"api_version": {"version": "2", "is_experimental": false},
              "billed_units": {"search_units": 1}}}

Errors are ``{"id": "<uuid>", "message": "..."}`` with Cohere's statuses: 400 (``invalid
request: ...``), 401 (``invalid api token``), 402 (billing), 404 (model not found), 429 (a trial
key's limit, ``retry-after`` when the fault gives one), 498 (``Fault(kind="invalid_token")``:
an expired token), 500, 503.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from .base import Ctx, Problem
from .rerank import FakeRerank, search_units

__all__ = ["FakeCohere"]

_MESSAGES = {
    "auth": "invalid api token",
    "invalid_token": "invalid api token: the token has expired",
    "quota": "Please add a payment method to continue using the API",
    "rate_limit": "You are using a Trial key, which is limited to 10 API calls / minute. You can continue to "
    "use the Trial key for free or upgrade to a Production key with higher rate limits",
    "not_found": "model not found, make sure the correct model ID was used and that you have access to it.",
    "server": "internal server error, this has been reported to our developers",
    "overloaded": "the service is temporarily unavailable, please retry",
    "permission": "this key may not use this model",
}


class FakeCohere(FakeRerank):
    """Cohere's v2 rerank API (see the module docstring); ``base_url`` is the origin."""

    provider: ClassVar[str] = "cohere"
    path: ClassVar[str] = "/v2/rerank"
    top_field: ClassVar[str] = "top_n"
    allowed_fields: ClassVar[frozenset[str]] = frozenset(
        {"model", "query", "documents", "top_n", "max_tokens_per_doc", "relevant_spans", "priority"}
    )
    error_kinds: ClassVar[dict[str, int]] = {**FakeRerank.error_kinds, "invalid_token": 498}

    def _validate(self, ctx: Ctx) -> list[Problem]:
        problems = super()._validate(ctx)
        body = ctx.body
        value = body.get("max_tokens_per_doc") if isinstance(body, dict) else None
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            problems.append(Problem("max_tokens_per_doc must be an integer >= 1", "max_tokens_per_doc"))
        return problems

    def answer(self, ctx: Ctx, body: dict[str, Any], ranked: list[tuple[int, float]], tokens: int) -> Any:
        """``{id, results, meta: {api_version, billed_units: {search_units}}}``."""
        return {
            "id": str(uuid.uuid4()),
            "results": [{"index": i, "relevance_score": score} for i, score in ranked],
            "meta": {
                "api_version": {"version": "2", "is_experimental": False},
                "billed_units": {"search_units": search_units(body["query"], body["documents"])},
            },
        }

    def error_body(
        self, ctx: Ctx, status: int, kind: str, message: str | None, param: str | None
    ) -> dict[str, Any]:
        """``{"id", "message"}``."""
        text = (
            message
            if kind == "bad_request" and message
            else _MESSAGES.get(kind, message or "invalid request")
        )
        if kind == "bad_request":
            text = f"invalid request: {text}"
        return {"id": str(uuid.uuid4()), "message": text}
