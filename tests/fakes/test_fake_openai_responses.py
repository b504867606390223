"""The fake OpenAI server speaks the Responses API: checked with the official ``openai`` SDK.

Every Response object is validated by the SDK's pydantic model, every stream event by the SDK's
event union (both strictly: a missing or mistyped field fails), and the SDK's typed stream must
accumulate the same final response the fake answers.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from http.client import HTTPConnection
from typing import Any

import aiohttp
import openai
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from openai import AsyncOpenAI
from openai.types.responses import Response, ResponseItemList, ResponseStreamEvent
from pydantic import TypeAdapter

from truckllm_testing.fakes import FakeOpenAI, Fault, Reply, ToolCall, parse_sse, sse_frames

EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
AUTH = {"Authorization": "Bearer k1"}


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(keys=["k1", "k2"]) as server:
        yield server


@pytest.fixture
async def client(fake: FakeOpenAI) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=fake.base_url, api_key="k1", max_retries=0) as sdk:
        yield sdk


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(
    http: aiohttp.ClientSession, fake: FakeOpenAI, key: str = "k1", **body: Any
) -> tuple[int, bytes]:
    async with http.post(
        f"{fake.base_url}/responses", json=body, headers={"Authorization": f"Bearer {key}"}
    ) as resp:
        return resp.status, await resp.read()


def events_of(raw: bytes) -> list[dict[str, Any]]:
    """Every event of a Responses stream; asserts the framing and validates each with the SDK."""
    frames = sse_frames(raw)
    assert all(f.startswith(b"event: ") and f.count(b"\n") == 1 for f in frames)
    events = []
    for sse in parse_sse(raw):
        data = sse.json()
        assert sse.event == data["type"]
        EVENTS.validate_python(data)
        events.append(data)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


# --------------------------------------------------------------------------- create


async def test_default_answer_is_a_valid_response(fake: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    status, raw = await post(
        http, fake, model="gpt-4o", input="what is the weather in Paris", instructions="be brief"
    )
    assert status == 200
    assert raw.startswith(b'{\n  "id": "resp_')  # pretty-printed like the rest of OpenAI
    body = json.loads(raw)
    response = Response.model_validate(body)
    assert response.status == "completed" and response.object == "response"
    assert response.output_text == "echo: what is the weather in Paris"
    message = body["output"][0]
    assert message["id"].startswith("msg_") and message["role"] == "assistant"
    assert message["content"] == [
        {
            "type": "output_text",
            "annotations": [],
            "logprobs": [],
            "text": "echo: what is the weather in Paris",
        }
    ]
    assert body["instructions"] == "be brief" and body["store"] is True
    assert body["tool_choice"] == "auto" and body["text"]["format"] == {"type": "text"}
    assert body["usage"] == {
        "input_tokens": 2 + 6 + 1,
        "input_tokens_details": {"cache_write_tokens": 0, "cached_tokens": 0},
        "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 16,
    }
    assert fake.violations == []


async def test_sdk_create_with_items_and_scripted_usage(fake: FakeOpenAI, client: AsyncOpenAI) -> None:
    fake.script(
        Reply(text="fine", prompt_tokens=100, cached_tokens=40, completion_tokens=9, reasoning_tokens=5)
    )
    response = await client.responses.create(
        model="gpt-4o",
        input=[
            {"role": "developer", "content": "answer in one word"},
            {"role": "user", "content": [{"type": "input_text", "text": "how are you"}]},
            {
                "role": "user",
                "content": [{"type": "input_image", "image_url": "https://x/y.png", "detail": "auto"}],
            },
        ],
        metadata={"team": "a"},
        service_tier="auto",
        prompt_cache_key="k",
    )
    assert response.output_text == "fine"
    assert response.metadata == {"team": "a"} and response.service_tier == "default"
    assert response.usage is not None
    assert response.usage.input_tokens == 100 and response.usage.input_tokens_details.cached_tokens == 40
    assert response.usage.output_tokens_details.reasoning_tokens == 5


async def test_scripted_tool_calls(fake: FakeOpenAI, client: AsyncOpenAI) -> None:
    fake.script(
        Reply(
            tool_calls=[
                ToolCall("get_weather", {"city": "Paris"}),
                ToolCall("get_weather", {"city": "Rome"}, id="call_given"),
            ]
        )
    )
    response = await client.responses.create(model="gpt-4o", input="weather?", tools=[WEATHER])
    calls = [item for item in response.output if item.type == "function_call"]
    assert [c.arguments for c in calls] == ['{"city":"Paris"}', '{"city":"Rome"}']
    assert calls[0].call_id.startswith("call_") and calls[1].call_id == "call_given"
    assert calls[0].id is not None and calls[0].id.startswith("fc_")
    assert all(item.type != "message" for item in response.output)  # no text, no message item
    assert response.tools[0].type == "function" and response.tools[0].strict is True


# --------------------------------------------------------------------------- stream


async def test_stream_event_sequence(fake: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    status, raw = await post(http, fake, model="gpt-4o", input="say hello to me", stream=True)
    assert status == 200
    events = events_of(raw)
    kinds = [e["type"] for e in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 3,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert "".join(d["delta"] for d in deltas) == "echo: say hello to me"
    assert all("obfuscation" in d and d["logprobs"] == [] for d in deltas)
    final = events[-1]["response"]
    Response.model_validate(final)
    assert final["output"][0]["content"][0]["text"] == "echo: say hello to me"
    assert final["id"] == events[0]["response"]["id"]

    status, raw = await post(
        http,
        fake,
        model="gpt-4o",
        input="x",
        stream=True,
        stream_options={"include_obfuscation": False},
    )
    assert all("obfuscation" not in e for e in events_of(raw))


async def test_sdk_typed_stream_with_tool_calls(fake: FakeOpenAI, client: AsyncOpenAI) -> None:
    fake.script(Reply(text="let me look", tool_calls=[ToolCall("get_weather", {"city": "Paris"})]))
    seen: list[str] = []
    async with client.responses.stream(model="gpt-4o", input="weather?", tools=[WEATHER]) as stream:
        async for event in stream:
            seen.append(event.type)
        final = await stream.get_final_response()
    assert seen.count("response.function_call_arguments.delta") == 3
    assert "response.function_call_arguments.done" in seen
    assert final.output_text == "let me look"
    call = final.output[1]
    assert call.type == "function_call" and json.loads(call.arguments) == {"city": "Paris"}
    assert final.status == "completed" and final.usage is not None


async def test_reasoning_summary_and_encrypted_content(fake: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    fake.script(Reply(text="42", thinking="six times seven"))
    status, raw = await post(
        http,
        fake,
        model="o4-mini",
        input="the answer?",
        reasoning={"effort": "low", "summary": "auto"},
        include=["reasoning.encrypted_content"],
        store=False,
        stream=True,
    )
    assert status == 200
    events = events_of(raw)
    kinds = [e["type"] for e in events]
    assert kinds[2:9] == [
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        *["response.reasoning_summary_text.delta"] * 3,
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
    ]
    final = events[-1]["response"]
    reasoning = final["output"][0]
    assert reasoning["id"].startswith("rs_")
    assert reasoning["summary"] == [{"type": "summary_text", "text": "six times seven"}]
    assert reasoning["encrypted_content"].startswith("gAAAAAB")
    assert final["usage"]["output_tokens_details"]["reasoning_tokens"] == 3
    assert final["reasoning"] == {"effort": "low", "summary": "auto"}

    # stateless follow-up: the encrypted item goes back and is accepted
    follow = [reasoning, *final["output"][1:], {"role": "user", "content": "and then?"}]
    status, _ = await post(http, fake, model="o4-mini", input=follow, store=False)
    assert status == 200
    # a tampered item, or one from another account, is refused
    for key, item in (("k1", {**reasoning, "encrypted_content": "gAAAAABxxxx"}), ("k2", reasoning)):
        status, raw = await post(http, fake, key=key, model="o4-mini", input=[item], store=False)
        assert status == 400
        assert json.loads(raw)["error"]["code"] == "invalid_encrypted_content"
    # without its encrypted content and with store false, the id is unknown
    bare = {"type": "reasoning", "id": reasoning["id"], "summary": []}
    status, raw = await post(http, fake, model="o4-mini", input=[bare], store=False)
    assert status == 400
    error = json.loads(raw)["error"]
    assert error["message"] == (
        f"Item with id '{reasoning['id']}' not found. Items are not persisted when `store` is set to "
        "false. Try again with `store` set to true, or remove this item from your input."
    )
    assert error["param"] == "input" and error["type"] == "invalid_request_error"


async def test_reasoning_item_only_when_asked(fake: FakeOpenAI, client: AsyncOpenAI) -> None:
    fake.script(Reply(text="42", thinking="hmm"))
    response = await client.responses.create(model="o4-mini", input="q")
    assert [item.type for item in response.output] == ["message"]
    assert response.usage is not None and response.usage.output_tokens_details.reasoning_tokens == 1
    assert response.reasoning is not None and response.reasoning.effort == "medium"


async def test_incomplete_at_max_output_tokens(fake: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    fake.script(Reply(text=" ".join(["word"] * 30), times=2))
    _, raw = await post(http, fake, model="gpt-4o", input="talk", max_output_tokens=16)
    body = json.loads(raw)
    Response.model_validate(body)
    assert body["status"] == "incomplete" and body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["output"][0]["status"] == "incomplete"
    assert len(body["output"][0]["content"][0]["text"].split()) == 16
    _, raw = await post(http, fake, model="gpt-4o", input="talk", max_output_tokens=16, stream=True)
    events = events_of(raw)
    assert events[-1]["type"] == "response.incomplete"


async def test_refusal(fake: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    fake.script(Reply(text="I can't help with that.", finish="refusal", times=2))
    _, raw = await post(http, fake, model="gpt-4o", input="bad")
    assert json.loads(raw)["output"][0]["content"] == [
        {"type": "refusal", "refusal": "I can't help with that."}
    ]
    _, raw = await post(http, fake, model="gpt-4o", input="bad", stream=True)
    kinds = [e["type"] for e in events_of(raw)]
    assert "response.refusal.delta" in kinds and "response.refusal.done" in kinds


# --------------------------------------------------------------------------- state


async def test_previous_response_id_belongs_to_its_account(fake: FakeOpenAI, client: AsyncOpenAI) -> None:
    fake.script(Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]))
    first = await client.responses.create(
        model="gpt-4o", input="weather in Paris?", instructions="terse", tools=[WEATHER]
    )
    call = first.output[0]
    assert call.type == "function_call"
    output: Any = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
    second = await client.responses.create(model="gpt-4o", previous_response_id=first.id, input=[output])
    assert second.previous_response_id == first.id
    turn = fake.response_turns[-1]
    assert turn.response_id == second.id and turn.api_key == "k1" and turn.instructions is None
    assert [i.get("type", "message") for i in turn.items] == [
        "message",
        "function_call",
        "function_call_output",
    ]
    assert second.output_text == "echo: weather in Paris?"
    # another key is another account
    async with AsyncOpenAI(base_url=fake.base_url, api_key="k2", max_retries=0) as other:
        with pytest.raises(openai.BadRequestError) as caught:
            await other.responses.create(model="gpt-4o", previous_response_id=second.id, input="more")
    assert caught.value.code == "previous_response_not_found" and caught.value.param == "previous_response_id"
    assert caught.value.message.endswith(f"Previous response with id '{second.id}' not found.")
    assert fake.violations == [f"Previous response with id '{second.id}' not found."]


async def test_unstored_response_cannot_be_continued(fake: FakeOpenAI, client: AsyncOpenAI) -> None:
    first = await client.responses.create(model="gpt-4o", input="hi", store=False)
    assert (first.model_extra or {})["store"] is False and fake.stored_ids("k1") == []
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="gpt-4o", previous_response_id=first.id, input="more")
    assert caught.value.code == "previous_response_not_found"
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(first.id)


async def test_tool_calls_must_pair_up(fake: FakeOpenAI, client: AsyncOpenAI) -> None:
    fake.script(Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="call_1")]))
    first = await client.responses.create(model="gpt-4o", input="weather?", tools=[WEATHER])
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="gpt-4o", previous_response_id=first.id, input="never mind")
    assert caught.value.message.endswith("No tool output found for function call call_1.")
    stray: Any = {"type": "function_call_output", "call_id": "call_9", "output": "x"}
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="gpt-4o", input=[stray])
    assert caught.value.message.endswith("No tool call found for function call output with call_id call_9.")


async def test_retrieve_delete_input_items_and_count(fake: FakeOpenAI, client: AsyncOpenAI) -> None:
    items = [
        {"role": "user", "content": "one two three"},
        {"role": "assistant", "content": "four"},
        {"role": "user", "content": [{"type": "input_text", "text": "five six"}]},
    ]
    created = await client.responses.create(model="gpt-4o", input=items, instructions="be kind")  # type: ignore[arg-type]
    again = await client.responses.retrieve(created.id)
    assert again.id == created.id and again.output_text == created.output_text
    page = await client.responses.input_items.list(created.id)
    assert [i.type for i in page.data] == ["message"] * 3
    texts = [i.content[0].text for i in page.data if i.type == "message"]  # type: ignore[union-attr]
    assert texts == ["five six", "four", "one two three"]  # newest first by default
    asc = await client.responses.input_items.list(created.id, order="asc", limit=2)
    assert len(asc.data) == 2 and asc.has_more is True and asc.data[0].id == page.data[-1].id
    count = await client.responses.input_tokens.count(model="gpt-4o", input=items, instructions="be kind")  # type: ignore[arg-type]
    assert count.object == "response.input_tokens"
    assert created.usage is not None and count.input_tokens == created.usage.input_tokens
    follow = await client.responses.input_tokens.count(
        model="gpt-4o", previous_response_id=created.id, input="x"
    )
    assert follow.input_tokens == count.input_tokens - 2 + 1 + len(created.output_text.split())
    async with AsyncOpenAI(base_url=fake.base_url, api_key="k2", max_retries=0) as other:
        with pytest.raises(openai.NotFoundError):
            await other.responses.retrieve(created.id)
        with pytest.raises(openai.NotFoundError):
            await other.responses.delete(created.id)
    await client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError) as caught:
        await client.responses.retrieve(created.id)
    assert caught.value.message.endswith(f"Response with id '{created.id}' not found.")


async def test_stored_reasoning_item_by_id(fake: FakeOpenAI, client: AsyncOpenAI) -> None:
    fake.script(Reply(text="42", thinking="think"))
    first = await client.responses.create(model="o3", input="q", reasoning={"effort": "high"})
    reasoning = first.output[0]
    assert reasoning.type == "reasoning" and reasoning.encrypted_content is None
    follow = [{"type": "reasoning", "id": reasoning.id, "summary": []}, {"role": "user", "content": "and?"}]
    second = await client.responses.create(model="o3", input=follow)  # type: ignore[arg-type]
    assert second.status == "completed"
    by_ref: Any = [{"type": "item_reference", "id": second.output[0].id}, {"role": "user", "content": "so?"}]
    third = await client.responses.create(model="o3", input=by_ref)
    listed = await client.responses.input_items.list(third.id, order="asc")
    assert [item.type for item in listed.data] == ["message", "message"]  # the reference, resolved
    assert listed.data[0].id == second.output[0].id
    raw = await client.responses.input_items.with_raw_response.list(third.id)
    ResponseItemList.model_validate(raw.http_response.json())  # strictly the SDK's type
    ref = [{"type": "item_reference", "id": "msg_unknown"}]
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="o3", input=ref)  # type: ignore[arg-type]
    assert caught.value.message.endswith("Item with id 'msg_unknown' not found.")


async def test_background_then_retrieve_and_cancel(fake: FakeOpenAI, client: AsyncOpenAI) -> None:
    queued = await client.responses.create(model="gpt-4o", input="later", background=True)
    assert queued.status == "queued" and queued.output == [] and queued.background is True
    done = await client.responses.retrieve(queued.id)
    assert done.status == "completed" and done.output_text == "echo: later"
    assert (await client.responses.cancel(queued.id)).id == queued.id
    plain = await client.responses.create(model="gpt-4o", input="now")
    with pytest.raises(openai.BadRequestError):
        await client.responses.cancel(plain.id)


async def test_background_polls_then_completes_or_is_cancelled(fake: FakeOpenAI, client: AsyncOpenAI) -> None:
    fake.background_polls = 2
    running = await client.responses.create(model="gpt-4o", input="slow one", background=True)
    assert [(await client.responses.retrieve(running.id)).status for _ in range(4)] == [
        "queued",
        "in_progress",
        "completed",
        "completed",
    ]
    stopped = await client.responses.create(model="gpt-4o", input="stop me", background=True)
    assert (await client.responses.retrieve(stopped.id)).status == "queued"
    cancelled = await client.responses.cancel(stopped.id)
    assert cancelled.status == "cancelled" and cancelled.output == []
    assert (await client.responses.retrieve(stopped.id)).status == "cancelled"
    assert (await client.responses.cancel(stopped.id)).status == "cancelled"
    assert (await client.responses.cancel(running.id)).status == "completed"  # finished: unchanged


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"input": "x"}, "model", "missing_required_parameter"),
        (
            {"model": "gpt-4o", "input": "x", "max_output_tokens": 10},
            "max_output_tokens",
            "integer_below_min_value",
        ),
        ({"model": "gpt-4o", "input": "x", "temperature": 2.5}, "temperature", "decimal_above_max_value"),
        ({"model": "gpt-4o", "input": "x", "top_p": -1}, "top_p", "decimal_below_min_value"),
        ({"model": "gpt-4o", "input": "x", "messages": []}, "messages", "unknown_parameter"),
        ({"model": "gpt-4o", "input": {"a": 1}}, "input", "invalid_type"),
        ({"model": "gpt-4o", "input": "x", "truncation": "never"}, "truncation", "invalid_value"),
        (
            {"model": "gpt-4o", "input": "x", "reasoning": {"effort": "low"}},
            "reasoning.effort",
            "unsupported_parameter",
        ),
        ({"model": "o3", "input": "x", "temperature": 0.2}, "temperature", "unsupported_parameter"),
        (
            {"model": "gpt-4o", "input": "x", "tools": [{"type": "teleport"}]},
            "tools[0].type",
            "invalid_value",
        ),
        (
            {"model": "gpt-4o", "input": "x", "tools": [{"type": "function"}]},
            "tools[0].name",
            "missing_required_parameter",
        ),
        (
            {"model": "gpt-4o", "input": "x", "tool_choice": {"type": "function", "name": "nope"}},
            "tool_choice",
            None,
        ),
        (
            {"model": "gpt-4o", "input": "x", "text": {"format": {"type": "json_schema", "schema": {}}}},
            "text.format.name",
            "missing_required_parameter",
        ),
        ({"model": "gpt-4o", "input": "x", "text": {"format": {"type": "json_object"}}}, "input", None),
        ({"model": "gpt-4o", "input": "x", "include": ["everything"]}, "include[0]", "invalid_value"),
        ({"model": "gpt-4o", "input": "x", "metadata": {"a": 1}}, "metadata.a", "invalid_type"),
        ({"model": "gpt-4o", "input": "x", "store": "yes"}, "store", "invalid_type"),
        ({"model": "gpt-4o", "input": "x", "service_tier": "gold"}, "service_tier", "invalid_value"),
        ({"model": "gpt-4o", "input": "x", "stream_options": {}}, "stream_options", None),
        ({"model": "gpt-4o", "input": "x", "background": True, "store": False}, "background", None),
        (
            {
                "model": "gpt-4o",
                "input": [{"role": "assistant", "content": [{"type": "input_text", "text": "x"}]}],
            },
            "input[0].content[0].type",
            "invalid_value",
        ),
        (
            {"model": "gpt-4o", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
            "input[0].call_id",
            "missing_required_parameter",
        ),
        (
            {
                "model": "gpt-4o",
                "input": [{"role": "user", "content": [{"type": "input_image", "detail": "auto"}]}],
            },
            "input[0].content[0].image_url",
            "missing_required_parameter",
        ),
    ],
)
async def test_invalid_requests_get_openai_400(
    fake: FakeOpenAI, http: aiohttp.ClientSession, body: dict[str, Any], param: str, code: str | None
) -> None:
    fake.inject(Fault(status=500))
    status, raw = await post(http, fake, **body)
    assert status == 400, raw
    error = json.loads(raw)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param and error["code"] == code
    assert fake.violations and fake.violations[0] == error["message"]
    assert fake.pending == 1  # an invalid request never uses up a fault


async def test_valid_built_in_tools_and_formats(fake: FakeOpenAI, client: AsyncOpenAI) -> None:
    response = await client.responses.create(
        model="gpt-4.1",
        input="reply in json please",
        tools=[
            WEATHER,
            {"type": "web_search_preview"},
            {"type": "file_search", "vector_store_ids": ["vs_1"]},
        ],
        tool_choice={"type": "function", "name": "get_weather"},
        text={"format": {"type": "json_object"}, "verbosity": "low"},
        parallel_tool_calls=False,
        truncation="auto",
        top_p=0.5,
        temperature=0.3,
        max_output_tokens=64,
    )
    assert response.status == "completed" and response.parallel_tool_calls is False
    assert response.text is not None and response.text.verbosity == "low"
    assert fake.violations == []


async def test_sdk_raises_its_error_classes(fake: FakeOpenAI, client: AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        await client.responses.create(model="gpt-4o", input="x", max_output_tokens=1)
    assert bad.value.param == "max_output_tokens"
    fake.inject(Fault(status=429, retry_after=2))
    with pytest.raises(openai.RateLimitError) as limited:
        await client.responses.create(model="gpt-4o", input="x")
    assert limited.value.response.headers["retry-after"] == "2"
    fake.inject(Fault(kind="overloaded"))
    with pytest.raises(openai.InternalServerError):
        await client.responses.create(model="gpt-4o", input="x")
    async with AsyncOpenAI(base_url=fake.base_url, api_key="nope-nope-nope", max_retries=0) as wrong:
        with pytest.raises(openai.AuthenticationError):
            await wrong.responses.create(model="gpt-4o", input="x")


# --------------------------------------------------------------------------- faults


async def test_mid_stream_error_is_error_then_failed(fake: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    fake.inject(Fault(error_after=4))
    status, raw = await post(http, fake, model="gpt-4o", input="say something long", stream=True)
    assert status == 200
    events = events_of(raw)
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert len(events) == 6
    assert events[-2]["code"] == "server_error"
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "server_error"
    assert failed["id"] == events[0]["response"]["id"]
    stored = fake.stored("k1", failed["id"])
    assert stored is not None and stored.response["status"] == "failed"


async def test_sdk_stream_sees_the_failure(fake: FakeOpenAI, client: AsyncOpenAI) -> None:
    fake.inject(Fault(error_after=3, kind="rate_limit", retry_after=1.5))
    async with client.responses.stream(model="gpt-4o", input="hello") as stream:
        events = [event async for event in stream]
        with pytest.raises(RuntimeError, match=r"response\.completed"):
            await stream.get_final_response()
    assert [e.type for e in events[-2:]] == ["error", "response.failed"]
    failed = events[-1]
    assert failed.type == "response.failed" and failed.response.error is not None
    assert failed.response.error.code == "rate_limit_exceeded"
    assert "Please try again in 1.5s." in failed.response.error.message  # what Codex reads to wait


async def test_drop_after_cuts_the_stream(fake: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    fake.inject(Fault(drop_after=3))
    with pytest.raises(aiohttp.ClientPayloadError):
        await post(http, fake, model="gpt-4o", input="hello there", stream=True)
    assert fake.requests[-1].dropped


async def test_reset_forgets_stored_responses(fake: FakeOpenAI, client: AsyncOpenAI) -> None:
    created = await client.responses.create(model="gpt-4o", input="hi")
    assert fake.stored_ids("k1") == [created.id] and len(fake.response_turns) == 1
    fake.reset()
    assert fake.stored_ids("k1") == [] and fake.response_turns == []


# --------------------------------------------------------------------------- robustness

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 70) | st.floats(-3, 3) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_FIELDS = st.sampled_from(
    [
        "model", "input", "instructions", "tools", "tool_choice", "text", "reasoning", "include",
        "max_output_tokens", "temperature", "top_p", "store", "stream", "metadata", "background",
        "previous_response_id", "parallel_tool_calls", "truncation", "service_tier", "stream_options",
    ]
)  # fmt: skip
_ITEM = st.fixed_dictionaries(
    {"type": st.sampled_from(["message", "function_call", "function_call_output", "reasoning", "item_reference"])},
    optional={"role": _JSON, "content": _JSON, "call_id": _JSON, "name": _JSON, "arguments": _JSON,
              "output": _JSON, "id": _JSON, "summary": _JSON, "encrypted_content": _JSON},
)  # fmt: skip


@pytest.fixture(scope="module")
def threaded() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(keys=["k1"]).running() as server:
        yield server


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(fields={}, items=[{"type": "item_reference", "id": []}], tool_choice=None)
@example(
    fields={"tools": [{"type": "function", "name": "f"}]},
    items=[],
    tool_choice={"type": "function", "name": {}},
)
@given(
    fields=st.dictionaries(_FIELDS, _JSON, max_size=4),
    items=st.lists(_ITEM, max_size=3),
    tool_choice=st.one_of(st.none(), st.fixed_dictionaries({"type": st.just("function"), "name": _JSON})),
)
def test_any_body_gets_an_answer_never_a_crash(
    threaded: FakeOpenAI, fields: dict[str, Any], items: list[dict[str, Any]], tool_choice: Any
) -> None:
    """Whatever the body, the fake answers 200 or OpenAI's 400, never a 500 of its own."""
    body: dict[str, Any] = {"model": "gpt-4o", "input": items or "hi", **fields}
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    for path in ("/v1/responses", "/v1/responses/input_tokens"):
        conn = HTTPConnection("127.0.0.1", threaded.port, timeout=10)
        try:
            conn.request("POST", path, body=json.dumps(body), headers=AUTH)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        assert resp.status in (200, 400), (path, body, raw[:300])
        if resp.status == 400:
            assert set(json.loads(raw)["error"]) == {"message", "type", "param", "code"}
