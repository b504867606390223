"""The ``provider-bedrock`` entry point loads through the kernel's plugin manager."""

from __future__ import annotations

import msgspec
import pytest
import truckllm_provider_bedrock

from truckllm._internal.plugins import list_plugins, make_plugin_manager
from truckllm.hookspecs import HOOKSPEC_VERSION

ENTRY_POINT = "provider-bedrock"
HOOKS = ["parse_usage", "register_providers", "transform_request", "transform_response", "transform_stream"]


@pytest.fixture(autouse=True)
def _autoload(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRUCKLLM_DISABLE_PLUGIN_AUTOLOAD", raising=False)


def test_entry_point_loads_and_registers_the_provider_type() -> None:
    host = make_plugin_manager()
    assert host.pm.get_plugin(ENTRY_POINT) is truckllm_provider_bedrock
    assert truckllm_provider_bedrock.TRUCKLLM_API == HOOKSPEC_VERSION
    spec = host.providers["bedrock"]
    assert spec.dialect == "openai" and spec.options is truckllm_provider_bedrock.Options
    assert not spec.needs_keys and spec.credentials is not None
    (row,) = [r for r in list_plugins(host) if r["name"] == "truckllm-provider-bedrock"]
    assert row["entry_point"] == f"{ENTRY_POINT} = truckllm_provider_bedrock"
    assert row["hooks"] == HOOKS


def test_options_are_decoded_strictly() -> None:
    from truckllm._internal.config.loader import decode_options

    options = decode_options(
        {"region": "eu-west-3", "auth": "api_key", "profile": "prod"}, truckllm_provider_bedrock.Options
    )
    assert (options.region, options.auth, options.profile) == ("eu-west-3", "api_key", "prod")
    for bad in ({"regoin": "us-east-1"}, {"auth": "iam"}, {"region": "mars"}):
        with pytest.raises(msgspec.ValidationError):
            decode_options(bad, truckllm_provider_bedrock.Options)
