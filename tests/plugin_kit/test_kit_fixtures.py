"""The ``truckllm`` pytest plugin's fixtures, as a plugin author uses them (no conftest needed)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from truckllm_testing.conformance import GatewayClient, RecordingPlugin, wait_for
from truckllm_testing.fakes import FakeAnthropic, FakeGemini, FakeOpenAI, FakeUpstream
from truckllm_testing.server import GatewayServer


def test_fixtures_come_from_the_entry_point(pytestconfig: pytest.Config) -> None:
    plugin = pytestconfig.pluginmanager.get_plugin("truckllm")
    assert plugin is not None and plugin.__name__ == "truckllm_testing.pytest_plugin"


def test_fake_fixtures_are_running(
    fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, fake_gemini: FakeGemini
) -> None:
    assert fake_openai.base_url.endswith("/v1")
    for fake in (fake_openai, fake_anthropic, fake_gemini):
        assert fake.port > 0 and fake.keys == {"test-key"}


def test_gateway_factory_takes_yaml_or_a_mapping_and_extra_plugins(
    truckllm_gateway: Callable[..., GatewayServer], fake_openai: FakeOpenAI
) -> None:
    recorder = RecordingPlugin()
    config = {
        "providers": {
            "up": {
                "type": "openai",
                "base_url": fake_openai.base_url,
                "keys": [{"name": "k", "value": "test-key"}],
            }
        },
        "models": {"m": {"deployments": [{"provider": "up", "model": "gpt-x"}]}},
    }
    gw = truckllm_gateway(config, extra_plugins=[recorder])
    answer = GatewayClient(gw).chat({"model": "m", "messages": [{"role": "user", "content": "fixture"}]})
    assert answer.status == 200 and answer.json()["choices"][0]["message"]["content"] == "echo: fixture"
    wait_for(lambda: len(recorder.records) == 1)
    yaml_gw = truckllm_gateway(
        "providers:\n  d: {type: mock}\nmodels:\n  d: {deployments: [{provider: d, model: e}]}\n"
    )
    assert yaml_gw.port != gw.port


def test_fake_factory_takes_the_fakes_settings(truckllm_fake: Callable[..., FakeUpstream]) -> None:
    fake = truckllm_fake(FakeOpenAI, keys=["a", "b"], chunks=7)
    assert isinstance(fake, FakeOpenAI) and fake.keys == {"a", "b"} and fake.chunks == 7


_started: list[GatewayServer] = []  # the two tests below run in file order


def test_gateways_are_stopped_after_the_test_part_one(truckllm_gateway: Callable[..., GatewayServer]) -> None:
    _started.append(truckllm_gateway("providers:\n  d: {type: mock}\n"))
    assert _started[0].gateway is not None and _started[0].gateway.started


def test_gateways_are_stopped_after_the_test_part_two() -> None:
    assert _started and _started[0].gateway is not None and not _started[0].gateway.started
