"""Streams reach the client frame by frame; a client that leaves cancels upstream; SIGTERM drains."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import msgspec
import pytest
from aiohttp import web

from truckllm import hookimpl
from truckllm_testing.server import GatewayServer


class HeldUpstream:
    """An OpenAI-style upstream whose stream sends one chunk, then waits for the test's go-ahead."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.cut = threading.Event()
        self.cancelled = threading.Event()
        self.started = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.port = 0

    async def handler(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        chunk = {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": "first"}, "finish_reason": None}
            ],
        }
        await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        self.started.set()
        try:
            while not self.release.is_set() and not self.cut.is_set():
                await asyncio.sleep(0.005)
            if self.cut.is_set():  # break off mid-stream: no finish, no usage, no [DONE]
                assert request.transport is not None
                request.transport.close()
                return response
            last = dict(chunk, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}])
            await response.write(b"data: " + json.dumps(last).encode() + b"\n\ndata: [DONE]\n\n")
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        except ConnectionResetError:
            self.cancelled.set()
        return response

    def __enter__(self) -> HeldUpstream:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.handler)
        runner = web.AppRunner(app, handler_cancellation=True)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(runner.setup())
            site = web.SockSite(runner, sock)
            self.loop.run_until_complete(site.start())
            self.loop.run_forever()
            self.loop.run_until_complete(runner.cleanup())

        self.runner = runner
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def config(port: int) -> str:
    return f"""
providers:
  up: {{type: openai, base_url: "http://127.0.0.1:{port}/v1", keys: [{{name: k, value: sk-held}}]}}
models:
  m: {{deployments: [{{provider: up, model: m}}]}}
"""


BODY = {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True}


def test_first_chunk_arrives_before_upstream_sends_the_last() -> None:
    with HeldUpstream() as upstream, GatewayServer(config(upstream.port)) as gw:
        with httpx.stream("POST", gw.url + "/v1/chat/completions", json=BODY, timeout=10) as response:
            lines = response.iter_lines()
            first = next(line for line in lines if line)
            assert '"first"' in first  # got through while the upstream still holds the rest
            assert not upstream.release.is_set()
            upstream.release.set()
            rest = [line for line in lines if line]
        assert rest[-1] == "data: [DONE]"


def test_client_disconnect_cancels_the_upstream_request() -> None:
    with HeldUpstream() as upstream, GatewayServer(config(upstream.port)) as gw:
        assert gw.gateway is not None
        with httpx.stream("POST", gw.url + "/v1/chat/completions", json=BODY, timeout=10) as response:
            next(line for line in response.iter_lines() if line)
        left = time.monotonic()  # the client closed the connection here
        assert upstream.cancelled.wait(2), "upstream request was not cancelled"
        assert time.monotonic() - left < 1.0
        deadline = time.monotonic() + 2
        while gw.gateway.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gw.gateway.in_flight == 0
        assert gw.gateway.health.key("up", "k").in_flight == 0


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_client_disconnect_before_the_answer_cancels_upstream(stream: bool) -> None:
    """Leaving before any byte of the answer cancels the upstream call; a whole (non-stream)
    request is watched from ``WATCH_AFTER`` on, a stream from its start."""
    with HeldUpstream() as upstream, GatewayServer(config(upstream.port)) as gw:
        assert gw.gateway is not None
        sock = socket.create_connection(("127.0.0.1", gw.port))
        payload = json.dumps({**BODY, "stream": stream}).encode()
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload
        )
        assert upstream.started.wait(5)
        sock.close()
        assert upstream.cancelled.wait(2), "upstream request was not cancelled"
        deadline = time.monotonic() + 2
        while gw.gateway.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gw.gateway.in_flight == 0
        assert gw.gateway.health.key("up", "k").in_flight == 0


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port_sock = socket.socket()
    port_sock.bind(("127.0.0.1", 0))
    port = port_sock.getsockname()[1]
    port_sock.close()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"""
server: {{listen: "127.0.0.1:{port}", graceful_timeout: 10s}}
providers:
  demo: {{type: mock, options: {{chunks: 10, chunk_interval: 100ms}}}}
models:
  demo: {{deployments: [{{provider: demo, model: echo}}]}}
""")
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "truckllm.cli", "serve", "--config", str(cfg)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ},
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/admin/v1/health", timeout=0.5).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    yield proc, port
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    log.close()


def test_sigterm_lets_streams_finish_then_exits_zero(served: tuple[subprocess.Popen[bytes], int]) -> None:
    proc, port = served
    body = {
        "model": "demo",
        "messages": [{"role": "user", "content": "one two three four five"}],
        "stream": True,
    }
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    with httpx.stream("POST", url, json=body, timeout=20) as response:
        lines = response.iter_lines()
        assert next(line for line in lines if line).startswith("data: ")
        proc.send_signal(signal.SIGTERM)
        rest = [line for line in lines if line]
    assert rest[-1] == "data: [DONE]"  # the stream in flight finished
    assert proc.wait(15) == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/admin/v1/health", timeout=1)


SLOW = """
server: {read_timeout: 1s}
providers:
  demo: {type: mock, options: {chunks: 6, chunk_interval: 300ms}}
models:
  demo: {deployments: [{provider: demo, model: echo}]}
"""


def test_a_stream_outlives_the_read_timeout_while_the_client_only_reads() -> None:
    with GatewayServer(SLOW) as gw:
        body = {"model": "demo", "stream": True, "messages": [{"role": "user", "content": "a b c d e f"}]}
        started = time.monotonic()
        text = httpx.post(gw.url + "/v1/chat/completions", json=body, timeout=10).text
        assert time.monotonic() - started > 1.5  # longer than read_timeout
        assert text.endswith("data: [DONE]\n\n")


def test_a_body_sent_too_slowly_gets_408() -> None:
    with GatewayServer(SLOW) as gw:
        sock = socket.create_connection(("127.0.0.1", gw.port))
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                     b"content-length: 100\r\n\r\n{\"model\":")
        sock.settimeout(5)
        answer = _read_response(sock)
        sock.close()
        assert answer.startswith(b"HTTP/1.1 408") and b"request_timeout" in answer


def _read_response(sock: socket.socket) -> bytes:
    """One whole HTTP/1.1 response with a ``content-length`` (head and body may come apart)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"the connection closed before a whole response head: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    fields = dict(line.lower().split(b":", 1) for line in head.split(b"\r\n")[1:])
    length = int(fields[b"content-length"])
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def test_a_silent_upstream_stream_is_cut_at_the_idle_timeout() -> None:
    with HeldUpstream() as upstream, GatewayServer(
        config(upstream.port) + "routing: {stream_idle_timeout: 500ms}\n"
    ) as gw:
        started = time.monotonic()
        text = httpx.post(gw.url + "/v1/chat/completions", json=BODY, timeout=10).text
        elapsed = time.monotonic() - started
        assert 0.45 <= elapsed < 2.0
        events = [e for e in text.split("\n\n") if e]
        assert '"first"' in events[0] and "[DONE]" not in text
        error = json.loads(events[-1].removeprefix("data: "))["error"]
        assert error["type"] == "server_error" and "idle" in error["message"]
        assert upstream.cancelled.wait(2)  # the upstream connection was closed


class _Records:
    """A logger plugin keeping every request record (one instance per gateway)."""

    def __init__(self) -> None:
        self.records: list[Any] = []
        self.seen = threading.Event()

    @hookimpl
    def register_loggers(self, register: Any) -> None:
        keeper = self

        class Keep:
            class Options(msgspec.Struct, forbid_unknown_fields=True):
                pass

            def __init__(self, options: Any) -> None:
                pass

            @hookimpl
            def emit_log(self, record: Any) -> None:
                keeper.records.append(record)
                keeper.seen.set()

        register("keep", Keep)


@pytest.mark.parametrize("leaves", ["client leaves", "upstream cut"])
def test_a_stream_that_ends_before_its_usage_is_still_charged(leaves: str) -> None:
    """No usage is lost for a call an upstream served: a stream that ends before its usage chunk
    (the client left, or the upstream broke off) records its attempt and is charged the prompt
    and what was relayed, never $0 (a budgeted key could otherwise stream for free)."""
    records = _Records()
    with HeldUpstream() as upstream:
        priced = config(upstream.port).replace(
            "{provider: up, model: m}", "{provider: up, model: m, price: {input: 1000, output: 1000}}"
        )
        with GatewayServer(priced + "loggers: [keep]\n", extra_plugins=(records,)) as gw:
            body = dict(BODY, messages=[{"role": "user", "content": "x " * 2000}])
            with httpx.stream("POST", gw.url + "/v1/chat/completions", json=body, timeout=10) as response:
                lines = response.iter_lines()
                next(line for line in lines if line)
                if leaves == "upstream cut":
                    upstream.cut.set()
                    rest = [line for line in lines if line]
                    assert "error" in rest[-1]
            assert records.seen.wait(5)
    (record,) = records.records
    assert record.usage is not None and record.usage.prompt_tokens >= 1000  # the prompt it read
    assert record.usage.completion_tokens >= 1  # at least the frame the client got
    assert record.cost_usd > 0
    (attempt,) = record.attempts
    assert (attempt.provider, attempt.provider_key) == ("up", "k")
    assert attempt.status == (499 if leaves == "client leaves" else 502)
