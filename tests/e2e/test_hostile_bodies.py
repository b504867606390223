"""Every decoder at the trust boundary, fed deep, huge and ambiguous bodies (issue 13, finding 7).

Rule: every front door (each route of each installed dialect) and every admin route that reads a
body answers a hostile body with a 400, 413 or 422 in the caller's own error format, logs no
traceback, and the event loop keeps answering ``/admin/v1/health`` meanwhile; a YAML alias bomb
never stalls it.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx2 as httpx
import pytest
from loguru import logger

from truckllm._internal.safejson import MAX_DEPTH
from truckllm_testing.server import GatewayServer

ADMIN = "hostile-bodies-admin-7Qw2xZp9Lk4m"
LIMIT = 1_000_000
CONFIG = f"""
admin: {{token: {ADMIN}}}
server: {{max_body_bytes: {LIMIT}, limits: {{max_content_bytes: 200000}}}}
providers:
  demo: {{type: mock}}
models:
  demo: {{deployments: [{{provider: demo, model: echo}}]}}
"""
HEADERS = {"authorization": "Bearer x", "anthropic-version": "2023-06-01", "content-type": "application/json"}
ADMIN_HEADERS = {"authorization": f"Bearer {ADMIN}"}


def deep_arrays(levels: int) -> str:
    return "[" * levels + "]" * levels


def deep_objects(levels: int) -> str:
    return '{"k":' * levels + "0" + "}" * levels


SHAPES: dict[str, str] = {
    "arrays just over the limit": deep_arrays(MAX_DEPTH + 1),
    "objects just over the limit": deep_objects(MAX_DEPTH + 1),
    "arrays 10k deep": deep_arrays(10_000),
    "objects 10k deep": deep_objects(10_000),
    "arrays 100k deep": deep_arrays(100_000),
    "objects 100k deep": deep_objects(100_000),
    "a repeated key": '{"type": "object", "type": "string"}',
}
"""Values put where a request carries free-form JSON; each must make the request a 400."""

HUGE: dict[str, Callable[[str], str]] = {
    "a string over the body limit": lambda slot: slot.replace("@@", json.dumps("x" * (LIMIT + 10))),
    "an array over the body limit": lambda slot: slot.replace("@@", json.dumps([7] * (LIMIT // 2))),
}

# Real request bodies with ``@@`` where clients send free-form JSON (a tool's schema, arguments).
TEMPLATES: dict[str, str] = {
    "/v1/chat/completions": '{"model": "demo", "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"x": @@}}}}]}',
    "/v1/completions": '{"model": "demo", "prompt": "hi", "extra": @@}',
    "/v1/embeddings": '{"model": "demo", "input": "hi", "extra": @@}',
    "/v1/messages": '{"model": "demo", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], "tools": [{"name": "f", "input_schema": {"type": "object", "properties": {"x": @@}}}]}',
    "/v1/messages/count_tokens": '{"model": "demo", "messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"x": @@}}]}, {"role": "user", "content": "hi"}]}',
    "generateContent": '{"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "tools": [{"functionDeclarations": [{"name": "f", "parametersJsonSchema": {"type": "object", "properties": {"x": @@}}}]}]}',
    "/v1/responses": '{"model": "demo", "input": "hi", "tools": [{"type": "function", "name": "f", "parameters": {"type": "object", "properties": {"x": @@}}}]}',
    "/v1/responses/input_tokens": '{"model": "demo", "input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}, {"type": "function_call_output", "call_id": "c", "output": "ok"}], "tools": [{"type": "function", "name": "f", "parameters": {"type": "object", "properties": {"x": @@}}}]}',
    "streamGenerateContent": '{"contents": [{"role": "user", "parts": [{"text": "hi"}]}, {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"x": @@}}}]}]}',
}
GENERIC = '{"model": "demo", "zz_free_form": @@}'
BODILESS = frozenset({"GET", "DELETE", "HEAD"})
"""Methods whose body a route may ignore unread (a list, a retrieve): only a 4xx or 200 is asked of them."""
"""For a route without a template: a free-form member every decoder has to read past."""


class Door:
    def __init__(self, dialect: str, path: str, template: str, method: str = "POST", upload: bool = False) -> None:
        self.dialect, self.path, self.template, self.method = dialect, path, template, method
        self.upload = upload  # a multipart route: a JSON body is refused by its content type, unread

    def __repr__(self) -> str:
        return f"{self.dialect}:{self.method} {self.path}"


def doors(gw: GatewayServer) -> list[Door]:
    """Every route of every dialect the gateway mounted (a new dialect or route is covered too)."""
    assert gw.gateway is not None
    found = []
    for name, dialect in gw.gateway.runtime.host.dialects.items():
        for route in dialect.routes:
            path = route.path.replace("{model}", "demo").replace("{method}", "somethingNew")
            path = path.replace("{response_id}", "resp_0123")
            method = path.rsplit(":", 1)[-1] if ":" in path else path
            for verb in route.methods:  # every method of the route, body and all (GET and DELETE too)
                found.append(Door(name, path, TEMPLATES.get(method, GENERIC), verb, route.upload))
    return found


def assert_dialect_error(dialect: str, status: int, body: bytes) -> None:
    """The error is in the caller's own format."""
    error = json.loads(body)
    if dialect == "openai":
        assert set(error["error"]) == {"message", "type", "param", "code"}, error
    elif dialect == "anthropic":
        assert error["type"] == "error" and error["error"]["message"], error
    elif dialect == "gemini":
        assert error["error"]["code"] == status and error["error"]["status"], error
    else:
        assert error, error


class Watch:
    """Polls ``/admin/v1/health`` in a thread; remembers the slowest answer."""

    def __init__(self, url: str) -> None:
        self.url = url + "/admin/v1/health"
        self.slowest = 0.0
        self.answers = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                assert client.get(self.url).status_code == 200
                self.slowest = max(self.slowest, time.monotonic() - started)
                self.answers += 1
                time.sleep(0.01)

    def _wait_for(self, answers: int) -> None:
        deadline = time.monotonic() + 30
        while self.answers < answers and time.monotonic() < deadline:
            time.sleep(0.005)

    def __enter__(self) -> Watch:
        self._thread.start()
        self._wait_for(1)
        return self

    def __exit__(self, *exc: object) -> None:
        self._wait_for(self.answers + 1)  # one answer after the hostile request too
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope="module")
def gw() -> Iterator[GatewayServer]:
    with GatewayServer(CONFIG) as server:
        yield server


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    sink = io.StringIO()
    handle = logger.add(sink, level="WARNING", format="{level} {message} {exception}")
    yield sink
    logger.remove(handle)


def post(gw: GatewayServer, path: str, body: str | bytes, method: str = "POST", **kwargs: Any) -> httpx.Response:
    content = body.encode() if isinstance(body, str) else body
    return httpx.request(method, gw.url + path, content=content, headers=HEADERS, timeout=60, **kwargs)


def test_every_front_door_answers_a_valid_body(gw: GatewayServer) -> None:
    """The templates are real requests: without a hostile value they are served (or a clean 4xx)."""
    for door in doors(gw):
        answer = post(gw, door.path, door.template.replace("@@", '{"type": "string"}'), door.method)
        if door.template is GENERIC and door.method in BODILESS:  # a list may ignore a body it never reads
            assert answer.status_code < 500, (door, answer.text)
        elif door.template is GENERIC:
            assert 400 <= answer.status_code < 500, (door, answer.text)
            assert_dialect_error(door.dialect, answer.status_code, answer.content)
        else:  # parsed: served, or refused only because the mock provider does not count tokens
            assert answer.status_code == 200 or "does not support" in answer.text, (door, answer.text)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_deep_and_ambiguous_bodies_are_a_400_at_every_front_door(
    gw: GatewayServer, logs: io.StringIO, shape: str
) -> None:
    for door in doors(gw):
        answer = post(gw, door.path, door.template.replace("@@", SHAPES[shape]), door.method)
        if door.template is GENERIC and door.method in BODILESS and answer.status_code == 200:
            continue  # a GET or DELETE that never reads its body: nothing decoded, nothing to refuse
        assert_dialect_error(door.dialect, answer.status_code, answer.content)
        if door.template is GENERIC:  # not a valid request anyway (an unknown method is a 404 unread)
            assert answer.status_code in (400, 404), (door, shape, answer.text[:300])
        else:  # a real request: refused for being deep or ambiguous
            assert answer.status_code == 400, (door, shape, answer.text[:300])
            assert "nested too deeply" in answer.text or "repeats the key" in answer.text, (door, answer.text)
    assert "Traceback" not in logs.getvalue() and "ERROR" not in logs.getvalue(), logs.getvalue()[:2000]


@pytest.mark.parametrize("shape", list(HUGE))
def test_huge_bodies_are_a_413_at_every_front_door(gw: GatewayServer, logs: io.StringIO, shape: str) -> None:
    for door in doors(gw):
        answer = post(gw, door.path, HUGE[shape](door.template), door.method)
        if door.upload:  # capped by server.limits.max_upload_bytes; a JSON body is not even read
            assert answer.status_code == 400 and "invalid_content_type" in answer.text, (door, answer.text[:300])
            continue
        assert answer.status_code == 413, (door, shape, answer.text[:300])
        assert_dialect_error(door.dialect, 413, answer.content)
    assert "Traceback" not in logs.getvalue()


@pytest.mark.parametrize(
    "door", ["/v1/chat/completions", "/v1/messages", "/v1beta/models/demo:generateContent"]
)
def test_huge_content_under_the_body_limit_is_a_clean_4xx(gw: GatewayServer, door: str) -> None:
    content = "word " * 100_000  # 500 KB: under max_body_bytes, over max_content_bytes
    bodies = {
        "/v1/chat/completions": {"model": "demo", "messages": [{"role": "user", "content": content}]},
        "/v1/messages": {
            "model": "demo",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": content}],
        },
        "/v1beta/models/demo:generateContent": {"contents": [{"role": "user", "parts": [{"text": content}]}]},
    }
    many = {
        "/v1/chat/completions": {"model": "demo", "messages": [{"role": "user", "content": "x"}] * 5000},
        "/v1/messages": {
            "model": "demo",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}] * 2500,
        },
        "/v1beta/models/demo:generateContent": {
            "contents": [{"role": "user", "parts": [{"text": "x"}]}] * 5000
        },
    }
    dialect = {"/v1/chat/completions": "openai", "/v1/messages": "anthropic"}.get(door, "gemini")
    for body in (bodies[door], many[door]):
        answer = post(gw, door, json.dumps(body))
        assert answer.status_code == 400, answer.text[:300]
        assert_dialect_error(dialect, 400, answer.content)


def test_the_instances_of_issue_13(gw: GatewayServer) -> None:
    """Finding 7 (deep JSON at the OpenAI and Anthropic front doors was a 500 with a traceback) and
    finding 11 (a repeated ``model`` reached an upstream byte for byte)."""
    deep = (
        '{"model": "demo", "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {"name": "f", "parameters": '
        + deep_arrays(10_000)
        + "}}]}"
    )
    assert post(gw, "/v1/chat/completions", deep).status_code == 400
    deep = (
        '{"model": "demo", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], "metadata": '
        + deep_objects(10_000)
        + "}"
    )
    assert post(gw, "/v1/messages", deep).status_code == 400
    twice = '{"model": "demo", "model": "demo", "messages": [{"role": "user", "content": "hi"}]}'
    answer = post(gw, "/v1/chat/completions", twice)
    assert answer.status_code == 400 and '"model"' in answer.json()["error"]["message"]


# --- the admin API's bodies ----------------------------------------------------------------------


def alias_bomb(levels: int = 9) -> str:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    previous = "a"
    for name in "bcdefghijklmnop"[: levels - 1]:
        text += f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]\n"
        previous = name
    return text


def big_yaml(size: int) -> str:
    """A config of about ``size`` bytes whose every model names a missing provider (so: invalid)."""
    lines = ["models:"]
    i = 0
    while sum(len(line) + 1 for line in lines) < size:
        lines.append(f"  m{i}: {{deployments: [{{provider: missing, model: x{i}}}]}}")
        i += 1
    return "\n".join(lines) + "\n"


ADMIN_SHAPES: dict[str, str] = {
    "alias bomb": alias_bomb(),
    "alias bomb in a section": alias_bomb().replace("a: &a", "models: &a", 1),
    "self-referencing alias": "providers: &p {x: {type: mock, options: *p}}\n",
    "arrays 10k deep": deep_arrays(10_000),
    "objects 100k deep": deep_objects(100_000),
    "a repeated key": '{"name": "a", "name": "b"}',
    "an integer of 5,000 digits": "server: {workers: " + "9" * 5000 + "}\n",
    "over the size cap": "# " + "x" * (1024 * 1024 + 10) + "\n",
    "300 KB of config": big_yaml(300_000),
}

ADMIN_ROUTES = [
    ("POST", "/admin/v1/config/validate", {400, 413, 422}),
    ("PUT", "/admin/v1/config", {400, 413, 422}),
    ("POST", "/admin/v1/keys", {400, 413}),
]


@pytest.mark.parametrize("shape", list(ADMIN_SHAPES))
@pytest.mark.parametrize(("method", "path", "allowed"), ADMIN_ROUTES)
def test_admin_bodies_are_refused_and_the_loop_keeps_answering(
    gw: GatewayServer, logs: io.StringIO, shape: str, method: str, path: str, allowed: set[int]
) -> None:
    assert gw.gateway is not None
    version = gw.gateway.runtime.version
    with Watch(gw.url) as watch:
        answer = httpx.request(
            method, gw.url + path, content=ADMIN_SHAPES[shape].encode(), headers=ADMIN_HEADERS, timeout=120
        )
    assert answer.status_code in allowed, (shape, answer.text[:300])
    error = answer.json()
    assert "problems" in error or set(error["error"]) == {"message", "type", "param", "code"}, error
    assert gw.gateway.runtime.version == version  # nothing was applied
    assert watch.answers >= 2 and watch.slowest < 1.0, (shape, watch.slowest)
    assert "Traceback" not in logs.getvalue() and "ERROR" not in logs.getvalue(), logs.getvalue()[:2000]
