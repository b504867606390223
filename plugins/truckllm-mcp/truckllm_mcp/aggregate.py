"""The gateway's own MCP server: every upstream's tools, resources and prompts in one, per caller.

``tools/list`` is the sorted union of the tools of the servers that are up, filtered by the
caller's grant; ``tools/call`` goes to the server the namespaced name names, with that server's
credentials, and is recorded (endpoint ``mcp.tools/call``) and counted. A tool the caller may
not use answers exactly like a tool that does not exist (``-32602 Unknown tool``), so that a key
learns nothing of what others may use. A server that is down (or fails during the call) gives
a tool result marked ``isError`` naming it, so that an agent's model reads why and carries on.
A call's arguments and its result pass the gateway's guardrails (:mod:`truckllm_mcp.guard`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

import mcp_types as types
from loguru import logger
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS

from truckllm.errors import GatewayError
from truckllm.kit.view import GatewayView
from truckllm.kit.web import GatewayCaller, gateway_caller
from truckllm.types import GuardrailResult, RequestRecord
from truckllm_mcp.access import Grant, grant_for
from truckllm_mcp.guard import GUARDRAIL_BLOCKED, guard_arguments, guard_result
from truckllm_mcp.metrics import CallMetrics
from truckllm_mcp.names import split
from truckllm_mcp.options import McpOptions
from truckllm_mcp.upstream import TooLarge, Unavailable, Upstream

__all__ = ["RATE_LIMITED", "Aggregator"]

RATE_LIMITED = -32029
"""The JSON-RPC error code of a tool call refused by the gateway key's ``rpm``."""

_STATUS = {
    "ok": 200,
    "tool_error": 200,
    "unknown_tool": 404,
    "denied": 403,
    "rate_limited": 429,
    "unavailable": 503,
    "upstream_error": 502,
    "too_large": 502,
    "blocked": 400,
}


def _caller(ctx: ServerRequestContext[Any, Any]) -> GatewayCaller | None:
    request = ctx.request
    scope = getattr(request, "scope", None)
    return gateway_caller(scope) if isinstance(scope, dict) else None


def _error_result(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


class Aggregator:
    """Builds the gateway's MCP :class:`~mcp.server.lowlevel.Server` over ``upstreams``.

    :param options: the component's options (access rules, bounds).
    :param upstreams: server name → its connection.
    :param view: the gateway (records, rpm, scrubbing).
    :param metrics: where tool calls are counted.
    """

    def __init__(
        self, options: McpOptions, upstreams: Mapping[str, Upstream], view: GatewayView, metrics: CallMetrics
    ) -> None:
        self.options = options
        self.upstreams = upstreams
        self.view = view
        self.metrics = metrics

    def grant(self, caller: GatewayCaller | None) -> Grant:
        """What ``caller`` may use."""
        return grant_for(self.options.access, caller)

    def server(self) -> Server[Any]:
        """A fresh low-level MCP server answering for the whole gateway."""
        return Server(
            "truckllm-mcp",
            version="0.1.0",
            title="TruckLLM MCP gateway",
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            on_list_resources=self._list_resources,
            on_list_resource_templates=self._list_templates,
            on_read_resource=self._read_resource,
            on_list_prompts=self._list_prompts,
            on_get_prompt=self._get_prompt,
        )

    def _up(self, grant: Grant) -> list[Upstream]:
        return [
            self.upstreams[name]
            for name in sorted(self.upstreams)
            if self.upstreams[name].state == "up" and grant.server(name)
        ]

    # --- listings -----------------------------------------------------------------------------

    def tools_for(self, caller: GatewayCaller | None) -> list[types.Tool]:
        """The tools ``caller`` may call now, sorted by namespaced name."""
        grant = self.grant(caller)
        tools = [
            tool
            for up in self._up(grant)
            for full, tool in up.listing.tools.items()
            if grant.tool(up.name, full)
        ]
        return sorted(tools, key=lambda t: t.name)

    async def _list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=self.tools_for(_caller(ctx)))

    async def _list_resources(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        seen: dict[str, types.Resource] = {}
        for up in self._up(self.grant(_caller(ctx))):
            for uri, resource in up.listing.resources.items():
                seen.setdefault(uri, resource)  # a URI two servers offer: the first server's (by name)
        return types.ListResourcesResult(resources=[seen[uri] for uri in sorted(seen)])

    async def _list_templates(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        templates = [t for up in self._up(self.grant(_caller(ctx))) for t in up.listing.templates]
        return types.ListResourceTemplatesResult(resource_templates=templates)

    async def _list_prompts(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        prompts = [p for up in self._up(self.grant(_caller(ctx))) for p in up.listing.prompts.values()]
        return types.ListPromptsResult(prompts=sorted(prompts, key=lambda p: p.name))

    # --- resources and prompts ----------------------------------------------------------------

    async def _read_resource(
        self, ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        uri = str(params.uri)
        owner = next((up for up in self._up(self.grant(_caller(ctx))) if uri in up.listing.resources), None)
        if owner is None:
            raise MCPError(INVALID_PARAMS, f"Unknown resource: {uri[:200]}")
        try:
            result = await owner.read_resource(uri)
        except MCPError as exc:
            raise MCPError(exc.code, owner.scrub(exc.message)[:1000]) from None
        except Unavailable as exc:
            raise MCPError(INTERNAL_ERROR, str(exc)) from None
        self._check_size(result, owner)
        return result

    async def _get_prompt(
        self, ctx: ServerRequestContext[Any, Any], params: types.GetPromptRequestParams
    ) -> types.GetPromptResult:
        parts = split(params.name)
        grant = self.grant(_caller(ctx))
        owner = self.upstreams.get(parts[0]) if parts is not None else None
        if (
            parts is None
            or owner is None
            or owner not in self._up(grant)
            or params.name not in owner.listing.prompts
        ):
            raise MCPError(INVALID_PARAMS, f"Unknown prompt: {params.name[:200]}")
        try:
            result = await owner.get_prompt(parts[1], params.arguments)
        except MCPError as exc:
            raise MCPError(exc.code, owner.scrub(exc.message)[:1000]) from None
        except Unavailable as exc:
            raise MCPError(INTERNAL_ERROR, str(exc)) from None
        self._check_size(result, owner)
        return result

    def _check_size(self, result: types.Result, owner: Upstream) -> None:
        size = len(result.model_dump_json(by_alias=True, exclude_none=True))
        if size > self.options.max_result_bytes:
            raise MCPError(
                INTERNAL_ERROR,
                f"The MCP server {owner.name!r} answered {size} bytes; the gateway passes at most "
                f"{self.options.max_result_bytes}.",
            )

    # --- tool calls ---------------------------------------------------------------------------

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        caller = _caller(ctx)
        started, clock = time.time(), time.monotonic()
        full = params.name
        parts = split(full)
        server, tool = parts if parts is not None else ("", full)
        grant = self.grant(caller)
        up = self.upstreams.get(server)
        exists = up is not None and (up.state != "up" or full in up.listing.tools)
        if up is None or not exists or not grant.tool(server, full):
            outcome = "denied" if exists else "unknown_tool"  # counted apart, answered alike
            self._account(caller, started, clock, server, tool, outcome, None, "unknown tool")
            raise MCPError(INVALID_PARAMS, f"Unknown tool: {full[:200]}")
        if self.options.count_rpm and caller is not None:
            try:
                await self.view.admit(caller)
            except GatewayError as exc:
                self._account(caller, started, clock, server, tool, "rate_limited", None, exc.message)
                raise MCPError(RATE_LIMITED, exc.message) from None
        arguments, decision = await guard_arguments(self.view, caller, full, params.arguments)
        checked = decision.results
        if decision.action == "block":
            self._account(caller, started, clock, server, tool, "blocked", None, decision.message, checked)
            raise MCPError(GUARDRAIL_BLOCKED, decision.message)
        upstream_started = time.monotonic()
        try:
            result = await up.call_tool(tool, arguments)
        except MCPError as exc:
            message = up.scrub(exc.message)[:1000]
            self._account(caller, started, clock, server, tool, "upstream_error", upstream_started, message)
            raise MCPError(exc.code, message) from None
        except TooLarge as exc:
            self._account(caller, started, clock, server, tool, "too_large", upstream_started, str(exc))
            return _error_result(str(exc))
        except Unavailable as exc:
            self._account(caller, started, clock, server, tool, "unavailable", upstream_started, str(exc))
            return _error_result(str(exc))
        result = self._scrubbed(result, up)
        size = len(result.model_dump_json(by_alias=True, exclude_none=True))
        if size > self.options.max_result_bytes:
            limit = self.options.max_result_bytes
            message = f"The tool {full!r} answered {size} bytes; the gateway passes at most {limit}."
            self._account(caller, started, clock, server, tool, "too_large", upstream_started, message)
            return _error_result(message)
        result, decision = await guard_result(self.view, caller, full, result)
        checked += decision.results
        if decision.action == "block":
            message = decision.message
            self._account(caller, started, clock, server, tool, "blocked", upstream_started, message, checked)
            raise MCPError(GUARDRAIL_BLOCKED, message)
        outcome = "tool_error" if result.is_error else "ok"
        self._account(caller, started, clock, server, tool, outcome, upstream_started, None, checked)
        return result

    @staticmethod
    def _scrubbed(result: types.CallToolResult, up: Upstream) -> types.CallToolResult:
        """The result without the credentials the gateway holds for ``up`` (an echo of them)."""
        blocks: list[types.ContentBlock] = []
        changed = False
        for block in result.content:
            if isinstance(block, types.TextContent):
                text = up.held(block.text)
                if text != block.text:
                    block = block.model_copy(update={"text": text})
                    changed = True
            blocks.append(block)
        return result.model_copy(update={"content": blocks}) if changed else result

    def _account(
        self,
        caller: GatewayCaller | None,
        started: float,
        clock: float,
        server: str,
        tool: str,
        outcome: str,
        upstream_started: float | None,
        error: str | None,
        guardrails: tuple[GuardrailResult, ...] = (),
    ) -> None:
        now = time.monotonic()
        upstream_s = now - upstream_started if upstream_started is not None else None
        known = server in self.upstreams
        self.metrics.observe(server if known else "", tool if known else "", outcome, upstream_s)
        status = _STATUS[outcome]
        record = RequestRecord(
            request_id="mcp_" + os.urandom(12).hex(),
            started_at=started,
            endpoint="mcp.tools/call",
            dialect="mcp",
            alias=f"{server}__{tool}"[:200] if known else "",
            gateway_key=caller.name if caller is not None else None,
            stream=False,
            status=status,
            latency_ms=round((now - clock) * 1000, 3),
            upstream_ms=round(upstream_s * 1000, 3) if upstream_s is not None else None,
            provider=server if known else None,
            provider_type="mcp",
            model=tool[:200] if known else None,
            error_kind=None if outcome in ("ok", "tool_error") else outcome,
            error_message=error,
            extra={"mcp_server": server[:64], "mcp_tool": tool[:200], "mcp_outcome": outcome},
            team=caller.team if caller is not None else None,
            org=caller.org if caller is not None else None,
            tags=caller.tags if caller is not None else (),
            guardrails=guardrails,
        )
        try:
            self.view.record(record)
        except Exception:  # a record that cannot be queued never fails the call
            logger.bind(plugin="mcp").opt(exception=True).error("an MCP tool call could not be recorded")
