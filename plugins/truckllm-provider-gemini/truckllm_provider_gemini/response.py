"""Gemini answers → OpenAI ``chat.completion``, ``text_completion`` and embedding lists.

Also the Gemini wire structs shared with :mod:`.stream`, and the finish-reason and usage
mappings of PROVIDERS.md §4.3 and §4.4.
"""

from __future__ import annotations

import base64
import re
import struct
import time
from typing import Any

import msgspec
from loguru import logger
from msgspec import Struct

from truckllm.kit.openai_schemas import EmbeddingRequest
from truckllm.kit.openai_wire import chat_completion, completion_id, usage_object
from truckllm.types import ChatRequest, ProviderResult, UpstreamError, UpstreamResponse, Usage

from .count import count_answer
from .errors import bad_response, read_error, status_error
from .ids import encode_call_id
from .numbers import token_count

__all__ = [
    "Candidate",
    "CountTokensResponse",
    "EmbedResponse",
    "GenerateContentResponse",
    "Part",
    "UsageMetadata",
    "bad_response",
    "finish_reason",
    "parse_usage",
    "read_generate",
    "tool_call",
    "translate_response",
    "usage_from",
]


# --- the wire (only what the gateway reads; unknown fields are ignored) -------------------------


class FunctionCall(Struct, rename="camel"):
    """``functionCall``: a whole call (the Developer API never streams arguments)."""

    name: str = ""
    args: dict[str, Any] | None = None
    id: str | None = None


class Part(Struct, rename="camel"):
    """One ``Part``; only the fields the gateway translates."""

    text: str | None = None
    thought: bool | None = None
    thought_signature: str | None = None
    function_call: FunctionCall | None = None


class Content(Struct, rename="camel"):
    """``Content``: a role and its parts."""

    parts: list[Part] | None = None
    role: str | None = None


class LogprobCandidate(Struct, rename="camel"):
    """One token and its log probability."""

    token: str | None = None
    log_probability: float | None = None


class TopCandidates(Struct, rename="camel"):
    """The most likely tokens at one position."""

    candidates: list[LogprobCandidate] | None = None


class LogprobsResult(Struct, rename="camel"):
    """``logprobsResult`` of a candidate."""

    top_candidates: list[TopCandidates] | None = None
    chosen_candidates: list[LogprobCandidate] | None = None


class Candidate(Struct, rename="camel"):
    """One ``Candidate`` (an OpenAI choice)."""

    content: Content | None = None
    finish_reason: str | None = None
    index: int | None = None
    logprobs_result: LogprobsResult | None = None


class PromptFeedback(Struct, rename="camel"):
    """``promptFeedback``: set with ``blockReason`` when the prompt was blocked."""

    block_reason: str | None = None


class UsageMetadata(Struct, rename="camel"):
    """``usageMetadata`` (zero-valued fields are omitted upstream).

    The counts are read as any JSON value and made sane by :func:`usage_from`: a hostile or broken
    count (``-1000000``, ``1e30``, ``"12"``) must not fail a good answer, nor refund a budget.
    """

    prompt_token_count: Any = None
    candidates_token_count: Any = None
    thoughts_token_count: Any = None
    cached_content_token_count: Any = None
    tool_use_prompt_token_count: Any = None
    total_token_count: Any = None


class GenerateContentResponse(Struct, rename="camel"):
    """``GenerateContentResponse``, one whole answer or one stream event (``error`` for failures)."""

    candidates: list[Candidate] | None = None
    prompt_feedback: PromptFeedback | None = None
    usage_metadata: UsageMetadata | None = None
    model_version: str | None = None
    response_id: str | None = None
    error: Any = None


class Embedding(Struct):
    """``ContentEmbedding``."""

    values: list[float] = msgspec.field(default_factory=list)


class BatchEmbedResponse(Struct):
    """``BatchEmbedContentsResponse``."""

    embeddings: list[Embedding] | None = None


class EmbedResponse(Struct):
    """``EmbedContentResponse`` (a Gemini client's ``embedContent``, passed through)."""

    embedding: Embedding


class CountTokensResponse(Struct, rename="camel"):
    """``CountTokensResponse`` (a Gemini client's ``countTokens``, passed through)."""

    total_tokens: int = 0


GENERATE = msgspec.json.Decoder(GenerateContentResponse)
_EMBED = msgspec.json.Decoder(BatchEmbedResponse)
_EMBED_ONE = msgspec.json.Decoder(EmbedResponse)
_COUNT = msgspec.json.Decoder(CountTokensResponse)
_USAGE_ONLY = msgspec.json.Decoder(GenerateContentResponse)
_UNREADABLE = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)  # RecursionError: deep JSON
_REASON = re.compile(r"[A-Z][A-Z0-9_]{0,63}")


# --- mappings ------------------------------------------------------------------------------------

_FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "LANGUAGE": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
}
_QUIET = {"STOP", "MAX_TOKENS", "", "FINISH_REASON_UNSPECIFIED"}


def finish_reason(reason: str | None, saw_tool_call: bool) -> str:
    """OpenAI's ``finish_reason`` for a Gemini ``finishReason`` (PROVIDERS.md §4.3).

    Gemini ends a function call with ``STOP``: that becomes ``tool_calls``.
    """
    if saw_tool_call and reason in (None, "STOP"):
        return "tool_calls"
    mapped = _FINISH.get(reason or "STOP", "stop")
    if (reason or "") not in _QUIET and mapped == "stop":
        # upstream text reaches the log only when it is an enum name, never as free text
        shown = reason if reason and _REASON.fullmatch(reason) else "an unreadable reason"
        logger.info("gemini finished with {}; reported as finish_reason=stop", shown)
    return mapped


def usage_from(meta: UsageMetadata | None) -> Usage | None:
    """OpenAI-sense :class:`Usage` from ``usageMetadata`` (PROVIDERS.md §4.4)."""
    if meta is None:
        return None
    prompt_raw = token_count(meta.prompt_token_count)
    tool_prompt = token_count(meta.tool_use_prompt_token_count)
    candidates = token_count(meta.candidates_token_count)
    thoughts = token_count(meta.thoughts_token_count)
    total = token_count(meta.total_token_count)
    prompt = prompt_raw + tool_prompt
    completion = candidates + thoughts
    if thoughts and total and prompt + candidates == total:
        completion = candidates  # the rare answers whose candidate count already includes thoughts
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=total or prompt + completion,
        cached_tokens=token_count(meta.cached_content_token_count),
        reasoning_tokens=thoughts,
    )


def tool_call(part: Part) -> dict[str, Any]:
    """The OpenAI tool call for a ``functionCall`` part; its id carries the Gemini id and signature."""
    call = part.function_call
    assert call is not None
    return {
        "id": encode_call_id(call.id, part.thought_signature),
        "type": "function",
        "function": {"name": call.name, "arguments": msgspec.json.encode(call.args or {}).decode()},
    }


def _logprobs(result: LogprobsResult | None) -> dict[str, Any] | None:
    if result is None or not result.chosen_candidates:
        return None
    tops = result.top_candidates or []
    content = []
    for k, chosen in enumerate(result.chosen_candidates):
        token = chosen.token or ""
        alternatives = tops[k].candidates or [] if k < len(tops) else []
        content.append(
            {
                "token": token,
                "logprob": chosen.log_probability or 0.0,
                "bytes": list(token.encode()),
                "top_logprobs": [
                    {
                        "token": alt.token or "",
                        "logprob": alt.log_probability or 0.0,
                        "bytes": list((alt.token or "").encode()),
                    }
                    for alt in alternatives
                ],
            }
        )
    return {"content": content, "refusal": None}


class _Read:
    """What one candidate says, in OpenAI terms."""

    __slots__ = ("calls", "finish", "index", "logprobs", "reasoning", "text")

    def __init__(self, candidate: Candidate) -> None:
        texts: list[str] = []
        thoughts: list[str] = []
        self.calls: list[dict[str, Any]] = []
        parts = candidate.content.parts if candidate.content is not None else None
        for part in parts or []:
            if part.function_call is not None:
                self.calls.append(tool_call(part))
            elif part.text:
                (thoughts if part.thought else texts).append(part.text)
        self.index = candidate.index or 0
        self.text = "".join(texts) or None
        self.reasoning = "".join(thoughts) or None
        self.finish = finish_reason(candidate.finish_reason, bool(self.calls))
        self.logprobs = _logprobs(candidate.logprobs_result)


def _chat_choice(read: _Read) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": read.text, "refusal": None}
    if read.reasoning is not None:
        message["reasoning_content"] = read.reasoning
    if read.calls:
        message["tool_calls"] = read.calls
    return {"index": read.index, "message": message, "logprobs": read.logprobs, "finish_reason": read.finish}


def _blocked_choice(endpoint: str) -> dict[str, Any]:
    if endpoint == "completions":
        return {"text": "", "index": 0, "logprobs": None, "finish_reason": "content_filter"}
    return {
        "index": 0,
        "message": {"role": "assistant", "content": None, "refusal": None},
        "logprobs": None,
        "finish_reason": "content_filter",
    }


def _unreadable(what: str) -> ProviderResult:
    return ProviderResult(error=bad_response(what))


def read_generate(body: bytes) -> GenerateContentResponse | UpstreamError:
    """A whole ``GenerateContentResponse``, or the error it is: the ``error`` it carries, or
    ``bad_response`` when it is not one (not JSON, the wrong shape, no candidates and no block
    reason)."""
    try:
        answer = GENERATE.decode(body)
    except _UNREADABLE:
        return bad_response("a body that is not a GenerateContentResponse")
    if answer.error is not None:
        error = answer.error if isinstance(answer.error, dict) else {"message": str(answer.error)}
        return status_error(200, error, "Gemini reported an error")
    if not answer.candidates and (answer.prompt_feedback is None or not answer.prompt_feedback.block_reason):
        return bad_response("no candidates and no block reason")
    return answer


def _generate(request: ChatRequest, body: bytes) -> ProviderResult:
    answer = read_generate(body)
    if isinstance(answer, UpstreamError):
        return ProviderResult(error=answer)
    candidates = sorted(answer.candidates or [], key=lambda c: c.index or 0)
    reads = [_Read(c) for c in candidates]
    model = answer.model_version or request.model
    usage = usage_from(answer.usage_metadata)
    if request.endpoint == "completions":
        choices = [
            {"text": r.text or "", "index": r.index, "logprobs": None, "finish_reason": r.finish}
            for r in reads
        ] or [_blocked_choice("completions")]
        completion: dict[str, Any] = {
            "id": "cmpl-" + answer.response_id if answer.response_id else completion_id("cmpl-"),
            "object": "text_completion",
            "created": int(time.time()),
            "model": model,
            "choices": choices,
        }
        if usage is not None:
            completion["usage"] = usage_object(usage)
        return ProviderResult(body=msgspec.json.encode(completion))
    return ProviderResult(
        body=chat_completion(
            model=model,
            choices=[_chat_choice(r) for r in reads] or [_blocked_choice("chat")],
            usage=usage,
            response_id="chatcmpl-" + answer.response_id if answer.response_id else None,
        )
    )


def _embeddings(request: ChatRequest, body: bytes) -> ProviderResult:
    try:
        answer = _EMBED.decode(body)
    except _UNREADABLE:
        return _unreadable("a body that is not a BatchEmbedContentsResponse")
    typed = request.typed
    expected = None
    if isinstance(typed, EmbeddingRequest):
        expected = 1 if isinstance(typed.input, str) else len(typed.input)
    embeddings = answer.embeddings or []
    if expected is not None and len(embeddings) != expected:
        return _unreadable(f"{len(embeddings)} embeddings for {expected} inputs")
    as_base64 = isinstance(typed, EmbeddingRequest) and typed.encoding_format == "base64"
    data = []
    for i, item in enumerate(embeddings):
        values: Any = item.values
        if as_base64:
            try:
                values = base64.b64encode(struct.pack(f"<{len(item.values)}f", *item.values)).decode()
            except (OverflowError, struct.error):
                return _unreadable("an embedding value out of float32 range")
        data.append({"object": "embedding", "index": i, "embedding": values})
    return ProviderResult(
        body=msgspec.json.encode(
            {
                "object": "list",
                "data": data,
                "model": request.model,
                "usage": {"prompt_tokens": 0, "total_tokens": 0},
            }
        )
    )


def translate_response(request: ChatRequest, response: UpstreamResponse) -> ProviderResult:
    """Read one complete Gemini answer: translate a success, classify an error."""
    if not 200 <= response.status < 300:
        return ProviderResult(error=read_error(response.status, response.body))
    if request.dialect == "gemini":
        error = _passthrough_error(request, response.body)
        if error is not None:
            return ProviderResult(error=error)
        return ProviderResult(body=response.body, dialect="gemini")
    if request.endpoint == "embeddings":
        return _embeddings(request, response.body)
    if request.endpoint == "count_tokens":
        return count_answer(response.body)
    return _generate(request, response.body)


def _passthrough_error(request: ChatRequest, body: bytes) -> UpstreamError | None:
    """Why a Gemini client's answer cannot be passed through (``None`` when it can): the body must
    be the answer of the method called, or the client would get garbage as a 200."""
    if request.endpoint == "chat":
        answer = read_generate(body)
        return answer if isinstance(answer, UpstreamError) else None
    if request.endpoint == "embeddings":
        batch = "requests" in request.fields()
        try:
            if batch and _EMBED.decode(body).embeddings is not None:
                return None
            if not batch:
                _EMBED_ONE.decode(body)
                return None
        except _UNREADABLE:
            pass
        shape = "a BatchEmbedContentsResponse" if batch else "an EmbedContentResponse"
        return bad_response(f"a body that is not {shape}")
    if request.endpoint == "count_tokens":
        try:
            _COUNT.decode(body)
        except _UNREADABLE:
            return bad_response("a body that is not a CountTokensResponse")
    return None


def parse_usage(request: ChatRequest, body: bytes) -> Usage | None:
    """Usage of a successful non-stream answer; embeddings report none upstream and counting
    tokens bills nothing (zeros)."""
    if request.endpoint in ("embeddings", "count_tokens"):
        return Usage()
    try:
        answer = _USAGE_ONLY.decode(body)
    except _UNREADABLE:
        return None
    return usage_from(answer.usage_metadata)
