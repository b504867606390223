"""TruckLLM's MCP gateway: one streamable-HTTP MCP endpoint at ``/mcp`` for every upstream server.

Clients (agents, IDEs) connect to ``/mcp`` with a gateway key (``Authorization: Bearer``, the
keys of ``/v1``) and see the tools, resources and prompts of the configured upstream MCP servers
(streamable HTTP or stdio), namespaced ``<server>__<name>`` and sorted, as far as the key's
``access`` rules allow; the gateway holds the servers' credentials. Every tool call is recorded
(endpoint ``mcp.tools/call``) and counted (``truckllm_mcp_*``); a server that fails is left out
until it is back. Configure it as a ``loggers:`` entry (:mod:`truckllm_mcp.options`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from truckllm import hookimpl
from truckllm.kit.view import GatewayView
from truckllm.kit.web import Mount
from truckllm_mcp.component import McpGateway, jsonrpc_error
from truckllm_mcp.options import AccessRule, McpOptions, ServerOptions

__all__ = [
    "PREFIX",
    "TRUCKLLM_API",
    "AccessRule",
    "McpEndpoint",
    "McpGateway",
    "McpOptions",
    "ServerOptions",
    "mcp_routes",
    "register_loggers",
    "register_mounts",
]

TRUCKLLM_API = 1
"""The plugin API version this plugin was written for."""

PREFIX = "/mcp"
"""Where the MCP endpoint is served."""


class McpEndpoint:
    """The ASGI app at :data:`PREFIX`: hands each request to the running :class:`McpGateway`."""

    def __init__(self, view: GatewayView) -> None:
        self.view = view

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request, or say that no MCP server is configured."""
        component = self.view.component(McpGateway)
        if component is None:
            await jsonrpc_error(
                send, 404, -32601, "No MCP servers are configured (loggers: [{mcp: {servers: ...}}])."
            )
            return
        await component.serve(scope, receive, send)


def mcp_routes(view: GatewayView) -> Sequence[BaseRoute]:
    """The mount's one route: ``/mcp`` (and ``/mcp/``), every method."""
    return [Route("/", McpEndpoint(view))]


@hookimpl
def register_mounts(register: Callable[[Mount], None]) -> None:
    """Serve MCP at :data:`PREFIX` to gateway keys."""
    register(Mount(name="mcp", prefix=PREFIX, routes=mcp_routes, auth="gateway_key"))


@hookimpl
def register_loggers(register: Callable[[str, type], None]) -> None:
    """Offer the ``mcp`` component (configured under ``loggers:``)."""
    register("mcp", McpGateway)
