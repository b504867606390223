"""Hostile uploads through a running gateway, each with no spooled file left and the upstream
never reached by what was refused; and a crashed gateway's spool swept by the next one's start.

The attacks: file names with ``../``, quotes, a NUL, very long; a part's content type with a line
break (header injection upstream); a client's boundary text inside a field; a Content-Length that
says less, or more, than is sent; 10,000 tiny parts; a client that stops mid-part.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from truckllm._internal.upload import MAX_FIELDS, MAX_FILES, host_tag
from truckllm_testing.fakes import FakeOpenAI
from truckllm_testing.server import GatewayServer

KEY = "sk-test-aaaaaaaaaaaaaaaaaaaa"
CAP = 4 * 1024 * 1024
BOUNDARY = "zzB0undary"


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


def gateway_config(fake: FakeOpenAI, spool: Path, read_timeout: str = "30s", listen: str = "") -> str:
    return f"""
server: {{{listen}upload_dir: {spool}, limits: {{max_upload_bytes: {CAP}}}, read_timeout: {read_timeout}}}
routing: {{backoff: {{base: 1ms, max: 5ms}}, max_attempts: 1}}
providers:
  oa: {{type: openai, base_url: {fake.base_url}, keys: [{{name: k, value: {KEY}}}]}}
models:
  whisper: {{deployments: [{{provider: oa, model: whisper-1}}]}}
"""


@pytest.fixture
def gw(fake: FakeOpenAI, spool: Path) -> Iterator[GatewayServer]:
    with GatewayServer(gateway_config(fake, spool, read_timeout="1s")) as server:
        yield server


def settled(gw: GatewayServer, spool: Path) -> list[str]:
    """The spool's entries once the gateway has no request in flight (bounded wait)."""
    assert gw.gateway is not None
    for _ in range(1000):
        if gw.gateway.in_flight == 0 and not list(spool.iterdir()):
            break
        time.sleep(0.01)
    return sorted(p.name for p in spool.iterdir())


def part(name: str, value: bytes, filename: str | None = None, content_type: str = "audio/mpeg") -> bytes:
    disposition = f'form-data; name="{name}"'
    head = f"--{BOUNDARY}\r\n".encode()
    if filename is None:
        return head + f"Content-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"
    return (
        head
        + f'Content-Disposition: {disposition}; filename="{filename}"\r\n'.encode("utf-8", "surrogatepass")
        + f"Content-Type: {content_type}\r\n\r\n".encode("utf-8", "surrogatepass")
        + value
        + b"\r\n"
    )


def post(gw: GatewayServer, *parts: bytes) -> httpx.Response:
    body = b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()
    return httpx.post(
        gw.url + "/v1/audio/transcriptions",
        content=body,
        headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"},
        timeout=60,
    )


def raw_exchange(gw: GatewayServer, data: bytes, close_write: bool = False) -> bytes:
    """Send ``data`` on a fresh connection; what the gateway answers until it closes (or 30 s)."""
    with socket.create_connection(("127.0.0.1", gw.port)) as sock:
        sock.settimeout(30)
        sock.sendall(data)
        if close_write:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer and answer.rstrip().endswith(b"}"):
                    break
    return answer


# --- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "upstream"),
    [
        ("../../../../etc/passwd", None),
        ("..\\..\\boot.ini", "....boot.ini"),  # as aiohttp (the fake) reads the quoted string
        ("/abs/path.mp3", "abs/path.mp3"),  # ... and strips a leading slash
        ("quo%22te.mp3", None),
        ("é😀.mp3", None),
        ("x" * 3000, None),
    ],
)
def test_hostile_file_names_reach_the_upstream_as_names_and_never_the_disk(
    gw: GatewayServer, fake: FakeOpenAI, spool: Path, tmp_path: Path, filename: str, upstream: str | None
) -> None:
    before = sorted(p.name for p in tmp_path.rglob("*"))
    response = post(gw, part("model", b"whisper"), part("file", b"audio-bytes", filename))
    assert response.status_code == 200, response.text
    (sent,) = fake.requests[-1].json["files"]
    assert sent["filename"] == (upstream or filename) and sent["size"] == len(b"audio-bytes")
    assert settled(gw, spool) == []
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written anywhere else


@pytest.mark.parametrize(
    ("filename", "content_type"),
    [
        ("a\x00b.mp3", "audio/mpeg"),
        ("a\x1b[31mred.mp3", "audio/mpeg"),
        ("a\x7f.mp3", "audio/mpeg"),
        ("a.mp3", "audio/mpeg\nX-Injected: 1"),  # a bare LF: a header of its own upstream
        ("a.mp3", "audio/mpeg\x00"),
        ("a.mp3", "audio/mpeg\x0bx"),
    ],
)
def test_control_characters_in_names_and_types_are_a_400_naming_the_field(
    gw: GatewayServer, fake: FakeOpenAI, spool: Path, filename: str, content_type: str
) -> None:
    response = post(gw, part("model", b"whisper"), part("file", b"abc", filename, content_type))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_multipart" and error["param"] == "file"
    assert "control character" in error["message"]
    assert fake.requests == []
    assert settled(gw, spool) == []


def test_a_control_character_in_a_field_name_is_a_400(gw: GatewayServer, fake: FakeOpenAI) -> None:
    response = post(gw, part("mo\x01del", b"whisper"), part("file", b"abc", "a.mp3"))
    assert response.status_code == 400 and "control character" in response.json()["error"]["message"]
    assert fake.requests == []


def test_a_file_name_past_the_header_bound_is_a_400(gw: GatewayServer, fake: FakeOpenAI, spool: Path) -> None:
    response = post(gw, part("model", b"whisper"), part("file", b"abc", "y" * 10_000))
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_multipart"
    assert fake.requests == [] and settled(gw, spool) == []


def test_boundary_text_inside_fields_and_files_passes_through_intact(
    gw: GatewayServer, fake: FakeOpenAI, spool: Path
) -> None:
    tricky = f"--{BOUNDARY} \r\n--{BOUNDARY[:-1]}\r\n-- {BOUNDARY}--x\r\n--truckllm-0123\r\n".encode()
    response = post(gw, part("model", b"whisper"), part("prompt", tricky), part("file", tricky, "a.mp3"))
    assert response.status_code == 200, response.text
    summary = fake.requests[-1].json
    assert summary["fields"]["prompt"] == [tricky.decode()]
    assert summary["files"][0]["size"] == len(tricky)
    assert settled(gw, spool) == []


# --- sizes and counts ----------------------------------------------------------------------------


def test_ten_thousand_tiny_fields_are_refused_past_the_bound(
    gw: GatewayServer, fake: FakeOpenAI, spool: Path
) -> None:
    response = post(gw, *(part(f"f{i}", b"v") for i in range(10_000)))
    assert response.status_code == 400 and f"limit is {MAX_FIELDS}" in response.json()["error"]["message"]
    assert fake.requests == [] and settled(gw, spool) == []


def test_ten_thousand_tiny_files_are_refused_past_the_bound(
    gw: GatewayServer, fake: FakeOpenAI, spool: Path
) -> None:
    response = post(gw, part("model", b"whisper"), *(part("file", b"v", f"{i}.mp3") for i in range(10_000)))
    assert response.status_code == 400 and f"limit is {MAX_FILES}" in response.json()["error"]["message"]
    assert fake.requests == [] and settled(gw, spool) == []


def head(length: int) -> bytes:
    return (
        f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def test_a_content_length_shorter_than_the_body_cuts_the_form(
    gw: GatewayServer, fake: FakeOpenAI, spool: Path
) -> None:
    body = part("model", b"whisper") + part("file", b"a" * 5000, "a.mp3") + f"--{BOUNDARY}--\r\n".encode()
    answer = raw_exchange(gw, head(len(body) - 100) + body)
    assert answer.startswith(b"HTTP/1.1 400") and b"closing boundary" in answer
    assert fake.requests == [] and settled(gw, spool) == []


def test_a_content_length_longer_than_the_body_then_a_close_leaves_nothing(
    gw: GatewayServer, fake: FakeOpenAI, spool: Path
) -> None:
    body = part("model", b"whisper") + part("file", b"a" * 5000, "a.mp3")
    raw_exchange(gw, head(len(body) + 100_000) + body, close_write=True)
    assert fake.requests == [] and settled(gw, spool) == []


def test_a_client_that_stops_mid_part_gets_a_408_and_leaves_nothing(
    gw: GatewayServer, fake: FakeOpenAI, spool: Path
) -> None:
    body = part("model", b"whisper") + part("file", b"a" * 5000, "a.mp3")[:-200]  # then silence
    answer = raw_exchange(gw, head(len(body) + 100_000) + body)  # read_timeout is 1 s here
    assert answer.startswith(b"HTTP/1.1 408") and b"request_timeout" in answer
    assert fake.requests == [] and settled(gw, spool) == []


# --- a crashed gateway's spool -------------------------------------------------------------------


def free_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


def test_a_crashed_gateways_spool_is_swept_by_the_next_start(
    fake: FakeOpenAI, spool: Path, tmp_path: Path
) -> None:
    port = free_port()
    config = tmp_path / "crash.yaml"
    config.write_text(gateway_config(fake, spool, listen=f"listen: 127.0.0.1:{port}, workers: 1, "))
    log = (tmp_path / "crash.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "truckllm.cli", "serve", "--config", str(config)], stdout=log, stderr=log
    )
    try:
        for _ in range(600):
            assert proc.poll() is None, (tmp_path / "crash.log").read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/admin/v1/ready", timeout=1).is_success:
                    break
            time.sleep(0.1)
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(head(1_000_000) + part("file", b"a" * 300_000, "a.mp3"))
            for _ in range(1000):  # the part is being spooled
                if list(spool.iterdir()):
                    break
                time.sleep(0.01)
            os.kill(proc.pid, signal.SIGKILL)  # a crash: no clean-up runs
            proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        log.close()
    (left,) = spool.iterdir()
    assert left.name.startswith(f"truckllm-upload-{host_tag()}-{proc.pid}-")
    live = spool / f"truckllm-upload-{host_tag()}-{os.getppid()}-keepme"  # a live process's
    live.mkdir()
    foreign = spool / "not-ours"
    foreign.mkdir()
    with GatewayServer(gateway_config(fake, spool)):
        assert sorted(p.name for p in spool.iterdir()) == ["not-ours", live.name]
