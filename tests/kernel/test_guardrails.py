"""The guardrail runtime: registration, config validation, running checks, the text of every
dialect's bodies (a hypothesis round trip), and the stream window (its delay on a virtual clock).

End to end on every front door: tests/e2e/test_guardrails_e2e.py.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from truckllm import hookimpl
from truckllm._internal.config.loader import parse_config
from truckllm._internal.config.schema import GuardrailConfig
from truckllm._internal.guard_stream import StreamGuard
from truckllm._internal.guard_text import (
    Found,
    answer_texts,
    event_texts,
    generic,
    request_texts,
    request_tools,
    rewrite,
)
from truckllm._internal.guardrails import Entry, Guards, build, run_checks
from truckllm._internal.plugins import make_plugin_manager
from truckllm.errors import ConfigError, GatewayError, StartupError
from truckllm.types import GuardrailSpec, GuardSubject, GuardText, Verdict


class Upper:
    """Upper-cases every text (``modify``), or blocks when told."""

    class Options(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
        block: bool = False

    def __init__(self, options: Upper.Options) -> None:
        self.options = options
        self.seen: list[GuardSubject] = []

    async def check(self, subject: GuardSubject) -> Verdict:
        self.seen.append(subject)
        if self.options.block:
            return Verdict(action="block", reason="told to")
        return Verdict(action="modify", texts=tuple(t.text.upper() for t in subject.texts), findings={"x": 1})


class Plugin:
    __name__ = "throwaway-upper"

    @hookimpl
    def register_guardrails(self, register: Callable[[GuardrailSpec], None]) -> None:
        register(GuardrailSpec(type="upper", make=Upper, options=Upper.Options))  # type: ignore[arg-type]


class Twin:
    __name__ = "throwaway-upper-twin"

    @hookimpl
    def register_guardrails(self, register: Callable[[GuardrailSpec], None]) -> None:
        register(GuardrailSpec(type="upper", make=Upper))  # type: ignore[arg-type]


# --- registration and config -----------------------------------------------------------------------


def test_hook_register_guardrails() -> None:
    host = make_plugin_manager(extra=(Plugin(),), autoload=False)
    assert host.guardrails["upper"].options is Upper.Options
    assert host.registry().guardrails["upper"] is host.guardrails["upper"]


def test_a_guardrail_type_registered_twice_stops_start_up() -> None:
    with pytest.raises(StartupError, match="'upper' is registered twice"):
        make_plugin_manager(extra=(Plugin(), Twin()), autoload=False)


def test_a_registration_that_is_not_a_spec_fails_the_plugin() -> None:
    class Bad:
        __name__ = "throwaway-bad-guardrail"

        @hookimpl
        def register_guardrails(self, register: Callable[[object], None]) -> None:
            register("upper")

    host = make_plugin_manager(extra=(Bad(),), autoload=False)
    assert "upper" not in host.guardrails
    assert any("GuardrailSpec" in f.error for f in host.failures)


MODELS = "providers: {d: {type: mock}}\nmodels: {m: {deployments: [{provider: d, model: echo}]}}\n"


def problems(text: str) -> str:
    registry = make_plugin_manager(extra=(Plugin(),)).registry()
    with pytest.raises(ConfigError) as info:
        parse_config(MODELS + text, registry, env={})
    return str(info.value)


def test_config_names_an_unknown_type() -> None:
    text = problems("guardrails: [{type: nope}]")
    assert "guardrails[0].type: unknown guardrail type 'nope' (installed: " in text
    assert "upper" in text


def test_config_names_a_duplicate_name() -> None:
    text = problems("guardrails: [{type: upper}, {type: upper, name: upper}]")
    assert "guardrails[1].name: duplicate guardrail name 'upper'" in text


def test_config_decodes_options_strictly() -> None:
    assert "guardrails[0].options.blok: unknown field" in problems(
        "guardrails: [{type: upper, options: {blok: 1}}]"
    )
    assert "guardrails[0].options.block" in problems("guardrails: [{type: upper, options: {block: maybe}}]")


def test_config_names_an_unknown_alias_and_empty_stages() -> None:
    text = problems("guardrails: [{type: upper, aliases: [nope], stages: []}]")
    assert "guardrails[0].aliases[0]: no model alias named 'nope'" in text
    assert "guardrails[0].stages: give at least one" in text


def test_a_good_config_loads() -> None:
    registry = make_plugin_manager(extra=(Plugin(),)).registry()
    config = parse_config(
        MODELS + "guardrails: [{type: upper, aliases: [m], options: {block: true}}]", registry
    )
    assert config.guardrails[0].options == {"block": True}


# --- running checks --------------------------------------------------------------------------------


def entry(name: str, guard: Any, **config: Any) -> Entry:
    return Entry(name, GuardrailConfig(type="t", name=name, **config), guard)


class Raising:
    async def check(self, subject: GuardSubject) -> Verdict:
        raise ValueError(subject.texts[0].text)


class Stalling:
    async def check(self, subject: GuardSubject) -> Verdict:
        await asyncio.sleep(60)
        return Verdict()


class Miscounting:
    async def check(self, subject: GuardSubject) -> Verdict:
        return Verdict(action="modify", texts=())


SUBJECT = GuardSubject(
    stage="input", texts=(GuardText(role="user", text="zq-private"), GuardText(role="system", text="s"))
)


def test_a_modify_is_handed_to_the_next_guardrail() -> None:
    first, second = Upper(Upper.Options()), Upper(Upper.Options())
    check = asyncio.run(run_checks([entry("a", first), entry("b", second)], SUBJECT))
    assert check.action == "modify" and check.texts == ("ZQ-PRIVATE", "S")
    assert [t.text for t in second.seen[0].texts] == ["ZQ-PRIVATE", "S"]
    assert [(r.name, r.action, dict(r.findings)) for r in check.results] == [
        ("a", "modify", {"x": 1}),
        ("b", "modify", {"x": 1}),
    ]


def test_the_first_block_stops() -> None:
    last = Upper(Upper.Options())
    check = asyncio.run(run_checks([entry("a", Upper(Upper.Options(block=True))), entry("b", last)], SUBJECT))
    assert check.action == "block" and not last.seen
    assert isinstance(check.error, GatewayError) and check.error.status == 400
    assert (
        check.error.code == "guardrail_blocked" and check.error.message == "Blocked by guardrail 'a': told to"
    )


@pytest.mark.parametrize(
    ("guard", "error"),
    [
        (Raising(), "ValueError"),
        (Stalling(), "timeout"),
        (Miscounting(), "bad_verdict"),
        (None, "unavailable"),
    ],
)
@pytest.mark.parametrize("on_error", ["block", "allow"])
def test_failures_are_decided_by_on_error(guard: Any, error: str, on_error: str) -> None:
    check = asyncio.run(run_checks([entry("g", guard, timeout=0.05, on_error=on_error)], SUBJECT))
    (result,) = check.results
    assert (result.action, result.error) == (on_error, error)
    assert check.action == on_error
    assert "zq-private" not in result.reason


def test_entries_apply_by_stage_alias_and_key() -> None:
    e = entry("g", None, stages=("input",), aliases=("a",), keys=("k1", "k2"), exclude_keys=("k2",))
    guards = Guards((e,))
    assert guards.applying("input", "a", "k1") == (e,)
    assert guards.applying("output", "a", "k1") == ()
    assert guards.applying("input", "b", "k1") == ()
    assert guards.applying("input", "a", "k2") == ()
    assert guards.applying("input", "a", None) == ()
    assert entry("h", None, exclude_keys=("k",)).applies("input", "any", None)


def test_build_keeps_a_failing_factory_as_a_failing_entry() -> None:
    def broken(options: object) -> Any:
        raise RuntimeError("no")

    specs = {
        "b": GuardrailSpec(type="b", make=broken),
        "u": GuardrailSpec(type="u", make=lambda o: Upper(Upper.Options())),
    }
    guards = build([GuardrailConfig(type="b"), GuardrailConfig(type="u", name="x")], specs)
    assert [(e.name, e.guard is None, e.error) for e in guards.entries] == [
        ("b", True, "RuntimeError"),
        ("x", False, None),
    ]


# --- the texts of each dialect ----------------------------------------------------------------------

REQUESTS: dict[str, dict[str, Any]] = {
    "openai": {
        "model": "m",
        "messages": [
            {"role": "system", "content": "sys"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "u1"}, {"type": "image_url", "image_url": {"url": "x"}}],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "c", "content": "result"},
        ],
        "tools": [{"type": "function", "function": {"name": "f"}}],
    },
    "responses": {
        "model": "m",
        "instructions": "be nice",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "q"}]},
            {"type": "function_call", "name": "f", "arguments": "{}", "call_id": "c"},
            {"type": "function_call_output", "call_id": "c", "output": "out"},
        ],
        "tools": [{"type": "function", "name": "f"}],
    },
    "anthropic": {
        "model": "m",
        "system": [{"type": "text", "text": "sys"}],
        "messages": [
            {"role": "user", "content": "q"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"q": "arg"}}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "res"}]}
                ],
            },
        ],
        "tools": [{"name": "f", "input_schema": {}}],
    },
    "gemini": {
        "systemInstruction": {"parts": [{"text": "sys"}]},
        "contents": [
            {"role": "user", "parts": [{"text": "q"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"q": "arg"}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"r": "res"}}}]},
        ],
        "tools": [{"functionDeclarations": [{"name": "f"}]}],
    },
}
EXPECTED = {
    "openai": [("system", "sys"), ("user", "u1"), ("tool", '{"a":1}'), ("tool", "result")],
    "responses": [("system", "be nice"), ("user", "q"), ("tool", "{}"), ("tool", "out")],
    "anthropic": [("system", "sys"), ("user", "q"), ("tool", "arg"), ("tool", "res")],
    "gemini": [("system", "sys"), ("user", "q"), ("tool", "arg"), ("tool", "res")],
}


@pytest.mark.parametrize("dialect", sorted(REQUESTS))
def test_request_texts_and_tools_of_each_dialect(dialect: str) -> None:
    found = request_texts(dialect, REQUESTS[dialect])
    assert [(f.role, f.text) for f in found] == EXPECTED[dialect]
    assert request_tools(dialect, REQUESTS[dialect]) == ("f",)


def test_completions_and_embeddings_inputs() -> None:
    assert [f.text for f in request_texts("openai", {"prompt": ["a", "b"]})] == ["a", "b"]
    assert [f.text for f in request_texts("openai", {"input": "x"})] == ["x"]
    assert [f.text for f in request_texts("openai", {"input": [1, 2]})] == []  # tokens: no text


@pytest.mark.parametrize(
    ("dialect", "body", "texts"),
    [
        (
            "openai",
            {"choices": [{"message": {"content": "a", "tool_calls": [{"function": {"arguments": "{}"}}]}}]},
            ["a", "{}"],
        ),
        ("openai", {"choices": [{"text": "c"}]}, ["c"]),
        (
            "anthropic",
            {"content": [{"type": "text", "text": "a"}, {"type": "tool_use", "input": {"k": "v"}}]},
            ["a", "v"],
        ),
        ("gemini", {"candidates": [{"content": {"parts": [{"text": "a"}, {"text": "b"}]}}]}, ["a", "b"]),
        (
            "responses",
            {
                "output": [{"type": "message", "content": [{"type": "output_text", "text": "a"}]}],
                "output_text": "a",
            },
            ["a", "a"],
        ),
    ],
)
def test_answer_texts(dialect: str, body: dict[str, Any], texts: list[str]) -> None:
    assert [f.text for f in answer_texts(dialect, body)] == texts


def test_an_unknown_dialect_uses_the_generic_keys() -> None:
    body = {
        "model": "m",
        "turns": [{"role": "user", "text": "a", "id": "x"}],
        "system": "s",
        "meta": {"content": ["b"]},
    }
    assert [(f.role, f.text) for f in request_texts("third-party", body)] == [
        ("user", "a"),
        ("system", "s"),
        ("other", "b"),
    ]


# hypothesis: bodies of each dialect with arbitrary extra members and texts

_text = st.text(max_size=12)
_scalar = st.one_of(st.none(), st.booleans(), st.integers(), _text)
_json = st.recursive(
    _scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_text, inner, max_size=3)),
    max_leaves=8,
)


def _mutate(node: Any, draw: Any) -> Any:
    """``node`` with every string text replaced by a drawn one and extra members added."""
    if isinstance(node, str):
        return draw(_text)
    if isinstance(node, list):
        return [_mutate(v, draw) for v in node] + draw(st.lists(_json, max_size=2))
    if isinstance(node, dict):
        out = {k: _mutate(v, draw) if k not in ("role", "type") else v for k, v in node.items()}
        for k, v in draw(
            st.dictionaries(st.sampled_from(["extra", "x_1", "meta"]), _json, max_size=2)
        ).items():
            out.setdefault(k, v)
        return out
    return node


@st.composite
def dialect_bodies(draw: Any) -> tuple[str, Any]:
    dialect = draw(st.sampled_from([*sorted(REQUESTS), "generic"]))
    base = REQUESTS.get(dialect) or REQUESTS[draw(st.sampled_from(sorted(REQUESTS)))]
    return dialect, _mutate(copy.deepcopy(base), draw)


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], Any]:
    if isinstance(node, dict):
        out: dict[tuple[Any, ...], Any] = {}
        for k, v in node.items():
            out.update(_leaves(v, (*path, k)))
        return out
    if isinstance(node, list):
        out = {}
        for i, v in enumerate(node):
            out.update(_leaves(v, (*path, i)))
        return out
    return {path: node}


@settings(max_examples=300, deadline=None)
@given(dialect_bodies())
def test_rewrite_round_trip(sample: tuple[str, Any]) -> None:
    dialect, body = sample
    walk: Callable[[Any], list[Found]] = (
        (lambda b: list(generic(b))) if dialect == "generic" else (lambda b: request_texts(dialect, b))
    )
    found = walk(body)
    same = rewrite(copy.deepcopy(body), found, [f.text for f in found])
    assert msgspec.json.encode(same) == msgspec.json.encode(body)  # the same texts: an equal body
    marks = [f"\u0000mark{i}" for i in range(len(found))]
    marked = rewrite(copy.deepcopy(body), found, marks)
    assert [f.text for f in walk(marked)] == marks
    before, after = _leaves(body), _leaves(marked)
    assert before.keys() == after.keys()
    changed = {p for p in before if before[p] != after[p]}
    assert changed <= {f.path for f in found}  # replacements land only in text places


# --- the stream window -------------------------------------------------------------------------------


def chat_frame(text: str) -> bytes:
    event = {
        "id": "c",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": text}}],
    }
    return b"data: " + msgspec.json.encode(event) + b"\n\n"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0


async def released_at(
    window: int, tokens: list[str], interval: float, guard: Any
) -> list[tuple[float, float]]:
    """Feed one token every ``interval`` (virtual seconds); for each token, (arrived, released)."""
    entries = [entry("g", guard, stages=("output",), window=window)]
    stream = StreamGuard(entries, GuardSubject(stage="output", dialect="openai", final=False), sse=True)
    clock = Clock()
    arrived: list[float] = []
    spans: list[tuple[float, float]] = []
    for i, token in enumerate(tokens):
        clock.now = i * interval
        arrived.append(clock.now)
        out = await stream.feed(chat_frame(token))
        spans += [(arrived[len(spans) + j], clock.now) for j in range(out.count(b"data: "))]
    out = await stream.close()
    spans += [(arrived[len(spans) + j], clock.now) for j in range(out.count(b"data: "))]
    return spans


class Allow:
    async def check(self, subject: GuardSubject) -> Verdict:
        return Verdict()


@pytest.mark.parametrize(("window", "token_chars"), [(16, 4), (64, 4), (256, 8)])
def test_the_window_delay_is_the_time_to_write_window_characters(window: int, token_chars: int) -> None:
    interval = 0.02  # virtual seconds between tokens
    tokens = ["x" * token_chars] * 200
    spans = asyncio.run(released_at(window, tokens, interval, Allow()))
    assert len(spans) == len(tokens)
    held = max(released - arrived for arrived, released in spans)
    per_window = (window // token_chars - 1) * interval  # the window's first token waits for its last
    assert held == pytest.approx(per_window)


def test_a_modified_window_puts_its_text_in_the_first_frame() -> None:
    entries = [entry("g", Upper(Upper.Options()), stages=("output",), window=6)]
    stream = StreamGuard(entries, GuardSubject(stage="output", dialect="openai", final=False), sse=True)

    async def go() -> bytes:
        out = b""
        for token in ["ab", "cd", "ef", "gh"]:
            out += await stream.feed(chat_frame(token))
        return out + await stream.close()

    out = asyncio.run(go())
    texts = [
        msgspec.json.decode(line[6:])["choices"][0]["delta"]["content"] for line in out.split(b"\n\n") if line
    ]
    assert texts == ["ABCDEF", "", "", "GH"]
    (result,) = stream.results()
    assert result.action == "modify" and dict(result.findings) == {"x": 2}


def test_a_responses_done_event_gets_the_released_text() -> None:
    entries = [entry("g", Upper(Upper.Options()), stages=("output",), window=100)]
    stream = StreamGuard(entries, GuardSubject(stage="output", dialect="responses", final=False), sse=True)

    def event(data: dict[str, Any]) -> bytes:
        kind: str = data["type"]
        return b"event: " + kind.encode() + b"\ndata: " + msgspec.json.encode(data) + b"\n\n"

    frames = [
        event({"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": "ab"}),
        event({"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": "cd"}),
        event({"type": "response.output_text.done", "output_index": 0, "content_index": 0, "text": "abcd"}),
        event(
            {
                "type": "response.completed",
                "response": {
                    "output": [{"type": "message", "content": [{"type": "output_text", "text": "abcd"}]}]
                },
            }
        ),
    ]

    async def go() -> bytes:
        out = b""
        for frame in frames:
            out += await stream.feed(frame)
        return out + await stream.close()

    out = asyncio.run(go())
    assert b"abcd" not in out and b"ab" not in out
    assert out.count(b'"ABCD"') == 3 and b'"delta":"ABCD"' in out
    assert all(f.startswith(b"event: ") for f in out.split(b"\n\n") if f)


def test_event_texts_carry_channels() -> None:
    found = event_texts(
        "anthropic", {"type": "content_block_delta", "index": 2, "delta": {"type": "text_delta", "text": "x"}}
    )
    assert [(f.text, f.channel) for f in found] == [("x", (2,))]


def gemini_element(text: str) -> bytes:
    return msgspec.json.format(
        msgspec.json.encode({"candidates": [{"content": {"parts": [{"text": text}], "role": "model"}}]}),
        indent=2,
    )


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.text(alphabet='ab{}"\\\n é', min_size=1, max_size=6), min_size=1, max_size=12),
    st.integers(1, 30),
    st.lists(st.integers(0, 10_000), max_size=12),
    st.booleans(),
)
def test_a_stream_cut_anywhere_is_masked_whole(
    texts: list[str], window: int, cuts: list[int], sse: bool
) -> None:
    """Frames split at any byte (SSE events, or Gemini's JSON array): every text comes out
    modified exactly once, in order, and the frames stay parseable."""
    if sse:
        data = b"".join(chat_frame(t) for t in texts) + b"data: [DONE]\n\n"
    else:
        data = b"[" + b"\n,\r\n".join(gemini_element(t) for t in texts) + b"\n]"
    entries = [entry("g", Upper(Upper.Options()), stages=("output",), window=window)]
    dialect = "openai" if sse else "gemini"
    stream = StreamGuard(entries, GuardSubject(stage="output", dialect=dialect, final=False), sse=sse)

    async def go() -> bytes:
        out = b""
        for piece in _cut(data, cuts):
            out += await stream.feed(piece)
        return out + await stream.close()

    out = asyncio.run(go())
    if sse:
        events = [msgspec.json.decode(f[6:]) for f in out.split(b"\n\n") if f.startswith(b"data: {")]
        got = "".join(e["choices"][0]["delta"]["content"] for e in events)
        assert out.endswith(b"data: [DONE]\n\n")
    else:
        elements = msgspec.json.decode(out)
        got = "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in elements)
    assert got == "".join(texts).upper()
