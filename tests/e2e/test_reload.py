"""Hot reload: file changes, SIGHUP-equivalent reloads, PUT config, an HTTP source with ETag."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import httpx2 as httpx
import pytest
from aiohttp import web

from truckllm_testing.server import GatewayServer

ADMIN = {"authorization": "Bearer adm"}


def config(extra_model: str = "", interval: str = "20ms") -> str:
    return f"""
admin: {{token: adm}}
providers:
  demo: {{type: mock, options: {{chunks: 10, chunk_interval: {interval}}}}}
  other: {{type: mock}}
models:
  demo: {{deployments: [{{provider: demo, model: echo}}]}}
{extra_model}"""


def wait_for(predicate: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[GatewayServer, Path]]:
    path = tmp_path / "truckllm.yaml"
    path.write_text(config())
    with GatewayServer(config_path=str(path), gateway_kwargs={"watch_interval": 0.05}) as gw:
        yield gw, path


async def _stream(url: str, session: aiohttp.ClientSession) -> str:
    body = {"model": "demo", "stream": True, "messages": [{"role": "user", "content": "a b c d e f g h"}]}
    async with session.post(url + "/v1/chat/completions", json=body) as response:
        return await response.text()


def test_reload_with_50_streams_in_flight_loses_none(served: tuple[GatewayServer, Path]) -> None:
    gw, path = served
    assert gw.gateway is not None
    results: list[str] = []

    async def run() -> None:
        async with aiohttp.ClientSession() as session:
            tasks = [asyncio.ensure_future(_stream(gw.url, session)) for _ in range(50)]
            await asyncio.sleep(0.05)  # the streams are under way
            path.write_text(config("  fresh: {deployments: [{provider: other, model: new}]}\n"))
            results.extend(await asyncio.gather(*tasks))

    asyncio.run(run())
    assert len(results) == 50 and all(text.endswith("data: [DONE]\n\n") for text in results)
    assert wait_for(lambda: "fresh" in gw.gateway.runtime.aliases)  # type: ignore[union-attr]
    answer = httpx.post(
        gw.url + "/v1/chat/completions",
        json={"model": "fresh", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert answer.status_code == 200 and gw.gateway.reloads_ok >= 1


def test_broken_config_is_refused_and_the_old_one_keeps_serving(served: tuple[GatewayServer, Path]) -> None:
    gw, path = served
    assert gw.gateway is not None
    path.write_text(config().replace("type: mock", "type: nosuch", 1) + "bogus: 1\n")
    assert wait_for(lambda: gw.gateway.reloads_failed >= 1)  # type: ignore[union-attr]
    assert not gw.gateway.last_reload_ok
    ok = httpx.post(
        gw.url + "/v1/chat/completions",
        json={"model": "demo", "messages": [{"role": "user", "content": "x"}]},
    )
    assert ok.status_code == 200
    refused = httpx.post(gw.url + "/admin/v1/reload", headers=ADMIN)
    assert refused.status_code == 422
    problems = refused.json()["problems"]
    assert {p["field"] for p in problems} >= {"providers.demo.type", "bogus"}
    assert all(p["file"] == str(path) and p["line"] for p in problems)


def test_put_config_validates_applies_and_persists(served: tuple[GatewayServer, Path]) -> None:
    gw, path = served
    new = config("  added: {deployments: [{provider: other, model: x}]}\n")
    bad = httpx.put(gw.url + "/admin/v1/config", content=new + "nonsense: [", headers=ADMIN)
    assert bad.status_code == 422 and "added" not in path.read_text()
    good = httpx.put(gw.url + "/admin/v1/config", content=new, headers=ADMIN)
    assert good.status_code == 200 and good.json() == {"applied": True, "persisted": True, "version": 2}
    assert path.read_text() == new
    assert httpx.get(gw.url + "/v1/models/added").status_code == 200
    valid = httpx.post(gw.url + "/admin/v1/config/validate", content=new, headers=ADMIN).json()
    assert valid == {"valid": True, "problems": []}
    time.sleep(0.2)
    assert gw.gateway is not None and gw.gateway.runtime.version == 2  # our own write is not a change


def test_cooldowns_of_unchanged_keys_survive_a_reload(served: tuple[GatewayServer, Path]) -> None:
    gw, path = served
    assert gw.gateway is not None
    state = gw.gateway.health.key("demo", "-")
    state.cool(gw.gateway.clock(), 60, "rate_limit")
    path.write_text(config("  more: {deployments: [{provider: other, model: y}]}\n"))
    assert wait_for(lambda: "more" in gw.gateway.runtime.aliases)  # type: ignore[union-attr]
    assert gw.gateway.health.key("demo", "-").state(gw.gateway.clock()) == "cooldown"
    limited = httpx.post(
        gw.url + "/v1/chat/completions",
        json={"model": "demo", "messages": [{"role": "user", "content": "x"}]},
    )
    assert limited.status_code == 429


class ConfigServer:
    """Serves a config with an ETag; answers 304 to a matching If-None-Match."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.requests: list[str | None] = []
        self.loop = asyncio.new_event_loop()

    async def handler(self, request: web.Request) -> web.Response:
        etag = f'"{hash(self.text) & 0xFFFFFF:x}"'
        self.requests.append(request.headers.get("if-none-match"))
        if request.headers.get("if-none-match") == etag:
            return web.Response(status=304)
        return web.Response(text=self.text, headers={"etag": etag})

    def __enter__(self) -> ConfigServer:
        app = web.Application()
        app.router.add_get("/truckllm.yaml", self.handler)
        self.runner = web.AppRunner(app)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}/truckllm.yaml"

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.runner.setup())
            self.loop.run_until_complete(web.SockSite(self.runner, sock).start())
            self.loop.run_forever()
            self.loop.run_until_complete(self.runner.cleanup())

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def test_http_config_source_is_polled_with_etag() -> None:
    with (
        ConfigServer(config()) as source,
        GatewayServer(config_path=source.url, gateway_kwargs={"watch_interval": 0.05}) as gw,
    ):
        assert gw.gateway is not None
        assert wait_for(lambda: len(source.requests) >= 3)
        assert source.requests[1] is not None  # conditional polls after the first fetch
        assert gw.gateway.runtime.version == 1  # 304s change nothing
        source.text = config("  remote: {deployments: [{provider: other, model: r}]}\n")
        assert wait_for(lambda: "remote" in gw.gateway.runtime.aliases)  # type: ignore[union-attr]
        put = httpx.put(gw.url + "/admin/v1/config", content=config(), headers=ADMIN)
        assert put.json()["persisted"] is False
