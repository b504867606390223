"""End to end through OpenAI Responses API deployments (FakeOpenAI's ``/v1/responses``).

The request passes through byte for byte but ``model``; the answer (and every stream event) comes
back unchanged, with OpenAI's ids, and is remembered under OpenAI's ``resp_`` id. A continued
conversation goes back to the account that keeps it (``previous_response_id`` as sent), and to
any other account with the conversation spelled out.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import msgspec
import openai
import pytest

from truckllm_testing.fakes import Fault, Reply, ToolCall
from truckllm_testing.server import GatewayServer

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": False,
}


@pytest.fixture
def client(gateway: GatewayServer, fresh: Any, kit: Any) -> Iterator[openai.OpenAI]:
    """An SDK client of gateway key ``team``, without retries (OpenAI's provider plugin needed)."""
    kit.need("openai")
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=kit.key, max_retries=0, timeout=20) as sdk:
        yield sdk


def test_pass_through_keeps_the_bytes_and_openais_ids(client: openai.OpenAI, fresh: Any) -> None:
    raw = client.responses.with_raw_response.create(
        model="gpt",
        input="hello openai",
        include=["reasoning.encrypted_content"],
        metadata={"team": "a"},
        prompt_cache_key="k1",
        truncation="auto",
    )
    first = raw.parse()
    sent = fresh.openai.requests[-1]
    assert sent.path == "/v1/responses"
    body = msgspec.json.decode(sent.body, type=dict[str, msgspec.Raw])
    original = msgspec.json.decode(raw.http_request.content, type=dict[str, msgspec.Raw])
    assert msgspec.json.decode(body.pop("model")) == "gpt-4o"
    original.pop("model")
    assert body == original  # every other member as the client sent it
    assert first.id == fresh.openai.response_turns[-1].response_id  # OpenAI's id, not the gateway's
    assert client.responses.retrieve(first.id).model_dump() == first.model_dump()


def test_builtin_tools_pass_through_to_openai(client: openai.OpenAI, fresh: Any) -> None:
    response = client.responses.create(model="gpt", input="news?", tools=[{"type": "web_search"}])
    assert response.status == "completed"
    assert fresh.openai.requests[-1].json["tools"] == [{"type": "web_search"}]


def test_continued_conversation_goes_back_to_the_account_as_sent(client: openai.OpenAI, fresh: Any) -> None:
    fresh.openai.script(Reply(text="", tool_calls=[ToolCall("get_weather", {"city": "Paris"})]))
    first = client.responses.create(model="gpt", input="Weather in Paris?", tools=[WEATHER])
    (call,) = [o for o in first.output if o.type == "function_call"]
    second = client.responses.create(
        model="gpt",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "21C"}],
        tools=[WEATHER],
    )
    sent = fresh.openai.requests[-1].json
    assert sent["previous_response_id"] == first.id  # OpenAI continues it from its own state
    assert len(sent["input"]) == 1
    turn = fresh.openai.response_turns[-1]
    assert [i.get("type", "message") for i in turn.items] == [
        "message",
        "function_call",
        "function_call_output",
    ]
    items = list(client.responses.input_items.list(second.id, order="asc"))
    assert [i.type for i in items] == ["message", "function_call", "function_call_output"]
    assert items[1].id == call.id  # OpenAI's ids, as the client saw them


def test_stream_events_unchanged_and_remembered(client: openai.OpenAI, fresh: Any) -> None:
    with client.responses.stream(model="gpt", input="stream from openai") as stream:
        numbers = [event.sequence_number for event in stream]
        final = stream.get_final_response()
    assert numbers == list(range(len(numbers)))
    assert final.id == fresh.openai.response_turns[-1].response_id
    assert client.responses.retrieve(final.id).output_text == final.output_text
    again = client.responses.create(model="gpt", previous_response_id=final.id, input="more")
    assert again.status == "completed" and fresh.openai.requests[-1].json["previous_response_id"] == final.id


def test_store_false_is_kept_nowhere(client: openai.OpenAI, fresh: Any) -> None:
    unstored = client.responses.create(model="gpt", input="forget", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="gpt", previous_response_id=unstored.id, input="again")
    assert info.value.code == "previous_response_not_found"
    assert fresh.openai.requests[-1].json["store"] is False  # the refused one never went upstream


def test_a_translated_conversation_continues_on_openai_spelled_out(
    client: openai.OpenAI, fresh: Any, kit: Any
) -> None:
    kit.need("anthropic")
    fresh.anthropic.script(
        Reply(thinking="Paris, then.", text="", tool_calls=[ToolCall("get_weather", {"city": "Paris"})])
    )
    first = client.responses.create(
        model="claude",
        input="Weather in Paris?",
        tools=[WEATHER],
        reasoning={"effort": "low"},
        max_output_tokens=4000,
    )
    (call,) = [o for o in first.output if o.type == "function_call"]
    second = client.responses.create(
        model="gpt",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "21C"}],
        tools=[WEATHER],
    )
    assert second.status == "completed"
    sent = fresh.openai.requests[-1].json
    assert "previous_response_id" not in sent  # OpenAI never saw the first turn
    assert [i["type"] for i in sent["input"]] == ["message", "function_call", "function_call_output"]
    assert (
        "id" not in sent["input"][0] and sent["input"][1]["call_id"] == call.call_id
    )  # no Anthropic thinking


def test_failover_sends_another_account_the_whole_conversation(client: openai.OpenAI, fresh: Any) -> None:
    first = client.responses.create(model="gpt-pair", input="my name is Ada")
    holder = fresh.openai.response_turns[-1].api_key
    second = client.responses.create(model="gpt-pair", previous_response_id=first.id, input="again")
    assert fresh.openai.response_turns[-1].api_key == holder  # back to the account that keeps it
    fresh.openai.inject(Fault(status=500, key=holder, times=-1))
    third = client.responses.create(model="gpt-pair", previous_response_id=second.id, input="my name?")
    turn = fresh.openai.response_turns[-1]
    assert turn.api_key != holder and turn.response_id == third.id
    sent = turn.request.json
    assert "previous_response_id" not in sent
    texts = [json.dumps(i["content"]) for i in sent["input"]]
    assert "my name is Ada" in texts[0] and "my name?" in texts[-1] and len(texts) == 5
    fourth = client.responses.create(model="gpt-pair", previous_response_id=third.id, input="bye")
    assert fresh.openai.response_turns[-1].api_key == turn.api_key  # the new holder, from now on
    assert fourth.previous_response_id == third.id


def test_a_stream_failing_midway_ends_with_an_error_the_sdk_raises(client: openai.OpenAI, fresh: Any) -> None:
    fresh.openai.inject(Fault(error_after=3, chunk_delay=0.01))
    kinds: list[str] = []
    with pytest.raises(openai.APIError), client.responses.stream(model="gpt", input="a long story") as stream:
        kinds.extend(event.type for event in stream)
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert "response.completed" not in kinds


def test_input_tokens_pass_through_and_continue_a_conversation(client: openai.OpenAI, fresh: Any) -> None:
    counted = client.responses.input_tokens.count(model="gpt", input="how many tokens is this?")
    assert counted.object == "response.input_tokens" and counted.input_tokens > 0
    assert fresh.openai.requests[-1].path == "/v1/responses/input_tokens"
    first = client.responses.create(model="gpt", input="one two three")
    alone = client.responses.input_tokens.count(model="gpt", input="four")
    again = client.responses.input_tokens.count(model="gpt", previous_response_id=first.id, input="four")
    assert again.input_tokens > alone.input_tokens  # the earlier turn was counted too
    assert fresh.openai.requests[-1].json["previous_response_id"] == first.id  # back to the holder


def test_typed_stream_with_an_image_structured_output_and_reasoning(
    client: openai.OpenAI, fresh: Any
) -> None:
    """The SDK's typed stream through the pass-through: an image in, a json_schema answer and a
    reasoning summary out (its own events), ``get_final_response()`` whole, then a follow-up."""
    fresh.openai.script(Reply(thinking="A red square.", text='{"colour": "red"}'))
    schema: Any = {"type": "object", "properties": {"colour": {"type": "string"}}, "required": ["colour"]}
    image: Any = {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "low"}
    with client.responses.stream(
        model="gpt-r",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "what colour?"}, image]}],
        text={"format": {"type": "json_schema", "name": "colour", "schema": schema, "strict": True}},
        reasoning={"effort": "low", "summary": "auto"},
        include=["reasoning.encrypted_content"],
    ) as stream:
        seen = list(stream)
        final = stream.get_final_response()
    summary = "".join(e.delta for e in seen if e.type == "response.reasoning_summary_text.delta")
    assert summary == "A red square."
    assert [o.type for o in final.output] == ["reasoning", "message"]
    assert json.loads(final.output_text) == {"colour": "red"}
    assert final.reasoning is not None and final.reasoning.effort == "low"
    assert final.text is not None and final.text.format is not None
    assert final.text.format.type == "json_schema"
    sent = fresh.openai.requests[-1].json
    assert sent["input"][0]["content"][1] == image and sent["text"]["format"]["schema"] == schema
    assert sent["reasoning"] == {"effort": "low", "summary": "auto"}
    assert client.responses.retrieve(final.id).output_text == final.output_text
    again = client.responses.create(model="gpt-r", previous_response_id=final.id, input="why?")
    assert again.status == "completed" and fresh.openai.requests[-1].json["previous_response_id"] == final.id
