"""Config loading: shape, defaults, ${VAR} substitution, overrides, and errors naming file:line:field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from truckllm._internal.config.durations import parse_duration
from truckllm._internal.config.loader import Registry, load_config, merge_routing, parse_config
from truckllm._internal.plugins import make_plugin_manager
from truckllm._internal.secrets import Secret
from truckllm.errors import ConfigError
from truckllm.types import ProviderSpec

REGISTRY = Registry(
    providers={
        "openai": ProviderSpec(type="openai", default_base_url="https://api.openai.com/v1"),
        "mock": ProviderSpec(type="mock", needs_keys=False),
    },
    strategies=frozenset({"weighted", "first"}),
    stores=frozenset({"memory", "redis"}),
    loggers=frozenset({"stdout"}),
)

GOOD = """
server:
  listen: 0.0.0.0:9000
  request_timeout: 2m
providers:
  openai:
    type: openai
    keys:
      - {name: a, value: "${OAI_KEY}", rpm: 500}
      - {name: b, value: "${OAI_KEY_B:-fallback}", weight: 2, routing: {retries: 5}}
    routing: {try_timeout: 30s}
  demo: {type: mock}
models:
  gpt-4o:
    strategy: weighted
    routing: {retries: 1, backoff: {base: 50ms, max: 1s}}
    deployments:
      - {provider: openai, model: gpt-4o, weight: 3, price: {input: 2.5, output: 10}}
      - {provider: demo, model: echo, routing: {try_timeout: 5s}}
    fallbacks: [demo]
  demo:
    deployments: [{provider: demo, model: echo}]
keys:
  - {name: team-a, value: "${TEAM}", models: [gpt-4o], rpm: 100, budget: {usd: 50, period: month}}
"""


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, REGISTRY, source="cfg.yaml", env=env or {})
    return [str(p) for p in info.value.problems]


def test_good_config_decodes_with_defaults_and_secrets() -> None:
    config = parse_config(GOOD, REGISTRY, source="cfg.yaml", env={"OAI_KEY": "sk-1", "TEAM": "t"})
    assert config.server.listen == "0.0.0.0:9000"
    assert config.server.request_timeout == 120
    assert config.server.max_body_bytes == 10 * 1024 * 1024  # default
    key_a, key_b = config.providers["openai"].keys
    assert isinstance(key_a.value, Secret) and key_a.value.reveal() == "sk-1"
    assert key_b.value is not None and key_b.value.reveal() == "fallback"
    assert str(key_a.value) == "<secret>" and "sk-1" not in repr(config)
    assert config.models["gpt-4o"].fallbacks == ("demo",)
    assert config.routing.retries == 2  # default


def test_routing_overrides_apply_top_down() -> None:
    config = parse_config(GOOD, REGISTRY, env={"OAI_KEY": "k", "TEAM": "t"})
    provider = config.providers["openai"]
    model = config.models["gpt-4o"]
    dep = model.deployments[0]
    key_b = provider.keys[1]
    merged = merge_routing(config.routing, provider.routing, model.routing, dep.routing, key_b.routing)
    assert merged.try_timeout == 30  # provider level
    assert merged.retries == 5  # key level beats alias level
    assert merged.backoff.base == pytest.approx(0.05)
    assert merged.connect_timeout == 5  # global default
    demo = merge_routing(config.routing, None, model.routing, model.deployments[1].routing, None)
    assert demo.try_timeout == 5 and demo.retries == 1


def test_every_problem_is_listed_with_file_line_and_field() -> None:
    text = """server:
  request_timeout: soon
providers:
  openai:
    type: openai
    keys:
      - {name: a, valu: x}
  twin:
    type: openai
    keys: [{name: k, value: v}, {name: k, value: w}]
  odd: {type: nosuch}
models:
  m:
    strategy: nosuch
    deployments: [{provider: missing, model: x}]
    fallbacks: [nowhere]
bogus: 1
"""
    found = problems(text)
    joined = "\n".join(found)
    assert "cfg.yaml:2: server.request_timeout: invalid duration 'soon'" in joined
    assert "cfg.yaml:7: providers.openai.keys[0].valu: unknown field" in joined
    assert "cfg.yaml:10: providers.twin.keys[1].name: duplicate key name 'k'" in joined
    assert "cfg.yaml:11: providers.odd.type: unknown provider type 'nosuch'" in joined
    assert "models.m.strategy: unknown strategy 'nosuch'" in joined
    assert "models.m.deployments[0].provider: no provider named 'missing'" in joined
    assert "models.m.fallbacks[0]: no model alias named 'nowhere'" in joined
    assert "cfg.yaml:17: bogus: unknown field" in joined
    assert len(found) == 8


def test_unset_variable_is_an_error_and_default_is_used() -> None:
    text = "providers:\n  o: {type: openai, keys: [{name: a, value: '${NOPE}'}]}\n"
    assert any("environment variable NOPE is not set" in p and ":2:" in p for p in problems(text))
    ok = parse_config(text.replace("${NOPE}", "${NOPE:-dflt}"), REGISTRY, env={})
    assert ok.providers["o"].keys[0].value is not None
    assert ok.providers["o"].keys[0].value.reveal() == "dflt"
    literal = parse_config(text.replace("${NOPE}", "$${NOPE}"), REGISTRY, env={})
    assert literal.providers["o"].keys[0].value.reveal() == "${NOPE}"  # type: ignore[union-attr]


def test_duplicate_yaml_key_is_reported_with_line() -> None:
    found = problems("providers: {}\nmodels: {}\nproviders: {}\n")
    assert len(found) == 1 and "duplicate key" in found[0] and ":3" in found[0]


def test_yaml_syntax_error_names_line() -> None:
    found = problems("server:\n  listen: [unclosed\n")
    assert found and "cfg.yaml:" in found[0]


def test_provider_that_needs_keys_without_keys() -> None:
    found = problems("providers:\n  o: {type: openai}\n")
    assert any("providers.o.keys: this provider type needs at least one key" in p for p in found)


def test_gateway_key_needs_exactly_one_of_value_or_hash() -> None:
    found = problems("keys:\n  - {name: a}\n  - {name: b, value: x, hash: 'sha256:" + "0" * 64 + "'}\n")
    assert sum("give exactly one of value or hash" in p for p in found) == 2


def test_json_config_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(
        json.dumps(
            {
                "providers": {"d": {"type": "mock"}},
                "models": {"m": {"deployments": [{"provider": "d", "model": "x"}]}},
            }
        )
    )
    config = load_config(str(path), REGISTRY, env={})
    assert config.models["m"].deployments[0].model == "x"


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path / "nope.yaml"), REGISTRY)
    assert "cannot read config" in str(info.value)


def test_provider_options_are_decoded_strictly_with_the_plugin_struct() -> None:
    host = make_plugin_manager()
    text = "providers:\n  d:\n    type: mock\n    options: {chunks: 2, latency: 10ms}\n"
    config = parse_config(text, host.registry(), env={})
    assert config.providers["d"].options.chunks == 2
    assert config.providers["d"].options.latency == pytest.approx(0.01)
    with pytest.raises(ConfigError) as info:
        parse_config(text.replace("chunks", "chunkz"), host.registry(), env={})
    assert "providers.d.options.chunkz: unknown field" in str(info.value)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("100ms", 0.1), ("5s", 5), ("1m30s", 90), ("2h", 7200), (3, 3), ("2.5", 2.5), ("1d", 86400)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["soon", "5 s", "-1", "", True, "1x"])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_quickstart_config_is_valid() -> None:
    host = make_plugin_manager()
    root = Path(__file__).resolve().parents[2]
    config = load_config(str(root / "config" / "truckllm.yaml"), host.registry(), env={})
    assert "demo" in config.models
