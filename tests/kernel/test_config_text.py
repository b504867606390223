"""Config strings are text a request can carry: a string that cannot be UTF-8 (an unpaired UTF-16
surrogate, which YAML's ``"\\ud83d\\ude00"`` escapes produce) is refused at load, with a problem
that can itself be printed, instead of failing every request that would carry it."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from truckllm._internal.config.loader import parse_config
from truckllm._internal.plugins import PluginHost, make_plugin_manager
from truckllm.errors import ConfigError

EXAMPLES = int(os.environ.get("TRUCKLLM_PROPERTY_EXAMPLES", "100"))
SURROGATE = st.integers(0xD800, 0xDFFF).map(chr)


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return make_plugin_manager(autoload=True)


PLACES = {
    "alias": 'providers: {d: {type: mock}}\nmodels: {"%s": {deployments: [{provider: d, model: x}]}}',
    "model": 'providers: {d: {type: mock}}\nmodels: {a: {deployments: [{provider: d, model: "%s"}]}}',
    "header": 'providers: {d: {type: mock, headers: {x-team: "%s"}}}\nmodels: {a: {deployments: [{provider: d, model: x}]}}',
}


@settings(max_examples=EXAMPLES, deadline=None)
@given(place=st.sampled_from(sorted(PLACES)), before=st.text("abc", max_size=3), lone=SURROGATE)
def test_an_unpaired_surrogate_is_refused_where_ever_it_is(host: PluginHost, place: str, before: str, lone: str) -> None:
    escaped = before + f"\\u{ord(lone):04x}"
    with pytest.raises(ConfigError) as caught:
        parse_config(PLACES[place] % escaped, host.registry(), env={})
    message = str(caught.value)
    assert "unpaired UTF-16 surrogate" in message
    message.encode("utf-8")  # the problem itself prints


def test_real_astral_characters_pass(host: PluginHost) -> None:
    config = parse_config(PLACES["model"] % "x\\U0001F600", host.registry(), env={})
    assert config.models["a"].deployments[0].model == "x\U0001f600"
    with pytest.raises(ConfigError):  # the same character as a YAML surrogate pair is two lone halves
        parse_config(PLACES["model"] % "x\\ud83d\\ude00", host.registry(), env={})
