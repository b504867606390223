"""Through a real gateway (mock provider): ``loggers: [{sql: {url: ...}}]``; requests made, then
the request log finds them; with the database unreachable the gateway still starts and answers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx2 as httpx

from truckllm.kit.request_log import LogQuery, SeriesQuery
from truckllm_testing.server import GatewayServer

T = TypeVar("T")

CONFIG = """
providers:
  mock: {{type: mock}}
models:
  m:
    deployments: [{{provider: mock, model: mock-1}}]
keys:
  - {{name: alice, value: key-alice}}
admin: {{token: admin-token-Zq8vX3kP0wLm1234}}
loggers:
  - sql: {{url: "{url}", flush_interval: 20ms, max_backoff: 200ms, connect_timeout: 1s}}
"""


def _on_gateway(gw: GatewayServer, coro: Coroutine[Any, Any, T]) -> T:
    assert gw.loop is not None
    return asyncio.run_coroutine_threadsafe(coro, gw.loop).result(timeout=30)


def _chat(gw: GatewayServer, text: str) -> httpx.Response:
    return httpx.post(
        gw.url + "/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": text}]},
        headers={"authorization": "Bearer key-alice"},
        timeout=20,
    )


def test_requests_through_the_gateway_are_searchable(gateway_log: Any, db_url: str) -> None:
    with GatewayServer(CONFIG.format(url=db_url)) as gw:
        started = time.time()
        ids = []
        for i in range(5):
            response = _chat(gw, f"hello {i}")
            assert response.status_code == 200
            ids.append(response.headers["x-request-id"])
        logger = gateway_log.of(gw)
        gateway_log.wait_written(logger, 5)
        page = _on_gateway(gw, logger.search(LogQuery(gateway_key="alice", alias="m", limit=3)))
        assert len(page.records) == 3 and page.next_cursor is not None
        rest = _on_gateway(
            gw, logger.search(LogQuery(gateway_key="alice", alias="m", cursor=page.next_cursor))
        )
        found = [r.request_id for r in page.records + rest.records]
        assert found == list(reversed(ids))
        record = _on_gateway(gw, logger.get(ids[0]))
        assert record is not None and record.status == 200 and record.provider == "mock" and record.attempts
        series = _on_gateway(gw, logger.series(SeriesQuery(since=started - 60, until=time.time() + 60)))
        assert series.totals.requests == 5 and series.top_keys[0].name == "alice"
        assert logger.metrics["db_up"] == 1 and logger.metrics["dropped"] == 0


def test_the_gateway_serves_with_the_database_down(gateway_log: Any, tmp_path: Path) -> None:
    with GatewayServer(CONFIG.format(url="postgresql://u:hunter2@127.0.0.1:1/none")) as gw:
        assert _chat(gw, "hello").status_code == 200
        logger = gateway_log.of(gw)
        assert logger.metrics["db_up"] == 0
        assert logger.metrics["written"] == 0


def test_the_admin_api_answers_from_the_log(gateway_log: Any, db_url: str) -> None:
    admin = {"authorization": "Bearer admin-token-Zq8vX3kP0wLm1234"}
    with GatewayServer(CONFIG.format(url=db_url)) as gw:
        ids = [_chat(gw, f"hi {i}").headers["x-request-id"] for i in range(3)]
        gateway_log.wait_written(gateway_log.of(gw), 3)
        page = httpx.get(gw.url + "/admin/v1/requests", params={"key": "alice", "limit": 2}, headers=admin)
        assert page.status_code == 200, page.text
        body = page.json()
        assert [r["request_id"] for r in body["data"]] == ids[::-1][:2] and body["next_cursor"]
        last = httpx.get(gw.url + "/admin/v1/requests", params={"cursor": body["next_cursor"]}, headers=admin)
        assert [r["request_id"] for r in last.json()["data"]] == ids[:1]
        assert last.json()["next_cursor"] is None
        bad = httpx.get(gw.url + "/admin/v1/requests", params={"cursor": "not-ours"}, headers=admin)
        assert bad.status_code == 400
        one = httpx.get(gw.url + f"/admin/v1/requests/{ids[1]}", headers=admin)
        assert one.status_code == 200 and one.json()["request_id"] == ids[1]
        assert httpx.get(gw.url + "/admin/v1/requests/nope", headers=admin).status_code == 404
        stats = httpx.get(gw.url + "/admin/v1/requests/stats", params={"step": "minute"}, headers=admin)
        assert stats.status_code == 200, stats.text
        assert "unauthorized" not in stats.text and db_url.split("@")[0] not in stats.text
