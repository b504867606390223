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

import mcp_types as types
import uvicorn
from mcp.server.lowlevel import Server
from mcp.server.mcpserver import MCPServer
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
    else:
        raise SystemExit(f"unknown kind {kind}")


if __name__ == "__main__":
    main()
