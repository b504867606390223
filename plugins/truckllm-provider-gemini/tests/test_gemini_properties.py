"""Property tests (hypothesis): the translations never crash, whatever they are given.

- any OpenAI chat request the kernel accepts becomes a Gemini request the fake Gemini accepts, or
  :class:`UnsupportedRequest` (nothing else);
- any upstream body (JSON or not, any status) becomes a result or a classified error;
- any upstream SSE byte stream, split anywhere, yields the same frames and the same outcome, and
  raises nothing but :class:`UpstreamFailure`.
"""

from __future__ import annotations

import json
import os
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from truckllm._internal.schemas.openai import ChatCompletionRequest
from truckllm.errors import UnsupportedRequest
from truckllm_testing.fakes import FakeGemini

FAKE = FakeGemini()
SETTINGS = settings(
    max_examples=int(os.environ.get("TRUCKLLM_PROPERTY_EXAMPLES", "150")),
    deadline=None,
    # ``gx`` is stateless: sharing it between examples is fine
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# --- OpenAI requests -----------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)
schema_words = st.sampled_from(
    ["type", "properties", "items", "required", "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "$defs",
     "additionalProperties", "nullable", "format", "description", "minimum", "prefixItems", "title", "default"]
)  # fmt: skip
schemas = st.recursive(
    st.sampled_from(["string", "integer", "number", "boolean", "object", "array", "null"]).map(
        lambda t: {"type": t}
    )
    | st.just({}),
    lambda inner: st.dictionaries(
        schema_words,
        inner
        | st.lists(inner, max_size=3)
        | st.dictionaries(st.text(min_size=1, max_size=5), inner, max_size=3)
        | json_scalars
        | st.sampled_from(["#/$defs/a", "#", "#/nope", ["string", "null"], ["a", "b"]]),
        max_size=4,
    ),
    max_leaves=15,
)
names = st.sampled_from(["get_weather", "get_time", "_x", "a.b", "9bad", "f-1"])
ids = st.sampled_from(
    ["c1", "c2", "call_AbCdEfGhIjKlMnOpQrStUvWx__ts_CiRmYWtlAQID", "gid_fc-1", "gidx_00ff", "x__ts_!"]
)
urls = st.sampled_from(
    ["data:image/png;base64,iVBORw0KGgo=", "data:image/png;base64,@@", "data:,hello", "data:text/plain,hi%20there",
     "gs://b/x.jpg", "https://example.com/a.png", "https://generativelanguage.googleapis.com/v1beta/files/f1",
     "https://www.youtube.com/watch?v=x", "ftp://x", "data:image/png;base64,"]
)  # fmt: skip
text_parts = st.builds(lambda t: {"type": "text", "text": t}, st.text(max_size=6))
user_parts = st.lists(
    text_parts
    | st.builds(lambda u: {"type": "image_url", "image_url": {"url": u}}, urls)
    | st.builds(
        lambda d: {"type": "input_audio", "input_audio": {"data": d, "format": "wav"}},
        st.sampled_from(["UklGRg==", "", "!!"]),
    )
    | st.builds(
        lambda d: {"type": "file", "file": d},
        st.sampled_from(
            [
                {"file_data": "data:application/pdf;base64,JVBERi0="},
                {"file_id": "files/x"},
                {"file_id": "file-abc"},
                {},
            ]
        ),
    ),
    max_size=3,
)
contents = st.text(max_size=8) | user_parts
tool_calls = st.lists(
    st.builds(
        lambda i, n, a: {"id": i, "type": "function", "function": {"name": n, "arguments": a}},
        ids,
        names,
        st.sampled_from(["", "{}", '{"city": "Paris"}', "[1]", "{bad", "null", '{"a": {"b": [1, 2]}}']),
    ),
    max_size=3,
)
messages = st.lists(
    st.one_of(
        st.builds(
            lambda c: {"role": "system", "content": c}, st.text(max_size=6) | st.lists(text_parts, max_size=2)
        ),
        st.builds(lambda c: {"role": "developer", "content": c}, st.text(max_size=6)),
        st.builds(lambda c: {"role": "user", "content": c}, contents),
        st.builds(
            lambda c, t: {"role": "assistant", "content": c, **({"tool_calls": t} if t else {})},
            st.none() | st.text(max_size=6),
            tool_calls,
        ),
        st.builds(
            lambda i, c: {"role": "tool", "tool_call_id": i, "content": c},
            ids,
            st.text(max_size=6) | st.sampled_from(["{}", "[1,2]", "42"]),
        ),
        st.builds(lambda n, c: {"role": "function", "name": n, "content": c}, names, st.text(max_size=5)),
    ),
    min_size=1,
    max_size=7,
)


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A well-formed tool-using conversation: every call answered, results in any order."""
    out: list[dict[str, Any]] = []
    if draw(st.booleans()):
        out.append(
            {"role": draw(st.sampled_from(["system", "developer"])), "content": draw(st.text(max_size=6))}
        )
    for turn in range(draw(st.integers(1, 3))):
        out.append({"role": "user", "content": draw(contents)})
        calls = draw(st.integers(0, 3))
        call_ids = [draw(st.sampled_from(["call_", "gid_", "x"])) + f"{turn}n{k}" for k in range(calls)]
        assistant: dict[str, Any] = {"role": "assistant", "content": draw(st.none() | st.text(max_size=6))}
        if calls:
            assistant["tool_calls"] = [
                {
                    "id": cid,
                    "type": "function",
                    "function": {
                        "name": draw(names.filter(lambda n: n != "9bad")),
                        "arguments": draw(st.sampled_from(["", "{}", '{"a": [1, {"b": null}]}'])),
                    },
                }
                for cid in call_ids
            ]
        out.append(assistant)
        for cid in draw(st.permutations(call_ids)):
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": cid,
                    "content": draw(st.text(max_size=6) | st.sampled_from(["{}", "[1]", "7"])),
                }
            )
    return out


valid_tools = st.builds(
    lambda n, p, d: {
        "type": "function",
        "function": {"name": n, **({"parameters": p} if p is not None else {}), **d},
    },
    names.filter(lambda n: n != "9bad"),
    st.none() | schemas,
    st.sampled_from([{}, {"description": "does things"}, {"strict": True}]),
)
invalid_tools = st.sampled_from(
    [{"type": "custom", "custom": {"name": "c"}}, {"type": "function", "function": {"name": "9bad"}}]
)
tools = st.lists(valid_tools, max_size=3) | st.lists(valid_tools | invalid_tools, max_size=3)
optional = {
    "temperature": st.floats(0, 2.1),
    "top_p": st.floats(0, 1),
    "top_k": st.integers(0, 100),
    "max_tokens": st.integers(0, 100),
    "max_completion_tokens": st.integers(0, 100),
    "n": st.integers(1, 4),
    "stop": st.none() | st.text(max_size=3) | st.lists(st.text(max_size=3), max_size=6),
    "seed": st.integers(-5, 5),
    "presence_penalty": st.floats(-2, 2),
    "logprobs": st.booleans(),
    "top_logprobs": st.integers(0, 20),
    "tool_choice": st.sampled_from(
        [
            "auto",
            "none",
            "required",
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "allowed_tools"},
        ]
    ),
    "response_format": st.sampled_from(
        [{"type": "text"}, {"type": "json_object"}, {"type": "json_schema", "json_schema": {"name": "x"}}]
    )
    | schemas.map(lambda s: {"type": "json_schema", "json_schema": {"name": "x", "schema": s}}),
    "reasoning_effort": st.sampled_from(["none", "low", "high", "turbo"]),
    "tools": tools,
    "stream": st.booleans(),
    "user": st.text(max_size=3),
}
chat_bodies = st.fixed_dictionaries(
    {"model": st.just("alias"), "messages": messages | conversations()}, optional=optional
)
modes = st.sampled_from([{}, {"schema_mode": "json_schema"}, {"system_instruction": False}])

# checks of the fake that a translation cannot guarantee for any input (they depend on the
# conversation the client sent, not on the translation)
_CONVERSATION_SHAPE = ("function call turn comes immediately after a user turn",)


@SETTINGS
@given(body=chat_bodies, options=modes)
def test_any_chat_request_translates_or_is_unsupported(
    gx: Any, body: dict[str, Any], options: dict[str, Any]
) -> None:
    raw = json.dumps(body).encode()
    try:
        msgspec.json.decode(raw, type=ChatCompletionRequest)
    except msgspec.ValidationError:
        return  # the kernel answers 400 before any plugin runs
    try:
        upstream = gx.upstream(body, **options)
    except UnsupportedRequest as exc:
        assert exc.message
        return
    sent = json.loads(upstream.body)
    problems = [p.message for p in FAKE._validate_generate(sent, "GenerateContentRequest")]
    problems = [p for p in problems if not any(shape in p for shape in _CONVERSATION_SHAPE)]
    assert problems == [], (sent, problems)


# --- upstream answers ----------------------------------------------------------------------------

parts = st.fixed_dictionaries(
    {},
    optional={
        "text": st.text(max_size=5) | st.integers(),
        "thought": st.booleans() | st.none(),
        "thoughtSignature": st.sampled_from(["CiRmYWtlAQID", "!!", ""]),
        "functionCall": st.fixed_dictionaries(
            {"name": st.text(max_size=4)}, optional={"args": json_values, "id": st.text(max_size=4)}
        ),
    },
)
candidates = st.fixed_dictionaries(
    {},
    optional={
        "content": st.fixed_dictionaries(
            {}, optional={"parts": st.lists(parts, max_size=3) | st.none(), "role": st.just("model")}
        ),
        "finishReason": st.sampled_from(["STOP", "MAX_TOKENS", "SAFETY", "OTHER", "WEIRD"]) | st.none(),
        "index": st.integers(0, 2) | st.none() | st.text(max_size=2),
        "logprobsResult": json_values,
    },
)
usage = st.fixed_dictionaries(
    {},
    optional={
        k: st.integers(-5, 10**6) | st.none()
        for k in (
            "promptTokenCount",
            "candidatesTokenCount",
            "thoughtsTokenCount",
            "cachedContentTokenCount",
            "toolUsePromptTokenCount",
            "totalTokenCount",
        )
    },
)
answers = st.fixed_dictionaries(
    {},
    optional={
        "candidates": st.lists(candidates, max_size=3) | st.none(),
        "promptFeedback": st.fixed_dictionaries(
            {}, optional={"blockReason": st.sampled_from(["SAFETY", "OTHER"])}
        ),
        "usageMetadata": usage,
        "modelVersion": st.text(max_size=4),
        "responseId": st.text(max_size=4),
        "error": json_values,
        "embeddings": st.lists(
            st.fixed_dictionaries({"values": st.lists(st.floats(-1e39, 1e39, allow_nan=False), max_size=3)}),
            max_size=3,
        ),
    },
)
bodies = (
    answers.map(lambda a: json.dumps(a).encode())
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=40)
)
endpoints = st.sampled_from(
    [
        ("chat", {"model": "a", "messages": [{"role": "user", "content": "hi"}]}),
        ("completions", {"model": "a", "prompt": "hi"}),
        ("embeddings", {"model": "a", "input": ["x", "y"], "encoding_format": "base64"}),
        ("embeddings", {"model": "a", "input": "x"}),
    ]
)


@SETTINGS
@given(
    body=bodies,
    status=st.sampled_from([200, 200, 200, 400, 401, 402, 403, 404, 429, 499, 500, 503, 504, 302]),
    target=endpoints,
)
def test_any_upstream_answer_is_read(
    gx: Any, body: bytes, status: int, target: tuple[str, dict[str, Any]]
) -> None:
    endpoint, client_body = target
    request = gx.request(client_body, endpoint)
    result = gx.respond(request, body, status)
    if status != 200:
        assert result.error is not None and result.error.status >= 400
    if result.error is None:
        decoded = json.loads(result.body)
        assert isinstance(decoded, dict) and decoded.get("object") in (
            "chat.completion",
            "text_completion",
            "list",
        )
        import truckllm_provider_gemini as gemini

        gemini.parse_usage(provider=gx.provider(), request=request, body=body)


# --- upstream streams ----------------------------------------------------------------------------

events = st.lists(
    answers.map(lambda a: b"data: " + json.dumps(a).encode() + b"\r\n\r\n")
    | st.sampled_from(
        [
            b": keep-alive\r\n\r\n",
            b'{\n  "error": {\n    "code": 503,\n    "message": "busy",\n    "status": "UNAVAILABLE"\n  }\n}\n',
            b"data: [DONE]\r\n\r\n",
            b"data: {broken\r\n\r\n",
            b"event: ping\ndata: {}\n\n",
            b"\r\n",
        ]
    )
    | st.binary(max_size=12),
    max_size=6,
)


def _outcome(gx: Any, request: Any, raw: bytes, cuts: list[int]) -> tuple[Any, Any]:
    out, failure, _ = gx.run_stream(request, raw, cuts)
    frames = gx.normalize(gx.frames(out))
    return frames, None if failure is None else (failure.error.kind, failure.error.message)


@SETTINGS
@given(
    chunks=events,
    cuts=st.lists(st.integers(1, 400), max_size=8),
    include_usage=st.booleans(),
    endpoint=st.sampled_from(["chat", "completions"]),
)
def test_any_stream_split_anywhere_gives_the_same_result(
    gx: Any, chunks: list[bytes], cuts: list[int], include_usage: bool, endpoint: str
) -> None:
    body: dict[str, Any] = {"model": "a", "stream": True, "stream_options": {"include_usage": include_usage}}
    if endpoint == "chat":
        body["messages"] = [{"role": "user", "content": "hi"}]
    else:
        body["prompt"] = "hi"
    request = gx.request(body, endpoint)
    raw = b"".join(chunks)
    whole = _outcome(gx, request, raw, [])
    assert _outcome(gx, request, raw, cuts) == whole
    assert _outcome(gx, request, raw, list(range(1, len(raw), 3))) == whole
    frames, failure = whole
    if failure is None:
        assert frames[-1] == "[DONE]"
        finish = [c for c in frames if isinstance(c, dict) for ch in c["choices"] if ch.get("finish_reason")]
        assert finish  # a clean end always reported a finish reason
    else:
        assert "[DONE]" not in frames


@SETTINGS
@given(chunks=events, cuts=st.lists(st.integers(1, 400), max_size=8))
def test_gemini_passthrough_stream_split_anywhere(gx: Any, chunks: list[bytes], cuts: list[int]) -> None:
    request = gx.request({"contents": [], "stream": True}, dialect="gemini")
    raw = b"".join(chunks)
    results = []
    for points in ([], cuts):
        out, failure, _ = gx.run_stream(request, raw, points)
        results.append((out, None if failure is None else failure.error.message))
    assert results[0] == results[1]


# --- schemas -------------------------------------------------------------------------------------


def _nodes(node: Any) -> list[dict[str, Any]]:
    if not isinstance(node, dict):
        return []
    found = [node]
    for sub in (node.get("properties") or {}).values():
        found += _nodes(sub)
    found += _nodes(node.get("items"))
    for sub in node.get("anyOf") or []:
        found += _nodes(sub)
    return found


@SETTINGS
@given(schema=schemas | json_values)
def test_any_schema_cleans_to_what_gemini_accepts(schema: Any) -> None:
    from truckllm_provider_gemini.schema import to_gemini_schema

    cleaned = to_gemini_schema(schema)
    problems = FAKE._walk(cleaned, "Schema", "p") + FAKE._check_schema(cleaned, "p")
    assert problems == [], (schema, cleaned)
    for node in _nodes(cleaned):
        if "properties" in node:
            assert node["type"] == "OBJECT" and node["properties"]
        if node.get("type") == "ARRAY":
            assert "items" in node
        if "enum" in node:
            assert node["type"] == "STRING" and node["enum"]
