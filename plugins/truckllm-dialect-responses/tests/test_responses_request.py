"""Responses requests: OpenAI-shaped validation (400 naming the field) and the chat form built
for deployments of other dialects."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from truckllm_dialect_responses.request import ResponsesCall, read_request, to_chat, translate
from truckllm_dialect_responses.wire import seal_thinking

from truckllm.errors import GatewayError, UnsupportedRequest


def call(**body: Any) -> ResponsesCall:
    """``read_request`` of ``{"model": "alias", **body}``."""
    return read_request(json.dumps({"model": "alias", **body}).encode())


def chat(**body: Any) -> dict[str, Any]:
    """The chat form of ``{"model": "alias", **body}`` as JSON."""
    parsed = call(**body)
    return json.loads(msgspec.json.encode(to_chat(parsed, parsed.input)))


def refusal(**body: Any) -> UnsupportedRequest:
    """The UnsupportedRequest the translation raises for this body."""
    parsed = call(**body)
    with pytest.raises(UnsupportedRequest) as caught:
        to_chat(parsed, parsed.input)
    return caught.value


# --- read_request -----------------------------------------------------------------------------


def test_defaults_follow_openai() -> None:
    parsed = call(input="hi")
    assert (parsed.model, parsed.stream, parsed.store, parsed.background) == ("alias", False, True, False)
    assert parsed.previous_response_id is None and parsed.instructions is None
    assert parsed.input == [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
    ]
    assert call(input="x", store=False, stream=True).store is False


def test_items_without_type_are_messages_or_references() -> None:
    parsed = call(input=[{"role": "user", "content": "a"}, {"id": "msg_1"}])
    assert [i["type"] for i in parsed.input] == ["message", "item_reference"]
    assert "type" not in json.loads(json.dumps(parsed.fields))["input"][0]  # the body is not touched


BAD = [
    ({"input": "x"}, "model", "missing_required_parameter"),
    ({"model": 3, "input": "x"}, "model", "invalid_type"),
    ({"model": "", "input": "x"}, "model", "empty_string"),
    ({"model": "m", "input": 5}, "input", "invalid_type"),
    ({"model": "m", "input": [3]}, "input[0]", "invalid_type"),
    ({"model": "m", "input": ["x"]}, "input[0]", "invalid_type"),
    ({"model": "m", "input": [{"content": "x"}]}, "input[0].type", "missing_required_parameter"),
    ({"model": "m", "input": [{"type": "nope"}]}, "input[0].type", "invalid_value"),
    ({"model": "m", "input": [{"role": "robot", "content": "x"}]}, "input[0].role", "invalid_value"),
    ({"model": "m", "input": [{"role": "user"}]}, "input[0].content", "missing_required_parameter"),
    ({"model": "m", "input": [{"role": "user", "content": 1}]}, "input[0].content", "invalid_type"),
    (
        {
            "model": "m",
            "input": [
                {"role": "user", "content": "a"},
                {"role": "user", "content": [{"type": "input_text"}]},
            ],
        },
        "input[1].content[0].text",
        "missing_required_parameter",
    ),
    (
        {"model": "m", "input": [{"role": "user", "content": [{"type": "input_text", "text": "a"}, {}]}]},
        "input[0].content[1].type",
        "missing_required_parameter",
    ),
    (
        {"model": "m", "input": [{"role": "user", "content": [{"type": "output_text", "text": "a"}]}]},
        "input[0].content[0].type",
        "invalid_value",
    ),
    (
        {"model": "m", "input": [{"role": "assistant", "content": [{"type": "input_text", "text": "a"}]}]},
        "input[0].content[0].type",
        "invalid_value",
    ),
    (
        {"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "detail": "auto"}]}]},
        "input[0].content[0].image_url",
        "missing_required_parameter",
    ),
    (
        {"model": "m", "input": [{"role": "user", "content": [{"type": "input_file", "filename": "a"}]}]},
        "input[0].content[0].file_data",
        "missing_required_parameter",
    ),
    (
        {"model": "m", "input": [{"type": "function_call_output", "output": "x"}]},
        "input[0].call_id",
        "missing_required_parameter",
    ),
    (
        {"model": "m", "input": [{"type": "function_call_output", "call_id": "c"}]},
        "input[0].output",
        "missing_required_parameter",
    ),
    (
        {"model": "m", "input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}]},
        "input[0].arguments",
        "invalid_type",
    ),
    (
        {"model": "m", "input": [{"type": "reasoning", "id": "rs_1"}]},
        "input[0].summary",
        "missing_required_parameter",
    ),
    (
        {"model": "m", "input": [{"type": "reasoning", "summary": [{"type": "x", "text": "a"}]}]},
        "input[0].summary[0].type",
        "invalid_value",
    ),
    ({"model": "m", "input": [{"type": "item_reference"}]}, "input[0].id", "missing_required_parameter"),
    ({"model": "m", "input": "x", "instructions": 1}, "instructions", "invalid_type"),
    ({"model": "m", "input": "x", "stream": "yes"}, "stream", "invalid_type"),
    ({"model": "m", "input": "x", "store": 1}, "store", "invalid_type"),
    ({"model": "m", "input": "x", "previous_response_id": ""}, "previous_response_id", "empty_string"),
    ({"model": "m", "input": "x", "tools": {}}, "tools", "invalid_type"),
    ({"model": "m", "input": "x", "tools": [{"name": "f"}]}, "tools[0].type", "missing_required_parameter"),
    ({"model": "m", "input": "x", "tools": [{"type": "magic"}]}, "tools[0].type", "invalid_value"),
    (
        {"model": "m", "input": "x", "tools": [{"type": "function"}]},
        "tools[0].name",
        "missing_required_parameter",
    ),
    (
        {"model": "m", "input": "x", "tools": [{"type": "function", "name": "a b"}]},
        "tools[0].name",
        "invalid_value",
    ),
    (
        {"model": "m", "input": "x", "tools": [{"type": "function", "name": "f", "parameters": []}]},
        "tools[0].parameters",
        "invalid_type",
    ),
    ({"model": "m", "input": "x", "tool_choice": "any"}, "tool_choice", "invalid_value"),
    (
        {"model": "m", "input": "x", "tool_choice": {"type": "function", "name": "g"}},
        "tool_choice.name",
        "invalid_value",
    ),
    ({"model": "m", "input": "x", "text": {"format": {"type": "xml"}}}, "text.format.type", "invalid_value"),
    (
        {"model": "m", "input": "x", "text": {"format": {"type": "json_schema", "schema": {}}}},
        "text.format.name",
        "missing_required_parameter",
    ),
    (
        {"model": "m", "input": "x", "text": {"format": {"type": "json_schema", "name": "n"}}},
        "text.format.schema",
        "missing_required_parameter",
    ),
    ({"model": "m", "input": "x", "reasoning": {"effort": "max"}}, "reasoning.effort", "invalid_value"),
    ({"model": "m", "input": "x", "max_output_tokens": 15}, "max_output_tokens", "integer_below_min_value"),
    ({"model": "m", "input": "x", "max_output_tokens": 1.5}, "max_output_tokens", "invalid_type"),
    ({"model": "m", "input": "x", "temperature": 2.5}, "temperature", "decimal_above_max_value"),
    ({"model": "m", "input": "x", "top_p": -1}, "top_p", "integer_below_min_value"),
    ({"model": "m", "input": "x", "metadata": {"k": 1}}, "metadata.k", "invalid_type"),
    ({"model": "m", "input": "x", "truncation": "middle"}, "truncation", "invalid_value"),
    ({"model": "m", "input": "x", "stream_options": {"include_obfuscation": False}}, "stream_options", None),
]


@pytest.mark.parametrize(("body", "param", "code"), BAD)
def test_bad_requests_are_400_naming_the_field(body: dict[str, Any], param: str, code: str | None) -> None:
    with pytest.raises(GatewayError) as caught:
        read_request(json.dumps(body).encode())
    error = caught.value
    assert (error.status, error.param, error.code, error.type) == (400, param, code, "invalid_request_error")
    assert param in error.message


@pytest.mark.parametrize("raw", [b"{", b"[]", b'"x"', b"\xff", b'{"model": "m", "model": "n"}'])
def test_bodies_that_are_not_a_json_object_are_400(raw: bytes) -> None:
    with pytest.raises(GatewayError) as caught:
        read_request(raw)
    assert caught.value.status == 400


def test_builtin_items_and_tools_are_valid_for_openai() -> None:
    parsed = call(
        input=[{"type": "web_search_call", "id": "ws_1", "status": "completed"}, {"id": "msg_1"}],
        tools=[{"type": "web_search"}, {"type": "file_search", "vector_store_ids": ["vs"]}],
        tool_choice={"type": "web_search_preview"},
    )
    assert len(parsed.input) == 2  # read_request accepts them; only the translation refuses


# --- to_chat ----------------------------------------------------------------------------------


def test_instructions_and_roles() -> None:
    got = chat(
        instructions="Be brief.",
        input=[
            {"role": "developer", "content": "dev rules"},
            {
                "role": "system",
                "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}],
            },
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "again"}]},
        ],
    )
    assert got == {
        "model": "alias",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": "dev rules"},
            {"role": "system", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "again"},
        ],
    }


def test_media_parts() -> None:
    got = chat(
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "see"},
                    {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "low"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "original"},
                    {
                        "type": "input_file",
                        "file_data": "data:application/pdf;base64,JVBE",
                        "filename": "a.pdf",
                    },
                    {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
                ],
            }
        ]
    )
    assert got["messages"][0]["content"] == [
        {"type": "text", "text": "see"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}},
        {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
    ]


@pytest.mark.parametrize(
    ("part", "param"),
    [
        ({"type": "input_image", "file_id": "file-1", "detail": "auto"}, "input[0].content[0].file_id"),
        ({"type": "input_file", "file_id": "file-1"}, "input[0].content[0].file_id"),
        ({"type": "input_file", "file_url": "https://example.com/a.pdf"}, "input[0].content[0].file_url"),
    ],
)
def test_files_by_reference_are_refused_naming_the_field(part: dict[str, Any], param: str) -> None:
    error = refusal(input=[{"role": "user", "content": [part]}])
    assert error.param == param and "OpenAI" in error.message


def test_a_turn_of_reasoning_text_and_calls_is_one_assistant_message() -> None:
    blocks = [{"type": "thinking", "thinking": "hmm", "signature": "sig"}]
    got = chat(
        input=[
            {"role": "user", "content": "weather?"},
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": seal_thinking(blocks)},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Checking."}],
            },
            {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_1",
                "name": "w",
                "arguments": '{"c":"Oslo"}',
            },
            {"type": "function_call", "id": "fc_2", "call_id": "toolu_2", "name": "w", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
            {
                "type": "function_call_output",
                "call_id": "toolu_2",
                "output": [{"type": "input_text", "text": "rain"}],
            },
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Mixed."}]},
        ]
    )
    assert got["messages"][1:] == [
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "w", "arguments": '{"c":"Oslo"}'}},
                {"id": "toolu_2", "type": "function", "function": {"name": "w", "arguments": "{}"}},
            ],
            "thinking_blocks": blocks,
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "rain"},
        {"role": "assistant", "content": "Mixed."},
    ]


def test_text_after_calls_before_their_outputs_stays_in_the_turn() -> None:
    got = chat(
        input=[
            {"role": "user", "content": "go"},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"role": "assistant", "content": [{"type": "output_text", "text": "Running f."}]},
            {"type": "function_call_output", "call_id": "c1", "output": "done"},
        ]
    )
    assert got["messages"][1:] == [
        {
            "role": "assistant",
            "content": "Running f.",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "done"},
    ]


def test_media_in_tool_output_follow_in_a_user_message() -> None:
    got = chat(
        input=[
            {"type": "function_call", "call_id": "c1", "name": "shot", "arguments": "{}"},
            {
                "type": "function_call_output",
                "call_id": "c1",
                "output": [
                    {"type": "input_text", "text": "screen:"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
                ],
            },
            {"role": "user", "content": "what do you see?"},
        ]
    )
    assert got["messages"][1:] == [
        {"role": "tool", "tool_call_id": "c1", "content": "screen:\n(attached below)"},
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}],
        },
        {"role": "user", "content": "what do you see?"},
    ]


def test_openai_reasoning_is_dropped_with_a_note() -> None:
    parsed = call(
        input=[
            {"role": "user", "content": "q"},
            {
                "type": "reasoning",
                "id": "rs_1",
                "summary": [{"type": "summary_text", "text": "s"}],
                "encrypted_content": "gAAAA",
            },
            {"role": "assistant", "content": [{"type": "output_text", "text": "a"}]},
        ]
    )
    translation = translate(parsed, parsed.input)
    typed = json.loads(msgspec.json.encode(translation.typed))
    assert typed["messages"][1] == {"role": "assistant", "content": "a"}
    assert any("reasoning" in note for note in translation.notes)


def test_assistant_refusals_and_several_texts_keep_their_parts() -> None:
    got = chat(
        input=[
            {
                "role": "assistant",
                "content": [
                    {"type": "output_text", "text": "a"},
                    {"type": "refusal", "refusal": "no"},
                    {"type": "output_text", "text": ""},
                ],
            },
            {"role": "user", "content": "ok"},
        ]
    )
    assert got["messages"][0] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "a"}, {"type": "refusal", "refusal": "no"}],
    }


def test_parameters() -> None:
    got = chat(
        input="hi",
        stream=True,
        max_output_tokens=256,
        temperature=0.5,
        top_p=1,
        parallel_tool_calls=False,
        reasoning={"effort": "high", "summary": "auto"},
        user="u1",
        safety_identifier="s1",
        tools=[
            {
                "type": "function",
                "name": "f",
                "description": "d",
                "parameters": {"type": "object"},
                "strict": True,
            },
            {"type": "function", "name": "g", "parameters": None},
        ],
        tool_choice="required",
        text={"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": True}},
        metadata={"a": "b"},
        service_tier="flex",
        prompt_cache_key="k",
        truncation="auto",
    )
    assert got == {
        "model": "alias",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_completion_tokens": 256,
        "temperature": 0.5,
        "top_p": 1.0,
        "user": "u1",
        "safety_identifier": "s1",
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "f",
                    "description": "d",
                    "parameters": {"type": "object"},
                    "strict": True,
                },
            },
            {"type": "function", "function": {"name": "g"}},
        ],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": True},
        },
        "reasoning_effort": "high",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ({"format": {"type": "text"}}, None),
        ({"format": {"type": "json_object"}}, {"type": "json_object"}),
        ({"verbosity": "low"}, None),
    ],
)
def test_text_format(text: dict[str, Any], expected: dict[str, Any] | None) -> None:
    assert chat(input="x", text=text).get("response_format") == expected


def test_tool_choice_forms() -> None:
    tools = [{"type": "function", "name": "f"}, {"type": "function", "name": "g"}]
    named = chat(input="x", tools=tools, tool_choice={"type": "function", "name": "g"})
    assert named["tool_choice"] == {"type": "function", "function": {"name": "g"}}
    allowed = chat(
        input="x",
        tools=tools,
        tool_choice={
            "type": "allowed_tools",
            "mode": "required",
            "tools": [{"type": "function", "name": "g"}],
        },
    )
    assert [t["function"]["name"] for t in allowed["tools"]] == ["g"] and allowed["tool_choice"] == "required"
    without_tools = chat(input="x", tool_choice="none", parallel_tool_calls=True)
    assert "tool_choice" not in without_tools and "parallel_tool_calls" not in without_tools


@pytest.mark.parametrize(
    "tool",
    [
        {"type": "web_search"},
        {"type": "web_search_preview"},
        {"type": "file_search", "vector_store_ids": ["vs_1"]},
        {"type": "computer_use_preview", "display_width": 1, "display_height": 1, "environment": "linux"},
        {"type": "code_interpreter", "container": {"type": "auto"}},
        {"type": "image_generation"},
        {"type": "mcp", "server_label": "x"},
        {"type": "local_shell"},
        {"type": "custom", "name": "x"},
    ],
)
def test_builtin_tools_are_refused_naming_the_tool(tool: dict[str, Any]) -> None:
    error = refusal(input="x", tools=[{"type": "function", "name": "f"}, tool])
    assert error.param == "tools[1].type"
    assert tool["type"] in error.message


def test_a_choice_forcing_a_builtin_tool_is_refused() -> None:
    error = refusal(input="x", tools=[{"type": "function", "name": "f"}], tool_choice={"type": "file_search"})
    assert error.param == "tool_choice.type"


@pytest.mark.parametrize(
    "item",
    [
        {"id": "msg_1"},
        {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search"}},
        {"type": "computer_call_output", "call_id": "c", "output": {"type": "computer_screenshot"}},
        {"type": "custom_tool_call", "call_id": "c", "name": "n", "input": "i"},
    ],
)
def test_items_only_openai_can_serve_are_refused_naming_the_item(item: dict[str, Any]) -> None:
    error = refusal(input=[{"role": "user", "content": "x"}, item])
    assert error.param == "input[1].type"


@pytest.mark.parametrize("name", ["conversation", "prompt"])
def test_openai_stored_objects_are_refused(name: str) -> None:
    assert refusal(input="x", **{name: {"id": "conv_1"}}).param == name


def test_stored_items_come_first_and_problems_in_them_name_previous_response_id() -> None:
    parsed = call(
        input=[{"type": "function_call_output", "call_id": "call_9", "output": "42"}],
        previous_response_id="resp_1",
    )
    stored = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "compute"}]},
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_9",
            "name": "calc",
            "arguments": "{}",
            "status": "completed",
        },
    ]
    typed = json.loads(msgspec.json.encode(to_chat(parsed, [*stored, *parsed.input])))
    assert [m["role"] for m in typed["messages"]] == ["user", "assistant", "tool"]
    assert typed["messages"][1]["tool_calls"][0]["id"] == typed["messages"][2]["tool_call_id"] == "call_9"
    with pytest.raises(UnsupportedRequest) as caught:
        to_chat(parsed, [{"type": "web_search_call", "id": "ws", "status": "completed"}, *parsed.input])
    assert caught.value.param == "previous_response_id"


def test_nothing_to_send_is_400() -> None:
    parsed = call()
    with pytest.raises(GatewayError) as caught:
        to_chat(parsed, parsed.input)
    assert (caught.value.status, caught.value.param) == (400, "input")
    assert to_chat(call(instructions="only this"), [])  # instructions alone are something


LONG = "n" * 10_000

QUOTING: dict[str, dict[str, Any]] = {
    "a tool_choice naming no tool": {
        "input": "x",
        "tools": [{"type": "function", "name": "f"}],
        "tool_choice": {"type": "function", "name": LONG},
    },
    "allowed_tools naming no tool": {
        "input": "x",
        "tools": [{"type": "function", "name": "f"}],
        "tool_choice": {
            "type": "allowed_tools",
            "mode": "auto",
            "tools": [{"type": "function", "name": LONG}],
        },
    },
    "a repeated item id": {
        "input": [{"role": "user", "content": "a", "id": LONG}, {"role": "user", "content": "b", "id": LONG}]
    },
    "an unknown enum value": {"input": "x", "truncation": LONG},
}


@pytest.mark.parametrize("body", QUOTING.values(), ids=QUOTING.keys())
def test_errors_quote_at_most_a_bounded_piece_of_client_input(body: dict[str, Any]) -> None:
    with pytest.raises(GatewayError) as caught:
        call(**body)
    assert caught.value.status == 400 and caught.value.param is not None
    assert len(caught.value.message) <= 300, caught.value.message[:120]


def test_item_ids_are_strings_and_not_repeated_as_openai_answers() -> None:
    with pytest.raises(GatewayError) as caught:
        call(input=[{"role": "user", "content": "a", "id": 7}])
    assert (caught.value.param, caught.value.code) == ("input[0].id", "invalid_type")
    with pytest.raises(GatewayError) as caught:
        call(input=[{"type": "item_reference", "id": "msg_1"}, {"type": "item_reference", "id": "msg_1"}])
    assert (
        caught.value.param == "input[1].id" and "Duplicate item found with id msg_1" in caught.value.message
    )
    assert (
        len(
            call(
                input=[
                    {"role": "user", "content": "a", "id": None},
                    {"role": "user", "content": "b", "id": ""},
                ]
            ).input
        )
        == 2
    )
