"""A weak admin token never guards a reachable admin API (issue 13, finding 11).

Rule: an empty, well-known, short or repetitive ``admin.token`` is refused at start-up (on the
address actually bound) and on reload unless the gateway listens on loopback only, where it is
allowed with a warning; no message shows the token; the shipped quick start carries no token.
"""

from __future__ import annotations

import io
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from loguru import logger

from truckllm._internal.config.admin_token import MIN_LENGTH, is_loopback, weak_admin_token
from truckllm._internal.config.loader import Registry, parse_config
from truckllm._internal.gateway import Gateway
from truckllm._internal.plugins import make_plugin_manager
from truckllm._internal.secrets import Secret
from truckllm._internal.server import check_exposure
from truckllm.errors import ConfigError, StartupError

EXAMPLES = int(os.environ.get("TRUCKLLM_PROPERTY_EXAMPLES", "300"))
REPO = Path(__file__).resolve().parents[2]
WEAK = [
    "",
    "   ",
    "change-me",
    "CHANGE-ME",
    "changeme",
    "admin",
    "password",
    "secret",
    "token",
    "Password",
    "fifteen-chars-x",
    "zzzzzzzzzzzzzzzzzzzzzzzz",
    "abababababababababababab",
    "change-me-in-production-please",
    "my-Password-is-long-enough-2024",
]
EXPOSED = ["0.0.0.0:8080", "[::]:8080", "10.1.2.3:80", ":8080", "gateway.internal:443"]
LOOPBACK = ["127.0.0.1:8080", "localhost:8080", "[::1]:8080", "127.3.2.1:9"]


def config(token: str, listen: str, keys: bool = True) -> str:
    text = (
        f"server: {{listen: '{listen}'}}\nadmin: {{token: '{token}'}}\nproviders: {{demo: {{type: mock}}}}\n"
    )
    return text + ("keys: [{name: a, value: tllm_some_gateway_key_value}]\n" if keys else "")


@pytest.fixture(scope="module")
def registry() -> Registry:
    return make_plugin_manager().registry()


@pytest.fixture
def warnings() -> Iterator[io.StringIO]:
    sink = io.StringIO()
    handle = logger.add(sink, level="WARNING", format="{message}")
    yield sink
    logger.remove(handle)


@pytest.mark.parametrize("listen", EXPOSED)
@pytest.mark.parametrize("token", WEAK)
def test_a_weak_token_is_refused_off_loopback(registry: Registry, token: str, listen: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(config(token, listen), registry)
    [problem] = caught.value.problems
    assert problem.field == "admin.token" and "refused" in problem.message
    if token.strip():
        assert repr(token) not in str(caught.value) and f"'{token}'" not in str(caught.value)


@pytest.mark.parametrize("listen", LOOPBACK)
@pytest.mark.parametrize("token", WEAK)
def test_a_weak_token_on_loopback_is_a_loud_warning(
    registry: Registry, warnings: io.StringIO, token: str, listen: str
) -> None:
    parse_config(config(token, listen), registry)
    assert "admin.token" in warnings.getvalue() and listen in warnings.getvalue()
    if len(token.strip()) >= 8:
        assert token not in warnings.getvalue()


@settings(max_examples=EXAMPLES, deadline=None)
@given(token=st.text(max_size=MIN_LENGTH - 1))
def test_any_short_token_is_weak(token: str) -> None:
    assert weak_admin_token(Secret(token)) is not None


@settings(max_examples=EXAMPLES, deadline=None)
@given(size=st.integers(12, 64))
def test_random_tokens_are_fine(size: int) -> None:
    token = secrets.token_urlsafe(size)
    assert weak_admin_token(Secret(token)) is None


def test_no_token_means_no_admin_api_and_is_fine(registry: Registry) -> None:
    assert weak_admin_token(None) is None
    parse_config("server: {listen: '0.0.0.0:80'}\nkeys: [{name: a, value: b}]\n", registry)


@pytest.mark.parametrize("token", WEAK)
def test_start_up_checks_the_address_actually_bound(token: str) -> None:
    """``--listen`` overrides a loopback ``server.listen``: the bound address decides."""
    loaded = parse_config(config(token, "127.0.0.1:8080"), make_plugin_manager().registry())
    check_exposure(loaded, "127.0.0.1:9000")
    with pytest.raises(StartupError, match=r"admin\.token") as caught:
        check_exposure(loaded, "0.0.0.0:9000")
    if token.strip():
        assert repr(token) not in str(caught.value)


def test_reload_refuses_a_weak_token_and_keeps_the_running_config() -> None:
    strong = secrets.token_urlsafe(24)
    gateway = Gateway("<t>", config_text=config(strong, "0.0.0.0:8080"))
    with pytest.raises(ConfigError, match=r"admin\.token"):
        gateway.reload(config("change-me", "0.0.0.0:8080"))
    assert gateway.runtime.config.admin.token == Secret(strong)


@pytest.mark.parametrize(
    ("listen", "loopback"), [*((a, False) for a in EXPOSED), *((a, True) for a in LOOPBACK)]
)
def test_is_loopback(listen: str, loopback: bool) -> None:
    assert is_loopback(listen) is loopback


def test_the_quick_start_ships_no_token(registry: Registry, warnings: io.StringIO) -> None:
    shipped = (REPO / "config" / "truckllm.yaml").read_text()
    assert "change-me" not in shipped
    off = parse_config(shipped, registry, env={})
    assert not off.admin.token  # unset: the admin API is off, and a warning says so
    assert "empty" in warnings.getvalue()
    token = secrets.token_urlsafe(32)
    on = parse_config(shipped, registry, env={"TRUCKLLM_ADMIN_TOKEN": token})
    assert on.admin.token == Secret(token)
    makefile = (REPO / "Makefile").read_text()
    assert ".truckllm-admin-token" in makefile and "token_urlsafe" in makefile
    assert ".truckllm-admin-token" in (REPO / ".gitignore").read_text()
