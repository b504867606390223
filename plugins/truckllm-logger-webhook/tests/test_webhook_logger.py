"""The webhook logger against real aiohttp servers on loopback."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
import pytest
from aiohttp import web
from truckllm_logger_webhook import (
    ALERT_ID_HEADER,
    BATCH_ID_HEADER,
    MAX_ALERTS,
    PAYLOAD_HEADER,
    Backoff,
    Filter,
    WebhookLogger,
)

from truckllm._internal.config.durations import Duration
from truckllm._internal.config.loader import decode_options
from truckllm._internal.secrets import Secret
from truckllm.types import Alert, RequestRecord, Usage

Handler = Callable[["Receiver", web.Request, int], Awaitable[web.StreamResponse]]


class Receiver:
    """A webhook endpoint: keeps accepted batches, dedupes on the batch id, fails as told."""

    def __init__(self, behaviour: Handler | None = None) -> None:
        self.behaviour = behaviour
        self.calls: list[tuple[str, list[str], dict[str, str]]] = []
        self.batches: list[tuple[str, list[dict[str, Any]]]] = []
        self.seen: set[str] = set()
        self.alerts: list[dict[str, Any]] = []
        self.changed = asyncio.Event()
        self.url = ""

    def store(self, batch_id: str, rows: list[dict[str, Any]]) -> None:
        """Keep a batch unless its id was seen (the receiver side of at-least-once)."""
        if batch_id not in self.seen:
            self.seen.add(batch_id)
            self.batches.append((batch_id, rows))

    @property
    def records(self) -> list[str]:
        """Request ids of every kept record, in order."""
        return [row["request_id"] for _, rows in self.batches for row in rows]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Record the call, then answer as ``behaviour`` says (default: keep and 200); an alert
        is kept in ``alerts`` (once per alert id)."""
        headers = {k.lower(): v for k, v in request.headers.items()}
        batch_id = request.headers[BATCH_ID_HEADER]
        if headers[PAYLOAD_HEADER] == "alert":
            body: dict[str, Any] = await request.json()
            self.calls.append((batch_id, [headers[ALERT_ID_HEADER]], headers))
            try:
                if self.behaviour is not None:
                    return await self.behaviour(self, request, len(self.calls))
                if headers[ALERT_ID_HEADER] not in self.seen:
                    self.seen.add(headers[ALERT_ID_HEADER])
                    self.alerts.append(body)
                return web.Response(status=204)
            finally:
                self.changed.set()
        rows: list[dict[str, Any]] = await request.json()
        self.calls.append((batch_id, [r["request_id"] for r in rows], headers))
        try:
            if self.behaviour is not None:
                return await self.behaviour(self, request, len(self.calls))
            self.store(batch_id, rows)
            return web.Response(status=204)
        finally:
            self.changed.set()

    async def wait_for(self, condition: Callable[[], bool], limit: float = 5.0) -> None:
        """Wait (event-driven) until ``condition()`` holds."""
        async with asyncio.timeout(limit):
            while not condition():
                self.changed.clear()
                await self.changed.wait()


async def serve(receiver: Receiver) -> AsyncIterator[Receiver]:
    """Run ``receiver`` on a loopback port for the test."""
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    receiver.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield receiver
    finally:
        await runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A well-behaved receiver; tests may set ``behaviour``."""
    async for r in serve(Receiver()):
        yield r


def make_record(n: int, **changes: Any) -> RequestRecord:
    """Record number ``n``: a success unless ``changes`` say otherwise."""
    fields: dict[str, Any] = {
        "request_id": f"req-{n}",
        "started_at": 1748779200.0 + n,
        "endpoint": "chat",
        "dialect": "openai",
        "alias": "gpt-4o",
        "gateway_key": "team-a",
        "stream": False,
        "status": 200,
        "latency_ms": 50.0,
        "upstream_ms": 45.0,
        "provider": "openai",
        "provider_type": "openai",
        "deployment": "gpt-4o#0",
        "model": "gpt-4o",
        "provider_key": "oa-main",
        "usage": Usage(prompt_tokens=1, completion_tokens=2, total_tokens=3),
    }
    fields.update(changes)
    return RequestRecord(**fields)


def options(url: str, **changes: Any) -> WebhookLogger.Options:
    """Fast options for tests."""
    values: dict[str, Any] = {
        "url": url,
        "flush_interval": "5ms",
        "backoff": {"base": "1ms", "max": "2ms"},
        "shutdown_timeout": "2s",
    }
    values.update(changes)
    result: WebhookLogger.Options = decode_options(values, WebhookLogger.Options)
    return result


async def flaky(receiver: Receiver, request: web.Request, call: int) -> web.StreamResponse:
    """Fails half the calls: a lost ack (kept, then 500), a 429, a dropped connection."""
    rows: list[dict[str, Any]] = await request.json()
    batch_id = request.headers[BATCH_ID_HEADER]
    if call % 6 == 1:
        receiver.store(batch_id, rows)
        return web.Response(status=500, text="ack lost")
    if call % 6 == 3:
        return web.Response(status=429, headers={"retry-after": "0"})
    if call % 6 == 5:
        assert request.transport is not None
        request.transport.close()
        return web.Response(status=200)
    receiver.store(batch_id, rows)
    return web.Response(status=200)


async def test_flaky_receiver_gets_every_record_once_in_order(receiver: Receiver) -> None:
    receiver.behaviour = flaky
    webhook = WebhookLogger(options(receiver.url, batch_size=10))
    await webhook.startup(app=None)
    records = [make_record(n) for n in range(95)]
    for record in records[:40]:
        webhook.emit_log(record)
    await receiver.wait_for(lambda: len(receiver.records) >= 40)
    for record in records[40:]:
        webhook.emit_log(record)
    await receiver.wait_for(lambda: len(receiver.records) >= 95)
    await webhook.shutdown(app=None)

    assert receiver.records == [r.request_id for r in records]
    metrics = webhook.metrics
    assert (metrics["queue"], metrics["dropped"], metrics["sent"], metrics["failed_batches"]) == (0, 0, 95, 0)
    assert metrics["retries"] == len(receiver.calls) // 2 >= 5
    failures = [i for i, _ in enumerate(receiver.calls) if (i + 1) % 2 == 1]
    for i in failures:  # every failed call was retried with the same id and the same records
        assert receiver.calls[i + 1][:2] == receiver.calls[i][:2]
        assert receiver.calls[i + 1][2]["x-truckllm-attempt"] == "2"
    assert len({batch_id for batch_id, _ in receiver.batches}) == len(receiver.batches)


async def test_full_queue_drops_and_counts_then_shutdown_flushes(receiver: Receiver) -> None:
    webhook = WebhookLogger(options(receiver.url, max_queue=5, flush_interval="1h"))
    for n in range(8):
        webhook.emit_log(make_record(n))
    assert webhook.metrics["queue"] == 5
    assert webhook.metrics["dropped"] == 3
    await webhook.startup(app=None)
    started = time.monotonic()
    await webhook.shutdown(app=None)
    assert time.monotonic() - started < 1.0
    assert receiver.records == [f"req-{n}" for n in range(5)]
    assert len(receiver.calls) == 1
    assert webhook.metrics == {
        "queue": 0,
        "dropped": 3,
        "sent": 5,
        "failed_batches": 0,
        "retries": 0,
        "alerts_sent": 0,
        "alerts_dropped": 0,
    }
    webhook.emit_log(make_record(9))  # after shutdown: dropped, counted
    assert webhook.metrics["dropped"] == 4


async def test_batches_fill_up_to_batch_size(receiver: Receiver) -> None:
    webhook = WebhookLogger(options(receiver.url, batch_size=4, flush_interval="1h"))
    await webhook.startup(app=None)
    for n in range(10):
        webhook.emit_log(make_record(n))
    await receiver.wait_for(lambda: len(receiver.records) >= 8)
    assert [len(rows) for _, rows in receiver.batches] == [4, 4]
    await webhook.shutdown(app=None)
    assert [len(rows) for _, rows in receiver.batches] == [4, 4, 2]
    assert receiver.records == [f"req-{n}" for n in range(10)]


async def test_shutdown_is_bounded_when_the_receiver_is_down(receiver: Receiver) -> None:
    async def down(receiver: Receiver, request: web.Request, call: int) -> web.StreamResponse:
        return web.Response(status=503)

    receiver.behaviour = down
    webhook = WebhookLogger(
        options(
            receiver.url, max_retries=1000, backoff={"base": "20ms", "max": "20ms"}, shutdown_timeout="150ms"
        )
    )
    await webhook.startup(app=None)
    for n in range(3):
        webhook.emit_log(make_record(n))
    await receiver.wait_for(lambda: len(receiver.calls) >= 2)
    webhook.emit_log(make_record(3))
    started = time.monotonic()
    await webhook.shutdown(app=None)
    assert time.monotonic() - started < 1.0
    assert webhook.metrics["sent"] == 0
    assert webhook.metrics["dropped"] == 4
    assert webhook.metrics["queue"] == 0


async def test_a_refused_batch_is_given_up_and_the_next_is_sent(receiver: Receiver) -> None:
    async def refuse_first(receiver: Receiver, request: web.Request, call: int) -> web.StreamResponse:
        rows: list[dict[str, Any]] = await request.json()
        if call == 1:
            return web.Response(status=400, text="bad")
        receiver.store(request.headers[BATCH_ID_HEADER], rows)
        return web.Response(status=200)

    receiver.behaviour = refuse_first
    webhook = WebhookLogger(options(receiver.url, batch_size=2, flush_interval="1h"))
    await webhook.startup(app=None)
    for n in range(4):
        webhook.emit_log(make_record(n))
    await receiver.wait_for(lambda: len(receiver.records) >= 2)
    await webhook.shutdown(app=None)
    assert receiver.records == ["req-2", "req-3"]
    assert webhook.metrics == {
        "queue": 0,
        "dropped": 0,
        "sent": 2,
        "failed_batches": 1,
        "retries": 0,
        "alerts_sent": 0,
        "alerts_dropped": 0,
    }


async def test_retries_run_out(receiver: Receiver) -> None:
    async def broken(receiver: Receiver, request: web.Request, call: int) -> web.StreamResponse:
        return web.Response(status=500)

    receiver.behaviour = broken
    webhook = WebhookLogger(options(receiver.url, max_retries=2))
    await webhook.startup(app=None)
    webhook.emit_log(make_record(0))
    await receiver.wait_for(lambda: len(receiver.calls) >= 3)
    await webhook.shutdown(app=None)
    assert len(receiver.calls) == 3
    assert len({batch_id for batch_id, _, _ in receiver.calls}) == 1
    assert webhook.metrics == {
        "queue": 0,
        "dropped": 0,
        "sent": 0,
        "failed_batches": 1,
        "retries": 2,
        "alerts_sent": 0,
        "alerts_dropped": 0,
    }


async def test_unreachable_endpoint_is_retried_then_given_up() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    webhook = WebhookLogger(options(f"http://127.0.0.1:{port}/hook", max_retries=1))
    await webhook.startup(app=None)
    webhook.emit_log(make_record(0))
    await webhook.shutdown(app=None)
    assert webhook.metrics == {
        "queue": 0,
        "dropped": 0,
        "sent": 0,
        "failed_batches": 1,
        "retries": 1,
        "alerts_sent": 0,
        "alerts_dropped": 0,
    }


async def test_retry_after_is_honoured_and_capped(receiver: Receiver) -> None:
    waits: list[float] = []

    async def no_wait(seconds: float) -> None:
        waits.append(seconds)

    async def busy(receiver: Receiver, request: web.Request, call: int) -> web.StreamResponse:
        rows: list[dict[str, Any]] = await request.json()
        if call == 1:
            return web.Response(status=429, headers={"retry-after": "3"})
        if call == 2:
            return web.Response(status=503, headers={"retry-after": "120"})
        if call == 3:
            return web.Response(status=502)
        receiver.store(request.headers[BATCH_ID_HEADER], rows)
        return web.Response(status=200)

    receiver.behaviour = busy
    webhook = WebhookLogger(options(receiver.url, backoff={"base": "1s", "max": "8s"}), sleep=no_wait)
    await webhook.startup(app=None)
    webhook.emit_log(make_record(0))
    await receiver.wait_for(lambda: len(receiver.records) == 1)
    await webhook.shutdown(app=None)
    assert waits[:2] == [3.0, 8.0]
    assert 2.0 <= waits[2] <= 4.0
    assert len(waits) == 3


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    webhook = WebhookLogger(
        WebhookLogger.Options(url="http://127.0.0.1/", backoff=Backoff(base=Duration(1), max=Duration(8)))
    )
    for retry, top in ((0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (10, 8.0)):
        for _ in range(20):
            assert top / 2 <= webhook._backoff(retry, None) <= top


async def test_token_headers_and_body(receiver: Receiver) -> None:
    webhook = WebhookLogger(
        options(receiver.url, token="s3cret-token", headers={"x-api-key": "other-secret"})
    )
    assert "s3cret" not in repr(webhook.options)
    assert "other-secret" not in repr(webhook.options)
    await webhook.startup(app=None)
    webhook.emit_log(make_record(1, attempts=(), fallbacks=("claude",)))
    await webhook.shutdown(app=None)
    ((_, ids, headers),) = receiver.calls
    assert ids == ["req-1"]
    assert headers["authorization"] == "Bearer s3cret-token"
    assert headers["x-api-key"] == "other-secret"
    assert headers["content-type"] == "application/json"
    assert headers["x-truckllm-batch-size"] == "1"
    assert "x-truckllm-attempt" not in headers
    row = receiver.batches[0][1][0]
    assert row["fallbacks"] == ["claude"]
    assert row["prompt_tokens"] == 1
    assert row["overhead_ms"] == 5.0
    assert row["time"] == "2025-06-01T12:00:01.000Z"


async def test_filter(receiver: Receiver) -> None:
    webhook = WebhookLogger(options(receiver.url, filter={"status": "errors", "aliases": ["gpt-4o"]}))
    await webhook.startup(app=None)
    webhook.emit_log(make_record(0))
    webhook.emit_log(make_record(1, status=502))
    webhook.emit_log(make_record(2, status=429, alias="other-model"))
    webhook.emit_log(make_record(3, status=401))
    await webhook.shutdown(app=None)
    assert receiver.records == ["req-1", "req-3"]
    high = Filter(min_status=500)
    assert [high.accepts(make_record(0, status=s)) for s in (200, 499, 500)] == [False, False, True]
    ok = Filter(status="success")
    assert [ok.accepts(make_record(0, status=s)) for s in (200, 399, 400)] == [True, True, False]


def test_options_decode_strictly() -> None:
    decoded = decode_options(
        {"url": "https://logs.example.com/in", "token": "t", "flush_interval": "250ms", "timeout": 2},
        WebhookLogger.Options,
    )
    assert isinstance(decoded.token, Secret)
    assert decoded.flush_interval == 0.25
    assert decoded.timeout == 2.0
    assert (decoded.batch_size, decoded.max_queue, decoded.max_retries) == (100, 10000, 5)
    assert (decoded.backoff.base, decoded.backoff.max) == (0.5, 30.0)
    for bad in (
        {},
        {"url": "ftp://example.com"},
        {"url": "/relative"},
        {"url": "https://x.example", "batch_size": 0},
        {"url": "https://x.example", "token": "t", "headers": {"Authorization": "Basic x"}},
        {"url": "https://x.example", "filter": {"status": "some"}},
        {"url": "https://x.example", "retries": 3},
    ):
        with pytest.raises(msgspec.ValidationError):
            decode_options(bad, WebhookLogger.Options)


def make_alert(n: int, **changes: Any) -> Alert:
    """Alert number ``n``: a key ejected unless ``changes`` say otherwise."""
    fields: dict[str, Any] = {
        "id": f"key_ejected:openai/oa-main:{n}",
        "kind": "key_ejected",
        "subject": "provider:openai/oa-main",
        "message": "provider key openai/oa-main ejected after 5 consecutive failures (server)",
        "at": 1748779200.0 + n,
    }
    fields.update(changes)
    return Alert(**fields)


async def test_alerts_go_alone_ahead_of_records_with_their_id(receiver: Receiver) -> None:
    webhook = WebhookLogger(options(receiver.url, flush_interval="1h", filter={"status": "errors"}))
    for n in range(3):
        webhook.emit_log(make_record(n, status=500))
    budget = make_alert(
        1,
        id="budget:user:team-a:José:month:2026-12:0.8",
        kind="budget",
        subject="user:team-a:José",
        threshold=0.8,
        period="2026-12",
        spent_usd=8.0,
        limit_usd=10.0,
    )
    webhook.emit_alert(budget)
    webhook.emit_alert(make_alert(2))
    await webhook.startup(app=None)
    await webhook.shutdown(app=None)

    payloads = [headers[PAYLOAD_HEADER] for _, _, headers in receiver.calls]
    assert payloads == ["alert", "alert", "records"]  # alerts first, each alone; the filter spares them
    first = receiver.calls[0][2]
    assert first[ALERT_ID_HEADER] == "budget:user:team-a:Jos%C3%A9:month:2026-12:0.8"
    assert first["x-truckllm-batch-size"] == "1"
    assert receiver.alerts[0] == {
        "type": "alert",
        "alert": {
            "id": budget.id,
            "kind": "budget",
            "subject": "user:team-a:José",
            "message": budget.message,
            "at": budget.at,
            "threshold": 0.8,
            "period": "2026-12",
            "spent_usd": 8.0,
            "limit_usd": 10.0,
        },
    }
    assert receiver.alerts[1]["alert"]["id"] == "key_ejected:openai/oa-main:2"
    assert receiver.records == ["req-0", "req-1", "req-2"]
    assert (webhook.metrics["alerts_sent"], webhook.metrics["sent"]) == (2, 3)


async def test_an_alert_is_retried_with_one_batch_id_derived_from_its_id(receiver: Receiver) -> None:
    receiver.behaviour = flaky_alert
    webhook = WebhookLogger(options(receiver.url))
    other = WebhookLogger(options(receiver.url))  # another replica's logger, the same alert
    await webhook.startup(app=None)
    await other.startup(app=None)
    webhook.emit_alert(make_alert(7))
    await receiver.wait_for(lambda: len(receiver.alerts) == 1)
    other.emit_alert(make_alert(7))
    await receiver.wait_for(lambda: len(receiver.calls) == 3)
    await webhook.shutdown(app=None)
    await other.shutdown(app=None)

    ids = {batch_id for batch_id, _, _ in receiver.calls}
    assert len(ids) == 1  # the try, its retry and the other process's send share one id
    assert receiver.calls[1][2]["x-truckllm-attempt"] == "2"
    assert len(receiver.alerts) == 1
    assert webhook.metrics["retries"] == 1
    assert webhook.metrics["alerts_sent"] == other.metrics["alerts_sent"] == 1


async def flaky_alert(receiver: Receiver, request: web.Request, call: int) -> web.StreamResponse:
    """The first call fails (503); later ones keep the alert once per id."""
    if call == 1:
        return web.Response(status=503)
    alert_id = request.headers[ALERT_ID_HEADER]
    if alert_id not in receiver.seen:
        receiver.seen.add(alert_id)
        receiver.alerts.append(await request.json())
    return web.Response(status=200)


async def test_alerts_false_sends_none_and_a_given_up_alert_is_counted(receiver: Receiver) -> None:
    off = WebhookLogger(options(receiver.url, alerts=False))
    await off.startup(app=None)
    off.emit_alert(make_alert(1))
    await off.shutdown(app=None)
    assert receiver.calls == []

    async def refuse(receiver: Receiver, request: web.Request, call: int) -> web.StreamResponse:
        return web.Response(status=400)

    receiver.behaviour = refuse
    webhook = WebhookLogger(options(receiver.url))
    await webhook.startup(app=None)
    webhook.emit_alert(make_alert(2))
    await receiver.wait_for(lambda: len(receiver.calls) == 1)
    await webhook.shutdown(app=None)
    assert (webhook.alerts_sent, webhook.alerts_dropped, webhook.failed_batches) == (0, 1, 1)


def test_waiting_alerts_are_bounded() -> None:
    webhook = WebhookLogger(options("http://127.0.0.1:9/hook"))
    for n in range(MAX_ALERTS + 3):
        webhook.emit_alert(make_alert(n))
    assert webhook.metrics["alerts_dropped"] == 3
