"""End to end: the official ``openai`` SDK's ``client.responses`` → a real gateway → fake upstreams.

``claude`` is served by FakeAnthropic and ``gem`` by FakeGemini, both translated (Responses →
chat form → the provider's format, and back). Every test ends with no contract violation on any
fake (``fresh``): what the gateway sent upstream was valid.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from truckllm_testing.fakes import Fault, Reply, ToolCall
from truckllm_testing.server import GatewayServer

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": False,
}
PROVIDER = {"claude": "anthropic", "gem": "gemini"}
ALIASES = list(PROVIDER)


@pytest.fixture
def client(gateway: GatewayServer, fresh: Any, kit: Any) -> Iterator[openai.OpenAI]:
    """An SDK client of gateway key ``team``, without retries."""
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=kit.key, max_retries=0, timeout=20) as sdk:
        yield sdk


def _fake(fresh: Any, alias: str) -> Any:
    return getattr(fresh, PROVIDER[alias])


def _texts(fake: Any) -> list[str]:
    """Every text the fake's last request carried, in order (Anthropic's or Gemini's shape)."""
    body = fake.requests[-1].json
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for name, inner in value.items():
                if name == "text" and isinstance(inner, str):
                    found.append(inner)
                else:
                    walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    walk(body.get("messages") or body.get("contents"))
    return found


# --- whole answers --------------------------------------------------------------------------------


@pytest.mark.parametrize("alias", ALIASES)
def test_create_text(client: openai.OpenAI, kit: Any, alias: str) -> None:
    kit.need(PROVIDER[alias])
    response = client.responses.create(model=alias, instructions="Be terse.", input="hello gateway")
    assert response.object == "response" and response.status == "completed"
    assert response.id.startswith("resp_") and response.model == alias
    assert response.output_text == "echo: hello gateway"
    (message,) = response.output
    assert message.type == "message" and message.id.startswith("msg_")
    assert response.usage is not None and response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert response.instructions == "Be terse."


@pytest.mark.parametrize("alias", ALIASES)
def test_function_tool_round_trip_with_previous_response_id(
    client: openai.OpenAI, fresh: Any, kit: Any, alias: str
) -> None:
    """Peer bug: a bridge stored chatcmpl- ids but answered resp_ ids, so every follow-up tool turn
    failed. The id the client got is the one that continues the conversation."""
    kit.need(PROVIDER[alias])
    fake = _fake(fresh, alias)
    fake.script(Reply(text="", tool_calls=[ToolCall("get_weather", {"city": "Paris"})]))
    first = client.responses.create(model=alias, input="Weather in Paris?", tools=[WEATHER])
    (call,) = first.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"}
    assert (
        call.id is not None and call.id.startswith("fc_") and call.id != call.call_id
    )  # an item id is not a call id
    second = client.responses.create(
        model=alias,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "21°C and sunny"}],
        tools=[WEATHER],
    )
    assert second.status == "completed" and second.previous_response_id == first.id
    assert len(fake.requests) == 2
    sent = json.dumps(fake.requests[-1].json, ensure_ascii=False)
    assert "Weather in Paris?" in sent and "21°C and sunny" in sent  # the first turn, then the result


@pytest.mark.parametrize("alias", ALIASES)
def test_multi_turn_second_turn_sees_the_first(
    client: openai.OpenAI, fresh: Any, kit: Any, alias: str
) -> None:
    kit.need(PROVIDER[alias])
    first = client.responses.create(model=alias, instructions="Answer in French.", input="my name is Ada")
    second = client.responses.create(model=alias, previous_response_id=first.id, input="what is my name?")
    texts = _texts(_fake(fresh, alias))
    assert texts[:3] == ["my name is Ada", "echo: my name is Ada", "what is my name?"]
    assert "Answer in French." not in json.dumps(_fake(fresh, alias).requests[-1].json)  # not carried over
    third = client.responses.create(model=alias, previous_response_id=second.id, input="and again?")
    assert _texts(_fake(fresh, alias))[:5] == [*texts[:3], "echo: what is my name?", "and again?"]
    assert third.previous_response_id == second.id


@pytest.mark.parametrize("alias", ALIASES)
def test_image_input(client: openai.OpenAI, fresh: Any, kit: Any, alias: str) -> None:
    kit.need(PROVIDER[alias])
    response = client.responses.create(
        model=alias,
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "what is this?"},
                    {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "auto"},
                ],
            }
        ],
    )
    assert response.status == "completed"
    assert PNG in json.dumps(_fake(fresh, alias).requests[-1].json)


def test_structured_output_json_schema_through_gemini(client: openai.OpenAI, fresh: Any, kit: Any) -> None:
    kit.need("gemini")
    fresh.gemini.script(Reply(text='{"city": "Paris"}'))
    schema: Any = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    response = client.responses.create(
        model="gem",
        input="Where is the Eiffel tower?",
        text={"format": {"type": "json_schema", "name": "place", "schema": schema, "strict": True}},
    )
    assert json.loads(response.output_text) == {"city": "Paris"}
    config = fresh.gemini.requests[-1].json["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert response.text is not None and response.text.format is not None
    assert response.text.format.type == "json_schema"  # echoed


def test_structured_output_json_schema_through_anthropic(client: openai.OpenAI, fresh: Any, kit: Any) -> None:
    kit.need("anthropic")
    fresh.anthropic.script(Reply(text="", tool_calls=[ToolCall("json_tool_call", {"city": "Paris"})]))
    schema: Any = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    response = client.responses.create(
        model="claude",
        input="Where is the Eiffel tower?",
        text={"format": {"type": "json_schema", "name": "place", "schema": schema}},
    )
    assert json.loads(response.output_text) == {"city": "Paris"}
    assert [o.type for o in response.output] == ["message"]  # the carrier tool is never shown


def test_reasoning_effort_reaches_anthropic_as_thinking(client: openai.OpenAI, fresh: Any, kit: Any) -> None:
    kit.need("anthropic")
    fresh.anthropic.script(Reply(thinking="The user greets me.", text="Hello."))
    response = client.responses.create(
        model="claude", input="hi", reasoning={"effort": "medium"}, max_output_tokens=8000
    )
    sent = fresh.anthropic.requests[-1].json
    assert sent["thinking"]["type"] == "enabled" and sent["thinking"]["budget_tokens"] > 0
    kinds = [o.type for o in response.output]
    assert kinds == ["reasoning", "message"] and response.output_text == "Hello."
    assert response.reasoning is not None and response.reasoning.effort == "medium"
    # the reasoning item goes back with the next turn (its thinking block re-signed upstream)
    client.responses.create(model="claude", previous_response_id=response.id, input="and?",
                            reasoning={"effort": "medium"}, max_output_tokens=8000)  # fmt: skip
    assert fresh.anthropic.violations == []


# --- streams --------------------------------------------------------------------------------------


@pytest.mark.parametrize("alias", ALIASES)
def test_stream_text_final_response(client: openai.OpenAI, kit: Any, alias: str) -> None:
    kit.need(PROVIDER[alias])
    with client.responses.stream(model=alias, input="stream this please") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds
    assert final.output_text == "echo: stream this please" and final.status == "completed"
    stored = client.responses.retrieve(final.id)
    assert stored.output_text == final.output_text and stored.id == final.id


@pytest.mark.parametrize("alias", ALIASES)
def test_stream_function_call_then_continue(client: openai.OpenAI, fresh: Any, kit: Any, alias: str) -> None:
    kit.need(PROVIDER[alias])
    fake = _fake(fresh, alias)
    fake.script(Reply(text="Checking.", tool_calls=[ToolCall("get_weather", {"city": "Paris"})]))
    with client.responses.stream(model=alias, input="Weather in Paris?", tools=[WEATHER]) as stream:
        arguments = "".join(e.delta for e in stream if e.type == "response.function_call_arguments.delta")
        final = stream.get_final_response()
    calls = [o for o in final.output if o.type == "function_call"]
    assert len(calls) == 1 and json.loads(arguments) == {"city": "Paris"}
    with client.responses.stream(
        model=alias,
        previous_response_id=final.id,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny"}],
        tools=[WEATHER],
    ) as stream:
        second = stream.get_final_response()
    assert second.status == "completed" and second.previous_response_id == final.id
    assert "Weather in Paris?" in json.dumps(fake.requests[-1].json)


@pytest.mark.parametrize("alias", ALIASES)
def test_stream_reasoning_summary_then_continue(
    client: openai.OpenAI, fresh: Any, kit: Any, alias: str
) -> None:
    """The provider's thinking streams as ``response.reasoning_summary_text.delta`` events of a
    ``reasoning`` item (output 0) before the text (output 1); the SDK's typed stream accepts them
    and the next turn, streamed too, carries that reasoning back as the provider needs it."""
    kit.need(PROVIDER[alias])
    fake = _fake(fresh, alias)
    fake.script(Reply(thinking="The user wants a count.", text="Three."))
    asked: Any = {"reasoning": {"effort": "medium"}, "max_output_tokens": 8000}
    with client.responses.stream(model=alias, input="count to three", **asked) as stream:
        seen = list(stream)
        final = stream.get_final_response()
    summary = [e for e in seen if e.type == "response.reasoning_summary_text.delta"]
    text = [e for e in seen if e.type == "response.output_text.delta"]
    assert "".join(e.delta for e in summary) == "The user wants a count."
    assert {e.output_index for e in summary} == {0} and {e.output_index for e in text} == {1}
    assert [o.type for o in final.output] == ["reasoning", "message"] and final.output_text == "Three."
    assert final.usage is not None and final.usage.output_tokens > 0
    with client.responses.stream(
        model=alias, previous_response_id=final.id, input="and four?", **asked
    ) as stream:
        second = stream.get_final_response()
    assert second.status == "completed" and second.previous_response_id == final.id
    assert "count to three" in json.dumps(fake.requests[-1].json)


# --- stored responses -------------------------------------------------------------------------------


def test_retrieve_input_items_delete(client: openai.OpenAI, kit: Any) -> None:
    kit.need("anthropic")
    first = client.responses.create(model="claude", input="one")
    second = client.responses.create(model="claude", previous_response_id=first.id, input="two")
    assert client.responses.retrieve(second.id).model_dump() == second.model_dump()
    items = list(client.responses.input_items.list(second.id, order="asc"))
    assert [i.type for i in items] == ["message", "message", "message"]
    assert [i.role for i in items] == ["user", "assistant", "user"]  # type: ignore[union-attr]
    assert items[1].id == first.output[0].id  # the ids the client saw
    newest = client.responses.input_items.list(second.id, limit=1)
    assert [i.id for i in newest.data] == [items[2].id] and newest.has_more
    assert [i.id for i in client.responses.input_items.list(second.id, limit=1)] == [
        i.id for i in items[::-1]
    ]
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.input_items.list(second.id, limit=500)
    assert bad.value.param == "limit"
    client.responses.delete(second.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(second.id)
    with pytest.raises(openai.BadRequestError) as gone:  # OpenAI's answer: 400, not 404
        client.responses.create(model="claude", previous_response_id=second.id, input="three")
    assert gone.value.code == "previous_response_not_found" and gone.value.param == "previous_response_id"


def test_another_key_gets_404_and_store_false_keeps_nothing(
    client: openai.OpenAI, gateway: GatewayServer, kit: Any
) -> None:
    kit.need("anthropic")
    mine = client.responses.create(model="claude", input="secret")
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=kit.other_key, max_retries=0) as other:
        with pytest.raises(openai.NotFoundError):
            other.responses.retrieve(mine.id)
        with pytest.raises(openai.BadRequestError):
            other.responses.create(model="claude", previous_response_id=mine.id, input="hi")
        with pytest.raises(openai.NotFoundError):
            other.responses.delete(mine.id)
    assert client.responses.retrieve(mine.id).id == mine.id  # still there for its own key
    unstored = client.responses.create(model="claude", input="forget me", store=False)
    assert getattr(unstored, "store", None) is False  # echoed (not a field of the SDK's model)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="claude", previous_response_id=unstored.id, input="hi")


def test_builtin_tool_to_anthropic_is_400_naming_it(client: openai.OpenAI, kit: Any) -> None:
    kit.need("anthropic")
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="claude", input="news?", tools=[{"type": "web_search"}])
    assert info.value.body["param"] == "tools[0].type"  # type: ignore[index]
    assert "web_search" in info.value.body["message"]  # type: ignore[index]


def test_background_is_refused(client: openai.OpenAI, kit: Any) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="claude", input="later", background=True)
    assert info.value.body["param"] == "background"  # type: ignore[index]


@pytest.mark.parametrize("alias", ALIASES)
def test_a_translated_stream_failing_midway_ends_with_an_error_the_sdk_raises(
    client: openai.OpenAI, fresh: Any, kit: Any, alias: str
) -> None:
    kit.need(PROVIDER[alias])
    _fake(fresh, alias).inject(Fault(error_after=3, chunk_delay=0.01))
    kinds: list[str] = []
    with pytest.raises(openai.APIError), client.responses.stream(model=alias, input="a long story") as stream:
        kinds.extend(event.type for event in stream)
    assert kinds[:2] == ["response.created", "response.in_progress"] and "response.completed" not in kinds
