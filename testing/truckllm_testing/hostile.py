"""A hostile upstream: one server that answers every way an upstream can lie, for provider plugins.

:class:`HostileUpstream` is a real aiohttp server on ``127.0.0.1`` (a random free port) that
speaks the OpenAI, Anthropic, Gemini and Bedrock wire paths at once, so any provider's
``base_url`` can point at it (:meth:`HostileUpstream.base_url` gives the usual root of each
dialect). Unless told otherwise it answers every request with a small valid answer of the
request's dialect, whole or streamed (Bedrock's streams as AWS event streams). A test scripts
hostile answers with :meth:`HostileUpstream.script`, like the fakes'
``Fault``: a queue of :class:`Hostile` entries, each for the next ``times`` requests matching its
``key``, ``model``, ``path`` and ``dialect``::

    with HostileUpstream().running() as hostile:
        hostile.script(Hostile("redirect", status=302))          # Location: the metadata service
        hostile.script(Hostile("echo_key", status=401, times=-1)) # the key in every error field
        ...  # point a provider's base_url at hostile.base_url("openai")
        (seen,) = hostile.requests                              # the raw request line it got

Every act is listed, with what it sends, in :data:`ACTS`; the number and header values the
conformance suite tries are in :data:`RETRY_AFTER_VALUES`, :data:`RETRY_AFTER_MS_VALUES` and
:data:`TOKEN_VALUES`. The server knows the provider key each request carried (``Authorization:
Bearer``, ``x-api-key``, ``x-goog-api-key``, ``api-key`` or ``?key=``) so the ``echo_key*`` acts
can put it back in every string field of an error, and every request is recorded as it arrived
(:class:`HostileRequest`: the raw request target, undecoded, so a test can check exactly how a
plugin built its URL).

Streams are SSE (Gemini's ``alt=sse`` form). Text the answers carry that must never reach a
client is marked with :data:`MARKER`.
"""

from __future__ import annotations

import asyncio
import binascii
import json
import random
import re
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

from aiohttp import web

from truckllm_testing.loopback import LoopbackServer

__all__ = [
    "ACTS",
    "DIALECTS",
    "MARKER",
    "METADATA_URL",
    "RETRY_AFTER_MS_VALUES",
    "RETRY_AFTER_VALUES",
    "STREAM_ACTS",
    "TOKEN_VALUES",
    "Hostile",
    "HostileRequest",
    "HostileUpstream",
    "key_fragments",
]

MARKER = "HOSTILE-UPSTREAM-GARBAGE"
"""Appears in every garbage body and invalid frame: it must never reach a client."""

METADATA_URL = "http://169.254.169.254/latest/meta-data/"
"""Where the ``redirect`` act points by default: a cloud metadata service."""

ACTS: dict[str, str] = {
    "valid": "a valid answer of the request's dialect (the answer when nothing is scripted)",
    "redirect": "a 3xx (``status``: 301, 302 (default), 307, 308) with ``Location: value`` "
    "(default: the cloud metadata service) and a body claiming success",
    "html": "200 with an HTML page, labelled as the content type the request expects",
    "random_bytes": "200 with random bytes (seeded by ``size``), labelled as expected",
    "empty": "200 with an empty body",
    "truncated_json": "200 with a valid answer cut in the middle",
    "json_array": "200 with ``[]``",
    "wrong_object": '200 with ``{"foo": 1}``',
    "other_dialect": "200 with a valid answer of another dialect (Anthropic's for an OpenAI "
    "request, OpenAI's for an Anthropic or Gemini request)",
    "error_in_200": "200 with the dialect's error object instead of an answer",
    "deep_json": "200 with arrays nested ``size`` levels deep (default 100 000)",
    "huge_body": "200 with a JSON body of ``size`` bytes (default 2 MiB + 1; set the gateway's "
    "``server.max_response_bytes`` below it)",
    "wrong_content_type": "a stream request answered 200 with a whole JSON answer as "
    "``application/json`` (the upstream ignored ``stream``)",
    "sse_invalid_first": "a stream whose first frame is not SSE (an HTML line)",
    "sse_invalid_after": "``after`` valid events, then a line that is not SSE",
    "sse_non_json": "``after`` valid events, then a ``data:`` frame that is not JSON",
    "sse_wrong_shape": "``after`` valid events, then ``data: []``",
    "sse_cut": "``after`` valid events, then the connection is closed",
    "sse_error_event": "``after`` valid events, then the dialect's error event, the key in every field",
    "sse_huge_frame": "``after`` valid events, then one ``data:`` line of ``size`` bytes "
    "(default 2 MiB + 1) with no end",
    "echo_key": "an error (``status``, default 400) in the dialect's shape with the request's key "
    "in every string field (message, type, code, param, nested fields) and in response headers",
    "echo_key_fragments": "the same with a different 8+ character piece of the key in each field",
    "echo_key_straddle": "an error whose ~330-byte message has the key across byte 300",
    "retry_after": "an error (``status``, default 429) with ``Retry-After: value``, Gemini's "
    "``RetryInfo.retryDelay`` and a message saying to retry in ``value`` seconds",
    "retry_after_ms": "an error (``status``, default 429) with ``retry-after-ms: value``",
    "ratelimit_headers": "a valid answer with negative, absurd and non-numeric rate-limit headers",
    "usage": "a valid answer (whole or streamed) whose every token count is ``tokens``",
}
"""Every act the server can be scripted to do, with what it sends."""

STREAM_ACTS = frozenset(name for name in ACTS if name.startswith("sse_") or name == "wrong_content_type")
"""Acts that only apply to stream requests (a whole request never takes them from the queue)."""

RETRY_AFTER_VALUES: tuple[str, ...] = (
    "99999999999",
    "-5",
    "-0.001",
    "soon",
    "nan",
    "inf",
    "1e308",
    "0x10",
    "Fri, 31 Dec 9999 23:59:59 GMT",
    "",
)
"""``Retry-After`` values an upstream may send: absurd, negative, non-numeric, far-future dates."""

RETRY_AFTER_MS_VALUES: tuple[str, ...] = ("99999999999999", "-1000", "nan", "1e308", "soon")
"""``retry-after-ms`` values an upstream may send."""

TOKEN_VALUES: tuple[Any, ...] = (-1_000_000, -1, 10**18, 10**30, 1.5, -0.5, "12", None, True)
"""Token counts an upstream may put in its usage: negative, huge, non-integer, not numbers."""

_WHOLE_GARBAGE = frozenset(
    {
        "html",
        "random_bytes",
        "empty",
        "truncated_json",
        "json_array",
        "wrong_object",
        "other_dialect",
        "error_in_200",
        "deep_json",
        "huge_body",
    }
)
_HTML = (
    "<!DOCTYPE html><html><head><title>Welcome to nginx!</title></head><body>"
    f"<h1>It works</h1><p>{MARKER}</p></body></html>"
)
_TEXT = "hostile upstream says hi"
_GEMINI_METHOD = re.compile(
    r":(generateContent|streamGenerateContent|batchEmbedContents|embedContent|countTokens)$"
)
_BIG = 2 * 1024 * 1024 + 1


def key_fragments(key: str, size: int = 8) -> list[str]:
    """Every run of ``size`` consecutive characters of ``key`` (``[key]`` when it is shorter)."""
    if len(key) <= size:
        return [key]
    return [key[i : i + size] for i in range(len(key) - size + 1)]


@dataclass
class Hostile:
    """One scripted hostile answer, for the next ``times`` matching requests.

    Only the fields an act reads matter (see :data:`ACTS`).
    """

    act: str
    """What to do: a name of :data:`ACTS`."""
    status: int | None = None
    """HTTP status of a ``redirect`` or of an error act (each has its default)."""
    value: str | None = None
    """The ``Location`` of a redirect, the ``Retry-After``/``retry-after-ms`` value."""
    tokens: Any = None
    """``usage``: the value of every token count (any JSON value)."""
    after: int = 2
    """Stream acts: valid events sent before the hostile one."""
    size: int | None = None
    """``deep_json``: nesting levels; ``huge_body``/``sse_huge_frame``: bytes; ``random_bytes``: the seed."""
    chunk_delay: float = 0.0
    """Seconds between stream events (so the valid ones reach the client first)."""
    times: int = 1
    """How many matching requests it applies to; ``-1`` means forever."""
    key: str | None = None
    """Only requests made with this API key."""
    model: str | None = None
    """Only requests for this model."""
    path: str | None = None
    """Only requests whose raw path contains this text."""
    dialect: str | None = None
    """Only requests of this dialect (``openai``, ``anthropic``, ``gemini``, ``bedrock``)."""

    def __post_init__(self) -> None:
        if self.act not in ACTS:
            raise ValueError(f"unknown hostile act {self.act!r}; known: {', '.join(ACTS)}")


@dataclass
class HostileRequest:
    """One request as the hostile server received it."""

    method: str
    """HTTP method."""
    target: str
    """The request target exactly as sent: raw path and query, percent-encoding untouched."""
    path: str
    """The raw path (no query), undecoded."""
    query: str
    """The raw query string (without ``?``), ``""`` when there is none."""
    headers: dict[str, str]
    """Request headers, lower-case names (a repeated header's values joined with ``, ``)."""
    body: bytes
    """The raw body."""
    dialect: str | None = None
    """``openai``, ``anthropic``, ``gemini``, ``bedrock``; ``None`` for a path no dialect has."""
    endpoint: str | None = None
    """``chat``, ``completions``, ``embeddings``, ``messages``, ``count_tokens`` or the Gemini method."""
    model: str | None = None
    """The model named by the body (OpenAI, Anthropic) or by the path (Gemini, decoded)."""
    stream: bool = False
    """A stream was asked for."""
    api_key: str | None = None
    """The provider key the request carried."""
    act: str = "valid"
    """The act it was answered with."""
    started: float = 0.0
    """``time.monotonic()`` on arrival."""

    @property
    def params(self) -> list[tuple[str, str]]:
        """The query parameters, decoded, in order, repeats kept."""
        return parse_qsl(self.query, keep_blank_values=True)

    def json(self) -> Any:
        """The body decoded as JSON (``None`` when it is not JSON)."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class _Pending:
    __slots__ = ("item", "remaining")

    def __init__(self, item: Hostile) -> None:
        self.item = item
        self.remaining = item.times


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


# --- the three dialects: valid answers, errors, stream frames -------------------------------------


@dataclass
class _Usage:
    prompt: Any = 7
    completion: Any = 5

    @property
    def total(self) -> Any:
        if isinstance(self.prompt, int) and isinstance(self.completion, int):
            return self.prompt + self.completion
        return self.prompt


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


class _OpenAI:
    name = "openai"
    sse_end = b"\n\n"

    def answer(self, req: HostileRequest, usage: _Usage) -> Any:
        model = req.model or "hostile-model"
        if req.endpoint == "embeddings":
            body = req.json()
            inputs = body.get("input") if isinstance(body, dict) else None
            count = (
                len(inputs) if isinstance(inputs, list) and inputs and not isinstance(inputs[0], int) else 1
            )
            return {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": i, "embedding": [0.25, -0.5, 0.75]} for i in range(count)
                ],
                "model": model,
                "usage": {"prompt_tokens": usage.prompt, "total_tokens": usage.prompt},
            }
        usage_obj = {
            "prompt_tokens": usage.prompt,
            "completion_tokens": usage.completion,
            "total_tokens": usage.total,
        }
        if req.endpoint == "completions":
            return {
                "id": "cmpl-hostile",
                "object": "text_completion",
                "created": 1700000000,
                "model": model,
                "choices": [{"text": _TEXT, "index": 0, "logprobs": None, "finish_reason": "stop"}],
                "usage": usage_obj,
            }
        return {
            "id": "chatcmpl-hostile",
            "object": "chat.completion",
            "created": 1700000000,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": _TEXT, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": usage_obj,
        }

    def events(self, req: HostileRequest, usage: _Usage) -> list[bytes]:
        model = req.model or "hostile-model"
        out: list[bytes] = []
        usage_obj = {
            "prompt_tokens": usage.prompt,
            "completion_tokens": usage.completion,
            "total_tokens": usage.total,
        }
        if req.endpoint == "completions":
            base: dict[str, Any] = {
                "id": "cmpl-hostile",
                "object": "text_completion",
                "created": 1700000000,
                "model": model,
            }
            pieces = _pieces(_TEXT)
            for n, piece in enumerate(pieces):
                finish = "stop" if n == len(pieces) - 1 else None
                choice = {"text": piece, "index": 0, "logprobs": None, "finish_reason": finish}
                out.append(self.frame({**base, "choices": [choice]}))
        else:
            base = {
                "id": "chatcmpl-hostile",
                "object": "chat.completion.chunk",
                "created": 1700000000,
                "model": model,
            }

            def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
                choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                return self.frame({**base, "choices": [choice]})

            out.append(chunk({"role": "assistant", "content": ""}))
            out.extend(chunk({"content": piece}) for piece in _pieces(_TEXT))
            out.append(chunk({}, "stop"))
        out.append(self.frame({**base, "choices": [], "usage": usage_obj}))
        out.append(b"data: [DONE]\n\n")
        return out

    def frame(self, obj: Any) -> bytes:
        return b"data: " + _dumps(obj) + b"\n\n"

    def error(self, status: int, fields: dict[str, Any]) -> Any:
        return {
            "error": {
                "message": fields["message"],
                "type": fields.get("type", "invalid_request_error"),
                "param": fields.get("param"),
                "code": fields.get("code"),
                **({"details": fields["nested"]} if "nested" in fields else {}),
            }
        }

    def stream_error(self, fields: dict[str, Any]) -> bytes:
        return self.frame(self.error(500, fields))


class _Anthropic:
    name = "anthropic"
    sse_end = b"\n\n"

    def answer(self, req: HostileRequest, usage: _Usage) -> Any:
        if req.endpoint == "count_tokens":
            return {"input_tokens": usage.prompt}
        return {
            "id": "msg_hostile",
            "type": "message",
            "role": "assistant",
            "model": req.model or "hostile-model",
            "content": [{"type": "text", "text": _TEXT}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": usage.prompt, "output_tokens": usage.completion},
        }

    def events(self, req: HostileRequest, usage: _Usage) -> list[bytes]:
        message: dict[str, Any] = {
            "id": "msg_hostile",
            "type": "message",
            "role": "assistant",
            "model": req.model or "hostile-model",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": usage.prompt, "output_tokens": 1},
        }
        out = [
            self.event("message_start", {"type": "message_start", "message": message}),
            self.event(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            ),
        ]
        for piece in _pieces(_TEXT):
            delta = {"type": "text_delta", "text": piece}
            out.append(
                self.event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
            )
        out.append(self.event("content_block_stop", {"type": "content_block_stop", "index": 0}))
        out.append(
            self.event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"input_tokens": usage.prompt, "output_tokens": usage.completion},
                },
            )
        )
        out.append(self.event("message_stop", {"type": "message_stop"}))
        return out

    def event(self, name: str, obj: Any) -> bytes:
        return b"event: " + name.encode() + b"\ndata: " + _dumps(obj) + b"\n\n"

    def frame(self, obj: Any) -> bytes:
        return b"data: " + _dumps(obj) + b"\n\n"

    def error(self, status: int, fields: dict[str, Any]) -> Any:
        error: dict[str, Any] = {
            "type": fields.get("type", "invalid_request_error"),
            "message": fields["message"],
        }
        for name in ("code", "param"):
            if fields.get(name) is not None:
                error[name] = fields[name]
        if "nested" in fields:
            error["details"] = fields["nested"]
        body: dict[str, Any] = {"type": "error", "error": error}
        if "request_id" in fields:
            body["request_id"] = fields["request_id"]
        return body

    def stream_error(self, fields: dict[str, Any]) -> bytes:
        return self.event("error", self.error(500, fields))


class _Gemini:
    name = "gemini"
    sse_end = b"\r\n\r\n"

    def answer(self, req: HostileRequest, usage: _Usage) -> Any:
        if req.endpoint == "countTokens":
            return {"totalTokens": usage.prompt}
        if req.endpoint in ("batchEmbedContents", "embedContent"):
            body = req.json()
            requests = body.get("requests") if isinstance(body, dict) else None
            count = len(requests) if isinstance(requests, list) else 1
            if req.endpoint == "embedContent":
                return {"embedding": {"values": [0.25, -0.5, 0.75]}}
            return {"embeddings": [{"values": [0.25, -0.5, 0.75]} for _ in range(count)]}
        return self.chunk(req, _TEXT, "STOP", usage)

    def chunk(self, req: HostileRequest, text: str, finish: str | None, usage: _Usage | None) -> Any:
        candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        out: dict[str, Any] = {"candidates": [candidate], "modelVersion": req.model or "hostile-model"}
        if usage is not None:
            out["usageMetadata"] = {
                "promptTokenCount": usage.prompt,
                "candidatesTokenCount": usage.completion,
                "totalTokenCount": usage.total,
            }
        out["responseId"] = "hostile"
        return out

    def events(self, req: HostileRequest, usage: _Usage) -> list[bytes]:
        pieces = _pieces(_TEXT)
        return [
            self.frame(
                self.chunk(
                    req,
                    piece,
                    "STOP" if n == len(pieces) - 1 else None,
                    usage if n == len(pieces) - 1 else None,
                )
            )
            for n, piece in enumerate(pieces)
        ]

    def frame(self, obj: Any) -> bytes:
        return b"data: " + _dumps(obj) + b"\r\n\r\n"

    def error(self, status: int, fields: dict[str, Any]) -> Any:
        details: list[Any] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": fields.get("code") or "INTERNAL",
                "domain": fields.get("param") or "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
        ]
        if "retry_delay" in fields:
            details.append(
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": fields["retry_delay"]}
            )
        if "nested" in fields:
            details.append({"@type": "type.googleapis.com/google.rpc.Help", "links": fields["nested"]})
            details[0]["metadata"] = {"key": fields["nested"][0]["description"]}
        return {
            "error": {
                "code": status,
                "message": fields["message"],
                "status": fields.get("type", "INVALID_ARGUMENT"),
                "details": details,
            }
        }

    def stream_error(self, fields: dict[str, Any]) -> bytes:
        # Gemini sends a raw (pretty-printed, not SSE-framed) error object mid-stream
        return json.dumps(self.error(500, fields), indent=2).encode() + b"\n"


def _event_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message (string headers)."""
    head = b""
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        head += struct.pack("!B", len(raw_name)) + raw_name
        head += struct.pack("!BH", 7, len(raw_value)) + raw_value
    prelude = struct.pack("!II", 16 + len(head) + len(payload), len(head))
    message = prelude + struct.pack("!I", binascii.crc32(prelude)) + head + payload
    return message + struct.pack("!I", binascii.crc32(message))


class _Bedrock:
    """Amazon Bedrock's Converse API; streams are AWS event streams (the ``sse_*`` tails are then
    bytes that are no event-stream message)."""

    name = "bedrock"
    sse_end = b"\n\n"

    def answer(self, req: HostileRequest, usage: _Usage) -> Any:
        return {
            "output": {"message": {"role": "assistant", "content": [{"text": _TEXT}]}},
            "stopReason": "end_turn",
            "usage": self.usage(usage),
            "metrics": {"latencyMs": 1},
        }

    def usage(self, usage: _Usage) -> Any:
        return {"inputTokens": usage.prompt, "outputTokens": usage.completion, "totalTokens": usage.total}

    def event(self, name: str, obj: Any) -> bytes:
        headers = {":event-type": name, ":content-type": "application/json", ":message-type": "event"}
        return _event_frame(headers, _dumps(obj))

    def events(self, req: HostileRequest, usage: _Usage) -> list[bytes]:
        out = [self.event("messageStart", {"role": "assistant"})]
        out.extend(
            self.event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}})
            for piece in _pieces(_TEXT)
        )
        out.append(self.event("contentBlockStop", {"contentBlockIndex": 0}))
        out.append(self.event("messageStop", {"stopReason": "end_turn"}))
        out.append(self.event("metadata", {"usage": self.usage(usage), "metrics": {"latencyMs": 1}}))
        return out

    def frame(self, obj: Any) -> bytes:
        return self.event("contentBlockDelta", obj)

    def error(self, status: int, fields: dict[str, Any]) -> Any:
        return {**{k: v for k, v in fields.items() if k != "message"}, "message": fields["message"]}

    def stream_error(self, fields: dict[str, Any]) -> bytes:
        headers = {
            ":exception-type": "internalServerException",
            ":content-type": "application/json",
            ":message-type": "exception",
        }
        return _event_frame(headers, _dumps(self.error(500, fields)))


_BEDROCK = re.compile(r"^(?:.*)/model/([^/]+)/(converse|converse-stream|invoke|invoke-with-response-stream)$")
"""Amazon Bedrock Runtime: the model id is one path segment."""

_VERTEX_CLAUDE = re.compile(r"/publishers/anthropic/models/[^/]+:(?:rawPredict|streamRawPredict)$")
"""Claude on Vertex AI: the Messages API at the model's URL."""

_Dialect = _OpenAI | _Anthropic | _Gemini | _Bedrock

_DIALECTS: dict[str, _Dialect] = {d.name: d for d in (_OpenAI(), _Anthropic(), _Gemini(), _Bedrock())}
_OTHER = {"openai": "anthropic", "anthropic": "openai", "gemini": "openai", "bedrock": "openai"}
_BASE_PATHS = {"openai": "/v1", "anthropic": "", "gemini": "/v1beta", "bedrock": ""}
DIALECTS = tuple(_BASE_PATHS)
"""The wire formats the server speaks (``HostileUpstream.base_url`` takes each)."""


def _classify(path: str) -> tuple[str | None, str | None]:
    """(dialect, endpoint) of a raw path."""
    bedrock = _BEDROCK.match(path)
    if bedrock:
        return "bedrock", bedrock.group(2)
    if _VERTEX_CLAUDE.search(path):
        return "anthropic", "messages"
    method = _GEMINI_METHOD.search(path)
    if method:
        return "gemini", method.group(1)
    for suffix, endpoint in (
        ("/chat/completions", "chat"),
        ("/completions", "completions"),
        ("/embeddings", "embeddings"),
    ):
        if path.endswith(suffix):
            return "openai", endpoint
    if path.endswith("/messages/count_tokens"):
        return "anthropic", "count_tokens"
    if path.endswith("/messages"):
        return "anthropic", "messages"
    return None, None


def _api_key(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    for name in ("x-api-key", "x-goog-api-key", "api-key"):
        value = request.headers.get(name)
        if value:
            return value
    return request.query.get("key") or None


# --- the server -----------------------------------------------------------------------------------


class HostileUpstream(LoopbackServer):
    """A scripted hostile upstream (see the module docstring); ``async with`` or ``running()``."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[HostileRequest] = []
        """Every request received, in arrival order."""
        self._queue: list[_Pending] = []
        self._lock = threading.Lock()

    # --- scripting ----------------------------------------------------------------------------

    def script(self, hostile: Hostile) -> None:
        """Queue a hostile answer for the next matching request(s); first queued, first used."""
        if hostile.times == 0:
            return
        with self._lock:
            self._queue.append(_Pending(hostile))

    def reset(self) -> None:
        """Forget queued acts and recorded requests."""
        with self._lock:
            self._queue.clear()
            self.requests.clear()

    @property
    def pending(self) -> int:
        """Queued acts not yet used up."""
        with self._lock:
            return len(self._queue)

    def _take(self, req: HostileRequest) -> Hostile | None:
        with self._lock:
            for pending in self._queue:
                item = pending.item
                if (
                    (item.key is not None and item.key != req.api_key)
                    or (item.model is not None and item.model != req.model)
                    or (item.path is not None and item.path not in req.path)
                    or (item.dialect is not None and item.dialect != req.dialect)
                    or ((item.act in STREAM_ACTS) and not req.stream)
                ):
                    continue
                if pending.remaining > 0:
                    pending.remaining -= 1
                    if pending.remaining == 0:
                        self._queue.remove(pending)
                return item
        return None

    # --- addresses ----------------------------------------------------------------------------

    def base_url(self, dialect: str = "openai") -> str:
        """The usual API root of ``dialect`` on this server (``/v1``, none, ``/v1beta``)."""
        return self.origin + _BASE_PATHS[dialect]

    def app(self) -> web.Application:
        """One catch-all route: every path of every dialect is answered by :meth:`_handle`."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    # --- answering ------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        target = request.raw_path
        path, _, query = target.partition("?")
        dialect, endpoint = _classify(path)
        req = HostileRequest(
            method=request.method,
            target=target,
            path=path,
            query=query,
            headers={k.lower(): ", ".join(request.headers.getall(k)) for k in request.headers},
            body=body,
            dialect=dialect,
            endpoint=endpoint,
            api_key=_api_key(request),
            started=time.monotonic(),
        )
        parsed = req.json()
        if dialect == "bedrock":  # the model is a path segment
            req.model = unquote(path.rsplit("/", 2)[-2])
            req.stream = path.endswith("-stream")
        elif dialect == "gemini" or _VERTEX_CLAUDE.search(path):  # the model is in the URL
            req.model = unquote(path[: path.rfind(":")].rsplit("/", 1)[-1])
            req.stream = endpoint == "streamGenerateContent" or path.endswith(":streamRawPredict")
        elif isinstance(parsed, dict):
            model = parsed.get("model")
            req.model = model if isinstance(model, str) else None
            req.stream = parsed.get("stream") is True
        self.requests.append(req)
        if dialect is None:
            req.act = "unknown_path"
            return web.json_response(
                {"error": {"message": f"no such path {path}", "type": "invalid_request_error"}}, status=404
            )
        hostile = self._take(req) or Hostile("valid")
        req.act = hostile.act
        return await self._answer(request, req, hostile, _DIALECTS[dialect])

    async def _answer(
        self,
        request: web.Request,
        req: HostileRequest,
        hostile: Hostile,
        dialect: _Dialect,
    ) -> web.StreamResponse:
        act = hostile.act
        if act in ("valid", "usage", "ratelimit_headers"):
            usage = _Usage(hostile.tokens, hostile.tokens) if act == "usage" else _Usage()
            headers = _absurd_limits() if act == "ratelimit_headers" else {}
            if req.stream:
                return await self._stream(request, dialect.events(req, usage), dialect, hostile, headers)
            return _json(200, dialect.answer(req, usage), headers)
        if act == "redirect":
            status = hostile.status or 302
            location = hostile.value if hostile.value is not None else METADATA_URL
            body = _dumps(dialect.answer(req, _Usage()))
            return web.Response(
                status=status, body=body, headers={"Location": location, "Content-Type": "application/json"}
            )
        if act in _WHOLE_GARBAGE:
            content_type = "text/event-stream" if req.stream else "application/json"
            return web.Response(
                status=200, body=_garbage(act, req, hostile, dialect), headers={"Content-Type": content_type}
            )
        if act == "wrong_content_type":
            return _json(200, dialect.answer(req, _Usage()), {})
        if act.startswith("sse_"):
            return await self._stream(request, dialect.events(req, _Usage()), dialect, hostile, {})
        if act.startswith("echo_key"):
            return _echo(req, hostile, dialect)
        if act in ("retry_after", "retry_after_ms"):
            return _retry(req, hostile, dialect)
        raise AssertionError(f"act {act!r} has no answer")  # pragma: no cover - ACTS is closed

    async def _stream(
        self,
        request: web.Request,
        events: list[bytes],
        dialect: _Dialect,
        hostile: Hostile,
        headers: dict[str, str],
    ) -> web.StreamResponse:
        act = hostile.act
        resp = web.StreamResponse(
            status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **headers}
        )
        await resp.prepare(request)
        after = 0 if act == "sse_invalid_first" else max(0, hostile.after)
        if act.startswith("sse_"):
            events = events[:after]
        for n, event in enumerate(events):
            if n and hostile.chunk_delay:
                await asyncio.sleep(hostile.chunk_delay)
            await resp.write(event)
        if hostile.chunk_delay and act.startswith("sse_"):
            await asyncio.sleep(hostile.chunk_delay)
        tail = _stream_tail(act, hostile, dialect, request)
        if tail is None:  # sse_cut: the connection goes away with no end
            if request.transport is not None:
                request.transport.close()
            return resp
        if tail:
            await resp.write(tail)
        await resp.write_eof()
        return resp


# --- the hostile bodies ---------------------------------------------------------------------------


def _json(status: int, obj: Any, headers: dict[str, str]) -> web.Response:
    return web.Response(
        status=status, body=_dumps(obj), headers={"Content-Type": "application/json", **headers}
    )


def _garbage(act: str, req: HostileRequest, hostile: Hostile, dialect: _Dialect) -> bytes:
    if act == "html":
        return _HTML.encode()
    if act == "random_bytes":
        noise = random.Random(hostile.size or 13).randbytes(4096)
        return noise[:2048] + MARKER.encode() + noise[2048:]
    if act == "empty":
        return b""
    if act == "truncated_json":
        whole = _dumps(dialect.answer(req, _Usage()))
        return whole[: len(whole) // 2]
    if act == "json_array":
        return b"[]"
    if act == "wrong_object":
        return _dumps({"foo": 1, "marker": MARKER})
    if act == "other_dialect":
        return _dumps(_DIALECTS[_OTHER[dialect.name]].answer(req, _Usage()))
    if act == "error_in_200":
        return _dumps(
            dialect.error(200, {"message": "internal failure, reported in a 200", "type": "server_error"})
        )
    if act == "deep_json":
        depth = hostile.size or 100_000
        return b"[" * depth + b"]" * depth
    size = hostile.size or _BIG  # huge_body
    head = b'{"id":"' + MARKER.encode() + b'","padding":"'
    return head + b"x" * max(0, size - len(head) - 2) + b'"}'


def _stream_tail(act: str, hostile: Hostile, dialect: _Dialect, request: web.Request) -> bytes | None:
    """What follows the valid events of a stream act (``None``: cut the connection)."""
    if act in ("valid", "usage", "ratelimit_headers"):
        return b""
    if act in ("sse_invalid_first", "sse_invalid_after"):
        return _HTML.encode() + b"\n\n"
    if act == "sse_non_json":
        return b"data: " + MARKER.encode() + b" this is not JSON" + dialect.sse_end
    if act == "sse_wrong_shape":
        return b"data: []" + dialect.sse_end
    if act == "sse_huge_frame":
        return b"data: " + MARKER.encode() + b"x" * (hostile.size or _BIG)
    if act == "sse_error_event":
        key = _api_key(request) or "no-key-was-sent"
        return dialect.stream_error(_echo_fields(key))
    return None  # sse_cut


def _echo_fields(key: str) -> dict[str, Any]:
    """Error fields with ``key`` in every string, nested ones included."""
    return {
        "message": f"Incorrect API key provided: {key}. You can find your API key at https://x.example/{key}",
        "type": key,
        "code": key,
        "param": key,
        "request_id": key,
        "nested": [{"url": f"https://x.example/?key={key}", "description": key, "key": key}],
    }


def _fragment_fields(key: str) -> dict[str, Any]:
    """Error fields each holding a different piece (8 characters or more) of ``key``."""
    n = len(key)
    head, tail, middle = key[: max(8, n // 2)], key[-max(8, n // 2) :], key[n // 4 : n // 4 + max(8, n // 2)]
    masked = key[:8] + "*" * max(0, n - 12) + key[-4:]
    return {
        "message": f"Incorrect API key provided: {masked}",
        "type": head,
        "code": tail,
        "param": middle,
        "request_id": key[1:],
        "nested": [{"url": f"https://x.example/?k={key[:-1]}", "description": key[2:], "key": head}],
    }


def _echo(req: HostileRequest, hostile: Hostile, dialect: _Dialect) -> web.Response:
    key = req.api_key or "no-key-was-sent"
    status = hostile.status or 400
    if hostile.act == "echo_key_straddle":
        start = 300 - len(key) // 2
        message = ("The request was refused. " + "x" * 300)[:start] + key + " and some more words after it."
        fields: dict[str, Any] = {"message": message}
    elif hostile.act == "echo_key_fragments":
        fields = _fragment_fields(key)
    else:
        fields = _echo_fields(key)
    headers = {"x-request-id": key, "www-authenticate": f"Bearer realm={key}", "x-echo-key": key}
    return _json(status, dialect.error(status, fields), headers)


def _retry(req: HostileRequest, hostile: Hostile, dialect: _Dialect) -> web.Response:
    status = hostile.status or 429
    value = hostile.value if hostile.value is not None else RETRY_AFTER_VALUES[0]
    name = "retry-after" if hostile.act == "retry_after" else "retry-after-ms"
    fields = {
        "message": f"Rate limit reached. Please try again in {value}s. Please retry in {value}s.",
        "type": "rate_limit_error" if dialect.name == "anthropic" else "requests",
        "code": "rate_limit_exceeded" if dialect.name == "openai" else None,
        "retry_delay": f"{value}s",
    }
    if dialect.name == "gemini":
        fields["type"] = "RESOURCE_EXHAUSTED"
    return _json(status, dialect.error(status, fields), {name: value})


def _absurd_limits() -> dict[str, str]:
    """Rate-limit headers of OpenAI and Anthropic with negative, absurd and non-numeric values."""
    return {
        "x-ratelimit-limit-requests": "-5",
        "x-ratelimit-limit-tokens": "99999999999999999999999999",
        "x-ratelimit-remaining-requests": "-1000000",
        "x-ratelimit-remaining-tokens": "nan",
        "x-ratelimit-reset-requests": "99999999h",
        "x-ratelimit-reset-tokens": "-5s",
        "anthropic-ratelimit-requests-limit": "-1",
        "anthropic-ratelimit-requests-remaining": "-100",
        "anthropic-ratelimit-requests-reset": "9999-12-31T23:59:59Z",
        "anthropic-ratelimit-tokens-limit": "1e400",
        "anthropic-ratelimit-tokens-remaining": "99999999999999999999999999",
        "anthropic-ratelimit-tokens-reset": "yesterday",
        "anthropic-ratelimit-input-tokens-remaining": "-1",
        "anthropic-ratelimit-output-tokens-remaining": "-1",
    }
