"""Streamed uploads through a running gateway: the cap, malformed forms, and no temporary file
left after any ending (success, 4xx, upstream 5xx, a client gone mid-upload), many at once."""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx
import openai
import pytest

from truckllm_testing.fakes import FakeOpenAI, Fault
from truckllm_testing.server import GatewayServer

KEY = "sk-test-aaaaaaaaaaaaaaaaaaaa"
CAP = 2 * 1024 * 1024


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    upstream = FakeOpenAI(keys=(KEY,))
    with upstream.running():
        yield upstream


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    path = tmp_path / "spool"
    path.mkdir()
    return path


@pytest.fixture
def gw(fake: FakeOpenAI, spool: Path) -> Iterator[GatewayServer]:
    config = f"""
server: {{upload_dir: {spool}, limits: {{max_upload_bytes: {CAP}}}, read_timeout: 30s}}
routing: {{backoff: {{base: 1ms, max: 5ms}}, max_attempts: 1}}
providers:
  oa: {{type: openai, base_url: {fake.base_url}, keys: [{{name: k, value: {KEY}}}]}}
models:
  whisper: {{deployments: [{{provider: oa, model: whisper-1}}]}}
"""
    with GatewayServer(config) as server:
        yield server


@pytest.fixture
def client(gw: GatewayServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=gw.url + "/v1", api_key="client-key", max_retries=0
    ) as sdk:  # closed: no socket left for a later test's GC
        yield sdk


def settled(gw: GatewayServer, spool: Path) -> list[Path]:
    """The spool directory's entries once the gateway has no request in flight."""
    assert gw.gateway is not None
    for _ in range(1000):
        if gw.gateway.in_flight == 0 and not list(spool.iterdir()):
            break
        time.sleep(0.01)
    return list(spool.iterdir())


def test_success_4xx_and_5xx_leave_no_file(
    fake: FakeOpenAI, client: openai.OpenAI, gw: GatewayServer, spool: Path
) -> None:
    data = b"x" * 100_000
    assert client.audio.transcriptions.create(model="whisper", file=("a.mp3", data)).text
    assert settled(gw, spool) == []
    with pytest.raises(openai.BadRequestError) as bad:  # refused by the gateway after spooling
        client.audio.transcriptions.create(model="whisper", file=("a.mp3", data), response_format="pdf")  # type: ignore[arg-type]
    assert bad.value.param == "response_format"
    assert settled(gw, spool) == []
    fake.inject(Fault(status=500, kind="server", times=-1))
    with pytest.raises(openai.InternalServerError):
        client.audio.transcriptions.create(model="whisper", file=("a.mp3", data))
    assert settled(gw, spool) == []


@pytest.mark.parametrize(
    ("files", "data", "param"),
    [
        ({"file": ("a.mp3", b"abc")}, {}, "model"),
        ({}, {"model": "whisper"}, "file"),
        ({"file": ("a.mp3", b"")}, {"model": "whisper"}, "file"),
        ({"file": ("a.mp3", b"abc")}, {"model": "whisper", "stream": "maybe"}, "stream"),
        (
            {"file": ("a.mp3", b"abc")},
            {"model": "whisper", "timestamp_granularities[]": "day"},
            "timestamp_granularities[]",
        ),
    ],
)
def test_bad_forms_get_a_400_naming_the_field(
    gw: GatewayServer, spool: Path, files: dict[str, tuple[str, bytes]], data: dict[str, str], param: str
) -> None:
    parts = files or {"other": (None, b"v")}  # a form with no file part at all
    response = httpx.post(gw.url + "/v1/audio/transcriptions", files=parts, data=data)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert settled(gw, spool) == []


def test_malformed_multipart_and_wrong_content_type(gw: GatewayServer, spool: Path) -> None:
    truncated = b'--zz\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper\r\n'
    response = httpx.post(
        gw.url + "/v1/audio/transcriptions",
        content=truncated,
        headers={"content-type": "multipart/form-data; boundary=zz"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_multipart"
    assert "closing boundary" in response.json()["error"]["message"]
    response = httpx.post(gw.url + "/v1/audio/transcriptions", json={"model": "whisper"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_content_type"
    assert settled(gw, spool) == []


def test_over_the_cap_is_a_413_in_openai_format(gw: GatewayServer, spool: Path, fake: FakeOpenAI) -> None:
    response = httpx.post(
        gw.url + "/v1/audio/transcriptions",
        files={"file": ("big.mp3", b"z" * (CAP + 1))},
        data={"model": "whisper"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert fake.requests == []
    assert settled(gw, spool) == []


def test_a_client_gone_mid_upload_leaves_no_file(gw: GatewayServer, spool: Path, fake: FakeOpenAI) -> None:
    head = (
        b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: multipart/form-data; boundary=zz\r\nContent-Length: 1000000\r\n\r\n"
        b'--zz\r\nContent-Disposition: form-data; name="file"; filename="a.mp3"\r\n\r\n'
    )
    with socket.create_connection(("127.0.0.1", gw.port)) as sock:
        sock.sendall(head + b"a" * 200_000)
        for _ in range(1000):  # the part is being written to the spool
            if list(spool.iterdir()):
                break
            time.sleep(0.01)
        assert list(spool.iterdir())
    assert settled(gw, spool) == []
    assert fake.requests == []


def test_many_concurrent_uploads(
    client: openai.OpenAI, gw: GatewayServer, spool: Path, fake: FakeOpenAI
) -> None:
    def one(i: int) -> str:
        data = hashlib.sha256(str(i).encode()).digest() * (1000 + i)
        return client.audio.transcriptions.create(model="whisper", file=(f"{i}.mp3", data)).text

    with ThreadPoolExecutor(16) as pool:
        texts = list(pool.map(one, range(32)))
    assert all(text.startswith(f"transcription of {32 * (1000 + i)} bytes") for i, text in enumerate(texts))
    sent = sorted(r.json["files"][0]["size"] for r in fake.requests)
    assert sent == sorted(32 * (1000 + i) for i in range(32))
    assert settled(gw, spool) == []
