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

Writes carry an ``Idempotency-Key`` header: a batch seen before is acknowledged and not applied
again (the client resends a batch whose answer it did not get).
"""

from __future__ import annotations

import hmac
import inspect
import socket
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from truckllm._internal.localstate import LocalStore, StoreUnavailable
from truckllm._internal.store import (
    Admission,
    CooldownClear,
    CooldownMark,
    Settlement,
    Store,
    UsageQuery,
)
from truckllm.types import RequestRecord

__all__ = ["PROTOCOL_VERSION", "LocalStore", "StoreServer"]

PROTOCOL_VERSION = 1
"""The ``/v1`` of every path."""

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_JSON = "application/json"


def _json(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(value), status=status, content_type=_JSON)


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


class StoreServer:
    """The store REST protocol over ``store``, served by aiohttp.

    :param store: any store (started and closed by the caller).
    :param token: require ``Authorization: Bearer <token>`` when set.
    :param remember: how many ``Idempotency-Key`` values are remembered.
    """

    def __init__(self, store: Store, *, token: str | None = None, remember: int = 4096) -> None:
        self.store = store
        self.token = token
        self.remember = remember
        self.url = ""
        self.port = 0
        self.requests = 0
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._runner: web.AppRunner | None = None
        self.app = self.make_app()

    def make_app(self) -> web.Application:
        """The aiohttp application (to mount elsewhere, or serve with :meth:`start`)."""
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post("/v1/admit", self.admit)
        app.router.add_post("/v1/settle", self.settle)
        app.router.add_post("/v1/usage/records", self.usage_records)
        app.router.add_get("/v1/usage", self.usage)
        app.router.add_post("/v1/cooldowns", self.mark_cooldowns)
        app.router.add_get("/v1/cooldowns", self.cooldowns)
        app.router.add_post("/v1/cooldowns/clear", self.clear_cooldowns)
        app.router.add_get("/v1/ready", self.ready)
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
