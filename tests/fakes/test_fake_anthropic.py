"""The fake Anthropic server speaks the Messages API's exact wire format."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from truckllm_testing.fakes import (
    FakeAnthropic,
    Fault,
    Reply,
    SSEEvent,
    ToolCall,
    parse_sse,
    sse_frames,
    thinking_signature,
)

HEADERS = {"x-api-key": "k1", "anthropic-version": "2023-06-01"}
USER = [{"role": "user", "content": "what is the weather in Paris today"}]
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic(keys=["k1", "k2"]) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(
    http: aiohttp.ClientSession,
    fake: FakeAnthropic,
    headers: dict[str, str] | None = None,
    path: str = "/v1/messages",
    **body: Any,
) -> aiohttp.ClientResponse:
    payload = {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": USER, **body}
    resp = await http.post(
        f"{fake.base_url}{path}", json=payload, headers=HEADERS if headers is None else headers
    )
    await resp.read()
    return resp


async def stream(http: aiohttp.ClientSession, fake: FakeAnthropic, **body: Any) -> list[SSEEvent]:
    resp = await post(http, fake, stream=True, **body)
    raw = await resp.read()
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    assert b"\r" not in raw and raw.endswith(b"\n\n")
    for frame in sse_frames(raw):
        lines = frame.split(b"\n")
        assert len(lines) == 2 and lines[0].startswith(b"event: ") and lines[1].startswith(b"data: ")
    events = parse_sse(raw)
    for event in events:
        assert event.json()["type"] == event.event
    return events


# --------------------------------------------------------------------------- auth and basics


async def test_base_url_and_auth(fake: FakeAnthropic, http: aiohttp.ClientSession) -> None:
    assert fake.base_url == f"http://127.0.0.1:{fake.port}"
    resp = await post(http, fake, headers={"anthropic-version": "2023-06-01"})
    body = await resp.json()
    assert resp.status == 401
    assert body["type"] == "error"
    assert body["error"] == {"type": "authentication_error", "message": "x-api-key header is required"}
    assert body["request_id"].startswith("req_")
    resp = await post(http, fake, headers={**HEADERS, "x-api-key": "nope"})
    assert resp.status == 401
    assert (await resp.json())["error"]["message"] == "invalid x-api-key"
    resp = await post(http, fake, headers={"x-api-key": "k1"})
    assert resp.status == 400
    assert (await resp.json())["error"]["message"] == "anthropic-version: header is required"
    resp = await post(http, fake, headers={"Authorization": "Bearer k2", "anthropic-version": "2023-06-01"})
    assert resp.status == 200
    assert fake.requests[-1].api_key == "k2"


async def test_default_answer(fake: FakeAnthropic, http: aiohttp.ClientSession) -> None:
    resp = await post(http, fake, system=[{"type": "text", "text": "be brief"}])
    raw = await resp.read()
    assert b"\n" not in raw  # compact JSON
    body = json.loads(raw)
    assert resp.status == 200
    assert resp.headers["request-id"].startswith("req_011C")
    assert resp.headers["anthropic-ratelimit-requests-limit"] == "4000"
    assert resp.headers["anthropic-ratelimit-requests-remaining"] == "3999"
    reset = dt.datetime.fromisoformat(resp.headers["anthropic-ratelimit-tokens-reset"])
    assert reset.tzinfo is not None
    assert body["id"].startswith("msg_01") and body["type"] == "message" and body["role"] == "assistant"
    assert body["content"] == [{"type": "text", "text": "echo: what is the weather in Paris today"}]
    assert body["stop_reason"] == "end_turn" and body["stop_sequence"] is None
    assert body["usage"] == {
        "input_tokens": 10,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 8,
        "service_tier": "standard",
    }
    assert fake.violations == []


async def test_usage_overrides_and_stop_sequence(fake: FakeAnthropic, http: aiohttp.ClientSession) -> None:
    fake.script(Reply(text="Hello there", prompt_tokens=100, cached_tokens=60, cache_write_tokens=10))
    body = await (await post(http, fake)).json()
    usage = body["usage"]
    assert (
        usage["input_tokens"],
        usage["cache_read_input_tokens"],
        usage["cache_creation_input_tokens"],
    ) == (
        30,
        60,
        10,
    )
    body = await (await post(http, fake, stop_sequences=["weather"])).json()
    assert body["content"][0]["text"] == "echo: what is the "
    assert (body["stop_reason"], body["stop_sequence"]) == ("stop_sequence", "weather")
    body = await (await post(http, fake, max_tokens=2)).json()
    assert body["content"][0]["text"] == "echo: what"
    assert body["stop_reason"] == "max_tokens"


# --------------------------------------------------------------------------- streaming


async def test_stream_event_sequence(fake: FakeAnthropic, http: aiohttp.ClientSession) -> None:
    resp = await post(http, fake, stream=True)
    raw = await resp.read()
    assert b'event: ping\ndata: {"type": "ping"}\n\n' in raw
    events = await stream(http, fake)
    names = [e.event for e in events]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0].json()["message"]
    assert start["content"] == [] and start["stop_reason"] is None
    assert start["usage"]["input_tokens"] == 8 and start["usage"]["output_tokens"] == 1
    assert events[1].json()["content_block"] == {"type": "text", "text": ""}
    text = "".join(e.json()["delta"]["text"] for e in events if e.event == "content_block_delta")
    assert text == "echo: what is the weather in Paris today"
    delta = events[-2].json()
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] == 8 and delta["usage"]["input_tokens"] == 8


async def test_stream_thinking_text_and_tools(fake: FakeAnthropic, http: aiohttp.ClientSession) -> None:
    fake.script(
        Reply(
            text="Let me check.",
            thinking="The user wants weather and time.",
            tool_calls=[ToolCall("get_weather", {"city": "Paris"}), ToolCall("get_time", {})],
        )
    )
    events = await stream(http, fake, thinking={"type": "enabled", "budget_tokens": 1024}, max_tokens=2048)
    blocks: dict[int, dict[str, Any]] = {}
    deltas: dict[int, list[dict[str, Any]]] = {}
    order: list[str] = []
    for event in events:
        data = event.json()
        if event.event == "content_block_start":
            blocks[data["index"]] = data["content_block"]
            deltas[data["index"]] = []
            order.append(data["content_block"]["type"])
        elif event.event == "content_block_delta":
            deltas[data["index"]].append(data["delta"])
    assert order == ["thinking", "text", "tool_use", "tool_use"]
    assert blocks[0] == {"type": "thinking", "thinking": "", "signature": ""}
    assert deltas[0][-1] == {
        "type": "signature_delta",
        "signature": thinking_signature("The user wants weather and time."),
    }
    assert "".join(d["thinking"] for d in deltas[0][:-1]) == "The user wants weather and time."
    assert blocks[2]["input"] == {} and blocks[2]["id"].startswith("toolu_01")
    pieces = [d["partial_json"] for d in deltas[2]]
    assert all(d["type"] == "input_json_delta" for d in deltas[2])
    assert pieces[0] == "" and len(pieces) == 4
    assert "".join(pieces) == '{"city": "Paris"}'
    assert json.loads("".join(pieces)) == {"city": "Paris"}
    assert [d["partial_json"] for d in deltas[3]] == ["", "{", "}"]
    final = [e.json() for e in events if e.event == "message_delta"][-1]
    assert final["delta"]["stop_reason"] == "tool_use"
    assert final["usage"]["output_tokens"] > 1
    assert events[-1].event == "message_stop"
    stops = [json.loads(e.data)["index"] for e in events if e.event == "content_block_stop"]
    assert stops == [0, 1, 2, 3]


async def test_non_stream_thinking_and_signature_round_trip(
    fake: FakeAnthropic, http: aiohttp.ClientSession
) -> None:
    fake.script(Reply(thinking="hmm", tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="toolu_1")]))
    thinking = {"type": "enabled", "budget_tokens": 1024}
    body = await (await post(http, fake, thinking=thinking, max_tokens=2000)).json()
    assert [b["type"] for b in body["content"]] == ["thinking", "tool_use"]
    assert body["content"][1] == {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "get_weather",
        "input": {"city": "Paris"},
    }
    assert body["stop_reason"] == "tool_use"
    history = [
        *USER,
        {"role": "assistant", "content": body["content"]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]},
    ]
    resp = await post(http, fake, thinking=thinking, max_tokens=2000, messages=history)
    assert resp.status == 200, await resp.text()
    tampered = json.loads(json.dumps(history))
    tampered[1]["content"][0]["thinking"] = "edited"
    resp = await post(http, fake, thinking=thinking, max_tokens=2000, messages=tampered)
    assert resp.status == 400
    assert "Invalid `signature` in `thinking` block" in (await resp.json())["error"]["message"]
    dropped = [history[0], {"role": "assistant", "content": body["content"][1:]}, history[2]]
    resp = await post(http, fake, thinking=thinking, max_tokens=2000, messages=dropped)
    assert resp.status == 400
    assert (
        "Expected `thinking` or `redacted_thinking`, but found `tool_use`"
        in (await resp.json())["error"]["message"]
    )


# --------------------------------------------------------------------------- faults


async def test_overloaded_529(fake: FakeAnthropic, http: aiohttp.ClientSession) -> None:
    fake.inject(Fault(status=529))
    resp = await post(http, fake)
    body = await resp.json()
    assert resp.status == 529
    assert body["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    assert resp.headers["request-id"] == resp.headers["request-id"]


async def test_rate_limit_429_headers(fake: FakeAnthropic, http: aiohttp.ClientSession) -> None:
    fake.inject(Fault(kind="rate_limit", retry_after=0.05, key="k1"))
    resp = await post(http, fake, headers={**HEADERS, "x-api-key": "k2"})
    assert resp.status == 200
    resp = await post(http, fake)
    body = await resp.json()
    assert resp.status == 429
    assert body["error"]["type"] == "rate_limit_error"
    assert resp.headers["retry-after"] == "0.05"
    for family in ("requests", "tokens", "input-tokens", "output-tokens"):
        assert resp.headers[f"anthropic-ratelimit-{family}-remaining"] == "0"
        dt.datetime.fromisoformat(resp.headers[f"anthropic-ratelimit-{family}-reset"])
    fake.inject(Fault(status=429))
    resp = await post(http, fake)
    assert resp.headers["retry-after"] == "1"  # always present on a rate limit
    assert (await post(http, fake)).status == 200


async def test_spend_limit_has_no_retry_after(fake: FakeAnthropic, http: aiohttp.ClientSession) -> None:
    fake.inject(Fault(kind="spend_limit"))
    resp = await post(http, fake)
    body = await resp.json()
    assert resp.status == 429
    assert "retry-after" not in resp.headers
    assert body["error"]["type"] == "rate_limit_error"
    assert body["error"]["details"] == {"error_code": "enforced_spend_limit_reached"}


@pytest.mark.parametrize(
    ("kind", "status", "err_type"),
    [
        ("server", 500, "api_error"),
        ("timeout", 504, "timeout_error"),
        ("billing", 402, "billing_error"),
        ("permission", 403, "permission_error"),
        ("not_found", 404, "not_found_error"),
        ("context_length", 400, "invalid_request_error"),
        ("auth", 401, "authentication_error"),
    ],
)
async def test_error_kinds(
    fake: FakeAnthropic, http: aiohttp.ClientSession, kind: str, status: int, err_type: str
) -> None:
    fake.inject(Fault(kind=kind))
    resp = await post(http, fake)
    assert resp.status == status
    assert (await resp.json())["error"]["type"] == err_type


async def test_mid_stream_error_event(fake: FakeAnthropic, http: aiohttp.ClientSession) -> None:
    fake.inject(Fault(error_after=3))
    events = await stream(http, fake)
    assert [e.event for e in events] == ["message_start", "content_block_start", "ping", "error"]
    error = events[-1].json()
    assert error["type"] == "error"
    assert error["error"] == {"type": "overloaded_error", "message": "Overloaded"}


async def test_drop_and_disconnect(fake: FakeAnthropic, http: aiohttp.ClientSession) -> None:
    fake.inject(Fault(drop_after=1))
    with pytest.raises(aiohttp.ClientPayloadError):
        await post(http, fake, stream=True)
    assert fake.requests[-1].dropped and not fake.requests[-1].disconnected
    fake.inject(Fault(chunk_delay=0.2))
    payload = {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": USER, "stream": True}
    async with http.post(f"{fake.base_url}/v1/messages", json=payload, headers=HEADERS) as resp:
        await resp.content.readuntil(b"\n\n")
        resp.close()
    for _ in range(100):
        if fake.requests[-1].finished is not None:
            break
        await asyncio.sleep(0.01)
    assert fake.requests[-1].disconnected


# --------------------------------------------------------------------------- validation


def tool_turn(*blocks: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        *USER,
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]},
        {"role": "user", "content": list(blocks)},
    ]


TOOLS = [{"name": "f", "input_schema": {"type": "object", "properties": {}}}]

BAD = [
    ({"max_tokens": None}, "max_tokens: Field required"),
    ({"messages": [{"role": "system", "content": "x"}, *USER]}, 'Unexpected role "system"'),
    ({"messages": [*USER, *USER]}, 'roles must alternate between "user" and "assistant"'),
    ({"messages": [{"role": "user", "content": ""}]}, "all messages must have non-empty content"),
    ({"messages": [{"role": "user", "content": []}]}, "all messages must have non-empty content"),
    (
        {"messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]},
        "text content blocks must be non-empty",
    ),
    ({"messages": [*USER, {"role": "assistant", "content": "ok "}]}, "cannot end with trailing whitespace"),
    (
        {"messages": tool_turn({"type": "text", "text": "hi"})},
        "`tool_use` ids were found without `tool_result`",
    ),
    ({"messages": tool_turn()[:2]}, "`tool_use` ids were found without `tool_result`"),
    (
        {
            "messages": tool_turn(
                {"type": "text", "text": "hi"},
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"},
            )
        },
        "`tool_result` blocks must come first",
    ),
    (
        {"messages": tool_turn({"type": "tool_result", "tool_use_id": "toolu_9", "content": "x"})},
        "unexpected `tool_use_id` found in `tool_result` blocks: toolu_9",
    ),
    ({"temperature": 1.5}, "temperature: Input should be less than or equal to 1"),
    ({"temperature": 0.5, "top_p": 0.9}, "`temperature` and `top_p` cannot both be specified"),
    (
        {
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "max_tokens": 4096,
            "tools": TOOLS,
            "tool_choice": {"type": "any"},
        },
        "Thinking may not be enabled when tool_choice forces tool use.",
    ),
    (
        {"thinking": {"type": "enabled", "budget_tokens": 512}},
        "budget_tokens: Input should be greater than or equal to 1024",
    ),
    (
        {"thinking": {"type": "enabled", "budget_tokens": 2048}},
        "`max_tokens` must be greater than `thinking.budget_tokens`",
    ),
    (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/bmp", "data": PNG},
                        }
                    ],
                }
            ]
        },
        "media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'",
    ),
    (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": "data:x"},
                        }
                    ],
                }
            ]
        },
        "invalid base64 data",
    ),
    (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/jpeg", "data": PNG},
                        }
                    ],
                }
            ]
        },
        "Image does not match the provided media type image/jpeg",
    ),
    ({"n": 2}, "n: Extra inputs are not permitted"),
    ({"stream_options": {"include_usage": True}}, "stream_options: Extra inputs are not permitted"),
    ({"tools": [{"name": "f"}]}, "tools.0.custom.input_schema: Field required"),
    ({"tool_choice": {"type": "tool", "name": "g"}, "tools": TOOLS}, "Tool 'g' not found in provided tools"),
]


@pytest.mark.parametrize(("body", "message"), BAD)
async def test_validation_rejects(
    fake: FakeAnthropic, http: aiohttp.ClientSession, body: dict[str, Any], message: str
) -> None:
    payload = {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": USER, **body}
    payload = {k: v for k, v in payload.items() if v is not None}
    async with http.post(f"{fake.base_url}/v1/messages", json=payload, headers=HEADERS) as resp:
        data = await resp.json()
    assert resp.status == 400
    assert data["error"]["type"] == "invalid_request_error"
    assert message in data["error"]["message"]
    assert any(message in v for v in fake.violations)


async def test_valid_requests_pass(fake: FakeAnthropic, http: aiohttp.ClientSession) -> None:
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "ok"},
                {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [{"type": "text", "text": "42"}],
                },
                {"type": "text", "text": "thanks"},
            ],
        },
        {"role": "assistant", "content": "The answer is"},
    ]
    resp = await post(
        http, fake, messages=messages, tools=TOOLS, tool_choice={"type": "auto"}, temperature=0.2
    )
    assert resp.status == 200, await resp.text()
    assert fake.violations == []


async def test_at_most_four_cache_control_blocks(fake: FakeAnthropic, http: aiohttp.ClientSession) -> None:
    mark = {"type": "ephemeral"}
    tools = [{**TOOLS[0], "cache_control": mark}]
    system = [{"type": "text", "text": "be brief", "cache_control": mark}]
    blocks: list[dict[str, Any]] = [
        {"type": "text", "text": "one", "cache_control": mark},
        {"type": "text", "text": "two", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        {"type": "text", "text": "three"},
    ]
    messages = [{"role": "user", "content": blocks}]
    resp = await post(http, fake, tools=tools, system=system, messages=messages)
    assert resp.status == 200, await resp.text()
    assert fake.violations == []
    blocks[2]["cache_control"] = mark  # the fifth: tools, system and message blocks all count
    resp = await post(http, fake, tools=tools, system=system, messages=messages)
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error == {
        "type": "invalid_request_error",
        "message": "A maximum of 4 blocks with cache_control may be provided. Found 5.",
    }
    resp = await post(http, fake, system=system, messages=messages)  # four without the tool's
    assert resp.status == 200, await resp.text()


async def test_temperature_with_top_p_is_configurable(http: aiohttp.ClientSession) -> None:
    async with FakeAnthropic(keys=["k1"], reject_temperature_with_top_p=False) as fake:
        assert (await post(http, fake, temperature=0.5, top_p=0.9)).status == 200
    async with FakeAnthropic(keys=["k1"], reject_temperature_with_top_p=["claude-opus"]) as fake:
        assert (await post(http, fake, temperature=0.5, top_p=0.9)).status == 200
        assert (await post(http, fake, model="claude-opus-4-1", temperature=0.5, top_p=0.9)).status == 400


async def test_lenient_mode(http: aiohttp.ClientSession) -> None:
    async with FakeAnthropic(keys=["k1"], strict=False) as fake:
        resp = await post(http, fake, temperature=2)
        assert resp.status == 200
        assert fake.violations == ["temperature: Input should be less than or equal to 1"]


# --------------------------------------------------------------------------- other endpoints


async def test_count_tokens_and_models(http: aiohttp.ClientSession) -> None:
    async with FakeAnthropic(keys=["k1"], models=["m1", "m2", "m3"]) as fake:
        payload = {"model": "m1", "messages": USER, "system": "be brief"}
        async with http.post(
            f"{fake.base_url}/v1/messages/count_tokens", json=payload, headers=HEADERS
        ) as resp:
            assert await resp.json() == {"input_tokens": 10}
        async with http.get(f"{fake.base_url}/v1/models?limit=2", headers=HEADERS) as resp:
            page = await resp.json()
        assert [m["id"] for m in page["data"]] == ["m1", "m2"]
        assert page["has_more"] is True and page["first_id"] == "m1" and page["last_id"] == "m2"
        assert page["data"][0]["type"] == "model" and "created_at" in page["data"][0]
        async with http.get(f"{fake.base_url}/v1/models?limit=2&after_id=m2", headers=HEADERS) as resp:
            page = await resp.json()
        assert [m["id"] for m in page["data"]] == ["m3"] and page["has_more"] is False
        resp = await post(http, fake, model="claude-x")
        assert resp.status == 404
        assert (await resp.json())["error"] == {"type": "not_found_error", "message": "model: claude-x"}


def test_threaded_mode() -> None:
    with FakeAnthropic(keys=["k1"]).running() as fake:
        fake.script(Reply(text="hi from a thread"))
        request = urllib.request.Request(
            f"{fake.base_url}/v1/messages",
            data=json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": USER}).encode(),
            headers={**HEADERS, "content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert json.loads(resp.read())["content"][0]["text"] == "hi from a thread"


def test_official_sdk_reads_the_fake() -> None:
    anthropic = pytest.importorskip("anthropic")
    with FakeAnthropic(keys=["k1"]).running() as fake:
        client = anthropic.Anthropic(api_key="k1", base_url=fake.base_url, max_retries=0)
        model = "claude-sonnet-4-6"
        reply = client.messages.create(model=model, max_tokens=100, messages=USER)
        assert reply.content[0].text == "echo: what is the weather in Paris today"
        fake.script(Reply(thinking="hmm", text="ok", tool_calls=[ToolCall("get_weather", {"city": "Paris"})]))
        thinking = {"type": "enabled", "budget_tokens": 1024}
        with client.messages.stream(model=model, max_tokens=2000, thinking=thinking, messages=USER) as events:
            message = events.get_final_message()
        assert [b.type for b in message.content] == ["thinking", "text", "tool_use"]
        assert message.content[-1].input == {"city": "Paris"} and message.stop_reason == "tool_use"
        history = [
            *USER,
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in message.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": message.content[-1].id, "content": "ok"}],
            },
        ]
        reply = client.messages.create(model=model, max_tokens=2000, thinking=thinking, messages=history)
        assert reply.stop_reason == "end_turn"
        fake.inject(Fault(error_after=2))
        with (
            pytest.raises(anthropic.APIStatusError, match="overloaded_error"),
            client.messages.stream(model=model, max_tokens=100, messages=USER) as events,
        ):
            events.get_final_message()
        fake.inject(Fault(status=529))
        with pytest.raises(anthropic.InternalServerError):
            client.messages.create(model=model, max_tokens=100, messages=USER)
        assert fake.violations == []
