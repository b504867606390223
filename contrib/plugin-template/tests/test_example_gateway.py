"""A gateway with this plugin in front of a fake local server, using truckllm's pytest fixtures.

``truckllm_gateway`` and ``fake_openai`` come from the ``truckllm`` pytest plugin, enabled
automatically wherever truckllm is installed.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from typing import Any

from truckllm_testing.fakes import FakeOpenAI
from truckllm_testing.server import GatewayServer

CONFIG = """
providers:
  local:
    type: example
    base_url: {base_url}
    keys: [{{name: local, value: test-key}}]
    options: {{default_max_tokens: 32}}
models:
  llama:
    deployments: [{{provider: local, model: llama3.1:8b}}]
"""


def post(gw: GatewayServer, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        gw.url + "/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", "authorization": "Bearer any"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def test_the_gateway_serves_an_alias_through_the_plugin(
    truckllm_gateway: Callable[..., GatewayServer], fake_openai: FakeOpenAI
) -> None:
    gw = truckllm_gateway(CONFIG.format(base_url=fake_openai.base_url))
    answer = post(gw, {"model": "llama", "messages": [{"role": "user", "content": "hello there"}]})
    assert answer["choices"][0]["message"]["content"] == "echo: hello there"
    (received,) = fake_openai.requests
    assert received.json["model"] == "llama3.1:8b"
    assert received.json["max_tokens"] == 32  # the plugin's option
    assert fake_openai.violations == []
