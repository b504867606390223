"""The http store against the reference StoreServer on loopback: protocol, auth, outages, resync."""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import time
from collections.abc import AsyncIterator, Iterator

import aiohttp
import msgspec
import pytest
from aiohttp import web
from loguru import logger
from truckllm_store_http import HttpStore, _Batch

from truckllm._internal.config.loader import decode_options
from truckllm._internal.localstate import LocalState, StoreUnavailable
from truckllm._internal.secrets import Secret
from truckllm._internal.store import (
    Admission,
    BudgetCheck,
    CooldownMark,
    Decision,
    RateCheck,
    Settlement,
    UsageQuery,
    UsageReport,
    UsageRow,
)
from truckllm_testing.store_conformance import FakeClock, StoreConformance, StoreHarness, make_records
from truckllm_testing.store_server import LocalStore, StoreServer

TOKEN = "s3cret-token"


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    """Warning and error messages logged while the test runs."""
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(m.record["message"]), level="WARNING", format="{message}")
    yield messages
    logger.remove(sink)


@pytest.fixture
async def server() -> AsyncIterator[StoreServer]:
    """A reference server over a LocalState-backed store, with a token."""
    server = StoreServer(LocalStore(FakeClock()), token=TOKEN)
    await server.start()
    yield server
    await server.stop()


async def _store(url: str, token: str = TOKEN, **options: object) -> HttpStore:
    store = HttpStore(HttpStore.Options(url=url, token=Secret(token), **options))  # type: ignore[arg-type]
    await store.start()
    return store


class TestHttpStoreConformance(StoreConformance):
    @pytest.fixture
    async def store_harness(self) -> AsyncIterator[StoreHarness]:
        clock = FakeClock()
        backend = LocalStore(clock)
        server = StoreServer(backend, token=TOKEN, clock=clock)
        await server.start()

        async def reopen() -> HttpStore:
            store = HttpStore(
                HttpStore.Options(url=server.url, token=Secret(TOKEN), flush_interval=3600, timeout=1.0),
                clock=clock,
            )
            await store.start()
            return store

        async def lose_data() -> None:  # the service restarted without its data
            backend.state = LocalState(clock)

        harness = StoreHarness(await reopen(), clock=clock, reopen=reopen, lose_data=lose_data)
        yield harness
        await harness.store.close()
        await server.stop()


async def test_admit_is_one_request(server: StoreServer) -> None:
    store = await _store(server.url)
    try:
        before = server.requests
        admission = Admission(
            request_id="r",
            rates=(RateCheck(key="rpm", rate=3),),
            budgets=(BudgetCheck(key="usd", limit=1.0),),
        )
        decision = await store.admit(admission)
        assert decision.allowed and decision.remaining == {"rpm": 2, "usd": 1.0}
        assert server.requests - before == 1
        assert (await store.admit(Admission(request_id="empty"))).allowed
        assert server.requests - before == 1  # nothing to check: no request at all
    finally:
        await store.close()


async def test_wire_format_is_the_store_structs(server: StoreServer) -> None:
    headers = {"authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        body = {"request_id": "r1", "rates": [{"key": "rpm", "rate": 1}], "budgets": []}
        async with http.post(server.url + "/v1/admit", json=body) as response:
            assert response.status == 200
            assert await response.json() == {
                "allowed": True,
                "denied_by": None,
                "kind": None,
                "retry_after": None,
                "remaining": {"rpm": 0.0},
                "degraded": False,
            }
        async with http.post(server.url + "/v1/admit", json=body) as response:
            denied = await response.json()
            assert (denied["allowed"], denied["kind"], denied["denied_by"]) == (False, "rate", "rpm")
            assert denied["retry_after"] == pytest.approx(60.0)
        settle = [{"request_id": "r1", "rate_adjust": {"rpm": -1}, "budget_adjust": {"usd": ["month", 0.25]}}]
        async with http.post(
            server.url + "/v1/settle", json=settle, headers={"idempotency-key": "b1"}
        ) as response:
            assert response.status == 204
        record = msgspec.to_builtins(make_records(n=1)[0])
        async with http.post(server.url + "/v1/usage/records", json=[record]) as response:
            assert response.status == 204
        async with http.get(server.url + "/v1/usage", params={"group_by": "key,day"}) as response:
            report = await response.json()
            assert report["total"]["requests"] == 1 and len(report["rows"]) == 1
            assert set(report["rows"][0]["group"]) == {"key", "day"}
        mark = {"provider": "openai", "key": "k1", "until": time.time() + 60, "reason": "429"}
        async with http.post(server.url + "/v1/cooldowns", json=[mark]) as response:
            assert response.status == 204
        async with http.get(server.url + "/v1/cooldowns") as response:
            assert [m["key"] for m in await response.json()] == ["k1"]
        async with http.get(server.url + "/v1/ready") as response:
            assert response.status == 200 and (await response.json())["ok"] is True
        async with http.post(server.url + "/v1/admit", data=b"{not json") as response:
            assert response.status == 400 and "error" in await response.json()
        async with http.get(server.url + "/v1/usage", params={"group_by": "colour"}) as response:
            assert response.status == 400
        async with http.get(server.url + "/v1/ready", headers={"authorization": "Bearer wrong"}) as response:
            assert response.status == 401


async def test_idempotency_key_applies_a_batch_once(server: StoreServer) -> None:
    headers = {"authorization": f"Bearer {TOKEN}", "idempotency-key": "batch-1"}
    records = msgspec.json.encode(make_records(n=3))
    async with aiohttp.ClientSession(headers=headers) as http:
        for _ in range(2):
            async with http.post(server.url + "/v1/usage/records", data=records) as response:
                assert response.status == 204
    assert (await server.store.usage(UsageQuery())).total.requests == 3


async def test_wrong_token_is_an_outage_not_a_crash(server: StoreServer) -> None:
    store = await _store(server.url, token="wrong")
    try:
        decision = await store.admit(Admission(request_id="r", rates=(RateCheck(key="k", rate=1),)))
        assert decision.allowed and decision.degraded
        details = await store.ready()
        assert details["ok"] is False and "401" in details["error"] and "wrong" not in repr(details)
    finally:
        await store.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_unreachable_service_degrades(warnings: list[str]) -> None:
    store = await _store(f"http://127.0.0.1:{_closed_port()}", flush_interval=3600)
    try:
        started = time.perf_counter()
        rpm = RateCheck(key="rpm", rate=1, period=60.0)
        decisions = [await store.admit(Admission(request_id=f"r{i}", rates=(rpm,))) for i in range(2)]
        assert time.perf_counter() - started < 0.1 * 2
        assert [(d.allowed, d.degraded) for d in decisions] == [(True, True), (False, True)]
        budget = BudgetCheck(key="usd", limit=10.0, amount=0.1)
        denied = await store.admit(Admission(request_id="b", budgets=(budget,)))
        assert (denied.allowed, denied.kind, denied.degraded) == (False, "budget", True)
        details = await store.ready()
        assert details["ok"] is False and details["service"] == "unreachable"
        with pytest.raises(StoreUnavailable):
            await store.usage(UsageQuery())
        await store.settle(Settlement(request_id="r0", rate_adjust={"rpm": -1}))  # admitted locally
        assert (await store.admit(Admission(request_id="r3", rates=(rpm,)))).allowed
    finally:
        await store.close()
    assert sum("writes are kept" in m for m in warnings) == 1


async def test_outage_keeps_batches_and_resyncs(warnings: list[str]) -> None:
    backend = LocalStore(FakeClock())
    server = StoreServer(backend, token=TOKEN)
    await server.start()
    store = await _store(server.url, flush_interval=0.05, io_timeout=0.5)
    try:
        budget = BudgetCheck(key="usd", limit=10.0, period="total", amount=2.0)
        assert (await store.admit(Admission(request_id="r1", budgets=(budget,)))).allowed
        await server.stop()
        await store.settle(Settlement(request_id="r1", budget_adjust={"usd": ("total", 3.0)}))  # cost 5
        for record in make_records(n=7):
            store.store_usage(record)
        await store.mark_cooldown(CooldownMark(provider="openai", key="k9", until=time.time() + 60))
        decision = await store.admit(Admission(request_id="r2", rates=(RateCheck(key="k", rate=5),)))
        assert decision.allowed and decision.degraded
        await asyncio.sleep(0.2)
        assert store.pending == 9

        await server.start()  # the same port
        for _ in range(50):
            await asyncio.sleep(0.05)
            if not store.outage.down and not store.pending:
                break
        assert (await store.ready())["ok"] is True
        assert (await backend.usage(UsageQuery())).total.requests == 7
        assert [m.key for m in await backend.cooldowns()] == ["k9"]
        assert not (
            await backend.admit(
                Admission(
                    request_id="x", budgets=(BudgetCheck(key="usd", limit=10.0, period="total", amount=5.5),)
                )
            )
        ).allowed
        assert (
            await backend.admit(
                Admission(
                    request_id="y", budgets=(BudgetCheck(key="usd", limit=10.0, period="total", amount=5.0),)
                )
            )
        ).allowed
    finally:
        await store.close()
        await server.stop()
    assert sum("writes are kept" in m for m in warnings) == 1


async def test_options_decode_from_config() -> None:
    options = decode_options(
        {"url": "https://store.internal", "token": "abc", "timeout": "80ms", "flush_interval": "2s"},
        HttpStore.Options,
    )
    assert (
        isinstance(options.token, Secret) and options.token.reveal() == "abc" and "abc" not in repr(options)
    )
    assert (options.timeout, options.io_timeout, options.flush_interval, options.max_pending) == (
        0.08,
        5.0,
        2.0,
        100_000,
    )
    with pytest.raises(Exception, match="url"):
        decode_options({}, HttpStore.Options)


async def test_pending_records_are_capped(warnings: list[str]) -> None:
    store = HttpStore(HttpStore.Options(url="http://127.0.0.1:9", max_pending=5))
    for record in make_records(n=8):
        store.store_usage(record)
    assert store.pending == 5 and store.dropped == 3
    assert any("dropped" in m for m in warnings)


async def test_a_refused_batch_is_dropped_not_retried_forever(
    server: StoreServer, warnings: list[str]
) -> None:
    store = await _store(server.url, flush_interval=3600)
    try:
        store._queue.append(_Batch(path="/v1/settle", body=b'{"not": "a list"}', items=1, key="bad"))
        store.store_usage(make_records(n=1)[0])
        await store.flush()
        assert store.pending == 0 and not store.outage.down
        assert (await server.store.usage(UsageQuery())).total.requests == 1
        assert any("refused 1 items" in m for m in warnings)
    finally:
        await store.close()


class HostileServer(StoreServer):
    """A store service whose numbers are out of every range."""

    async def admit(self, request: web.Request) -> web.Response:
        admission = msgspec.json.decode(await request.read(), type=Admission)
        keys = [c.key for c in (*admission.rates, *admission.budgets)]
        remaining = dict.fromkeys(keys, -5.0) | {keys[-1]: 1e300, "not-a-check": 7.0}
        decision = Decision(
            allowed=False, denied_by=keys[0], kind="rate", retry_after=1e12, remaining=remaining
        )
        return web.Response(body=msgspec.json.encode(decision), content_type="application/json")

    async def cooldowns(self, request: web.Request) -> web.Response:
        body = (
            b'[{"provider": "p", "key": "k", "until": 1e999}, {"provider": "p", "key": "ok", "until": 5.0}]'
        )
        return web.Response(body=body, content_type="application/json")

    async def usage(self, request: web.Request) -> web.Response:
        row = UsageRow(
            requests=-3, errors=-1, prompt_tokens=-1_000_000, cost_usd=-1000.0, completion_tokens=4
        )
        report = UsageReport(rows=[row], total=row)
        return web.Response(body=msgspec.json.encode(report), content_type="application/json")


async def test_numbers_from_the_service_are_clamped() -> None:
    """A decision's remaining lies in [0, limit or burst], retry_after in [0, longest period]; a
    cooldown list with an until out of range is not used; usage totals below 0 count as 0."""
    async with HostileServer(LocalStore(FakeClock()), token=TOKEN) as server:
        store = await _store(server.url, flush_interval=3600, timeout=1.0)
        try:
            rate = RateCheck(key="rpm", rate=10, period=60.0, burst=20)
            budget = BudgetCheck(key="usd", limit=10.0, period="total", amount=1.0)
            decision = await store.admit(Admission(request_id="r", rates=(rate,), budgets=(budget,)))
            assert not decision.allowed and decision.retry_after == 60.0
            assert decision.remaining == {"rpm": 0.0, "usd": 10.0}
            # an until out of range refuses the whole answer: this process's own marks are used
            store.state.mark_cooldown(CooldownMark(provider="p", key="mine", until=time.time() + 60))
            assert [m.key for m in await store.cooldowns()] == ["mine"]
            report = await store.usage(UsageQuery())
            for row in (*report.rows, report.total):
                assert (row.requests, row.errors, row.prompt_tokens, row.cost_usd) == (0, 0, 0, 0.0)
                assert row.completion_tokens == 4
        finally:
            await store.close()


async def test_a_correction_that_is_not_a_number_does_not_lose_the_batch(server: StoreServer) -> None:
    store = await _store(server.url, flush_interval=3600, timeout=1.0)
    try:
        for rid in ("a", "b"):
            usd = BudgetCheck(key="usd", limit=10.0, period="total", amount=3.0)
            assert (await store.admit(Admission(request_id=rid, budgets=(usd,)))).allowed
        await store.settle(Settlement(request_id="a", budget_adjust={"usd": ("total", math.nan)}))  # cost 3
        await store.settle(Settlement(request_id="b", budget_adjust={"usd": ("total", -3.0)}))  # cost 0
        await store.flush()
        assert store.pending == 0
        probe = BudgetCheck(key="usd", limit=10.0, period="total", amount=0.0)
        decision = await server.store.admit(Admission(request_id="p", budgets=(probe,)))
        assert decision.remaining["usd"] == pytest.approx(7.0)  # both applied: 3 spent, nothing reserved
    finally:
        await store.close()


async def test_a_clear_while_the_service_is_down_is_sent_in_order() -> None:
    """Marks queued before a clear are dropped by it; a mark queued after it is kept."""
    backend = LocalStore(FakeClock())
    server = StoreServer(backend, token=TOKEN)
    await server.start()
    store = await _store(server.url, flush_interval=3600, io_timeout=0.5)
    try:
        now = time.time()
        await store.mark_cooldown(CooldownMark(provider="p", key="sent", until=now + 600))
        await server.stop()
        await store.mark_cooldown(CooldownMark(provider="p", key="a", until=now + 600))  # queued
        with contextlib.suppress(Exception):
            await store.flush(probe=True)  # fails: the outage starts, the mark stays queued
        assert store.outage.down
        await store.clear_cooldown("p", "a")
        await store.clear_cooldown("p", "sent")
        await store.mark_cooldown(CooldownMark(provider="p", key="sent", until=now + 30, reason="after"))
        assert {m.key for m in await store.cooldowns()} == {"sent"}  # this process's view meanwhile
        await server.start()
        await store.flush(probe=True)
        marks = {m.key: m for m in await backend.cooldowns()}
        assert set(marks) == {"sent"} and marks["sent"].reason == "after"
        assert marks["sent"].until == pytest.approx(now + 30)
        # a clear queued in an outage that has just ended (not flushed yet) still goes before a new mark
        await server.stop()
        await store.mark_cooldown(CooldownMark(provider="p", key="x", until=now + 5))  # the outage starts
        assert store.outage.down
        await store.clear_cooldown("p", "sent")
        await server.start()
        assert (await store.ready())["ok"] is True and not store.outage.down
        await store.mark_cooldown(CooldownMark(provider="p", key="sent", until=now + 20, reason="newest"))
        await store.flush()
        marks = {m.key: m for m in await backend.cooldowns()}
        assert marks["sent"].reason == "newest"
    finally:
        await store.close()
        await server.stop()


async def _ready(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def test_state_names_are_percent_encoded_on_the_wire() -> None:
    """Every character of a name but the unreserved ones reaches the service percent-encoded (UTF-8),
    whatever it means in a URL; the service decodes the exact name; the value is the raw body."""
    seen: list[tuple[str, str, str, bytes]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(
            (request.method, request.raw_path, request.headers.get("content-type", ""), await request.read())
        )
        if request.method == "DELETE":
            return web.json_response({"deleted": True})
        return web.Response(status=204 if request.method == "PUT" else 200, body=b"v")

    app = web.Application()
    app.router.add_route("*", "/v1/state", record)
    app.router.add_get("/v1/ready", _ready)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    store = await _store(f"http://127.0.0.1:{port}/", flush_interval=3600)
    name = "responses:team a/../x?y=1&z=2#f+%2F{é}"
    try:
        await store.put_state(name, b"\x00\xff", 1e20)
        assert await store.get_state(name) == b"v"
        assert await store.delete_state(name) is True
    finally:
        await store.close()
        await runner.cleanup()
    encoded = "responses%3Ateam%20a%2F..%2Fx%3Fy%3D1%26z%3D2%23f%2B%252F%7B%C3%A9%7D"
    assert [(m, p, c) for m, p, c, _ in seen] == [
        ("PUT", f"/v1/state?name={encoded}&ttl=1e%2B20", "application/octet-stream"),
        ("GET", f"/v1/state?name={encoded}", ""),
        ("DELETE", f"/v1/state?name={encoded}", ""),
    ]
    assert seen[0][3] == b"\x00\xff"


async def test_state_ttl_is_sent_at_least_1ms_and_a_bad_ttl_is_refused(server: StoreServer) -> None:
    store = await _store(server.url, flush_interval=3600)
    try:
        with pytest.raises(ValueError, match="ttl"):
            await store.put_state("n", b"v", math.nan)
        assert str(store.state_url("n", 0.001)).endswith("?name=n&ttl=0.001")
        await store.put_state("n", b"v", -3)  # kept 1 ms
        assert server.requests >= 2
    finally:
        await store.close()


async def test_state_without_the_service_raises_at_once() -> None:
    store = await _store(f"http://127.0.0.1:{_closed_port()}", flush_interval=3600)
    try:
        started = time.perf_counter()
        for call in (store.get_state("n"), store.put_state("n", b"v", 60), store.delete_state("n")):
            with pytest.raises(StoreUnavailable, match="unreachable"):
                await call
        assert time.perf_counter() - started < 0.05
    finally:
        await store.close()


async def test_a_service_without_state_endpoints() -> None:
    """An older service (no ``/v1/state``): nothing is ever stored, so a read finds nothing (404) and
    a put fails (``StoreUnavailable``), without starting an outage of the other calls."""
    app = web.Application()
    app.router.add_get("/v1/ready", _ready)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    store = await _store(f"http://127.0.0.1:{port}", flush_interval=3600)
    try:
        assert await store.get_state("n") is None
        with pytest.raises(StoreUnavailable, match="404"):
            await store.put_state("n", b"v", 60)
        with pytest.raises(StoreUnavailable, match="404"):
            await store.delete_state("n")
        assert not store.outage.down
    finally:
        await store.close()
        await runner.cleanup()
