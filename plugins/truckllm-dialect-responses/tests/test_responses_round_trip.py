"""Round trip (Hypothesis): Responses items → chat (this dialect) → Responses items (the OpenAI
provider's ``api: responses``) give back the same conversation.

Any valid conversation of the item types both translators carry whole (user messages of
``input_text`` / ``input_image`` / ``input_file`` parts, assistant ``output_text`` messages,
``function_call`` and ``function_call_output`` items, ``instructions``, function tools and
``text.format``) comes out of the two translations with the same roles, texts, images, files,
call ids, names, arguments and tool results, in the same order. Both directions of the
gateway's Responses code are checked against each other: a field one of them loses or reorders
fails here.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from truckllm_dialect_responses.request import read_request, to_chat

from truckllm.types import ChatRequest, Provider

provider_plugin = pytest.importorskip("truckllm_provider_openai")

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# texts with something in them (an empty text part is skipped on the way, by design)
TEXT = st.text(min_size=1, max_size=16).filter(lambda t: t.strip() != "")
NAMES = st.sampled_from(["get_weather", "shell", "ls", "a-b_c"])
ARGUMENTS = st.sampled_from(["{}", '{"a":1}', '{"city":"Oslo"}', '{"cmd":["ls","-l"]}'])
PARTS = st.one_of(
    st.fixed_dictionaries({"type": st.just("input_text"), "text": TEXT}),
    st.fixed_dictionaries(
        {
            "type": st.just("input_image"),
            "image_url": st.sampled_from(["https://example.com/a.png", "data:image/png;base64,AAAA"]),
        },
        optional={"detail": st.sampled_from(["auto", "low", "high"])},
    ),
    st.fixed_dictionaries(
        {"type": st.just("input_file"), "file_data": st.just("data:application/pdf;base64,JVBE")},
        optional={"filename": st.just("a.pdf")},
    ),
)
USER = st.fixed_dictionaries(
    {"role": st.just("user"), "content": st.one_of(TEXT, st.lists(PARTS, min_size=1, max_size=3))},
    optional={"type": st.just("message")},
)


@st.composite
def turns(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A conversation: a user message, then turns of (assistant text and/or tool calls, their
    outputs), each followed by the next user message; call ids unique in the conversation."""
    items: list[dict[str, Any]] = [draw(USER)]
    made = 0
    for _ in range(draw(st.integers(0, 3))):
        text = draw(st.none() | TEXT)
        calls = draw(st.integers(0 if text else 1, 3))
        if text is not None:
            content = [{"type": "output_text", "text": text, "annotations": []}]
            items.append({"type": "message", "role": "assistant", "content": content})
        ids = []
        for _ in range(calls):
            made += 1
            call_id = draw(st.sampled_from(["call_", "toolu_", "fc-weird.", "x"])) + str(made)
            ids.append(call_id)
            items.append(
                {
                    "type": "function_call",
                    "call_id": call_id,
                    "name": draw(NAMES),
                    "arguments": draw(ARGUMENTS),
                }
            )
        for call_id in ids:
            items.append({"type": "function_call_output", "call_id": call_id, "output": draw(TEXT)})
        items.append(draw(USER))
    return items


FUNCTIONS = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.just("function"),
            "name": NAMES,
            "parameters": st.just({"type": "object", "properties": {"a": {"type": "integer"}}}),
        },
        optional={"description": TEXT, "strict": st.booleans()},
    ),
    max_size=3,
    unique_by=lambda tool: tool["name"],
)
FORMATS = st.sampled_from(
    [
        None,
        {"type": "json_object"},
        {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": True},
    ]
)


def _part(part: dict[str, Any]) -> tuple[Any, ...]:
    kind = part["type"]
    if kind == "input_text":
        return (kind, part["text"])
    if kind == "input_image":
        return (kind, part["image_url"], part.get("detail", "auto"))
    return (kind, part["file_data"], part.get("filename"))


def _norm(items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What a conversation means, whatever equivalent shape each translator chose."""
    out: list[tuple[Any, ...]] = []
    for item in items:
        kind = item.get("type", "message")
        if kind == "message":
            content = item["content"]
            if item["role"] == "assistant":
                text = content if isinstance(content, str) else "".join(p["text"] for p in content)
                out.append(("assistant", text))
            else:
                parts = [("input_text", content)] if isinstance(content, str) else [_part(p) for p in content]
                out.append((item["role"], tuple(parts)))
        elif kind == "function_call":
            out.append((kind, item["call_id"], item["name"], item["arguments"]))
        else:
            out.append((kind, item["call_id"], item["output"]))
    return out


def _there_and_back(body: dict[str, Any]) -> dict[str, Any]:
    """The body the OpenAI provider (``api: responses``) sends for the chat form this dialect
    makes of ``body``."""
    call = read_request(json.dumps(body).encode())
    typed = to_chat(call, call.input)
    request = ChatRequest(
        endpoint="chat",
        dialect="openai",
        body=msgspec.json.encode(typed),
        model=call.model,
        stream=call.stream,
        include_usage=call.stream,
        typed=typed,
    )
    options = msgspec.convert({"api": "responses"}, provider_plugin.Options)
    provider = Provider(name="oa", type="openai", base_url="https://api.example/v1", options=options)
    upstream = provider_plugin.transform_request(
        provider=provider, model="gpt-5", request=request, api_key="k"
    )
    assert upstream is not None and upstream.url.endswith("/responses")
    sent: dict[str, Any] = json.loads(upstream.body)
    return sent


@SETTINGS
@given(
    items=turns(),
    instructions=st.none() | TEXT,
    tools=FUNCTIONS,
    text_format=FORMATS,
    stream=st.booleans(),
)
def test_any_item_list_round_trips_through_chat(
    items: list[dict[str, Any]],
    instructions: str | None,
    tools: list[dict[str, Any]],
    text_format: dict[str, Any] | None,
    stream: bool,
) -> None:
    body: dict[str, Any] = {"model": "alias", "input": items, "stream": stream}
    if instructions is not None:
        body["instructions"] = instructions
    if tools:
        body["tools"] = tools
    if text_format is not None:
        body["text"] = {"format": text_format}
    sent = _there_and_back(body)
    assert _norm(sent["input"]) == _norm(items)
    assert sent.get("instructions", "") == (instructions or "")
    assert bool(sent.get("stream")) is stream and sent["store"] is False
    back = [{k: v for k, v in tool.items() if k != "strict"} for tool in sent.get("tools", [])]
    assert back == [{k: v for k, v in tool.items() if k != "strict"} for tool in tools]
    for tool, again in zip(tools, sent.get("tools", []), strict=True):
        if "strict" in tool:
            assert again["strict"] == tool["strict"]
    if text_format is None:
        assert sent.get("text", {}).get("format", {"type": "text"}) == {"type": "text"}
    else:
        assert sent["text"]["format"] == text_format


def test_a_string_input_round_trips_as_one_user_message() -> None:
    sent = _there_and_back({"model": "alias", "input": "hello there", "instructions": "Be terse."})
    assert _norm(sent["input"]) == [("user", (("input_text", "hello there"),))]
    assert sent["instructions"] == "Be terse."
