"""The reference server of the ``http`` store's REST protocol, over any :class:`~truckllm.kit.store.Store`.

```python
async with StoreServer(MemoryStore(), token="s3cret") as server:
    store = HttpStore(HttpStore.Options(url=server.url, token=Secret("s3cret")))
```

A team that keeps its limits, budgets and usage in its own service implements the same
endpoints (documented in ``plugins/truckllm-store-http/README.md``); this one is what the http
store's tests run against, and a starting point. Bodies are JSON encodings of the structs of
:mod:`truckllm.kit.store` (and :class:`~truckllm.types.RequestRecord`).

| method, path | body | answer |
|---|---|---|
| POST ``/v1/admit`` | ``Admission`` | 200 ``Decision`` |
| POST ``/v1/settle`` | ``[Settlement, ...]`` | 204 |
| POST ``/v1/usage/records`` | ``[RequestRecord, ...]`` | 204 |
| GET ``/v1/usage?group_by=key,model&since=&until=&key=&alias=&provider=`` | | 200 ``UsageReport`` |
| POST ``/v1/cooldowns`` | ``[CooldownMark, ...]`` | 204 |
| GET ``/v1/cooldowns`` | | 200 ``[CooldownMark, ...]`` |
| POST ``/v1/cooldowns/clear`` | ``[CooldownClear, ...]`` | 204 |
| GET ``/v1/ready`` | | 200 or 503 ``{"ok": bool, ...}`` |
| GET ``/v1/state?name=`` | | 200 the value (``application/octet-stream``), 404 when absent |
| PUT ``/v1/state?name=&ttl=`` | the value | 204 |
| DELETE ``/v1/state?name=`` | | 200 ``{"deleted": bool}`` |

Writes carry an ``Idempotency-Key`` header: a batch seen before is acknowledged and not applied
again (the client resends a batch whose answer it did not get). State values
(:class:`~truckllm.kit.store.StateStore`) are opaque bytes under a name (percent-encoded in the
query); they are kept by the store when it is a ``StateStore``, else by the server itself
(:class:`StateValues`, in memory).
"""

from __future__ import annotations

import heapq
import hmac
import inspect
import math
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from truckllm._internal.localstate import Clock, LocalStore, StoreUnavailable
from truckllm._internal.store import (
    Admission,
    CooldownClear,
    CooldownMark,
    Settlement,
    StateStore,
    Store,
    UsageQuery,
)
from truckllm.types import RequestRecord

__all__ = ["MAX_BODY", "PROTOCOL_VERSION", "LocalStore", "StateValues", "StoreServer"]

PROTOCOL_VERSION = 1
"""The ``/v1`` of every path."""

MAX_BODY = 64 * 1024 * 1024
"""The largest request body the server reads by default (a state value up to the gateway's
``server.state.max_bytes``, 16 MiB by default, fits)."""

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_JSON = "application/json"


def _json(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(value), status=status, content_type=_JSON)


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


class StateValues:
    """State values in memory, for a store that keeps none (a :class:`~truckllm.kit.store.StateStore`).

    An expired value is dropped when read; each put drops up to 64 expired values (earliest first).

    :param clock: unix time in seconds.
    """

    def __init__(self, clock: Clock = time.time) -> None:
        self.clock = clock
        self._values: dict[str, tuple[float, bytes]] = {}
        self._expiries: list[tuple[float, str]] = []  # a heap; entries of replaced values are stale

    def __len__(self) -> int:
        """Values held (expired ones not swept yet included)."""
        return len(self._values)

    async def get_state(self, name: str) -> bytes | None:
        """The value of ``name``, or ``None`` when absent or expired."""
        entry = self._values.get(name)
        if entry is None:
            return None
        if entry[0] <= self.clock():
            del self._values[name]
            return None
        return entry[1]

    async def put_state(self, name: str, value: bytes, ttl: float) -> None:
        """Keep ``value`` under ``name`` for ``ttl`` seconds (at least 1 ms), replacing any.

        :raises ValueError: ``ttl`` is not a finite number.
        """
        if not math.isfinite(ttl):
            raise ValueError(f"ttl: must be a finite number of seconds, not {ttl!r}")
        now = self.clock()
        expires = now + max(ttl, 0.001)
        self._values[name] = (expires, bytes(value))
        heapq.heappush(self._expiries, (expires, name))
        for _ in range(64):
            if not self._expiries or self._expiries[0][0] > now:
                break
            at, old = heapq.heappop(self._expiries)
            if self._values.get(old, (None,))[0] == at:
                del self._values[old]
        if len(self._expiries) > 2 * len(self._values) + 64:
            self._expiries = [(at, n) for n, (at, _) in self._values.items()]
            heapq.heapify(self._expiries)

    async def delete_state(self, name: str) -> bool:
        """Drop ``name``; ``True`` when an unexpired value was dropped."""
        entry = self._values.pop(name, None)
        return entry is not None and entry[0] > self.clock()


class StoreServer:
    """The store REST protocol over ``store``, served by aiohttp.

    :param store: any store (started and closed by the caller).
    :param token: require ``Authorization: Bearer <token>`` when set.
    :param remember: how many ``Idempotency-Key`` values are remembered.
    :param state: where state values live (default: ``store`` when it is a
        :class:`~truckllm.kit.store.StateStore`, else a :class:`StateValues` on ``clock``).
    :param clock: unix time for the default :class:`StateValues`.
    :param max_body: the largest request body read (bytes); a larger one is answered 413.
    """

    def __init__(
        self,
        store: Store,
        *,
        token: str | None = None,
        remember: int = 4096,
        state: StateStore | None = None,
        clock: Clock = time.time,
        max_body: int = MAX_BODY,
    ) -> None:
        self.store = store
        self.token = token
        self.remember = remember
        self.max_body = max_body
        if state is None:
            state = store if isinstance(store, StateStore) else StateValues(clock)
        self.state: StateStore = state
        self.url = ""
        self.port = 0
        self.requests = 0
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._runner: web.AppRunner | None = None
        self.app = self.make_app()

    def make_app(self) -> web.Application:
        """The aiohttp application (to mount elsewhere, or serve with :meth:`start`)."""
        app = web.Application(middlewares=[self._middleware], client_max_size=self.max_body)
        app.router.add_post("/v1/admit", self.admit)
        app.router.add_post("/v1/settle", self.settle)
        app.router.add_post("/v1/usage/records", self.usage_records)
        app.router.add_get("/v1/usage", self.usage)
        app.router.add_post("/v1/cooldowns", self.mark_cooldowns)
        app.router.add_get("/v1/cooldowns", self.cooldowns)
        app.router.add_post("/v1/cooldowns/clear", self.clear_cooldowns)
        app.router.add_get("/v1/ready", self.ready)
        app.router.add_get("/v1/state", self.get_state)
        app.router.add_put("/v1/state", self.put_state)
        app.router.add_delete("/v1/state", self.delete_state)
        return app

    # --- serving --------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int | None = None) -> str:
        """Serve on ``host:port`` (default: a free port, then the same after :meth:`stop`); return the URL."""
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, self.port if port is None else port))
        except OSError:
            sock.close()
            raise
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self._runner = runner
        self.port = sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}" if ":" not in host else f"http://[{host}]:{self.port}"
        return self.url

    async def stop(self) -> None:
        """Stop serving (the port is kept for a later :meth:`start`)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            self.app = self.make_app()

    async def __aenter__(self) -> StoreServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # --- plumbing -------------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests += 1
        if self.token is not None:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                return _error(401, "unauthorized")
        try:
            return await handler(request)
        except StoreUnavailable as exc:
            return _error(503, str(exc))
        except ValueError as exc:  # includes msgspec.ValidationError / DecodeError
            return _error(400, str(exc))

    @staticmethod
    async def _body(request: web.Request, type_: type[T]) -> T:
        return msgspec.json.decode(await request.read(), type=type_)

    def _seen_before(self, request: web.Request) -> bool:
        key = request.headers.get("idempotency-key")
        if not key:
            return False
        if key in self._seen:
            return True
        self._seen[key] = None
        while len(self._seen) > self.remember:
            self._seen.popitem(last=False)
        return False

    # --- endpoints ------------------------------------------------------------------------------

    async def admit(self, request: web.Request) -> web.Response:
        """POST /v1/admit: ``Admission`` -> ``Decision``."""
        admission = await self._body(request, Admission)
        return _json(await self.store.admit(admission))

    async def settle(self, request: web.Request) -> web.Response:
        """POST /v1/settle: ``[Settlement, ...]`` -> 204."""
        settlements = await self._body(request, list[Settlement])
        if not self._seen_before(request):
            for settlement in settlements:
                await self.store.settle(settlement)
        return web.Response(status=204)

    async def usage_records(self, request: web.Request) -> web.Response:
        """POST /v1/usage/records: ``[RequestRecord, ...]`` -> 204."""
        records = await self._body(request, list[RequestRecord])
        if not self._seen_before(request):
            store_usage = getattr(self.store, "store_usage", None) or getattr(self.store, "record", None)
            if store_usage is None:
                return _error(501, "this store keeps no usage")
            for record in records:
                result = store_usage(record)
                if inspect.isawaitable(result):
                    await result
        return web.Response(status=204)

    async def usage(self, request: web.Request) -> web.Response:
        """GET /v1/usage?group_by=key,model&since=&until=&key=&alias=&provider= -> ``UsageReport``."""
        params: dict[str, Any] = {}
        q = request.query
        if q.get("group_by"):
            params["group_by"] = [g.strip() for g in q["group_by"].split(",") if g.strip()]
        for name in ("since", "until"):
            if q.get(name):
                params[name] = float(q[name])
        for name in ("key", "alias", "provider"):
            if name in q:
                params[name] = q[name]
        query = msgspec.convert(params, UsageQuery)
        return _json(await self.store.usage(query))

    async def mark_cooldowns(self, request: web.Request) -> web.Response:
        """POST /v1/cooldowns: ``[CooldownMark, ...]`` -> 204 (each extends, never shortens)."""
        marks = await self._body(request, list[CooldownMark])
        if not self._seen_before(request):
            for mark in marks:
                await self.store.mark_cooldown(mark)
        return web.Response(status=204)

    async def clear_cooldowns(self, request: web.Request) -> web.Response:
        """POST /v1/cooldowns/clear: ``[CooldownClear, ...]`` -> 204 (each mark is removed)."""
        clears = await self._body(request, list[CooldownClear])
        if not self._seen_before(request):
            for clear in clears:
                await self.store.clear_cooldown(clear.provider, clear.key)
        return web.Response(status=204)

    async def cooldowns(self, request: web.Request) -> web.Response:
        """GET /v1/cooldowns -> ``[CooldownMark, ...]`` in force."""
        return _json(list(await self.store.cooldowns()))

    async def ready(self, request: web.Request) -> web.Response:
        """GET /v1/ready -> 200 ``{"ok": true, ...}`` or 503 ``{"ok": false, ...}``."""
        details = await self.store.ready()
        return _json(details, 200 if details.get("ok") else 503)

    @staticmethod
    def _name(request: web.Request) -> str:
        names = request.query.getall("name", [])
        if len(names) != 1 or not names[0]:
            raise ValueError("name: exactly one non-empty query parameter 'name' is required")
        return names[0]

    async def get_state(self, request: web.Request) -> web.Response:
        """GET /v1/state?name= -> 200 the value (``application/octet-stream``), or 404."""
        value = await self.state.get_state(self._name(request))
        if value is None:
            return _error(404, "no such state")
        return web.Response(body=value, content_type="application/octet-stream")

    async def put_state(self, request: web.Request) -> web.Response:
        """PUT /v1/state?name=&ttl= with the value as the body -> 204 (replaces any)."""
        name = self._name(request)
        try:
            ttl = float(request.query.get("ttl", ""))
        except ValueError:
            raise ValueError("ttl: a number of seconds is required") from None
        if not math.isfinite(ttl):
            raise ValueError("ttl: must be a finite number of seconds")
        await self.state.put_state(name, await request.read(), ttl)
        return web.Response(status=204)

    async def delete_state(self, request: web.Request) -> web.Response:
        """DELETE /v1/state?name= -> 200 ``{"deleted": bool}`` (``true`` when a value was removed)."""
        return _json({"deleted": await self.state.delete_state(self._name(request))})
