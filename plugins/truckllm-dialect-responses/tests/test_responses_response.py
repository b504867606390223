"""Whole answers: chat.completion → Response objects the ``openai`` SDK validates, token counts,
and the ids a client sends back."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from openai.types.responses import Response
from truckllm_dialect_responses.request import read_request, to_chat
from truckllm_dialect_responses.response import Shape, count_from_chat, response_from_chat
from truckllm_dialect_responses.wire import THINKING_PREFIX, item_id

from truckllm.errors import GatewayError


def shape(**body: Any) -> Shape:
    """A Shape for the call ``{"model": "alias", "input": "hi", **body}``."""
    call = read_request(json.dumps({"model": "alias", "input": "hi", **body}).encode())
    return Shape(
        id="resp_0123", created_at=1_700_000_000, alias="alias", call=call, completed_at=1_700_000_005
    )


def completion(message: dict[str, Any], finish: str = "stop", **extra: Any) -> bytes:
    """A chat.completion body."""
    body = {
        "id": "chatcmpl-9",
        "object": "chat.completion",
        "created": 1,
        "model": "upstream-model",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
        **extra,
    }
    return json.dumps(body).encode()


def answer(
    message: dict[str, Any], finish: str = "stop", of: Shape | None = None, **extra: Any
) -> dict[str, Any]:
    """The Response for a chat answer, checked against the SDK's model."""
    got = response_from_chat(completion(message, finish, **extra), of or shape())
    Response.model_validate(got)
    return got


def test_text_answer_is_a_complete_response() -> None:
    usage = {
        "prompt_tokens": 30,
        "completion_tokens": 12,
        "total_tokens": 42,
        "prompt_tokens_details": {"cached_tokens": 10},
        "completion_tokens_details": {"reasoning_tokens": 4},
    }
    got = answer({"content": "Hello!"}, usage=usage)
    assert got["id"] == "resp_0123" and got["object"] == "response" and got["status"] == "completed"
    assert got["model"] == "alias"  # the alias asked for, never the upstream's model
    assert (got["created_at"], got["completed_at"]) == (1_700_000_000, 1_700_000_005)
    assert got["output"] == [
        {
            "id": item_id("resp_0123", "msg", 0),
            "type": "message",
            "status": "completed",
            "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": "Hello!"}],
            "role": "assistant",
        }
    ]
    assert got["usage"] == {
        "input_tokens": 30,
        "input_tokens_details": {"cached_tokens": 10, "cache_write_tokens": 0},
        "output_tokens": 12,
        "output_tokens_details": {"reasoning_tokens": 4},
        "total_tokens": 42,
    }
    assert Response.model_validate(got).output_text == "Hello!"


def test_the_call_is_echoed() -> None:
    tools = [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": False}]
    of = shape(
        instructions="be brief",
        tools=tools,
        tool_choice="required",
        temperature=0.2,
        top_p=0.9,
        max_output_tokens=64,
        parallel_tool_calls=False,
        previous_response_id="resp_prev",
        store=False,
        metadata={"k": "v"},
        reasoning={"effort": "low"},
        text={"format": {"type": "json_object"}},
        user="u",
        safety_identifier="s",
        prompt_cache_key="pk",
        service_tier="flex",
        truncation="auto",
    )
    got = answer({"content": "{}"}, of=of)
    assert {k: got[k] for k in ("instructions", "tools", "tool_choice", "temperature", "top_p")} == {
        "instructions": "be brief",
        "tools": tools,
        "tool_choice": "required",
        "temperature": 0.2,
        "top_p": 0.9,
    }
    assert (got["max_output_tokens"], got["parallel_tool_calls"], got["previous_response_id"]) == (
        64,
        False,
        "resp_prev",
    )
    assert (got["store"], got["metadata"], got["user"], got["safety_identifier"]) == (
        False,
        {"k": "v"},
        "u",
        "s",
    )
    assert got["reasoning"] == {"effort": "low", "summary": None}
    assert got["text"] == {"format": {"type": "json_object"}, "verbosity": "medium"}
    assert (got["prompt_cache_key"], got["service_tier"], got["truncation"]) == ("pk", "flex", "auto")


def test_defaults_are_openais() -> None:
    got = answer({"content": "x"})
    assert (got["temperature"], got["top_p"], got["tool_choice"], got["tools"]) == (1.0, 1.0, "auto", [])
    assert (got["parallel_tool_calls"], got["store"], got["truncation"], got["service_tier"]) == (
        True,
        True,
        "disabled",
        "default",
    )
    assert got["text"] == {"format": {"type": "text"}, "verbosity": "medium"}
    assert got["metadata"] == {} and got["background"] is False and got["error"] is None


def test_tool_calls_keep_their_ids_as_call_ids() -> None:
    calls = [
        {"id": "toolu_01A", "type": "function", "function": {"name": "get", "arguments": '{"q":1}'}},
        {"id": "call_b", "type": "function", "function": {"name": "put", "arguments": ""}},
    ]
    got = answer({"content": None, "tool_calls": calls}, finish="tool_calls")
    assert got["status"] == "completed"
    assert got["output"] == [
        {
            "id": item_id("resp_0123", "fc", 0),
            "type": "function_call",
            "status": "completed",
            "arguments": '{"q":1}',
            "call_id": "toolu_01A",
            "name": "get",
        },
        {
            "id": item_id("resp_0123", "fc", 1),
            "type": "function_call",
            "status": "completed",
            "arguments": "{}",
            "call_id": "call_b",
            "name": "put",
        },
    ]


def test_a_tool_call_without_id_gets_a_stable_one() -> None:
    calls = [{"type": "function", "function": {"name": "f", "arguments": "{}"}}]
    first = answer({"content": "", "tool_calls": calls})
    again = answer({"content": "", "tool_calls": calls})
    (item,) = first["output"]
    assert item["call_id"].startswith("call_") and item["call_id"] == again["output"][0]["call_id"]


def test_reasoning_comes_first_with_its_thinking_sealed() -> None:
    blocks = [
        {"type": "thinking", "thinking": "plan", "signature": "c2ln"},
        {"type": "redacted_thinking", "data": "x"},
    ]
    got = answer({"content": "done", "reasoning_content": "plan", "thinking_blocks": blocks})
    reasoning, message = got["output"]
    assert reasoning["type"] == "reasoning" and reasoning["id"].startswith("rs_")
    assert reasoning["summary"] == [{"type": "summary_text", "text": "plan"}]
    assert reasoning["encrypted_content"].startswith(THINKING_PREFIX)
    assert message["type"] == "message" and message["id"].startswith("msg_")
    plain = answer({"content": "done", "reasoning": "only text"})["output"][0]
    assert plain["summary"][0]["text"] == "only text" and "encrypted_content" not in plain


@pytest.mark.parametrize(
    ("finish", "reason"), [("length", "max_output_tokens"), ("content_filter", "content_filter")]
)
def test_cut_answers_are_incomplete(finish: str, reason: str) -> None:
    got = answer({"content": "partial"}, finish=finish)
    assert got["status"] == "incomplete" and got["incomplete_details"] == {"reason": reason}
    assert got["output"][0]["status"] == "incomplete" and got["completed_at"] is None


def test_refusal_is_a_refusal_part() -> None:
    got = answer({"content": None, "refusal": "I can't help with that."})
    assert got["output"][0]["content"] == [{"type": "refusal", "refusal": "I can't help with that."}]


def test_an_empty_answer_is_an_empty_message() -> None:
    got = answer({"content": ""}, usage=None)
    assert got["output"][0]["content"][0]["text"] == ""
    assert got["usage"]["total_tokens"] == 0


def test_content_parts_from_compatible_servers_are_read() -> None:
    got = answer({"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]})
    assert got["output"][0]["content"][0]["text"] == "ab"


@pytest.mark.parametrize("body", [b"nope", b"[]", b"{" * 2000])
def test_an_unreadable_answer_is_502(body: bytes) -> None:
    with pytest.raises(GatewayError) as caught:
        response_from_chat(body, shape())
    assert caught.value.status == 502


@pytest.mark.parametrize(
    "body",
    [
        {"input_tokens": 7},
        {"prompt_tokens": 7},
        {"usage": {"prompt_tokens": 7}},
        {"totalTokens": 7},
    ],
)
def test_token_counts(body: dict[str, Any]) -> None:
    assert json.loads(count_from_chat(json.dumps(body).encode())) == {
        "object": "response.input_tokens",
        "input_tokens": 7,
    }


def test_an_unreadable_token_count_is_502() -> None:
    with pytest.raises(GatewayError) as caught:
        count_from_chat(b'{"tokens": "many"}')
    assert caught.value.status == 502


# --- peer bugs: the ids the client sees are the ids it can send back ---------------------------


def test_function_call_ids_round_trip_to_the_same_tool_call_id() -> None:
    """A peer returned ``resp_`` ids but kept ``chatcmpl-`` ones: every follow-up tool turn
    failed. Here the client's next turn, built from what it was shown, reaches the provider with
    the tool call id the provider made."""
    calls = [{"id": "toolu_01XyZ", "type": "function", "function": {"name": "ls", "arguments": '{"d":"/"}'}}]
    first = answer({"content": None, "tool_calls": calls}, finish="tool_calls")
    (shown,) = first["output"]
    assert shown["id"].startswith("fc_") and shown["id"] != shown["call_id"]  # fc_ ids are not call ids
    next_turn = {
        "model": "alias",
        "previous_response_id": first["id"],
        "input": [{"type": "function_call_output", "call_id": shown["call_id"], "output": "bin etc"}],
    }
    call = read_request(json.dumps(next_turn).encode())
    conversation = [{"role": "user", "content": "list /"}, *first["output"], *call.input]
    typed = json.loads(msgspec.json.encode(to_chat(call, conversation)))
    assistant, tool = typed["messages"][1:]
    assert assistant["tool_calls"][0]["id"] == tool["tool_call_id"] == "toolu_01XyZ"
    assert assistant["tool_calls"][0]["function"] == {"name": "ls", "arguments": '{"d":"/"}'}


def test_sealed_thinking_goes_back_to_the_provider_unchanged() -> None:
    blocks = [{"type": "thinking", "thinking": "need ls", "signature": "EqQBCkgIARABGAIiQ"}]
    calls = [{"id": "toolu_1", "type": "function", "function": {"name": "ls", "arguments": "{}"}}]
    first = answer(
        {"content": None, "reasoning_content": "need ls", "thinking_blocks": blocks, "tool_calls": calls}
    )
    call = read_request(
        json.dumps(
            {
                "model": "alias",
                "input": [{"type": "function_call_output", "call_id": "toolu_1", "output": "."}],
            }
        ).encode()
    )
    typed = json.loads(
        msgspec.json.encode(to_chat(call, [{"role": "user", "content": "go"}, *first["output"], *call.input]))
    )
    assert typed["messages"][1]["thinking_blocks"] == blocks


def test_item_ids_differ_between_responses() -> None:
    one = response_from_chat(completion({"content": "a"}), shape())
    other = Shape(id="resp_other", created_at=1, alias="alias", call=shape().call)
    two = response_from_chat(completion({"content": "a"}), other)
    assert one["output"][0]["id"] != two["output"][0]["id"]
