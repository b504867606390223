"""Alerts: each sent once to every ``emit_alert`` implementation (the loggers), off the request
path, deduplicated across every process sharing the store.

The dedupe is the store's own atomic admission: an alert is sent by the process whose
``RateCheck`` of one unit per ``every`` seconds on ``alert:<id>`` passes, so replicas that see the
same event (a budget crossing a threshold) send it once between them. Without a store (or while
it fails) this process dedupes alone, in a bounded table.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import TYPE_CHECKING

from loguru import logger

from truckllm._internal.background import call_each
from truckllm._internal.store import Admission, RateCheck
from truckllm.types import Alert

if TYPE_CHECKING:
    from truckllm._internal.gateway import Gateway

__all__ = ["MAX_LOCAL", "Alerts"]

MAX_LOCAL = 10_000
"""Alert ids this process remembers when it dedupes alone."""


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

    def _local_claim(self, alert_id: str, every: float) -> bool:
        now = time.monotonic()
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
