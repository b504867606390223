"""One upstream MCP server: its connection, kept up by a supervisor task, and what it offers.

The supervisor connects (streamable HTTP with the configured headers, or a stdio child with its
environment), lists the server's tools, resources, resource templates and prompts, and lists
them again every ``refresh``, or at once when a call saw the connection fail. Any failure (a
refused connection, a timeout, a crash, an answer that is not MCP) marks the server ``down``:
its tools leave the listing, the failure is logged (scrubbed) and counted, and the supervisor
reconnects after a backoff that doubles per failure up to ``backoff_max``. Calls to a server
that is down fail at once with an MCP error; the other servers never notice.

Every connection obeys the gateway's network policy (:mod:`truckllm_mcp.net`; a URL whose host
is a refused literal address is never dialled), every answer is bounded before it is parsed
(``max_answer_bytes``: an HTTP body, an event of an event stream, a stdio line), and a server's
``list_changed`` (a ``notifications/*/list_changed`` on a 2025-era connection, a
``subscriptions/listen`` event on a 2026-era one) lists it again at once.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import math
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import anyio
import anyio.lowlevel
import httpx2
import mcp_types as types
from loguru import logger
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.client.subscriptions import ListenNotSupportedError
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, PARSE_ERROR, REQUEST_TIMEOUT

from truckllm_mcp.names import namespaced
from truckllm_mcp.net import TOO_LARGE, AddressJudge, upstream_http_client
from truckllm_mcp.options import McpOptions, ServerOptions
from truckllm_mcp.secrets import SecretText
from truckllm_mcp.stdio import stdio_transport

__all__ = ["Listing", "State", "TooLarge", "Unavailable", "Upstream", "allow_all", "json_depth"]

State = Literal["connecting", "up", "down", "stopped"]
"""Where a server's connection is."""

MAX_SCHEMA_BYTES = 256 * 1024
"""A tool whose input schema is larger than this (JSON) is left out."""
MAX_DEPTH = 64
"""A tool whose input schema nests deeper than this is left out."""
MAX_TEXT = 16 * 1024
"""Descriptions are cut to this many characters."""
MAX_PAGES = 50
"""Listing pages read per kind at most (a server whose cursor never ends stops here)."""


_TRANSPORT_CODES = frozenset({CONNECTION_CLOSED, REQUEST_TIMEOUT, PARSE_ERROR})
"""MCP errors the SDK raises itself when the connection failed or the answer could not be read."""


LIST_CHANGED = (
    types.ToolListChangedNotification,
    types.PromptListChangedNotification,
    types.ResourceListChangedNotification,
)
"""The notifications that list a server again at once."""

RELISTEN = 1.0
"""Seconds before a ``subscriptions/listen`` stream that ended is opened again (at least)."""


class Unavailable(Exception):
    """The server cannot serve a call now (down, or its connection failed during the call)."""


class TooLarge(Unavailable):
    """The server's answer was larger than ``max_answer_bytes`` (read no further)."""


def allow_all(address: str) -> str | None:
    """The network policy of a gateway that allows every address (tests)."""
    return None


def _too_large(message: str) -> bool:
    """Whether a transport failure's message says the answer was over the bound (ours, or the
    SDK's event-size limit)."""
    return TOO_LARGE in message or ("Server-sent event exceeded" in message and "byte limit" in message)


def json_depth(value: object, limit: int = MAX_DEPTH) -> int:
    """How deep ``value`` nests (containers only), counting no further than ``limit + 1``."""
    depth = 0
    level: list[object] = [value]
    while level and depth <= limit:
        nested: list[object] = []
        for item in level:
            if isinstance(item, dict):
                nested.extend(item.values())
            elif isinstance(item, list):
                nested.extend(item)
        if not nested:
            break
        depth += 1
        level = nested
    return depth


@dataclass(frozen=True)
class Listing:
    """What one server offers, as the gateway shows it (names namespaced, bounded).

    :ivar tools: namespaced name → the tool (its ``name`` namespaced).
    :ivar resources: URI → resource.
    :ivar templates: the resource templates.
    :ivar prompts: namespaced name → the prompt (its ``name`` namespaced).
    :ivar skipped: items left out (a bad name, a schema too large or too deep, over ``max_items``).
    """

    tools: Mapping[str, types.Tool] = field(default_factory=dict)
    resources: Mapping[str, types.Resource] = field(default_factory=dict)
    templates: tuple[types.ResourceTemplate, ...] = ()
    prompts: Mapping[str, types.Prompt] = field(default_factory=dict)
    skipped: int = 0


def _cut(text: str | None) -> str | None:
    return text[:MAX_TEXT] if isinstance(text, str) else text


class Upstream:
    """One configured server and its supervisor (see the module docstring).

    :param name: the server's name (``servers.<name>``).
    :param options: its options.
    :param settings: the component's options (refresh, backoff, bounds).
    :param scrub: the kernel's scrubber (config secrets, key-looking strings).
    :param judge: the gateway's network policy (``GatewayView.address_problem``).
    :param sleep: waits between reconnections (injected in tests).
    :param clock: a monotonic clock (for ``since``).
    """

    def __init__(
        self,
        name: str,
        options: ServerOptions,
        settings: McpOptions,
        scrub: Callable[[str], str],
        *,
        judge: AddressJudge = allow_all,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.options = options
        self.settings = settings
        self.held = SecretText([*options.headers.values(), *options.env.values()])
        self._scrub = scrub
        self.judge = judge
        self._sleep = sleep
        self._clock = clock
        self.state: State = "connecting"
        self.error: str | None = None
        self.since = clock()
        self.failures = 0
        self.connects = 0
        self.listing = Listing()
        self._client: Client | None = None
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._broken: str | None = None
        self.list_changes = 0
        """``list_changed`` notifications and events received (each lists the server again)."""
        self.settled = asyncio.Event()
        """Set once the first connection attempt ended (up or down)."""

    # --- text from upstream -------------------------------------------------------------------

    def scrub(self, text: str) -> str:
        """``text`` without this server's credentials, the config's secrets or key-looking strings."""
        return self._scrub(self.held(text))

    # --- the supervisor -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the supervisor (in the running loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"truckllm-mcp-{self.name}")

    async def stop(self) -> None:
        """Stop the supervisor and close the connection."""
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._client = None
        self.state = "stopped"

    def kick(self) -> None:
        """List again now (a call saw the connection fail, or the server's listing changed)."""
        self._kick.set()

    async def on_message(self, message: object) -> None:
        """The SDK's message handler: a 2025-era ``list_changed`` notification lists again now."""
        if isinstance(message, LIST_CHANGED):
            self.list_changes += 1
            self.kick()
        await anyio.lowlevel.checkpoint()

    async def _listen(self, client: Client) -> None:
        """On a 2026-era connection, follow the server's ``list_changed`` events (as long as the
        connection is up): each lists the server again now; a stream that ends is opened again
        after :data:`RELISTEN` seconds, doubling while no event comes, at most ``refresh``
        (listing again too, since events may have been missed). Nothing to do on a 2025-era
        connection or for a server that announces no ``listChanged``."""
        caps = client.server_capabilities
        tools = bool(caps.tools is not None and caps.tools.list_changed)
        prompts = bool(caps.prompts is not None and caps.prompts.list_changed)
        resources = bool(caps.resources is not None and caps.resources.list_changed)
        if not (tools or prompts or resources):
            return
        opened = 0
        delay = RELISTEN
        while True:
            try:
                async with client.listen(
                    tools_list_changed=tools, prompts_list_changed=prompts, resources_list_changed=resources
                ) as subscription:
                    if opened:
                        self.kick()
                    opened += 1
                    async for _event in subscription:
                        self.list_changes += 1
                        delay = RELISTEN
                        self.kick()
            except ListenNotSupportedError:
                return  # a 2025-era connection: notifications come through on_message
            except Exception as exc:  # the stream failed: the supervisor's listing finds out why
                logger.bind(plugin="mcp").debug(
                    "mcp server {}: list_changed stream ended: {}", self.name, self.scrub(describe(exc))[:300]
                )
            await self._sleep(min(delay, float(self.settings.refresh)))
            delay *= 2  # a server dropping every stream is not listed again each second

    async def _run(self) -> None:
        backoff = float(self.settings.backoff_base)
        while not self._stopping:
            try:
                # the deadline covers connecting and the first listing, then is lifted: the
                # scope encloses the connection's task groups, as anyio's scopes must nest
                with anyio.fail_after(float(self.options.connect_timeout)) as connecting:
                    async with AsyncExitStack() as stack:
                        client = await self._connect(stack)
                        listing = await self._list(client)
                        connecting.deadline = math.inf
                        self._up(client, listing)
                        backoff = float(self.settings.backoff_base)
                        listen = await stack.enter_async_context(anyio.create_task_group())
                        listen.start_soon(self._listen, client)
                        while True:
                            await self._wait(float(self.settings.refresh))
                            with anyio.fail_after(float(self.options.timeout)):
                                listing = await self._list(client)
                            self.listing = listing
            except asyncio.CancelledError:
                if self._stopping:
                    raise
                self._down(TimeoutError("the connection was cancelled"))
            except Exception as exc:  # every failure of one server is that server's alone
                self._down(exc)
            if self._stopping:
                return
            await self._sleep(backoff)
            backoff = min(backoff * 2, float(self.settings.backoff_max))

    async def _wait(self, seconds: float) -> None:
        with anyio.move_on_after(seconds):
            await self._kick.wait()
        self._kick.clear()

    async def _connect(self, stack: AsyncExitStack) -> Client:
        options = self.options
        self.state = "connecting"
        self._broken = None
        limit = self.settings.max_answer_bytes
        if options.url is not None:
            refused = literal_problem(options.url, self.judge)
            if refused is not None:
                raise ConnectionRefusedError(refused)  # never dialled
            http = await stack.enter_async_context(
                upstream_http_client(
                    {k: v.reveal() for k, v in options.headers.items()},
                    httpx2.Timeout(float(options.connect_timeout), read=float(options.timeout) + 5),
                    self.judge,
                    limit,
                )
            )
            transport: Any = streamable_http_client(options.url, http_client=http, max_sse_event_size=limit)
        else:
            assert options.command is not None
            # the child's stderr may print the secrets it was given: it goes nowhere
            errlog = stack.enter_context(open(os.devnull, "w"))  # noqa: ASYNC230, SIM115 - /dev/null
            transport = stdio_transport(
                options.command,
                options.args,
                {k: v.reveal() for k, v in options.env.items()},
                options.cwd,
                errlog,
                limit,
                self._on_broken,
            )
        client = Client(
            transport,
            read_timeout_seconds=float(options.timeout),
            cache=None,
            message_handler=self.on_message,
        )
        return await stack.enter_async_context(client)

    def _on_broken(self, reason: str) -> None:
        self._broken = reason

    def _up(self, client: Client, listing: Listing) -> None:
        was = self.state
        self._client = client
        self.listing = listing
        self.state = "up"
        self.error = None
        self.since = self._clock()
        self.connects += 1
        self.settled.set()
        if was != "up":
            logger.bind(plugin="mcp").info(
                "mcp server {} is up: {} tools, {} resources, {} prompts",
                self.name,
                len(listing.tools),
                len(listing.resources),
                len(listing.prompts),
            )

    def _down(self, exc: BaseException) -> None:
        self._client = None
        self.listing = Listing()
        self.failures += 1
        message = self.scrub(self._broken or describe(exc))[:500]
        if message != self.error:  # once per distinct failure, not once per reconnection attempt
            logger.bind(plugin="mcp").warning("mcp server {} is down: {}", self.name, message)
        self.state = "down"
        self.error = message
        self.since = self._clock()
        self.settled.set()

    # --- listing ------------------------------------------------------------------------------

    async def _pages(self, fetch: Callable[[str | None], Awaitable[Any]], attr: str) -> list[Any]:
        items: list[Any] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            page = await fetch(cursor)
            items.extend(getattr(page, attr))
            cursor = page.next_cursor
            if not cursor or len(items) > self.settings.max_items:
                break
        return items

    async def _list(self, client: Client) -> Listing:
        caps = client.server_capabilities
        limit = self.settings.max_items
        skipped = 0
        tools: dict[str, types.Tool] = {}
        if caps.tools is not None:
            for tool in await self._pages(lambda c: client.list_tools(cursor=c), "tools"):
                full = namespaced(self.name, tool.name)
                if full is None or full in tools or len(tools) >= limit or not _schema_ok(tool.input_schema):
                    skipped += 1
                    continue
                tools[full] = tool.model_copy(update={"name": full, "description": _cut(tool.description)})
        resources: dict[str, types.Resource] = {}
        templates: list[types.ResourceTemplate] = []
        if caps.resources is not None:
            for resource in await self._pages(lambda c: client.list_resources(cursor=c), "resources"):
                if resource.uri in resources or len(resources) >= limit:
                    skipped += 1
                    continue
                resources[resource.uri] = resource.model_copy(
                    update={"description": _cut(resource.description)}
                )
            for template in await self._pages(
                lambda c: client.list_resource_templates(cursor=c), "resource_templates"
            ):
                if len(templates) >= limit:
                    skipped += 1
                    continue
                templates.append(template)
        prompts: dict[str, types.Prompt] = {}
        if caps.prompts is not None:
            for prompt in await self._pages(lambda c: client.list_prompts(cursor=c), "prompts"):
                full = namespaced(self.name, prompt.name)
                if full is None or full in prompts or len(prompts) >= limit:
                    skipped += 1
                    continue
                prompts[full] = prompt.model_copy(
                    update={"name": full, "description": _cut(prompt.description)}
                )
        if skipped and skipped != self.listing.skipped:
            logger.bind(plugin="mcp").warning(
                "mcp server {}: {} items left out of its listing", self.name, skipped
            )
        return Listing(
            tools=tools, resources=resources, templates=tuple(templates), prompts=prompts, skipped=skipped
        )

    # --- calls --------------------------------------------------------------------------------

    async def _call(self, what: Callable[[Client], Awaitable[Any]]) -> Any:
        client = self._client
        if client is None or self.state != "up":
            raise Unavailable(f"the MCP server {self.name!r} is unavailable")
        try:
            with anyio.fail_after(float(self.options.timeout)):
                return await what(client)
        except MCPError as exc:
            if exc.code not in _TRANSPORT_CODES:
                raise  # the server's own answer
            reason = self.scrub(self._broken or (exc.message.splitlines() or [""])[0])[:300]
            if _too_large(reason):
                raise TooLarge(f"the MCP server {self.name!r} failed: {reason}") from None
            self.kick()
            raise Unavailable(f"the MCP server {self.name!r} failed: {reason}") from None
        except TimeoutError:
            raise Unavailable(f"the MCP server {self.name!r} did not answer in time") from None
        except Exception as exc:
            self.kick()
            raise Unavailable(
                f"the MCP server {self.name!r} failed: {self.scrub(describe(exc))[:300]}"
            ) from None

    async def call_tool(self, tool: str, arguments: dict[str, Any] | None) -> types.CallToolResult:
        """Call ``tool`` (the server's own name) with ``arguments``.

        :raises Unavailable: the server is down, failed during the call or did not answer in time.
        :raises MCPError: the server answered an MCP error.
        """
        result: types.CallToolResult = await self._call(lambda c: c.call_tool(tool, arguments))
        return result

    async def read_resource(self, uri: str) -> types.ReadResourceResult:
        """Read the resource at ``uri`` (see :meth:`call_tool` for the errors)."""
        result: types.ReadResourceResult = await self._call(lambda c: c.read_resource(uri))
        return result

    async def get_prompt(self, prompt: str, arguments: dict[str, str] | None) -> types.GetPromptResult:
        """Get the prompt ``prompt`` (the server's own name) (see :meth:`call_tool` for the errors)."""
        result: types.GetPromptResult = await self._call(lambda c: c.get_prompt(prompt, arguments))
        return result


def literal_problem(url: str, judge: AddressJudge) -> str | None:
    """Why ``url``'s host, when it is a literal IP address, may not be dialled (``None``: it may,
    or it is a name, judged by address when connecting)."""
    host = urlsplit(url).hostname or ""
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    problem = judge(host)
    return f"upstream {host} refused by server.upstream: {problem}" if problem is not None else None


def _schema_ok(schema: object) -> bool:
    try:
        size = len(json.dumps(schema))
    except (TypeError, ValueError, RecursionError):
        return False
    return size <= MAX_SCHEMA_BYTES and json_depth(schema) <= MAX_DEPTH


def describe(exc: BaseException) -> str:
    """A one-line account of ``exc`` (the first leaf of an exception group)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
