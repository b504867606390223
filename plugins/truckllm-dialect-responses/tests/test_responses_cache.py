"""Prompt-cache marks (``prompt_cache_breakpoint``, Anthropic's ``cache_control``) reach Anthropic
as cache breakpoints, the marks of stored turns included; a bad breakpoint is a 400 naming it."""

from __future__ import annotations

import json
from typing import Any

import httpx2 as httpx
import pytest
from truckllm_dialect_responses.request import read_request, translate

from truckllm.errors import GatewayError
from truckllm_testing.server import GatewayServer

POINT = {"mode": "explicit"}
EPHEMERAL = {"type": "ephemeral"}


def _post(gateway: GatewayServer, body: Any, key: str) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/responses", json=body, headers={"authorization": f"Bearer {key}"}, timeout=20
    )


def _marked_blocks(body: dict[str, Any]) -> list[str]:
    """The text of every Anthropic block carrying ``cache_control``, in prompt order."""
    found: list[str] = []
    system = body.get("system")
    for block in system if isinstance(system, list) else ():
        if "cache_control" in block:
            found.append(block["text"])
    for message in body["messages"]:
        content = message["content"]
        for block in content if isinstance(content, list) else ():
            if "cache_control" in block:
                assert block["cache_control"] == EPHEMERAL
                found.append(block.get("text") or block.get("type"))
    return found


def test_a_breakpoint_reaches_anthropic_and_survives_previous_response_id(
    gateway: GatewayServer, fresh: Any, kit: Any
) -> None:
    kit.need("anthropic")
    manual = {"type": "input_text", "text": "the manual", "prompt_cache_breakpoint": POINT}
    first_input = [
        {"role": "system", "content": [manual]},
        {"role": "user", "content": [{"type": "input_text", "text": "part one", "prompt_cache_breakpoint": POINT}]},
        {"role": "user", "content": "unmarked"},
    ]  # fmt: skip
    first = _post(gateway, {"model": "claude", "input": first_input}, kit.key)
    assert first.status_code == 200, first.text
    sent = fresh.anthropic.requests[-1].json
    assert sent["system"] == [{"type": "text", "text": "the manual", "cache_control": EPHEMERAL}]
    assert _marked_blocks(sent) == ["the manual", "part one"]

    second_input = [{"role": "user", "content": [{"type": "input_text", "text": "part two", "prompt_cache_breakpoint": POINT}]}]  # fmt: skip
    body = {"model": "claude", "previous_response_id": first.json()["id"], "input": second_input}
    second = _post(gateway, body, kit.key)
    assert second.status_code == 200, second.text
    sent = fresh.anthropic.requests[-1].json
    assert _marked_blocks(sent) == ["the manual", "part one", "part two"]
    assert "unmarked" in json.dumps(sent)

    previous = second.json()["id"]
    for turn in ("part three", "part four"):  # Anthropic takes four: the latest are kept
        part = {"type": "input_text", "text": turn, "prompt_cache_breakpoint": POINT}
        body = {
            "model": "claude",
            "previous_response_id": previous,
            "input": [{"role": "user", "content": [part]}],
        }
        answer = _post(gateway, body, kit.key)
        assert answer.status_code == 200, answer.text
        previous = answer.json()["id"]
    sent = fresh.anthropic.requests[-1].json
    assert _marked_blocks(sent) == ["part one", "part two", "part three", "part four"]


def test_anthropic_cache_control_on_a_tool_and_a_message_item_reaches_anthropic(
    gateway: GatewayServer, fresh: Any, kit: Any
) -> None:
    kit.need("anthropic")
    body = {
        "model": "claude",
        "input": [{"role": "user", "content": "question", "cache_control": EPHEMERAL}],
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}, "cache_control": EPHEMERAL}],
    }  # fmt: skip
    answer = _post(gateway, body, kit.key)
    assert answer.status_code == 200, answer.text
    sent = fresh.anthropic.requests[-1].json
    assert sent["tools"][0]["cache_control"] == EPHEMERAL
    assert sent["messages"][0]["content"] == [
        {"type": "text", "text": "question", "cache_control": EPHEMERAL}
    ]


def test_an_unmarked_request_sends_no_cache_control(gateway: GatewayServer, fresh: Any, kit: Any) -> None:
    kit.need("anthropic")
    answer = _post(gateway, {"model": "claude", "input": [{"role": "user", "content": "plain"}]}, kit.key)
    assert answer.status_code == 200, answer.text
    assert "cache_control" not in fresh.anthropic.requests[-1].body.decode()


@pytest.mark.parametrize(
    ("point", "param"),
    [
        ("yes", "input[0].content[0].prompt_cache_breakpoint"),
        ({}, "input[0].content[0].prompt_cache_breakpoint.mode"),
        ({"mode": "implicit"}, "input[0].content[0].prompt_cache_breakpoint.mode"),
        ({"mode": "explicit", "ttl": "5m"}, "input[0].content[0].prompt_cache_breakpoint.ttl"),
    ],
)
def test_a_bad_breakpoint_is_refused_naming_it(point: Any, param: str) -> None:
    part = {"type": "input_text", "text": "x", "prompt_cache_breakpoint": point}
    body = {"model": "m", "input": [{"role": "user", "content": [part]}]}
    with pytest.raises(GatewayError) as refused:
        read_request(json.dumps(body).encode())
    assert refused.value.status == 400 and refused.value.param == param


def test_a_breakpoint_ttl_of_the_responses_api_is_not_sent_as_anthropics() -> None:
    part = {"type": "input_text", "text": "x", "prompt_cache_breakpoint": {"mode": "explicit", "ttl": "12h"}}
    call = read_request(json.dumps({"model": "m", "input": [{"role": "user", "content": [part]}]}).encode())
    typed = translate(call, call.input).typed
    content = typed.messages[0].content
    assert isinstance(content, list) and bytes(content[0].cache_control) == b'{"type":"ephemeral"}'  # type: ignore[union-attr, arg-type]
