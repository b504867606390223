"""StoreServer, the reference implementation of the http store's REST protocol."""

from __future__ import annotations

from typing import Any

import aiohttp
import msgspec

from truckllm._internal.localstate import StoreUnavailable
from truckllm._internal.store import UsageQuery, UsageReport
from truckllm_testing.store_conformance import FakeClock, make_records
from truckllm_testing.store_server import LocalStore, StoreServer


class DownStore(LocalStore):
    """A store whose backend is gone."""

    async def usage(self, query: UsageQuery) -> UsageReport:
        raise StoreUnavailable("backend down")

    async def ready(self) -> dict[str, Any]:
        return {"ok": False, "backend": "unreachable"}


async def test_status_codes_without_a_token() -> None:
    async with StoreServer(DownStore(FakeClock())) as server, aiohttp.ClientSession() as http:
        async with http.get(server.url + "/v1/usage") as response:
            assert response.status == 503 and (await response.json()) == {"error": "backend down"}
        async with http.get(server.url + "/v1/ready") as response:
            assert response.status == 503 and (await response.json())["ok"] is False
        bad = {"request_id": "r", "rates": [{"key": "k", "rate": 0}]}
        async with http.post(server.url + "/v1/admit", json=bad) as response:
            assert response.status == 400 and "positive" in (await response.json())["error"]
        async with http.post(server.url + "/v1/settle", json={"not": "a list"}) as response:
            assert response.status == 400
        async with http.get(server.url + "/v1/nothing") as response:
            assert response.status == 404


async def test_usage_query_parameters() -> None:
    store = LocalStore(FakeClock())
    for record in make_records(n=30):
        store.record(record)
    async with StoreServer(store, token="t") as server:
        headers = {"authorization": "Bearer t"}
        async with aiohttp.ClientSession(headers=headers) as http:
            params = {"group_by": "day, key", "since": "1772409600", "key": "team-a"}
            async with http.get(server.url + "/v1/usage", params=params) as response:
                report = msgspec.json.decode(await response.read(), type=UsageReport)
    want = await store.usage(UsageQuery(group_by=("day", "key"), since=1772409600.0, key="team-a"))
    assert report == want and report.rows and all(r.group["key"] == "team-a" for r in report.rows)


async def test_restart_on_the_same_port() -> None:
    server = StoreServer(LocalStore(FakeClock()))
    url = await server.start()
    await server.stop()
    assert await server.start() == url
    async with aiohttp.ClientSession() as http, http.get(url + "/v1/ready") as response:
        assert response.status == 200
    await server.stop()
