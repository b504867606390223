"""Properties (Hypothesis) of the translators.

- Any Responses body, valid or not: ``read_request`` answers it or raises a 400 naming a field;
  ``to_chat`` builds a chat request the kernel's own schema accepts, or refuses it with a
  ``param`` (``UnsupportedRequest``, or a 400). Nothing else escapes.
- ``function_call`` / ``function_call_output`` pairs keep their ids through the translation.
- Any chat answer becomes a Response the ``openai`` SDK validates.
- Any chat chunk stream, split anywhere, gives the same events as fed whole; every event
  validates as the SDK's ``ResponseStreamEvent``; the SDK's stream accumulator
  (``ResponseStreamState``) accepts the sequence and its final response equals ``.final``.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter
from truckllm_dialect_responses.request import read_request, to_chat
from truckllm_dialect_responses.response import Shape, response_from_chat
from truckllm_dialect_responses.stream import ChatToResponses
from truckllm_dialect_responses.wire import open_thinking, seal_thinking

from truckllm.errors import GatewayError, UnsupportedRequest
from truckllm.kit.openai_schemas import ChatCompletionRequest

EVENT = TypeAdapter(ResponseStreamEvent)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ANY_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(-2, 3), st.text(max_size=6))
TEXT = st.text(max_size=20)
NAMES = st.sampled_from(["get_weather", "shell", "ls", "a-b_c"])
IDS = st.sampled_from(["call_1", "call_2", "toolu_01Ab", "fc-weird.id/3", "x"])
ARGUMENTS = st.sampled_from(["{}", '{"a":1}', '{"city":"Oslo"}', "", "not json"])


def _maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly ``value``; about one time in eight, any scalar instead."""
    return st.integers(0, 7).flatmap(lambda n: ANY_SCALAR if n == 5 else value)


INPUT_PARTS = st.one_of(
    st.fixed_dictionaries({"type": st.just("input_text"), "text": _maybe(TEXT)}),
    st.fixed_dictionaries(
        {
            "type": st.just("input_image"),
            "image_url": _maybe(st.sampled_from(["https://example.com/a.png", "data:image/png;base64,AAAA"])),
        },
        optional={
            "detail": st.sampled_from(["auto", "low", "high", "original"]),
            "file_id": st.just("file-1"),
        },
    ),
    st.fixed_dictionaries(
        {"type": st.just("input_file")},
        optional={
            "file_data": st.just("data:application/pdf;base64,JVBE"),
            "filename": st.just("a.pdf"),
            "file_url": st.just("https://example.com/a.pdf"),
        },
    ),
)
OUTPUT_PARTS = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("output_text"), "text": _maybe(TEXT)}, optional={"annotations": st.just([])}
    ),
    st.fixed_dictionaries({"type": st.just("refusal"), "refusal": _maybe(TEXT)}),
)
SEALED = seal_thinking([{"type": "thinking", "thinking": "t", "signature": "s"}])

ITEMS = st.one_of(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["user", "system", "developer"]),
            "content": st.one_of(TEXT, st.lists(INPUT_PARTS, max_size=3)),
        },
        optional={"type": st.just("message")},
    ),
    st.fixed_dictionaries(
        {"role": st.just("assistant"), "content": st.one_of(TEXT, st.lists(OUTPUT_PARTS, max_size=3))},
        optional={"type": st.just("message"), "id": st.just("msg_1"), "status": st.just("completed")},
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("function_call"),
            "call_id": _maybe(IDS),
            "name": NAMES,
            "arguments": _maybe(ARGUMENTS),
        },
        optional={"id": st.just("fc_1"), "status": st.just("completed")},
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("function_call_output"),
            "call_id": _maybe(IDS),
            "output": st.one_of(TEXT, st.lists(INPUT_PARTS, max_size=2)),
        }
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("reasoning"),
            "summary": st.lists(
                st.fixed_dictionaries({"type": st.just("summary_text"), "text": TEXT}), max_size=2
            ),
        },
        optional={"encrypted_content": st.sampled_from(["gAAAA", SEALED, "truckllm.thinking.v1.!!"])},
    ),
    st.sampled_from(
        [
            {"id": "msg_9"},
            {"type": "item_reference", "id": "msg_9"},
            {"type": "web_search_call", "id": "ws_1", "status": "completed"},
            {"type": "nonsense"},
            {"content": "no role, no type"},
        ]
    ),
    ANY_SCALAR,
)
TOOLS = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {"type": st.just("function"), "name": _maybe(NAMES)},
            optional={
                "parameters": st.one_of(st.none(), st.just({"type": "object"})),
                "strict": st.booleans(),
                "description": TEXT,
            },
        ),
        st.sampled_from([{"type": "web_search"}, {"type": "file_search"}, {"type": "mystery"}]),
    ),
    max_size=3,
)
BODIES = st.fixed_dictionaries(
    {"model": _maybe(st.sampled_from(["alias", "gpt-5"]))},
    optional={
        "input": st.one_of(TEXT, st.lists(ITEMS, max_size=6), ANY_SCALAR),
        "instructions": _maybe(TEXT),
        "stream": _maybe(st.booleans()),
        "store": _maybe(st.booleans()),
        "tools": _maybe(TOOLS),
        "tool_choice": st.one_of(
            st.sampled_from(["auto", "none", "required", "bogus"]),
            st.fixed_dictionaries({"type": st.sampled_from(["function", "file_search"]), "name": NAMES}),
            st.fixed_dictionaries(
                {
                    "type": st.just("allowed_tools"),
                    "mode": st.sampled_from(["auto", "required"]),
                    "tools": st.lists(
                        st.fixed_dictionaries({"type": st.just("function"), "name": NAMES}), max_size=2
                    ),
                }
            ),
        ),
        "text": _maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "format": st.sampled_from(
                        [
                            {"type": "text"},
                            {"type": "json_object"},
                            {"type": "json_schema", "name": "out", "schema": {"type": "object"}},
                            {"type": "json_schema", "name": "bad name", "schema": {}},
                        ]
                    ),
                    "verbosity": st.sampled_from(["low", "loud"]),
                },
            )
        ),
        "max_output_tokens": _maybe(st.integers(0, 2**32)),
        "temperature": _maybe(st.floats(-1, 3)),
        "top_p": _maybe(st.floats(-1, 2)),
        "reasoning": _maybe(
            st.fixed_dictionaries({"effort": _maybe(st.sampled_from(["low", "high", "max"]))})
        ),
        "metadata": _maybe(st.dictionaries(st.text(max_size=4), _maybe(TEXT), max_size=3)),
        "parallel_tool_calls": _maybe(st.booleans()),
        "previous_response_id": _maybe(st.sampled_from(["resp_1", ""])),
    },
)


@SETTINGS
@given(body=BODIES)
def test_any_body_is_answered_or_refused_naming_a_field(body: dict[str, Any]) -> None:
    try:
        call = read_request(json.dumps(body).encode())
    except GatewayError as error:
        assert error.status == 400 and error.param
        return
    try:
        typed = to_chat(call, call.input)
    except UnsupportedRequest as refused:
        assert refused.param and refused.message
        return
    except GatewayError as error:
        assert (error.status, error.param) == (400, "input")
        return
    # the kernel's own schema accepts what the providers will read
    again = msgspec.json.decode(msgspec.json.encode(typed), type=ChatCompletionRequest)
    assert again.model == call.model and again.messages


VALID_INPUT_PARTS = st.one_of(
    st.fixed_dictionaries({"type": st.just("input_text"), "text": TEXT}),
    st.fixed_dictionaries(
        {
            "type": st.just("input_image"),
            "image_url": st.sampled_from(["https://example.com/a.png", "data:image/png;base64,AAAA"]),
        },
        optional={"detail": st.sampled_from(["auto", "low", "high", "original"])},
    ),
    st.fixed_dictionaries(
        {"type": st.just("input_file"), "file_data": st.just("data:application/pdf;base64,JVBE")},
        optional={"filename": st.just("a.pdf")},
    ),
)
VALID_ITEMS = st.one_of(
    st.fixed_dictionaries(
        {"role": st.just("user"), "content": st.one_of(TEXT, st.lists(VALID_INPUT_PARTS, max_size=3))},
        optional={"type": st.just("message")},
    ),
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["system", "developer"]),
            "content": st.one_of(
                TEXT,
                st.lists(
                    INPUT_PARTS.filter(lambda p: p["type"] == "input_text" and isinstance(p["text"], str)),
                    max_size=2,
                ),
            ),
        }
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("message"),
            "role": st.just("assistant"),
            "content": st.lists(
                st.one_of(
                    st.fixed_dictionaries(
                        {"type": st.just("output_text"), "text": TEXT, "annotations": st.just([])}
                    ),
                    st.fixed_dictionaries({"type": st.just("refusal"), "refusal": TEXT}),
                ),
                max_size=2,
            ),
        },
        # ids in one input are unique (OpenAI refuses a repeated one)
        optional={"id": st.uuids().map(lambda u: f"msg_{u.hex}"), "status": st.just("completed")},
    ),
    st.fixed_dictionaries(
        {"type": st.just("function_call"), "call_id": IDS, "name": NAMES, "arguments": ARGUMENTS}
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("function_call_output"),
            "call_id": IDS,
            "output": st.one_of(TEXT, st.lists(VALID_INPUT_PARTS, max_size=2)),
        }
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("reasoning"),
            "summary": st.lists(
                st.fixed_dictionaries({"type": st.just("summary_text"), "text": TEXT}), max_size=2
            ),
        },
        optional={"encrypted_content": st.sampled_from(["gAAAA", SEALED])},
    ),
)
FUNCTIONS = st.lists(
    st.fixed_dictionaries(
        {"type": st.just("function"), "name": NAMES},
        optional={"parameters": st.just({"type": "object"}), "strict": st.booleans(), "description": TEXT},
    ),
    max_size=3,
    unique_by=lambda tool: tool["name"],
)
VALID_BODIES = st.builds(
    lambda tools, choice, fields, items: {
        "model": "alias",
        "input": items,
        **({"tools": tools} if tools else {}),
        **({"tool_choice": choice(tools)} if tools else {}),
        **fields,
    },
    FUNCTIONS,
    st.sampled_from(
        [
            lambda tools: "auto",
            lambda tools: "required",
            lambda tools: "none",
            lambda tools: {"type": "function", "name": tools[-1]["name"]},
            lambda tools: {
                "type": "allowed_tools",
                "mode": "auto",
                "tools": [{"type": "function", "name": tools[0]["name"]}],
            },
        ]
    ),
    st.fixed_dictionaries(
        {},
        optional={
            "instructions": TEXT,
            "stream": st.booleans(),
            "store": st.booleans(),
            "max_output_tokens": st.integers(16, 2**31 - 1),
            "temperature": st.floats(0, 2),
            "top_p": st.floats(0, 1),
            "parallel_tool_calls": st.booleans(),
            "reasoning": st.fixed_dictionaries(
                {"effort": st.sampled_from(["minimal", "low", "medium", "high"])}
            ),
            "text": st.sampled_from(
                [
                    {"format": {"type": "text"}},
                    {"format": {"type": "json_object"}},
                    {
                        "format": {
                            "type": "json_schema",
                            "name": "out",
                            "schema": {"type": "object"},
                            "strict": True,
                        }
                    },
                ]
            ),
            "user": TEXT,
            "metadata": st.dictionaries(st.text(max_size=8), TEXT, max_size=3),
        },
    ),
    st.one_of(TEXT, st.lists(VALID_ITEMS, min_size=1, max_size=8)),
)


@SETTINGS
@given(body=VALID_BODIES)
def test_any_valid_item_list_translates(body: dict[str, Any]) -> None:
    call = read_request(json.dumps(body).encode())
    try:
        typed = to_chat(call, call.input)
    except GatewayError as error:  # every item was empty: nothing to send
        assert (error.status, error.param) == (400, "input")
        assert not body.get("instructions")
        return
    again = msgspec.json.decode(msgspec.json.encode(typed), type=ChatCompletionRequest)
    assert again.model == "alias" and again.messages
    assert bool(again.stream) is bool(body.get("stream"))
    assert len(again.tools or []) <= len(body.get("tools", []))


PAIRS = st.lists(
    st.tuples(st.text(min_size=1, max_size=12), NAMES, ARGUMENTS, TEXT),
    min_size=1,
    max_size=4,
    unique_by=lambda pair: pair[0],
)


@SETTINGS
@given(turns=st.lists(PAIRS, min_size=1, max_size=3))
def test_function_call_ids_survive_the_translation(turns: list[list[tuple[str, str, str, str]]]) -> None:
    items: list[dict[str, Any]] = [{"role": "user", "content": "go"}]
    for pairs in turns:
        items += [{"type": "function_call", "call_id": c, "name": n, "arguments": a} for c, n, a, _ in pairs]
        items += [{"type": "function_call_output", "call_id": c, "output": out} for c, _, _, out in pairs]
    call = read_request(json.dumps({"model": "m", "input": items}).encode())
    typed = to_chat(call, call.input)
    assistants = [m for m in typed.messages if m.__class__.__name__ == "AssistantMessage"]
    tools = [m for m in typed.messages if m.__class__.__name__ == "ToolMessage"]
    assert [[(t.id, t.function.name, t.function.arguments) for t in m.tool_calls] for m in assistants] == [
        [(c, n, a) for c, n, a, _ in pairs] for pairs in turns
    ]
    assert [(m.tool_call_id, m.content) for m in tools] == [
        (c, out) for pairs in turns for c, _, _, out in pairs
    ]


# --- answers ------------------------------------------------------------------------------------

MESSAGES = st.fixed_dictionaries(
    {"role": st.just("assistant")},
    optional={
        "content": st.one_of(
            st.none(), TEXT, st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": TEXT}))
        ),
        "refusal": st.one_of(st.none(), TEXT),
        "reasoning_content": st.one_of(st.none(), TEXT),
        "thinking_blocks": st.one_of(
            st.none(),
            st.just([{"type": "thinking", "thinking": "t", "signature": "s"}]),
            st.just([{"type": "other"}]),
            ANY_SCALAR,
        ),
        "tool_calls": st.one_of(
            ANY_SCALAR,
            st.lists(
                st.fixed_dictionaries(
                    {
                        "type": st.just("function"),
                        "function": st.fixed_dictionaries({"name": NAMES, "arguments": ARGUMENTS}),
                    },
                    optional={"id": IDS},
                ),
                max_size=3,
            ),
        ),
    },
)
FINISH = st.sampled_from(["stop", "length", "tool_calls", "content_filter", None, 3])
USAGES = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {"prompt_tokens": st.integers(0, 10**6), "completion_tokens": st.integers(0, 10**6)},
        optional={
            "prompt_tokens_details": st.fixed_dictionaries({"cached_tokens": st.integers(0, 100)}),
            "completion_tokens_details": st.fixed_dictionaries(
                {"reasoning_tokens": _maybe(st.integers(0, 100))}
            ),
        },
    ),
)


def _shape(stream: bool = False) -> Shape:
    call = read_request(json.dumps({"model": "alias", "input": "hi", "stream": stream}).encode())
    return Shape(id="resp_prop", created_at=1, alias="alias", call=call)


@SETTINGS
@given(message=MESSAGES, finish=FINISH, usage=USAGES)
def test_every_answer_is_a_valid_response(message: dict[str, Any], finish: Any, usage: Any) -> None:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    }
    if usage is not None:
        body["usage"] = usage
    got = response_from_chat(json.dumps(body).encode(), _shape())
    parsed = Response.model_validate(got)
    assert parsed.output and parsed.id == "resp_prop"
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        shown = [o.call_id for o in parsed.output if o.type == "function_call"]
        assert len(shown) == len(calls)
        assert len(set(shown)) == len(shown)  # the client can answer each call
        seen: set[str] = set()
        for sent, call_id in zip(calls, shown, strict=True):
            if sent.get("id") and sent["id"] not in seen:
                assert call_id == sent["id"]  # the provider's id, unchanged
            seen.add(sent.get("id") or "")


# --- streams ------------------------------------------------------------------------------------

DELTAS = st.one_of(
    st.fixed_dictionaries({"content": TEXT}),
    st.fixed_dictionaries({"reasoning_content": TEXT}),
    st.fixed_dictionaries({"refusal": TEXT}),
    st.just({"thinking_blocks": [{"type": "thinking", "thinking": "t", "signature": "s"}]}),
    st.builds(
        lambda index, ident, name, args: {
            "tool_calls": [
                {
                    "index": index,
                    **({"id": ident} if ident else {}),
                    "function": {**({"name": name} if name else {}), "arguments": args},
                }
            ]
        },
        st.integers(0, 2),
        st.one_of(st.none(), IDS),
        st.one_of(st.none(), NAMES),
        st.sampled_from(["", "{", '"a"', ":1", "}"]),
    ),
)


def _chunk(delta: dict[str, Any] | None, finish: Any = None, usage: Any = None) -> bytes:
    body: dict[str, Any] = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    body["choices"] = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    if usage is not None:
        body["usage"] = usage
    return b"data: " + json.dumps(body).encode() + b"\n\n"


STREAMS = st.builds(
    lambda deltas, finish, usage, done: (
        b"".join(_chunk(d) for d in deltas)
        + (_chunk({}, finish) if finish else b"")
        + (_chunk(None, usage=usage) if usage else b"")
        + (b"data: [DONE]\n\n" if done else b"")
    ),
    st.lists(DELTAS, max_size=12),
    st.sampled_from([None, "stop", "length", "tool_calls", "content_filter"]),
    USAGES,
    st.booleans(),
)


def _events(out: bytes) -> list[dict[str, Any]]:
    return [json.loads(frame.split(b"\n")[1][len(b"data: ") :]) for frame in out.split(b"\n\n")[:-1]]


@SETTINGS
@given(upstream=STREAMS, cuts=st.lists(st.integers(0, 4000), max_size=8))
def test_streams_split_anywhere_give_the_same_valid_events(upstream: bytes, cuts: list[int]) -> None:
    whole_translator = ChatToResponses(_shape(stream=True))
    whole = whole_translator.feed(upstream) + whole_translator.close()
    split = ChatToResponses(_shape(stream=True))
    pieces, last = [], 0
    for cut in sorted({min(c, len(upstream)) for c in cuts}):
        pieces.append(split.feed(upstream[last:cut]))
        last = cut
    pieces.append(split.feed(upstream[last:]))
    assert b"".join(pieces) + split.close() == whole

    events = _events(whole)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    state = ResponseStreamState(input_tools=omit, text_format=omit)
    completed = None
    for raw in events:
        event = EVENT.validate_python(raw)
        for handled in state.handle_event(event):
            if handled.type == "response.completed":
                completed = handled.response
    final = whole_translator.final
    assert final is not None and events[-1]["response"] == final
    Response.model_validate(final)
    if final["status"] == "completed":
        assert completed is not None
        assert completed.model_dump(mode="json", exclude_none=True) == Response.model_validate(
            final
        ).model_dump(mode="json", exclude_none=True)


THINKING = st.lists(
    st.one_of(
        st.fixed_dictionaries({"type": st.just("thinking"), "thinking": st.text(), "signature": st.text()}),
        st.fixed_dictionaries({"type": st.just("redacted_thinking"), "data": st.text()}),
    ),
    min_size=1,
    max_size=3,
)


@SETTINGS
@given(blocks=THINKING)
def test_sealed_thinking_opens_to_the_same_blocks(blocks: list[dict[str, Any]]) -> None:
    sealed = seal_thinking(blocks)
    assert sealed is not None and sealed.isascii()
    opened = open_thinking(sealed)
    assert opened is not None and [msgspec.json.decode(raw) for raw in opened] == blocks
    assert open_thinking(sealed[len("truckllm.") :]) is None  # not ours: OpenAI's own, say
    assert open_thinking(sealed[:-4]) is None  # cut short: damaged, never an exception
