"""The component's life: none configured (``/mcp`` says so), added, changed and removed by a
config reload (the old upstream connections closed), no access rule (403), an open gateway."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2
import pytest
from truckllm_mcp import McpGateway

from truckllm_testing.conformance import wait_for
from truckllm_testing.server import GatewayServer

ADMIN = "admin-token-lifecycle-0123456"
KEY = "tllm_lifecycle_0123456789abcd"
ALPHA_TOKEN = "alpha-upstream-token-7f3c9a2e51"
LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
ACCEPT = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18"}


def config(mcp: dict[str, Any] | None, keys: bool = True) -> str:
    document: dict[str, Any] = {
        "admin": {"token": ADMIN},
        "providers": {"demo": {"type": "mock"}},
        "models": {"m": {"deployments": [{"provider": "demo", "model": "echo"}]}},
    }
    if keys:
        document["keys"] = [{"name": "dev", "value": KEY}]
    if mcp is not None:
        document["loggers"] = [{"mcp": mcp}]
    return json.dumps(document)


def alpha(url: str, access: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "servers": {"alpha": {"url": url, "headers": {"Authorization": f"Bearer {ALPHA_TOKEN}"}}},
        "access": access,
    }


def tools(gw: GatewayServer, key: str | None = KEY) -> httpx2.Response:
    headers = {**ACCEPT, **({"authorization": f"Bearer {key}"} if key else {})}
    return httpx2.post(gw.url + "/mcp", json=LIST, headers=headers)


def names(answer: httpx2.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [t["name"] for t in answer.json()["result"]["tools"]]


def test_reloads_add_change_and_remove_the_component(alpha_upstream: Any, tmp_path: Path) -> None:
    path = tmp_path / "truckllm.json"
    path.write_text(config(None))
    with GatewayServer(config_path=str(path), autoload=True) as gw:
        missing = tools(gw)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == -32601

        def put(text: str) -> None:
            answer = httpx2.put(
                gw.url + "/admin/v1/config", content=text, headers={"authorization": f"Bearer {ADMIN}"}
            )
            assert answer.status_code == 200, answer.text

        put(config(alpha(alpha_upstream.url, [{"keys": ["dev"]}])))
        wait_for(lambda: tools(gw).status_code == 200, 20, "the component serving")
        wait_for(lambda: names(tools(gw)) == ["alpha__add", "alpha__echo"], 20, "alpha listed")
        assert gw.gateway is not None
        first = gw.gateway.view.component(McpGateway)
        assert first is not None

        put(config(alpha(alpha_upstream.url, [{"keys": ["dev"], "tools": ["alpha__echo"]}])))
        wait_for(lambda: names(tools(gw)) == ["alpha__echo"], 20, "the new rules")
        second = gw.gateway.view.component(McpGateway)
        assert second is not None and second is not first
        wait_for(lambda: all(u.state == "stopped" for u in first.upstreams.values()), 20, "the old closed")

        put(config(None))
        wait_for(lambda: tools(gw).status_code == 404, 20, "the component gone")


def test_without_an_access_rule_every_key_is_refused(alpha_upstream: Any) -> None:
    with GatewayServer(config(alpha(alpha_upstream.url, [])), autoload=True) as gw:
        refused = tools(gw)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == -32003
        assert tools(gw, None).status_code == 401


@pytest.mark.parametrize("rule", [{"keys": ["*"]}, {"keys": ["dev"]}])
def test_an_open_gateway_serves_only_rules_for_every_caller(
    alpha_upstream: Any, rule: dict[str, Any]
) -> None:
    """Without ``keys:`` (loopback only) no key names the caller: only ``keys: ["*"]`` applies."""
    with GatewayServer(config(alpha(alpha_upstream.url, [rule]), keys=False), autoload=True) as gw:
        answer = tools(gw, None)
        if rule["keys"] == ["*"]:
            assert names(answer) == ["alpha__add", "alpha__echo"]
        else:
            assert answer.status_code == 403
