"""Streams: chat chunks → the Responses event sequence, read by the real ``openai`` SDK."""

from __future__ import annotations

import json
from typing import Any

import httpx2 as httpx
import openai
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter
from truckllm_dialect_responses.request import read_request, to_chat
from truckllm_dialect_responses.response import Shape
from truckllm_dialect_responses.stream import ChatToResponses

from truckllm.errors import GatewayError, UpstreamFailure

EVENT = TypeAdapter(ResponseStreamEvent)


def shape(**body: Any) -> Shape:
    """A Shape for the call ``{"model": "alias", "input": "hi", "stream": true, **body}``."""
    call = read_request(json.dumps({"model": "alias", "input": "hi", "stream": True, **body}).encode())
    return Shape(id="resp_stream1", created_at=1_700_000_000, alias="alias", call=call)


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    """One chat.completion.chunk (``choices: []`` when ``delta`` is None)."""
    body: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    body["choices"] = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    body.update(extra)
    return body


def frames(*chunks: dict[str, Any] | str) -> bytes:
    """Chat SSE frames as a provider plugin hands them over (``"[DONE]"`` as is)."""
    return b"".join(
        b"data: " + (c.encode() if isinstance(c, str) else json.dumps(c).encode()) + b"\n\n" for c in chunks
    )


USAGE = chunk(None, usage={"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18})


def events(out: bytes) -> list[dict[str, Any]]:
    """The decoded events; every frame is ``event: <type>`` + ``data:`` with that type."""
    assert out.endswith(b"\n\n")
    decoded = []
    for frame in out.split(b"\n\n")[:-1]:
        name, data = frame.split(b"\n")
        event = json.loads(data.removeprefix(b"data: "))
        assert name == b"event: " + event["type"].encode()
        decoded.append(event)
    return decoded


def run(upstream: bytes, of: Shape | None = None) -> tuple[ChatToResponses, list[dict[str, Any]]]:
    """Feed ``upstream`` whole and close; the translator and its events (each SDK-valid)."""
    translator = ChatToResponses(of or shape())
    got = events(translator.feed(upstream) + translator.close())
    assert [e["sequence_number"] for e in got] == list(range(len(got)))
    for event in got:
        EVENT.validate_python(event)
    return translator, got


def sdk(body: bytes, tools: list[dict[str, Any]] | None = None) -> tuple[list[Any], Any]:
    """Our bytes as the answer to the real SDK's ``client.responses.stream()``: its events and
    ``get_final_response()``."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    with openai.OpenAI(
        api_key="k",
        base_url="http://gateway.test/v1",
        http_client=httpx.Client(transport=httpx.MockTransport(answer)),
        max_retries=0,
    ) as client:
        kwargs: dict[str, Any] = {"tools": tools} if tools else {}
        with client.responses.stream(model="alias", input="hi", **kwargs) as stream:
            seen = list(stream)
            return seen, stream.get_final_response()


def test_text_stream_is_openais_event_sequence() -> None:
    translator, got = run(
        frames(
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Hel"}),
            chunk({"content": "lo"}),
            chunk({}, "stop"),
            USAGE,
            "[DONE]",
        )
    )
    assert [e["type"] for e in got] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    created = got[0]["response"]
    assert created["status"] == "in_progress" and created["output"] == [] and created["usage"] is None
    assert created["id"] == "resp_stream1" and created["model"] == "alias"
    item_id = got[2]["item"]["id"]
    assert all(e.get("item_id", item_id) == item_id for e in got)
    assert got[6]["text"] == "Hello"
    final = got[-1]["response"]
    assert final == translator.final
    assert final["status"] == "completed" and final["usage"]["input_tokens"] == 11
    assert Response.model_validate(final).output_text == "Hello"


def test_the_sdk_reads_the_stream_and_its_final_response() -> None:
    calls = [
        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a":'}}
    ]
    body = frames(
        chunk({"reasoning_content": "think"}),
        chunk({"content": "ok"}),
        chunk({"tool_calls": calls}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        chunk({}, "tool_calls"),
        USAGE,
        "[DONE]",
    )
    tools = [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": False}]
    translator = ChatToResponses(shape(tools=tools))
    out = translator.feed(body) + translator.close()
    seen, final = sdk(out, tools)
    assert [e.type for e in seen][-1] == "response.completed"
    assert final.model_dump(mode="json", exclude_none=True) == Response.model_validate(
        translator.final
    ).model_dump(mode="json", exclude_none=True)
    assert final.output_text == "ok"
    fc = final.output[-1]
    assert fc.type == "function_call" and fc.call_id == "call_1" and fc.arguments == '{"a":1}'


def test_parallel_interleaved_tool_calls_each_get_their_item() -> None:
    _, got = run(
        frames(
            chunk({"tool_calls": [{"index": 0, "id": "call_a", "function": {"name": "a", "arguments": ""}}]}),
            chunk(
                {"tool_calls": [{"index": 1, "id": "call_b", "function": {"name": "b", "arguments": '{"y"'}}]}
            ),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"x":1}'}}]}),
            chunk({"tool_calls": [{"index": 1, "function": {"arguments": ":2}"}}]}),
            chunk({}, "tool_calls"),
            "[DONE]",
        )
    )
    added = [e for e in got if e["type"] == "response.output_item.added"]
    assert [(e["output_index"], e["item"]["call_id"], e["item"]["name"]) for e in added] == [
        (0, "call_a", "a"),
        (1, "call_b", "b"),
    ]
    done = {
        e["output_index"]: e["arguments"] for e in got if e["type"] == "response.function_call_arguments.done"
    }
    assert done == {0: '{"x":1}', 1: '{"y":2}'}
    deltas = [
        (e["output_index"], e["delta"]) for e in got if e["type"] == "response.function_call_arguments.delta"
    ]
    assert deltas == [(1, '{"y"'), (0, '{"x":1}'), (1, ":2}")]
    final = got[-1]["response"]
    assert [o["arguments"] for o in final["output"]] == ['{"x":1}', '{"y":2}']
    assert final["output"][0]["id"] != final["output"][0]["call_id"]


def test_a_call_without_arguments_gets_empty_object_arguments() -> None:
    _, got = run(
        frames(chunk({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "now"}}]}), "[DONE]")
    )
    assert got[-1]["response"]["output"][0]["arguments"] == "{}"


def test_fragments_before_the_name_wait_for_it() -> None:
    _, got = run(
        frames(
            chunk({"tool_calls": [{"index": 0, "id": "c", "function": {"arguments": '{"a"'}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": ":1}"}}]}),
            "[DONE]",
        )
    )
    assert got[-1]["response"]["output"][0]["arguments"] == '{"a":1}'
    nameless = run(
        frames(chunk({"tool_calls": [{"index": 0, "id": "c2", "function": {"arguments": "{}"}}]}))
    )[1]
    assert nameless[-1]["response"]["output"][0]["name"] == "unknown"


def test_reasoning_then_text() -> None:
    blocks = [{"type": "thinking", "thinking": "ab", "signature": "sig"}]
    _, got = run(
        frames(
            chunk({"reasoning_content": "a"}),
            chunk({"reasoning_content": "b"}),
            chunk({"thinking_blocks": blocks}),
            chunk({"content": "answer"}),
            chunk({}, "stop"),
            USAGE,
        )
    )
    kinds = [e["type"] for e in got]
    assert kinds[2:9] == [
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
    ]
    reasoning, message = got[-1]["response"]["output"]
    assert (
        reasoning["summary"] == [{"type": "summary_text", "text": "ab"}] and "encrypted_content" in reasoning
    )
    assert got[8]["item"] == reasoning and message["content"][0]["text"] == "answer"
    assert (reasoning["id"][:3], message["id"][:4]) == ("rs_", "msg_")


def test_refusal_stream() -> None:
    _, got = run(frames(chunk({"refusal": "No"}), chunk({"refusal": "."}), chunk({}, "stop")))
    assert [e["type"] for e in got if "refusal" in e["type"]] == [
        "response.refusal.delta",
        "response.refusal.delta",
        "response.refusal.done",
    ]
    assert got[-1]["response"]["output"][0]["content"] == [{"type": "refusal", "refusal": "No."}]


def test_length_ends_incomplete() -> None:
    translator, got = run(frames(chunk({"content": "cut"}), chunk({}, "length"), USAGE))
    assert got[-1]["type"] == "response.incomplete"
    final = translator.final
    assert final is not None and final["status"] == "incomplete"
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["output"][0]["status"] == "incomplete"
    done = [e for e in got if e["type"] == "response.output_item.done"]
    assert done[0]["item"]["status"] == "incomplete"


def test_the_finish_waits_for_the_usage_chunk() -> None:
    translator = ChatToResponses(shape())
    first = events(translator.feed(frames(chunk({"content": "x"}), chunk({}, "stop"))))
    assert first[-1]["type"] == "response.output_item.done"
    rest = events(translator.feed(frames(USAGE)))
    assert [e["type"] for e in rest] == ["response.completed"]
    assert rest[0]["response"]["usage"]["output_tokens"] == 7
    assert translator.feed(frames("[DONE]")) == b"" and translator.close() == b""


def test_an_empty_stream_still_completes() -> None:
    translator = ChatToResponses(shape())
    got = events(translator.close())
    assert got[0]["type"] == "response.created" and got[-1]["type"] == "response.completed"
    assert translator.final is not None and translator.final["output"][0]["content"][0]["text"] == ""


def test_unreadable_chunks_and_other_choices_are_skipped() -> None:
    body = frames(chunk({"content": "a"})) + b"data: {not json\n\n" + b": comment\n\n"
    body += frames(
        {"choices": [{"index": 1, "delta": {"content": "other"}}]}, chunk({"content": "b"}), "[DONE]"
    )
    translator, _ = run(body)
    assert translator.final is not None
    assert translator.final["output"][0]["content"][0]["text"] == "ab"


def test_an_upstream_error_chunk_fails_with_what_was_made_pending() -> None:
    translator = ChatToResponses(shape())
    with pytest.raises(UpstreamFailure) as caught:
        translator.feed(frames(chunk({"content": "partial"}), {"error": {"message": "overloaded"}}))
    assert caught.value.error.message == "overloaded"
    assert b"response.output_text.delta" in caught.value.pending


def test_error_ends_with_an_error_event_and_response_failed() -> None:
    translator = ChatToResponses(shape())
    before = events(translator.feed(frames(chunk({"content": "part"}))))
    tail = translator.error(
        GatewayError(429, "slow down", type="rate_limit_error", code="rate_limit_exceeded")
    )
    after = events(tail)
    assert [e["type"] for e in after] == ["error", "response.failed"]
    error, failed = after
    assert error["sequence_number"] == before[-1]["sequence_number"] + 1
    assert (error["code"], error["message"], error["param"]) == ("rate_limit_exceeded", "slow down", None)
    assert error["error"] == {
        "message": "slow down",
        "type": "rate_limit_error",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    EVENT.validate_python(error)
    EVENT.validate_python(failed)
    assert failed["response"]["status"] == "failed"
    assert failed["response"]["error"] == {"code": "rate_limit_exceeded", "message": "slow down"}
    assert failed["response"]["output"][0]["content"][0]["text"] == "part"
    assert translator.final is None
    assert translator.close() == b"" and translator.error(GatewayError(500, "again")) == b""


def test_the_sdk_raises_on_the_error_event() -> None:
    translator = ChatToResponses(shape())
    body = translator.feed(frames(chunk({"content": "part"}))) + translator.error(
        GatewayError(502, "upstream connection lost", type="server_error")
    )
    with pytest.raises(openai.APIError) as caught:
        sdk(body)
    assert "upstream connection lost" in str(caught.value)


def test_an_error_before_anything_still_opens_the_response() -> None:
    got = events(ChatToResponses(shape()).error(GatewayError(504, "timeout", type="timeout")))
    assert [e["type"] for e in got] == [
        "response.created",
        "response.in_progress",
        "error",
        "response.failed",
    ]
    assert got[-1]["response"]["error"]["code"] == "server_error"


def test_streamed_call_ids_are_the_ids_the_next_turn_sends_back() -> None:
    """Peer bug: the ids a streaming client sees must continue the conversation. The call id in
    the streamed output is the provider's; the next turn's ``function_call_output`` naming it
    reaches the provider as that tool call's id."""
    translator, got = run(
        frames(
            chunk(
                {
                    "tool_calls": [
                        {"index": 0, "id": "toolu_01Q", "function": {"name": "ls", "arguments": "{}"}}
                    ]
                }
            ),
            chunk({}, "tool_calls"),
            USAGE,
        )
    )
    done = [e["item"] for e in got if e["type"] == "response.output_item.done"]
    assert done[0]["call_id"] == "toolu_01Q" and done[0]["id"].startswith("fc_")
    final = translator.final
    assert final is not None and final["output"] == done
    follow_up = read_request(
        json.dumps(
            {
                "model": "alias",
                "previous_response_id": final["id"],
                "input": [{"type": "function_call_output", "call_id": done[0]["call_id"], "output": "a b"}],
            }
        ).encode()
    )
    typed = to_chat(follow_up, [{"role": "user", "content": "ls"}, *final["output"], *follow_up.input])
    assistant, tool = typed.messages[1], typed.messages[2]
    assert assistant.tool_calls[0].id == tool.tool_call_id == "toolu_01Q"  # type: ignore[union-attr]
