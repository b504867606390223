"""The fake Gemini server speaks the Developer API's exact wire format."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from truckllm_testing.fakes import FakeGemini, Fault, Reply, ToolCall, parse_sse

HEADERS = {"x-goog-api-key": "k1"}
USER = [{"role": "user", "parts": [{"text": "what is the weather in Paris today"}]}]
CALL_TURN = [
    *USER,
    {
        "role": "model",
        "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2ln"},
            {"functionCall": {"name": "get_time", "args": {}}},
        ],
    },
]


@pytest.fixture
async def fake() -> AsyncIterator[FakeGemini]:
    async with FakeGemini(keys=["k1", "k2"]) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    fake: FakeGemini,
    method: str = "generateContent",
    model: str = "gemini-2.5-flash",
    query: str = "",
    headers: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
) -> aiohttp.ClientResponse:
    url = f"{fake.base_url}/models/{model}:{method}{query}"
    payload = {"contents": USER} if body is None else body
    resp = await http.post(url, json=payload, headers=HEADERS if headers is None else headers)
    await resp.read()
    return resp


def sse_chunks(raw: bytes) -> list[dict[str, Any]]:
    """The ``data:`` chunks of a Gemini SSE body; asserts CRLF framing and no [DONE]."""
    assert raw.endswith(b"\r\n\r\n")
    frames = raw.split(b"\r\n\r\n")[:-1]
    assert all(f.startswith(b"data: {") and b"\n" not in f for f in frames)
    assert b"[DONE]" not in raw and b"event:" not in raw
    return [json.loads(f[len(b"data: ") :]) for f in frames]


# --------------------------------------------------------------------------- auth and basics


async def test_keys_by_header_or_query(fake: FakeGemini, http: aiohttp.ClientSession) -> None:
    assert fake.base_url == f"http://127.0.0.1:{fake.port}/v1beta"
    assert (await call(http, fake)).status == 200
    assert (await call(http, fake, query="?key=k2", headers={})).status == 200
    assert fake.requests[-1].api_key == "k2"
    resp = await call(http, fake, headers={"x-goog-api-key": "bad"})
    body = await resp.json()
    assert resp.status == 400
    assert body["error"]["status"] == "INVALID_ARGUMENT"
    assert body["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    assert body["error"]["details"][0]["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    resp = await call(http, fake, headers={})
    assert resp.status == 403
    assert (await resp.json())["error"]["status"] == "PERMISSION_DENIED"


async def test_generate_content(fake: FakeGemini, http: aiohttp.ClientSession) -> None:
    body = {"contents": USER, "systemInstruction": {"parts": [{"text": "be brief"}]}}
    resp = await call(http, fake, body=body)
    raw = await resp.read()
    assert raw.startswith(b'{\n  "candidates": [')  # pretty-printed
    assert resp.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert "x-request-id" not in resp.headers and not any(h.startswith("x-ratelimit") for h in resp.headers)
    data = json.loads(raw)
    assert data["candidates"] == [
        {
            "content": {"parts": [{"text": "echo: what is the weather in Paris today"}], "role": "model"},
            "finishReason": "STOP",
        }
    ]
    assert data["usageMetadata"]["promptTokenCount"] == 10
    assert data["usageMetadata"]["candidatesTokenCount"] == 8
    assert data["usageMetadata"]["totalTokenCount"] == 18
    assert "thoughtsTokenCount" not in data["usageMetadata"]  # zero values are omitted
    assert data["modelVersion"] == "gemini-2.5-flash" and data["responseId"]
    assert "id" not in data and "created" not in data
    assert fake.violations == []


async def test_usage_with_thoughts_and_cache(fake: FakeGemini, http: aiohttp.ClientSession) -> None:
    fake.script(
        Reply(text="done", thinking="let me think", prompt_tokens=50, cached_tokens=20, completion_tokens=30)
    )
    data = await (await call(http, fake)).json()
    parts = data["candidates"][0]["content"]["parts"]
    assert parts == [{"text": "let me think", "thought": True}, {"text": "done"}]
    usage = data["usageMetadata"]
    assert usage["promptTokenCount"] == 50
    assert usage["cachedContentTokenCount"] == 20
    assert usage["thoughtsTokenCount"] == 3
    assert usage["candidatesTokenCount"] == 27  # excludes thoughts
    assert usage["totalTokenCount"] == 80


# --------------------------------------------------------------------------- streaming


async def test_stream_sse_crlf(fake: FakeGemini, http: aiohttp.ClientSession) -> None:
    resp = await call(http, fake, method="streamGenerateContent", query="?alt=sse")
    assert resp.headers["Content-Type"] == "text/event-stream"
    raw = await resp.read()
    assert b'{"candidates": [{"content": {"parts": [{"text": "' in raw  # Google's ": " separators
    chunks = sse_chunks(raw)
    assert len(chunks) == 3
    assert len({c["responseId"] for c in chunks}) == 1
    assert all(c["modelVersion"] == "gemini-2.5-flash" for c in chunks)
    assert all("usageMetadata" in c for c in chunks)
    for early in chunks[:-1]:
        assert "finishReason" not in early["candidates"][0]
        assert "candidatesTokenCount" not in early["usageMetadata"]
        assert early["usageMetadata"]["totalTokenCount"] == early["usageMetadata"]["promptTokenCount"]
    assert all("index" not in c["candidates"][0] for c in chunks)
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert chunks[-1]["usageMetadata"]["candidatesTokenCount"] == 8
    text = "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks)
    assert text == "echo: what is the weather in Paris today"
    assert [json.loads(e.data) for e in parse_sse(raw)] == chunks


async def test_stream_without_alt_is_a_json_array(fake: FakeGemini, http: aiohttp.ClientSession) -> None:
    resp = await call(http, fake, method="streamGenerateContent")
    raw = await resp.read()
    assert resp.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert raw.startswith(b"[{\n") and raw.endswith(b"}\n]")
    assert raw.count(b"\n,\r\n") == 2
    chunks = json.loads(raw)
    assert isinstance(chunks, list) and len(chunks) == 3
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"


async def test_function_calls_are_whole_parts(fake: FakeGemini, http: aiohttp.ClientSession) -> None:
    fake.script(Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"}), ToolCall("get_time", {})]))
    raw = await (await call(http, fake, method="streamGenerateContent", query="?alt=sse")).read()
    chunks = sse_chunks(raw)
    assert len(chunks) == 1
    candidate = chunks[0]["candidates"][0]
    assert candidate["finishReason"] == "STOP"
    first, second = candidate["content"]["parts"]
    assert first["functionCall"] == {"name": "get_weather", "args": {"city": "Paris"}}
    assert isinstance(first["thoughtSignature"], str) and first["thoughtSignature"]
    assert second == {"functionCall": {"name": "get_time", "args": {}}}
    fake.script(Reply(tool_calls=[ToolCall("get_weather", {"city": "Rome"}, id="fc_1")]))
    data = await (await call(http, fake)).json()
    assert data["candidates"][0]["content"]["parts"][0]["functionCall"]["id"] == "fc_1"


async def test_blocked_prompt(fake: FakeGemini, http: aiohttp.ClientSession) -> None:
    fake.script(Reply(blocked=True))
    data = await (await call(http, fake)).json()
    assert "candidates" not in data
    assert data["promptFeedback"] == {"blockReason": "SAFETY"}
    fake.script(Reply(blocked=True, finish="PROHIBITED_CONTENT"))
    chunks = sse_chunks(
        await (await call(http, fake, method="streamGenerateContent", query="?alt=sse")).read()
    )
    assert len(chunks) == 1 and chunks[0]["promptFeedback"]["blockReason"] == "PROHIBITED_CONTENT"


async def test_candidate_without_content(fake: FakeGemini, http: aiohttp.ClientSession) -> None:
    fake.script(Reply(text="", finish="SAFETY"))
    data = await (await call(http, fake)).json()
    assert data["candidates"] == [{"finishReason": "SAFETY"}]
    body = {"contents": USER, "generationConfig": {"maxOutputTokens": 3}}
    data = await (await call(http, fake, body=body)).json()
    assert data["candidates"][0]["content"]["parts"][0]["text"] == "echo: what is"
    assert data["candidates"][0]["finishReason"] == "MAX_TOKENS"


# --------------------------------------------------------------------------- faults


async def test_rate_limit_details(fake: FakeGemini, http: aiohttp.ClientSession) -> None:
    fake.inject(Fault(status=429, retry_after=47, key="k1"))
    assert (await call(http, fake, headers={"x-goog-api-key": "k2"})).status == 200
    resp = await call(http, fake)
    error = (await resp.json())["error"]
    assert resp.status == 429 and "retry-after" not in resp.headers
    assert error["status"] == "RESOURCE_EXHAUSTED" and error["code"] == 429
    types = [d["@type"] for d in error["details"]]
    assert types == [
        "type.googleapis.com/google.rpc.QuotaFailure",
        "type.googleapis.com/google.rpc.Help",
        "type.googleapis.com/google.rpc.RetryInfo",
    ]
    assert error["details"][0]["violations"][0]["quotaId"].endswith("PerMinutePerProjectPerModel-FreeTier")
    assert error["details"][2]["retryDelay"] == "47s"
    fake.inject(Fault(kind="quota_per_day", retry_after=0.5))
    error = (await (await call(http, fake)).json())["error"]
    assert "PerDay" in error["details"][0]["violations"][0]["quotaId"]
    assert error["details"][2]["retryDelay"] == "0.5s"


@pytest.mark.parametrize(
    ("fault", "status", "grpc"),
    [
        (Fault(status=500), 500, "INTERNAL"),
        (Fault(status=503), 503, "UNAVAILABLE"),
        (Fault(kind="overloaded"), 503, "UNAVAILABLE"),
        (Fault(kind="timeout"), 504, "DEADLINE_EXCEEDED"),
        (Fault(kind="permission"), 403, "PERMISSION_DENIED"),
        (Fault(kind="not_found"), 404, "NOT_FOUND"),
        (Fault(kind="context_length"), 400, "INVALID_ARGUMENT"),
    ],
)
async def test_error_kinds(
    fake: FakeGemini, http: aiohttp.ClientSession, fault: Fault, status: int, grpc: str
) -> None:
    fake.inject(fault)
    resp = await call(http, fake)
    raw = await resp.read()
    assert raw.startswith(b'{\n  "error": {')
    assert resp.status == status and json.loads(raw)["error"]["status"] == grpc


async def test_mid_stream_raw_error(fake: FakeGemini, http: aiohttp.ClientSession) -> None:
    fake.script(Reply(text="one two three four five six"))
    fake.inject(Fault(error_after=1))
    raw = await (await call(http, fake, method="streamGenerateContent", query="?alt=sse")).read()
    first, rest = raw.split(b"\r\n\r\n", 1)
    assert first.startswith(b"data: ")
    assert not rest.startswith(b"data:")
    assert json.loads(rest) == {
        "error": {
            "code": 503,
            "message": "The model is overloaded. Please try again later.",
            "status": "UNAVAILABLE",
        }
    }
    assert len(parse_sse(raw)) == 1  # an SSE parser sees only the first event
    fake.inject(Fault(error_after=1))
    raw = await (await call(http, fake, method="streamGenerateContent")).read()
    items = json.loads(raw)
    assert len(items) == 2 and items[1]["error"]["status"] == "UNAVAILABLE"


# --------------------------------------------------------------------------- validation


def contents_with(*parts: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "parts": list(parts)}]


def with_tool(parameters: dict[str, Any]) -> dict[str, Any]:
    return {"contents": USER, "tools": [{"functionDeclarations": [{"name": "f", "parameters": parameters}]}]}


BAD = [
    ({"contents": []}, "contents is not specified"),
    ({"contents": [{"role": "user", "parts": []}]}, "contents.parts must not be empty"),
    ({"contents": contents_with({"text": ""})}, "empty text parameter"),
    ({"contents": contents_with({})}, "required oneof field 'data' must have one initialized field"),
    (
        {"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]},
        "Please use a valid role: user, model.",
    ),
    (
        {"contents": USER, "system_instruction": {"parts": [{"text": "x"}]}},
        'Unknown name "system_instruction"',
    ),
    ({"contents": [{"role": "user", "parts": [{"inline_data": {}}]}]}, 'Unknown name "inline_data"'),
    ({"contents": USER, "generationConfig": {"max_output_tokens": 5}}, 'Unknown name "max_output_tokens"'),
    (
        {
            "contents": [
                *CALL_TURN,
                {
                    "role": "user",
                    "parts": [{"functionResponse": {"name": "get_weather", "response": {"x": 1}}}],
                },
            ]
        },
        "the number of function response parts is equal to the number of function call parts",
    ),
    (
        {
            "contents": [
                *CALL_TURN,
                {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {}}}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "get_time", "response": {}}}]},
            ]
        },
        "function response turn comes immediately after a function call turn",
    ),
    (
        {
            "contents": [
                *USER,
                {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": "sunny"}}]},
            ]
        },
        "(type.googleapis.com/google.protobuf.Struct)",
    ),
    (with_tool({"$schema": "x", "type": "object"}), 'Unknown name "$schema"'),
    (with_tool({"type": "object", "additionalProperties": False}), 'Unknown name "additionalProperties"'),
    (with_tool({"type": "object", "properties": {"a": {"const": 1}}}), 'Unknown name "const"'),
    (with_tool({"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}}), 'Unknown name "$ref"'),
    (with_tool({"type": "object", "$defs": {}}), 'Unknown name "$defs"'),
    (with_tool({"type": "object", "propertyNames": {}}), 'Unknown name "propertyNames"'),
    (
        with_tool({"type": "object", "properties": {"a": {"type": ["string", "null"]}}}),
        "Proto field is not repeating, cannot start list.",
    ),
    (with_tool({"type": "object", "required": ["a"]}), "required[0]: property is not defined"),
    (
        {
            "contents": USER,
            "generationConfig": {
                "responseMimeType": "application/json",
                "responseSchema": {"type": "object", "additionalProperties": False},
            },
        },
        "at 'generation_config.response_schema': Cannot find field.",
    ),
    ({"contents": USER, "generationConfig": {"stopSequences": list("abcdef")}}, "stop_sequences"),
]


@pytest.mark.parametrize(("body", "message"), BAD)
async def test_validation_rejects(
    fake: FakeGemini, http: aiohttp.ClientSession, body: dict[str, Any], message: str
) -> None:
    resp = await call(http, fake, body=body)
    error = (await resp.json())["error"]
    assert resp.status == 400
    assert error["status"] == "INVALID_ARGUMENT"
    assert message in error["message"]
    assert any(message in v for v in fake.violations)


async def test_valid_function_round_trip(http: aiohttp.ClientSession) -> None:
    async with FakeGemini(keys=["k1"], require_thought_signature=True) as fake:
        contents = [
            *CALL_TURN,
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"output": {"temp_c": 21}}}},
                    {"functionResponse": {"name": "get_time", "response": {"output": "noon"}}},
                ],
            },
        ]
        tools = [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "parameters": {
                            "type": "OBJECT",
                            "properties": {"city": {"type": "string", "nullable": True, "enum": ["Paris"]}},
                            "required": ["city"],
                        },
                    },
                    {
                        "name": "get_time",
                        "parametersJsonSchema": {"type": "object", "additionalProperties": False},
                    },
                ]
            }
        ]
        body = {
            "contents": contents,
            "tools": tools,
            "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}},
            "generationConfig": {"temperature": 0.2, "thinkingConfig": {"thinkingBudget": 0}},
        }
        resp = await call(http, fake, body=body)
        assert resp.status == 200, await resp.text()
        assert fake.violations == []
        del contents[1]["parts"][0]["thoughtSignature"]
        resp = await call(http, fake, body=body)
        assert resp.status == 400
        assert "Function call is missing a thought_signature" in (await resp.json())["error"]["message"]


async def test_lenient_mode_records_snake_case(http: aiohttp.ClientSession) -> None:
    async with FakeGemini(keys=["k1"], strict=False) as fake:
        body = {"contents": USER, "system_instruction": {"parts": [{"text": "x"}]}}
        assert (await call(http, fake, body=body)).status == 200
        assert fake.violations == [
            'Invalid JSON payload received. Unknown name "system_instruction": Cannot find field.'
        ]


# --------------------------------------------------------------------------- other endpoints


async def test_embeddings_and_count_tokens(fake: FakeGemini, http: aiohttp.ClientSession) -> None:
    one = {
        "content": {"parts": [{"text": "hello"}]},
        "taskType": "RETRIEVAL_DOCUMENT",
        "outputDimensionality": 4,
    }
    data = await (await call(http, fake, "embedContent", "gemini-embedding-001", body=one)).json()
    assert len(data["embedding"]["values"]) == 4
    request = {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "hello"}]}}
    batch = {"requests": [request, {**request, "content": {"parts": [{"text": "bye"}]}}]}
    data = await (await call(http, fake, "batchEmbedContents", "gemini-embedding-001", body=batch)).json()
    assert len(data["embeddings"]) == 2 and len(data["embeddings"][0]["values"]) == 8
    assert data["embeddings"][0]["values"][:4] != data["embeddings"][1]["values"][:4]
    resp = await call(
        http, fake, "batchEmbedContents", "gemini-embedding-001", body={"requests": [request] * 101}
    )
    assert resp.status == 400
    assert "at most 100 requests can be in one batch" in (await resp.json())["error"]["message"]
    resp = await call(http, fake, "batchEmbedContents", "text-embedding-004", body={"requests": [request]})
    assert resp.status == 400
    data = await (await call(http, fake, "countTokens")).json()
    assert data["totalTokens"] == 8
    wrapped = {"generateContentRequest": {"model": "models/gemini-2.5-flash", "contents": USER}}
    assert (await (await call(http, fake, "countTokens", body=wrapped)).json())["totalTokens"] == 8


async def test_models_list_and_unknown_method(http: aiohttp.ClientSession) -> None:
    async with FakeGemini(keys=["k1"], models=["gemini-a", "gemini-b", "gemini-embedding-x"]) as fake:
        async with http.get(f"{fake.base_url}/models?pageSize=2", headers=HEADERS) as resp:
            page = await resp.json()
        assert [m["name"] for m in page["models"]] == ["models/gemini-a", "models/gemini-b"]
        assert "generateContent" in page["models"][0]["supportedGenerationMethods"]
        url = f"{fake.base_url}/models?key=k1&pageToken={page['nextPageToken']}"
        async with http.get(url) as resp:
            page = await resp.json()
        assert [m["name"] for m in page["models"]] == ["models/gemini-embedding-x"]
        assert "nextPageToken" not in page
        resp = await call(http, fake, model="gemini-zzz")
        assert resp.status == 404 and (await resp.json())["error"]["status"] == "NOT_FOUND"
        resp = await call(http, fake, method="generateText", model="gemini-a")
        assert resp.status == 404
        assert fake.violations == ["unknown method POST /v1beta/models/gemini-a:generateText"]


def test_threaded_mode() -> None:
    fake = FakeGemini(keys=["k1"])
    with fake.running():
        request = urllib.request.Request(
            f"{fake.base_url}/models/gemini-2.5-flash:streamGenerateContent?alt=sse&key=k1",
            data=json.dumps({"contents": USER}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as resp:
            raw = resp.read()
    assert raw.endswith(b"\r\n\r\n") and raw.count(b"data: ") == 3
    assert fake.requests[0].stream and fake.requests[0].api_key == "k1"


def test_official_sdk_reads_the_fake() -> None:
    genai = pytest.importorskip("google.genai")
    types = pytest.importorskip("google.genai.types")
    errors = pytest.importorskip("google.genai.errors")
    with FakeGemini(keys=["k1"]).running() as fake:
        options = types.HttpOptions(base_url=fake.origin, api_version="v1beta")
        client = genai.Client(api_key="k1", http_options=options)
        config = types.GenerateContentConfig(system_instruction="be brief", temperature=0.2)
        reply = client.models.generate_content(
            model="gemini-2.5-flash", contents="hello there", config=config
        )
        assert reply.text == "echo: hello there"
        assert fake.requests[-1].json["systemInstruction"] == {
            "parts": [{"text": "be brief"}],
            "role": "user",
        }
        fake.script(Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]))
        chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))
        assert chunks[-1].function_calls[0].args == {"city": "Paris"}
        assert fake.requests[-1].query == {"alt": "sse"}
        fake.inject(Fault(error_after=1))
        with pytest.raises(errors.ServerError, match="UNAVAILABLE"):
            for _ in client.models.generate_content_stream(
                model="gemini-2.5-flash", contents="one two three"
            ):
                pass
        fake.inject(Fault(status=429))
        with pytest.raises(errors.ClientError, match="RESOURCE_EXHAUSTED"):
            client.models.generate_content(model="gemini-2.5-flash", contents="hi")
        assert (
            len(client.models.embed_content(model="gemini-embedding-001", contents=["a", "b"]).embeddings)
            == 2
        )
        assert fake.violations == []
