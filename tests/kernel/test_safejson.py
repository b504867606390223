"""The one check every front door's JSON goes through: bounded depth, no repeated keys.

Rule: a body decoded by ``truckllm.kit.safejson`` is refused (``JSONBodyError``, a 400) exactly when it
nests deeper than ``MAX_DEPTH`` or some object, at any level, names a key twice; never anything
else (a RecursionError, a 500).
"""

from __future__ import annotations

import json
import os
from typing import Any

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from truckllm._internal.safejson import MAX_DEPTH, JSONBodyError, check_json, decode_json
from truckllm.errors import GatewayError

EXAMPLES = int(os.environ.get("TRUCKLLM_PROPERTY_EXAMPLES", "300"))


class Obj:
    """A JSON object as written: its pairs in order, repeated keys and all."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        self.pairs = pairs


def encode(node: Any) -> str:
    if isinstance(node, Obj):
        return "{" + ",".join(json.dumps(k) + ":" + encode(v) for k, v in node.pairs) + "}"
    if isinstance(node, list):
        return "[" + ",".join(encode(v) for v in node) + "]"
    return json.dumps(node)


def depth(node: Any) -> int:
    if isinstance(node, Obj):
        return 1 + max((depth(v) for _, v in node.pairs), default=0)
    if isinstance(node, list):
        return 1 + max((depth(v) for v in node), default=0)
    return 0


def repeats(node: Any) -> set[str]:
    """Every key some object of ``node`` names twice."""
    found: set[str] = set()
    if isinstance(node, Obj):
        keys = [k for k, _ in node.pairs]
        found |= {key for i, key in enumerate(keys) if key in keys[:i]}
        children = [v for _, v in node.pairs]
    elif isinstance(node, list):
        children = node
    else:
        return found
    for child in children:
        found |= repeats(child)
    return found


def chain(levels: int, leaf: Any, kinds: str) -> Any:
    """``levels`` nested containers around ``leaf``, kind i being kinds[i % len(kinds)]."""
    node = leaf
    for i in range(levels):
        node = [1, node, "x"] if kinds[i % len(kinds)] == "a" else Obj([("k", 1), ("v", node)])
    return node


keys = st.sampled_from(["a", "b", "model", "é", "", "a\u0000", "\\"])
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)
trees = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.lists(st.tuples(keys, children), max_size=4).map(Obj)
    ),
    max_leaves=30,
)
# deep trees: a random tree wrapped in a chain that ends near the limit
deep_trees = st.builds(
    chain, st.integers(MAX_DEPTH - 6, MAX_DEPTH + 2), trees, st.sampled_from(["a", "o", "ao", "aao"])
)


@settings(max_examples=EXAMPLES, deadline=None)
@given(tree=trees | deep_trees)
@example(tree=chain(MAX_DEPTH, 0, "a"))
@example(tree=chain(MAX_DEPTH + 1, 0, "o"))
@example(tree=Obj([("a", 1), ("b", Obj([("c", 1), ("c", 2)]))]))
def test_refused_exactly_when_too_deep_or_a_key_repeats(tree: Any) -> None:
    text = encode(tree)
    too_deep = depth(tree) > MAX_DEPTH
    repeated = repeats(tree)
    if not too_deep and not repeated:
        check_json(text)
        check_json(text.encode())
        return
    with pytest.raises(JSONBodyError) as caught:
        check_json(text.encode())
    assert caught.value.status == 400
    if too_deep and not repeated:
        assert caught.value.reason == "too_deep"
    if repeated and not too_deep:
        assert caught.value.reason == "duplicate_key" and caught.value.key in repeated
        assert json.dumps(caught.value.key) in caught.value.message  # the 400 names the key


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 1_000, 10_000, 100_000])
@pytest.mark.parametrize("kinds", ["a", "o", "ao"])
def test_very_deep_bodies_are_a_400_not_a_recursion_error(levels: int, kinds: str) -> None:
    opening = "".join("[" if kinds[i % len(kinds)] == "a" else '{"k":' for i in range(levels))
    closing = "".join("]" if kinds[i % len(kinds)] == "a" else "}" for i in reversed(range(levels)))
    body = (opening + "0" + closing).encode()
    for call in (
        lambda: check_json(body),
        lambda: decode_json(body),
        lambda: decode_json(body, list[Any] | dict[str, Any]),
    ):
        with pytest.raises(JSONBodyError) as caught:
            call()
        assert caught.value.reason == "too_deep"


def test_wide_and_long_bodies_pass() -> None:
    check_json(json.dumps({"input": list(range(200_000))}))
    check_json(json.dumps({"messages": [{"role": "user", "content": "x" * 1_000_000}] * 3}))
    check_json(json.dumps([[[i] for i in range(1000)]]))


def test_decode_json_leaves_schema_errors_to_the_caller() -> None:
    class Body(msgspec.Struct):
        model: str

    assert decode_json(b'{"model": "m"}', Body) == Body(model="m")
    with pytest.raises(msgspec.ValidationError):
        decode_json(b'{"model": 5}', Body)
    with pytest.raises(msgspec.DecodeError):
        decode_json(b'{"model": ', Body)
    with pytest.raises(JSONBodyError) as caught:  # the instance of issue 13 (finding 11)
        decode_json(b'{"model": "cheap", "model": "dear"}', Body)
    assert caught.value.key == "model"


@pytest.mark.parametrize(
    "text", ['{"a": 1e99999}', '{"a": ' + "9" * 5000 + "}", '"\\ud800"', "[NaN]", '{"a": 1} x']
)
def test_odd_but_parsable_input_never_raises_anything_but_a_gateway_error(text: str) -> None:
    try:
        check_json(text)
    except GatewayError as exc:
        assert exc.status == 400
