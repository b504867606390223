"""The fake OpenAI server speaks OpenAI's exact wire format."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import time
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from truckllm_testing.fakes import FakeOpenAI, Fault, Reply, ToolCall, parse_sse, sse_frames

AUTH = {"Authorization": "Bearer k1"}
USER = [{"role": "user", "content": "what is the weather in Paris today"}]


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(keys=["k1", "k2"]) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def chat(
    http: aiohttp.ClientSession, fake: FakeOpenAI, key: str = "k1", **body: Any
) -> aiohttp.ClientResponse:
    payload = {"model": "gpt-4o", "messages": USER, **body}
    resp = await http.post(
        f"{fake.base_url}/chat/completions", json=payload, headers={"Authorization": f"Bearer {key}"}
    )
    await resp.read()
    return resp


def chunks_of(raw: bytes) -> list[dict[str, Any]]:
    """Every ``data:`` JSON chunk before ``[DONE]``; asserts the exact OpenAI framing."""
    frames = sse_frames(raw)
    assert raw.endswith(b"data: [DONE]\n\n")
    assert b"\r" not in raw and b"event:" not in raw
    assert all(f.startswith(b"data: ") and b"\n" not in f for f in frames)
    assert frames[-1] == b"data: [DONE]"
    return [json.loads(f[len(b"data: ") :]) for f in frames[:-1]]


# --------------------------------------------------------------------------- basics


async def test_base_url_and_models(fake: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    assert fake.base_url == f"http://127.0.0.1:{fake.port}/v1"
    async with http.get(f"{fake.base_url}/models", headers=AUTH) as resp:
        body = await resp.json()
    assert resp.status == 200
    assert body["object"] == "list"
    assert {"id", "object", "created", "owned_by"} <= set(body["data"][0])
    async with http.get(f"{fake.base_url}/models/gpt-4o", headers=AUTH) as resp:
        assert (await resp.json())["id"] == "gpt-4o"


async def test_default_answer_is_deterministic(fake: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    resp = await chat(http, fake, messages=[{"role": "system", "content": "be brief"}, *USER])
    raw = await resp.read()
    assert raw.startswith(b'{\n  "id": "chatcmpl-')  # pretty-printed like the real API
    body = json.loads(raw)
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.headers["x-request-id"].startswith("req_")
    assert resp.headers["x-ratelimit-limit-requests"] == "5000"
    assert resp.headers["x-ratelimit-remaining-requests"] == "4999"
    assert resp.headers["x-ratelimit-reset-requests"] == "12ms"
    assert body["object"] == "chat.completion"
    choice = body["choices"][0]
    assert choice["message"] == {
        "role": "assistant",
        "content": "echo: what is the weather in Paris today",
        "refusal": None,
        "annotations": [],
    }
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["prompt_tokens"] == 2 + 7 + 1  # words of all messages + 1
    assert usage["completion_tokens"] == 8
    assert usage["total_tokens"] == 18
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0
    req = fake.requests[-1]
    assert req.api_key == "k1" and req.model == "gpt-4o" and req.status == 200
    assert req.headers["authorization"] == "Bearer k1"
    assert req.finished is not None and req.finished >= req.started
    assert fake.violations == []


async def test_missing_and_wrong_key(fake: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{fake.base_url}/chat/completions", json={}) as resp:
        body = await resp.json()
    assert resp.status == 401
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] is None
    resp = await chat(http, fake, key="sk-wrong-key-123456")
    body = await resp.json()
    assert resp.status == 401
    assert body["error"]["code"] == "invalid_api_key"
    assert body["error"]["type"] == "invalid_request_error"
    assert "sk-****3456" in body["error"]["message"]


# --------------------------------------------------------------------------- streaming


async def test_stream_without_usage(fake: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    resp = await chat(http, fake, stream=True)
    assert resp.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    chunks = chunks_of(await resp.read())
    assert len({c["id"] for c in chunks}) == 1 and len({c["created"] for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert all("usage" not in c for c in chunks)
    assert all(isinstance(c["obfuscation"], str) for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == "echo: what is the weather in Paris today"
    assert len(chunks) == 1 + 3 + 1  # role, fake.chunks pieces, finish
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert [e.data for e in parse_sse(await resp.read())][-1] == "[DONE]"


async def test_stream_include_usage(fake: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    resp = await chat(
        http, fake, stream=True, stream_options={"include_usage": True, "include_obfuscation": False}
    )
    chunks = chunks_of(await resp.read())
    assert all(c["usage"] is None for c in chunks[:-1])
    assert all("obfuscation" not in c for c in chunks)
    final = chunks[-1]
    assert final["choices"] == []
    assert final["usage"]["prompt_tokens"] == 8 and final["usage"]["completion_tokens"] == 8
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


async def test_stream_parallel_tool_calls(fake: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    fake.script(
        Reply(
            tool_calls=[
                ToolCall("get_weather", {"city": "Paris", "unit": "celsius"}),
                ToolCall("get_time", {"tz": "Europe/Paris"}, id="call_fixed"),
            ]
        )
    )
    resp = await chat(http, fake, stream=True, stream_options={"include_usage": True})
    chunks = chunks_of(await resp.read())
    first = chunks[0]["choices"][0]["delta"]
    assert first["role"] == "assistant" and first["content"] is None
    deltas = [d for c in chunks[:-1] for d in c["choices"][0]["delta"].get("tool_calls", [])]
    assert all(len(c["choices"][0]["delta"].get("tool_calls", [])) <= 1 for c in chunks[:-1])
    heads = [d for d in deltas if "id" in d]
    assert [h["index"] for h in heads] == [0, 1]
    assert heads[1]["id"] == "call_fixed" and heads[0]["id"].startswith("call_")
    for head in heads:
        assert head["type"] == "function" and head["function"]["arguments"] == ""
    rest = [d for d in deltas if "id" not in d]
    assert all(set(d) == {"index", "function"} and set(d["function"]) == {"arguments"} for d in rest)
    for index, expected in ((0, {"city": "Paris", "unit": "celsius"}), (1, {"tz": "Europe/Paris"})):
        pieces = [d["function"]["arguments"] for d in deltas if d["index"] == index]
        assert len(pieces) > 2  # split over several chunks
        assert any(_invalid_json(p) for p in pieces[1:])  # cut mid-token
        assert json.loads("".join(pieces)) == expected
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0


def _invalid_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return True
    return False


async def test_non_stream_tool_calls_and_overrides(fake: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    fake.script(
        Reply(
            tool_calls=[ToolCall("get_weather", {"city": "Paris"})],
            prompt_tokens=100,
            completion_tokens=50,
            cached_tokens=20,
            reasoning_tokens=10,
        )
    )
    body = await (await chat(http, fake)).json()
    message = body["choices"][0]["message"]
    assert message["content"] is None
    call = message["tool_calls"][0]
    assert call["type"] == "function"
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    usage = body["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (100, 50, 150)
    assert usage["prompt_tokens_details"]["cached_tokens"] == 20
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 10


async def test_scripted_text_finish_limits_and_stops(fake: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    fake.script(Reply(text="I cannot help with that.", finish="content_filter"))
    body = await (await chat(http, fake)).json()
    assert body["choices"][0]["message"]["content"] == "I cannot help with that."
    assert body["choices"][0]["finish_reason"] == "content_filter"
    body = await (await chat(http, fake, max_completion_tokens=3)).json()
    assert body["choices"][0]["message"]["content"] == "echo: what is"
    assert body["choices"][0]["finish_reason"] == "length"
    body = await (await chat(http, fake, stop=["Paris"])).json()
    assert body["choices"][0]["message"]["content"] == "echo: what is the weather in "
    assert body["choices"][0]["finish_reason"] == "stop"


async def test_reply_matching_by_key_model_and_times(fake: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    fake.script(Reply(text="for k2", key="k2"))
    fake.script(Reply(text="forever mini", model="gpt-4o-mini", times=-1))
    assert (await (await chat(http, fake)).json())["choices"][0]["message"]["content"].startswith("echo:")
    assert (await (await chat(http, fake, key="k2")).json())["choices"][0]["message"]["content"] == "for k2"
    assert (await (await chat(http, fake, key="k2")).json())["choices"][0]["message"]["content"] != "for k2"
    for _ in range(3):
        body = await (await chat(http, fake, model="gpt-4o-mini")).json()
        assert body["choices"][0]["message"]["content"] == "forever mini"
    assert fake.pending == 1
    fake.reset()
    assert fake.pending == 0 and fake.requests == []


# --------------------------------------------------------------------------- faults


async def test_rate_limit_once_on_one_key(fake: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    fake.inject(Fault(status=429, retry_after=2, key="k1"))
    assert (await chat(http, fake, key="k2")).status == 200
    resp = await chat(http, fake, key="k1")
    body = await resp.json()
    assert resp.status == 429
    assert resp.headers["retry-after"] == "2"
    assert resp.headers["retry-after-ms"] == "2000"
    assert resp.headers["x-ratelimit-remaining-tokens"] == "0"
    assert resp.headers["x-ratelimit-reset-tokens"] == "2s"
    assert body["error"]["type"] == "tokens"
    assert body["error"]["code"] == "rate_limit_exceeded"
    assert "Please try again in 2s" in body["error"]["message"]
    assert (await chat(http, fake, key="k1")).status == 200
    assert fake.requests[1].fault is not None and fake.requests[2].fault is None


@pytest.mark.parametrize(
    ("fault", "status", "err_type", "code"),
    [
        (Fault(status=500), 500, "server_error", None),
        (Fault(status=503), 503, "server_error", None),
        (Fault(kind="overloaded"), 503, "server_error", None),
        (Fault(kind="spend_limit"), 429, "insufficient_quota", "insufficient_quota"),
        (Fault(kind="rate_limit_requests"), 429, "requests", "rate_limit_exceeded"),
        (Fault(kind="context_length"), 400, "invalid_request_error", "context_length_exceeded"),
        (Fault(kind="auth"), 401, "invalid_request_error", "invalid_api_key"),
        (Fault(kind="not_found"), 404, "invalid_request_error", "model_not_found"),
    ],
)
async def test_error_kinds(
    fake: FakeOpenAI, http: aiohttp.ClientSession, fault: Fault, status: int, err_type: str, code: str | None
) -> None:
    fake.inject(fault)
    resp = await chat(http, fake)
    raw = await resp.read()
    assert raw.startswith(b'{\n    "error": {')  # OpenAI indents errors by 4
    body = json.loads(raw)
    assert resp.status == status
    assert body["error"]["type"] == err_type and body["error"]["code"] == code
    assert "x-request-id" in resp.headers


async def test_fault_forever_for_one_model(fake: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    fake.inject(Fault(status=500, model="gpt-4o-mini", times=-1))
    for _ in range(3):
        assert (await chat(http, fake, model="gpt-4o-mini")).status == 500
    assert (await chat(http, fake)).status == 200


async def test_mid_stream_error(fake: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    fake.inject(Fault(error_after=2))
    resp = await chat(http, fake, stream=True)
    raw = await resp.read()
    assert resp.status == 200
    frames = sse_frames(raw)
    assert len(frames) == 3 and b"[DONE]" not in raw
    error = json.loads(frames[-1][len(b"data: ") :])
    assert error == {
        "error": {
            "message": error["error"]["message"],
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }


async def test_drop_after_cuts_the_connection(fake: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    fake.inject(Fault(drop_after=2))
    body = {"model": "gpt-4o", "messages": USER, "stream": True}
    received = b""
    async with http.post(f"{fake.base_url}/chat/completions", json=body, headers=AUTH) as resp:
        with pytest.raises(aiohttp.ClientPayloadError):
            async for piece in resp.content.iter_any():
                received += piece
    assert received.count(b"data: ") == 2
    assert fake.requests[-1].dropped
    fake.inject(Fault(drop_after=0))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await chat(http, fake)


async def test_delay_and_chunk_delay(fake: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    fake.inject(Fault(delay=0.1))
    start = time.monotonic()
    assert (await chat(http, fake)).status == 200
    assert time.monotonic() - start >= 0.1
    fake.inject(Fault(chunk_delay=0.02))
    start = time.monotonic()
    await chat(http, fake, stream=True)
    assert time.monotonic() - start >= 0.02 * 4  # five events, four gaps


async def test_client_disconnect_is_recorded(fake: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    fake.inject(Fault(delay=0.5))
    task = asyncio.create_task(chat(http, fake))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):
        if fake.requests[-1].finished is not None:
            break
        await asyncio.sleep(0.01)
    assert fake.requests[-1].disconnected
    assert fake.requests[-1].finished is not None


# --------------------------------------------------------------------------- validation


BAD_BODIES = [
    ({"messages": USER}, "you must provide a model parameter"),
    ({"model": "gpt-4o"}, "Missing required parameter: 'messages'."),
    ({"model": "gpt-4o", "messages": []}, "Invalid 'messages': empty array."),
    ({"model": "gpt-4o", "messages": [{"role": "bot", "content": "x"}]}, "Invalid value: 'bot'."),
    ({"model": "gpt-4o", "messages": USER, "top_k": 3}, "Unrecognized request argument supplied: top_k"),
    ({"model": "gpt-4o", "messages": USER, "temperature": 3}, "Invalid 'temperature': decimal above maximum"),
    ({"model": "gpt-4o", "messages": USER, "stop": list("abcde")}, "Invalid 'stop': array too long."),
    (
        {"model": "gpt-4o", "messages": USER, "stream_options": {"include_usage": True}},
        "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
    ),
    (
        {"model": "gpt-4o", "messages": USER, "tool_choice": "auto"},
        "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
    ),
    (
        {"model": "gpt-4o", "messages": [*USER, {"role": "tool", "tool_call_id": "call_1", "content": "x"}]},
        "Invalid parameter: messages with role 'tool' must be a response to a preceeding message",
    ),
    (
        {
            "model": "gpt-4o",
            "messages": [
                *USER,
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                        {"id": "call_2", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
            ],
        },
        "The following tool_call_ids did not have response messages: call_2",
    ),
    (
        {
            "model": "gpt-4o",
            "messages": [
                *USER,
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": {}}}
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
            ],
        },
        "Invalid type for 'messages[1].tool_calls[0].function.arguments': expected a string",
    ),
    (
        {
            "model": "gpt-4o",
            "messages": USER,
            "tools": [{"type": "function", "function": {"name": "bad name"}}],
        },
        "Invalid 'tools[0].function.name': string does not match pattern.",
    ),
    ({"model": "o3-mini", "messages": USER, "max_tokens": 10}, "Unsupported parameter: 'max_tokens'"),
    ({"model": "gpt-4o", "messages": [{"role": "assistant"}]}, "Invalid value for 'content'"),
]


@pytest.mark.parametrize(("body", "message"), BAD_BODIES)
async def test_validation_rejects(
    fake: FakeOpenAI, http: aiohttp.ClientSession, body: dict[str, Any], message: str
) -> None:
    async with http.post(f"{fake.base_url}/chat/completions", json=body, headers=AUTH) as resp:
        error = (await resp.json())["error"]
    assert resp.status == 400
    assert error["type"] == "invalid_request_error"
    assert message in error["message"]
    assert fake.violations and message in fake.violations[0]
    assert fake.requests[-1].violations == fake.violations


async def test_bad_json_body(fake: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{fake.base_url}/chat/completions", data=b"{nope", headers=AUTH) as resp:
        body = await resp.json()
    assert resp.status == 400
    assert body["error"]["message"].startswith("We could not parse the JSON body of your request.")


async def test_lenient_mode_records_but_answers(http: aiohttp.ClientSession) -> None:
    async with FakeOpenAI(keys=["k1"], strict=False) as fake:
        resp = await chat(http, fake, top_k=5)
        assert resp.status == 200
        assert fake.violations == ["Unrecognized request argument supplied: top_k"]


async def test_valid_tool_round_trip(fake: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    messages = [
        {"role": "developer", "content": [{"type": "text", "text": "be brief"}]},
        *USER,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_2", "content": "noon"},
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "sunny"}]},
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}],
        },
    ]
    tools = [
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "get_time"}},
    ]
    resp = await chat(
        http, fake, messages=messages, tools=tools, tool_choice="auto", parallel_tool_calls=True
    )
    assert resp.status == 200, await resp.text()
    assert fake.violations == []


async def test_unknown_model_and_endpoint(http: aiohttp.ClientSession) -> None:
    async with FakeOpenAI(keys=["k1"], models=["gpt-4o"]) as fake:
        resp = await chat(http, fake, model="gpt-9")
        body = await resp.json()
        assert resp.status == 404 and body["error"]["code"] == "model_not_found"
        async with http.post(f"{fake.base_url}/assistants", json={}, headers=AUTH) as resp:
            assert resp.status == 404
        assert fake.violations == ["unknown endpoint POST /v1/assistants"]
        async with http.get(f"{fake.base_url}/models", headers=AUTH) as resp:
            assert [m["id"] for m in (await resp.json())["data"]] == ["gpt-4o"]


# --------------------------------------------------------------------------- other endpoints


async def test_legacy_completions(fake: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    body = {"model": "gpt-3.5-turbo-instruct", "prompt": "say something short"}
    async with http.post(f"{fake.base_url}/completions", json=body, headers=AUTH) as resp:
        data = await resp.json()
    assert data["object"] == "text_completion" and data["id"].startswith("cmpl-")
    assert data["choices"] == [
        {"text": "echo: say something short", "index": 0, "logprobs": None, "finish_reason": "stop"}
    ]
    assert data["usage"] == {"prompt_tokens": 4, "completion_tokens": 4, "total_tokens": 8}
    long_prompt = " ".join(["word"] * 20)
    body = {"model": "gpt-3.5-turbo-instruct", "prompt": long_prompt, "stream": True}
    async with http.post(f"{fake.base_url}/completions", json=body, headers=AUTH) as resp:
        chunks = chunks_of(await resp.read())
    assert all(c["object"] == "text_completion" for c in chunks)
    text = "".join(c["choices"][0]["text"] for c in chunks)
    assert len(text.split()) == 16  # max_tokens defaults to 16
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


async def test_embeddings_float_and_base64(fake: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    body = {"model": "text-embedding-3-small", "input": ["hello world", "bye"]}
    async with http.post(f"{fake.base_url}/embeddings", json=body, headers=AUTH) as resp:
        floats = await resp.json()
    assert floats["object"] == "list"
    assert [d["index"] for d in floats["data"]] == [0, 1]
    vector = floats["data"][0]["embedding"]
    assert len(vector) == 8 and abs(sum(v * v for v in vector) - 1) < 1e-5
    assert floats["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    body |= {"encoding_format": "base64"}
    async with http.post(f"{fake.base_url}/embeddings", json=body, headers=AUTH) as resp:
        encoded = (await resp.json())["data"][0]["embedding"]
    assert list(struct.unpack("<8f", base64.b64decode(encoded))) == vector
    body = {"model": "text-embedding-3-small", "input": "x", "dimensions": 3}
    async with http.post(f"{fake.base_url}/embeddings", json=body, headers=AUTH) as resp:
        assert len((await resp.json())["data"][0]["embedding"]) == 3
    async with http.post(
        f"{fake.base_url}/embeddings", json={"model": "m", "input": ""}, headers=AUTH
    ) as resp:
        assert resp.status == 400


# --------------------------------------------------------------------------- threaded mode


def test_threaded_mode_serves_sync_clients() -> None:
    fake = FakeOpenAI(keys=["k1"])
    with fake.running():
        fake.inject(Fault(status=503, times=1))
        request = urllib.request.Request(
            f"{fake.base_url}/chat/completions",
            data=json.dumps({"model": "gpt-4o", "messages": USER}).encode(),
            headers={**AUTH, "Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as failure:
            urllib.request.urlopen(request, timeout=5)
        assert failure.value.code == 503
        failure.value.close()
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert json.loads(resp.read())["choices"][0]["message"]["content"].startswith("echo:")
    assert len(fake.requests) == 2
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(request, timeout=1)


async def test_outage_and_recovery_on_the_same_port(http: aiohttp.ClientSession) -> None:
    fake = FakeOpenAI(keys=["k1"])
    await fake.start()
    url = fake.base_url
    await fake.close()
    with pytest.raises(aiohttp.ClientConnectionError):
        await chat(http, fake)
    await fake.start()
    try:
        assert fake.base_url == url
        assert (await chat(http, fake)).status == 200
    finally:
        await fake.close()


def test_official_sdk_reads_the_fake() -> None:
    openai = pytest.importorskip("openai")
    with FakeOpenAI(keys=["k1"]).running() as fake:
        client = openai.OpenAI(api_key="k1", base_url=fake.base_url, max_retries=0)
        reply = client.chat.completions.create(model="gpt-4o", messages=USER)
        assert reply.choices[0].message.content == "echo: what is the weather in Paris today"
        fake.script(Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"}), ToolCall("get_time", {})]))
        arguments: dict[int, str] = {}
        usage = None
        for chunk in client.chat.completions.create(
            model="gpt-4o", messages=USER, stream=True, stream_options={"include_usage": True}
        ):
            for choice in chunk.choices:
                for call in choice.delta.tool_calls or []:
                    arguments[call.index] = arguments.get(call.index, "") + (call.function.arguments or "")
            usage = chunk.usage or usage
        assert arguments == {0: '{"city":"Paris"}', 1: "{}"}
        assert usage is not None and usage.total_tokens > 0
        fake.inject(Fault(error_after=1))
        with pytest.raises(openai.APIError, match="The server had an error"):
            for _ in client.chat.completions.create(model="gpt-4o", messages=USER, stream=True):
                pass
        fake.inject(Fault(kind="spend_limit"))
        with pytest.raises(openai.RateLimitError) as failure:
            client.chat.completions.create(model="gpt-4o", messages=USER)
        assert failure.value.code == "insufficient_quota"
        assert (
            len(client.embeddings.create(model="text-embedding-3-small", input="hi").data[0].embedding) == 8
        )
        assert fake.violations == []
