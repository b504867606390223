"""StoreServer, the reference implementation of the http store's REST protocol."""

from __future__ import annotations

import io
from typing import Any

import aiohttp
import msgspec

from truckllm._internal.localstate import StoreUnavailable
from truckllm._internal.store import UsageQuery, UsageReport
from truckllm_testing.store_conformance import FakeClock, make_records
from truckllm_testing.store_server import LocalStore, StateValues, StoreServer


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


async def test_state_endpoints_refuse_bad_parameters_naming_them() -> None:
    async with (
        StoreServer(LocalStore(FakeClock()), clock=FakeClock()) as server,
        aiohttp.ClientSession() as http,
    ):
        url = server.url + "/v1/state"
        for method, params in (("GET", {}), ("GET", {"name": ""}), ("DELETE", {}), ("PUT", {"ttl": "5"})):
            async with http.request(method, url, params=params) as response:
                assert response.status == 400 and "name" in (await response.json())["error"]
        async with http.get(url + "?name=a&name=b") as response:
            assert response.status == 400 and "name" in (await response.json())["error"]
        for ttl in ("", "soon", "nan", "inf", "-inf"):
            async with http.put(url, params={"name": "n", "ttl": ttl}, data=b"v") as response:
                assert response.status == 400 and "ttl" in (await response.json())["error"], ttl
        async with http.get(url, params={"name": "n"}) as response:
            assert response.status == 404 and (await response.json()) == {"error": "no such state"}


async def test_state_values_expire_by_the_clock_and_outlive_a_restart() -> None:
    clock = FakeClock()
    server = StoreServer(LocalStore(clock), clock=clock, max_body=17 * 1024 * 1024)
    await server.start()
    big = bytes(range(256)) * (16 * 4096)  # 16 MiB: the gateway's default server.state.max_bytes
    try:
        async with aiohttp.ClientSession() as http:
            url = server.url + "/v1/state"
            async with http.put(url, params={"name": "big", "ttl": "60"}, data=io.BytesIO(big)) as response:
                assert response.status == 204
            await server.stop()
            await server.start()
            async with http.get(url, params={"name": "big"}) as response:
                assert response.status == 200 and response.content_type == "application/octet-stream"
                assert await response.read() == big
            async with http.put(
                url, params={"name": "too-big", "ttl": "60"}, data=io.BytesIO(big + b"x" * (2**20 + 1))
            ) as response:
                assert response.status == 413
            clock.advance(60)
            async with http.get(url, params={"name": "big"}) as response:
                assert response.status == 404
            async with http.delete(url, params={"name": "big"}) as response:
                assert response.status == 200 and await response.json() == {"deleted": False}
    finally:
        await server.stop()


class StatefulStore(LocalStore):
    """A backend that keeps state values itself."""

    def __init__(self) -> None:
        super().__init__(FakeClock())
        self.values: dict[str, bytes] = {}

    async def get_state(self, name: str) -> bytes | None:
        return self.values.get(name)

    async def put_state(self, name: str, value: bytes, ttl: float) -> None:
        self.values[name] = value

    async def delete_state(self, name: str) -> bool:
        return self.values.pop(name, None) is not None


async def test_a_backend_that_keeps_state_values_keeps_them() -> None:
    backend = StatefulStore()
    async with StoreServer(backend) as server, aiohttp.ClientSession() as http:
        assert server.state is backend
        async with http.put(
            server.url + "/v1/state", params={"name": "a/b", "ttl": "1"}, data=b"v"
        ) as response:
            assert response.status == 204
    assert backend.values == {"a/b": b"v"}
    assert isinstance(StoreServer(LocalStore()).state, StateValues)
