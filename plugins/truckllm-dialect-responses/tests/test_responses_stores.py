"""Conversation state on every runtime store: memory, file, Redis and HTTP.

On each store, through a real gateway: ``previous_response_id`` continues a translated
conversation (Anthropic), another gateway key gets 404 (and ``previous_response_not_found`` for
a follow-up), ``store: false`` keeps nothing, and a conversation an OpenAI account keeps goes
back to that account (``previous_response_id`` as sent) turn after turn. On Redis and HTTP,
where the store's own TTL can be read, a stored response lives 30 days (``server.state.ttl``'s
default, OpenAI's retention).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import httpx2 as httpx
import pytest
import truckllm_dialect_responses as dialect_plugin

from truckllm_testing.server import GatewayServer
from truckllm_testing.store_server import LocalStore, StateValues, StoreServer

THIRTY_DAYS = 30 * 86400.0
STORES = ["memory", "file", "redis", "http"]


class RecordingState(StateValues):
    """The HTTP store service's state values, keeping the TTL each put asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.ttls: dict[str, float] = {}

    async def put_state(self, name: str, value: bytes, ttl: float) -> None:
        """Keep ``value`` and remember ``ttl``."""
        self.ttls[name] = ttl
        await super().put_state(name, value, ttl)


class HttpService:
    """A reference store service (``StoreServer``) on its own event loop in a thread."""

    def __init__(self) -> None:
        self.state = RecordingState()
        self.server = StoreServer(LocalStore(), token="t0ken", state=self.state)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> HttpService:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class Backend(NamedTuple):
    """A store's ``store:`` config, its plugin, and how to read the TTLs of stored responses."""

    config: str
    plugin: ModuleType
    ttls: Any  # () -> list[float] | None (None: this store's TTL cannot be read here)


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(params=STORES)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each runtime store in turn (skipped, saying why, when its plugin or server is missing)."""
    kind = request.param
    plugin = pytest.importorskip(f"truckllm_store_{kind}")
    if kind == "memory":
        yield Backend("{type: memory}", plugin, lambda: None)
    elif kind == "file":
        yield Backend(f"{{type: file, path: '{tmp_path / 'state.db'}'}}", plugin, lambda: None)
    elif kind == "redis":
        if not _redis_up():
            pytest.skip("no Redis on 127.0.0.1:6379")
        redis = importlib.import_module("redis")
        prefix = f"truckllm-responses-{uuid.uuid4().hex[:8]}:"
        client = redis.Redis(host="127.0.0.1", port=6379)

        def redis_ttls() -> list[float]:
            return [client.pttl(key) / 1000 for key in client.scan_iter(match=f"{prefix}state:*")]

        try:
            config = f"{{type: redis, addr: '127.0.0.1:6379', prefix: '{prefix}', timeout: 2s}}"
            yield Backend(config, plugin, redis_ttls)
        finally:
            for key in client.scan_iter(match=f"{prefix}*"):
                client.delete(key)
            client.close()
    else:
        with HttpService() as service:
            config = f"{{type: http, url: '{service.server.url}', token: t0ken}}"
            yield Backend(config, plugin, lambda: list(service.state.ttls.values()))


def _config(upstreams: Any, kit: Any, store: str) -> str:
    return f"""
keys: [{{name: team, value: {kit.key}}}, {{name: other, value: {kit.other_key}}}]
store: {store}
routing: {{retries: 0, cooldown: {{failures: 1000}}}}
providers:
  ant: {{type: anthropic, base_url: {upstreams.anthropic.base_url}, keys: [{{name: a, value: ak}}]}}
  oai: {{type: openai, base_url: {upstreams.openai.base_url}, keys: [{{name: o, value: ok}}]}}
  oai2: {{type: openai, base_url: {upstreams.openai.base_url}, keys: [{{name: o2, value: ok2}}]}}
models:
  claude: {{deployments: [{{provider: ant, model: claude-sonnet-4-5-20250929}}]}}
  gpt-pair: {{deployments: [{{provider: oai, model: gpt-4o}}, {{provider: oai2, model: gpt-4o}}]}}
"""


def _post(gw: GatewayServer, key: str, body: dict[str, Any]) -> httpx.Response:
    auth = {"authorization": f"Bearer {key}"}
    return httpx.post(gw.url + "/v1/responses", json=body, headers=auth, timeout=20)


def _get(gw: GatewayServer, key: str, response_id: str) -> httpx.Response:
    auth = {"authorization": f"Bearer {key}"}
    return httpx.get(gw.url + f"/v1/responses/{response_id}", headers=auth, timeout=20)


def test_conversation_state_on_every_store(backend: Backend, upstreams: Any, fresh: Any, kit: Any) -> None:
    kit.need("anthropic")
    kit.need("openai")
    plugins = (
        dialect_plugin,
        backend.plugin,
        importlib.import_module("truckllm_provider_anthropic"),
        importlib.import_module("truckllm_provider_openai"),
    )
    with GatewayServer(_config(upstreams, kit, backend.config), autoload=False, extra_plugins=plugins) as gw:
        # a translated conversation continues from the store
        first = _post(gw, kit.key, {"model": "claude", "input": "my name is Ada"})
        assert first.status_code == 200, first.text
        first_id = first.json()["id"]
        second = _post(gw, kit.key, {"model": "claude", "previous_response_id": first_id, "input": "who?"})
        assert second.status_code == 200, second.text
        sent = json.dumps(fresh.anthropic.requests[-1].json)
        assert "my name is Ada" in sent and "echo: my name is Ada" in sent and "who?" in sent
        assert _get(gw, kit.key, first_id).json() == first.json()

        # scoped to the gateway key that made it
        assert _get(gw, kit.other_key, first_id).status_code == 404
        theirs = _post(gw, kit.other_key, {"model": "claude", "previous_response_id": first_id, "input": "x"})
        assert theirs.status_code == 400 and theirs.json()["error"]["code"] == "previous_response_not_found"

        # store: false keeps nothing
        unstored = _post(gw, kit.key, {"model": "claude", "input": "forget me", "store": False})
        assert unstored.status_code == 200 and unstored.json()["store"] is False
        assert _get(gw, kit.key, unstored.json()["id"]).status_code == 404

        # an OpenAI account's resp_ id: every follow-up goes back to the account that keeps it
        opened = _post(gw, kit.key, {"model": "gpt-pair", "input": "hello"})
        assert opened.status_code == 200, opened.text
        holder = fresh.openai.response_turns[-1].api_key
        last = opened.json()["id"]
        for n in range(4):
            turn = _post(
                gw, kit.key, {"model": "gpt-pair", "previous_response_id": last, "input": f"turn {n}"}
            )
            assert turn.status_code == 200, turn.text
            upstream = fresh.openai.response_turns[-1]
            assert upstream.api_key == holder and upstream.request.json["previous_response_id"] == last
            last = turn.json()["id"]

        ttls = backend.ttls()
    if ttls is not None:  # 7 responses stored: 2 translated, 5 OpenAI turns (store: false: none)
        assert len(ttls) >= 7
        assert all(THIRTY_DAYS - 120 <= ttl <= THIRTY_DAYS for ttl in ttls), ttls
