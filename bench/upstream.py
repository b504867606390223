"""A lean fake upstream for the load benchmark: OpenAI, Anthropic and Gemini wire formats.

Unlike :mod:`truckllm_testing.fakes` (faithful, validating, scriptable, slow), this server answers
every request with a fixed, pre-encoded answer, so that it costs a few microseconds per request
and never becomes what the benchmark measures. It is a raw :class:`asyncio.Protocol` HTTP/1.1
server (keep-alive, ``content-length`` request bodies) on uvloop, meant to run in its own process
pinned to its own CPU::

    python -m bench.upstream --port 9100 --latency 0 --interval 0.02 --chunks 10

Routes (``POST``; the answer's shape follows the path, ``"stream": true`` in the body asks for SSE):

- ``/v1/chat/completions``: OpenAI chat (``stream_options.include_usage`` honoured).
- ``/v1/responses``: OpenAI Responses (the stream is the real event sequence, numbered).
- ``/v1/messages``: Anthropic Messages.
- ``/v1beta/models/{model}:generateContent`` and ``:streamGenerateContent?alt=sse``: Gemini.
- ``GET /health``: ``ok``.

A model name may end in ``-i<ms>`` (stream interval) and/or ``-l<ms>`` (latency), e.g.
``gpt-4o-mini-i1000``: the gateway passes the deployment's model name on, so each benchmark alias
can pace its streams differently with one upstream process.

Streams: the headers, the opening events and the first content event leave after ``--latency``
seconds; every further content event ``--interval`` seconds after the previous one; the closing
events go with the last content event. A stream has ``max_tokens`` content events (Gemini:
``generationConfig.maxOutputTokens``, Responses: ``max_output_tokens``), or ``--chunks`` when the
request has none. Each content
event's text is ``t<ns> `` where ``<ns>`` is ``time.monotonic_ns()`` when the event was written:
CLOCK_MONOTONIC is shared by every process on the machine, so a client can tell each event's
transit time, through the gateway or not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import signal
import sys
import time
from typing import cast

import msgspec

__all__ = ["TEXT", "UpstreamOptions", "main", "openai_answer", "serve", "start"]

TEXT = "The quick brown fox jumps over the lazy dog while the benchmark counts every microsecond."
"""The fixed answer text of non-stream answers."""

_MAX_HEAD = 64 * 1024
_MAX_BODY = 64 * 1024 * 1024
_MAX_CHUNKS = 100_000


class UpstreamOptions(msgspec.Struct, kw_only=True, frozen=True):
    """How the fake upstream answers."""

    latency: float = 0.0
    """Seconds before a non-stream answer, or before a stream's headers and first event."""
    interval: float = 0.02
    """Seconds between a stream's content events."""
    chunks: int = 10
    """Content events per stream when the request names no ``max_tokens``."""


class _Config(msgspec.Struct):
    maxOutputTokens: int | None = None


class _StreamOptions(msgspec.Struct):
    include_usage: bool | None = None


class _Body(msgspec.Struct):
    model: str = "model"
    stream: bool = False
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    max_output_tokens: int | None = None
    stream_options: _StreamOptions | None = None
    generationConfig: _Config | None = None


_DECODER = msgspec.json.Decoder(_Body)
_SUFFIX = re.compile(r"-([il])(\d+)")
_TIMINGS: dict[str, tuple[float, float]] = {}
_encode_str = msgspec.json.Encoder().encode

# --------------------------------------------------------------------------- fixed answers

_OPENAI_HEADERS = (
    b"content-type: application/json\r\n"
    b"x-request-id: req_bench0000000000000000000000000000\r\n"
    b"openai-processing-ms: 1\r\nopenai-version: 2020-10-01\r\n"
    b"x-ratelimit-limit-requests: 10000\r\nx-ratelimit-limit-tokens: 30000000\r\n"
    b"x-ratelimit-remaining-requests: 9999\r\nx-ratelimit-remaining-tokens: 29999000\r\n"
    b"x-ratelimit-reset-requests: 6ms\r\nx-ratelimit-reset-tokens: 2ms\r\n"
)
_ANTHROPIC_HEADERS = (
    b"content-type: application/json\r\n"
    b"request-id: req_bench000000000000000000\r\n"
    b"anthropic-ratelimit-requests-limit: 4000\r\nanthropic-ratelimit-requests-remaining: 3999\r\n"
    b"anthropic-ratelimit-requests-reset: 2030-01-01T00:00:00Z\r\n"
    b"anthropic-ratelimit-tokens-limit: 2000000\r\nanthropic-ratelimit-tokens-remaining: 1999000\r\n"
    b"anthropic-ratelimit-tokens-reset: 2030-01-01T00:00:00Z\r\n"
)
_GEMINI_HEADERS = b"content-type: application/json; charset=UTF-8\r\nvary: Origin, X-Origin, Referer\r\n"

_OPENAI_USAGE = (
    b'{"prompt_tokens":42,"completion_tokens":16,"total_tokens":58,'
    b'"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},'
    b'"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,'
    b'"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}'
)


def _openai_answer(model: bytes) -> bytes:
    return (
        b'{"id":"chatcmpl-bench000000000000000000000","object":"chat.completion","created":1700000000,'
        b'"model":'
        + model
        + b',"choices":[{"index":0,"message":{"role":"assistant","content":'
        + _encode_str(TEXT)
        + b',"refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":'
        + _OPENAI_USAGE
        + b',"service_tier":"default","system_fingerprint":"fp_bench"}'
    )


def openai_answer(model: str) -> bytes:
    """The fixed OpenAI chat completion this upstream answers for ``model`` (nginx serves it too)."""
    return _openai_answer(_encode_str(model))


_RESPONSES_USAGE = (
    b'{"input_tokens":42,"input_tokens_details":{"cache_write_tokens":0,"cached_tokens":0},'
    b'"output_tokens":16,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":58}'
)
_RESPONSES_ID = b"resp_bench00000000000000000000000000000000000000000000"
_RESPONSES_MSG = b"msg_bench000000000000000000000000000000000000000000000"


def _responses_object(model: bytes, status: bytes, output: bytes, usage: bytes) -> bytes:
    """An OpenAI ``Response`` object with the fields the API echoes."""
    return (
        b'{"id":"' + _RESPONSES_ID + b'","object":"response","created_at":1700000000,"status":"' + status
        + b'","background":false,"completed_at":' + (b"1700000001" if status == b"completed" else b"null")
        + b',"error":null,"incomplete_details":null,"instructions":null,"max_output_tokens":null,'
        b'"max_tool_calls":null,"model":' + model + b',"output":' + output + b',"parallel_tool_calls":true,'
        b'"previous_response_id":null,"prompt_cache_key":null,"prompt_cache_retention":null,'
        b'"reasoning":{"effort":null,"summary":null},"safety_identifier":null,"service_tier":"default",'
        b'"store":true,"temperature":1.0,"text":{"format":{"type":"text"},"verbosity":"medium"},'
        b'"tool_choice":"auto","tools":[],"top_logprobs":0,"top_p":1.0,"truncation":"disabled","usage":'
        + usage + b',"user":null,"metadata":{}}'
    )  # fmt: skip


def _responses_message(status: bytes, text: bytes) -> bytes:
    return (
        b'{"id":"' + _RESPONSES_MSG + b'","type":"message","status":"' + status + b'","content":['
        + text + b'],"role":"assistant"}'
    )  # fmt: skip


def _responses_text(text: str) -> bytes:
    return b'{"type":"output_text","annotations":[],"logprobs":[],"text":' + _encode_str(text) + b"}"


def _responses_answer(model: bytes) -> bytes:
    output = b"[" + _responses_message(b"completed", _responses_text(TEXT)) + b"]"
    return _responses_object(model, b"completed", output, _RESPONSES_USAGE)


def _anthropic_answer(model: bytes) -> bytes:
    return (
        b'{"id":"msg_bench0000000000000000000","type":"message","role":"assistant","model":'
        + model
        + b',"content":[{"type":"text","text":'
        + _encode_str(TEXT)
        + b'}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":42,'
        b'"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":16,'
        b'"service_tier":"standard"}}'
    )


def _gemini_answer(model: bytes) -> bytes:
    return (
        b'{"candidates":[{"content":{"parts":[{"text":'
        + _encode_str(TEXT)
        + b'}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":42,'
        b'"candidatesTokenCount":16,"totalTokenCount":58},"modelVersion":'
        + model
        + b',"responseId":"bench000000000000000000"}'
    )


def _chunk(payload: bytes) -> bytes:
    """One HTTP/1.1 chunk."""
    return b"%x\r\n%s\r\n" % (len(payload), payload)


class _Stream:
    """The events of one stream in one dialect: ``opening`` (with the first content event),
    ``content(stamp)``, ``closing`` (sent with the last content event)."""

    __slots__ = ("_after", "_before", "_sep", "closing", "opening_prefix")

    def __init__(
        self, opening_prefix: bytes, before: bytes, after: bytes, closing: bytes, sep: bytes
    ) -> None:
        self.opening_prefix = opening_prefix
        self._before = before
        self._after = after
        self.closing = closing
        self._sep = sep

    def content(self) -> bytes:
        """A content event stamped with the time it is built (just before it is written)."""
        return self._before + b"t%d " % time.monotonic_ns() + self._after + self._sep


def _openai_stream(model: bytes, include_usage: bool) -> _Stream:
    head = (
        b'{"id":"chatcmpl-bench000000000000000000000","object":"chat.completion.chunk","created":1700000000,'
        b'"model":' + model + b',"service_tier":"default","system_fingerprint":"fp_bench","choices":'
    )
    tail = b',"usage":null}' if include_usage else b"}"
    role = (
        b"data: "
        + head
        + b'[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,'
        b'"finish_reason":null}]' + tail + b"\n\n"
    )
    before = b"data: " + head + b'[{"index":0,"delta":{"content":"'
    after = b'"},"logprobs":null,"finish_reason":null}]' + tail
    closing = (
        b"data: " + head + b'[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]' + tail + b"\n\n"
    )
    if include_usage:
        closing += b"data: " + head + b'[],"usage":' + _OPENAI_USAGE + b"}\n\n"
    closing += b"data: [DONE]\n\n"
    return _Stream(role, before, after, closing, b"\n\n")


class _NumberedStream(_Stream):
    """A stream whose every event carries the next ``sequence_number`` (OpenAI Responses)."""

    __slots__ = ("_next",)

    def __init__(
        self, opening_prefix: bytes, before: bytes, after: bytes, closing: bytes, sep: bytes, first: int
    ) -> None:
        super().__init__(opening_prefix, before, after, closing, sep)
        self._next = first

    def content(self) -> bytes:
        """A content event with its sequence number, stamped when built."""
        number = self._next
        self._next += 1
        return self._before % number + b"t%d " % time.monotonic_ns() + self._after + self._sep


def _responses_event(kind: bytes, number: int, fields: bytes) -> bytes:
    return b'event: %s\ndata: {"type":"%s","sequence_number":%d,%s}\n\n' % (kind, kind, number, fields)


def _responses_stream(model: bytes, chunks: int) -> _Stream:
    """created, in_progress, the message item and its part, ``chunks`` text deltas, then the closing
    events (text done, part done, item done, completed)."""
    started = _responses_object(model, b"in_progress", b"[]", b"null")
    where = b'"item_id":"' + _RESPONSES_MSG + b'","output_index":0'
    part = _responses_text("")
    opening = (
        _responses_event(b"response.created", 0, b'"response":' + started)
        + _responses_event(b"response.in_progress", 1, b'"response":' + started)
        + _responses_event(
            b"response.output_item.added",
            2,
            b'"output_index":0,"item":' + _responses_message(b"in_progress", b""),
        )
        + _responses_event(b"response.content_part.added", 3, where + b',"content_index":0,"part":' + part)
    )
    before = (
        b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
        b'"sequence_number":%d,' + where.replace(b"%", b"%%") + b',"content_index":0,"delta":"'
    )
    after = b'","logprobs":[],"obfuscation":"bench0"}'
    n = 4 + chunks
    text = _responses_text(TEXT)
    done = _responses_message(b"completed", text)
    usage = _RESPONSES_USAGE.replace(b'"output_tokens":16', b'"output_tokens":%d' % chunks)
    usage = usage.replace(b'"total_tokens":58', b'"total_tokens":%d' % (42 + chunks))
    closing = (
        _responses_event(
            b"response.output_text.done",
            n,
            where + b',"content_index":0,"text":' + _encode_str(TEXT) + b',"logprobs":[]',
        )
        + _responses_event(b"response.content_part.done", n + 1, where + b',"content_index":0,"part":' + text)
        + _responses_event(b"response.output_item.done", n + 2, b'"output_index":0,"item":' + done)
        + _responses_event(
            b"response.completed",
            n + 3,
            b'"response":' + _responses_object(model, b"completed", b"[" + done + b"]", usage),
        )
    )
    return _NumberedStream(opening, before, after, closing, b"\n\n", 4)


def _anthropic_stream(model: bytes, chunks: int) -> _Stream:
    opening = (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_bench0000000000000000000",'
        b'"type":"message","role":"assistant","model":' + model + b',"content":[],"stop_reason":null,'
        b'"stop_sequence":null,"usage":{"input_tokens":42,"cache_creation_input_tokens":0,'
        b'"cache_read_input_tokens":0,"output_tokens":1,"service_tier":"standard"}}}\n\n'
        b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        b'"content_block":{"type":"text","text":""}}\n\n'
        b'event: ping\ndata: {"type": "ping"}\n\n'
    )
    before = (
        b"event: content_block_delta\n"
        b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"'
    )
    after = b'"}}'
    closing = (
        b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
        b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn",'
        b'"stop_sequence":null},"usage":{"output_tokens":%d}}\n\n'
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n' % chunks
    )
    return _Stream(opening, before, after, closing, b"\n\n")


def _gemini_stream(model: bytes, chunks: int) -> _Stream:
    before = b'data: {"candidates":[{"content":{"parts":[{"text":"'
    after = (
        b'"}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":42,"totalTokenCount":42},'
        b'"modelVersion":' + model + b',"responseId":"bench000000000000000000"}'
    )
    closing = (
        b'data: {"candidates":[{"content":{"parts":[{"text":""}],"role":"model"},"finishReason":"STOP",'
        b'"index":0}],"usageMetadata":{"promptTokenCount":42,"candidatesTokenCount":%d,'
        b'"totalTokenCount":%d},"modelVersion":'
        % (chunks, 42 + chunks)
        + model
        + b',"responseId":"bench000000000000000000"}\r\n\r\n'
    )
    return _Stream(b"", before, after, closing, b"\r\n\r\n")


# --------------------------------------------------------------------------- the server


class _Conn(asyncio.Protocol):
    """One client connection: parse requests, answer them one at a time."""

    def __init__(self, options: UpstreamOptions, loop: asyncio.AbstractEventLoop) -> None:
        self.options = options
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.head: tuple[bytes, bytes, int, bool] | None = None  # method, target, length, close
        self.busy = False
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._process()

    def _process(self) -> None:
        while not self.busy and self.transport is not None:
            if self.head is None:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.buf) > _MAX_HEAD:
                        self._fail(b"431 Request Header Fields Too Large")
                    return
                lines = bytes(self.buf[:end]).split(b"\r\n")
                del self.buf[: end + 4]
                parts = lines[0].split(b" ")
                if len(parts) != 3:
                    self._fail(b"400 Bad Request")
                    return
                length, close = 0, parts[2] == b"HTTP/1.0"
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"transfer-encoding":
                        self._fail(b"501 Not Implemented")  # our clients send content-length
                        return
                    elif name == b"connection":
                        close = value.strip().lower() == b"close"
                if length > _MAX_BODY:
                    self._fail(b"413 Payload Too Large")
                    return
                self.head = (parts[0], parts[1], length, close)
            method, target, length, close = self.head
            if len(self.buf) < length:
                return
            body = bytes(self.buf[:length])
            del self.buf[:length]
            self.head = None
            self._answer(method, target, body, close)

    def _fail(self, status: bytes) -> None:
        assert self.transport is not None
        self.transport.write(b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        self.transport.close()

    def _timing(self, model: str) -> tuple[float, float]:
        """(latency, interval) for ``model``: the options, or its ``-l<ms>`` / ``-i<ms>`` suffixes."""
        found = _TIMINGS.get(model)
        if found is None:
            latency, interval = self.options.latency, self.options.interval
            for kind, ms in _SUFFIX.findall(model):
                if kind == "l":
                    latency = int(ms) / 1000
                else:
                    interval = int(ms) / 1000
            found = _TIMINGS[model] = (latency, interval)
        return found

    def _answer(self, method: bytes, target: bytes, body: bytes, close: bool) -> None:
        if method == b"GET":
            if target == b"/health":
                self._send(b"content-type: text/plain\r\n", b"ok", close)
            else:
                self._send(b"content-type: text/plain\r\n", b"not found", close, b"404 Not Found")
            return
        try:
            request = _DECODER.decode(body) if body else _Body()
        except msgspec.DecodeError:
            self._send(
                b"content-type: application/json\r\n", b'{"error":"bad json"}', close, b"400 Bad Request"
            )
            return
        path = target.partition(b"?")[0]
        stream = request.stream
        if path.startswith(b"/v1beta/models/"):
            name, _, action = path[len(b"/v1beta/models/") :].partition(b":")
            text = name.decode("latin-1")
            latency, interval = self._timing(text)
            model = _encode_str(text)
            if action == b"streamGenerateContent":
                config = request.generationConfig
                n = self._count(config.maxOutputTokens if config else None)
                self._start_stream(_GEMINI_HEADERS, _gemini_stream(model, n), n, close, latency, interval)
            else:
                self._send(_GEMINI_HEADERS, _gemini_answer(model), close, latency=latency)
            return
        latency, interval = self._timing(request.model)
        model = _encode_str(request.model)
        if path == b"/v1/messages":
            if stream:
                n = self._count(request.max_tokens)
                self._start_stream(
                    _ANTHROPIC_HEADERS, _anthropic_stream(model, n), n, close, latency, interval
                )
            else:
                self._send(_ANTHROPIC_HEADERS, _anthropic_answer(model), close, latency=latency)
            return
        if path == b"/v1/responses":
            if stream:
                n = self._count(request.max_output_tokens)
                self._start_stream(_OPENAI_HEADERS, _responses_stream(model, n), n, close, latency, interval)
            else:
                self._send(_OPENAI_HEADERS, _responses_answer(model), close, latency=latency)
            return
        if path.endswith(b"/chat/completions"):
            if stream:
                n = self._count(request.max_completion_tokens or request.max_tokens)
                usage = bool(request.stream_options and request.stream_options.include_usage)
                events = _openai_stream(model, usage)
                self._start_stream(_OPENAI_HEADERS, events, n, close, latency, interval)
            else:
                self._send(_OPENAI_HEADERS, _openai_answer(model), close, latency=latency)
            return
        self._send(b"content-type: application/json\r\n", b'{"error":"not found"}', close, b"404 Not Found")

    def _count(self, max_tokens: int | None) -> int:
        if max_tokens is None or max_tokens <= 0:
            return self.options.chunks
        return min(max_tokens, _MAX_CHUNKS)

    def _send(
        self, headers: bytes, body: bytes, close: bool, status: bytes = b"200 OK", latency: float = 0.0
    ) -> None:
        def write() -> None:
            self.timer = None
            self.busy = False
            if self.transport is None:
                return
            self.transport.write(
                b"HTTP/1.1 %s\r\n%scontent-length: %d\r\n%s\r\n%s"
                % (status, headers, len(body), b"connection: close\r\n" if close else b"", body)
            )
            if close:
                self.transport.close()
            elif self.buf:
                self._process()

        if latency > 0:
            self.busy = True
            self.timer = self.loop.call_later(latency, write)
        else:
            write()

    def _start_stream(
        self, headers: bytes, stream: _Stream, chunks: int, close: bool, latency: float, interval: float
    ) -> None:
        self.busy = True
        head = (
            b"HTTP/1.1 200 OK\r\n"
            + headers.replace(b"application/json", b"text/event-stream")
            + b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n"
            + (b"connection: close\r\n" if close else b"")
            + b"\r\n"
        )
        state = [0]

        def tick() -> None:
            self.timer = None
            if self.transport is None:
                return
            sent = state[0]
            payload = stream.content()
            if sent == 0:
                payload = stream.opening_prefix + payload
            sent += 1
            state[0] = sent
            last = sent >= chunks
            if last:
                payload += stream.closing
            out = _chunk(payload)
            if sent == 1:
                out = head + out
            if last:
                self.transport.write(out + b"0\r\n\r\n")
                self.busy = False
                if close:
                    self.transport.close()
                elif self.buf:
                    self._process()
                return
            self.transport.write(out)
            self.timer = self.loop.call_later(interval, tick)

        if latency > 0:
            self.timer = self.loop.call_later(latency, tick)
        else:
            tick()


async def start(host: str, port: int, options: UpstreamOptions) -> asyncio.Server:
    """Listen on ``host:port`` (0: any free port) and return the server (for tests and tools)."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: _Conn(options, loop), host, port, backlog=4096, reuse_address=True
    )


async def serve(host: str, port: int, options: UpstreamOptions) -> None:
    """Serve until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    server = await start(host, port, options)
    stop = asyncio.Event()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.upstream``: serve on 127.0.0.1 until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m bench.upstream", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before an answer (default 0)")
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between stream events")
    parser.add_argument("--chunks", type=int, default=10, help="content events per stream without max_tokens")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the benchmark upstream serves on loopback only")
    options = UpstreamOptions(latency=args.latency, interval=args.interval, chunks=args.chunks)
    try:
        import uvloop

        uvloop.run(serve(args.host, args.port, options))
    except ImportError:  # pragma: no cover - uvloop is a kernel dependency on Linux
        asyncio.run(serve(args.host, args.port, options))
    return 0


if __name__ == "__main__":
    sys.exit(main())
