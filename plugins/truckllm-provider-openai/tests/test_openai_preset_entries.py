"""A preset decides its entry's default root and whether it needs keys (``ProviderSpec.resolve``):
a cloud entry without keys is a config error naming the field; a local server's is not."""

from __future__ import annotations

import pytest

from truckllm._internal.config.loader import parse_config
from truckllm._internal.plugins import make_plugin_manager
from truckllm.errors import ConfigError
from truckllm_testing.server import GatewayServer


def config(options: str, keys: str = "") -> str:
    return f"""
providers:
  p:
    type: openai
    options: {options}
{keys}models:
  m: {{deployments: [{{provider: p, model: x}}]}}
"""


@pytest.mark.parametrize(
    ("options", "needs"),
    [("{}", True), ("{preset: groq}", True), ("{preset: mistral}", True), ("{preset: ollama}", False),
     ("{preset: vllm}", False), ("{preset: lmstudio}", False)],
)
def test_which_entries_need_keys(options: str, needs: bool) -> None:
    text = config(options)
    if needs:
        with pytest.raises(ConfigError) as caught:
            parse_config(text, make_plugin_manager().registry(), env={})
        assert "providers.p.keys" in str(caught.value) and "needs at least one key" in str(caught.value)
    else:
        with GatewayServer(text) as gw:
            assert gw.gateway is not None
            assert gw.gateway.runtime.providers["p"].base_url.startswith("http://localhost:")


def test_a_preset_entry_shows_its_own_root() -> None:
    """The runtime (and so the admin API) knows the preset's root, not OpenAI's."""
    text = config("{preset: groq}", "    keys: [{name: k, value: gsk-test-value}]\n")
    with GatewayServer(text) as gw:
        assert gw.gateway is not None
        assert gw.gateway.runtime.providers["p"].base_url == "https://api.groq.com/openai/v1"
