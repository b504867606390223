"""TruckLLM store plugin ``http``: the store interface over a small REST protocol to your own service.

``admit`` is one POST per request (the hot path); settlements, usage records and cooldown marks
are sent in batches off the hot path. The protocol is documented in this package's README, and
:class:`truckllm_testing.store_server.StoreServer` serves it over any store. While the service is
unreachable the store answers from a per-process :class:`~truckllm.kit.localstate.LocalState`
(``degraded=True``): rate limits per process, budgets denied; batches are kept and resent (with
the same ``Idempotency-Key``) when it is back.

State values (:class:`~truckllm.kit.store.StateStore`: a stateful dialect's stored conversations)
are one request each (``GET``, ``PUT``, ``DELETE /v1/state?name=...``, the name percent-encoded,
the value the raw body); they have no local fallback: while the service is unreachable they raise
:class:`~truckllm.kit.localstate.StoreUnavailable`.

The service is a trust boundary too: its decisions are clamped
(:func:`~truckllm.kit.localstate.sane_decision`), cooldown marks whose ``until`` is not a finite number
are dropped, and usage totals below 0 count as 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import math
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import msgspec
import yarl
from loguru import logger

from truckllm import hookimpl
from truckllm.kit.localstate import (
    RESERVATION_TTL,
    Clock,
    LocalState,
    Outage,
    StoreUnavailable,
    UsageBuckets,
    check_admission,
    sane_decision,
)
from truckllm.kit.options import Duration, Secret
from truckllm.kit.store import (
    Admission,
    CooldownClear,
    CooldownMark,
    Decision,
    Settlement,
    UsageQuery,
    UsageReport,
)
from truckllm.kit.tasks import stop_task
from truckllm.types import RequestRecord

__all__ = ["MIN_STATE_TTL", "TRUCKLLM_API", "HttpStore", "ServiceError", "register_stores"]

TRUCKLLM_API = 1

_log = logger.bind(plugin="store-http")


class ServiceError(Exception):
    """The store service answered with an unexpected status."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body[:200].decode(errors='replace')}")
        self.status = status

    @property
    def rejected(self) -> bool:
        """The service refused this request itself (a 4xx other than 401, 403, 404, 408, 429): resending
        it cannot help, and the service is not down."""
        return 400 <= self.status < 500 and self.status not in (401, 403, 404, 408, 429)


_UNREACHABLE = (aiohttp.ClientError, OSError, TimeoutError, ServiceError, msgspec.DecodeError)

_LARGE_BODY = 256 * 1024
"""Bodies larger than this are streamed from a buffer (aiohttp warns about large raw bytes)."""

MIN_STATE_TTL = 0.001
"""The shortest ``ttl`` sent (seconds): a ``ttl`` at or below 0 keeps a value this long."""


class _Deleted(msgspec.Struct):
    """The answer to ``DELETE /v1/state``."""

    deleted: bool


@dataclass
class _Batch:
    """One write, sent (and resent after a failure) with the same ``Idempotency-Key``."""

    path: str
    body: bytes
    items: int
    key: str


class HttpStore:
    """``type: http``: limits, budgets, cooldowns and usage kept by a service you run.

    :param options: the ``store:`` section.
    :param clock: unix time for the local fallback.
    """

    name = "http"

    class Options(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
        """``store:`` options of ``type: http``.

        :ivar url: the service's base URL (``/v1/...`` is appended).
        :ivar token: sent as ``Authorization: Bearer <token>``.
        :ivar timeout: the hot-path budget of :meth:`HttpStore.admit`, connection included.
        :ivar io_timeout: off the hot path: batches, queries, cooldowns, readiness.
        :ivar flush_interval: how often batches are sent (a lost service: probed every 250 ms).
        :ivar max_pending: usage records kept while the service is unreachable (oldest dropped).
        """

        url: str
        token: Secret | None = None
        timeout: Duration = Duration(0.1)
        io_timeout: Duration = Duration(5.0)
        flush_interval: Duration = Duration(1.0)
        max_pending: int = 100_000

    def __init__(self, options: HttpStore.Options, *, clock: Clock = time.time) -> None:
        self.options = options
        self.base = options.url.rstrip("/")
        self._origin = str(yarl.URL(self.base))  # percent-encoded: state URLs are built on it as is
        self.clock = clock
        self.state = LocalState(clock)
        self.outage = Outage("store-http", f"store service {self.base}", clock)
        self.dropped = 0
        self._records: deque[RequestRecord] = deque()
        self._settlements: list[Settlement] = []
        self._marks: list[CooldownMark] = []
        self._queue: list[_Batch] = []
        self._local_ids: dict[str, float] = {}
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the HTTP session and probe the service (unreachable: start degraded)."""
        headers = {"user-agent": "truckllm-store-http/0.1"}
        if self.options.token is not None:
            headers["authorization"] = f"Bearer {self.options.token.reveal()}"
        self._session = aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=100))
        try:
            await self._request("GET", "/v1/ready", None, self.options.io_timeout, ok=(200, 503))
        except _UNREACHABLE as exc:
            self.outage.failed(exc)
        self._task = asyncio.get_running_loop().create_task(self._flush_loop(), name="truckllm-store-http")

    async def close(self) -> None:
        """Stop the flush task, send everything pending (once), close the session."""
        task, self._task = self._task, None
        await stop_task(task)
        if self._session is None:
            return
        try:
            await self.flush(probe=True)
        except _UNREACHABLE as exc:
            self.outage.failed(exc)
        finally:
            left = self.pending
            if left:
                _log.error("closing with the store service unreachable: {} pending writes are lost", left)
            session, self._session = self._session, None
            await session.close()

    @property
    def pending(self) -> int:
        """Writes not yet acknowledged by the service."""
        queued = sum(b.items for b in self._queue)
        return queued + len(self._records) + len(self._settlements) + len(self._marks)

    async def _flush_loop(self) -> None:
        while True:  # while the service is down, probe at least every 250 ms
            await asyncio.sleep(
                min(self.options.flush_interval, 0.25) if self.outage.down else self.options.flush_interval
            )
            with contextlib.suppress(*_UNREACHABLE):  # recorded in self.outage
                await self.flush(probe=True)

    async def flush(self, *, probe: bool = False) -> None:
        """Send every pending batch, oldest first.

        :param probe: while the service is down, ask ``/v1/ready`` first (else return at once).
        :raises aiohttp.ClientError: the service did not take a batch (it stays queued).
        """
        async with self._flush_lock:
            if self._session is None:
                return
            if self.outage.down:
                if not probe:
                    return
                await self._request("GET", "/v1/ready", None, self.options.io_timeout)
                self.outage.recovered()
            self._batch("/v1/settle", self._settlements)
            self._batch("/v1/usage/records", self._records)
            self._batch("/v1/cooldowns", self._marks)
            while self._queue:
                batch = self._queue[0]
                try:
                    await self._request(
                        "POST", batch.path, batch.body, self.options.io_timeout, key=batch.key, ok=(200, 204)
                    )
                except ServiceError as exc:
                    if not exc.rejected:
                        raise
                    _log.error("store service refused {} items to {}: {}", batch.items, batch.path, exc)
                self._queue.pop(0)

    def _batch(self, path: str, items: list[Any] | deque[Any]) -> None:
        if items:
            body = msgspec.json.encode(list(items))
            self._queue.append(_Batch(path=path, body=body, items=len(items), key=uuid.uuid4().hex))
            items.clear()

    async def _request(
        self,
        method: str,
        path: str | yarl.URL,
        body: bytes | None,
        limit: float,
        *,
        key: str | None = None,
        ok: tuple[int, ...] = (200,),
        content_type: str = "application/json",
    ) -> bytes:
        return (await self._call(method, path, body, limit, key=key, ok=ok, content_type=content_type))[1]

    async def _call(
        self,
        method: str,
        path: str | yarl.URL,
        body: bytes | None,
        limit: float,
        *,
        key: str | None = None,
        ok: tuple[int, ...] = (200,),
        content_type: str = "application/json",
        unsupported: tuple[int, ...] = (),
    ) -> tuple[int, bytes]:
        """Send one request (``path``: appended to the base URL, or a whole URL); the status and
        the body of an answer whose status is in ``ok``. A status in ``unsupported`` raises
        :class:`ServiceError` without starting an outage (the service lacks an optional endpoint)."""
        session = self._session
        if session is None:
            raise ServiceError(0, b"not started")
        headers = {"content-type": content_type} if body is not None else {}
        if key is not None:
            headers["idempotency-key"] = key
        url = path if isinstance(path, yarl.URL) else self.base + path
        data: bytes | io.BytesIO | None = body
        if body is not None and len(body) > _LARGE_BODY:  # sent in chunks, not in one write
            data = io.BytesIO(body)
        try:
            async with (
                asyncio.timeout(limit),
                session.request(method, url, data=data, headers=headers) as response,
            ):
                answer = await response.read()
                if response.status not in ok:
                    raise ServiceError(response.status, answer)
                return response.status, answer
        except _UNREACHABLE as exc:
            if not (isinstance(exc, ServiceError) and (exc.rejected or exc.status in unsupported)):
                self.outage.failed(exc, slow=isinstance(exc, TimeoutError))
            raise

    # --- the hot path: one request ---------------------------------------------------------------

    async def admit(self, admission: Admission) -> Decision:
        """POST ``/v1/admit``; within ``timeout``, or the local fallback with ``degraded=True``."""
        if not admission.rates and not admission.budgets:
            return Decision(allowed=True)
        check_admission(admission)
        if self._session is None or self.outage.down:
            return self._fallback(admission)
        try:
            body = msgspec.json.encode(admission)
            data = await self._request("POST", "/v1/admit", body, self.options.timeout)
            decision = msgspec.json.decode(data, type=Decision)
        except _UNREACHABLE:
            return self._fallback(admission)
        if self.outage.slow:
            self.outage.recovered()
        return sane_decision(admission, decision)

    def _fallback(self, admission: Admission) -> Decision:
        decision = self.state.admit_fallback(admission)
        if decision.allowed:
            now = self.clock()
            self._local_ids[admission.request_id] = now
            if len(self._local_ids) > 10_000:
                for rid in [r for r, at in self._local_ids.items() if at < now - RESERVATION_TTL]:
                    del self._local_ids[rid]
        return decision

    # --- off the hot path -----------------------------------------------------------------------

    async def settle(self, settlement: Settlement) -> None:
        """Queue a request's corrections for the next batch (no I/O here). A correction that is not
        a finite number is sent as 0 (JSON has no such number: it would get the batch refused)."""
        if self._local_ids.pop(settlement.request_id, None) is not None:
            self.state.settle(settlement)
            return
        adjust = settlement.budget_adjust
        if not all(math.isfinite(usd) for _, usd in adjust.values()):
            adjust = {k: (p, usd if math.isfinite(usd) else 0.0) for k, (p, usd) in adjust.items()}
            settlement = msgspec.structs.replace(settlement, budget_adjust=adjust)
        self._settlements.append(settlement)

    async def mark_cooldown(self, mark: CooldownMark) -> None:
        """POST ``/v1/cooldowns`` now; while the service is down the mark is kept and sent later.
        A mark whose ``until`` is not a finite number is ignored."""
        if not math.isfinite(mark.until):
            return
        self.state.mark_cooldown(mark)
        if self._session is None or self.outage.down:
            self._marks.append(mark)
            return
        if self._queue:  # older batches (a clear, maybe) are still queued: they go first
            self._marks.append(mark)
            with contextlib.suppress(*_UNREACHABLE):
                await self.flush()
            return
        try:
            body = msgspec.json.encode([mark])
            await self._request(
                "POST", "/v1/cooldowns", body, self.options.io_timeout, key=uuid.uuid4().hex, ok=(200, 204)
            )
        except _UNREACHABLE:
            self._marks.append(mark)

    async def clear_cooldown(self, provider: str, key: str) -> None:
        """POST ``/v1/cooldowns/clear`` now (an operator's ``enable``). The marks not yet sent for the
        key are dropped; while the service is down the clear is queued after the marks already
        queued, and sent in that order."""
        self.state.clear_cooldown(provider, key)
        self._marks = [m for m in self._marks if (m.provider, m.key) != (provider, key)]
        self._batch("/v1/cooldowns", self._marks)
        self._batch("/v1/cooldowns/clear", [CooldownClear(provider=provider, key=key)])
        if self._session is None or self.outage.down:
            return
        with contextlib.suppress(*_UNREACHABLE):  # kept in the queue, sent with the next flush
            await self.flush()

    async def cooldowns(self) -> Sequence[CooldownMark]:
        """GET ``/v1/cooldowns`` (this process's own marks while the service is unreachable)."""
        if self._session is None or self.outage.down:
            return self.state.cooldowns()
        try:
            data = await self._request("GET", "/v1/cooldowns", None, self.options.io_timeout)
            marks = msgspec.json.decode(data, type=list[CooldownMark])
        except _UNREACHABLE:
            return self.state.cooldowns()
        return [m for m in marks if math.isfinite(m.until)]

    async def usage(self, query: UsageQuery) -> UsageReport:
        """GET ``/v1/usage``.

        :raises truckllm.kit.localstate.StoreUnavailable: the service is unreachable.
        """
        if self._session is None or self.outage.down:
            raise StoreUnavailable(f"store service {self.base} is unreachable")
        params: dict[str, str] = {}
        if query.group_by:
            params["group_by"] = ",".join(query.group_by)
        for name in ("since", "until"):
            value = getattr(query, name)
            if value is not None:
                params[name] = repr(float(value))
        for name in ("key", "alias", "provider"):
            value = getattr(query, name)
            if value is not None:
                params[name] = value
        path = "/v1/usage" + (f"?{urlencode(params)}" if params else "")
        try:
            data = await self._request("GET", path, None, self.options.io_timeout)
            report = msgspec.json.decode(data, type=UsageReport)
        except _UNREACHABLE as exc:
            raise StoreUnavailable(f"store service {self.base} is unreachable: {exc}") from exc
        return _clamped(report)

    # --- state values (StateStore): one request each, no local fallback --------------------------

    def state_url(self, name: str, ttl: float | None = None) -> yarl.URL:
        """``<url>/v1/state?name=<name>[&ttl=<seconds>]``, every character of the name but
        ``A-Z a-z 0-9 - . _ ~`` percent-encoded (UTF-8), sent exactly so."""
        query = "name=" + quote(name, safe="")
        if ttl is not None:
            query += "&ttl=" + quote(repr(ttl), safe="")  # 1e+20: a raw "+" would read as a space
        return yarl.URL(f"{self._origin}/v1/state?{query}", encoded=True)

    async def _state_call(
        self, method: str, url: yarl.URL, body: bytes | None = None, ok: tuple[int, ...] = (200,)
    ) -> tuple[int, bytes]:
        if self._session is None or self.outage.down:
            raise StoreUnavailable(f"store service {self.base} is unreachable")
        try:
            return await self._call(
                method,
                url,
                body,
                self.options.io_timeout,
                ok=ok,
                content_type="application/octet-stream",
                unsupported=(404, 405, 501),  # a service without state values is not down
            )
        except _UNREACHABLE as exc:
            raise StoreUnavailable(f"store service {self.base}: {type(exc).__name__}: {exc}") from exc

    async def get_state(self, name: str) -> bytes | None:
        """``GET /v1/state?name=``: the value (200), or ``None`` (404: absent or expired).

        :raises truckllm.kit.localstate.StoreUnavailable: the service is unreachable (at once during
            an outage) or answered otherwise.
        """
        status, data = await self._state_call("GET", self.state_url(name), ok=(200, 404))
        return data if status == 200 else None

    async def put_state(self, name: str, value: bytes, ttl: float) -> None:
        """``PUT /v1/state?name=&ttl=`` with ``value`` as the body (``ttl`` at least 1 ms), replacing
        any.

        :raises ValueError: ``ttl`` is not a finite number.
        :raises truckllm.kit.localstate.StoreUnavailable: the service is unreachable or refused it.
        """
        if not math.isfinite(ttl):
            raise ValueError(f"state ttl must be a finite number of seconds, not {ttl!r}")
        url = self.state_url(name, max(float(ttl), MIN_STATE_TTL))
        await self._state_call("PUT", url, bytes(value), ok=(200, 204))

    async def delete_state(self, name: str) -> bool:
        """``DELETE /v1/state?name=``: ``True`` when the service removed a value.

        :raises truckllm.kit.localstate.StoreUnavailable: the service is unreachable or answered
            something else than ``{"deleted": bool}``.
        """
        _, data = await self._state_call("DELETE", self.state_url(name))
        try:
            return msgspec.json.decode(data, type=_Deleted).deleted
        except msgspec.DecodeError as exc:
            raise StoreUnavailable(f"store service {self.base}: DELETE /v1/state: {exc}") from exc

    async def ready(self) -> dict[str, Any]:
        """``{"ok": True, "service": "ok", ...}`` or ``{"ok": False, "service": "unreachable", ...}``."""
        details: dict[str, Any] = {"store": self.name, "url": self.base, "pending": self.pending}
        if self.dropped:
            details["dropped"] = self.dropped
        try:
            data = await self._request("GET", "/v1/ready", None, self.options.io_timeout, ok=(200, 503))
            remote = msgspec.json.decode(data, type=dict[str, Any])
        except _UNREACHABLE:
            return {
                "ok": False,
                "service": "unreachable",
                "since": self.outage.since,
                "error": self.outage.error,
                **details,
            }
        self.outage.recovered()  # the flush task sends what is pending
        ok = bool(remote.get("ok"))
        return {"ok": ok, "service": "ok" if ok else "not ready", "remote": remote, **details}

    @hookimpl
    def store_usage(self, record: RequestRecord) -> None:
        """Queue a finished request for the next ``/v1/usage/records`` batch."""
        if len(self._records) >= self.options.max_pending:
            self._records.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                _log.warning("store service unreachable: {} usage records dropped", self.dropped)
        self._records.append(record)


def _clamped(report: UsageReport) -> UsageReport:
    """The service's report with every total below 0 (or not finite) counted as 0."""
    return UsageReport(
        rows=[UsageBuckets.clamped(row) for row in report.rows], total=UsageBuckets.clamped(report.total)
    )


@hookimpl
def register_stores(register: Callable[[str, type], None]) -> None:
    """Register ``type: http``."""
    register("http", HttpStore)
