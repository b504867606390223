"""Request parsing: Anthropic-shaped 400s naming the field, the body kept, the OpenAI typed form."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from truckllm_dialect_anthropic import AnthropicDialect
from truckllm_dialect_anthropic.request import effort_for_budget, read_request

from truckllm._internal.schemas.openai import ChatCompletionRequest
from truckllm.errors import GatewayError

USER = [{"role": "user", "content": "hi"}]
BASE: dict[str, Any] = {"model": "claude", "max_tokens": 10, "messages": USER}


def _error(kit: Any, body: Any, endpoint: str = "chat", **headers: str) -> GatewayError:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(GatewayError) as info:
        kit.parse(raw, endpoint, **headers)
    assert info.value.status == 400 and info.value.type == "invalid_request_error"
    return info.value


def _typed(body: dict[str, Any], endpoint: str = "chat") -> dict[str, Any]:
    typed = read_request(json.dumps(body).encode(), endpoint).typed
    decoded: dict[str, Any] = json.loads(msgspec.json.encode(typed))
    return decoded


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "Your request body must be valid JSON."),
        (b"\xff\xfe", "Your request body must be valid JSON."),
        (b"[1, 2]", "Input should be a valid dictionary"),
        ({"max_tokens": 1, "messages": USER}, "model: Field required"),
        ({**BASE, "model": 3}, "model: Input should be a valid string"),
        ({**BASE, "model": ""}, "model: String should have at least 1 character"),
        ({"model": "m", "messages": USER}, "max_tokens: Field required"),
        ({**BASE, "max_tokens": "10"}, "max_tokens: Input should be a valid integer"),
        ({**BASE, "max_tokens": True}, "max_tokens: Input should be a valid integer"),
        ({**BASE, "max_tokens": -1}, "max_tokens: Input should be greater than or equal to 0"),
        ({"model": "m", "max_tokens": 1}, "messages: Field required"),
        ({**BASE, "messages": {}}, "messages: Input should be a valid list"),
        ({**BASE, "messages": []}, "messages: at least one message is required"),
        ({**BASE, "messages": ["hi"]}, "messages.0: Input should be a valid dictionary"),
        ({**BASE, "messages": [{"content": "x"}]}, "messages.0.role: Field required"),
        (
            {**BASE, "messages": [{"role": "tool", "content": "x"}]},
            "messages.0.role: Input should be 'user' or",
        ),
        (
            {**BASE, "messages": [{"role": "system", "content": "x"}]},
            'messages.0.role: Unexpected role "system"',
        ),
        ({**BASE, "messages": [{"role": "user"}]}, "messages.0.content: Field required"),
        (
            {**BASE, "messages": [{"role": "user", "content": 5}]},
            "messages.0.content: Input should be a valid",
        ),
        (
            {**BASE, "messages": [{"role": "user", "content": [{"text": "x"}]}]},
            "messages.0.content.0.type: Field",
        ),
        (
            {**BASE, "messages": [{"role": "user", "content": [{"type": "text"}]}]},
            "messages.0.content.0.text: Field",
        ),
        (
            {
                **BASE,
                "messages": [{"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "n"}]}],
            },
            "messages.0.content.0: `tool_use` blocks can only be in `assistant` messages",
        ),
        (
            {
                **BASE,
                "messages": [{"role": "assistant", "content": [{"type": "tool_result", "tool_use_id": "t"}]}],
            },
            "messages.0.content.0: `tool_result` blocks can only be in `user` messages",
        ),
        (
            {
                **BASE,
                "messages": [
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "n"}]}
                ],
            },
            "messages.0.content.0.input: Field required",
        ),
        (
            {**BASE, "messages": [{"role": "assistant", "content": [{"type": "thinking", "thinking": "x"}]}]},
            "messages.0.content.0.signature: Field required",
        ),
        (
            {**BASE, "messages": [{"role": "user", "content": [{"type": "tool_result", "content": "x"}]}]},
            "messages.0.content.0.tool_use_id: Field required",
        ),
        (
            {
                **BASE,
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": "t", "is_error": "y"}],
                    }
                ],
            },
            "messages.0.content.0.is_error: Input should be a valid boolean",
        ),
        (
            {
                **BASE,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {"type": "base64", "media_type": "image/bmp", "data": "x"},
                            }
                        ],
                    }
                ],
            },
            "messages.0.content.0.source.media_type: Input should be 'image/jpeg'",
        ),
        (
            {
                **BASE,
                "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "ftp"}}]}],
            },
            "messages.0.content.0.source.type: Input tag 'ftp' found",
        ),
        ({**BASE, "system": 5}, "system: Input should be a valid string or a list of text blocks"),
        ({**BASE, "system": [{"type": "image"}]}, "system.0.type: Input should be a valid text block"),
        ({**BASE, "temperature": 1.5}, "temperature: Input should be less than or equal to 1"),
        ({**BASE, "temperature": "hot"}, "temperature: Input should be a valid number"),
        ({**BASE, "top_p": -0.1}, "top_p: Input should be greater than or equal to 0"),
        ({**BASE, "top_k": 2.5}, "top_k: Input should be a valid integer"),
        ({**BASE, "stop_sequences": "END"}, "stop_sequences: Input should be a valid list"),
        ({**BASE, "stop_sequences": ["a", 1]}, "stop_sequences.1: Input should be a valid string"),
        ({**BASE, "stream": "yes"}, "stream: Input should be a valid boolean"),
        ({**BASE, "metadata": {"user_id": 7}}, "metadata.user_id: Input should be a valid string"),
        ({**BASE, "tools": {}}, "tools: Input should be a valid list"),
        ({**BASE, "tools": [{"name": "x"}]}, "tools.0.input_schema: Field required"),
        ({**BASE, "tools": [{"input_schema": {}}]}, "tools.0.name: Field required"),
        ({**BASE, "tool_choice": {"type": "maybe"}}, "tool_choice.type: Input tag found"),
        ({**BASE, "tool_choice": {"type": "tool"}}, "tool_choice.name: Field required"),
        ({**BASE, "thinking": {"type": "enabled"}}, "thinking.budget_tokens: Field required"),
        (
            {**BASE, "thinking": {"type": "enabled", "budget_tokens": 100}},
            "thinking.budget_tokens: Input should be greater than or equal to 1024",
        ),
        ({**BASE, "thinking": {"type": "on"}}, "thinking.type: Input tag found"),
        (
            {**BASE, "output_config": {"format": {"type": "xml"}}},
            "output_config.format.type: Input tag found",
        ),
    ],
)
def test_bad_requests_get_anthropic_400s_naming_the_field(kit: Any, body: Any, message: str) -> None:
    error = _error(kit, body)
    assert message in error.message
    if ":" in message and not message.startswith("There"):
        assert error.param == message.split(":")[0]


def test_anthropic_version_is_required(kit: Any) -> None:
    error = _error(kit, BASE, **{"anthropic-version": ""})
    assert error.message == "anthropic-version: header is required"
    relaxed = AnthropicDialect(require_version=False)
    request = relaxed.parse(kit.route(), json.dumps(BASE).encode(), {}, {}, {})
    assert request.model == "claude"


def test_count_tokens_needs_no_max_tokens(kit: Any) -> None:
    request = kit.parse({"model": "claude", "messages": USER, "stream": True}, "count_tokens")
    assert request.endpoint == "count_tokens" and request.stream is False
    assert isinstance(request.typed, ChatCompletionRequest)
    assert request.typed.max_completion_tokens is msgspec.UNSET


def test_body_is_kept_byte_for_byte_and_unknown_fields_pass(kit: Any) -> None:
    raw = (
        b'{ "model":"claude-x",  "max_tokens": 5, "context_management": {"edits": []},'
        b' "messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}},'
        b'{"type":"container_upload","file_id":"f"}]}], "mcp_servers": [] }'
    )
    request = kit.parse(raw, **{"anthropic-beta": "context-management-2025-06-27"})
    assert request.body is raw and request.dialect == "anthropic" and request.model == "claude-x"
    assert request.headers["anthropic-beta"] == "context-management-2025-06-27"
    assert request.fields()["context_management"] == msgspec.Raw(b'{"edits": []}')


def test_stream_asks_openai_upstreams_for_usage(kit: Any) -> None:
    request = kit.parse({**BASE, "stream": True})
    assert request.stream and request.include_usage
    assert _typed({**BASE, "stream": True})["stream_options"] == {"include_usage": True}
    assert "stream_options" not in _typed(BASE)


@pytest.mark.parametrize(
    ("budget", "effort"), [(1024, "low"), (4000, "low"), (4096, "medium"), (10000, "medium"), (31999, "high")]
)
def test_thinking_budget_maps_to_reasoning_effort(budget: int, effort: str) -> None:
    assert effort_for_budget(budget) == effort
    body = {**BASE, "max_tokens": 64000, "thinking": {"type": "enabled", "budget_tokens": budget}}
    assert _typed(body)["reasoning_effort"] == effort


def test_thinking_disabled_or_adaptive_sets_no_effort() -> None:
    assert "reasoning_effort" not in _typed({**BASE, "thinking": {"type": "disabled"}})
    assert "reasoning_effort" not in _typed({**BASE, "thinking": {"type": "adaptive"}})
    assert _typed({**BASE, "output_config": {"effort": "max"}})["reasoning_effort"] == "high"


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, {"tool_choice": "auto"}),
        ({"type": "any"}, {"tool_choice": "required"}),
        ({"type": "none"}, {"tool_choice": "none"}),
        ({"type": "tool", "name": "f"}, {"tool_choice": {"type": "function", "function": {"name": "f"}}}),
        (
            {"type": "auto", "disable_parallel_tool_use": True},
            {"tool_choice": "auto", "parallel_tool_calls": False},
        ),
        ({"type": "none", "disable_parallel_tool_use": True}, {"tool_choice": "none"}),
    ],
)
def test_tool_choice(choice: dict[str, Any], expected: dict[str, Any]) -> None:
    typed = _typed(
        {**BASE, "tools": [{"name": "f", "input_schema": {"type": "object"}}], "tool_choice": choice}
    )
    assert {k: typed[k] for k in ("tool_choice", "parallel_tool_calls") if k in typed} == expected
    assert typed["tools"] == [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    ]


def test_tool_results_become_tool_messages_in_order_before_user_text() -> None:
    typed = _typed(
        {
            **BASE,
            "messages": [
                {"role": "user", "content": "go"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "tool_use", "id": "a", "name": "f", "input": {}},
                        {"type": "tool_use", "id": "b", "name": "f", "input": {"x": 1}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "and then"},
                        {"type": "tool_result", "tool_use_id": "b", "content": ""},
                        {"type": "tool_result", "tool_use_id": "a", "is_error": True},
                    ],
                },
            ],
        }
    )
    assert typed["messages"][1] == {
        "role": "assistant",
        "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            {"id": "b", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}},
        ],
    }
    assert typed["messages"][2:] == [
        {"role": "tool", "tool_call_id": "b", "content": ""},
        {"role": "tool", "tool_call_id": "a", "content": "Error"},
        {"role": "user", "content": "and then"},
    ]


def test_thinking_blocks_are_dropped_from_the_typed_form_only(kit: Any) -> None:
    body = {
        **BASE,
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "sig"}]},
            {"role": "user", "content": "again"},
        ],
    }
    assert [m["role"] for m in _typed(body)["messages"]] == ["user", "user"]
    assert b'"signature": "sig"' in kit.parse(body).body
