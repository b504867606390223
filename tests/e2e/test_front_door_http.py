"""HTTP-level rules of the front door (issue 13, finding 11).

Rules: no path is answered with a redirect built from the client's ``Host`` header (a trailing
slash is a 404 in the caller's dialect); a request head larger than
``server.limits.max_header_bytes`` is a 431 in the caller's dialect whether it arrives in pieces
or whole in one write, and a head under the limit is served.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx2 as httpx
import pytest

from truckllm_testing.server import GatewayServer

LIMIT = 4096
CONFIG = f"""
admin: {{token: front-door-admin-token-9Xq2Lm}}
server: {{limits: {{max_header_bytes: {LIMIT}}}}}
providers: {{demo: {{type: mock}}}}
models: {{demo: {{deployments: [{{provider: demo, model: echo}}]}}}}
"""


@pytest.fixture(scope="module")
def gw() -> Iterator[GatewayServer]:
    with GatewayServer(CONFIG) as server:
        yield server


ERROR_SHAPES = {"responses": "openai", "batches": "openai"}
"""Dialects whose errors have another dialect's shape (the Responses API, files and batches answer as OpenAI does)."""


def dialect_of(body: bytes) -> str:
    error = json.loads(body)
    if error.get("type") == "error":
        return "anthropic"
    if "status" in error.get("error", {}):
        return "gemini"
    assert set(error["error"]) == {"message", "type", "param", "code"}, error
    return "openai"


def every_path(gw: GatewayServer) -> list[tuple[str, str, str]]:
    """(method, path, dialect) of every route the gateway serves."""
    assert gw.gateway is not None
    found = []
    for name, dialect in gw.gateway.runtime.host.dialects.items():
        for route in dialect.routes:
            path = route.path.replace("{model}", "demo").replace("{method}", "generateContent")
            path = path.replace("{response_id}", "resp_0123")
            shape = ERROR_SHAPES.get(name, name)
            found += [(method, path, shape) for method in route.methods]
    return found + create_routes(gw)


def create_routes(gw: GatewayServer) -> list[tuple[str, str, str]]:
    from starlette.routing import Route

    from truckllm._internal.admin import admin_routes

    assert gw.gateway is not None
    routes: list[tuple[str, str, str]] = [
        ("GET", "/v1/models", "openai"),
        ("GET", "/v1/models/demo", "openai"),
    ]
    for route in admin_routes(gw.gateway):
        assert isinstance(route, Route)
        path = route.path.replace("{provider}", "demo").replace("{key}", "k").replace("{name}", "n")
        routes += [(method, path, "openai") for method in route.methods or () if method != "HEAD"]
    return routes


def test_a_trailing_slash_is_a_404_in_the_callers_dialect_never_a_redirect(gw: GatewayServer) -> None:
    paths = every_path(gw)
    assert len(paths) > 20
    for method, path, dialect in paths:
        answer = httpx.request(
            method,
            gw.url + path + "/",
            headers={"host": "evil.example"},
            content=b"{}",
            follow_redirects=False,
        )
        # 404; or 405 where another route's path parameter takes it (/v1/models/{model:path})
        assert answer.status_code in (404, 405), (
            method,
            path,
            answer.status_code,
            answer.headers.get("location"),
        )
        assert "location" not in answer.headers
        assert dialect_of(answer.content) == dialect, (path, answer.text)


def raw(gw: GatewayServer, head: bytes) -> tuple[int, bytes]:
    """Send ``head`` (and a 2-byte body) in ONE write; read the whole answer."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as sock:
        sock.sendall(head + b"{}")
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < content_length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


def content_length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


def head(path: str, pad: int) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: x",
        "Content-Type: application/json",
        "Anthropic-Version: 2023-06-01",
        "Content-Length: 2",
        *(f"X-Pad-{i}: {'a' * 90}" for i in range(pad)),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize(
    ("path", "dialect"),
    [
        ("/v1/chat/completions", "openai"),
        ("/v1/messages", "anthropic"),
        ("/v1beta/models/demo:generateContent", "gemini"),
        ("/admin/v1/config/validate", "openai"),
        ("/no/such/path", "openai"),
    ],
)
def test_a_head_over_the_limit_in_one_write_is_a_431(gw: GatewayServer, path: str, dialect: str) -> None:
    over = head(path, LIMIT // 100 + 5)
    assert len(over) > LIMIT
    status, body = raw(gw, over)
    assert status == 431, body
    assert dialect_of(body) == dialect
    under = head(path, LIMIT // 100 - 10)
    assert len(under) < LIMIT
    status, body = raw(gw, under)
    assert status != 431, body  # served (a 400 for the empty body, or a 404), not refused for its head


def test_a_long_request_target_counts_too(gw: GatewayServer) -> None:
    status, body = raw(gw, head("/v1/chat/completions?" + "q" * (LIMIT + 10), 0))
    assert status in (414, 431), body
