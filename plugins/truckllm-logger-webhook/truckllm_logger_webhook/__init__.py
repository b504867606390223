"""TruckLLM logger plugin: request records POSTed as JSON arrays to an HTTP endpoint.

``emit_log`` only appends to a bounded in-memory queue (a full queue drops the record and counts
it); one sender task, started in ``startup`` with its own aiohttp session, POSTs batches in order
and retries a failed batch with jittered exponential backoff, honouring ``Retry-After``. Delivery
is at least once: every try of a batch carries the same ``x-truckllm-batch-id`` header, so a
receiver that saw the id already can drop the repeat. ``shutdown`` sends what is queued, within
``shutdown_timeout``.

Alerts (``emit_alert``: budget thresholds, key-health events) go through the same sender with the
same retries, each in a POST of its own, ahead of queued records: the body is
``{"type": "alert", "alert": {...}}`` (a record batch stays a JSON array), the
``x-truckllm-payload`` header says ``alert`` (``records`` for a batch), ``x-truckllm-alert-id``
carries the alert's dedupe id (percent-encoded; the same in every process that saw the event) and
the batch id is derived from it, so a receiver deduping on either drops repeats across tries and
replicas. ``filter`` applies to records only; ``alerts: false`` turns alerts off.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import quote, urlsplit

import aiohttp
import msgspec
from loguru import logger

from truckllm import hookimpl
from truckllm.kit.openai_wire import parse_retry_after
from truckllm.kit.options import Duration, Secret
from truckllm.kit.records import record_fields
from truckllm.kit.tasks import stop_task
from truckllm.types import Alert, RequestRecord

__all__ = [
    "ALERT_ID_HEADER",
    "BATCH_ID_HEADER",
    "MAX_ALERTS",
    "PAYLOAD_HEADER",
    "RETRY_STATUSES",
    "TRUCKLLM_API",
    "Backoff",
    "Filter",
    "WebhookLogger",
    "register_loggers",
]

TRUCKLLM_API = 1
"""The plugin API version this plugin was written for."""

BATCH_ID_HEADER = "x-truckllm-batch-id"
"""The header naming a batch; the same on every try of that batch (receivers dedupe on it)."""

ALERT_ID_HEADER = "x-truckllm-alert-id"
"""The header carrying an alert's dedupe id (``Alert.id``, percent-encoded)."""

PAYLOAD_HEADER = "x-truckllm-payload"
"""The header saying what a POST carries: ``records`` (a JSON array) or ``alert``."""

MAX_ALERTS = 1000
"""Alerts held while the endpoint is slow or down (apart from ``max_queue``); more are dropped."""

RETRY_STATUSES = frozenset({408, 425, 429})
"""Statuses below 500 worth retrying; every 5xx is retried too."""

_VERSION = "0.1.0"

PosInt = Annotated[int, msgspec.Meta(ge=1)]
"""An integer of at least 1 (options)."""
NonNegInt = Annotated[int, msgspec.Meta(ge=0)]
"""An integer of at least 0 (options)."""


class Backoff(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Waits between tries of a batch: ``base * 2**n``, capped at ``max``, jittered down to half.

    :ivar base: the first wait.
    :ivar max: the longest wait, also the cap on a receiver's ``Retry-After``.
    """

    base: Duration = Duration(0.5)
    max: Duration = Duration(30)


class Filter(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Which records are sent; every condition must hold.

    :ivar status: ``all``, ``errors`` (status 400 and above) or ``success`` (below 400).
    :ivar min_status: only records whose status is at least this.
    :ivar aliases: only records for these aliases (the ``model`` clients asked for); empty: all.
    """

    status: Literal["all", "errors", "success"] = "all"
    min_status: NonNegInt = 0
    aliases: frozenset[str] = frozenset()

    def accepts(self, record: RequestRecord) -> bool:
        """Does ``record`` pass?"""
        if record.status < self.min_status:
            return False
        if self.status == "errors" and record.status < 400:
            return False
        if self.status == "success" and record.status >= 400:
            return False
        return not self.aliases or record.alias in self.aliases


class WebhookLogger:
    """Queues records and POSTs them in batches from a background task.

    :param options: decoded from the ``loggers:`` entry.
    :param sleep: the backoff sleep (tests may pass a faster one).
    :param rng: the jitter's random source.
    """

    class Options(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
        """``loggers: [{webhook: {url: ...}}]``.

        :ivar url: where batches are POSTed (``http`` or ``https``).
        :ivar token: sent as ``Authorization: Bearer <token>``; never logged.
        :ivar headers: extra request headers; values are treated as secrets.
        :ivar batch_size: the most records in one POST.
        :ivar flush_interval: the longest a record waits for its batch to fill.
        :ivar max_queue: records held while the endpoint is slow or down; more are dropped.
        :ivar timeout: per try, the whole request.
        :ivar max_retries: tries after the first before a batch is given up.
        :ivar backoff: waits between tries.
        :ivar shutdown_timeout: the longest ``shutdown`` spends sending what is queued.
        :ivar filter: which records are sent (alerts are not filtered).
        :ivar alerts: send alerts (``emit_alert``), each in a POST of its own.
        """

        url: str
        token: Secret | None = None
        headers: dict[str, Secret] = msgspec.field(default_factory=dict)
        batch_size: PosInt = 100
        flush_interval: Duration = Duration(1)
        max_queue: PosInt = 10000
        timeout: Duration = Duration(5)
        max_retries: NonNegInt = 5
        backoff: Backoff = msgspec.field(default_factory=Backoff)
        shutdown_timeout: Duration = Duration(10)
        filter: Filter = msgspec.field(default_factory=Filter)
        alerts: bool = True

        def __post_init__(self) -> None:
            parts = urlsplit(self.url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("url must be an absolute http:// or https:// URL")
            if self.token is not None and any(k.lower() == "authorization" for k in self.headers):
                raise ValueError("give either token or an authorization header, not both")
            if self.timeout <= 0:
                raise ValueError("timeout must be positive")

    name: ClassVar[str] = "webhook"
    """The name in ``loggers:``."""

    metrics_counters: ClassVar[frozenset[str]] = frozenset(
        {"dropped", "sent", "failed_batches", "retries", "alerts_sent", "alerts_dropped"}
    )
    """The keys of :attr:`metrics` that only ever grow (exported as counters)."""

    def __init__(
        self,
        options: Options,
        *,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.options = options
        self._sleep = sleep
        self._random = rng or random.Random()
        self._queue: deque[RequestRecord] = deque()
        self._alerts: deque[Alert] = deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._sending = 0
        self._sending_alert = 0
        parts = urlsplit(options.url)
        self._where = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        self._log = logger.bind(plugin="logger-webhook")
        self.dropped = 0
        """Records dropped: the queue was full, or shutdown ran out of time."""
        self.sent = 0
        """Records the endpoint accepted (2xx)."""
        self.failed_batches = 0
        """Batches given up: a non-retryable status, or every try failed."""
        self.retries = 0
        """Tries after the first, over all batches."""
        self.alerts_sent = 0
        """Alerts the endpoint accepted (2xx)."""
        self.alerts_dropped = 0
        """Alerts dropped: :data:`MAX_ALERTS` were waiting, given up, or shutdown ran out of time."""

    @property
    def metrics(self) -> dict[str, int]:
        """``queue``, ``dropped``, ``sent``, ``failed_batches``, ``retries``, ``alerts_sent`` and
        ``alerts_dropped``, for the metrics logger."""
        return {
            "queue": len(self._queue),
            "dropped": self.dropped,
            "sent": self.sent,
            "failed_batches": self.failed_batches,
            "retries": self.retries,
            "alerts_sent": self.alerts_sent,
            "alerts_dropped": self.alerts_dropped,
        }

    # --- hooks ------------------------------------------------------------------------------------

    @hookimpl
    def emit_log(self, record: RequestRecord) -> None:
        """Queue the record (never blocks; a full queue drops it and counts)."""
        if not self.options.filter.accepts(record):
            return
        if self._closed or len(self._queue) >= self.options.max_queue:
            self._drop(1, "queue full" if not self._closed else "logger stopped")
            return
        self._queue.append(record)
        size = len(self._queue)
        if size == 1 or size >= self.options.batch_size:
            self._wake.set()

    @hookimpl
    def emit_alert(self, alert: Alert) -> None:
        """Queue the alert ahead of the records (never blocks; past :data:`MAX_ALERTS` waiting,
        it is dropped and counted)."""
        if not self.options.alerts:
            return
        if self._closed or len(self._alerts) >= MAX_ALERTS:
            self._drop_alerts(1, "queue full" if not self._closed else "logger stopped")
            return
        self._alerts.append(alert)
        self._wake.set()

    @hookimpl
    async def startup(self, app: Any) -> None:
        """Open this logger's HTTP session and start the sender task."""
        if self._task is not None:
            return
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.options.timeout),
            trust_env=False,
        )
        self._task = asyncio.get_running_loop().create_task(self._run(), name="truckllm-logger-webhook")

    @hookimpl
    async def shutdown(self, app: Any) -> None:
        """Send what is queued (at most ``shutdown_timeout``), then stop and close the session."""
        self._closing = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            done, _ = await asyncio.wait({task}, timeout=self.options.shutdown_timeout)
            if not done:
                await stop_task(task)
        self._closed = True
        why = f"not sent within shutdown_timeout {self.options.shutdown_timeout:g}s"
        lost = self._sending + len(self._queue)
        lost_alerts = self._sending_alert + len(self._alerts)
        self._sending = self._sending_alert = 0
        self._queue.clear()
        self._alerts.clear()
        if lost:
            self._drop(lost, why)
        if lost_alerts:
            self._drop_alerts(lost_alerts, why)
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- sending ----------------------------------------------------------------------------------

    def _drop(self, count: int, why: str) -> None:
        before = self.dropped
        self.dropped += count
        if before == 0 or before // 1000 != self.dropped // 1000:
            self._log.warning("webhook {}: {} records dropped so far ({})", self._where, self.dropped, why)

    def _drop_alerts(self, count: int, why: str) -> None:
        self.alerts_dropped += count
        self._log.warning("webhook {}: {} alerts dropped so far ({})", self._where, self.alerts_dropped, why)

    async def _run(self) -> None:
        while True:
            batch = await self._next_batch()
            if not batch:
                return
            try:
                if isinstance(batch, Alert):
                    self._sending_alert = 1
                    await self._deliver_alert(batch)
                else:
                    self._sending = len(batch)
                    await self._deliver(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not stop every later batch
                self.failed_batches += 1
                self._log.opt(exception=exc).error("webhook {}: batch failed", self._where)
            self._sending = self._sending_alert = 0

    async def _next_batch(self) -> list[RequestRecord] | Alert | None:
        """An alert at once if one waits; else wait for a record, then up to ``flush_interval``
        for the batch to fill (an alert arriving meanwhile sends the batch as it is)."""
        while not self._queue:
            if self._alerts:
                return self._alerts.popleft()
            if self._closing:
                return None
            self._wake.clear()
            await self._wake.wait()
        if self._alerts:
            return self._alerts.popleft()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.flush_interval
        while len(self._queue) < self.options.batch_size and not self._closing and not self._alerts:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._wake.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._wake.wait()
            except TimeoutError:
                break
        count = min(self.options.batch_size, len(self._queue))
        return [self._queue.popleft() for _ in range(count)]

    def _headers(self, batch_id: str, size: int, payload: str = "records") -> dict[str, str]:
        headers = {name: value.reveal() for name, value in self.options.headers.items()}
        headers.update(
            {
                "content-type": "application/json",
                "user-agent": f"truckllm-logger-webhook/{_VERSION}",
                BATCH_ID_HEADER: batch_id,
                "x-truckllm-batch-size": str(size),
                PAYLOAD_HEADER: payload,
            }
        )
        if self.options.token is not None:
            headers["authorization"] = f"Bearer {self.options.token.reveal()}"
        return headers

    def _backoff(self, retry: int, retry_after: float | None) -> float:
        cap = float(self.options.backoff.max)
        if retry_after is not None:
            return min(retry_after, cap)
        delay = min(cap, float(self.options.backoff.base) * 2**retry)
        return self._random.uniform(delay / 2, delay)

    async def _deliver(self, batch: list[RequestRecord]) -> None:
        """POST one batch of records until it is accepted, refused for good, or out of tries."""
        body = msgspec.json.encode([record_fields(r) for r in batch])
        batch_id = uuid.uuid4().hex
        what = f"batch {batch_id} of {len(batch)} records"
        if await self._post(body, self._headers(batch_id, len(batch)), what):
            self.sent += len(batch)

    async def _deliver_alert(self, alert: Alert) -> None:
        """POST one alert like a batch: ``{"type": "alert", "alert": {...}}``, its id in
        :data:`ALERT_ID_HEADER`, a batch id derived from it (the same in every process)."""
        body = msgspec.json.encode({"type": "alert", "alert": msgspec.to_builtins(alert)})
        batch_id = hashlib.sha256(alert.id.encode()).hexdigest()[:32]
        headers = self._headers(batch_id, 1, "alert")
        headers[ALERT_ID_HEADER] = quote(alert.id, safe=":/@.,=+-_")
        if await self._post(body, headers, f"alert {alert.kind} {batch_id}"):
            self.alerts_sent += 1
        else:
            self.alerts_dropped += 1

    async def _post(self, body: bytes, headers: dict[str, str], what: str) -> bool:
        """POST until accepted (``True``), refused for good, or out of tries (``False``, logged)."""
        problem = ""
        for attempt in range(self.options.max_retries + 1):
            if attempt:
                self.retries += 1
                headers["x-truckllm-attempt"] = str(attempt + 1)
            retry_after: float | None = None
            session = self._session
            if session is None:
                raise RuntimeError("webhook logger not started")
            try:
                async with session.post(self.options.url, data=body, headers=headers) as response:
                    await response.read()
                    status = response.status
                    retry_after = parse_retry_after(response.headers)
            except (aiohttp.ClientError, TimeoutError) as exc:
                text = str(exc).replace(self.options.url, self._where)  # the path may hold a secret
                problem = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
            else:
                if 200 <= status < 300:
                    return True
                problem = f"HTTP {status}"
                if status < 500 and status not in RETRY_STATUSES:
                    break
            if attempt < self.options.max_retries:
                await self._sleep(self._backoff(attempt, retry_after))
        self.failed_batches += 1
        self._log.error(
            "webhook {}: {} given up after {}: {}",
            self._where,
            what,
            f"{attempt + 1} tries" if attempt else "1 try",
            problem,
        )
        return False


@hookimpl
def register_loggers(register: Callable[[str, type], None]) -> None:
    """Offer ``webhook``."""
    register("webhook", WebhookLogger)
