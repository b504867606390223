"""A request only OpenAI can serve still has a chat form the kernel measures (``server.limits``,
the budget estimate), never sent: its ``refusal`` keeps it from deployments of other dialects."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from truckllm.kit.openai_schemas import ChatCompletionRequest

BIG = "x" * 5000

ONLY_OPENAI: dict[str, tuple[dict[str, Any], str]] = {
    "a built-in tool": ({"input": BIG, "tools": [{"type": "web_search"}]}, "tools[0].type"),
    "a tool_choice forcing one": (
        {"input": BIG, "tools": [{"type": "web_search"}], "tool_choice": {"type": "web_search"}},
        "tools[0].type",
    ),
    "an item_reference": (
        {"input": [{"role": "user", "content": BIG}, {"type": "item_reference", "id": "msg_1"}]},
        "input[1].type",
    ),
    "conversation": ({"input": BIG, "conversation": "conv_1"}, "conversation"),
    "prompt": ({"input": BIG, "prompt": {"id": "pmpt_1"}}, "prompt"),
    "an image by file id": (
        {
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": BIG},
                        {"type": "input_image", "file_id": "file_1"},
                    ],
                }
            ]
        },
        "input[0].content[1].file_id",
    ),
    "a file by URL in a tool's output": (
        {
            "input": [
                {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
                {
                    "type": "function_call_output",
                    "call_id": "c",
                    "output": [{"type": "input_text", "text": BIG}, {"type": "input_file", "file_url": "u"}],
                },
            ]
        },
        "input[1].output[1].file_url",
    ),
    "a built-in tool's item": (
        {"input": [{"type": "computer_call_output", "call_id": "c", "output": {"image_url": BIG}}]},
        "input[0].type",
    ),
    "background": ({"input": BIG, "background": True}, "background"),
}


def _text(typed: ChatCompletionRequest) -> str:
    return json.dumps(msgspec.to_builtins(typed.messages))


@pytest.mark.parametrize(("extra", "param"), ONLY_OPENAI.values(), ids=ONLY_OPENAI.keys())
def test_a_request_only_openai_serves_is_refused_elsewhere_and_measured_whole(
    kit: Any, extra: dict[str, Any], param: str
) -> None:
    request = kit.parse({"model": "gpt", "max_output_tokens": 321, **extra})
    assert request.refusal is not None and request.refusal_param == param
    typed = request.typed
    assert isinstance(typed, ChatCompletionRequest)
    assert BIG in _text(typed)  # every byte an upstream reads counts towards max_content_bytes
    assert typed.max_completion_tokens == 321  # the budget's completion estimate


def test_built_in_tools_count_as_tools_and_references_as_nothing(kit: Any) -> None:
    tools = [{"type": "web_search"}, {"type": "function", "name": "f"}, {"type": "file_search"}]
    request = kit.parse(
        {"model": "gpt", "input": [{"type": "item_reference", "id": "msg_1"}], "tools": tools}
    )
    typed = request.typed
    assert request.refusal is not None and isinstance(typed, ChatCompletionRequest)
    assert isinstance(typed.tools, list) and len(typed.tools) == 3
    assert typed.messages == []  # what the reference names is kept by OpenAI


def test_a_request_any_deployment_serves_is_not_refused(kit: Any) -> None:
    request = kit.parse({"model": "gpt", "input": BIG, "tools": [{"type": "function", "name": "f"}]})
    assert request.refusal is None and isinstance(request.typed, ChatCompletionRequest)
