"""The ``policy`` guardrail's rules, called directly."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from truckllm_guardrail_policy import ALLOW, PolicyGuardrail, PolicyOptions

from truckllm.types import GuardSubject, GuardText, Verdict


async def _check(options: dict[str, Any], *texts: str, **subject: Any) -> Verdict:
    guard = PolicyGuardrail.make(msgspec.convert(options, PolicyOptions))
    pieces = tuple(GuardText(role="user", text=t) for t in texts)
    return await guard.check(GuardSubject(stage=subject.pop("stage", "input"), texts=pieces, **subject))


async def test_max_input_tokens() -> None:
    assert await _check({"max_input_tokens": 100}, "hi", estimated_tokens=100) is ALLOW
    verdict = await _check({"max_input_tokens": 100}, "hi", estimated_tokens=101)
    assert verdict.action == "block"
    assert verdict.reason == "the prompt is about 101 tokens, over max_input_tokens 100"
    assert dict(verdict.findings) == {"max_input_tokens": 1}
    # an answer is not a prompt
    assert await _check({"max_input_tokens": 100}, "hi", stage="output", estimated_tokens=101) is ALLOW


@pytest.mark.parametrize(
    ("text", "blocked"),
    [
        ("let us talk about Project Falcon today", "blocked_words[1]"),
        ("PROJECT FALCON!", "blocked_words[1]"),
        ("the password is here", "blocked_words[0]"),
        ("(Password)", "blocked_words[0]"),
        ("passwords are words", None),  # whole words only
        ("mypassword", None),
        ("project falconry", None),
    ],
)
async def test_blocked_words_are_whole_words_case_insensitive(text: str, blocked: str | None) -> None:
    verdict = await _check({"blocked_words": ["password", "project falcon"]}, "fine", text)
    if blocked is None:
        assert verdict is ALLOW
    else:
        assert verdict.action == "block"
        assert verdict.reason == f"the text holds {blocked}"
        assert "falcon" not in verdict.reason.lower() and "password" not in verdict.reason


async def test_blocked_patterns_name_their_index_not_the_match() -> None:
    options = {"blocked_patterns": [r"\bDROP\s+TABLE\b", r"(?i)internal[-_ ]only"]}
    assert await _check(options, "select 1") is ALLOW
    verdict = await _check(options, "this is Internal-Only material")
    assert verdict.action == "block"
    assert verdict.reason == "the text matches blocked_patterns[1]"
    assert dict(verdict.findings) == {"blocked_patterns": 1}


def test_an_invalid_pattern_is_a_config_error_naming_it() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"blocked_patterns\[1\] '\(unclosed' is not a valid"):
        msgspec.convert({"blocked_patterns": ["ok", "(unclosed"]}, PolicyOptions)


def test_options_need_a_rule_and_decode_strictly() -> None:
    with pytest.raises(msgspec.ValidationError, match="no rule set"):
        msgspec.convert({}, PolicyOptions)
    with pytest.raises(msgspec.ValidationError, match="blocked_words"):
        msgspec.convert({"blocked_words": [" "]}, PolicyOptions)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"max_input_tokens": 0}, PolicyOptions)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"max_tokens": 10}, PolicyOptions)


async def test_allowed_tools() -> None:
    options = {"allowed_tools": ["search", "calculator"]}
    assert await _check(options, "x", tools=("search",)) is ALLOW
    assert await _check(options, "x") is ALLOW
    verdict = await _check(options, "x", tools=("search", "shell", "rm"))
    assert verdict.action == "block"
    assert verdict.reason == "the request offers 2 tool(s) not in allowed_tools"
    verdict = await _check(options, "x", tools=("shell",), stage="output")
    assert verdict.reason == "the request calls 1 tool(s) not in allowed_tools"
    # an empty list allows no tool at all
    assert (await _check({"allowed_tools": []}, "x", tools=("search",))).action == "block"


async def test_max_output_chars() -> None:
    options = {"max_output_chars": 10}
    assert await _check(options, "12345", "12345", stage="output") is ALLOW
    verdict = await _check(options, "12345", "123456", stage="output")
    assert verdict.reason == "the answer is 11 characters, over max_output_chars 10"
    assert await _check(options, "x" * 50) is ALLOW  # a prompt is not an answer


async def test_the_first_broken_rule_decides() -> None:
    options = {"max_input_tokens": 5, "blocked_words": ["secret"]}
    verdict = await _check(options, "a secret", estimated_tokens=50)
    assert dict(verdict.findings) == {"max_input_tokens": 1}
