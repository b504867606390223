"""What an upstream sends is bounded before it is parsed (``max_answer_bytes``), whatever the way
it comes: a JSON body (with a length, chunked, endless), a compressed body, one event of an event
stream, a stdio line. A hostile server offering a 200 MB listing or an endless stream costs the
gateway at most the bound: the server is marked down, and the flood servers log how much they
could send before the gateway hung up."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from truckllm_mcp import McpGateway
from truckllm_mcp.net import AnswerTooLarge, upstream_http_client
from truckllm_mcp.stdio import LineTooLong, split_lines
from truckllm_mcp.upstream import allow_all

from truckllm_testing.conformance import wait_for
from truckllm_testing.server import GatewayServer

from .conftest import SERVER_SCRIPT, UpstreamProcess, mcp_client

LIMIT = 1024

# --- stdio lines ---------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=8),
    cuts=st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=20),
    limit=st.integers(min_value=1, max_value=45),
)
def test_stdio_lines_come_out_whole_or_the_stream_fails_before_holding_more_than_the_bound(
    lines: list[bytes], cuts: list[int], limit: int
) -> None:
    data = b"".join(line + b"\n" for line in lines)
    chunks: list[bytes] = []
    at = 0
    while at < len(data):
        size = cuts[len(chunks) % len(cuts)]
        chunks.append(data[at : at + size])
        at += size
    buffer, out = bytearray(), []
    too_long = any(len(line) > limit for line in lines)
    try:
        for chunk in chunks:
            out.extend(split_lines(buffer, chunk, limit))
            assert len(buffer) <= limit  # what is held between chunks
    except LineTooLong:
        assert too_long
        return
    assert not too_long and out == lines and not buffer


@pytest.mark.parametrize(
    ("chunks", "lines"),
    [
        ([b"a" * LIMIT + b"\n"], [b"a" * LIMIT]),  # exactly the bound
        ([b"a" * (LIMIT + 1) + b"\n"], None),  # one byte over, newline in the same chunk
        ([b"a" * LIMIT, b"a"], None),  # one byte over, no newline yet
        ([b"x\n" + b"a" * (LIMIT + 1)], None),  # a good line, then an endless one
        ([b"", b"\n\n"], [b"", b""]),
    ],
)
def test_stdio_line_bound_edges(chunks: list[bytes], lines: list[bytes] | None) -> None:
    buffer, out = bytearray(), []
    if lines is None:
        with pytest.raises(LineTooLong, match="answer exceeded 1024 bytes"):
            for chunk in chunks:
                split_lines(buffer, chunk, LIMIT)
    else:
        for chunk in chunks:
            out.extend(split_lines(buffer, chunk, LIMIT))
        assert out == lines


# --- HTTP bodies -----------------------------------------------------------------------------------------


class Answers:
    """A loopback HTTP server answering ``/<case>`` as :data:`BODIES` says; records each request's
    ``accept-encoding`` and how many body bytes it wrote before the client hung up."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.encodings: list[str] = []
        self.written: dict[str, int] = {}

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        case = head.split(" ", 2)[1].strip("/")
        self.encodings.extend(
            line.split(":", 1)[1].strip()
            for line in head.split("\r\n")
            if line.lower().startswith("accept-encoding")
        )
        written = 0
        try:
            if case == "endless":
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
                )
                while written < 200 * 1024 * 1024:
                    writer.write(b"10000\r\n" + b"x" * 65536 + b"\r\n")
                    await writer.drain()
                    written += 65536
            else:
                kind, body, extra = BODIES[case]
                writer.write(
                    f"HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\ncontent-length: {len(body)}\r\n{extra}\r\n".encode()
                    + body
                )
                await writer.drain()
                written = len(body)
        except (ConnectionError, OSError):
            pass
        self.written[case] = written
        writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"


BODIES = {
    "exact": ("application/json", b"x" * LIMIT, ""),
    "over": ("application/json", b"x" * (LIMIT + 1), ""),
    "error-page": ("text/html", b"x" * (LIMIT * 4), ""),
    "gzip": ("application/json", b"\x1f\x8b" + b"\0" * 20, "content-encoding: gzip\r\n"),
    "events": ("text/event-stream", b"data: x\n\n" * (LIMIT // 4), ""),
}


@pytest.fixture
async def answers() -> AsyncIterator[Answers]:
    server = Answers()
    server.server = await asyncio.start_server(server._serve, "127.0.0.1", 0)
    try:
        yield server
    finally:
        server.server.close()


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("exact", None),
        ("over", "answer exceeded 1024 bytes"),
        ("error-page", "answer exceeded 1024 bytes"),
        ("endless", "answer exceeded 1024 bytes"),
        ("gzip", "compressed"),
        ("events", None),  # an event stream: bounded per event by the SDK, not as a whole
    ],
)
async def test_an_http_answer_is_read_at_most_to_the_bound(
    answers: Answers, case: str, error: str | None
) -> None:
    async with (
        upstream_http_client({}, httpx2.Timeout(10.0), allow_all, LIMIT) as http,
        http.stream("GET", f"{answers.url}/{case}") as response,
    ):
        if error is None:
            body = await response.aread()
            assert len(body) >= LIMIT
        else:
            with pytest.raises(AnswerTooLarge, match=error):
                await response.aread()
    await asyncio.sleep(0)  # let the server see the end
    assert answers.encodings == ["identity"]
    if case == "endless":
        # the client stopped reading: the server could not write its 200 MB (only what buffers hold)
        for _ in range(200):
            if "endless" in answers.written:
                break
            await asyncio.sleep(0.05)
        assert answers.written["endless"] < 32 * 1024 * 1024


# --- the gateway: hostile servers flooding it -------------------------------------------------------


def vm_peak_kib() -> int:
    """This process's peak resident set (the gateway runs in it), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


KEY = "tllm_bounds_0123456789abcdef"


def test_flooding_servers_are_cut_at_the_bound_and_marked_down(tmp_path: Path, monkeypatch: Any) -> None:
    log = tmp_path / "floods.jsonl"
    flood = UpstreamProcess("flood", log).start()
    sse = UpstreamProcess("sse-flood", log).start()
    monkeypatch.setenv("MCP_FLOOD_LISTING", "0")
    monkeypatch.setenv("MCP_BIG_BYTES", str(3 * 1024 * 1024))
    big = UpstreamProcess("flood", tmp_path / "big.jsonl").start()
    servers = {
        "flood": {"url": flood.url},
        "sse": {"url": sse.url},
        "stdio": {"command": sys.executable, "args": [str(SERVER_SCRIPT), "stdio-flood", str(log)]},
        "big": {"url": big.url},
    }
    config = {
        "providers": {"demo": {"type": "mock"}},
        "models": {"m": {"deployments": [{"provider": "demo", "model": "echo"}]}},
        "keys": [{"name": "dev", "value": KEY}],
        "loggers": [
            {
                "mcp": {
                    "servers": {n: {**s, "connect_timeout": "20s"} for n, s in servers.items()},
                    "access": [{"keys": ["dev"]}],
                    "max_answer_bytes": 1024 * 1024,
                    "max_result_bytes": 512 * 1024,
                    "backoff_base": "1h",
                    "backoff_max": "1h",
                }
            }
        ],
    }
    before = vm_peak_kib()
    try:
        with GatewayServer(json.dumps(config), autoload=True) as gw:
            assert gw.gateway is not None
            component = gw.gateway.view.component(McpGateway)
            assert component is not None
            ups = component.upstreams
            wait_for(lambda: all(u.state != "connecting" for u in ups.values()), 30, "every server settled")
            errors = {name: ups[name].error or "" for name in ("flood", "sse", "stdio")}
            assert all(ups[name].state == "down" for name in errors), errors
            assert "answer exceeded 1048576 bytes" in errors["flood"], errors
            assert "exceeded the 1048576 byte limit" in errors["sse"], errors
            assert "answer exceeded 1048576 bytes" in errors["stdio"], errors

            # a tool answer over the bound: an isError result, the server stays up
            assert ups["big"].state == "up"

            async def call() -> Any:
                async with mcp_client(gw.url + "/mcp", KEY) as client:
                    return await client.call_tool("big__big", {})

            result = asyncio.run(call())
            assert result.is_error and "answer exceeded 1048576 bytes" in result.content[0].text
            assert ups["big"].state == "up"
            assert component.calls.calls[("big", "big", "too_large")] == 1
            peak_growth_mib = (vm_peak_kib() - before) / 1024
        floods = [json.loads(line) for line in log.read_text().splitlines()]
        cut = [f for f in floods if f.get("event") == "flood"]
        assert {f["server"] for f in cut} >= {"flood", "sse-flood"}, floods
        for event in cut:  # what the servers could write before the gateway hung up
            assert not event.get("complete") and event["sent"] < 64 * 1024 * 1024, event
        print(f"peak RSS growth during the floods: {peak_growth_mib:.1f} MiB")
        assert peak_growth_mib < 150  # a 200 MB answer held would be more
    finally:
        for process in (flood, sse, big):
            process.stop()
