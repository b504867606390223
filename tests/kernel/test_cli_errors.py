"""Start-up and CLI errors a person can read (issue 14, item 7).

A missing config, an address that is not ``HOST:PORT`` or out of range, a port in use, a gateway
that would be exposed, a bad ``--bind``: one line saying what and how to fix it, exit code 2, no
traceback (``--debug`` shows it). ``truckllm validate`` runs every check ``serve`` runs before
binding. Field-type errors are in plain words and an unknown field suggests the closest name.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from truckllm._internal.config.loader import Registry, parse_config
from truckllm._internal.plugins import make_plugin_manager
from truckllm.errors import ConfigError

TRUCKLLM = str(Path(sys.executable).with_name("truckllm"))
KEYS = "keys: [{name: a, value: a-gateway-key-value-0123}]\n"
MOCK = "providers: {demo: {type: mock}}\nmodels: {demo: {deployments: [{provider: demo, model: echo}]}}\n"


def run(*args: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUCKLLM_")}
    return subprocess.run(
        [TRUCKLLM, *args], cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=60
    )


def refused(done: subprocess.CompletedProcess[str], command: str) -> str:
    """The one error line of a command that refused with exit code 2 (log lines before it aside)."""
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith(f"truckllm {command}: ")]
    assert len(lines) == 1 and done.stderr.rstrip("\n").endswith(lines[0]), done.stderr
    return lines[0]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path


def write(folder: Path, text: str, name: str = "c.yaml") -> str:
    (folder / name).write_text(text)
    return name


def test_a_missing_config_is_one_line_and_exit_2(folder: Path) -> None:
    for command in ("serve", "validate", "rotate-key"):
        line = refused(run(command, "--config", "nope.yaml", cwd=folder), command)
        assert "no config file at nope.yaml (--config)" in line and "give --config PATH" in line
        assert run(command, "--config", "nope.yaml", cwd=folder).stderr == line + "\n"  # only that line
    line = refused(run("serve", cwd=folder), "serve")  # the default, from another folder
    assert "config/truckllm.yaml (the default" in line and "run from the repository's root" in line
    line = refused(run("validate", "--config", str(folder), cwd=folder), "validate")
    assert "is a folder" in line


@pytest.mark.parametrize(
    ("listen", "says"),
    [
        ("garbage", "server.listen 'garbage' is not HOST:PORT"),
        ("0.0.0.0", "server.listen '0.0.0.0' is not HOST:PORT"),
        ("127.0.0.1:99999", "the port must be 1-65535, not 99999"),
        ("127.0.0.1:0", "the port must be 1-65535, not 0"),
        ("127.0.0.1:http", "is not HOST:PORT"),
    ],
)
def test_an_unusable_server_listen_is_one_line_and_exit_2(folder: Path, listen: str, says: str) -> None:
    name = write(folder, f"server: {{listen: '{listen}'}}\n{KEYS}{MOCK}")
    assert says in refused(run("serve", "--config", name, cwd=folder), "serve")
    validated = run("validate", "--config", name, cwd=folder)  # validate reports it as a problem
    assert validated.returncode == 1 and says in validated.stderr and "serve would refuse" in validated.stderr


def test_a_bad_listen_flag_is_named(folder: Path) -> None:
    name = write(folder, MOCK)
    line = refused(run("serve", "--config", name, "--listen", "1.2.3.4", cwd=folder), "serve")
    assert "--listen '1.2.3.4' is not HOST:PORT" in line and "127.0.0.1:8080" in line


@pytest.fixture
def taken() -> Iterator[int]:
    """A port something already listens on."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_port_in_use_is_one_line_and_exit_2(folder: Path, taken: int) -> None:
    name = write(folder, f"server: {{listen: '127.0.0.1:{taken}'}}\n{MOCK}")
    line = refused(run("serve", "--config", name, cwd=folder), "serve")
    assert f"cannot listen on 127.0.0.1:{taken}: the address is already in use" in line
    assert "--listen HOST:PORT" in line
    debug = run("serve", "--debug", "--config", name, cwd=folder)
    assert debug.returncode != 0 and "Traceback" in debug.stderr  # --debug shows where


def test_validate_runs_the_checks_serve_runs_before_binding(folder: Path) -> None:
    """``listen: 0.0.0.0:8080`` with no keys validated, then serve refused it."""
    name = write(folder, f"server: {{listen: '0.0.0.0:8080'}}\n{MOCK}")
    validated = run("validate", "--config", name, cwd=folder)
    assert validated.returncode == 1, validated.stderr
    assert "no gateway keys are configured and the gateway would listen on 0.0.0.0:8080" in validated.stderr
    line = refused(run("serve", "--config", name, cwd=folder), "serve")
    assert "no gateway keys are configured" in line
    # the weak admin token, off loopback through --listen
    name = write(folder, f"admin: {{token: change-me}}\n{KEYS}{MOCK}", "weak.yaml")
    assert run("validate", "--config", name, cwd=folder).returncode == 0  # loopback: a warning
    exposed = run("validate", "--config", name, "--listen", "0.0.0.0:8080", cwd=folder)
    assert exposed.returncode == 1 and "admin.token" in exposed.stderr
    assert "admin.token" in refused(
        run("serve", "--config", name, "--listen", "0.0.0.0:8080", cwd=folder), "serve"
    )


def test_config_says_its_default_in_help(folder: Path) -> None:
    for command in ("serve", "validate", "rotate-key"):
        shown = " ".join(run(command, "--help", cwd=folder).stdout.split())
        assert "default: config/truckllm.yaml" in shown and "--debug" in shown


@pytest.mark.parametrize(
    "binding", ["nonsense", "openai/", "/main", "open ai/main", "a/b c", "x" * 200 + "/k"]
)
def test_encrypt_refuses_a_binding_that_is_not_provider_slash_key(folder: Path, binding: str) -> None:
    done = run("encrypt", "--bind", binding, cwd=folder, stdin="sk-secret\n")
    assert "is not PROVIDER/KEY" in refused(done, "encrypt") and "sk-secret" not in done.stderr


@pytest.fixture(scope="module")
def registry() -> Registry:
    return make_plugin_manager().registry()


def problems(text: str, registry: Registry) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, registry, source="c.yaml", env={})
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("server: {workers: two}", "c.yaml:1: server.workers: expected a whole number, got text"),
        ("server: {workers: 1.5}", "server.workers: expected a whole number, got a number with a fraction"),
        ("server: {workers: 0}", "server.workers: expected a whole number of at least 1"),
        ("routing: {retries: many}", "routing.retries: expected a whole number, got text"),
        ("keys: [{name: a, value: b, rpm: ten}]", "keys[0].rpm: expected a whole number or null, got text"),
        ("keys: [{name: '', value: b}]", "keys[0].name: expected text of at least 1 character"),
        ("keys: [{name: 'a b', value: b}]", "keys[0].name: expected a name: letters, digits and"),
        ("loggers: [{stdout: {format: texty}}]", "expected one of 'json', 'text', got 'texty'"),
        (
            "providers: {d: {type: mock, options: {chunks: [1]}}}",
            "options.chunks: expected a whole number, got a list",
        ),
    ],
)
def test_type_errors_are_in_plain_words(registry: Registry, text: str, shown: str) -> None:
    found = problems(text, registry)
    assert any(shown in p for p in found), found
    assert not any("Expected `" in p or "Invalid enum" in p for p in found), found


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("sever: {listen: '127.0.0.1:8080'}", "c.yaml:1: sever: unknown field: did you mean `server`?"),
        ("provider: {}", "provider: unknown field: did you mean `providers`?"),
        (
            "server: {graceful_timout: 5s}",
            "server.graceful_timout: unknown field: did you mean `graceful_timeout`?",
        ),
        (
            "providers: {d: {type: mock, option: {}}}",
            "providers.d.option: unknown field: did you mean `options`?",
        ),
        (
            "providers: {d: {type: mock, options: {chunkz: 2}}}",
            "options.chunkz: unknown field: did you mean `chunks`?",
        ),
        (
            "loggers: [{stdout: {levle: INFO}}]",
            "loggers[0].stdout.levle: unknown field: did you mean `level`?",
        ),
        ("server: {zzzzzz: 1}", "server.zzzzzz: unknown field (the fields here: "),
    ],
)
def test_an_unknown_field_suggests_the_closest_known_one(registry: Registry, text: str, shown: str) -> None:
    found = problems(text, registry)
    assert any(shown in p for p in found), found
