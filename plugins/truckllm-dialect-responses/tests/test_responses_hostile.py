"""The dialect against hostile input, as classes (hypothesis over the input space), in process.

- any JSON value in any request field: a ``ChatRequest`` or a 4xx naming the field, never another
  exception, and whatever parses translates or is refused naming its field;
- any chat answer from a provider plugin: a Response or a 502; any chat chunk stream, split
  anywhere: numbered events ending in ``response.completed``/``incomplete``/``failed``;
- any bytes from an upstream Responses stream (pass-through): relayed unchanged, never a crash,
  and only a terminal event's response is remembered;
- any stored state (damaged, another version's): treated as absent, never a crash;
- any ``input_items`` query: a page or a 400 naming the parameter; paging with ``after`` ends and
  lists every item once; every stored input item has an id the client can page with.

The end-to-end counterpart (real gateways, hostile upstreams, keys, stores) is
``tests/e2e/test_responses_trust.py``.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from truckllm_dialect_responses import ResponsesDialect
from truckllm_dialect_responses.dialect import _turn
from truckllm_dialect_responses.local import ROUTE_INPUT_ITEMS, ROUTE_RESPONSE, input_items_page, serve_local
from truckllm_dialect_responses.passthrough import Watch
from truckllm_dialect_responses.request import to_chat
from truckllm_dialect_responses.state import load, name_of

from truckllm.errors import GatewayError, UnsupportedRequest, UpstreamFailure
from truckllm.kit.dialect import LocalAnswer, LocalCall, ServedBy

_SETTINGS = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
_KEYS = st.sampled_from(
    ["type", "text", "content", "id", "name", "arguments", "role", "call_id", "output", "format", "schema"]
) | st.text(max_size=6)
JSON = st.recursive(
    _LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=12,
)
"""Any JSON value (members named like the Responses API's half of the time)."""

_FIELDS = (
    "input", "instructions", "previous_response_id", "stream", "store", "background", "tools",
    "tool_choice", "text", "reasoning", "metadata", "max_output_tokens", "max_tool_calls",
    "top_logprobs", "temperature", "top_p", "parallel_tool_calls", "user", "include",
    "stream_options", "truncation", "service_tier", "prompt_cache_key", "conversation", "prompt",
    "safety_identifier",
)  # fmt: skip
_PART = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(
            ["input_text", "input_image", "input_file", "input_audio", "output_text", "refusal"]
        )
        | JSON,
        **{
            name: JSON
            for name in ("text", "image_url", "file_id", "file_data", "file_url", "detail", "refusal")
        },
        "input_audio": JSON,
    },
)
_ITEM = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(
            [
                "message",
                "function_call",
                "function_call_output",
                "reasoning",
                "item_reference",
                "web_search_call",
            ]
        )
        | JSON,
        "role": st.sampled_from(["user", "assistant", "system", "developer"]) | JSON,
        "content": JSON | st.lists(_PART, max_size=3),
        **{name: JSON for name in ("id", "call_id", "name", "arguments", "summary", "encrypted_content")},
        "output": JSON | st.lists(_PART, max_size=2),
    },
)
_TOOL = st.fixed_dictionaries(
    {"type": st.sampled_from(["function", "web_search", "mcp"]) | JSON},
    optional={"name": st.just("f") | JSON, "parameters": JSON, "strict": JSON, "description": JSON},
)
BODY = st.fixed_dictionaries(
    {"model": st.just("m") | JSON},
    optional={
        **{name: JSON for name in _FIELDS},
        "input": st.lists(_ITEM, max_size=3) | JSON,
        "tools": st.lists(_TOOL, max_size=2) | JSON,
        "tool_choice": st.sampled_from(["auto", "none", "required"])
        | st.fixed_dictionaries({"type": st.sampled_from(["function", "allowed_tools", "mcp"]) | JSON})
        | JSON,
    },
)
"""Any Responses API request body: every field any JSON value, items and parts of any shape."""


def _route(name: str) -> Any:
    (found,) = [r for r in ResponsesDialect.routes if r.name == name]
    return found


def _parse(body: dict[str, Any] | bytes, route: str = "responses") -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return ResponsesDialect().parse(_route(route), raw, {}, {}, {})


def _named_4xx(error: GatewayError) -> None:
    """A client's error: 4xx, naming the field (or saying the body is not JSON)."""
    assert 400 <= error.status < 500, error
    assert error.param is not None or "JSON" in error.message, (error.message, error.param)
    assert len(error.message) <= 600, error.message[:200]


# --- requests -------------------------------------------------------------------------------------


@_SETTINGS
@given(body=BODY, route=st.sampled_from(["responses", "input_tokens"]))
def test_any_json_in_any_field_parses_or_is_a_named_4xx(body: dict[str, Any], route: str) -> None:
    try:
        request = _parse(body, route)
    except GatewayError as error:
        _named_4xx(error)
        return
    turn = _turn(request)
    assert request.model == body["model"] and isinstance(request.body, bytes)
    assert request.typed is not None or request.refusal is not None or turn.call.previous_response_id
    try:  # what parsed translates, or is refused naming the field
        to_chat(turn.call, turn.items)
    except UnsupportedRequest as refused:
        assert refused.param, refused
    except GatewayError as error:
        _named_4xx(error)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xff\xfe{}",
        b'{"model": "m", "input": "\xed\xa0\x80"}',  # a lone surrogate in UTF-8
        b'{"model": "m", "model": "n"}',
        b'{"model": "m", "input": [{"role": "user", "role": "system", "content": "x"}]}',
        b'{"model": "m", "metadata": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"model": "m", "max_output_tokens": ' + b"9" * 5000 + b"}",
        b'{"model": "m", "temperature": NaN}',
        b'{"model": "m", "temperature": 1e999}',
        b"[]",
        b"null",
    ],
)
def test_undecodable_ambiguous_or_deep_bodies_are_400(raw: bytes) -> None:
    for route in ("responses", "input_tokens"):
        with pytest.raises(GatewayError) as caught:
            _parse(raw, route)
        assert caught.value.status == 400


# --- answers and streams from provider plugins (translated) -----------------------------------------

_MESSAGE = st.fixed_dictionaries(
    {},
    optional={
        **{
            name: JSON for name in ("content", "reasoning_content", "reasoning", "refusal", "thinking_blocks")
        },
        "tool_calls": JSON
        | st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "id": JSON,
                    "index": JSON | st.integers(0, 3),
                    "function": JSON | st.fixed_dictionaries({}, optional={"name": JSON, "arguments": JSON}),
                },
            ),
            max_size=3,
        ),
    },
)
CHAT_ANSWER = st.fixed_dictionaries(
    {
        "choices": JSON
        | st.lists(st.fixed_dictionaries({"message": _MESSAGE}, optional={"finish_reason": JSON}))
    },
    optional={"usage": JSON},
)
CHUNK = st.fixed_dictionaries(
    {},
    optional={
        "choices": JSON
        | st.lists(
            st.fixed_dictionaries(
                {}, optional={"delta": _MESSAGE | JSON, "finish_reason": JSON, "index": JSON | st.just(0)}
            ),
            max_size=2,
        ),
        "usage": JSON,
        "error": JSON,
    },
)


@_SETTINGS
@given(answer=CHAT_ANSWER | JSON, body=st.sampled_from([b"", b"raw"]))
def test_any_chat_answer_is_a_response_or_a_502(answer: Any, body: bytes) -> None:
    request = _parse({"model": "m", "input": "x"})
    raw = body or json.dumps(answer).encode()
    try:
        out = json.loads(ResponsesDialect().response(request, raw, "openai"))
    except GatewayError as error:
        assert error.status == 502
        return
    assert out["object"] == "response" and out["status"] in ("completed", "incomplete")
    assert all(isinstance(item.get("id"), str) for item in out["output"])
    usage = out["usage"]
    assert all(usage[name] >= 0 for name in ("input_tokens", "output_tokens", "total_tokens"))


@_SETTINGS
@given(chunks=st.lists(CHUNK | JSON, max_size=5), done=st.booleans(), cut=st.integers(1, 40))
def test_any_chat_stream_split_anywhere_gives_numbered_events_with_one_end(
    chunks: list[Any], done: bool, cut: int
) -> None:
    request = _parse({"model": "m", "input": "x", "stream": True})
    raw = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
    raw += b"data: [DONE]\n\n" if done else b""
    translator: Any = ResponsesDialect().stream(request, "openai")  # a FrameTranslator with error()
    out = b""
    try:
        for start in range(0, len(raw), cut):
            out += translator.feed(raw[start : start + cut])
        out += translator.close()
    except UpstreamFailure as failure:
        out += failure.pending + translator.error(GatewayError(502, failure.error.message))
    events = [json.loads(line[6:]) for line in out.split(b"\n") if line.startswith(b"data: ")]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    ends = [
        e["type"]
        for e in events
        if e["type"] in ("response.completed", "response.incomplete", "response.failed")
    ]
    assert len(ends) == 1 and events[-1]["type"] == ends[0], [e["type"] for e in events]


# --- pass-through streams (an OpenAI account's own events) -------------------------------------------

_FRAME = st.one_of(
    st.binary(max_size=40),
    st.builds(lambda v: b"data: " + json.dumps(v).encode() + b"\n\n", JSON),
    st.builds(
        lambda kind, v: b"event: " + kind.encode() + b"\ndata: " + json.dumps({"type": kind, "response": v}).encode()
        + b"\n\n",
        st.sampled_from(["response.created", "response.in_progress", "response.completed", "response.incomplete"]),
        JSON,
    ),
)  # fmt: skip


@_SETTINGS
@given(frames=st.lists(_FRAME, max_size=6), cut=st.integers(1, 30))
def test_a_pass_through_stream_of_any_bytes_is_relayed_unchanged(frames: list[bytes], cut: int) -> None:
    remembered: list[bytes] = []
    watch = Watch(remembered.append)
    raw = b"".join(frames)
    out = b"".join(watch.feed(raw[i : i + cut]) for i in range(0, len(raw), cut)) + watch.close()
    assert out == raw
    assert len(remembered) <= 1
    for final in remembered:  # only a terminal event's response, as the upstream sent it
        assert final in raw
    failed = watch.error(GatewayError(502, "cut"))
    assert failed.startswith(b"event: error\n")


# --- stored state -------------------------------------------------------------------------------------


class _State:
    """A DialectState over a dict (one key's scope)."""

    def __init__(self, values: dict[str, bytes]) -> None:
        self.values = values
        self.key: str | None = "team"
        self.ttl = 60.0
        self.served_by: ServedBy | None = None

    async def get(self, name: str) -> bytes | None:
        return self.values.get(name)

    def put(self, name: str, value: bytes, ttl: float | None = None) -> None:
        self.values[name] = value

    async def delete(self, name: str) -> bool:
        return self.values.pop(name, None) is not None


async def _no_forward(request: Any) -> LocalAnswer:
    raise AssertionError("a stored response is answered without any upstream")


_STORED = st.one_of(
    st.binary(max_size=60),
    st.builds(lambda v: json.dumps(v).encode(), JSON),
    st.builds(
        lambda r, i: json.dumps({"response": r, "items": i}).encode(),
        JSON,
        st.lists(st.dictionaries(_KEYS, JSON, max_size=3), max_size=3) | JSON,
    ),
)


@_SETTINGS
@given(stored=_STORED)
async def test_damaged_or_foreign_state_is_absent_or_served_never_a_crash(stored: bytes) -> None:
    state = _State({name_of("resp_1"): stored})
    found = await load(state, "resp_1")
    for route, method, suffix in ((ROUTE_RESPONSE, "GET", ""), (ROUTE_INPUT_ITEMS, "GET", "")):
        call = LocalCall(
            method=method,
            path_params={"response_id": "resp_1"},
            query={},
            headers={},
            body=b"",
            state=state,
            forward=_no_forward,
        )
        try:
            answer = await serve_local(route, call)
        except GatewayError as error:
            assert error.status == 404 and found is None, (route, suffix, error)
            continue
        assert found is not None and answer.status == 200
        msgspec.json.decode(answer.body)
    request = _parse({"model": "m", "input": "x", "previous_response_id": "resp_1"})
    request.state = state
    try:
        await ResponsesDialect().prepare(request)
    except GatewayError as error:
        assert error.status == 400 and error.code == "previous_response_not_found" and found is None


# --- input_items pages ----------------------------------------------------------------------------------

_QUERY = st.dictionaries(
    st.sampled_from(["limit", "order", "after", "include", "before"]),
    st.text(max_size=12) | st.sampled_from(["asc", "desc", "1", "100", "0", "-1", "msg_1", "10" * 20]),
    max_size=4,
)


@_SETTINGS
@given(query=_QUERY)
def test_any_input_items_query_is_a_page_or_a_400_naming_it(query: dict[str, str]) -> None:
    items = [{"id": f"msg_{n}", "type": "message"} for n in range(30)]
    try:
        page = input_items_page(items, query)
    except GatewayError as error:
        assert error.status == 400 and error.param in query and len(error.message) <= 300, error
        return
    assert page["object"] == "list" and len(page["data"]) <= 100


def _page_all(items: list[dict[str, Any]], order: str, limit: int) -> list[Any]:
    seen: list[Any] = []
    query = {"order": order, "limit": str(limit)}
    for _ in range(len(items) + 2):  # a page gives at least one item: more pages than items is a loop
        page = input_items_page(items, query)
        seen.extend(id(item) for item in page["data"])
        if not page["has_more"]:
            return seen
        query = {**query, "after": page["last_id"]}
    raise AssertionError(f"paging never ended: {len(seen)} items seen of {len(items)}")


@_SETTINGS
@given(count=st.integers(1, 12), limit=st.integers(1, 5), order=st.sampled_from(["asc", "desc"]))
def test_paging_with_after_lists_every_gateway_item_once(count: int, limit: int, order: str) -> None:
    request = _parse({"model": "m", "input": [{"role": "user", "content": str(n)} for n in range(count)]})
    items = _turn(request).items
    seen = _page_all(items, order, limit)
    expected = [id(item) for item in (items if order == "asc" else items[::-1])]
    assert seen == expected


@_SETTINGS
@given(
    ids=st.lists(st.sampled_from([None, "", 7, "msg_same", "msg_other"]), min_size=2, max_size=6),
    limit=st.integers(1, 3),
)
def test_client_given_item_ids_still_page(ids: list[Any], limit: int) -> None:
    given_items = [{"role": "user", "content": str(n), "id": given} for n, given in enumerate(ids)]
    try:
        request = _parse({"model": "m", "input": given_items})
    except GatewayError as error:  # refusing repeated or malformed ids is a fine answer too
        _named_4xx(error)
        return
    items = _turn(request).items
    assert all(isinstance(item["id"], str) and item["id"] for item in items), [i["id"] for i in items]
    assert _page_all(items, "asc", limit) == [id(item) for item in items]


@pytest.mark.parametrize("extra", [{"stream": True}, {"stream": True, "stream_options": {}}])
def test_input_tokens_refuses_stream_like_openai(extra: dict[str, Any]) -> None:
    with pytest.raises(GatewayError) as caught:
        _parse({"model": "m", "input": "x", **extra}, "input_tokens")
    assert caught.value.status == 400 and caught.value.param == "stream"
