"""The quick start as a new user meets it (issue 14, item 8): ``truckllm serve`` on the shipped
``config/truckllm.yaml`` prints one line per request in the terminal, ``/metrics`` says how to
enable metrics, the front doors count tokens, and the first gateway key keeps the user's file as
written and says that it closed the open gateway."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.e2e.serving import free_port

REPO = Path(__file__).resolve().parents[2]
TRUCKLLM = str(Path(sys.executable).with_name("truckllm"))


class QuickStart:
    def __init__(self, url: str, token: str, config: Path, proc: subprocess.Popen[str]) -> None:
        self.url, self.config, self.proc = url, config, proc
        self.admin = {"authorization": f"Bearer {token}"}


@pytest.fixture
def quick_start(tmp_path: Path) -> Iterator[QuickStart]:
    config = tmp_path / "truckllm.yaml"
    shutil.copy(REPO / "config" / "truckllm.yaml", config)
    port, token = free_port(), secrets.token_urlsafe(24)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRUCKLLM_", "PROMETHEUS_"))}
    proc = subprocess.Popen(
        [TRUCKLLM, "serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"],
        env={**env, "TRUCKLLM_ADMIN_TOKEN": token},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path,  # the request log's SQLite file lands here
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/admin/v1/ready", timeout=1).is_success:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    try:
        yield QuickStart(url, token, config, proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        finally:
            if proc.poll() is None:
                proc.kill()


def test_the_quick_start_as_a_new_user_meets_it(quick_start: QuickStart) -> None:
    url, admin = quick_start.url, quick_start.admin
    chat = {"model": "demo", "messages": [{"role": "user", "content": "hello there"}]}
    assert httpx.post(url + "/v1/chat/completions", json=chat).status_code == 200

    metrics = httpx.get(url + "/metrics", headers=admin)
    assert metrics.status_code == 404 and "loggers: [prometheus]" in metrics.json()["error"]["message"]

    counted = httpx.post(
        url + "/v1/messages/count_tokens",
        json={"model": "demo", "messages": [{"role": "user", "content": "hello there"}]},
        headers={"anthropic-version": "2023-06-01", "x-api-key": "any"},
    )
    assert counted.status_code == 200 and counted.json() == {"input_tokens": 3}

    console = httpx.get(url + "/console/", headers={"accept": "text/html"})
    assert console.status_code == 303 and console.headers["location"].startswith("/console/login")
    deadline = time.monotonic() + 10  # the request log is written in batches, about once a second
    logged: list[dict[str, object]] = []
    while not logged and time.monotonic() < deadline:
        logged = httpx.get(url + "/admin/v1/requests", headers=admin, params={"alias": "demo"}).json()["data"]
        time.sleep(0.1)
    assert logged and logged[0]["status"] == 200 and logged[0]["provider"] == "demo"
    assert (quick_start.config.parent / "truckllm-requests.db").exists()

    before = quick_start.config.read_text()
    created = httpx.post(url + "/admin/v1/keys", json={"name": "me"}, headers=admin).json()
    assert created["open_before"] is True and "every request needs a gateway key" in created["warning"]
    after = quick_start.config.read_text()
    assert after.startswith(before) and after[len(before) :].count("\n") == 2  # keys: and its line
    assert httpx.post(url + "/v1/chat/completions", json=chat).status_code == 401
    closed = httpx.post(
        url + "/v1/chat/completions", json=chat, headers={"authorization": f"Bearer {created['key']}"}
    )
    assert closed.status_code == 200

    quick_start.proc.send_signal(signal.SIGTERM)
    out, _ = quick_start.proc.communicate(timeout=20)
    lines = out.splitlines()
    answered = [line for line in lines if " 200 chat demo -> demo/echo " in line]
    assert len(answered) == 2, out  # one readable line per request, in the terminal
    assert answered[0].split()[1] == "INFO" and "gateway_key=me" in answered[1]
    assert any(" INFO 200 count_tokens demo -> demo/echo " in line for line in lines), out
    assert any(" WARNING 401 chat " in line for line in lines), out
