"""Config text from the admin API is bounded before anything expands it (issue 13, finding 7).

Rule: ``parse_config`` answers any text with a config or a ``ConfigError`` (never another
exception, never a traceback) within a bounded time: YAML aliases expand to at most
``MAX_NODES`` values, nesting stops at ``MAX_NESTING`` (a self-referencing alias too), a parser
``RecursionError`` or an integer too long to convert is a problem, and ruamel's messages that
would quote values (a repeated key) are rewritten.
"""

from __future__ import annotations

import contextlib
import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from truckllm._internal.config.loader import MAX_NESTING, MAX_NODES, Registry, parse_config
from truckllm._internal.plugins import make_plugin_manager
from truckllm.errors import ConfigError

EXAMPLES = int(os.environ.get("TRUCKLLM_PROPERTY_EXAMPLES", "300")) // 3


@pytest.fixture(scope="module")
def registry() -> Registry:
    return make_plugin_manager().registry()


def alias_bomb(levels: int, width: int = 9, section: str = "a") -> str:
    text = f"{section}: &n0 [{','.join(['lol'] * width)}]\n"
    for i in range(1, levels):
        text += f"x{i}: &n{i} [" + ",".join([f"*n{i - 1}"] * width) + "]\n"
    return text


def refused_quickly(text: str, registry: Registry, within: float = 5.0) -> ConfigError:
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        parse_config(text, registry)
    assert time.monotonic() - started < within
    return caught.value


@pytest.mark.parametrize("section", ["a", "models", "providers", "store", "loggers"])
@pytest.mark.parametrize("levels", [7, 9, 12])
def test_an_alias_bomb_stops_at_the_value_bound(registry: Registry, section: str, levels: int) -> None:
    error = refused_quickly(alias_bomb(levels, section=section), registry)
    if 9**levels > MAX_NODES:
        assert any(f"over {MAX_NODES} values" in p.message for p in error.problems), error


@pytest.mark.parametrize(
    "text",
    [
        "providers: &p {x: {type: mock, options: *p}}\n",
        "models: &m {x: {deployments: [*m]}}\n",
        "a: &a [*a]\n",
        "store: &s {type: memory, nested: *s}\n",
    ],
)
def test_a_self_referencing_alias_is_refused(registry: Registry, text: str) -> None:
    refused_quickly(text, registry)


@pytest.mark.parametrize("levels", [MAX_NESTING + 1, 300, 2_000, 50_000])
@pytest.mark.parametrize("kind", ["flow", "block", "json"])
def test_deep_nesting_is_a_problem_not_a_recursion_error(registry: Registry, levels: int, kind: str) -> None:
    if kind == "flow":
        text = "store: {type: memory, x: " + "[" * levels + "]" * levels + "}\n"
    elif kind == "json":
        text = '{"store": {"type": "memory", "x": ' + '{"k":' * levels + "1" + "}" * levels + "}}"
    else:
        if levels > 2_000:
            pytest.skip("block YAML this deep is megabytes of indentation")
        text = "store:\n  type: memory\n  x:\n" + "".join("  " * (i + 2) + f"k{i}:\n" for i in range(levels))
    refused_quickly(text, registry, within=30)


def test_numbers_too_long_to_convert(registry: Registry) -> None:
    error = refused_quickly("server: {workers: " + "9" * 5000 + "}\n", registry)
    assert "too many digits" in str(error)


def test_a_repeated_key_is_named_without_its_values(registry: Registry) -> None:
    error = refused_quickly("admin:\n  token: first-value-123456\n  token: second-value-654321\n", registry)
    assert "duplicate key 'token'" in str(error)
    assert "first-value" not in str(error) and "second-value" not in str(error)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=st.text(alphabet="[]{}&*:,- \n\tabk0'\"!|>%@`#", max_size=200))
def test_any_text_is_a_config_or_a_config_error(registry: Registry, text: str) -> None:
    with contextlib.suppress(ConfigError):
        parse_config(text, registry)


def test_a_normal_config_with_anchors_still_loads(registry: Registry) -> None:
    text = """
providers:
  demo: {type: mock}
models:
  a: &base {deployments: [{provider: demo, model: echo}], description: shared}
  b: *base
  c:
    <<: *base
    description: merged
"""
    config = parse_config(text, registry)
    assert config.models["b"].description == "shared" and config.models["c"].description == "merged"
