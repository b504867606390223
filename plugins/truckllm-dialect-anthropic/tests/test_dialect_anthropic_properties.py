"""Properties (Hypothesis).

- Arbitrary Anthropic-ish request bodies, valid or not, are answered 2xx or 4xx, never 5xx: by
  ``parse`` alone (thousands of cases) and through a real gateway to each fake upstream.
- Arbitrary OpenAI chunk sequences, split anywhere, never crash the stream translator, and
  always give a well-formed Anthropic event sequence that carries every text and every
  argument fragment.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import msgspec
import pytest
import truckllm_dialect_anthropic as dialect_plugin
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from truckllm_dialect_anthropic import AnthropicDialect

from truckllm.errors import GatewayError
from truckllm.types import ChatRequest
from truckllm_testing.fakes import FakeAnthropic, FakeGemini, FakeOpenAI
from truckllm_testing.server import GatewayServer

# --- Anthropic-ish request bodies -------------------------------------------------------------------

ANY_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(-2, 3), st.text(max_size=8))
TEXT = st.text(max_size=24)
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
IDS = st.sampled_from(["toolu_1", "toolu_2", "call_x", "bad id!", ""])


def _maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly ``value``; about one time in eight, any scalar instead (not on 0: Hypothesis favours it)."""
    return st.integers(0, 7).flatmap(lambda n: ANY_SCALAR if n == 5 else value)


BLOCKS = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("text"), "text": _maybe(TEXT)},
        optional={"cache_control": st.just({"type": "ephemeral"})},
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("image"),
            "source": st.one_of(
                st.fixed_dictionaries(
                    {
                        "type": st.just("base64"),
                        "media_type": st.sampled_from(["image/png", "image/bmp"]),
                        "data": st.just(PNG),
                    }
                ),
                st.fixed_dictionaries(
                    {
                        "type": st.sampled_from(["url", "file", "ftp"]),
                        "url": _maybe(st.just("https://x.test/a.png")),
                    }
                ),
                ANY_SCALAR,
            ),
        }
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("tool_use"),
            "id": _maybe(IDS),
            "name": _maybe(st.sampled_from(["get_weather", "f"])),
            "input": st.one_of(st.dictionaries(st.text(max_size=4), ANY_SCALAR, max_size=3), ANY_SCALAR),
        }
    ),
    st.fixed_dictionaries(
        {"type": st.just("tool_result"), "tool_use_id": _maybe(IDS)},
        optional={
            "content": st.one_of(
                TEXT, st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": TEXT}), max_size=2)
            ),
            "is_error": _maybe(st.booleans()),
        },
    ),
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["thinking", "redacted_thinking"]),
            "thinking": TEXT,
            "signature": _maybe(TEXT),
        }
    ),
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["document", "server_tool_use", "mystery"]),
            "source": _maybe(st.just({"type": "text", "data": "d"})),
        }
    ),
    ANY_SCALAR,
)
MESSAGES = st.lists(
    st.fixed_dictionaries(
        {
            "role": _maybe(st.sampled_from(["user", "assistant"])),
            "content": _maybe(st.one_of(TEXT, st.lists(BLOCKS, max_size=4))),
        },
    ),
    min_size=1,
    max_size=5,
)
TOOLS = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {
                "name": _maybe(st.sampled_from(["get_weather", "f", "bad name"])),
                "input_schema": _maybe(
                    st.just({"type": "object", "properties": {"city": {"type": "string"}}})
                ),
            },
            optional={"description": TEXT},
        ),
        st.fixed_dictionaries({"type": st.just("web_search_20250305"), "name": st.just("web_search")}),
    ),
    max_size=3,
)
REQUIRED = {
    "model": _maybe(st.sampled_from(["gpt", "claude", "gem", "unknown"])),
    "max_tokens": _maybe(st.integers(0, 300)),
    "messages": _maybe(MESSAGES),
}
SPARSE = st.fixed_dictionaries(
    {},
    optional={
        **REQUIRED,
        "system": _maybe(
            st.one_of(
                TEXT, st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": TEXT}), max_size=2)
            )
        ),
        "temperature": _maybe(st.floats(0, 1)),
        "top_p": _maybe(st.floats(0, 1)),
        "top_k": _maybe(st.integers(0, 50)),
        "stop_sequences": _maybe(st.lists(TEXT, max_size=6)),
        "stream": _maybe(st.booleans()),
        "metadata": _maybe(st.fixed_dictionaries({"user_id": _maybe(TEXT)})),
        "tools": _maybe(TOOLS),
        "tool_choice": _maybe(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["auto", "any", "tool", "none", "x"])},
                optional={
                    "name": st.sampled_from(["get_weather", "f"]),
                    "disable_parallel_tool_use": _maybe(st.booleans()),
                },
            )
        ),
        "thinking": _maybe(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["enabled", "disabled", "adaptive", "x"])},
                optional={"budget_tokens": _maybe(st.integers(0, 40000))},
            )
        ),
        "service_tier": st.just("auto"),
    },
)
FULL = st.builds(lambda r, b: {**b, **r}, st.fixed_dictionaries(REQUIRED), SPARSE)
BODIES = st.integers(0, 3).flatmap(lambda n: SPARSE if n == 2 else FULL)
"""Bodies with the required members (most of the time valid), and bodies with any members."""

HEADERS = {"anthropic-version": "2023-06-01"}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=BODIES)
def test_parse_answers_a_request_or_a_400(body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    route = AnthropicDialect.routes[0]
    try:
        request = AnthropicDialect().parse(route, raw, {}, {}, HEADERS)
    except GatewayError as exc:
        assert exc.status == 400 and exc.message
        assert json.loads(AnthropicDialect().error_body(exc))["error"]["type"] == "invalid_request_error"
        return
    assert isinstance(request, ChatRequest) and request.body is raw
    typed = json.loads(msgspec.json.encode(request.typed))  # what an OpenAI-dialect provider sends
    assert typed["messages"] is not None and typed["model"] == body["model"]


def _config(anth: FakeAnthropic, oai: FakeOpenAI, gem: FakeGemini, installed: set[str]) -> str:
    providers = {
        "anthropic": f"  ant: {{type: anthropic, base_url: {anth.base_url}, keys: [{{name: a, value: ak}}]}}\n",
        "openai": f"  oai: {{type: openai, base_url: {oai.base_url}, keys: [{{name: o, value: ok}}]}}\n",
        "gemini": f"  gem: {{type: gemini, base_url: {gem.base_url}, keys: [{{name: g, value: gk}}]}}\n",
    }
    models = {
        "anthropic": "  claude: {deployments: [{provider: ant, model: claude-sonnet-4-5-20250929}]}\n",
        "openai": "  gpt: {deployments: [{provider: oai, model: gpt-4o}]}\n",
        "gemini": "  gem: {deployments: [{provider: gem, model: gemini-2.5-flash}]}\n",
    }
    return (
        "routing: {retries: 0, cooldown: {failures: 100000}}\nproviders:\n"
        + "".join(providers[p] for p in sorted(installed))
        + "models:\n"
        + "".join(models[p] for p in sorted(installed))
    )


@pytest.fixture(scope="module")
def gateway() -> Iterator[GatewayServer]:
    """A gateway with the dialect and every installed provider plugin, each in front of its fake."""
    plugins: list[Any] = [dialect_plugin]
    installed: set[str] = set()
    for name in ("anthropic", "openai", "gemini"):
        try:
            plugins.append(importlib.import_module(f"truckllm_provider_{name}"))
        except ImportError:
            continue
        installed.add(name)
    anth, oai, gem = FakeAnthropic(keys=["ak"]), FakeOpenAI(keys=["ok"]), FakeGemini(keys=["gk"])
    with (
        anth.running(),
        oai.running(),
        gem.running(),
        GatewayServer(_config(anth, oai, gem, installed), autoload=False, extra_plugins=tuple(plugins)) as gw,
    ):
        yield gw


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=BODIES)
def test_the_gateway_never_answers_5xx(gateway: GatewayServer, body: dict[str, Any]) -> None:
    answer = httpx.post(gateway.url + "/v1/messages", json=body, headers=HEADERS, timeout=20)
    assert answer.status_code < 500, (answer.status_code, answer.text)
    if answer.status_code >= 400:
        assert answer.json()["type"] == "error"


# --- OpenAI chunk sequences ---------------------------------------------------------------------------

OP = st.one_of(
    st.tuples(st.just("text"), st.text(max_size=12)),
    st.tuples(st.just("reasoning"), st.text(max_size=12)),
    st.tuples(
        st.just("tool"),
        st.integers(0, 2),
        st.one_of(st.none(), st.sampled_from(["call_a", "call b", "x/y"])),
        st.one_of(st.none(), st.sampled_from(["f", "get_", "weather"])),
        st.one_of(st.none(), st.text(max_size=10)),
    ),
)
_GENERATED = re.compile(rb"toolu_[0-9a-f]{24}")
ENDINGS = st.sampled_from(["finish+usage", "finish|usage", "usage|finish", "finish", "usage", "none"])
FINISH = st.sampled_from(["stop", "length", "tool_calls", "content_filter", "function_call"])


def _frame(delta: dict[str, Any] | None, finish: str | None = None, usage: bool = False) -> bytes:
    body: dict[str, Any] = {"id": "chatcmpl-p", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    body["choices"] = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    body["usage"] = {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16} if usage else None
    return b"data: " + json.dumps(body, ensure_ascii=False).encode() + b"\n\n"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ops=st.lists(OP, max_size=14),
    ending=ENDINGS,
    finish=FINISH,
    done=st.booleans(),
    cuts=st.lists(st.integers(0, 10_000), max_size=12),
)
def test_any_chunk_sequence_split_anywhere_gives_well_formed_events(
    kit: Any, ops: list[Any], ending: str, finish: str, done: bool, cuts: list[int]
) -> None:
    frames = [_frame({"role": "assistant", "content": ""})]
    texts: list[str] = []
    args: dict[int, list[str]] = {}
    named: set[int] = set()
    for op in ops:
        if op[0] == "text":
            frames.append(_frame({"content": op[1]}))
            texts.append(op[1])
        elif op[0] == "reasoning":
            frames.append(_frame({"reasoning_content": op[1]}))
        else:
            _, index, call_id, name, fragment = op
            call: dict[str, Any] = {"index": index}
            if call_id is not None:
                call.update(id=call_id, type="function")
            function = {k: v for k, v in (("name", name), ("arguments", fragment)) if v is not None}
            if function:
                call["function"] = function
            frames.append(_frame({"tool_calls": [call]}))
            args.setdefault(index, [])
            if fragment is not None:
                args[index].append(fragment)
            if name or call_id:
                named.add(index)
    endings = {
        "finish+usage": [_frame({}, finish, usage=True)],
        "finish|usage": [_frame({}, finish), _frame(None, usage=True)],
        "usage|finish": [_frame(None, usage=True), _frame({}, finish)],
        "finish": [_frame({}, finish)],
        "usage": [_frame(None, usage=True)],
        "none": [],
    }[ending]
    stream = b"".join(frames + endings) + (b"data: [DONE]\n\n" if done else b"")
    request = ChatRequest(endpoint="chat", dialect="anthropic", body=b"{}", model="alias", stream=True)

    whole_translator = AnthropicDialect().stream(request, "openai")
    whole = whole_translator.feed(stream) + whole_translator.close()
    translator = AnthropicDialect().stream(request, "openai")
    points = sorted({min(c, len(stream)) for c in cuts})
    pieces = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    out = b"".join(translator.feed(p) for p in pieces) + translator.close()
    assert _GENERATED.sub(b"toolu_*", out) == _GENERATED.sub(
        b"toolu_*", whole
    )  # ids made up for id-less calls

    got = kit.events(out)
    names = [n for n, _ in got]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert names.count("message_start") == names.count("message_delta") == names.count("message_stop") == 1
    started: dict[int, dict[str, Any]] = {}
    stopped: set[int] = set()
    open_block: int | None = None
    text_out: list[str] = []
    json_out: dict[int, str] = {}
    for name, data in got[1:-2]:
        if name == "content_block_start":
            assert open_block is None and data["index"] == len(started)
            started[data["index"]] = data["content_block"]
            open_block = data["index"]
        elif name == "content_block_stop":
            assert data["index"] == open_block and data["index"] not in stopped
            stopped.add(data["index"])
            open_block = None
        else:
            assert name == "content_block_delta" and data["index"] in started
            delta = data["delta"]
            block = started[data["index"]]
            if delta["type"] == "text_delta":
                assert block["type"] == "text" and data["index"] == open_block and delta["text"]
                text_out.append(delta["text"])
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                assert block["type"] == "thinking" and data["index"] == open_block
            else:
                assert delta["type"] == "input_json_delta" and block["type"] == "tool_use"
                json_out[data["index"]] = json_out.get(data["index"], "") + delta["partial_json"]
    assert open_block is None and stopped == set(started)
    sent, given_text = "".join(text_out), "".join(texts)
    assert given_text.startswith(sent) and not given_text[len(sent) :].strip()  # all but trailing spaces
    assert all(b["text"].strip() for b in started.values() if b["type"] == "text")  # none blank
    tools = [b for b in started.values() if b["type"] == "tool_use"]
    expected = sorted("".join(f) for i, f in args.items() if i in named or "".join(f))
    assert sorted(json_out.get(i, "") for i, b in started.items() if b["type"] == "tool_use") == expected
    for block in tools:
        assert block["id"] and all(c.isalnum() or c in "_-" for c in block["id"])
    stop = got[-2][1]["delta"]["stop_reason"]
    finished = ending != "usage" and ending != "none"
    if finished and finish in ("length", "content_filter"):
        assert stop == {"length": "max_tokens", "content_filter": "refusal"}[finish]
    else:
        assert stop == ("tool_use" if tools else "end_turn")
