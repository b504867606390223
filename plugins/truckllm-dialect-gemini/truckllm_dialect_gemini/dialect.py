"""Gemini's ``generateContent`` API as an inbound dialect of the gateway.

Routes (``POST``, under ``/v1beta`` and ``/v1``): ``models/{model}:generateContent`` and
``:streamGenerateContent`` (the kernel's ``chat`` endpoint), ``:embedContent`` and
``:batchEmbedContents`` (``embeddings``), ``:countTokens`` (``count_tokens``: answered only by
deployments whose provider lists that endpoint; otherwise the kernel answers 400 in Gemini's
shape). Any other ``models/{model}:{method}`` is a Gemini-shaped 404.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from loguru import logger

from truckllm.errors import GatewayError
from truckllm.kit.dialect import DialectRoute, FrameTranslator, bearer
from truckllm.types import ChatRequest

from . import errors, names
from .request import Parsed, read_batch_embed, read_count_tokens, read_embed, read_generate
from .response import count_tokens_body, embedding_body, generate_body
from .stream import GeminiToArray, OpenAIToGemini, SSEIdentity

__all__ = ["NAME", "GeminiDialect", "GeminiRequest"]

NAME = "gemini"
"""The dialect's name: ``ChatRequest.dialect`` of requests a Gemini deployment gets as received."""


_PREFIXES = ("/v1beta", "/v1")
_METHODS = (
    ("generateContent", "chat"),
    ("streamGenerateContent", "chat"),
    ("embedContent", "embeddings"),
    ("batchEmbedContents", "embeddings"),
    ("countTokens", "count_tokens"),
)
_JSON = msgspec.json.Decoder()


class GeminiRequest(ChatRequest, kw_only=True):
    """A :class:`~truckllm.types.ChatRequest` that remembers how its answer must be written.

    :ivar method: the Gemini method called (``generateContent``, ``embedContent``...).
    :ivar sse: the client asked for ``alt=sse`` (else a stream is the JSON-array form).
    :ivar include_thoughts: ``thinkingConfig.includeThoughts``: answer thought parts.
    """

    method: str = "generateContent"
    sse: bool = True
    include_thoughts: bool = False


def _routes() -> tuple[DialectRoute, ...]:
    routes = [
        DialectRoute(path=f"{prefix}/models/{{model}}:{method}", endpoint=endpoint, name=method)
        for prefix in _PREFIXES
        for method, endpoint in _METHODS
    ]
    routes.extend(
        DialectRoute(path=f"{prefix}/models/{{model}}:{{method}}", endpoint="chat", name="unknown")
        for prefix in _PREFIXES
    )
    return tuple(routes)


class GeminiDialect:
    """Gemini's API at the gateway's front door (the ``google-genai`` SDKs, the Gemini CLI, REST).

    :cvar reframes_own: asks the kernel to hand this dialect's own answers and streams to
        :meth:`response` and :meth:`stream` too (a proposed kernel change; see the README).
    """

    name = NAME
    routes = _routes()
    reframes_own = True

    def credentials(self, headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
        """The gateway key: ``x-goog-api-key``, else ``?key=``, else ``Authorization: Bearer``."""
        key = headers.get("x-goog-api-key", "").strip() or query.get("key", "").strip()
        return key or bearer(headers.get("authorization"))

    def parse(
        self,
        route: DialectRoute,
        body: bytes,
        path_params: Mapping[str, str],
        query: Mapping[str, str],
        headers: Mapping[str, str],
    ) -> GeminiRequest:
        """Check a Gemini request the way Gemini does; keep its bytes; add its OpenAI typed form.

        :raises GatewayError: 400 ``INVALID_ARGUMENT`` listing the problems (Gemini's wording),
            or naming ``model`` when the URL's model cannot be a model name (:mod:`.names`);
            404 for an unknown method.
        """
        url_model = path_params.get("model", "")
        if route.name == "unknown":
            method = path_params.get("method", "")
            raise GatewayError(404, names.method_not_found(url_model, method), code="not_found")
        alias = names.url_model(url_model)
        stream = route.name == "streamGenerateContent"
        alt = query.get("alt", "")
        if stream and alt not in ("", "json", "sse"):
            raise GatewayError(400, f"Invalid value for alt: {alt!r} (expected json or sse)", param="alt")
        sse = alt == "sse"
        errors.STREAM_FORM.set("sse" if sse or not stream else "array")
        parsed: Parsed
        if route.name == "embedContent":
            parsed = read_embed(body, alias)
        elif route.name == "batchEmbedContents":
            parsed = read_batch_embed(body, alias, url_model)
        elif route.endpoint == "count_tokens":
            parsed = read_count_tokens(body, alias)
        else:
            parsed = read_generate(body, alias, stream)
        if parsed.notes:
            logger.debug("gemini dialect: for deployments of other dialects: {}", "; ".join(parsed.notes))
        return GeminiRequest(
            endpoint=route.endpoint,
            dialect=NAME,
            body=body,
            model=alias,
            stream=stream,
            include_usage=stream,  # OpenAI-dialect upstreams must send usage (Gemini always does)
            typed=parsed.typed,
            headers=headers,
            method=route.name,
            sse=sse or not stream,
            include_thoughts=parsed.include_thoughts,
        )

    def response(self, request: ChatRequest, body: bytes, source: str) -> bytes:
        """An answer in ``source``'s format as Gemini's; Gemini's own is unchanged."""
        method = request.method if isinstance(request, GeminiRequest) else ""
        if source == NAME:
            if method == "embedContent":
                return _single_embedding(body)
            return body
        if source != "openai":
            raise GatewayError(
                502, f"cannot turn a {source} answer into Gemini's format", type="server_error"
            )
        if request.endpoint == "count_tokens":
            return count_tokens_body(body)
        if request.endpoint == "embeddings":
            return embedding_body(body, single=method == "embedContent")
        include_thoughts = isinstance(request, GeminiRequest) and request.include_thoughts
        return generate_body(body, request.model, include_thoughts)

    def stream(self, request: ChatRequest, source: str) -> FrameTranslator:
        """A translator of ``source``'s stream frames into the Gemini form the client asked for."""
        sse = request.sse if isinstance(request, GeminiRequest) else True
        if source == NAME:
            return SSEIdentity() if sse else GeminiToArray()
        if source != "openai":
            raise GatewayError(
                502, f"cannot turn a {source} stream into Gemini's format", type="server_error"
            )
        include_thoughts = isinstance(request, GeminiRequest) and request.include_thoughts
        return OpenAIToGemini(request.model, sse, include_thoughts)

    def stream_content_type(self, request: ChatRequest) -> str:
        """``text/event-stream`` for ``alt=sse``; JSON for the array form."""
        if isinstance(request, GeminiRequest) and not request.sse:
            return "application/json; charset=UTF-8"
        return "text/event-stream"

    def error_body(self, error: GatewayError) -> bytes:
        """``{"error": {"code", "message", "status", "details"?}}`` (``google.rpc.Status``)."""
        return errors.error_body(error)

    def stream_error(self, error: GatewayError) -> bytes:
        """The raw error object that ends a stream that failed after it started (see :mod:`.errors`)."""
        return errors.stream_error(error, errors.STREAM_FORM.get())


def _single_embedding(body: bytes) -> bytes:
    """A ``batchEmbedContents`` answer of one embedding as ``embedContent``'s ``{"embedding": ...}``."""
    try:
        answer = _JSON.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return body
    if (
        isinstance(answer, dict)
        and isinstance(answer.get("embeddings"), list)
        and len(answer["embeddings"]) == 1
    ):
        return msgspec.json.encode({"embedding": answer["embeddings"][0]})
    return body
