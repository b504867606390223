"""Security end to end: gateway keys, no secret anywhere, abuse limits, hostile input."""

from __future__ import annotations

import asyncio
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx2 as httpx
import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from loguru import logger

from truckllm import hookimpl
from truckllm._internal.app import create_app
from truckllm._internal.gateway import Gateway
from truckllm.types import RequestRecord
from truckllm_testing.fakes import FakeOpenAI, Fault
from truckllm_testing.server import GatewayServer

PROVIDER_KEY = "sk-proj-LIVEabcdefghijklmnop1234"
SPARE_KEY = "sk-proj-SPAREzyxwvutsrqpo9876"
GATEWAY_KEY = "tllm_team_secret_value_0123456789"
ADMIN_TOKEN = "admin-token-very-secret-42"
SECRETS = (PROVIDER_KEY, SPARE_KEY, GATEWAY_KEY, ADMIN_TOKEN)


def config(base_url: str, extra: str = "") -> str:
    return f"""
admin: {{token: {ADMIN_TOKEN}}}
server: {{limits: {{max_streams_per_key: 1, max_content_bytes: 2000}}}}
providers:
  oa:
    type: openai
    base_url: {base_url}
    keys: [{{name: live, value: {PROVIDER_KEY}}}, {{name: spare, value: {SPARE_KEY}}}]
  demo: {{type: mock, options: {{chunks: 5, chunk_interval: 50ms}}}}
models:
  gpt: {{strategy: first, deployments: [{{provider: oa, model: gpt-4o}}]}}
  demo: {{deployments: [{{provider: demo, model: echo}}]}}
keys:
  - {{name: team, value: {GATEWAY_KEY}}}
{extra}"""


class Collector:
    """Collects every request record (a logger plugin would see exactly these)."""

    __name__ = "collector"

    def __init__(self) -> None:
        self.records: list[RequestRecord] = []

    @hookimpl
    def emit_log(self, record: RequestRecord) -> None:
        self.records.append(record)


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    upstream = FakeOpenAI(keys=(PROVIDER_KEY, SPARE_KEY))
    with upstream.running():
        yield upstream


def test_no_secret_in_any_answer_log_or_record(fake: FakeOpenAI, tmp_path: Path) -> None:
    logs = io.StringIO()
    sink = logger.add(
        logs, level="DEBUG", format="{message} {extra} {exception}", backtrace=True, diagnose=True
    )
    collector = Collector()
    auth = {"authorization": f"Bearer {GATEWAY_KEY}"}
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    answers: list[str] = []
    try:
        with GatewayServer(config(fake.base_url), extra_plugins=(collector,)) as gw:
            chat = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}
            fake.inject(
                Fault(status=401, key=PROVIDER_KEY)
            )  # the fake echoes part of the key, as OpenAI does
            fake.inject(Fault(status=500, key=SPARE_KEY))
            for body, headers in [
                (chat, auth),
                (chat, auth),
                ({**chat, "stream": True}, auth),
                (chat, {}),
                (chat, {"authorization": f"Bearer {GATEWAY_KEY}x"}),
                ({"model": 5}, auth),
            ]:
                response = httpx.post(gw.url + "/v1/chat/completions", json=body, headers=headers)
                answers.append(response.text + json.dumps(dict(response.headers)))
            for path in (
                "/admin/v1/config",
                "/admin/v1/providers",
                "/admin/v1/plugins",
                "/admin/v1/keys",
                "/admin/v1/ready",
                "/metrics",
                "/v1/models",
            ):
                answers.append(
                    httpx.get(gw.url + path, headers={**admin, **(auth if "/v1/models" in path else {})}).text
                )
            answers.append(
                httpx.get(gw.url + "/admin/v1/config", headers={"authorization": "Bearer wrong"}).text
            )
    finally:
        logger.remove(sink)
    records = "".join(msgspec.json.encode(r).decode() for r in collector.records)
    assert len(collector.records) == 6
    assert any(r.error_kind for r in collector.records)
    everything = "\n".join(answers) + logs.getvalue() + records
    for secret in SECRETS:
        assert secret not in everything, f"{secret[:8]}... leaked"
        assert secret[:12] not in everything
    assert "<secret>" in everything


def test_admin_keys_create_list_revoke(tmp_path: Path, fake: FakeOpenAI) -> None:
    path = tmp_path / "truckllm.yaml"
    path.write_text("# my gateway\n" + config(fake.base_url))
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    with GatewayServer(config_path=str(path)) as gw:
        created = httpx.post(
            gw.url + "/admin/v1/keys", json={"name": "ci", "models": ["demo"], "rpm": 5}, headers=admin
        )
        assert created.status_code == 201, created.text
        value = created.json()["key"]
        assert value.startswith("tllm_") and len(value) > 40
        stored = path.read_text()
        assert value not in stored and "sha256:" in stored and stored.startswith("# my gateway\n")
        listed = httpx.get(gw.url + "/admin/v1/keys", headers=admin).json()
        assert [k["name"] for k in listed["keys"]] == ["team", "ci"] and "sha256" not in json.dumps(listed)
        chat = {"model": "demo", "messages": [{"role": "user", "content": "x"}]}
        ok = httpx.post(
            gw.url + "/v1/chat/completions", json=chat, headers={"authorization": f"Bearer {value}"}
        )
        assert ok.status_code == 200
        assert httpx.post(gw.url + "/admin/v1/keys", json={"name": "ci"}, headers=admin).status_code == 409
        assert httpx.delete(gw.url + "/admin/v1/keys/ci", headers=admin).json() == {
            "deleted": True,
            "name": "ci",
        }
        gone = httpx.post(
            gw.url + "/v1/chat/completions", json=chat, headers={"authorization": f"Bearer {value}"}
        )
        assert gone.status_code == 401
        assert httpx.delete(gw.url + "/admin/v1/keys/ci", headers=admin).status_code == 404


def test_concurrent_streams_per_key_and_content_size(fake: FakeOpenAI) -> None:
    auth = {"authorization": f"Bearer {GATEWAY_KEY}"}
    with GatewayServer(config(fake.base_url)) as gw:
        body = {"model": "demo", "stream": True, "messages": [{"role": "user", "content": "a b c d e"}]}

        async def two_streams() -> tuple[int, dict[str, Any]]:
            async with aiohttp.ClientSession() as one, aiohttp.ClientSession() as two:
                url = gw.url + "/v1/chat/completions"
                async with one.post(url, json=body, headers=auth) as first:
                    await first.content.readline()  # the first stream is under way
                    async with two.post(url, json=body, headers=auth) as second:
                        return second.status, await second.json()

        status, answer = asyncio.run(two_streams())
        assert status == 429 and answer["error"]["code"] == "concurrent_streams_exceeded"
        after = httpx.post(gw.url + "/v1/chat/completions", json=body, headers=auth)
        assert after.status_code == 200
        big = {"model": "demo", "messages": [{"role": "user", "content": "x" * 2001}]}
        too_big = httpx.post(gw.url + "/v1/chat/completions", json=big, headers=auth)
        assert too_big.status_code == 400 and too_big.json()["error"]["code"] == "content_too_large"


# --- hostile input, in process (fast enough for property tests) ---------------------------------

HOSTILE_CONFIG = """
server: {max_body_bytes: 20000}
providers:
  demo: {type: mock}
models:
  demo: {deployments: [{provider: demo, model: echo}]}
"""


class InProcess:
    """Drives the ASGI app directly, without sockets."""

    def __init__(self) -> None:
        self.gateway = Gateway("<hostile>", config_text=HOSTILE_CONFIG)
        self.app = create_app(self.gateway)
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self.gateway.start())

    def post(
        self, path: str, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
    ) -> tuple[int, bytes]:
        return self.loop.run_until_complete(self._call(path, body, headers or []))

    async def _call(self, path: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
        sent: list[dict[str, Any]] = []
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "method": "POST",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": [(b"content-type", b"application/json"), *headers],
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "scheme": "http",
            "server": ("t", 80),
            "client": ("c", 1),
            "root_path": "",
        }
        await self.app(scope, receive, send)
        status = next(m["status"] for m in sent if m["type"] == "http.response.start")
        return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")

    def close(self) -> None:
        self.loop.run_until_complete(self.gateway.stop(0))
        self.loop.close()


@pytest.fixture(scope="module")
def inproc() -> Iterator[InProcess]:
    app = InProcess()
    yield app
    app.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant", "tool", "developer", "wizard", 3])},
    optional={
        "content": json_values,
        "tool_calls": json_values,
        "tool_call_id": json_values,
        "name": json_values,
    },
)
chat_body = st.fixed_dictionaries(
    {"model": st.sampled_from(["demo", "nope", "", 7])},
    optional={
        "messages": st.lists(message, max_size=4) | json_values,
        "stream": json_values,
        "temperature": json_values,
        "tools": json_values,
        "max_tokens": json_values,
        "stream_options": json_values,
        "n": json_values,
        "stop": json_values,
    },
)


@settings(
    max_examples=int(os.environ.get("TRUCKLLM_PROPERTY_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(body=chat_body)
def test_any_chat_body_gets_a_2xx_or_a_clean_4xx(inproc: InProcess, body: dict[str, Any]) -> None:
    status, answer = inproc.post("/v1/chat/completions", json.dumps(body).encode())
    assert status < 500, answer
    if status >= 400:
        error = json.loads(answer)["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["message"]


@settings(
    max_examples=int(os.environ.get("TRUCKLLM_PROPERTY_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(raw=st.binary(max_size=300))
@example(raw=b'{"model": "demo", "messages": [{"role": "user", "content": "\xff"}]}')  # broke: 500 (UTF-8)
@example(raw=b'{"model": "demo", "messages": [{"role": "user", "content": "x"}], "max_tokens": 99999999999999999999999}')
@example(raw=b'{"model": "demo", "messages": [{"role": "user", "content": "x"}], "stream_options": {}}')
def test_any_bytes_get_a_clean_4xx(inproc: InProcess, raw: bytes) -> None:
    for path in ("/v1/chat/completions", "/v1/embeddings", "/v1/completions"):
        status, answer = inproc.post(path, raw)
        assert status < 500, answer
        if status >= 400:
            assert "error" in json.loads(answer)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b'{"model": "demo", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1e400}', None),
        (
            b'{"model": "demo", "messages": [{"role": "user", "content": "x"}], "max_tokens": 99999999999999999999999}',
            "max_tokens",
        ),
        (b'{"model": "demo", "messages": [{"role": "user", "content": "x"}], "n": -1}', "n"),
        (b'{"model": "demo", "messages": ' + b"[" * 5000 + b"]" * 5000 + b"}", None),
        (b'{"model": "demo", "model": "demo", "messages": [{"role": "user"}]}', "messages[0].content"),
        (b'{"model": "demo", "messages": [{"role": "tool", "content": "x"}]}', "messages[0].tool_call_id"),
        (
            b'{"model": "demo", "messages": [{"role": "user", "content": [{"type": "video", "url": "x"}]}]}',
            None,
        ),
        (
            b'{"model": "demo", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "bad name!"}}]}',
            "tools[0].function.name",
        ),
        (
            b'{"model": "demo", "messages": [{"role": "user", "content": "x"}], "stop": ["a", "b", "c", "d", "e"]}',
            "stop",
        ),
        (
            b'{"model": "demo", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}',
            "temperature",
        ),
        (b'{"model": "demo", "messages": [{"role": "user", "content": "\\ud800"}]}', None),
    ],
)
def test_malformed_requests_get_a_useful_400(inproc: InProcess, body: bytes, param: str | None) -> None:
    status, answer = inproc.post("/v1/chat/completions", body)
    assert status == 400, answer
    error = json.loads(answer)["error"]
    if param is not None:
        assert error["param"] == param, error
    ok, _ = inproc.post(
        "/v1/chat/completions", b'{"model": "demo", "messages": [{"role": "user", "content": "x"}]}'
    )
    assert ok == 200  # and the gateway keeps serving


def test_slowloris_headers_are_cut_at_the_header_timeout(fake: FakeOpenAI) -> None:
    import socket
    import time

    with GatewayServer(
        config(fake.base_url, "").replace("server: {", "server: {keep_alive_timeout: 1s, ")
    ) as gw:
        sock = socket.create_connection(("127.0.0.1", gw.port))
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        closed_after = None
        try:
            for _ in range(40):  # one header byte every 0.1 s, never finishing the headers
                time.sleep(0.1)
                sock.sendall(b"X")
        except OSError:
            closed_after = time.monotonic() - started
        finally:
            sock.close()
        assert closed_after is not None and closed_after < 2.5
        ok = httpx.post(
            gw.url + "/v1/chat/completions",
            json={"model": "demo", "messages": [{"role": "user", "content": "x"}]},
            headers={"authorization": f"Bearer {GATEWAY_KEY}"},
        )
        assert ok.status_code == 200  # legitimate traffic is served meanwhile
