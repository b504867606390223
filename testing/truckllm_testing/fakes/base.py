"""Shared machinery of the fake upstream servers.

A fake is a real aiohttp server on ``127.0.0.1`` that speaks one provider's wire
format.  This module holds what the three fakes share: the scripting types
(:class:`Fault`, :class:`Reply`, :class:`ToolCall`), the record of each request
(:class:`Received`), the server life cycle and the request pipeline of
:class:`FakeUpstream`.

The pipeline for every request is:

1. record it in :attr:`FakeUpstream.requests`;
2. authenticate (the provider's own 401/400/403 answer on a bad or missing key);
3. parse the JSON body and validate it against the provider's contract; every
   problem is appended to :attr:`FakeUpstream.violations` and, when ``strict``,
   answered with a 400 in the provider's error shape;
4. take the first matching :class:`Fault`, if any (validation comes first, so an
   invalid request never uses up a fault);
5. answer: the first matching :class:`Reply`, or a deterministic default.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
import math
import re
import secrets
import string
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, NamedTuple, TypeGuard, TypeVar

from aiohttp import web

from truckllm_testing.loopback import LoopbackServer

__all__ = [
    "Answer",
    "FakeUpstream",
    "Fault",
    "Problem",
    "Received",
    "Reply",
    "Responder",
    "Route",
    "ToolCall",
    "count_words",
    "deterministic_vector",
    "go_duration",
    "rfc3339",
    "split_json",
    "split_text",
]


# --------------------------------------------------------------------------- scripting


@dataclass
class Fault:
    """A failure or slowdown applied to the next matching request(s).

    With ``status`` (or a ``kind`` alone) the fake answers with that HTTP status
    and the provider's own error body.  ``delay``, ``chunk_delay``,
    ``drop_after`` and ``error_after`` work without a status: the request is
    answered normally, only slower or cut short.  When ``error_after`` or
    ``drop_after`` is set, ``kind`` only picks the flavour of the mid-stream
    error; give ``status`` explicitly for an HTTP error.
    """

    status: int | None = None
    """Answer with this HTTP status and the provider's own error body."""
    kind: str | None = None
    """Provider error flavour: ``rate_limit``, ``overloaded``, ``server``, ``auth``,
    ``bad_request``, ``context_length``, ``spend_limit``, ``quota_per_day``,
    ``not_found``, ``permission``, ``timeout`` (each fake lists what it knows)."""
    retry_after: float | None = None
    """Seconds; sets ``retry-after`` (OpenAI, Anthropic) or ``RetryInfo.retryDelay`` (Gemini)."""
    delay: float = 0.0
    """Seconds to wait before sending the response headers (a stall before the first byte)."""
    chunk_delay: float | None = None
    """Seconds between stream events; overrides the fake's ``chunk_delay``."""
    drop_after: int | None = None
    """Streams: close the TCP connection after this many events, with no terminator.
    Non-streaming requests: close the connection without answering."""
    error_after: int | None = None
    """Streams: after this many events send the provider's mid-stream error and end.
    Non-streaming requests: answer with the same error as an HTTP error."""
    times: int = 1
    """How many matching requests it applies to; ``-1`` means forever."""
    key: str | None = None
    """Only requests made with this API key."""
    model: str | None = None
    """Only requests for this model."""
    path: str | None = None
    """Only requests whose URL path contains this text, e.g. ``"chat/completions"``."""


@dataclass
class ToolCall:
    """A tool call for a scripted :class:`Reply`."""

    name: str
    """The function name."""
    arguments: dict[str, Any] = field(default_factory=dict)
    """The arguments, as a JSON object."""
    id: str | None = None
    """Call id; generated in the provider's format if not given (Gemini sends none)."""


@dataclass
class Reply:
    """A scripted answer for the next matching request(s).

    ``text=None`` means: the default echo text if there are no ``tool_calls``,
    no text at all otherwise.  ``text=""`` means no text.
    """

    text: str | None = None
    """Answer text; see the class docstring for ``None``."""
    tool_calls: list[ToolCall] = field(default_factory=list)
    """Tool calls, streamed as the provider does (split arguments, or whole parts for Gemini)."""
    thinking: str | None = None
    """Reasoning text: an Anthropic thinking block with signature, a Gemini thought
    part, OpenAI reasoning tokens only."""
    finish: str | None = None
    """Provider-native stop reason override, e.g. ``"max_tokens"``, ``"SAFETY"``, ``"refusal"``."""
    prompt_tokens: int | None = None
    """Total input tokens, cached included (Anthropic ``input_tokens`` is this minus cache)."""
    completion_tokens: int | None = None
    """Output tokens, reasoning included (Gemini ``candidatesTokenCount`` is this minus thoughts)."""
    cached_tokens: int | None = None
    """Cache-read input tokens."""
    reasoning_tokens: int | None = None
    """Reasoning tokens (default: words of ``thinking``)."""
    cache_write_tokens: int | None = None
    """Anthropic ``cache_creation_input_tokens``."""
    blocked: bool = False
    """Gemini: answer with ``promptFeedback.blockReason`` (``finish`` or ``"SAFETY"``) and no candidates."""
    times: int = 1
    """How many matching requests it applies to; ``-1`` means forever."""
    key: str | None = None
    """Only requests made with this API key."""
    model: str | None = None
    """Only requests for this model."""


@dataclass
class Received:
    """One request the fake received, and what became of it."""

    method: str
    """HTTP method."""
    path: str
    """URL path, e.g. ``/v1/chat/completions``."""
    query: dict[str, str]
    """Query parameters (last value wins)."""
    headers: dict[str, str]
    """Request headers, lower-case names."""
    body: bytes
    """Raw request body."""
    json: Any = None
    """Parsed JSON body, or ``None``."""
    api_key: str | None = None
    """The API key the request carried."""
    model: str | None = None
    """Model named by the request (body or URL)."""
    stream: bool = False
    """Whether a streamed answer was asked for."""
    started: float = 0.0
    """``time.monotonic()`` when the request arrived."""
    finished: float | None = None
    """``time.monotonic()`` when the handler finished (or was cut off)."""
    disconnected: bool = False
    """The client went away before the response was complete."""
    dropped: bool = False
    """The fake closed the connection on purpose (``Fault.drop_after``)."""
    status: int | None = None
    """HTTP status answered, if any."""
    violations: list[str] = field(default_factory=list)
    """Contract violations found in this request."""
    fault: Fault | None = None
    """The fault applied to it."""
    reply: Reply | None = None
    """The scripted reply used for it."""


class Problem(NamedTuple):
    """One contract violation: the provider's error message and the parameter at fault."""

    message: str
    param: str | None = None


@dataclass
class Answer:
    """A provider-neutral answer that each fake renders in its own format."""

    text: str
    thinking: str | None
    tool_calls: list[ToolCall]
    reason: str
    """``stop``, ``stop_sequence``, ``length`` or ``tool_calls``."""
    finish: str | None
    """Native override from :attr:`Reply.finish`."""
    stop_sequence: str | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    cache_write_tokens: int
    blocked: bool = False


@dataclass
class Route:
    """One endpoint of a fake."""

    method: str
    path: str
    handler: Callable[[Ctx], Awaitable[web.StreamResponse]]
    validate: Callable[[Ctx], list[Problem]] | None = None
    needs_json: bool = True
    reader: Callable[[web.Request], Awaitable[Any]] | None = None
    """Reads the body as it arrives instead of whole (large uploads); what it returns is the
    request's ``json`` and ``ctx.body`` (``body`` stays empty)."""


@dataclass
class Ctx:
    """Per-request state passed to the provider handlers."""

    request: web.Request
    rec: Received
    body: Any = None
    fault: Fault | None = None
    reply: Reply | None = None
    reply_taken: bool = False
    tokens: int = 0
    """Tokens this request used, for the rate-limit headers."""


Responder = Callable[[Received], Reply | None]
"""A function answering a request no scripted reply matched (see :attr:`FakeUpstream.responder`)."""

_T = TypeVar("_T", Fault, Reply)


class _Pending(Generic[_T]):
    """A queued fault or reply with its remaining use count."""

    def __init__(self, item: _T) -> None:
        self.item: _T = item
        self.remaining = item.times


# --------------------------------------------------------------------------- helpers

_WORD = re.compile(r"\S+")
_ALNUM = string.ascii_letters + string.digits


def count_words(*texts: str) -> int:
    """Number of whitespace-separated words in all ``texts``."""
    return sum(len(t.split()) for t in texts)


def split_text(text: str, pieces: int) -> list[str]:
    """Split ``text`` into at most ``pieces`` non-empty parts of about equal length."""
    if not text:
        return []
    pieces = max(1, min(pieces, len(text)))
    size, extra = divmod(len(text), pieces)
    out: list[str] = []
    pos = 0
    for i in range(pieces):
        end = pos + size + (1 if i < extra else 0)
        out.append(text[pos:end])
        pos = end
    return out


def split_json(text: str, pieces: int) -> list[str]:
    """Fragments of a JSON text as streamed by OpenAI/Anthropic: ``""`` first, then
    ``pieces`` parts cut mid-token."""
    return ["", *split_text(text, pieces)]


def rand_id(prefix: str, length: int) -> str:
    """A random id such as ``call_Ab3...``."""
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length))


def go_duration(seconds: float) -> str:
    """Format seconds as a Go duration (OpenAI ``x-ratelimit-reset-*``): ``12ms``, ``1.5s``, ``6m0s``."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds < 60:
        return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes}m{secs}s"


def fmt_seconds(seconds: float) -> str:
    """``retry-after`` value: an integer when whole, else a decimal (``"0.05"``)."""
    if float(seconds).is_integer():
        return str(int(seconds))
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


def rfc3339(after: float = 0.0) -> str:
    """An RFC 3339 UTC timestamp ``after`` seconds from now, as in Anthropic's reset headers."""
    moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=after)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def deterministic_vector(text: str, dims: int) -> list[float]:
    """A unit-length embedding of ``dims`` float32-exact values derived from ``text``."""
    raw: list[float] = []
    counter = 0
    while len(raw) < dims:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        for i in range(0, len(digest), 2):
            raw.append(int.from_bytes(digest[i : i + 2], "little") / 32767.5 - 1.0)
        counter += 1
    raw = raw[:dims]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    packed = struct.pack(f"<{dims}f", *(v / norm for v in raw))
    return list(struct.unpack(f"<{dims}f", packed))


def float32_base64(values: Sequence[float]) -> str:
    """Little-endian float32 bytes, base64-encoded (OpenAI ``encoding_format=base64``)."""
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


def cut_words(text: str, limit: int) -> str:
    """The first ``limit`` words of ``text``, original spacing kept."""
    if limit <= 0:
        return ""
    for n, match in enumerate(_WORD.finditer(text), start=1):
        if n == limit:
            return text[: match.end()]
    return text


def is_base64(data: str) -> bool:
    """Whether ``data`` is valid standard base64 (padding required)."""
    try:
        base64.b64decode(data, validate=True)
    except (ValueError, TypeError):
        return False
    return True


def jtype(value: Any) -> str:
    """JSON type name of a decoded value, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def is_number(value: Any) -> TypeGuard[int | float]:
    """A JSON number (not a boolean)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_int(value: Any) -> TypeGuard[int]:
    """A JSON integer (not a boolean)."""
    return isinstance(value, int) and not isinstance(value, bool)


# --------------------------------------------------------------------------- server


class FakeUpstream(LoopbackServer):
    """Base class of :class:`FakeOpenAI`, :class:`FakeAnthropic` and :class:`FakeGemini`.

    :param keys: API keys accepted; an empty collection accepts any non-empty key.
    :param chunks: number of pieces a streamed text (or tool-argument JSON) is cut into.
    :param chunk_delay: seconds between stream events.
    :param strict: answer contract violations with the provider's 400 (they are
        recorded in :attr:`violations` either way).
    :param models: models served by the list endpoint; when given, other models get
        the provider's 404.  ``None`` lists a default set and accepts any model.
    """

    provider: ClassVar[str] = ""
    """Short provider name."""
    base_path: ClassVar[str] = ""
    """Path prefix of :attr:`base_url`."""
    default_models: ClassVar[tuple[str, ...]] = ()
    """Models listed when ``models`` is not given."""
    json_indent: ClassVar[int | None] = None
    """Indentation of non-streamed JSON bodies (real APIs differ)."""
    error_json_indent: ClassVar[int | None] = None
    """Indentation of error bodies."""
    error_kinds: ClassVar[dict[str, int]] = {}
    """Fault kinds this fake knows, with their default HTTP status."""
    server_name: ClassVar[str] = "fake"
    """``Server`` response header."""
    json_content_type: ClassVar[str] = "application/json"
    """``Content-Type`` of JSON answers."""

    def __init__(
        self,
        keys: Collection[str] = ("test-key",),
        *,
        chunks: int = 3,
        chunk_delay: float = 0.0,
        strict: bool = True,
        models: Collection[str] | None = None,
    ) -> None:
        super().__init__()
        self.keys: frozenset[str] = frozenset(keys)
        """Accepted API keys."""
        self.chunks = chunks
        """Pieces per streamed text."""
        self.chunk_delay = chunk_delay
        """Seconds between stream events."""
        self.strict = strict
        """Answer violations with 400."""
        self.models: tuple[str, ...] | None = tuple(models) if models is not None else None
        """Models served, or ``None`` for any."""
        self.requests: list[Received] = []
        """Every request received, in arrival order."""
        self.violations: list[str] = []
        """Every contract violation seen, in order."""
        self.responder: Responder | None = None
        """Answers a generation request no scripted :class:`Reply` matched: called with the
        request's record, it returns the reply to use, or ``None`` for the default answer
        (e.g. :class:`~truckllm_testing.fakes.agent.AgentResponder` plays a coding agent's model)."""
        self._faults: list[_Pending[Fault]] = []
        self._replies: list[_Pending[Reply]] = []
        self._lock = threading.Lock()
        self._counters: dict[str, list[int]] = {}

    # ------------------------------------------------------------------ public API

    @property
    def base_url(self) -> str:
        """What a gateway config's provider ``base_url`` would be for this fake."""
        return self.origin + self.base_path

    @property
    def served_models(self) -> tuple[str, ...]:
        """Models listed by the models endpoint."""
        return self.models if self.models is not None else self.default_models

    def inject(self, fault: Fault) -> None:
        """Queue a fault for the next matching request(s); first queued, first used."""
        if fault.times == 0:
            return
        with self._lock:
            self._faults.append(_Pending(fault))

    def script(self, reply: Reply) -> None:
        """Queue a scripted reply for the next matching request(s); first queued, first used."""
        if reply.times == 0:
            return
        with self._lock:
            self._replies.append(_Pending(reply))

    def reset(self) -> None:
        """Forget requests, violations, queued faults and replies, and rate-limit counters."""
        with self._lock:
            self._faults.clear()
            self._replies.clear()
            self._counters.clear()
        self.requests.clear()
        self.violations.clear()

    @property
    def pending(self) -> int:
        """Number of queued faults and replies not yet used up."""
        with self._lock:
            return len(self._faults) + len(self._replies)

    def app(self) -> web.Application:
        """The provider's routes, then a catch-all for unknown paths."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        for route in self.routes():
            app.router.add_route(route.method, route.path, self._endpoint(route))
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        return app

    # ------------------------------------------------------------------ provider hooks

    def routes(self) -> list[Route]:
        """The provider's endpoints."""
        raise NotImplementedError

    def api_key(self, request: web.Request) -> str | None:
        """The API key a request carries."""
        raise NotImplementedError

    def auth_error(self, ctx: Ctx) -> web.Response | None:
        """The provider's answer to a missing or bad key (or header), or ``None``."""
        raise NotImplementedError

    def model_of(self, ctx: Ctx) -> str | None:
        """The model a request names."""
        body = ctx.body
        model = body.get("model") if isinstance(body, dict) else None
        return model if isinstance(model, str) else None

    def is_stream(self, ctx: Ctx) -> bool:
        """Whether the request asks for a stream."""
        return isinstance(ctx.body, dict) and ctx.body.get("stream") is True

    def error_body(
        self, ctx: Ctx, status: int, kind: str, message: str | None, param: str | None
    ) -> dict[str, Any]:
        """The provider's JSON error body."""
        raise NotImplementedError

    def error_headers(self, ctx: Ctx, status: int, kind: str, fault: Fault | None) -> dict[str, str]:
        """Extra headers of an error response (retry-after, rate limits...)."""
        return {}

    def stream_error(self, ctx: Ctx, kind: str | None, index: int) -> bytes:
        """The provider's mid-stream error bytes, sent after ``index`` events."""
        raise NotImplementedError

    def success_headers(self, ctx: Ctx) -> dict[str, str]:
        """Headers of a successful answer (request id, rate limits)."""
        return {}

    def bad_json(self, ctx: Ctx) -> web.Response:
        """The provider's answer to a body that is not JSON."""
        return self.error(ctx, 400, "bad_request", "invalid JSON body")

    def unknown_model(self, ctx: Ctx, model: str) -> web.Response:
        """The provider's 404 for a model it does not serve."""
        return self.error(ctx, 404, "not_found", None)

    def kind_for_status(self, status: int) -> str:
        """Default fault kind of an HTTP status."""
        for kind, code in self.error_kinds.items():
            if code == status:
                return kind
        if status >= 500:
            return "server"
        return "bad_request"

    # ------------------------------------------------------------------ helpers for providers

    def dumps(self, obj: Any, indent: int | None = None) -> bytes:
        """Encode JSON the way this provider does."""
        if indent is None:
            return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
        return json.dumps(obj, ensure_ascii=False, indent=indent).encode()

    def json_response(self, ctx: Ctx, obj: Any, status: int = 200) -> web.Response:
        """A successful JSON answer with the provider's success headers."""
        headers = {
            "Content-Type": self.json_content_type,
            "Server": self.server_name,
            **self.success_headers(ctx),
        }
        return web.Response(status=status, body=self.dumps(obj, self.json_indent), headers=headers)

    def error(
        self,
        ctx: Ctx,
        status: int,
        kind: str,
        message: str | None,
        param: str | None = None,
        fault: Fault | None = None,
    ) -> web.Response:
        """An error answer in the provider's shape."""
        body = self.error_body(ctx, status, kind, message, param)
        headers = {
            "Content-Type": self.json_content_type,
            "Server": self.server_name,
            **self.error_headers(ctx, status, kind, fault),
        }
        return web.Response(status=status, body=self.dumps(body, self.error_json_indent), headers=headers)

    def take_reply(self, ctx: Ctx) -> Reply | None:
        """Take the first scripted reply matching this request, else ask :attr:`responder`
        (once per request)."""
        if not ctx.reply_taken:
            ctx.reply_taken = True
            reply = self._take(self._replies, ctx)
            if reply is None and self.responder is not None:
                reply = self.responder(ctx.rec)
            ctx.reply = ctx.rec.reply = reply
        return ctx.reply

    def build_answer(
        self,
        ctx: Ctx,
        *,
        texts: Sequence[str],
        prompt: str,
        max_tokens: int | None = None,
        stops: Sequence[str] = (),
        id_prefix: str = "call_",
        id_length: int = 24,
        tool_ids: bool = True,
    ) -> Answer:
        """Build the answer to a generation request from the scripted reply or the default.

        :param texts: every text of the request, for the prompt token count.
        :param prompt: the last user text, echoed by the default answer.
        :param max_tokens: the request's output limit (words); longer text is cut.
        :param stops: stop sequences; text is cut before the first one found.
        """
        reply = self.take_reply(ctx)
        echo = "echo: " + prompt[:200]
        if reply is None:
            text, thinking, calls = echo, None, []
        else:
            calls = list(reply.tool_calls)
            text = reply.text if reply.text is not None else ("" if calls else echo)
            thinking = reply.thinking
        reason = "tool_calls" if calls else "stop"
        stop_sequence: str | None = None
        if not calls:
            found = [(text.find(s), s) for s in stops if s and s in text]
            if found:
                pos, stop_sequence = min(found)
                text = text[:pos]
                reason = "stop_sequence"
            if max_tokens is not None and count_words(text) > max_tokens:
                text = cut_words(text, max_tokens)
                reason, stop_sequence = "length", None
        if tool_ids:
            calls = [ToolCall(c.name, c.arguments, c.id or rand_id(id_prefix, id_length)) for c in calls]
        reasoning = count_words(thinking or "")
        tool_words = sum(count_words(c.name, json.dumps(c.arguments)) for c in calls)
        usage = {
            "prompt": count_words(*texts) + 1,
            "reasoning": reasoning,
            "completion": max(1, count_words(text) + reasoning + tool_words),
            "cached": 0,
            "write": 0,
        }
        if reply is not None:
            for name, value in (
                ("prompt", reply.prompt_tokens),
                ("reasoning", reply.reasoning_tokens),
                ("completion", reply.completion_tokens),
                ("cached", reply.cached_tokens),
                ("write", reply.cache_write_tokens),
            ):
                if value is not None:
                    usage[name] = value
        return Answer(
            text=text,
            thinking=thinking,
            tool_calls=calls,
            reason=reason,
            finish=reply.finish if reply is not None else None,
            stop_sequence=stop_sequence,
            prompt_tokens=usage["prompt"],
            completion_tokens=usage["completion"],
            cached_tokens=usage["cached"],
            reasoning_tokens=usage["reasoning"],
            cache_write_tokens=usage["write"],
            blocked=reply.blocked if reply is not None else False,
        )

    def count_request(self, key: str | None, tokens: int) -> tuple[int, int]:
        """Count a successful request for ``key``; returns (requests, tokens) used so far."""
        with self._lock:
            used = self._counters.setdefault(key or "", [0, 0])
            used[0] += 1
            used[1] += tokens
            return used[0], used[1]

    def usage_of(self, key: str | None) -> tuple[int, int]:
        """Requests and tokens counted so far for ``key``."""
        with self._lock:
            used = self._counters.get(key or "", [0, 0])
            return used[0], used[1]

    async def send_stream(
        self,
        ctx: Ctx,
        events: Sequence[bytes],
        *,
        content_type: str,
        terminator: bytes | None = None,
        prefix: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> web.StreamResponse:
        """Send ``events`` as a chunked body, applying the request's fault.

        ``prefix`` (Gemini's opening ``[``) is sent first and ``terminator`` (OpenAI
        ``[DONE]``, Gemini's closing ``]``) last; neither counts as an event for
        ``drop_after``/``error_after``.
        """
        fault = ctx.fault
        delay = fault.chunk_delay if fault and fault.chunk_delay is not None else self.chunk_delay
        resp = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": content_type,
                "Server": self.server_name,
                **self.success_headers(ctx),
                **(headers or {}),
            },
        )
        await resp.prepare(ctx.request)
        ctx.rec.status = 200
        if prefix is not None:
            await resp.write(prefix)
        for i, event in enumerate([*events, None]):
            if i and delay:
                await asyncio.sleep(delay)
            if (
                fault is not None
                and fault.drop_after is not None
                and (event is None or i >= fault.drop_after)
            ):
                return self._drop(ctx, resp)
            if (
                fault is not None
                and fault.error_after is not None
                and (event is None or i >= fault.error_after)
            ):
                await resp.write(self.stream_error(ctx, fault.kind, i))
                await resp.write_eof()
                return resp
            if event is None:
                break
            await resp.write(event)
        if terminator is not None:
            await resp.write(terminator)
        transport = ctx.request.transport
        if transport is None or transport.is_closing():
            ctx.rec.disconnected = True
        await resp.write_eof()
        return resp

    # ------------------------------------------------------------------ internals

    def _take(self, queue: list[_Pending[_T]], ctx: Ctx) -> _T | None:
        rec = ctx.rec
        with self._lock:
            for pending in queue:
                item = pending.item
                if item.key is not None and item.key != rec.api_key:
                    continue
                if item.model is not None and item.model != rec.model:
                    continue
                if isinstance(item, Fault) and item.path is not None and item.path not in rec.path:
                    continue
                if pending.remaining > 0:
                    pending.remaining -= 1
                    if pending.remaining == 0:
                        queue.remove(pending)
                return item
        return None

    def _drop(self, ctx: Ctx, resp: web.StreamResponse) -> web.StreamResponse:
        ctx.rec.dropped = True
        transport = ctx.request.transport
        if transport is not None:
            transport.close()
        return resp

    def _endpoint(self, route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._serve(request, route)

        return handle

    async def _unknown(self, request: web.Request) -> web.StreamResponse:
        async def not_found(ctx: Ctx) -> web.StreamResponse:
            message = f"unknown endpoint {request.method} {request.path}"
            ctx.rec.violations.append(message)
            self.violations.append(message)
            return self.error(ctx, 404, "unknown_url", None)

        return await self._serve(request, Route(request.method, request.path, not_found, needs_json=False))

    async def _serve(self, request: web.Request, route: Route) -> web.StreamResponse:
        summary = await route.reader(request) if route.reader is not None else None
        body = await request.read() if route.reader is None else b""
        rec = Received(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            json=summary,
            started=time.monotonic(),
        )
        self.requests.append(rec)
        ctx = Ctx(request=request, rec=rec, body=summary)
        try:
            resp = await self._pipeline(ctx, route, body)
            if rec.status is None and not rec.dropped:
                rec.status = resp.status
            return resp
        except asyncio.CancelledError:
            if not rec.dropped:
                rec.disconnected = True
            raise
        except ConnectionResetError:  # a write after the client went away
            rec.disconnected = True
            raise asyncio.CancelledError from None
        finally:
            rec.finished = time.monotonic()

    async def _pipeline(self, ctx: Ctx, route: Route, body: bytes) -> web.StreamResponse:
        rec = ctx.rec
        rec.api_key = self.api_key(ctx.request)
        if route.needs_json and body:
            try:
                ctx.body = rec.json = json.loads(body)
            except ValueError:
                rec.violations.append("request body is not valid JSON")
                self.violations.append("request body is not valid JSON")
                return self.bad_json(ctx)
        rec.model = self.model_of(ctx)
        rec.stream = self.is_stream(ctx)
        denied = self.auth_error(ctx)
        if denied is not None:
            return denied
        problems = route.validate(ctx) if route.validate is not None else []
        if problems:
            rec.violations.extend(p.message for p in problems)
            self.violations.extend(p.message for p in problems)
            if self.strict:
                message, param = self.combine(problems)
                return self.error(ctx, 400, "bad_request", message, param)
        if self.models is not None and rec.model is not None and rec.model not in self.models:
            return self.unknown_model(ctx, rec.model)
        fault = ctx.fault = rec.fault = self._take(self._faults, ctx)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            status = fault.status
            if (
                status is None
                and fault.kind is not None
                and fault.error_after is None
                and fault.drop_after is None
            ):
                status = self.error_kinds.get(fault.kind, 500)
            if status is None and fault.error_after is not None and not rec.stream:
                status = self.error_kinds.get(fault.kind or "", 0) or self.stream_error_status()
            if status is not None:
                kind = fault.kind or self.kind_for_status(status)
                return self.error(ctx, status, kind, None, fault=fault)
            if fault.drop_after is not None and not rec.stream:
                rec.dropped = True
                if ctx.request.transport is not None:
                    ctx.request.transport.close()
                return web.Response(status=499)
        return await route.handler(ctx)

    def combine(self, problems: Sequence[Problem]) -> tuple[str, str | None]:
        """The message and param of the 400 answering ``problems`` (default: the first)."""
        return problems[0].message, problems[0].param

    def stream_error_status(self) -> int:
        """HTTP status used when a mid-stream error hits a non-streaming request."""
        return 500
