"""Several workers: one socket, metrics summed across processes, every worker reloads, SIGTERM drains."""

from __future__ import annotations

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
from prometheus_client.parser import text_string_to_metric_families


def free_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def write_config(path: Path, port: int, extra: str = "") -> None:
    path.write_text(f"""
server: {{listen: "127.0.0.1:{port}", workers: 2, graceful_timeout: 10s}}
admin: {{token: adm}}
loggers: [prometheus]
providers:
  demo: {{type: mock}}
models:
  demo: {{deployments: [{{provider: demo, model: echo}}]}}
{extra}""")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    port = free_port()
    path = tmp_path / "c.yaml"
    write_config(path, port)
    log = (tmp_path / "serve.log").open("wb")
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    proc = subprocess.Popen([sys.executable, "-m", "truckllm.cli", "serve", "--config", str(path)],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 30
    ready = 0
    while time.monotonic() < deadline and ready < 5:  # several answers in a row: both workers are up
        try:
            ready = ready + 1 if httpx.get(f"http://127.0.0.1:{port}/admin/v1/ready", timeout=1).is_success else 0
        except httpx.HTTPError:
            ready = 0
        time.sleep(0.1)
    yield proc, port, path
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    log.close()


def scrape(port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", headers={"authorization": "Bearer adm"}).text
    for family in text_string_to_metric_families(text):
        if family.name == "truckllm_requests":
            return sum(s.value for s in family.samples if s.name == "truckllm_requests_total")
    return 0.0


def test_two_workers_count_every_request_once_and_all_reload(cluster: tuple[subprocess.Popen[bytes], int, Path]) -> None:
    proc, port, path = cluster
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    body = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
    served_by: set[str] = set()
    for _ in range(40):
        with httpx.Client() as client:  # a new connection each time, so both workers get some
            response = client.post(url, json=body)
            assert response.status_code == 200
            served_by.add(response.headers["x-truckllm-worker"])
    assert served_by == {"0", "1"}
    deadline = time.monotonic() + 10
    while scrape(port) < 40 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [scrape(port) for _ in range(4)] == [40.0] * 4  # whichever worker answers the scrape

    write_config(path, port, "  fresh: {deployments: [{provider: demo, model: new}]}\n")
    proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    answers: set[int] = set()
    while time.monotonic() < deadline:
        answers = set()
        for _ in range(10):
            with httpx.Client() as client:
                answers.add(client.post(url, json={**body, "model": "fresh"}).status_code)
        if answers == {200}:
            break
        time.sleep(0.2)
    assert answers == {200}

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
