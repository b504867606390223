"""Inputs the property tests once broke the Gemini translation with, kept as explicit cases."""

from __future__ import annotations

from typing import Any

import pytest
from truckllm_provider_gemini.schema import to_gemini_schema

from truckllm.errors import UnsupportedRequest


def test_non_string_required_entry_does_not_crash_the_schema_cleaner() -> None:
    cleaned = to_gemini_schema({"type": "object", "properties": {"a": {"type": "string"}}, "required": [1, "a"]})
    assert cleaned["required"] == ["a"]


def test_function_message_without_a_preceding_call_is_refused(gx: Any) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}, {"role": "function", "name": "f", "content": "r"}]}
    with pytest.raises(UnsupportedRequest):
        gx.translate(body)


def test_tool_calls_never_answered_are_refused(gx: Any) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    body = {"model": "m", "messages": [{"role": "user", "content": "x"},
                                       {"role": "assistant", "content": None, "tool_calls": [call]},
                                       {"role": "user", "content": "and?"}]}
    with pytest.raises(UnsupportedRequest):
        gx.translate(body)
