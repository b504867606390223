"""A fake OpenAI-compatible service (Groq, Mistral, DeepSeek, xAI, Together, Fireworks,
OpenRouter, Perplexity, Ollama, vLLM, LM Studio): :class:`FakeOpenAI` with the quirks of one of
them, so a gateway test sees what the real service would do with a body it sends.

What each ``preset`` reproduces (the rest is FakeOpenAI's):

- ``groq``: ``logprobs``, ``logit_bias``, ``top_logprobs``, ``messages[].name`` and ``n`` other
  than 1 are a 400 (``{"error": {"message", "type": "invalid_request_error"}}``); OpenAI's
  ``x-ratelimit-*`` headers with Groq's figures (requests per day, tokens per minute).
- ``mistral``: strict validation: any field outside Mistral's chat schema (``max_completion_tokens``,
  ``seed``, ``stream_options``, ``logprobs``, ``user``...), a ``name`` on a non-tool message or a
  replayed ``reasoning_content`` is a 422 ``extra_forbidden`` (``{"object": "error", "message":
  {"detail": [...]}, "type": "invalid_request_error"}``); ``random_seed`` and ``tool_choice: any``
  accepted; a stream always ends with its usage (no ``stream_options`` needed);
  ``x-ratelimit-{limit,remaining}-{req,tokens}-minute`` headers.
- ``deepseek``: ``response_format`` ``json_schema`` is a 400; ``logprobs``/``top_logprobs`` are a
  400 on the thinking models (``deepseek-reasoner``, ``deepseek-v4*``); ``max_completion_tokens``
  is ignored (no limit); ``reasoning_content`` in assistant messages accepted; no rate-limit headers.
- ``xai``: reasoning models (``grok-3-mini``, ``grok-4*``, ``grok-code*``) refuse
  ``presence_penalty``, ``frequency_penalty`` and ``stop`` (400 ``{"code", "error"}``);
  OpenAI's ``x-ratelimit-*`` headers.
- ``together``: ``x-ratelimit-{limit,remaining,reset}`` and ``x-tokenlimit-{limit,remaining}``.
- ``fireworks``: ``x-ratelimit-{limit,remaining}-requests`` only.
- ``openrouter``: ``x-ratelimit-{limit,remaining}`` and ``x-ratelimit-reset`` (epoch ms).
- ``perplexity``: served at the root (``/chat/completions``, no ``/v1``); ``tools`` are a 400;
  ``logit_bias``, ``logprobs``, ``top_logprobs`` are a 400; no rate-limit headers.
- ``ollama``, ``lmstudio``: no key needed (any or none accepted); ``max_completion_tokens`` is
  ignored by ``ollama``; no rate-limit headers.
- ``vllm``: no key needed unless ``keys`` are given (``--api-key``); no rate-limit headers;
  ``POST /v1/rerank`` (vLLM's Jina-style rerank API for cross-encoder models: ``{model, query,
  documents: [str], top_n?, truncate_prompt_tokens?, priority?}``, answered ``{id, model, usage:
  {prompt_tokens, total_tokens}, results: [{index, document: {text}, relevance_score}]}``, scored
  as the other fake rerankers score).
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any, ClassVar

from aiohttp import web

from .base import Ctx, Fault, Problem, Route, go_duration, rand_id
from .openai import FakeOpenAI
from .rerank import ranking, rerank_problems, rerank_tokens
from .vllm_rerank import VLLM_RERANK_FIELDS

__all__ = ["LOCAL", "MISTRAL_FIELDS", "PRESETS", "FakeCompat"]

PRESETS = frozenset(
    {"groq", "mistral", "deepseek", "xai", "together", "fireworks", "openrouter", "perplexity", "ollama",
     "vllm", "lmstudio"}
)  # fmt: skip
"""The services a :class:`FakeCompat` can play."""
LOCAL = frozenset({"ollama", "vllm", "lmstudio"})
"""The local servers (no key needed)."""
MISTRAL_FIELDS = frozenset(
    {"model", "messages", "temperature", "top_p", "max_tokens", "stream", "stop", "random_seed",
     "response_format", "tools", "tool_choice", "presence_penalty", "frequency_penalty", "n",
     "parallel_tool_calls", "prediction", "prompt_mode", "safe_prompt"}
)  # fmt: skip
"""The top-level fields of Mistral's chat-completion request; anything else is ``extra_forbidden``."""
_MISTRAL_MESSAGE_FIELDS = frozenset({"role", "content", "tool_calls", "tool_call_id", "prefix"})
_MISTRAL_TOOL_CHOICES = frozenset({"auto", "none", "any", "required"})
_THINKING = {"deepseek": r"deepseek-(reasoner|v4)", "xai": r"grok-(3-mini|4|code)"}
_XAI_REFUSED = (
    ("presence_penalty", "presencePenalty"),
    ("frequency_penalty", "frequencyPenalty"),
    ("stop", "stop"),
)
_GROQ_REFUSED = ("logprobs", "logit_bias", "top_logprobs")
_PERPLEXITY_REFUSED = ("logit_bias", "logprobs", "top_logprobs", "tools")
LIMIT_REQUESTS = 14400
"""The request limit in every preset's rate-limit headers."""
LIMIT_TOKENS = 6000
"""The token limit in every preset's rate-limit headers."""

Validator = Callable[[Ctx], list[Problem]]
Handler = Callable[[Ctx], Awaitable[web.StreamResponse]]


class FakeCompat(FakeOpenAI):
    """A fake OpenAI-compatible service (see the module docstring).

    :param preset: which service (one of :data:`PRESETS`).
    :param keys: accepted keys (``ollama``, ``lmstudio``: any or none; ``vllm``: none needed when
        ``keys`` is empty, else one of them).
    :param clock: unix time, for OpenRouter's reset header.
    Other parameters: :class:`FakeOpenAI`'s.
    """

    provider: ClassVar[str] = "compat"

    def __init__(
        self,
        preset: str,
        keys: Collection[str] = ("test-key",),
        *,
        clock: Callable[[], float] = time.time,
        **kw: Any,
    ) -> None:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}")
        super().__init__(keys, **kw)
        self.preset = preset
        """The service played."""
        self.clock = clock
        """Unix time."""

    @property
    def base_url(self) -> str:
        """What a gateway config's ``base_url`` would be (Perplexity: the root, no ``/v1``)."""
        return self.origin if self.preset == "perplexity" else self.origin + self.base_path

    # ------------------------------------------------------------------ routes and auth

    def routes(self) -> list[Route]:
        """FakeOpenAI's routes with this service's checks on chat (Perplexity: chat at the root)."""
        routes = []
        for route in super().routes():
            if route.path == "/v1/chat/completions":
                path = "/chat/completions" if self.preset == "perplexity" else route.path
                route = Route("POST", path, self._compat_chat(route.handler), self._compat_validate(route))
            elif self.preset == "perplexity":
                continue
            routes.append(route)
        if self.preset == "vllm":
            routes.append(Route("POST", "/v1/rerank", self._vllm_rerank, self._vllm_rerank_problems))
        return routes

    # ------------------------------------------------------------------ vLLM's rerank API

    def _vllm_rerank_problems(self, ctx: Ctx) -> list[Problem]:
        return rerank_problems(ctx.body, VLLM_RERANK_FIELDS, "top_n", ("model", "query", "documents"))

    async def _vllm_rerank(self, ctx: Ctx) -> web.StreamResponse:
        body = ctx.body
        query, documents = body["query"], body["documents"]
        top = body.get("top_n")
        tokens = ctx.tokens = rerank_tokens(query, documents)
        self.count_request(ctx.rec.api_key, tokens)
        answer = {
            "id": rand_id("rerank-", 32),
            "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            "results": [
                {"index": i, "document": {"text": documents[i]}, "relevance_score": score}
                for i, score in ranking(query, documents, top if isinstance(top, int) and top > 0 else None)
            ],
        }
        return self.json_response(ctx, answer)

    def auth_error(self, ctx: Ctx) -> web.Response | None:
        """A local server takes no key (vLLM: unless started with keys); others as OpenAI."""
        if self.preset in ("ollama", "lmstudio"):
            return None
        if self.preset == "vllm":
            if not self.keys or ctx.rec.api_key in self.keys:
                return None
            return self.error(ctx, 401, "auth", "Unauthorized")
        return super().auth_error(ctx)

    # ------------------------------------------------------------------ validation

    def _compat_validate(self, route: Route) -> Validator:
        base = route.validate

        def validate(ctx: Ctx) -> list[Problem]:
            body = ctx.body
            if not isinstance(body, dict):
                return base(ctx) if base is not None else []
            problems = self.refusals(body)
            # FakeOpenAI's own checks, on the body without what only this service takes
            ctx.body = {
                k: v for k, v in body.items() if k not in ("random_seed", "prompt_mode", "safe_prompt")
            }
            if ctx.body.get("tool_choice") == "any":
                ctx.body["tool_choice"] = "required"
            try:
                problems += base(ctx) if base is not None else []
            finally:
                ctx.body = body
            return problems

        return validate

    def refusals(self, body: dict[str, Any]) -> list[Problem]:
        """What this service refuses in a chat body (FakeOpenAI's checks come on top)."""
        model = str(body.get("model") or "")
        messages = [m for m in body.get("messages") or () if isinstance(m, dict)]
        problems: list[Problem] = []
        if self.preset == "groq":
            problems += [
                Problem(f"'{f}' : property '{f}' is unsupported", f) for f in _GROQ_REFUSED if f in body
            ]
            problems += [
                Problem(f"'messages.{i}' : property 'name' is unsupported", f"messages.{i}.name")
                for i, m in enumerate(messages)
                if "name" in m
            ]
            if body.get("n") not in (None, 1):
                problems.append(Problem("'n' : number must be at most 1", "n"))
        elif self.preset == "mistral":
            problems += [
                Problem("Extra inputs are not permitted", f) for f in body if f not in MISTRAL_FIELDS
            ]
            for i, m in enumerate(messages):
                allowed = _MISTRAL_MESSAGE_FIELDS | ({"name"} if m.get("role") == "tool" else set())
                problems += [
                    Problem("Extra inputs are not permitted", f"messages.{i}.{m.get('role')}.{f}")
                    for f in m
                    if f not in allowed
                ]
            choice = body.get("tool_choice")
            if isinstance(choice, str) and choice not in _MISTRAL_TOOL_CHOICES:
                problems.append(Problem("Input should be 'auto', 'none', 'any' or 'required'", "tool_choice"))
        elif self.preset == "deepseek":
            fmt = body.get("response_format")
            if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
                problems.append(Problem("This response_format type is unavailable now", "response_format"))
            if re.match(_THINKING["deepseek"], model):
                problems += [
                    Problem(f"{f} is not supported with the thinking mode", f)
                    for f in ("logprobs", "top_logprobs")
                    if f in body
                ]
        elif self.preset == "xai" and re.match(_THINKING["xai"], model):
            for name, wire in _XAI_REFUSED:
                if name in body:
                    problems.append(Problem(f"Argument not supported on this model: {wire}", name))
        elif self.preset == "perplexity":
            problems += [
                Problem(f"{f} is not supported" if f != "tools" else "Tool calling is not supported", f)
                for f in _PERPLEXITY_REFUSED
                if f in body
            ]
        return problems

    def _compat_chat(self, handler: Handler) -> Handler:
        async def chat(ctx: Ctx) -> web.StreamResponse:
            body = ctx.body
            if isinstance(body, dict):  # a copy: the record keeps what was received
                body = dict(body)
                if self.preset in ("ollama", "deepseek"):
                    body.pop("max_completion_tokens", None)  # not a field there: ignored, no limit
                if self.preset == "mistral" and body.get("stream") is True:
                    body["stream_options"] = {"include_usage": True}  # Mistral streams end with usage
                ctx.body = body
            return await handler(ctx)

        return chat

    # ------------------------------------------------------------------ errors and headers

    def error(
        self,
        ctx: Ctx,
        status: int,
        kind: str,
        message: str | None,
        param: str | None = None,
        fault: Fault | None = None,
    ) -> web.Response:
        """Mistral answers a validation failure with 422."""
        if self.preset == "mistral" and status == 400 and kind == "bad_request":
            status = 422
        return super().error(ctx, status, kind, message, param, fault)

    def error_body(
        self, ctx: Ctx, status: int, kind: str, message: str | None, param: str | None
    ) -> dict[str, Any]:
        """The service's own error shape for a refused request; OpenAI's otherwise."""
        if kind != "bad_request" or status not in (400, 422):
            return super().error_body(ctx, status, kind, message, param)
        text = message or "invalid request"
        if self.preset == "mistral":
            loc: list[int | str] = [
                int(p) if p.isdigit() else p for p in ["body", *(param or "").split(".")] if p
            ]
            detail = [{"type": "extra_forbidden", "loc": loc, "msg": text, "input": None}]
            return {"object": "error", "message": {"detail": detail}, "type": "invalid_request_error",
                    "param": None, "code": None}  # fmt: skip
        if self.preset == "xai":
            return {"code": "Client specified an invalid argument", "error": text}
        if self.preset == "groq":
            return {"error": {"message": text, "type": "invalid_request_error"}}
        if self.preset == "perplexity":
            return {"error": {"message": text, "type": "bad_request", "code": 400}}
        return {"error": {"message": text, "type": "invalid_request_error", "param": param,
                          "code": "invalid_request_error"}}  # fmt: skip

    def success_headers(self, ctx: Ctx) -> dict[str, str]:
        """The service's own rate-limit headers (none for DeepSeek, Perplexity, local servers)."""
        requests, tokens = self.count_request(ctx.rec.api_key, ctx.tokens)
        left_requests = str(max(0, LIMIT_REQUESTS - requests))
        left_tokens = str(max(0, LIMIT_TOKENS - tokens))
        headers = {"x-request-id": "req_compat"}
        if self.preset in ("groq", "xai"):
            headers.update(
                {
                    "x-ratelimit-limit-requests": str(LIMIT_REQUESTS),
                    "x-ratelimit-limit-tokens": str(LIMIT_TOKENS),
                    "x-ratelimit-remaining-requests": left_requests,
                    "x-ratelimit-remaining-tokens": left_tokens,
                    "x-ratelimit-reset-requests": go_duration(86400 * requests / LIMIT_REQUESTS),
                    "x-ratelimit-reset-tokens": go_duration(60 * tokens / LIMIT_TOKENS),
                }
            )
        elif self.preset == "fireworks":
            headers.update(
                {
                    "x-ratelimit-limit-requests": str(LIMIT_REQUESTS),
                    "x-ratelimit-remaining-requests": left_requests,
                }
            )
        elif self.preset == "mistral":
            headers.update(
                {
                    "x-ratelimit-limit-req-minute": str(LIMIT_REQUESTS),
                    "x-ratelimit-remaining-req-minute": left_requests,
                    "x-ratelimit-limit-tokens-minute": str(LIMIT_TOKENS),
                    "x-ratelimit-remaining-tokens-minute": left_tokens,
                    "x-ratelimit-tokens-query-cost": str(ctx.tokens),
                }
            )
        elif self.preset == "together":
            headers.update(
                {
                    "x-ratelimit-limit": str(LIMIT_REQUESTS),
                    "x-ratelimit-remaining": left_requests,
                    "x-ratelimit-reset": "1",
                    "x-tokenlimit-limit": str(LIMIT_TOKENS),
                    "x-tokenlimit-remaining": left_tokens,
                }
            )
        elif self.preset == "openrouter":
            headers.update(
                {
                    "x-ratelimit-limit": str(LIMIT_REQUESTS),
                    "x-ratelimit-remaining": left_requests,
                    "x-ratelimit-reset": str(int((self.clock() + 10) * 1000)),
                }
            )
        return headers
