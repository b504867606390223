"""Alerts (``gateway.alerts``): each id sent once per ``every`` to every ``emit_alert``, by this
process alone without a store or when the store fails; key-health alerts where the kernel learns
of the event (an ejection, a provider's 401, an operator's disable and enable, a credential that
fails to refresh), never carrying a secret; drained before the loggers close.

The replicas' contract (one alert across processes sharing Redis) is in
``tests/stores/test_alerts_replicas.py``.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx2 as httpx
import pytest
from loguru import logger

from truckllm import hookimpl
from truckllm._internal.gateway import Gateway
from truckllm._internal.store import Admission, Decision
from truckllm.errors import CredentialError
from truckllm.types import Alert, Provider, ProviderSpec
from truckllm_testing.fakes import FakeOpenAI
from truckllm_testing.fakes.base import Fault
from truckllm_testing.server import GatewayServer

ADMIN = {"authorization": "Bearer admin-token"}
KEYS = ("sk-test-aaaaaaaaaaaaaaaaaaaa", "sk-test-bbbbbbbbbbbbbbbbbbbb")
REFUSED = "sk-test-refused-cccccccccccc"  # a key the fake does not know: 401
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
NOW = 1_796_601_600.0  # 2026-12-07T00:00:00Z, the wall clock of the gateways under test
WINDOW = math.floor(NOW / 300)  # the default alerts.key_health_interval


class Collector:
    """A logger-like plugin keeping every alert it is sent (thread-safe: the gateway runs in its
    own thread)."""

    __name__ = "alert-collector"

    def __init__(self) -> None:
        self.alerts: list[Alert] = []
        self.events: list[str] = []
        self._changed = threading.Condition()

    @hookimpl
    def emit_alert(self, alert: Alert) -> None:
        with self._changed:
            self.alerts.append(alert)
            self.events.append(f"alert {alert.id}")
            self._changed.notify_all()

    def wait_for(self, count: int, limit: float = 10.0) -> list[Alert]:
        """Wait (on a condition, not a sleep) until ``count`` alerts arrived; return them."""
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.alerts) >= count, limit), self.alerts
            return list(self.alerts)


def config(base_url: str, *, keys: tuple[str, ...] = KEYS[:1], extra: str = "") -> str:
    key_lines = "\n".join(f"      - {{name: k{i}, value: {value}}}" for i, value in enumerate(keys))
    return f"""
admin: {{token: admin-token}}
providers:
  oa:
    type: openai
    base_url: {base_url}
    keys:
{key_lines}
models:
  gpt-4o:
    deployments: [{{provider: oa, model: gpt-4o}}]
{extra}
"""


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    upstream = FakeOpenAI(keys=KEYS)
    with upstream.running():
        yield upstream


def serve(text: str, collector: Collector) -> GatewayServer:
    return GatewayServer(text, extra_plugins=(collector,), gateway_kwargs={"wall_clock": lambda: NOW})


def drained(gw: GatewayServer) -> None:
    """Wait for the alerts the gateway is sending."""
    assert gw.gateway is not None
    gw.call(gw.gateway.alerts.drain())


def alert(n: int = 0, **changes: Any) -> Alert:
    fields: dict[str, Any] = {
        "id": f"budget:team:search:month:2026-12:0.{n}",
        "kind": "budget",
        "subject": "team:search",
        "message": "team search has spent 80% of its monthly budget",
        "at": NOW,
    }
    fields.update(changes)
    return Alert(**fields)


class Clock:
    """The gateway's monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- the dedupe machinery ------------------------------------------------------------------------


async def test_hook_emit_alert() -> None:
    """Every implementation gets each alert; one that raises is logged and counted and silences
    no other."""

    class Failing:
        __name__ = "failing-alerts"

        @hookimpl
        async def emit_alert(self, alert: Alert) -> None:
            raise RuntimeError("receiver down")

    first, second = Collector(), Collector()
    second.__name__ = "alert-collector-2"
    gateway = Gateway(config_text=config("http://127.0.0.1:9"), extra_plugins=(first, Failing(), second))
    gateway.alerts.emit(alert(), 60)
    await gateway.alerts.drain()
    assert first.alerts == second.alerts == [alert()]
    assert gateway.background.plugin_errors[("failing-alerts", "emit_alert")] == 1
    assert (gateway.alerts.sent, gateway.alerts.deduped) == (1, 0)


async def test_an_id_is_sent_once_per_every_seconds_by_a_process_alone() -> None:
    clock, collector = Clock(), Collector()
    gateway = Gateway(config_text=config("http://127.0.0.1:9"), extra_plugins=(collector,), clock=clock)
    for _ in range(3):
        gateway.alerts.emit(alert(5), 60)
    gateway.alerts.emit(alert(8), 60)
    await gateway.alerts.drain()
    assert [a.id for a in collector.alerts] == [alert(5).id, alert(8).id]
    clock.now += 59
    gateway.alerts.emit(alert(5), 60)
    await gateway.alerts.drain()
    assert len(collector.alerts) == 2
    clock.now += 2  # past `every`: the same id again is a new alert
    gateway.alerts.emit(alert(5), 60)
    await gateway.alerts.drain()
    assert [a.id for a in collector.alerts] == [alert(5).id, alert(8).id, alert(5).id]
    assert (gateway.alerts.sent, gateway.alerts.deduped) == (3, 3)


class StoreDown:
    """A store whose backend fails on every call."""

    name = "down"

    def __init__(self) -> None:
        self.claims = 0

    async def admit(self, admission: Admission) -> Decision:
        self.claims += 1
        raise ConnectionError("connection refused by 10.0.0.7:6379 (password sk-store-secret)")


class StoreRefusing:
    """A store in which another process already claimed every alert."""

    name = "refusing"

    async def admit(self, admission: Admission) -> Decision:
        (check,) = admission.rates
        assert check.key.startswith("alert:") and check.rate == 1 and check.burst == 1
        return Decision(allowed=False, denied_by=check.key, kind="rate")


async def test_a_store_failing_during_the_claim_still_sends_and_the_failure_is_logged() -> None:
    collector, store = Collector(), StoreDown()
    gateway = Gateway(config_text=config("http://127.0.0.1:9"), extra_plugins=(collector,))
    gateway.store = store  # type: ignore[assignment]
    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING", format="{extra} {message}")
    try:
        gateway.alerts.emit(alert(), 60)
        gateway.alerts.emit(alert(), 60)  # this process's own dedupe still holds
        await gateway.alerts.drain()
    finally:
        logger.remove(sink)
    assert collector.alerts == [alert()]
    assert store.claims == 1
    (line,) = [line for line in lines if "alert dedupe" in line]
    assert "ConnectionError" in line and "'plugin': 'store'" in line
    assert "sk-store-secret" not in "".join(lines)


async def test_an_alert_another_process_claimed_is_not_sent_here() -> None:
    collector = Collector()
    gateway = Gateway(config_text=config("http://127.0.0.1:9"), extra_plugins=(collector,))
    gateway.store = StoreRefusing()  # type: ignore[assignment]
    gateway.alerts.emit(alert(), 60)
    await gateway.alerts.drain()
    assert collector.alerts == []
    assert (gateway.alerts.sent, gateway.alerts.deduped) == (0, 1)


def test_emit_without_a_loop_is_a_no_op() -> None:
    collector = Collector()
    gateway = Gateway(config_text=config("http://127.0.0.1:9"), extra_plugins=(collector,))
    gateway.alerts.emit(alert(), 60)
    gateway.alerts.key_event("key_enabled", "oa", "k0", "enabled")
    assert collector.alerts == []


async def test_alerts_being_sent_reach_the_loggers_before_they_shut_down() -> None:
    class Slow(Collector):
        @hookimpl
        async def emit_alert(self, alert: Alert) -> None:  # type: ignore[override]
            await asyncio.sleep(0.05)  # a slow receiver
            super().emit_alert(alert)

        @hookimpl
        def shutdown(self) -> None:
            self.events.append("shutdown")

    slow = Slow()
    gateway = Gateway(config_text=config("http://127.0.0.1:9"), extra_plugins=(slow,), watch_interval=0)
    await gateway.start()
    gateway.alerts.emit(alert(), 60)
    await gateway.stop()
    assert slow.events == [f"alert {alert().id}", "shutdown"]


# --- key-health alerts ---------------------------------------------------------------------------


def test_an_ejected_key_alerts_once_with_why_and_until(fake: FakeOpenAI) -> None:
    collector = Collector()
    extra = "routing: {retries: 0, cooldown: {failures: 2, duration: 30s}}"
    fake.inject(Fault(status=500, key=KEYS[0], times=-1))
    with serve(config(fake.base_url, extra=extra), collector) as gw:
        for _ in range(3):
            httpx.post(gw.url + "/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer x"})
        (ejected,) = collector.wait_for(1)
        drained(gw)
        assert len(collector.alerts) == 1
    assert ejected.id == f"key_ejected:oa/k0:{WINDOW}"
    assert ejected.kind == "key_ejected"
    assert ejected.subject == "provider:oa/k0"
    assert ejected.at == NOW
    assert ejected.message == (
        "provider key oa/k0 ejected after 2 consecutive failures (server); "
        "out for 30s, until 2026-12-07T00:00:30Z"
    )
    assert ejected.threshold is None and ejected.limit_usd is None


def test_a_key_the_provider_refuses_alerts_key_disabled_without_its_value(fake: FakeOpenAI) -> None:
    collector = Collector()
    text = config(fake.base_url, keys=(REFUSED,), extra="routing: {retries: 0}")
    with serve(text, collector) as gw:
        answer = httpx.post(gw.url + "/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer x"})
        assert answer.status_code >= 400
        (disabled,) = collector.wait_for(1)
    assert disabled.id == f"key_disabled:oa/k0:{WINDOW}"
    assert disabled.message.startswith("provider key oa/k0 refused by the provider (401 auth)")
    assert REFUSED not in repr(disabled)


def test_operator_disable_and_enable_alert_once_per_key_kind_and_interval(fake: FakeOpenAI) -> None:
    collector = Collector()
    with serve(config(fake.base_url, keys=KEYS), collector) as gw:
        for action in ("disable", "enable", "disable", "enable"):
            url = f"{gw.url}/admin/v1/providers/oa/keys/k1/{action}"
            assert httpx.post(url, headers=ADMIN).status_code == 200
        drained(gw)
        alerts = collector.wait_for(2)
    assert [(a.kind, a.id, a.message) for a in alerts] == [
        ("key_disabled", f"key_disabled:oa/k1:{WINDOW}", "provider key oa/k1 disabled by an operator"),
        (
            "key_enabled",
            f"key_enabled:oa/k1:{WINDOW}",
            "provider key oa/k1 put back in rotation by an operator",
        ),
    ]


def test_the_window_is_key_health_interval(fake: FakeOpenAI) -> None:
    collector = Collector()
    text = config(fake.base_url, keys=KEYS, extra="alerts: {key_health_interval: 1h}")
    with serve(text, collector) as gw:
        assert httpx.post(f"{gw.url}/admin/v1/providers/oa/keys/k0/disable", headers=ADMIN).status_code == 200
        (disabled,) = collector.wait_for(1)
    assert disabled.id == f"key_disabled:oa/k0:{math.floor(NOW / 3600)}"


def test_key_health_false_sends_none(fake: FakeOpenAI) -> None:
    collector = Collector()
    text = config(fake.base_url, keys=(REFUSED, KEYS[0]), extra="alerts: {key_health: false}")
    with serve(text, collector) as gw:
        assert httpx.post(f"{gw.url}/admin/v1/providers/oa/keys/k1/disable", headers=ADMIN).status_code == 200
        assert httpx.post(f"{gw.url}/admin/v1/providers/oa/keys/k1/enable", headers=ADMIN).status_code == 200
        httpx.post(gw.url + "/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer x"})
        drained(gw)
        assert collector.alerts == []


class FailingSource:
    """A credential source whose refresh always fails as told."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def refresh(self) -> float:
        raise self.error

    def current(self) -> str:
        return ""

    async def close(self) -> None:
        return None


class FailingCredentials:
    """Provider type ``failcred``: key ``words`` fails with a CredentialError quoting its own
    value, any other key with a library error whose text holds a secret."""

    __name__ = "throwaway-failcred"

    @hookimpl
    def register_providers(self, register: Callable[[ProviderSpec], None]) -> None:
        def factory(provider: Provider, value: str) -> FailingSource:
            if value.startswith("sk-words"):
                return FailingSource(CredentialError(f"token endpoint said 403 for {value}"))
            return FailingSource(ValueError(f"bad signature with secret {value}"))

        register(ProviderSpec(type="failcred", default_base_url="http://127.0.0.1:9", credentials=factory))


def test_a_credential_failing_to_refresh_alerts_with_its_words_or_its_type_only() -> None:
    collector = Collector()
    text = """
providers:
  cloud:
    type: failcred
    keys:
      - {name: words, value: sk-words-dddddddddddddddddddd}
      - {name: library, value: sk-library-eeeeeeeeeeeeeeeeee}
models:
  m:
    deployments: [{provider: cloud, model: m}]
"""
    with GatewayServer(
        text, extra_plugins=(FailingCredentials(), collector), gateway_kwargs={"wall_clock": lambda: NOW}
    ):
        alerts = {a.subject: a for a in collector.wait_for(2)}
    words, library = alerts["provider:cloud/words"], alerts["provider:cloud/library"]
    assert words.kind == library.kind == "credentials_failing"
    assert words.id == f"credentials_failing:cloud/words:{WINDOW}"
    assert words.message.startswith("the credential of provider key cloud/words failed to refresh: ")
    assert "token endpoint said 403 for" in words.message
    assert "sk-words" not in words.message  # the key's value is scrubbed from the CredentialError's words
    assert library.message == "the credential of provider key cloud/library failed to refresh: ValueError"
