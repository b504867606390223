"""Alerts: each sent once to every ``emit_alert`` implementation (the loggers), off the request
path, deduplicated across every process sharing the store.

The dedupe is the store's own atomic admission: an alert is sent by the process whose
``RateCheck`` of one unit per ``every`` seconds on ``alert:<id>`` passes, so replicas that see the
same event (a budget crossing a threshold) send it once between them. Without a store (or while
it fails) this process dedupes alone, in a bounded table.

Key-health alerts (:meth:`Alerts.key_event`, when ``alerts.key_health``) are raised where the
kernel learns of the event: an ejection and a provider's 401/403 where an attempt is booked, an
operator's enable or disable in the admin API, a failed credential refresh in the credentials'
background task. Their id is ``<kind>:<provider>/<key>:<window>`` with ``window`` the wall-clock
time divided by ``alerts.key_health_interval`` (the same in every process), so one alert per key
and kind of event in each interval reaches the loggers, whichever process saw it.
"""

from __future__ import annotations

import asyncio
import math
from collections import OrderedDict
from typing import TYPE_CHECKING

from loguru import logger

from truckllm._internal.background import call_each
from truckllm._internal.store import Admission, RateCheck
from truckllm.types import Alert, AlertKind

if TYPE_CHECKING:
    from truckllm._internal.gateway import Gateway

__all__ = ["KEY_HEALTH_KINDS", "MAX_LOCAL", "Alerts"]

MAX_LOCAL = 10_000
"""Alert ids this process remembers when it dedupes alone."""

KEY_HEALTH_KINDS: frozenset[AlertKind] = frozenset(
    {"key_ejected", "key_enabled", "key_disabled", "credentials_failing"}
)
"""The alert kinds :meth:`Alerts.key_event` sends."""


class Alerts:
    """The gateway's alert sender (``gateway.alerts``)."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent = 0
        self.deduped = 0

    def emit(self, alert: Alert, every: float) -> None:
        """Send ``alert`` unless an alert with its id was sent (by any process sharing the store)
        in the last ``every`` seconds. Never blocks; the sending runs in a task."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: nothing is serving
        task = loop.create_task(self._send(alert, every))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def key_event(self, kind: AlertKind, provider: str, key: str, message: str) -> None:
        """A provider key's health event: send it (once per key, kind and
        ``alerts.key_health_interval`` across processes) unless ``alerts.key_health`` is off.

        CPU only, never raises: the caller may be on the request path. ``message`` is scrubbed
        of the config's secrets and every credential handed out before it leaves.
        """
        try:
            gateway = self._gateway
            config = gateway.runtime.config.alerts
            if not config.key_health or kind not in KEY_HEALTH_KINDS:
                return
            interval = float(config.key_health_interval)
            now = gateway.wall_clock()
            window = math.floor(now / interval)
            scrubber = gateway.credentials.scrubber(gateway.runtime.scrubber)
            alert = Alert(
                id=f"{kind}:{provider}/{key}:{window}",
                kind=kind,
                subject=f"provider:{provider}/{key}",
                message=scrubber.text(message),
                at=now,
            )
            self.emit(alert, interval)
        except Exception:  # an alert must never fail what raised it
            logger.opt(exception=True).error("key-health alert {} of {}/{} not sent", kind, provider, key)

    def credentials_failing(self, provider: str, key: str, why: str) -> None:
        """A credential refresh of ``provider``/``key`` failed (``why``: the
        ``CredentialError``'s words or the exception's type only)."""
        self.key_event(
            "credentials_failing",
            provider,
            key,
            f"the credential of provider key {provider}/{key} failed to refresh: {why}",
        )

    def _local_claim(self, alert_id: str, every: float) -> bool:
        now = self._gateway.clock()
        until = self._seen.get(alert_id)
        if until is not None and until > now:
            return False
        self._seen[alert_id] = now + every
        self._seen.move_to_end(alert_id)
        while len(self._seen) > MAX_LOCAL:
            self._seen.popitem(last=False)
        return True

    async def _claim(self, alert: Alert, every: float) -> bool:
        store = self._gateway.store
        if not self._local_claim(alert.id, every):
            return False
        if store is None:
            return True
        check = RateCheck(key=f"alert:{alert.id}", rate=1, period=max(every, 1.0), burst=1)
        try:
            decision = await store.admit(Admission(request_id=f"alert:{alert.id}", rates=(check,)))
        except Exception as exc:  # the store failed: this process's own dedupe stands
            why = type(exc).__name__
            logger.bind(plugin="store").warning("alert dedupe through the store failed: {}", why)
            return True
        return bool(decision.allowed)

    async def _send(self, alert: Alert, every: float) -> None:
        if not await self._claim(alert, every):
            self.deduped += 1
            return
        self.sent += 1
        host = self._gateway.runtime.host
        for name, _exc in await call_each(host, "emit_alert", alert=alert):
            self._gateway.background.plugin_errors[(name, "emit_alert")] += 1

    async def drain(self) -> None:
        """Wait for the alerts being sent (shutdown)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
