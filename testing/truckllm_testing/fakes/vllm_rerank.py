"""A fake vLLM server's rerank API alone: ``POST /v1/rerank`` (:class:`FakeVLLMRerank`).

The same wire format as the ``vllm`` preset of :class:`~.compat.FakeCompat` (which also serves
chat), as a :class:`~.rerank.FakeRerank`, so that the rerank conformance suite (its raw answers,
its top-k member) runs against it: ``{model, query, documents: [str], top_n?,
truncate_prompt_tokens?, priority?}`` in, ``{id, model, usage: {prompt_tokens, total_tokens},
results: [{index, document: {text}, relevance_score}]}`` out; errors in OpenAI's shape
(``{"error": {"message", "type", "param", "code"}}``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from aiohttp import web

from .base import Ctx, rand_id
from .rerank import FakeRerank

__all__ = ["VLLM_RERANK_FIELDS", "FakeVLLMRerank"]

VLLM_RERANK_FIELDS = frozenset({"model", "query", "documents", "top_n", "truncate_prompt_tokens", "priority"})
"""The members the fake takes (vLLM's rerank request, the ones a gateway may send)."""

_TYPES = {
    "bad_request": "BadRequestError",
    "auth": "AuthenticationError",
    "not_found": "NotFoundError",
    "rate_limit": "RateLimitError",
    "server": "InternalServerError",
    "overloaded": "ServiceUnavailableError",
}


class FakeVLLMRerank(FakeRerank):
    """vLLM's rerank API (see the module docstring); ``base_url`` is ``<origin>/v1``."""

    provider: ClassVar[str] = "vllm"
    base_path: ClassVar[str] = "/v1"
    path: ClassVar[str] = "/v1/rerank"
    top_field: ClassVar[str] = "top_n"
    allowed_fields: ClassVar[frozenset[str]] = VLLM_RERANK_FIELDS

    def auth_error(self, ctx: Ctx) -> web.Response | None:
        """No key needed unless the server was started with keys (``--api-key``)."""
        if not self.keys:
            return None
        return super().auth_error(ctx)

    def answer(self, ctx: Ctx, body: dict[str, Any], ranked: list[tuple[int, float]], tokens: int) -> Any:
        """``{id, model, usage, results}``, each result with its document."""
        documents = body["documents"]
        return {
            "id": rand_id("rerank-", 32),
            "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            "results": [
                {"index": i, "document": {"text": documents[i]}, "relevance_score": score}
                for i, score in ranked
            ],
        }

    def error_body(
        self, ctx: Ctx, status: int, kind: str, message: str | None, param: str | None
    ) -> dict[str, Any]:
        """``{"error": {"message", "type", "param", "code"}}`` (vLLM's ``ErrorResponse``)."""
        text = message or kind.replace("_", " ")
        return {
            "error": {
                "message": text,
                "type": _TYPES.get(kind, "BadRequestError"),
                "param": param,
                "code": status,
            }
        }
