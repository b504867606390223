"""Conversation state: remembered turns, the expanded conversation, affinity, ids, store: false."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from truckllm_dialect_responses import ResponsesDialect
from truckllm_dialect_responses.dialect import ResponsesRequest
from truckllm_dialect_responses.state import (
    Origin,
    Stored,
    conversation,
    identify,
    keeps_state,
    load,
    remember,
    resolve_minted,
    upstream_items,
    valid_id,
    with_ids,
)
from truckllm_dialect_responses.wire import THINKING_PREFIX

from truckllm.errors import GatewayError
from truckllm.kit.openai_schemas import ChatCompletionRequest
from truckllm.types import ChatRequest

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


# --- the pure pieces ------------------------------------------------------------------------------


def test_with_ids_gives_typed_ids_only_to_items_without_one() -> None:
    items = [
        {"type": "message", "role": "user", "content": "hi"},
        {"role": "user", "content": "no type"},
        {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "ok"},
        {"type": "reasoning", "summary": []},
        {"type": "message", "id": "msg_keep", "role": "user", "content": "kept"},
    ]
    out = with_ids(items)
    prefixes = [i["id"].split("_")[0] for i in out]
    assert prefixes == ["msg", "msg", "fc", "fc", "rs", "msg"]
    assert out[-1]["id"] == "msg_keep" and len({i["id"] for i in out}) == len(out)
    assert "id" not in items[0]  # the input is not modified
    assert out[2]["call_id"] == "call_1"  # the call id is not the item id


def test_upstream_items_drop_reasoning_and_input_message_ids() -> None:
    items = [
        {"id": "msg_u", "type": "message", "role": "user", "content": "hi"},
        {"id": "rs_1", "type": "reasoning", "summary": []},
        {"id": "rs_2", "type": "reasoning", "summary": [], "encrypted_content": THINKING_PREFIX + "abc"},
        {"id": "rs_3", "type": "reasoning", "summary": [], "encrypted_content": "gAAAA-openai"},
        {"id": "msg_a", "type": "message", "role": "assistant", "status": "completed", "content": []},
        {"id": "fc_1", "type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
    ]
    out = upstream_items(items)
    assert [i.get("id") for i in out] == [None, "msg_a", "fc_1"]
    assert items[0]["id"] == "msg_u"


def test_only_an_openai_responses_account_with_store_keeps_state(kit: Any) -> None:
    openai = kit.served("oai", "openai")
    assert keeps_state(openai, "responses", True)
    assert not keeps_state(openai, "responses", False)
    assert not keeps_state(openai, "openai", True)  # a chat-completions deployment, translated
    assert not keeps_state(kit.served(), "openai", True)
    assert not keeps_state(None, "responses", True)


async def test_remember_then_load_and_store_false_keeps_nothing(kit: Any) -> None:
    state = kit.FakeState({})
    state.served_by = kit.served("oai", "openai", "o1")
    remember(state, "resp_1", b'{"id":"resp_1","output":[]}', [{"id": "msg_1"}], "responses")
    found = await load(state, "resp_1")
    assert found is not None and bytes(found.response) == b'{"id":"resp_1","output":[]}'
    assert found.origin is not None and (found.origin.provider, found.origin.key) == ("oai", "o1")
    assert found.origin.upstream_state and state.ttls["resp:resp_1"] == state.ttl
    remember(state, "resp_2", b"{}", [], "openai", store=False)
    assert await load(state, "resp_2") is None and len(state.shared) == 1
    state.shared[("team", "resp:bad")] = b"not json"
    assert await load(state, "bad") is None  # a damaged value counts as absent


def test_conversation_is_stored_input_then_output_then_new_input() -> None:
    response = json.dumps(
        {"id": "resp_1", "output": [{"id": "msg_o", "type": "message", "role": "assistant"}]}
    )
    stored = Stored(response=msgspec.Raw(response.encode()), items=[{"id": "msg_i", "type": "message"}])
    out = conversation(stored, identify([{"type": "message", "role": "user", "content": "next"}])).items
    assert [i["id"] for i in out[:2]] == ["msg_i", "msg_o"] and out[2]["id"].startswith("msg_")


def test_conversation_resolves_item_references_to_its_own_items() -> None:
    output = {"id": "fc_o", "type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}
    stored = Stored(response=msgspec.Raw(json.dumps({"output": [output]}).encode()), items=[])
    thread = conversation(
        stored,
        identify([{"type": "item_reference", "id": "fc_o"}, {"type": "item_reference", "id": "fc_unknown"}]),
    )
    out = thread.items
    assert out[0] == output and out[2] == {"type": "item_reference", "id": "fc_unknown"}
    # the item again, under an id of its own (ids stay unique: input_items pages by them)
    assert {**out[1], "id": "fc_o"} == output and out[1]["id"] != "fc_o" and out[1]["id"] in thread.minted


# --- the dialect's prepare / response ---------------------------------------------------------------


def _messages(typed: ChatCompletionRequest) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = msgspec.to_builtins(typed.messages)
    return messages


def _answer(dialect: ResponsesDialect, request: ChatRequest, body: bytes, source: str = "openai") -> Any:
    return json.loads(dialect.response(request, body, source))


async def _turn_one(kit: Any, state: Any, **extra: Any) -> tuple[ResponsesDialect, Any]:
    dialect = ResponsesDialect(clock=lambda: 1_700_000_000.0)
    request = kit.parse({"model": "claude", "input": "Weather in Paris?", "tools": [WEATHER], **extra})
    request.state = state
    request = await dialect.prepare(request)
    call = {
        "id": "call_9",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
    }
    state.served_by = kit.served()
    return dialect, _answer(dialect, request, kit.chat_completion("", [call]))


async def test_a_second_turn_sees_the_first_and_only_its_own_instructions(kit: Any) -> None:
    state = kit.FakeState({})
    dialect, first = await _turn_one(kit, state, instructions="Be terse.")
    assert first["id"].startswith("resp_") and first["created_at"] == 1_700_000_000
    (fc,) = first["output"]
    assert fc["type"] == "function_call" and fc["id"].startswith("fc_") and fc["call_id"] == "call_9"
    second = kit.parse(
        {
            "model": "claude",
            "previous_response_id": first["id"],
            "input": [{"type": "function_call_output", "call_id": fc["call_id"], "output": "21C"}],
            "tools": [WEATHER],
        }
    )
    assert second.typed is None  # made in prepare, from the whole conversation
    second.state = state
    prepared = await dialect.prepare(second)
    assert prepared.affinity is None  # Anthropic keeps nothing: the conversation goes anywhere
    typed = prepared.typed
    assert isinstance(typed, ChatCompletionRequest)
    messages = _messages(typed)
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]  # instructions are per call
    assert messages[1]["tool_calls"][0]["id"] == "call_9"
    assert messages[2]["tool_call_id"] == "call_9"
    fields = json.loads(prepared.body)
    assert "previous_response_id" not in fields
    assert [i["type"] for i in fields["input"]] == ["message", "function_call", "function_call_output"]
    assert "id" not in fields["input"][0]  # OpenAI's input message has no id
    third = _answer(dialect, prepared, kit.chat_completion("It is 21C."))
    assert third["previous_response_id"] == first["id"]  # echoed as the client sent it
    stored = await load(state, third["id"])
    assert stored is not None
    assert [i["id"] for i in stored.items][:2] == [
        (await load(state, first["id"])).items[0]["id"],  # type: ignore[union-attr]
        fc["id"],
    ]
    assert all(i["id"] for i in stored.items)


async def test_previous_response_of_another_key_or_unknown_is_openais_400(kit: Any) -> None:
    shared: dict[Any, bytes] = {}
    dialect, first = await _turn_one(kit, kit.FakeState(shared))
    for state, rid in ((kit.FakeState(shared, key="other"), first["id"]), (kit.FakeState(shared), "resp_x")):
        request = kit.parse({"model": "claude", "previous_response_id": rid, "input": "and?"})
        request.state = state
        with pytest.raises(GatewayError) as info:
            await dialect.prepare(request)
        assert info.value.status == 400 and info.value.param == "previous_response_id"
        assert info.value.code == "previous_response_not_found"
        assert info.value.message == f"Previous response with id '{rid}' not found."


async def test_store_false_keeps_nothing(kit: Any) -> None:
    state = kit.FakeState({})
    _, first = await _turn_one(kit, state, store=False)
    assert first["store"] is False and state.shared == {}


async def test_an_openai_account_that_keeps_state_gets_the_original_request_first(kit: Any) -> None:
    state = kit.FakeState({})
    dialect = ResponsesDialect()
    request = kit.parse({"model": "gpt", "input": "hi", "store": True})
    request.state = state
    state.served_by = kit.served("oai", "openai", "o1")
    upstream = {"id": "resp_openai1", "object": "response", "output": [
        {"id": "rs_x", "type": "reasoning", "summary": []},
        {"id": "msg_x", "type": "message", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": "hello", "annotations": []}]},
    ]}  # fmt: skip
    raw = json.dumps(upstream).encode()
    assert dialect.response(request, raw, "responses") == raw  # passed through unchanged
    follow = json.dumps({"model": "gpt", "previous_response_id": "resp_openai1", "input": "again"}).encode()
    second = kit.parse(follow)
    second.state = state
    prepared = await dialect.prepare(second)
    assert prepared.body == follow  # as it came: OpenAI continues it from its own state
    assert prepared.affinity is not None and (prepared.affinity.provider, prepared.affinity.key) == (
        "oai",
        "o1",
    )
    elsewhere = prepared.affinity.elsewhere
    assert isinstance(elsewhere, ResponsesRequest) and elsewhere.affinity is None
    spelled = json.loads(elsewhere.body)
    assert "previous_response_id" not in spelled
    # OpenAI's reasoning item without encrypted content is dropped for another account
    assert [i.get("id") for i in spelled["input"]] == [None, "msg_x", None]
    assert isinstance(prepared.typed, ChatCompletionRequest) and prepared.typed == elsewhere.typed
    assert [m["role"] for m in _messages(prepared.typed)] == ["user", "assistant", "user"]


async def test_a_translated_answer_from_an_openai_chat_deployment_has_no_affinity(kit: Any) -> None:
    state = kit.FakeState({})
    dialect = ResponsesDialect()
    request = kit.parse({"model": "gpt", "input": "hi"})
    request.state = state
    state.served_by = kit.served("oai", "openai", "o1")
    first = _answer(dialect, request, kit.chat_completion("hello"), "openai")
    second = kit.parse({"model": "gpt", "previous_response_id": first["id"], "input": "again"})
    second.state = state
    assert (await dialect.prepare(second)).affinity is None


# --- ids: unique, well-formed, and the ones the account that keeps a turn knows -------------------


def test_identify_gives_every_item_a_unique_id_and_says_which_it_made() -> None:
    items: list[dict[str, Any]] = [
        {"type": "message", "role": "user", "content": "a", "id": None},
        {"type": "message", "role": "user", "content": "b", "id": ""},
        {"type": "message", "role": "user", "content": "c", "id": 7},
        {"type": "message", "role": "user", "content": "d", "id": "msg_same"},
        {"type": "message", "role": "user", "content": "e", "id": "msg_same"},
        {"type": "item_reference", "id": "msg_elsewhere"},
    ]
    thread = identify(items, taken=("msg_taken",))
    ids = [i["id"] for i in thread.items]
    assert all(isinstance(i, str) and i.startswith("msg_") for i in ids)
    assert len(set(ids)) == len(ids) and ids[3] == "msg_same" and ids[5] == "msg_elsewhere"
    assert thread.minted == {ids[0], ids[1], ids[2], ids[4]}
    assert [i["content"] for i in thread.items[:5]] == ["a", "b", "c", "d", "e"]
    assert items[0]["id"] is None  # the input is not modified


def test_response_ids_without_a_response_ids_shape_are_never_looked_up_nor_stored() -> None:
    assert valid_id("resp_" + "0" * 48) and valid_id("resp_bGl0ZWxs+b2E=") and valid_id("resp:x")
    for bad in ("", "r" * 257, "resp_a b", "resp_a/b", "resp_\u00e9", "resp_a\r\nx", "resp_a%2F"):
        assert not valid_id(bad), bad


async def test_a_hostile_id_reaches_no_store(kit: Any) -> None:
    class NoStore(kit.FakeState):  # type: ignore[misc, name-defined]
        async def get(self, name: str) -> bytes | None:
            raise AssertionError(f"looked up {name[:20]}")

    state = NoStore({})
    state.served_by = kit.served("oai", "openai", "o1")
    assert await load(state, "r" * 10_000) is None
    remember(state, "resp_a\r\nx", b'{"id":"x"}', [], "responses")
    remember(state, "r" * 300, b'{"id":"x"}', [], "responses")
    assert state.shared == {}


def _pass_through_turn(kit: Any, state: Any, dialect: ResponsesDialect) -> dict[str, Any]:
    request = kit.parse({"model": "gpt", "input": "the code word is heron"})
    request.state = state
    state.served_by = kit.served("oai", "openai", "o1")
    upstream = {"id": "resp_openai1", "object": "response", "output": [
        {"id": "msg_openai", "type": "message", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": "noted", "annotations": []}]},
    ]}  # fmt: skip
    answer: dict[str, Any] = json.loads(dialect.response(request, json.dumps(upstream).encode(), "responses"))
    return answer


async def test_a_reference_to_an_id_the_gateway_made_reaches_the_pinned_account_as_the_item(kit: Any) -> None:
    state = kit.FakeState({})
    dialect = ResponsesDialect()
    first = _pass_through_turn(kit, state, dialect)
    stored = await load(state, first["id"])
    assert stored is not None and stored.minted == [stored.items[0]["id"]]  # OpenAI never saw it
    follow = kit.parse(
        {
            "model": "gpt",
            "previous_response_id": first["id"],
            "input": [
                {"type": "item_reference", "id": stored.items[0]["id"]},
                {"type": "item_reference", "id": "msg_openai"},  # OpenAI's own: a reference still
                {"role": "user", "content": "the code word?"},
            ],
        }
    )
    follow.state = state
    prepared = await dialect.prepare(follow)
    assert prepared.affinity is not None and prepared.affinity.key == "o1"
    sent = json.loads(prepared.body)
    assert sent["previous_response_id"] == first["id"]
    assert sent["input"][0] == {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "the code word is heron"}],
    }
    assert sent["input"][1] == {"type": "item_reference", "id": "msg_openai"}
    unchanged = kit.parse({"model": "gpt", "previous_response_id": first["id"], "input": "again"})
    unchanged.state = state
    assert (await dialect.prepare(unchanged)).body == unchanged.body  # nothing to resolve: as it came


async def test_ids_made_for_a_translated_turn_are_known_as_made_by_the_gateway(kit: Any) -> None:
    state = kit.FakeState({})
    dialect, first = await _turn_one(kit, state)
    second = kit.parse(
        {
            "model": "claude",
            "previous_response_id": first["id"],
            "input": [{"type": "function_call_output", "call_id": "call_9", "output": "21C"}],
            "tools": [WEATHER],
        }
    )
    second.state = state
    prepared = await dialect.prepare(second)
    answer = _answer(dialect, prepared, kit.chat_completion("It is 21C."))
    stored = await load(state, answer["id"])
    assert stored is not None
    assert set(stored.minted) == {item["id"] for item in stored.items}  # the gateway made them all
    assert resolve_minted(stored, [{"type": "item_reference", "id": "fc_none"}]) is None
    assert stored.origin == Origin(provider="ant", key="a", upstream_state=False)
