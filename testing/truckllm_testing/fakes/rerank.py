"""What the fake rerank upstreams share (:class:`~.cohere.FakeCohere`, :class:`~.jina.FakeJina`,
:class:`~.voyage.FakeVoyage`; vLLM's ``/v1/rerank`` in :class:`~.compat.FakeCompat`).

A reranker takes ``{model, query, documents: [str], <top>?}`` and answers each document's index
and relevance score, best first. The fakes score deterministically (:func:`relevance`: the share
of the query's words found in the document, a hash of the pair breaking ties, always in
``[0, 1)``), so a test can compute the expected order with :func:`ranking`. Each validates the
body against its API's contract: required members and their types, at most
:data:`MAX_DOCUMENTS` documents, the top-k member (``top_n`` or Voyage's ``top_k``) at least 1,
and no member the API does not know (a violation, and the API's 400/422 when ``strict``).

Token counts follow Voyage's published formula (also a fair model of Jina's and vLLM's): words of
the query times the documents, plus the words of every document. Cohere bills search units: one
per 100 documents, a document whose query and text pass 500 tokens counting once per 500.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, ClassVar

from aiohttp import web

from .base import Ctx, FakeUpstream, Fault, Problem, Route, count_words, fmt_seconds, jtype

__all__ = [
    "MAX_DOCUMENTS",
    "FakeRerank",
    "RawAnswer",
    "ranking",
    "relevance",
    "rerank_problems",
    "rerank_tokens",
    "search_units",
]

MAX_DOCUMENTS = 1000
"""Documents one request may rank (every reranker API's limit)."""

_WORDS = re.compile(r"\w+")


def relevance(query: str, document: str) -> float:
    """The fake's score of ``document`` for ``query``: in ``[0, 1)``, deterministic."""
    words = {w.lower() for w in _WORDS.findall(query)}
    found = {w.lower() for w in _WORDS.findall(document)}
    share = len(words & found) / len(words) if words else 0.0
    tie = int.from_bytes(hashlib.sha256(f"{query}\x00{document}".encode()).digest()[:4], "big") / 2**32
    return round(0.9 * share + 0.09 * tie, 6)


def ranking(query: str, documents: list[str], top: int | None = None) -> list[tuple[int, float]]:
    """``(index, score)`` of ``documents``, best first (equal scores: the earlier document first),
    cut to ``top``."""
    scored = sorted(
        ((i, relevance(query, d)) for i, d in enumerate(documents)), key=lambda pair: (-pair[1], pair[0])
    )
    return scored[:top] if top is not None else scored


def rerank_tokens(query: str, documents: list[str]) -> int:
    """Tokens a rerank call reads: query words × documents + the documents' words."""
    return count_words(query) * len(documents) + sum(count_words(d) for d in documents)


def search_units(query: str, documents: list[str]) -> int:
    """Cohere's search units: one per 100 documents, a long document counting once per 500
    tokens of query and text."""
    chunks = sum(max(1, math.ceil((count_words(query) + count_words(d)) / 500)) for d in documents)
    return max(1, math.ceil(chunks / 100))


def rerank_problems(
    body: Any, allowed: Collection[str], top: str, required: Collection[str]
) -> list[Problem]:
    """What a reranker API refuses in ``body`` (see the module docstring)."""
    if not isinstance(body, dict):
        return [Problem(f"request body must be an object, not {jtype(body)}")]
    problems = [Problem(f"{name} is required", name) for name in required if name not in body]
    problems += [
        Problem(f"unknown field: parameter {name} is not a valid field", name)
        for name in body
        if name not in allowed
    ]
    model = body.get("model")
    if "model" in body and (not isinstance(model, str) or not model):
        problems.append(Problem("model must be a non-empty string", "model"))
    query = body.get("query")
    if "query" in body and (not isinstance(query, str) or not query):
        problems.append(Problem("query must be a non-empty string", "query"))
    documents = body.get("documents")
    if "documents" in body:
        if not isinstance(documents, list) or not documents:
            problems.append(Problem("documents must be a non-empty list of strings", "documents"))
        elif len(documents) > MAX_DOCUMENTS:
            problems.append(Problem(f"documents cannot exceed {MAX_DOCUMENTS} items", "documents"))
        elif not all(isinstance(d, str) for d in documents):
            problems.append(Problem("documents must be strings", "documents"))
    value = body.get(top)
    if (
        top in body
        and value is not None
        and (isinstance(value, bool) or not isinstance(value, int) or value < 1)
    ):
        problems.append(Problem(f"{top} must be an integer >= 1", top))
    for name in ("return_documents", "truncation"):
        if name in body and not isinstance(body[name], bool):
            problems.append(Problem(f"{name} must be a boolean", name))
    return problems


@dataclass
class RawAnswer:
    """Bytes to answer a valid request with instead of the API's answer (a hostile upstream):
    a 200 that is not an answer, an error echoing the key, an absurd ``Retry-After``..."""

    body: bytes
    """The body, sent as given."""
    status: int = 200
    """The HTTP status."""
    headers: dict[str, str] = field(default_factory=dict)
    """Extra headers (``Content-Type`` defaults to JSON)."""
    times: int = 1
    """How many requests it answers; ``-1``: every one."""


class FakeRerank(FakeUpstream):
    """The base of the fake rerank upstreams: one ``POST`` route, bearer keys, deterministic scores.

    Subclasses set :attr:`path`, :attr:`top_field`, :attr:`allowed_fields` and
    :attr:`required_fields`, and render :meth:`answer` and :meth:`error_body` in their API's shape.

    :param keys: accepted keys (empty: any non-empty key).
    :param strict: answer contract violations with the API's 400.
    :param scores: per document text, a score to answer instead of :func:`relevance`.
    """

    path: ClassVar[str] = "/v1/rerank"
    """The route."""
    top_field: ClassVar[str] = "top_n"
    """The member limiting the results."""
    allowed_fields: ClassVar[frozenset[str]] = frozenset()
    """The body members the API knows."""
    required_fields: ClassVar[tuple[str, ...]] = ("model", "query", "documents")
    """The members it requires."""
    bad_request_status: ClassVar[int] = 400
    """The status of a refused body."""
    error_kinds: ClassVar[dict[str, int]] = {
        "bad_request": 400,
        "auth": 401,
        "quota": 402,
        "permission": 403,
        "not_found": 404,
        "rate_limit": 429,
        "server": 500,
        "overloaded": 503,
    }
    server_name: ClassVar[str] = "envoy"

    def __init__(
        self,
        keys: Collection[str] = ("test-key",),
        *,
        strict: bool = True,
        scores: dict[str, float] | None = None,
    ) -> None:
        super().__init__(keys, strict=strict)
        self.scores: dict[str, float] = dict(scores or {})
        """Scores answered for these document texts instead of :func:`relevance`."""
        self._raw: list[RawAnswer] = []
        self._raw_lock = threading.Lock()

    def answer_raw(self, raw: RawAnswer) -> None:
        """Answer the next valid request(s) with ``raw`` (after validation and faults)."""
        with self._raw_lock:
            self._raw.append(raw)

    def _take_raw(self) -> RawAnswer | None:
        with self._raw_lock:
            if not self._raw:
                return None
            raw = self._raw[0]
            if raw.times > 0:
                raw.times -= 1
                if raw.times == 0:
                    self._raw.pop(0)
            return raw

    # ------------------------------------------------------------------ the API

    def routes(self) -> list[Route]:
        """The rerank route."""
        return [Route("POST", self.path, self._rerank, self._validate)]

    def api_key(self, request: web.Request) -> str | None:
        """The bearer token of ``Authorization``."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    def auth_error(self, ctx: Ctx) -> web.Response | None:
        """401 for a missing or unknown key."""
        key = ctx.rec.api_key
        if key is None:
            return self.error(ctx, 401, "auth", "no api key supplied")
        if self.keys and key not in self.keys:
            return self.error(ctx, 401, "auth", "invalid api token")
        return None

    def error_headers(self, ctx: Ctx, status: int, kind: str, fault: Fault | None) -> dict[str, str]:
        """``retry-after`` when the fault gives one."""
        if fault is not None and fault.retry_after is not None:
            return {"retry-after": fmt_seconds(fault.retry_after)}
        return {}

    def stream_error(self, ctx: Ctx, kind: str | None, index: int) -> bytes:
        """Rerank never streams: a mid-stream fault is answered as a 500."""
        return b""

    def _validate(self, ctx: Ctx) -> list[Problem]:
        return rerank_problems(ctx.body, self.allowed_fields, self.top_field, self.required_fields)

    def error(
        self,
        ctx: Ctx,
        status: int,
        kind: str,
        message: str | None,
        param: str | None = None,
        fault: Fault | None = None,
    ) -> web.Response:
        """A refused body gets :attr:`bad_request_status` (FastAPI APIs answer 422)."""
        if status == 400 and kind == "bad_request":
            status = self.bad_request_status
        return super().error(ctx, status, kind, message, param, fault)

    def scored(self, body: dict[str, Any]) -> list[tuple[int, float]]:
        """The ranking of one valid request: scripted scores first, else :func:`relevance`."""
        query, documents = body["query"], body["documents"]
        pairs = [(i, self.scores.get(d, relevance(query, d))) for i, d in enumerate(documents)]
        pairs.sort(key=lambda pair: (-pair[1], pair[0]))
        top = body.get(self.top_field)
        return pairs[:top] if isinstance(top, int) and top > 0 else pairs

    async def _rerank(self, ctx: Ctx) -> web.StreamResponse:
        raw = self._take_raw()
        if raw is not None:
            headers = {"Content-Type": "application/json", **raw.headers}
            return web.Response(status=raw.status, body=raw.body, headers=headers)
        body = ctx.body
        ranked = self.scored(body)
        tokens = rerank_tokens(body["query"], body["documents"])
        ctx.tokens = tokens
        self.count_request(ctx.rec.api_key, tokens)
        return self.json_response(ctx, self.answer(ctx, body, ranked, tokens))

    def answer(self, ctx: Ctx, body: dict[str, Any], ranked: list[tuple[int, float]], tokens: int) -> Any:
        """The API's answer body."""
        raise NotImplementedError
