"""Property tests: arbitrary Gemini-ish requests never give a 5xx; arbitrary OpenAI answers and chunk
streams, split anywhere, never crash the translators and always give well-formed Gemini output."""

from __future__ import annotations

import contextlib
import importlib
import itertools
import json
import os
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from truckllm_dialect_gemini import GeminiDialect, GeminiRequest

from truckllm._internal.endpoint import content_size
from truckllm._internal.schemas.openai import ChatCompletionRequest, check_input
from truckllm.errors import GatewayError, UnsupportedRequest
from truckllm.types import Provider

DIALECT = GeminiDialect()
ROUTES = {r.name: r for r in DIALECT.routes if r.path.startswith("/v1beta/")}
EXAMPLES = int(os.environ.get("TRUCKLLM_HYPOTHESIS_EXAMPLES", "150"))
"""Examples per property (raise it for a longer hunt)."""
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- Gemini-ish request bodies -------------------------------------------------------------------

NAMES = [
    "contents", "role", "parts", "text", "inlineData", "inline_data", "mimeType", "mime_type", "data",
    "fileData", "fileUri", "functionCall", "function_call", "functionResponse", "name", "args", "response",
    "id", "thought", "thoughtSignature", "executableCode", "codeExecutionResult", "systemInstruction",
    "tools", "functionDeclarations", "parameters", "parametersJsonSchema", "type", "properties", "items",
    "required", "nullable", "enum", "anyOf", "toolConfig", "functionCallingConfig", "mode",
    "allowedFunctionNames", "generationConfig", "temperature", "topP", "topK", "maxOutputTokens",
    "stopSequences", "candidateCount", "responseMimeType", "responseSchema", "responseJsonSchema",
    "thinkingConfig", "thinkingBudget", "thinkingLevel", "includeThoughts", "seed", "safetySettings",
    "content", "requests", "model", "outputDimensionality", "taskType", "generateContentRequest",
    "googleSearch", "minItems", "example", "default", "additionalProperties", "bogus",
]  # fmt: skip
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(
        [
            "user",
            "model",
            "STRING",
            "OBJECT",
            "ARRAY",
            "ANY",
            "AUTO",
            "NONE",
            "application/json",
            "image/png",
            "audio/wav",
            "application/pdf",
            "iVBORw0KGgo=",
            "_-8",
            "",
            "models/alias",
            "f",
        ]
    ),
)
JSON = st.recursive(
    LEAVES,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(NAMES), children, max_size=5)
    ),
    max_leaves=25,
)


def _part() -> st.SearchStrategy[Any]:
    text = st.fixed_dictionaries({"text": st.text(max_size=8)}, optional={"thought": st.booleans()})
    inline = st.fixed_dictionaries(
        {"inlineData": st.fixed_dictionaries(
            {"mimeType": st.sampled_from(["image/png", "audio/mp3", "application/pdf", "video/mp4", ""]),
             "data": st.sampled_from(["iVBORw0KGgo=", "_-8", "%%", ""])})},
    )  # fmt: skip
    call = st.fixed_dictionaries(
        {"functionCall": st.fixed_dictionaries(
            {"name": st.sampled_from(["f", "g", ""])},
            optional={"args": JSON, "id": st.sampled_from(["c1", "c 2", "c1"])})},
        optional={"thoughtSignature": st.sampled_from(["CiQB", "!!"])},
    )  # fmt: skip
    answer = st.fixed_dictionaries(
        {"functionResponse": st.fixed_dictionaries(
            {"name": st.sampled_from(["f", "g"])}, optional={"response": JSON, "id": st.sampled_from(["c1", "x"])})},
    )  # fmt: skip
    files = st.fixed_dictionaries(
        {
            "fileData": st.fixed_dictionaries(
                {"fileUri": st.text(max_size=10)}, optional={"mimeType": st.text(max_size=5)}
            )
        }
    )
    return st.one_of(text, inline, call, answer, files, JSON)


CONTENT = st.fixed_dictionaries(
    {"parts": st.lists(_part(), max_size=4)}, optional={"role": st.sampled_from(["user", "model", "tool"])}
)
SCHEMA = st.recursive(
    st.fixed_dictionaries({"type": st.sampled_from(["STRING", "integer", "OBJECT", "ARRAY", "BOGUS"])}),
    lambda children: st.fixed_dictionaries(
        {"type": st.sampled_from(["OBJECT", "ARRAY"])},
        optional={
            "properties": st.dictionaries(st.text(max_size=4), children, max_size=3),
            "items": children,
            "anyOf": st.lists(children, max_size=2),
            "required": st.lists(st.text(max_size=4), max_size=2),
            "nullable": st.booleans(),
            "minItems": st.sampled_from(["1", 2, "x"]),
        },
    ),
    max_leaves=8,
)
GENERATE = st.fixed_dictionaries(
    {"contents": st.lists(CONTENT, max_size=5)},
    optional={
        "systemInstruction": CONTENT,
        "tools": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "functionDeclarations": st.lists(
                        st.fixed_dictionaries(
                            {"name": st.sampled_from(["f", "g", "1x", "a.b"])},
                            optional={
                                "parameters": SCHEMA,
                                "parametersJsonSchema": JSON,
                                "description": st.text(),
                            },
                        ),
                        max_size=3,
                    ),
                    "googleSearch": st.just({}),
                },
            ),
            max_size=2,
        ),
        "toolConfig": st.fixed_dictionaries(
            {
                "functionCallingConfig": st.fixed_dictionaries(
                    {},
                    optional={
                        "mode": st.sampled_from(["AUTO", "ANY", "NONE", "VALIDATED", "X"]),
                        "allowedFunctionNames": st.lists(st.sampled_from(["f", "g", "h"]), max_size=2),
                    },
                )
            }
        ),
        "generationConfig": st.fixed_dictionaries(
            {},
            optional={
                "temperature": st.floats(-1, 3),
                "topP": st.floats(0, 1.5),
                "topK": st.integers(-1, 100),
                "maxOutputTokens": st.integers(-1, 10**6),
                "stopSequences": st.lists(st.text(max_size=3), max_size=6),
                "candidateCount": st.integers(0, 200),
                "responseMimeType": st.sampled_from(["application/json", "text/x.enum", "text/plain"]),
                "responseSchema": SCHEMA,
                "thinkingConfig": st.fixed_dictionaries(
                    {},
                    optional={"thinkingBudget": st.integers(-2, 50000), "thinkingLevel": st.text(max_size=6)},
                ),
                "seed": st.integers(-(2**31), 2**31),
                "logprobs": st.integers(-1, 30),
                "responseLogprobs": st.booleans(),
            },
        ),
        "safetySettings": JSON,
    },
)
EMBED = st.fixed_dictionaries(
    {"content": CONTENT},
    optional={"outputDimensionality": st.integers(-1, 4096), "taskType": st.text(max_size=8)},
)
BATCH = st.fixed_dictionaries(
    {"requests": st.lists(EMBED.map(lambda e: {**e, "model": "models/alias"}) | EMBED, max_size=4)}
)
BODIES = st.one_of(
    st.tuples(st.sampled_from(["generateContent", "streamGenerateContent", "countTokens"]), GENERATE | JSON),
    st.tuples(st.just("embedContent"), EMBED | JSON),
    st.tuples(st.just("batchEmbedContents"), BATCH | JSON),
    st.tuples(st.just("countTokens"), st.fixed_dictionaries({"generateContentRequest": GENERATE})),
)


def _providers() -> list[tuple[Any, Provider, frozenset[str]]]:
    """The installed provider plugins, with the endpoints they serve (the kernel sends no other)."""
    found = []
    for module, kind in (
        ("truckllm_provider_openai", "openai"),
        ("truckllm_provider_anthropic", "anthropic"),
        ("truckllm_provider_gemini", "gemini"),
    ):
        try:
            plugin = importlib.import_module(module)
        except ImportError:  # the package alone, without the provider plugins: parse only
            continue
        specs: list[Any] = []
        plugin.register_providers(register=specs.append)
        endpoints = frozenset().union(*(spec.endpoints for spec in specs))
        found.append((plugin, Provider(name=kind, type=kind, base_url="https://upstream.test"), endpoints))
    return found


PROVIDERS = _providers()


@SETTINGS
@given(case=BODIES, snake=st.booleans(), alt=st.sampled_from(["", "sse", "json"]))
def test_requests_never_give_a_5xx(case: tuple[str, Any], snake: bool, alt: str) -> None:
    method, body = case
    raw = json.dumps(body).encode()
    if snake:
        raw = raw.replace(b"generationConfig", b"generation_config").replace(b"mimeType", b"mime_type")
    try:
        request = DIALECT.parse(ROUTES[method], raw, {"model": "alias"}, {"alt": alt}, {})
    except GatewayError as exc:
        assert 400 <= exc.status < 500, exc.message
        assert json.loads(DIALECT.error_body(exc))["error"]["code"] == exc.status
        return
    assert isinstance(request, GeminiRequest) and request.body is raw
    typed = request.typed
    msgspec.json.encode(typed)  # what the OpenAI provider sends
    assert check_input(getattr(typed, "input", None), "input") is None
    if isinstance(typed, ChatCompletionRequest):
        content_size(typed)
    for plugin, provider, endpoints in PROVIDERS:  # a provider may refuse (a 400), never crash (a 502)
        if request.endpoint in endpoints:
            with contextlib.suppress(UnsupportedRequest):
                plugin.transform_request(provider=provider, model="m", request=request, api_key="k")


# --- OpenAI answers and chunk streams ------------------------------------------------------------

TEXT = st.text(max_size=6)
TOOL_DELTA = st.fixed_dictionaries(
    {},
    optional={
        "index": st.integers(0, 2) | st.none() | st.just("x"),
        "id": st.sampled_from(["call_1", "call_2", None]),
        "type": st.just("function"),
        "function": st.fixed_dictionaries(
            {}, optional={"name": st.sampled_from(["f", "g", "", None]), "arguments": st.sampled_from(
                ["", "{", '"a"', ": 1}", "{}", '{"a": [1, 2]}', "[]", None, "}"])}
        ),
    },
)  # fmt: skip
DELTA = st.fixed_dictionaries(
    {},
    optional={
        "role": st.just("assistant"),
        "content": TEXT | st.none(),
        "reasoning_content": TEXT,
        "refusal": TEXT | st.none(),
        "tool_calls": st.lists(TOOL_DELTA, max_size=2) | st.none(),
    },
)
USAGE = st.fixed_dictionaries(
    {"prompt_tokens": st.integers(0, 100), "completion_tokens": st.integers(0, 100)},
    optional={
        "total_tokens": st.integers(0, 300) | st.none(),
        "prompt_tokens_details": st.fixed_dictionaries({"cached_tokens": st.integers(0, 50) | st.none()}),
        "completion_tokens_details": st.fixed_dictionaries({"reasoning_tokens": st.integers(0, 50)}),
    },
)
CHUNK = st.fixed_dictionaries(
    {"choices": st.lists(
        st.fixed_dictionaries(
            {"index": st.integers(0, 2), "delta": DELTA | JSON},
            optional={"finish_reason": st.sampled_from(["stop", "length", "tool_calls", "content_filter", "weird", None])}),
        max_size=2) | JSON},
    optional={"id": st.sampled_from(["chatcmpl-1", "chatcmpl-2"]), "model": st.sampled_from(["gpt-4o", ""]),
              "usage": USAGE | st.none() | JSON},
)  # fmt: skip
FRAME = CHUNK.map(lambda c: b"data: " + json.dumps(c).encode() + b"\n\n") | st.sampled_from(
    [b"data: [DONE]\n\n", b": keep-alive\n\n", b"data: not json\n\n", b"event: x\ndata: {}\n\n", b"\n"]
)


@SETTINGS
@given(
    frames=st.lists(FRAME, max_size=12),
    cuts=st.lists(st.integers(0, 5000), max_size=8),
    alt=st.sampled_from(["sse", ""]),
    thoughts=st.booleans(),
)
def test_openai_streams_never_crash(frames: list[bytes], cuts: list[int], alt: str, thoughts: bool) -> None:
    body: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    if thoughts:
        body["generationConfig"] = {"thinkingConfig": {"includeThoughts": True}}
    request = DIALECT.parse(
        ROUTES["streamGenerateContent"], json.dumps(body).encode(), {"model": "alias"}, {"alt": alt}, {}
    )
    raw = b"".join(frames)

    def run(points: list[int]) -> bytes:
        translator = DIALECT.stream(request, "openai")
        bounds = [0, *sorted(p for p in points if 0 < p < len(raw)), len(raw)]
        out = [translator.feed(raw[a:b]) for a, b in itertools.pairwise(bounds)]
        return b"".join([*out, translator.close()])

    whole = run([])
    assert run(cuts) == whole  # the output does not depend on how the bytes were split
    if alt == "sse":
        events = [json.loads(f[6:]) for f in whole.split(b"\r\n\r\n")[:-1]]
        assert whole.endswith(b"\r\n\r\n") and all(
            f.startswith(b"data: ") for f in whole.split(b"\r\n\r\n")[:-1]
        )
    else:
        events = json.loads(whole)
    assert events, "a stream always ends with an event"
    assert all(isinstance(e, dict) and "modelVersion" in e for e in events)
    for event in events[:-1]:  # every event but the last carries content (google-genai's chats need it)
        for candidate in event["candidates"]:
            assert candidate["content"]["parts"] and all(candidate["content"]["parts"])
            assert "finishReason" not in candidate
    assert all("finishReason" in c for c in events[-1]["candidates"])


@SETTINGS
@given(
    answer=st.fixed_dictionaries(
        {
            "choices": st.lists(
                st.fixed_dictionaries(
                    {"index": st.integers(0, 3) | st.none(), "message": DELTA | JSON},
                    optional={"finish_reason": st.sampled_from(["stop", "length", "tool_calls", None])},
                ),
                max_size=3,
            )
            | JSON
        },
        optional={"id": TEXT | st.none(), "model": TEXT | st.none(), "usage": USAGE | JSON},
    )
    | JSON,
    method=st.sampled_from(["generateContent", "embedContent", "batchEmbedContents", "countTokens"]),
)
def test_openai_answers_never_crash(answer: Any, method: str) -> None:
    bodies = {
        "embedContent": {"content": {"parts": [{"text": "x"}]}},
        "batchEmbedContents": {
            "requests": [{"model": "models/alias", "content": {"parts": [{"text": "x"}]}}]
        },
    }
    body = bodies.get(method, {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    request = DIALECT.parse(ROUTES[method], json.dumps(body).encode(), {"model": "alias"}, {}, {})
    try:
        out = DIALECT.response(request, json.dumps(answer).encode(), "openai")
    except GatewayError as exc:
        assert exc.status == 502
        return
    assert isinstance(json.loads(out), dict)


@pytest.mark.parametrize("cut", [1, 7, 50])
def test_gemini_array_reframing_is_split_proof(gk: Any, cut: int) -> None:
    events = [{"candidates": [{"content": {"parts": [{"text": str(i)}], "role": "model"}}]} for i in range(5)]
    raw = gk.gemini_frames(events) + b'{\n  "error": {"code": 503}\n}\n'
    request = gk.parse({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}, "streamGenerateContent")
    out = gk.run_stream(request, "gemini", raw, range(cut, len(raw), cut))
    decoded = json.loads(out)
    assert decoded[:5] == events and decoded[5]["error"]["code"] == 503
