"""Upstream MCP servers for the tests, written with the official SDK, run as child processes.

``python upstream_server.py <kind> <log>`` serves ``<kind>`` and appends what it sees (every
HTTP request's ``Authorization``, every tool call) to ``<log>`` as JSON lines:

- ``alpha`` (streamable HTTP, needs ``Authorization: Bearer <ALPHA_TOKEN>``): ``echo``, ``add``,
  a resource ``alpha://readme`` and a prompt ``greet``;
- ``beta`` (streamable HTTP, needs ``X-Api-Key: <BETA_KEY>``): ``echo`` (the same name as
  alpha's), ``leak`` (answers with its own credential), ``slow``;
- ``hostile`` (streamable HTTP): a tool named against MCP's rules, a tool with an 80-level deep
  schema, ``huge`` (a 6 MB answer), ``deep`` (a 5 000-level deep answer), ``crash`` (the process
  dies mid-call);
- ``notes`` (stdio, needs ``NOTES_TOKEN`` in its environment): ``read_note``;
- ``leaky`` (streamable HTTP, needs ``X-Api-Key: <LEAKY_KEY>``): tools answering malformed
  answers that carry the key they were sent (:func:`leaky_answer`);
- ``flood`` / ``sse-flood`` (streamable HTTP): a 200 MB ``tools/list`` answer (JSON, or one
  endless event), ``big`` (``MCP_BIG_BYTES`` of text); ``grower``: ``grow`` adds a tool and
  says so (``list_changed``); ``stdio-flood`` / ``stdio-leaky``: stdio children answering one
  endless line / a malformed line carrying ``NOTES_TOKEN``;
- ``box`` (streamable HTTP, needs ``Authorization: Bearer <BOX_TOKEN>``): ``run_shell``, which
  answers the coding-agent responder's ``printf 'truck-%d\n' 0x<hex>`` itself (no shell runs).

HTTP kinds print ``port=<n>`` on their first line once listening.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import time
from typing import Any

import anyio
import anyio.lowlevel
import mcp_types as types
import uvicorn
from mcp.server.lowlevel import Server
from mcp.server.mcpserver import Context, MCPServer
from starlette.types import ASGIApp, Receive, Scope, Send

ALPHA_TOKEN = "alpha-upstream-token-7f3c9a2e51"
BETA_KEY = "beta-upstream-key-0d8b4e6f27"
NOTES_TOKEN = "notes-upstream-token-93ab41c7"
BOX_TOKEN = "box-upstream-token-5e2f8c1a94"
PRINTF = re.compile(r"^printf 'truck-%d\\n' (0x[0-9a-f]+)$")

LOG = sys.argv[2] if len(sys.argv) > 2 else os.devnull


def log(**event: Any) -> None:
    """Append one event to the log."""
    with open(LOG, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"server": sys.argv[1], **event}) + "\n")


def guarded(app: ASGIApp, header: bytes, expected: str) -> ASGIApp:
    """``app`` behind a credential header; every request's header value is logged."""

    async def guard(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        value = dict(scope["headers"]).get(header, b"").decode("latin-1")
        log(event="http", header=value)
        if value != expected:
            await send(
                {"type": "http.response.start", "status": 401, "headers": [(b"content-type", b"text/plain")]}
            )
            await send({"type": "http.response.body", "body": b"bad credential"})
            return
        await app(scope, receive, send)

    return guard


def alpha() -> MCPServer:
    server = MCPServer("alpha")

    @server.tool()
    def echo(text: str) -> str:
        """Say ``text`` back."""
        log(event="call", tool="echo", args={"text": text})
        return f"alpha:{text}"

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        log(event="call", tool="add", args={"a": a, "b": b})
        return a + b

    @server.resource("alpha://readme")
    def readme() -> str:
        """Alpha's readme."""
        return "alpha readme"

    @server.prompt()
    def greet(name: str) -> str:
        """Greet someone."""
        return f"Hello {name}"

    return server


def beta() -> MCPServer:
    server = MCPServer("beta")

    @server.tool()
    def echo(text: str) -> str:
        """Say ``text`` back (beta's)."""
        log(event="call", tool="echo", args={"text": text})
        return f"beta:{text}"

    @server.tool()
    def leak() -> str:
        """Answer with the credential this server was given (a hostile echo)."""
        log(event="call", tool="leak", args={})
        return f"my key is {BETA_KEY}"

    @server.tool()
    def slow(seconds: float) -> str:
        """Wait, then answer."""
        log(event="call", tool="slow", args={"seconds": seconds})
        time.sleep(seconds)
        return "done"

    return server


def hostile() -> Server[Any]:
    deep_schema: dict[str, Any] = {"type": "object"}
    for _ in range(40):
        deep_schema = {"type": "object", "properties": {"x": deep_schema}}

    tools = [
        types.Tool(name="bad name!", description="invalid name", input_schema={"type": "object"}),
        types.Tool(name="deep_schema", description="a schema too deep", input_schema=deep_schema),
        types.Tool(name="huge", description="a huge answer", input_schema={"type": "object"}),
        types.Tool(name="deep", description="a deep answer", input_schema={"type": "object"}),
        types.Tool(name="crash", description="dies", input_schema={"type": "object"}),
        types.Tool(name="fine", description="answers", input_schema={"type": "object"}),
    ]

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        log(event="call", tool=params.name, args=params.arguments or {})
        if params.name == "huge":
            return types.CallToolResult(content=[types.TextContent(type="text", text="x" * 6_000_000)])
        if params.name == "crash":
            os._exit(3)
        return types.CallToolResult(content=[types.TextContent(type="text", text="fine")])

    return Server("hostile", on_list_tools=list_tools, on_call_tool=call_tool)


def deep_answers(app: ASGIApp) -> ASGIApp:
    """``app``, but a call of the ``deep`` tool is answered with JSON nested 5 000 deep (written
    by hand: the SDK would refuse to write it)."""

    async def wrapper(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        request = json.loads(body or b"{}")
        if request.get("method") == "tools/call" and request.get("params", {}).get("name") == "deep":
            log(event="call", tool="deep", args={})
            nested = "[" * 5000 + "0" + "]" * 5000
            answer = (
                '{"jsonrpc":"2.0","id":'
                + json.dumps(request.get("id"))
                + ',"result":{"content":[{"type":"text",'
                '"text":"deep"}],"structuredContent":{"v":' + nested + "}}}"
            ).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": answer})
            return
        sent = False

        async def replay() -> Any:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await app(scope, replay, send)

    return wrapper


def notes() -> MCPServer:
    server = MCPServer("notes")

    @server.tool()
    def read_note(name: str) -> str:
        """Read a note (needs NOTES_TOKEN)."""
        token = os.environ.get("NOTES_TOKEN", "")
        log(event="call", tool="read_note", args={"name": name}, token_ok=token == NOTES_TOKEN)
        if token != NOTES_TOKEN:
            raise ValueError("no token")
        return f"note {name}: remember the milk"

    return server


def box() -> MCPServer:
    server = MCPServer("box")

    @server.tool()
    def run_shell(command: str) -> str:
        """Run a shell command in the box and return what it printed."""
        log(event="call", tool="run_shell", args={"command": command})
        found = PRINTF.match(command.strip())
        if found is None:
            return "refused: this box runs only printf 'truck-%d\\n' 0x..."
        return f"truck-{int(found.group(1), 16)}\n"

    return server


LEAKY_KEY = "lk-4c1d7e9b3a5f0e2d8c6b"  # no 8-character piece of it is a word a log line may hold
LEAKY_TOOLS = ("not_json", "wrong_shape", "bad_sse", "sse_event_name", "error_page", "fine")
"""``leaky``'s tools: each answers with the credential it was sent, malformed in its own way."""

FLOOD_SIZE = 200 * 1024 * 1024
"""What ``flood`` would send for one listing (it stops when the client goes away)."""


def leaky_answer(name: str, request_id: Any, key: str) -> tuple[int, bytes, bytes]:
    """``(status, content type, body)`` of the ``leaky`` tool ``name``: each carries ``key``."""
    rid = json.dumps(request_id)
    if name == "not_json":
        return 200, b"application/json", f'{{"jsonrpc":"2.0","id":{rid},"result":{{"my key": {key}'.encode()
    if name == "wrong_shape":
        body = {"jsonrpc": "2.0", "id": request_id, "result": {"content": f"my key is {key}", "isError": key}}
        return 200, b"application/json", json.dumps(body).encode()
    if name == "bad_sse":
        return 200, b"text/event-stream", f"event: message\ndata: {{my key is {key}\n\n".encode()
    if name == "sse_event_name":
        error = {"jsonrpc": "2.0", "id": request_id, "error": {"code": -32000, "message": "x"}}
        frames = f"event: {key}\ndata: {{}}\n\nevent: message\ndata: {json.dumps(error)}\n\n"
        return 200, b"text/event-stream", frames.encode()
    return 500, b"application/json", json.dumps({"detail": f"my key is {key}"}).encode()


def leaky() -> Server[Any]:
    tools = [types.Tool(name=n, description=n, input_schema={"type": "object"}) for n in LEAKY_TOOLS]

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        return types.CallToolResult(content=[types.TextContent(type="text", text="fine")])

    return Server("leaky", on_list_tools=list_tools, on_call_tool=call_tool)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def leaky_answers(app: ASGIApp) -> ASGIApp:
    """``app``, but the ``leaky`` tools (but ``fine``) are answered by :func:`leaky_answer` with
    the ``X-Api-Key`` the request carried."""

    async def wrapper(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await app(scope, receive, send)
            return
        body = await _read_body(receive)
        request = json.loads(body or b"{}")
        name = request.get("params", {}).get("name") if isinstance(request, dict) else None
        if request.get("method") == "tools/call" and name in LEAKY_TOOLS and name != "fine":
            key = dict(scope["headers"]).get(b"x-api-key", b"").decode("latin-1")
            log(event="call", tool=name, args={})
            status, kind, answer = leaky_answer(name, request.get("id"), key)
            headers = [(b"content-type", kind), (b"content-length", str(len(answer)).encode())]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": answer})
            return
        await app(scope, _replaying(body, receive), send)

    return wrapper


def flood_answers(app: ASGIApp) -> ASGIApp:
    """``app``, but ``tools/list`` is answered with :data:`FLOOD_SIZE` bytes of JSON (``flood``),
    or, for ``sse-flood``, one endless event (not with ``MCP_FLOOD_LISTING=0``); ``tools/call`` of
    ``big`` answers ``MCP_BIG_BYTES`` of text. Every answer is made as it is sent; when the client goes away the bytes sent so far
    are logged (``event: flood``)."""
    kind = sys.argv[1]
    big = int(os.environ.get("MCP_BIG_BYTES", "0"))
    flood_listing = os.environ.get("MCP_FLOOD_LISTING", "1") == "1"

    async def wrapper(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await app(scope, receive, send)
            return
        body = await _read_body(receive)
        request = json.loads(body or b"{}")
        method = request.get("method") if isinstance(request, dict) else None
        is_big = method == "tools/call" and request.get("params", {}).get("name") == "big"
        if not (method == "tools/list" and flood_listing) and not is_big:
            await app(scope, _replaying(body, receive), send)
            return
        gone = anyio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        rid = json.dumps(request.get("id"))
        if is_big:
            head = f'{{"jsonrpc":"2.0","id":{rid},"result":{{"content":[{{"type":"text","text":"'.encode()
            tail, size, kind_header = b'"}]}}', big, b"application/json"
        elif kind == "sse-flood":
            head, tail, size, kind_header = (
                b"event: message\ndata: ",
                b"\n\n",
                FLOOD_SIZE,
                b"text/event-stream",
            )
        else:
            head = f'{{"jsonrpc":"2.0","id":{rid},"result":{{"tools":[],"pad":"'.encode()
            tail, size, kind_header = b'"}}', FLOOD_SIZE, b"application/json"
        sent = 0
        chunk = b"x" * 65536
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", kind_header)]}
            )
            await send({"type": "http.response.body", "body": head, "more_body": True})
            while sent < size and not gone.is_set():
                piece = chunk[: size - sent]
                await send({"type": "http.response.body", "body": piece, "more_body": True})
                sent += len(piece)
                await anyio.lowlevel.checkpoint()  # uvicorn's send returns at once once the client is gone
            await send({"type": "http.response.body", "body": tail if not gone.is_set() else b""})
            log(event="flood", sent=sent, complete=not gone.is_set())
            tg.cancel_scope.cancel()

    return wrapper


def flood() -> MCPServer:
    server = MCPServer("flood")

    @server.tool()
    def big() -> str:
        """Answer MCP_BIG_BYTES of text (answered by the wrapper)."""
        return ""

    return server


def grower() -> MCPServer:
    server = MCPServer("grower")

    @server.tool()
    async def grow(name: str, ctx: Context) -> str:
        """Add a tool called ``name``, and say that the tool list changed."""
        log(event="call", tool="grow", args={"name": name})

        def added() -> str:
            return name

        server.add_tool(added, name=name, description=f"added {name}")
        await ctx.notify_tools_changed()
        return f"added {name}"

    return server


def stdio_flood() -> None:
    """A stdio server that answers its first message with one endless line (it stops when its
    stdout breaks, or after 1 GB), logging what it wrote."""
    sys.stdin.readline()
    out = sys.stdout.buffer
    written = 0
    try:
        out.write(b'{"jsonrpc":"2.0","id":1,"result":{"pad":"')
        while written < 1024 * 1024 * 1024:
            out.write(b"y" * 65536)
            written += 65536
        out.flush()
    except (BrokenPipeError, OSError):
        pass
    log(event="flood", sent=written)


def stdio_leaky() -> None:
    """A stdio server that answers its first message with a malformed line carrying its token."""
    sys.stdin.readline()
    token = os.environ.get("NOTES_TOKEN", "")
    sys.stdout.write(f'{{"jsonrpc":"2.0","id":1,"result":{{"token": {token}}}\n')
    sys.stdout.flush()
    log(event="leaked")
    sys.stdin.readline()


def serve_http(app: ASGIApp) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    port = int(os.environ.get("MCP_TEST_PORT", "0"))
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    print(f"port={sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


def main() -> None:
    kind = sys.argv[1]
    if kind == "alpha":
        serve_http(guarded(alpha().streamable_http_app(), b"authorization", f"Bearer {ALPHA_TOKEN}"))
    elif kind == "beta":
        serve_http(guarded(beta().streamable_http_app(), b"x-api-key", BETA_KEY))
    elif kind == "hostile":
        serve_http(deep_answers(hostile().streamable_http_app(json_response=True)))
    elif kind == "box":
        serve_http(guarded(box().streamable_http_app(), b"authorization", f"Bearer {BOX_TOKEN}"))
    elif kind == "notes":
        notes().run("stdio")
    elif kind == "leaky":
        serve_http(
            guarded(leaky_answers(leaky().streamable_http_app(json_response=True)), b"x-api-key", LEAKY_KEY)
        )
    elif kind in ("flood", "sse-flood"):
        serve_http(flood_answers(flood().streamable_http_app(json_response=True)))
    elif kind == "grower":
        serve_http(grower().streamable_http_app())
    elif kind == "stdio-flood":
        stdio_flood()
    elif kind == "stdio-leaky":
        stdio_leaky()
    else:
        raise SystemExit(f"unknown kind {kind}")


if __name__ == "__main__":
    main()
