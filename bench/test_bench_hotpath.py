"""Micro-benchmarks of the request hot path: time per call and allocations per call.

What a pass-through request costs the gateway's CPU, piece by piece, as the kernel and the
provider plugins do it:

- request decode (``truckllm.kit.openai_schemas`` through msgspec) and the model rewrite
  (``ChatRequest.with_model``, which decodes the top-level members once and re-encodes);
- hook dispatch through pluggy with every installed plugin: a ``firstresult`` hook no plugin
  answers (dispatch alone), and ``transform_request`` for an OpenAI pass-through;
- usage parsing (``truckllm.kit.openai_wire.parse_openai_usage``);
- stream handling: the openai plugin's ``OpenAIStream.feed`` over a realistic 60-event stream,
  and the anthropic and gemini translators' ``feed`` when those plugins are installed;
- SSE parsing (``truckllm.kit.sse.SSEParser``) over the same stream.

Besides pytest-benchmark's timings, each test measures allocations with the GC off: the peak of
memory allocated during one call (``tracemalloc``), the memory blocks still held after a call
while its result is kept (``sys.getallocatedblocks`` delta: the objects it built), and blocks
still held per call once the results are dropped and a collection ran (leaked; should be 0).
A summary table (time per call and per stream event, allocations) prints at the end and goes
to ``bench/results/hotpath.json``.

Run with ``make bench`` or ``.venv/bin/python -m pytest bench/test_bench_hotpath.py --benchmark-only``.
"""

from __future__ import annotations

import contextlib
import gc
import json
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from truckllm._internal.openai_wire import parse_openai_usage
from truckllm._internal.plugins import PluginHost, make_plugin_manager
from truckllm._internal.schemas.openai import ChatCompletionRequest
from truckllm._internal.sse import SSEParser
from truckllm.types import ChatRequest, Provider

RESULTS = Path(__file__).resolve().parent / "results" / "hotpath.json"
STREAM_EVENTS = 60  # role + 56 content + finish + usage + [DONE] (OpenAI)

SYSTEM = "You are a helpful assistant. Answer briefly, and say so when you do not know."
USER = "Summarise the following notes in two sentences. " + " ".join(
    f"Item {i}: the shipment left the depot at {8 + i % 10}:{i % 60:02d} and arrived on time."
    for i in range(12)
)
CHAT_BODY = json.dumps(
    {
        "model": "bench-openai",
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": USER},
            {"role": "assistant", "content": "Noted. What would you like to know?"},
            {"role": "user", "content": "Which items arrived before noon?"},
        ],
        "temperature": 0.2,
        "max_tokens": 256,
        "user": "user-1234",
    }
).encode()

RESPONSE_BODY = (
    b'{"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion","created":1741569952,'
    b'"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":'
    b'"Items 0, 1, 2 and 3 arrived before noon; the rest arrived in the afternoon.","refusal":null,'
    b'"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":312,'
    b'"completion_tokens":21,"total_tokens":333,"prompt_tokens_details":{"cached_tokens":0,'
    b'"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,'
    b'"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default",'
    b'"system_fingerprint":"fp_06737a9306"}'
)

WORDS = (
    "Items ",
    "0, ",
    "1, ",
    "2 ",
    "and ",
    "3 ",
    "arrived ",
    "before ",
    "noon; ",
    "the ",
    "rest ",
    "later. ",
)


def _words(count: int) -> Iterator[str]:
    for i in range(count):
        yield WORDS[i % len(WORDS)]


def openai_stream() -> list[bytes]:
    """An OpenAI chat stream as the network delivers it: one read per event."""
    head = (
        '{"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk","created":1741569952,'
        '"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_06737a9306",'
        '"choices":'
    )
    events = [
        head + '[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,'
        '"finish_reason":null}],"usage":null,"obfuscation":"Ry1vY"}'
    ]
    for word in _words(STREAM_EVENTS - 4):
        events.append(
            head + '[{"index":0,"delta":{"content":' + json.dumps(word) + '},"logprobs":null,'
            '"finish_reason":null}],"usage":null,"obfuscation":"a4lYW"}'
        )
    events.append(head + '[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}')
    events.append(
        head + '[],"usage":{"prompt_tokens":312,"completion_tokens":56,"total_tokens":368,'
        '"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":'
        '{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}'
    )
    events.append("[DONE]")
    return [f"data: {e}\n\n".encode() for e in events]


def anthropic_stream() -> list[bytes]:
    """An Anthropic Messages stream, one read per event."""
    events = [
        (
            "message_start",
            '{"type":"message_start","message":{"id":"msg_0140ZU45XLCyDFLbH7EUtzRL","type":"message",'
            '"role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,'
            '"usage":{"input_tokens":312,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,'
            '"output_tokens":1,"service_tier":"standard"}}}',
        ),
        (
            "content_block_start",
            '{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}',
        ),
        ("ping", '{"type": "ping"}'),
    ]
    for word in _words(STREAM_EVENTS - 6):
        events.append(
            (
                "content_block_delta",
                '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":'
                + json.dumps(word)
                + "}}",
            )
        )
    events += [
        ("content_block_stop", '{"type":"content_block_stop","index":0}'),
        (
            "message_delta",
            '{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},'
            '"usage":{"output_tokens":54}}',
        ),
        ("message_stop", '{"type":"message_stop"}'),
    ]
    return [f"event: {name}\ndata: {data}\n\n".encode() for name, data in events]


def gemini_stream() -> list[bytes]:
    """A Gemini ``streamGenerateContent?alt=sse`` stream (CRLF-separated), one read per event."""
    out = []
    words = list(_words(STREAM_EVENTS))
    for i, word in enumerate(words):
        last = i == len(words) - 1
        usage = (
            '{"promptTokenCount":312,"candidatesTokenCount":60,"totalTokenCount":372}'
            if last
            else '{"promptTokenCount":312,"totalTokenCount":312}'
        )
        finish = ',"finishReason":"STOP"' if last else ""
        out.append(
            (
                'data: {"candidates":[{"content":{"parts":[{"text":'
                + json.dumps(word)
                + '}],"role":"model"}'
                + finish
                + '}],"usageMetadata":'
                + usage
                + ',"modelVersion":"gemini-2.5-flash","responseId":"zzuR2sj4Q8c2bOuaXxRBWF"}\r\n\r\n'
            ).encode()
        )
    return out


# --------------------------------------------------------------------------- allocations


def allocations(fn: Callable[[], Any], calls: int = 200) -> dict[str, float]:
    """Allocation figures for one call of ``fn`` (GC off while measuring)."""
    fn()
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        tracemalloc.start()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = fn()
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
        del result
        keep: list[Any] = [None] * calls
        before = sys.getallocatedblocks()
        for i in range(calls):
            keep[i] = fn()
        kept = (sys.getallocatedblocks() - before) / calls
        del keep
        gc.collect()
        before = sys.getallocatedblocks()
        for _ in range(calls * 5):
            fn()
        gc.collect()  # what survives a collection is leaked
        leaked = (sys.getallocatedblocks() - before) / (calls * 5)
    finally:
        if enabled:
            gc.enable()
    return {"peak_bytes": float(peak), "blocks_kept": kept, "blocks_leaked": leaked}


SUMMARY: dict[str, dict[str, Any]] = {}


def record(benchmark: Any, name: str, fn: Callable[[], Any], per: int = 1, unit: str = "call") -> None:
    """Time ``fn`` with pytest-benchmark, measure its allocations, keep both for the summary."""
    benchmark(fn)
    alloc = allocations(fn)
    benchmark.extra_info.update(alloc)
    stats = getattr(benchmark, "stats", None)
    median = stats.stats.median if stats is not None else float("nan")
    SUMMARY[name] = {"median_us": median * 1e6, "per": per, "unit": unit, **alloc}


@pytest.fixture(scope="module", autouse=True)
def summary(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print the summary table when the module is done, and write it as JSON."""
    SUMMARY.clear()
    yield
    if not SUMMARY:
        return
    rows = [("benchmark", "µs/call", "per", "µs/unit", "peak KB", "blocks kept", "blocks leaked")]
    for name, s in SUMMARY.items():
        rows.append(
            (
                name,
                f"{s['median_us']:.2f}",
                f"{s['per']} {s['unit']}",
                f"{s['median_us'] / s['per']:.2f}",
                f"{s['peak_bytes'] / 1024:.1f}",
                f"{s['blocks_kept']:.1f}",
                f"{s['blocks_leaked']:.2f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["", "hot path: median time per call (pytest-benchmark), allocations per call (GC off)"]
    for i, r in enumerate(rows):
        lines.append(
            "  ".join([r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)])
        )
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    text = "\n".join(lines)
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        if reporter is not None:
            reporter.write_line(text)
        else:  # pragma: no cover
            print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(SUMMARY, indent=1) + "\n")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def host() -> PluginHost:
    """The plugin manager with every installed plugin, as the gateway builds it."""
    return make_plugin_manager()


DECODER = msgspec.json.Decoder(ChatCompletionRequest)


def chat_request(body: bytes = CHAT_BODY, stream: bool = False) -> ChatRequest:
    """The kernel's ``ChatRequest`` for ``body``."""
    typed = DECODER.decode(body)
    return ChatRequest(endpoint="chat", body=body, model=typed.model, stream=stream, typed=typed)


# --------------------------------------------------------------------------- request path


def test_request_decode(benchmark: Any) -> None:
    """msgspec decode + validation of a typical chat body into the typed schema."""
    record(benchmark, "request decode", lambda: DECODER.decode(CHAT_BODY))


def test_model_rewrite(benchmark: Any) -> None:
    """``ChatRequest.with_model`` on a fresh request: top-level decode to raw members, re-encode."""
    typed = DECODER.decode(CHAT_BODY)

    def rewrite() -> bytes:
        request = ChatRequest(endpoint="chat", body=CHAT_BODY, model=typed.model, typed=typed)
        return request.with_model("gpt-4o-mini")

    out = rewrite()
    assert json.loads(out)["model"] == "gpt-4o-mini"
    record(benchmark, "model rewrite (with_model)", rewrite)


def test_request_decode_and_rewrite(benchmark: Any) -> None:
    """Both, as one pass-through request does them."""

    def both() -> bytes:
        return chat_request().with_model("gpt-4o-mini")

    record(benchmark, "decode + rewrite", both)


def test_hook_dispatch_no_match(benchmark: Any, host: PluginHost) -> None:
    """A firstresult hook (``transform_request``) that every installed provider plugin declines."""
    provider = Provider(name="none", type="no-such-type", base_url="http://127.0.0.1:9/v1")
    request = chat_request()
    call = host.hook.transform_request
    assert call(provider=provider, model="m", request=request, api_key="k") is None
    impls = len(host.pm.hook.transform_request.get_hookimpls())

    def dispatch() -> Any:
        return call(provider=provider, model="m", request=request, api_key="k")

    record(benchmark, f"hook dispatch, no match ({impls} impls)", dispatch)


def test_hook_transform_request_openai(benchmark: Any, host: PluginHost) -> None:
    """``transform_request`` answered by the openai plugin: URL, headers, body with the model rewritten."""
    if "openai" not in host.providers:
        pytest.skip("the openai provider plugin is not installed")
    provider = Provider(name="up", type="openai", base_url="http://127.0.0.1:9/v1")
    call = host.hook.transform_request
    typed = DECODER.decode(CHAT_BODY)

    def transform() -> Any:
        request = ChatRequest(endpoint="chat", body=CHAT_BODY, model=typed.model, typed=typed)
        return call(provider=provider, model="gpt-4o-mini", request=request, api_key="sk-bench")

    assert transform() is not None
    record(benchmark, "transform_request (openai)", transform)


def test_parse_usage(benchmark: Any) -> None:
    """``parse_openai_usage`` on a whole chat completion."""
    usage = parse_openai_usage(RESPONSE_BODY)
    assert usage is not None and usage.total_tokens == 333
    record(benchmark, "parse_openai_usage", lambda: parse_openai_usage(RESPONSE_BODY))


def test_parse_usage_hook(benchmark: Any, host: PluginHost) -> None:
    """The ``parse_usage`` hook for an openai provider (dispatch + parse)."""
    if "openai" not in host.providers:
        pytest.skip("the openai provider plugin is not installed")
    provider = Provider(name="up", type="openai", base_url="http://127.0.0.1:9/v1")
    request = chat_request()
    call = host.hook.parse_usage
    assert call(provider=provider, request=request, body=RESPONSE_BODY) is not None
    record(
        benchmark,
        "parse_usage hook (openai)",
        lambda: call(provider=provider, request=request, body=RESPONSE_BODY),
    )


# --------------------------------------------------------------------------- streams


def _feed_all(make: Callable[[], Any], chunks: list[bytes]) -> Callable[[], int]:
    def run() -> int:
        translator = make()
        size = 0
        for chunk in chunks:
            size += len(translator.feed(chunk))
        return size + len(translator.close())

    return run


def test_sse_parser(benchmark: Any) -> None:
    """``SSEParser.feed`` over a 60-event OpenAI stream, one read per event."""
    chunks = openai_stream()

    def parse() -> int:
        parser = SSEParser()
        n = 0
        for chunk in chunks:
            n += len(parser.feed(chunk))
        return n + len(parser.close())

    assert parse() == len(chunks)
    record(benchmark, "SSEParser.feed", parse, per=len(chunks), unit="events")


def test_sse_parser_split_reads(benchmark: Any) -> None:
    """``SSEParser.feed`` over the same stream in 1,460-byte reads (events split across reads)."""
    data = b"".join(openai_stream())
    reads = [data[i : i + 1460] for i in range(0, len(data), 1460)]

    def parse() -> int:
        parser = SSEParser()
        n = 0
        for chunk in reads:
            n += len(parser.feed(chunk))
        return n + len(parser.close())

    assert parse() == STREAM_EVENTS
    record(benchmark, "SSEParser.feed, 1460-byte reads", parse, per=STREAM_EVENTS, unit="events")


def test_openai_stream_feed(benchmark: Any) -> None:
    """The openai plugin's ``OpenAIStream``: forward frames, read usage, drop the usage chunk."""
    module = pytest.importorskip("truckllm_provider_openai")
    chunks = openai_stream()
    run = _feed_all(lambda: module.OpenAIStream(False, None), chunks)
    assert run() > 0
    record(benchmark, "OpenAIStream.feed (pass-through)", run, per=len(chunks), unit="events")


def test_anthropic_stream_feed(benchmark: Any) -> None:
    """The anthropic plugin's ``AnthropicStream``: Anthropic events to OpenAI chunks."""
    module = pytest.importorskip("truckllm_provider_anthropic.stream")
    chunks = anthropic_stream()
    run = _feed_all(
        lambda: module.AnthropicStream(
            endpoint="chat", include_usage=True, json_tool=False, fallback_model="bench-anthropic"
        ),
        chunks,
    )
    assert run() > 0
    record(benchmark, "AnthropicStream.feed (translation)", run, per=len(chunks), unit="events")


def test_gemini_stream_feed(benchmark: Any) -> None:
    """The gemini plugin's ``GeminiStream``: Gemini chunks to OpenAI chunks."""
    module = pytest.importorskip("truckllm_provider_gemini.stream")
    chunks = gemini_stream()
    request = chat_request(
        json.dumps(
            {
                "model": "bench-gemini",
                "stream": True,
                "stream_options": {"include_usage": True},
                "messages": [{"role": "user", "content": "hi"}],
            }
        ).encode(),
        stream=True,
    )
    request.include_usage = True
    run = _feed_all(lambda: module.GeminiStream(request), chunks)
    assert run() > 0
    record(benchmark, "GeminiStream.feed (translation)", run, per=len(chunks), unit="events")
