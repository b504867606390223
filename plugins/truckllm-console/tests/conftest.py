"""Fixtures: a real gateway on loopback with the mock provider, the console and an in-memory
request log (``memlog.py``), and a browser-like client signed in to the console."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx2 as httpx
import pytest

from truckllm_testing.server import GatewayServer

ADMIN_TOKEN = "admin-token-Zq8vX3kP0wLm"
PROVIDER_KEYS = ("sk-mock-provider-secret-AAAA1111", "sk-mock-provider-secret-BBBB2222")
HTML = {"accept": "text/html,application/xhtml+xml"}


def load_memlog() -> ModuleType:
    """``memlog.py`` beside this file (tests are imported by path, not as a package)."""
    name = "truckllm_console_tests_memlog"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("memlog.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def config_text(*, memlog: bool = True) -> str:
    """A gateway with the admin token, two mock keys and (optionally) the in-memory log."""
    loggers = "loggers: [memlog]\n" if memlog else ""
    return f"""
admin: {{token: {ADMIN_TOKEN}}}
{loggers}providers:
  mock:
    type: mock
    keys:
      - {{name: k1, value: {PROVIDER_KEYS[0]}, rpm: 600, tpm: 90000, max_in_flight: 8}}
      - {{name: k2, value: {PROVIDER_KEYS[1]}}}
models:
  chat:
    deployments: [{{provider: mock, model: m1}}]
"""


def start(tmp_path: Path, *, memlog: bool = True) -> GatewayServer:
    """A gateway on a writable config file (keys can be made and revoked)."""
    path = tmp_path / "truckllm.yaml"
    path.write_text(config_text(memlog=memlog))
    plugins = (load_memlog().MemoryLogPlugin(),) if memlog else ()
    return GatewayServer(config_path=str(path), extra_plugins=plugins).start()


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[GatewayServer]:
    server = start(tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def gw_nolog(tmp_path: Path) -> Iterator[GatewayServer]:
    server = start(tmp_path, memlog=False)
    try:
        yield server
    finally:
        server.stop()


def sign_in(server: GatewayServer) -> httpx.Client:
    """A client holding a signed-in session cookie."""
    client = httpx.Client(base_url=server.url, headers=HTML)
    answer = client.post("/console/login", data={"token": ADMIN_TOKEN, "next": "/console/"})
    assert answer.status_code == 303, answer.text
    return client


@pytest.fixture
def browser(gw: GatewayServer) -> Iterator[httpx.Client]:
    client = sign_in(gw)
    try:
        yield client
    finally:
        client.close()


def csrf_of(html: str) -> str:
    """The CSRF token in a page's forms."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


def chat(server: GatewayServer, text: str = "hello", n: int = 1, model: str = "chat") -> None:
    """``n`` chat requests through the gateway."""
    with httpx.Client(base_url=server.url, headers={"authorization": "Bearer anything"}) as client:
        for _ in range(n):
            client.post(
                "/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": text}]}
            )


# the test modules import these helpers by this name (test files are imported by path, so
# ``from conftest import ...`` would not find this module)
sys.modules.setdefault("truckllm_console_testkit", sys.modules[__name__])
