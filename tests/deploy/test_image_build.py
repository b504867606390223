"""The image built without docker (no daemon here): the Dockerfile's builder stage is carried out
step by step on this machine (its COPY instructions from a build context filtered by the
.dockerignore, its RUN instructions in sh, /opt/truckllm in a temporary folder), then the runtime
stage's command serves the image's default config and the HEALTHCHECK command passes.

It installs the runtime lock (minutes, from the package index): opt-in with
TRUCKLLM_DEPLOY_BUILD=1 (`make deploy-check` sets it)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.deploy.dockerfile import Instruction, ignored, parse
from tests.deploy.tools import DEPLOY, ROOT

pytestmark = pytest.mark.skipif(
    os.environ.get("TRUCKLLM_DEPLOY_BUILD") != "1",
    reason="the image build (runtime lock installed from the index) runs with TRUCKLLM_DEPLOY_BUILD=1 (make deploy-check)",
)

INSTRUCTIONS = parse((DEPLOY / "Dockerfile").read_text())
IGNORE = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
LAST = max(i.stage for i in INSTRUCTIONS)


def build_context(target: Path) -> None:
    """The repository's tracked files that the .dockerignore lets into the build context."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in files.decode().split("\0"):
        if name and not ignored(IGNORE, name) and (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)


def copy(instruction: Instruction, context: Path, workdir: Path) -> None:
    """A COPY from the build context, as docker does it (folders' contents, files into folders)."""
    *sources, destination = shlex.split(instruction.args)
    dest = workdir / destination
    for source in sources:
        origin = context / source
        assert origin.exists(), f"COPY {source}: not in the build context"
        if origin.is_dir():
            shutil.copytree(origin, dest, dirs_exist_ok=True)
        else:
            into = dest / origin.name if destination.endswith("/") or len(sources) > 1 else dest
            into.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, into)


def free_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


def test_the_builder_stage_builds_and_the_image_serves(tmp_path: Path) -> None:
    context, src, opt, shim = tmp_path / "context", tmp_path / "src", tmp_path / "opt", tmp_path / "bin"
    for folder in (context, src, shim):
        folder.mkdir()
    build_context(context)
    (shim / "python").symlink_to(getattr(sys, "_base_executable", sys.executable))
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH", "PROMETHEUS"))
    }
    env["PATH"] = f"{shim}:{env['PATH']}"
    for instruction in (i for i in INSTRUCTIONS if i.stage == 0):
        if instruction.keyword == "ARG" and "=" in instruction.args:
            name, _, value = instruction.args.partition("=")
            env[name] = shlex.split(value)[0]
        elif instruction.keyword == "ENV":
            env.update(dict(item.split("=", 1) for item in shlex.split(instruction.args)))
        elif instruction.keyword == "COPY":
            copy(instruction, context, src)
        elif instruction.keyword == "RUN":
            script = instruction.args.replace("/opt/truckllm", str(opt))
            result = subprocess.run(["sh", "-c", script], cwd=src, env=env, capture_output=True, text=True)
            assert result.returncode == 0, f"RUN {instruction.args}\n{result.stdout}\n{result.stderr}"

    # The runtime stage: the venv, the default config, its ENV, its command
    runtime_env = {
        **env,
        "PATH": f"{opt}/bin:{env['PATH']}",
        "TRUCKLLM_CONFIG": str(context / "deploy/docker/truckllm.yaml"),
        "TRUCKLLM_ADMIN_TOKEN": "Zk3q9PwX7mLr2VtB8nYc",
        "TRUCKLLM_GATEWAY_KEY": "gk-abcdefghijklmnop",
    }
    installed = subprocess.run(
        [str(opt / "bin" / "truckllm"), "plugins", "--json"], env=runtime_env, capture_output=True, text=True
    )
    assert installed.returncode == 0, installed.stderr
    chosen = next(
        i.args for i in INSTRUCTIONS if i.stage == 0 and i.keyword == "ARG" and i.args.startswith("PLUGINS=")
    )
    names = set(shlex.split(chosen.partition("=")[2])[0].split())
    listing = json.dumps(json.loads(installed.stdout))
    assert all(name in listing for name in names)
    assert "truckllm-provider-bedrock" not in listing  # only the chosen plugins are in the image
    (cmd,) = [json.loads(i.args) for i in INSTRUCTIONS if i.stage == LAST and i.keyword == "CMD"]
    port = free_port()
    cmd = [a.replace("0.0.0.0:8080", f"127.0.0.1:{port}") for a in cmd]
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [str(opt / "bin" / "truckllm"), *cmd],
        env=runtime_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/admin/v1/ready", timeout=1).is_success:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        (check,) = [i.args for i in INSTRUCTIONS if i.stage == LAST and i.keyword == "HEALTHCHECK"]
        probe = json.loads(check[check.index("CMD") + 3 :].strip())
        probe = [a.replace("127.0.0.1:8080", f"127.0.0.1:{port}") for a in probe]
        assert subprocess.run(probe, env=runtime_env, timeout=10).returncode == 0
        answer = httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            headers={"authorization": "Bearer gk-abcdefghijklmnop"},
            json={"model": "demo", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert answer.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)  # the image's STOPSIGNAL: drains and exits 0
        code = proc.wait(30)
        log.close()
    assert code == 0, (tmp_path / "serve.log").read_text()[-2000:]
