"""The ``mcp`` component: the upstream connections and the MCP session manager, for one config.

The kernel builds it from its ``loggers:`` entry (and builds a new one when that entry changes
on reload); ``startup`` connects the upstream servers (waiting at most their
``connect_timeout`` for the first listing, so that the first ``tools/list`` is complete) and
starts the streamable-HTTP session manager; ``shutdown`` stops both. The mount at ``/mcp``
hands each admitted request to the running component's :meth:`McpGateway.serve`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Mapping
from typing import ClassVar

from loguru import logger
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp_types import INVALID_REQUEST
from starlette.types import Receive, Scope, Send

from truckllm import hookimpl
from truckllm.kit.view import GatewayView
from truckllm.kit.web import gateway_caller
from truckllm.types import RequestRecord
from truckllm_mcp.aggregate import Aggregator
from truckllm_mcp.metrics import OUTCOMES, CallMetrics, prometheus_text
from truckllm_mcp.options import McpOptions
from truckllm_mcp.sdklog import SdkLogRoute
from truckllm_mcp.upstream import Upstream

__all__ = ["MAX_REQUEST_BYTES", "McpGateway", "jsonrpc_error"]

MAX_REQUEST_BYTES = 4 * 1024 * 1024
"""The largest MCP request body the endpoint reads (413 above)."""

FORBIDDEN = -32003
"""The JSON-RPC error code answered (HTTP 403) to a gateway key that may use no MCP server."""


async def jsonrpc_error(send: Send, status: int, code: int, message: str) -> None:
    """Answer a JSON-RPC error with no request id, with HTTP ``status``."""
    body = json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class McpGateway:
    """The component configured as ``loggers: [{mcp: {...}}]`` (see :mod:`truckllm_mcp.options`)."""

    Options = McpOptions
    name: ClassVar[str] = "mcp"
    """Its name in ``loggers:``."""
    metrics_counters: ClassVar[frozenset[str]] = frozenset(f"tool_calls_{o}" for o in OUTCOMES)
    """The tool-call totals are counters; the servers' figures are gauges."""

    def __init__(self, options: McpOptions) -> None:
        self.options = options
        self.upstreams: dict[str, Upstream] = {}
        self.calls = CallMetrics()
        self.aggregator: Aggregator | None = None
        self._manager: StreamableHTTPSessionManager | None = None
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._log_route: SdkLogRoute | None = None

    @property
    def metrics(self) -> Mapping[str, float]:
        """Tool calls by outcome, servers up and down, tools offered."""
        return self.calls.figures(self.upstreams)

    @hookimpl
    async def startup(self, app: GatewayView) -> None:
        """Connect the upstream servers and start serving MCP."""
        if self._task is not None:
            return
        self.upstreams = {
            name: Upstream(name, server, self.options, app.scrub, judge=app.address_problem)
            for name, server in sorted(self.options.servers.items())
        }
        self._log_route = SdkLogRoute(self._scrub_sdk(app))
        self._log_route.install()
        for upstream in self.upstreams.values():
            upstream.start()
        self.aggregator = Aggregator(self.options, self.upstreams, app, self.calls)
        self._manager = StreamableHTTPSessionManager(
            app=self.aggregator.server(),
            stateless=True,
            json_response=True,
            max_request_body_size=MAX_REQUEST_BYTES,
        )
        self._task = asyncio.get_running_loop().create_task(self._run(self._manager), name="truckllm-mcp")
        await self._first_listing()

    def _scrub_sdk(self, app: GatewayView) -> Callable[[str], str]:
        """Scrubs an SDK log line: every upstream's held credentials, then the config's secrets."""
        upstreams = list(self.upstreams.values())

        def scrub(text: str) -> str:
            for upstream in upstreams:
                text = upstream.held(text)
            return app.scrub(text)

        return scrub

    async def _first_listing(self) -> None:
        longest = max((float(s.connect_timeout) for s in self.options.servers.values()), default=0.0)
        settled = asyncio.gather(*(u.settled.wait() for u in self.upstreams.values()))
        with contextlib.suppress(TimeoutError):  # a server still connecting joins the listing when up
            await asyncio.wait_for(settled, timeout=longest + 0.5)
        await asyncio.wait_for(self._ready.wait(), timeout=5)
        up = sorted(n for n, u in self.upstreams.items() if u.state == "up")
        logger.bind(plugin="mcp").info(
            "MCP gateway at /mcp: {} of {} servers up ({})",
            len(up),
            len(self.upstreams),
            ", ".join(up) or "none",
        )

    async def _run(self, manager: StreamableHTTPSessionManager) -> None:
        async with manager.run():
            self._ready.set()
            await self._stop.wait()

    @hookimpl
    async def shutdown(self, app: GatewayView) -> None:
        """Stop serving MCP and close every upstream connection."""
        self._stop.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(task, timeout=5)
            except (TimeoutError, Exception):
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await asyncio.gather(*(u.stop() for u in self.upstreams.values()), return_exceptions=True)
        if self._log_route is not None:
            self._log_route.uninstall()

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one MCP request the kernel admitted (``Mount(auth="gateway_key")``)."""
        aggregator, manager = self.aggregator, self._manager
        if aggregator is None or manager is None or self._stop.is_set():
            await jsonrpc_error(send, 503, INVALID_REQUEST, "The MCP gateway is not running.")
            return
        await self._ready.wait()
        if not aggregator.grant(gateway_caller(scope)).anything:
            await jsonrpc_error(send, 403, FORBIDDEN, "This API key may not use the MCP gateway.")
            return
        await manager.handle_request(scope, receive, send)

    @hookimpl
    def render_metrics(self) -> bytes:
        """``truckllm_mcp_*``: servers up, tools offered, failures; tool calls and their time."""
        return prometheus_text(self.calls, self.upstreams)

    @hookimpl
    def emit_log(self, record: RequestRecord) -> None:
        """Nothing: the component reads no records (a logger-style component must have this hook)."""
        return None
