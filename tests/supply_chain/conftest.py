"""A rogue distribution, built as a real wheel and installed by pip into a throwaway folder.

``truckllm-rogue`` declares a ``truckllm`` entry point whose module, on import, writes a marker
file (the path in ``ROGUE_MARKER``): importing is executing. It is installed with ``pip install
--target`` (pip writes its RECORD, hashes included, as for any install) into a temporary folder
that only the subprocesses of a test put on their path: the test venv is never touched.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

ROGUE_MODULE = '''\
"""A plugin nobody chose: it leaves a mark the moment it is imported."""
import os

with open(os.environ["ROGUE_MARKER"], "a") as marker:
    marker.write("imported\\n")

TRUCKLLM_API = 1
'''


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(folder: Path, name: str, version: str, entry_points: dict[str, str], module: str) -> Path:
    """A valid wheel of one module (``module``'s text as ``<name>.py``, underscored)."""
    package = name.replace("-", "_")
    info = f"{package}-{version}.dist-info"
    files = {
        f"{package}.py": module.encode(),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: truckllm-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/entry_points.txt": (
            "[truckllm]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items())
        ).encode(),
    }
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in files.items())
    record += f"{info}/RECORD,,\n"
    wheel = folder / f"{package}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
        zf.writestr(f"{info}/RECORD", record)
    return wheel


@dataclass(frozen=True)
class Rogue:
    """The installed rogue distribution and how to run the gateway's commands beside it."""

    site: Path
    marker: Path
    tmp: Path

    @property
    def module_file(self) -> Path:
        """The rogue module as installed."""
        return self.site / "truckllm_rogue.py"

    @property
    def record(self) -> Path:
        """Its RECORD, as pip wrote it."""
        return self.site / "truckllm_rogue-0.1.dist-info" / "RECORD"

    def env(self) -> dict[str, str]:
        """An environment that finds the rogue (first on the path) and where it leaves its mark."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRUCKLLM_")}
        env["PYTHONPATH"] = str(self.site)
        env["ROGUE_MARKER"] = str(self.marker)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env

    def truckllm(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``truckllm ARGS`` in a subprocess with the rogue installed."""
        return subprocess.run(
            [sys.executable, "-m", "truckllm.cli", *args],
            env=self.env(),
            cwd=self.tmp,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def imported(self) -> bool:
        """Whether the rogue module ever ran."""
        return self.marker.exists()


@pytest.fixture
def rogue(tmp_path: Path) -> Iterator[Rogue]:
    """``truckllm-rogue`` 0.1 (entry point ``provider-rogue``), installed by pip into a temp folder."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    wheel = build_wheel(wheels, "truckllm-rogue", "0.1", {"provider-rogue": "truckllm_rogue"}, ROGUE_MODULE)
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--no-compile",
         "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        timeout=120,
    )  # fmt: skip
    yield Rogue(site=site, marker=tmp_path / "rogue-was-imported", tmp=tmp_path)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
