"""Where the deploy checks find their linters and the repository's deploy files."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
TOOLS_BIN = Path(os.environ.get("TRUCKLLM_DEPLOY_TOOLS", ROOT / "build" / "deploy-tools")) / "bin"
INSTALL_HINT = "`make deploy-check` installs it from deploy/requirements-tools.txt"


def tool(name: str) -> str:
    """The path of a linter (the deploy tools venv's, else the PATH's); the test is skipped,
    saying so, where it is not installed."""
    local = TOOLS_BIN / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        hint = {"nginx": "apt-get install nginx", "promtool": "apt-get install prometheus"}.get(
            name, INSTALL_HINT
        )
        pytest.skip(f"{name} is not installed ({hint})")
    return found


def validate_config(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``truckllm validate`` on a config file, with these environment variables set."""
    return subprocess.run(
        [sys.executable, "-m", "truckllm.cli", "validate", "--config", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )


def seconds(duration: str | int) -> float:
    """A config or Compose duration (``30s``, ``1m30s``, ``40s``, a number) in seconds."""
    if isinstance(duration, int):
        return float(duration)
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", duration)
    assert parts and "".join(a + b for a, b in parts) == duration, duration
    return sum(float(a) * units[b] for a, b in parts)
