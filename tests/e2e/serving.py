"""Running ``truckllm serve`` as a user would, for end-to-end tests: a free port, a Redis key
prefix of the test's own (removed afterwards), and the server process (stopped with SIGTERM,
which must exit 0)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2 as httpx
import redis


def free_port() -> int:
    """A TCP port nothing listens on now."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


@contextmanager
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own on the real Redis; every key under it is deleted after."""
    value = f"truckllm-test-{uuid.uuid4().hex[:8]}:"
    yield value
    client = redis.Redis(host="127.0.0.1", port=6379)
    keys = list(client.scan_iter(match=f"{value}*"))
    if keys:
        client.delete(*keys)
    client.close()


@contextmanager
def serving(tmp_path: Path, config: str, port: int) -> Iterator[str]:
    """``truckllm serve`` on ``config`` (which listens on ``port``); yields its URL once ready."""
    path = tmp_path / "serve.yaml"
    path.write_text(config)
    log = (tmp_path / "serve.log").open("wb")
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "truckllm.cli", "serve", "--config", str(path)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline, ready = time.monotonic() + 30, 0
    while time.monotonic() < deadline and ready < 5:
        try:
            ready = ready + 1 if httpx.get(url + "/admin/v1/ready", timeout=1).is_success else 0
        except httpx.HTTPError:
            ready = 0
        time.sleep(0.1)
    try:
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()
