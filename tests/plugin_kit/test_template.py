"""The plugin template works outside this repository, installed as its README says: from wheels.

Once per module: build the kernel's and the test kit's wheels as ``make dist`` does (``python -m
build``: an sdist, then the wheel from it), and check from the zip listings that the runtime wheel
carries none of the test kit. Copy ``contrib/plugin-template`` to a temporary folder, rename it
with its own ``rename.py``, create a fresh virtual environment and install into it what the
template's README shows as way (b): the two wheels named by path and the renamed plugin with its
test extra, in one pip command, so that pip never looks ``truckllm`` or ``truckllm-testing`` up
on an index (its verbose log is checked for that). No other plugin is installed there, so
whatever the plugin needs but does not declare shows up. Then: ``truckllm plugins`` lists it,
``truckllm serve`` loads it (``/admin/v1/plugins``) and serves a config using it, and the
template's own tests (the conformance suite included) pass with that environment's pytest. A
second environment holds the kernel and the plugin alone: it lists the plugin and has no test
kit and no pytest.

The install needs the package index (the kernel's dependencies); everything else is loopback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import truckllm
from truckllm_testing.fakes import FakeOpenAI

pytestmark = pytest.mark.timeout(900)

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "contrib" / "plugin-template"
NAME = "acme-llm"
DIST = f"truckllm-provider-{NAME}"
MODULE = f"truckllm_provider_{NAME.replace('-', '_')}"
ENTRY_POINT = f"provider-{NAME}"


@dataclass
class Wheels:
    """The kernel's and the test kit's wheels, built from this checkout."""

    kernel: Path
    kit: Path


@dataclass
class Installed:
    """The renamed template and the fresh environment it is installed in."""

    plugin: Path
    venv: Path
    seconds: float
    pip_log: str

    def bin(self, name: str) -> str:
        """A console script of the environment."""
        return str(self.venv / "bin" / name)


def clean_env() -> dict[str, str]:
    """The environment for the fresh venv's programs: nothing pointing back into this checkout."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("TRUCKLLM_", "PYTHON", "VIRTUAL_ENV"))}


def run(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run a command; fail the test with its output when it fails."""
    done = subprocess.run(args, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        pytest.fail(
            f"{' '.join(args)} exited {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        )
    return done


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Wheels:
    """``python -m build`` of the kernel and of the test kit, as ``make dist`` runs it."""
    pytest.importorskip("build", reason="python -m build comes with the dev extra (make install)")
    dist = tmp_path_factory.mktemp("dist")
    for project in (ROOT, ROOT / "testing"):
        run(sys.executable, "-m", "build", "--quiet", "--outdir", str(dist), str(project), cwd=dist)
    version = truckllm.__version__
    found = Wheels(
        kernel=dist / f"truckllm-{version}-py3-none-any.whl",
        kit=dist / f"truckllm_testing-{version}-py3-none-any.whl",
    )
    assert found.kernel.is_file() and found.kit.is_file(), sorted(p.name for p in dist.iterdir())
    return found


def venv_with(base: Path, name: str, *requirements: str) -> tuple[Path, str]:
    """A fresh venv holding ``requirements`` (one pip command); the venv and pip's verbose log."""
    venv = base / name
    # No pip inside: this checkout's pip installs into it (``--python``), which saves seeding one.
    run(sys.executable, "-m", "venv", "--without-pip", str(venv), cwd=base)
    done = run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(venv / "bin" / "python"),
        "install",
        "--verbose",
        "--disable-pip-version-check",
        *requirements,
        cwd=base,
    )
    return venv, done.stdout + done.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, wheels: Wheels) -> Iterator[Installed]:
    """Copy and rename the template; install it from the README's way (b) in a fresh venv."""
    started = time.monotonic()
    base = tmp_path_factory.mktemp("template")
    plugin = base / DIST
    shutil.copytree(
        TEMPLATE,
        plugin,
        ignore=shutil.ignore_patterns("__pycache__", ".*_cache", ".venv", "*.egg-info", "build", "dist"),
    )
    run(sys.executable, "rename.py", NAME, cwd=plugin)
    (plugin / "rename.py").unlink()
    venv, log = venv_with(base, "venv", str(wheels.kernel), str(wheels.kit), "-e", f"{plugin}[test]")
    yield Installed(plugin=plugin, venv=venv, seconds=time.monotonic() - started, pip_log=log)


def test_the_runtime_wheel_carries_no_test_kit(wheels: Wheels) -> None:
    with zipfile.ZipFile(wheels.kernel) as kernel:
        names = kernel.namelist()
        entry_points = kernel.read(f"truckllm-{truckllm.__version__}.dist-info/entry_points.txt").decode()
        metadata = kernel.read(f"truckllm-{truckllm.__version__}.dist-info/METADATA").decode()
    assert "truckllm/_internal/app.py" in names and "truckllm/hookspecs.py" in names
    assert [n for n in names if "testing" in n or "fake" in n or "conformance" in n or "hostile" in n] == []
    assert {n.split("/")[0] for n in names} == {"truckllm", f"truckllm-{truckllm.__version__}.dist-info"}
    assert "pytest11" not in entry_points and "[console_scripts]" in entry_points
    assert f"Requires-Dist: truckllm-testing=={truckllm.__version__}; extra == 'test'" in metadata

    with zipfile.ZipFile(wheels.kit) as kit:
        names = kit.namelist()
        entry_points = kit.read(
            f"truckllm_testing-{truckllm.__version__}.dist-info/entry_points.txt"
        ).decode()
        metadata = kit.read(f"truckllm_testing-{truckllm.__version__}.dist-info/METADATA").decode()
    for module in ("fakes/openai.py", "conformance.py", "hostile.py", "pytest_plugin.py", "docs.py"):
        assert f"truckllm_testing/{module}" in names
    assert not [n for n in names if n.startswith("truckllm/")]
    assert "[pytest11]\ntruckllm = truckllm_testing.pytest_plugin" in entry_points
    assert f"Requires-Dist: truckllm=={truckllm.__version__}" in metadata


def test_pip_took_the_kernel_and_the_kit_from_the_wheels_only(installed: Installed, wheels: Wheels) -> None:
    # an index lookup shows in pip's verbose log as the URL of the project's page, <index>/<name>/
    page = re.compile(r"/truckllm(?:-testing)?/(?=['\"\s]|$)")
    assert [line for line in installed.pip_log.splitlines() if page.search(line)] == []
    assert re.search(r"/[a-z]+/(?=['\"\s]|$)", installed.pip_log), (
        "pip -v names no index page: check the test"
    )
    script = (
        "import importlib.metadata as m, json; "
        "print(json.dumps({d: json.loads(m.distribution(d).read_text('direct_url.json'))['url'] "
        "for d in ('truckllm', 'truckllm-testing')}))"
    )
    urls = json.loads(run(installed.bin("python"), "-c", script, cwd=installed.plugin).stdout)
    assert urls == {"truckllm": wheels.kernel.as_uri(), "truckllm-testing": wheels.kit.as_uri()}


def test_the_kernel_alone_runs_the_plugin_without_the_test_kit(
    installed: Installed, wheels: Wheels, tmp_path: Path
) -> None:
    venv, _ = venv_with(tmp_path, "runtime", str(wheels.kernel), str(installed.plugin))
    rows = json.loads(run(str(venv / "bin" / "truckllm"), "plugins", "--json", cwd=tmp_path).stdout)
    assert [(r["name"], r["status"]) for r in rows] == [(DIST, "loaded")], rows
    script = (
        "import importlib.util as u; print([n for n in ('truckllm_testing', 'pytest') if u.find_spec(n)])"
    )
    assert run(str(venv / "bin" / "python"), "-c", script, cwd=tmp_path).stdout.strip() == "[]"


def test_rename_leaves_no_trace_of_the_template_name(installed: Installed) -> None:
    leftovers = [
        f"{path.relative_to(installed.plugin)}: {line.strip()}"
        for path in installed.plugin.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
        for line in path.read_text(errors="replace").splitlines()
        if "example" in line.lower()
    ]
    assert leftovers == []
    assert (installed.plugin / MODULE / "__init__.py").is_file()
    assert (installed.plugin / "tests" / f"test_{NAME.replace('-', '_')}_conformance.py").is_file()
    pyproject = (installed.plugin / "pyproject.toml").read_text()
    assert f'name = "{DIST}"' in pyproject and f'{ENTRY_POINT} = "{MODULE}"' in pyproject


def test_truckllm_plugins_lists_it_and_nothing_else(installed: Installed) -> None:
    rows = json.loads(run(installed.bin("truckllm"), "plugins", "--json", cwd=installed.plugin).stdout)
    assert [(r["name"], r["status"]) for r in rows] == [(DIST, "loaded")], rows
    (row,) = rows
    assert row["entry_point"] == f"{ENTRY_POINT} = {MODULE}" and row["version"] == "0.1.0"
    assert {"register_providers", "transform_request", "transform_response", "transform_stream"} <= set(
        row["hooks"]
    )
    text = run(installed.bin("truckllm"), "plugins", cwd=installed.plugin).stdout
    assert f"{DIST} 0.1.0" in text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(method: str, url: str, body: Any = None, token: str = "client") -> tuple[int, bytes]:
    request = urllib.request.Request(
        url,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"content-type": "application/json", "authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_truckllm_serve_loads_it_and_serves_a_config_using_it(installed: Installed, tmp_path: Path) -> None:
    port = free_port()
    with FakeOpenAI(keys=["local-key"], chunks=3).running() as fake:
        config = tmp_path / "truckllm.yaml"
        config.write_text(
            f"""
server: {{listen: "127.0.0.1:{port}", graceful_timeout: 5s}}
admin: {{token: template-admin}}
providers:
  local:
    type: {NAME}
    base_url: {fake.base_url}
    keys: [{{name: local, value: local-key}}]
models:
  llama:
    deployments: [{{provider: local, model: "llama3.1:8b"}}]
"""
        )
        log = (tmp_path / "serve.log").open("w")
        proc = subprocess.Popen(
            [installed.bin("truckllm"), "serve", "--config", str(config)],
            cwd=tmp_path,
            env=clean_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if http("GET", base + "/admin/v1/health")[0] == 200:
                        break
                except OSError:
                    pass
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, "truckllm serve did not come up"
                time.sleep(0.1)
            status, body = http("GET", base + "/admin/v1/plugins", token="template-admin")
            assert status == 200
            rows = json.loads(body)["plugins"]
            assert [(r["name"], r["status"], r["module"]) for r in rows] == [(DIST, "loaded", MODULE)]

            chat = {"model": "llama", "messages": [{"role": "user", "content": "hello from a fresh venv"}]}
            status, body = http("POST", base + "/v1/chat/completions", chat)
            assert status == 200, body
            assert json.loads(body)["choices"][0]["message"]["content"] == "echo: hello from a fresh venv"
            status, body = http("POST", base + "/v1/chat/completions", {**chat, "stream": True})
            assert status == 200 and body.endswith(b"data: [DONE]\n\n"), body[-200:]
            assert [r.json["model"] for r in fake.requests] == ["llama3.1:8b", "llama3.1:8b"]
            assert fake.violations == []
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(20)
            finally:
                if proc.poll() is None:
                    proc.kill()
                log.close()
        assert code == 0, (tmp_path / "serve.log").read_text()


def test_the_template_tests_pass_with_the_venv_pytest(installed: Installed) -> None:
    # the console script, not ``python -m pytest``: the installed wheel is tested, not the sources
    done = run(installed.bin("pytest"), "-v", cwd=installed.plugin, timeout=600)
    summary = done.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, done.stdout[-3000:]
    assert "TestAcmeLlmConformance::test_mid_stream_cut_is_an_error_event PASSED" in done.stdout
