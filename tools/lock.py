"""The dependency locks: ``make lock`` writes them, ``make install`` and CI check them.

Three lock files under ``requirements/``, every distribution pinned to one version and every file
pinned by its sha256 (pip installs them with ``--require-hashes``):

- ``build.txt``: pip and the build backend (hatchling, editables) the repository's own packages
  are built with (they are installed ``--no-build-isolation``, so nothing is fetched unpinned to build them);
- ``runtime.txt``: what serving needs: the kernel's dependencies, every plugin's under
  ``plugins/``, the ``standard`` extra;
- ``dev.txt``: runtime.txt plus the ``test`` and ``dev`` extras and the test kit's dependencies
  (compiled with runtime.txt as constraints: the shared pins are the same in both).

The repository's own packages (the kernel, the test kit, the plugins) are local folders: they are
inputs of the resolution, never looked up on a package index (a package of the same name on an
index is never considered), and are not in the locks: ``make install`` installs them ``--no-deps``
after the locked dependencies.

Each lock's header records ``inputs-sha256``, a digest of what it was made from (every local
project's name, version, dependencies, extras and build requirements, and the list of local
projects). ``--check`` recomputes it, with the standard library only and no network: a lock that
disagrees with the ``pyproject.toml`` files fails, naming the command that fixes it.

Usage: ``python tools/lock.py`` (refresh: keeps every pin that still fits, resolves the rest with
uv), ``python tools/lock.py --upgrade`` (newest versions everywhere), ``python tools/lock.py
--check``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCKS = ("build", "runtime", "dev")
PYTHON_VERSION = "3.11"
"""The oldest Python the project supports (``requires-python``); the locks are universal (one
file for every platform and every Python from this one on, with markers where they differ)."""
FIX = "run `make lock` and commit requirements/"
_DIGEST = re.compile(r"^# inputs-sha256: ([0-9a-f]{64})$", re.M)


@dataclass(frozen=True)
class Project:
    """One of the repository's own packages."""

    path: Path
    name: str
    data: dict[str, object]

    @property
    def rel(self) -> str:
        """Its folder relative to the repository's root (``.`` for the kernel)."""
        rel = self.path.relative_to(ROOT).as_posix()
        return rel or "."


def projects(root: Path = ROOT) -> list[Project]:
    """The kernel, the test kit and every plugin under ``plugins/`` (sorted by folder)."""
    folders = [root, root / "testing", *sorted(p.parent for p in root.glob("plugins/*/pyproject.toml"))]
    found = []
    for folder in folders:
        with (folder / "pyproject.toml").open("rb") as f:
            data = tomllib.load(f)
        found.append(Project(path=folder, name=str(data["project"]["name"]), data=data))
    return found


def inputs_digest(found: list[Project], root: Path = ROOT) -> str:
    """sha256 of what the locks are made from: each local project's folder, name, version,
    ``requires-python``, dependencies, optional dependencies and build requirements."""
    summary = []
    for project in found:
        meta = project.data["project"]
        assert isinstance(meta, dict)
        build = project.data.get("build-system", {})
        assert isinstance(build, dict)
        summary.append(
            {
                "folder": project.path.relative_to(root).as_posix() or ".",
                "name": meta["name"],
                "version": meta.get("version"),
                "requires-python": meta.get("requires-python"),
                "dependencies": meta.get("dependencies", []),
                "optional-dependencies": meta.get("optional-dependencies", {}),
                "build-requires": build.get("requires", []),
            }
        )
    blob = json.dumps({"python": PYTHON_VERSION, "projects": summary}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def recorded_digest(lock: Path) -> str | None:
    """The ``inputs-sha256`` a lock file's header records, or None."""
    if not lock.exists():
        return None
    match = _DIGEST.search(lock.read_text())
    return match.group(1) if match else None


def check(root: Path = ROOT) -> list[str]:
    """What is wrong with the locks under ``root/requirements`` (empty: they match the projects).

    Standard library only, no network: runs before anything is installed.
    """
    digest = inputs_digest(projects(root), root)
    problems = []
    for name in LOCKS:
        lock = root / "requirements" / f"{name}.txt"
        got = recorded_digest(lock)
        if not lock.exists():
            problems.append(f"requirements/{name}.txt is missing: {FIX}")
        elif got is None:
            problems.append(
                f"requirements/{name}.txt has no inputs-sha256 line (not made by tools/lock.py): {FIX}"
            )
        elif got != digest:
            problems.append(
                f"requirements/{name}.txt was made from other pyproject.toml files than these "
                f"(a dependency, an extra or a plugin changed since): {FIX}"
            )
        else:
            problems.extend(f"requirements/{name}.txt: {p}" for p in _unhashed(lock))
    return problems


def _unhashed(lock: Path) -> list[str]:
    """Requirement lines of ``lock`` that pin no version or carry no hash."""
    problems = []
    for entry in _entries(lock.read_text()):
        first = entry.split("\\")[0].strip()
        if first.startswith("-"):
            problems.append(f"{first!r}: an option line ({FIX})")
        elif "==" not in first:
            problems.append(f"{first!r} pins no version ({FIX})")
        elif "--hash=sha256:" not in entry:
            problems.append(f"{first!r} carries no hash ({FIX})")
    return problems


def _entries(text: str) -> list[str]:
    """The requirement entries of a requirements file (continuation lines joined, comments out)."""
    entries: list[str] = []
    current = ""
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.split(" #")[0] if not line.lstrip().startswith("--hash") else " " + line.strip()
        if current.rstrip().endswith("\\"):
            current = current.rstrip()[:-1] + " "
            continue
        entries.append(current.strip())
        current = ""
    if current.strip():
        entries.append(current.strip())
    return entries


def pins(text: str) -> list[str]:
    """``name==version[ ; marker]`` of each entry of a lock (no hashes): constraints for another."""
    return [re.sub(r"\s+--hash=\S+", "", entry).strip() for entry in _entries(text)]


_HEADERS = {
    "build": "The build lock: pip and the build backend the repository's own packages are built with\n"
    "# (make install builds them --no-build-isolation, from these).",
    "runtime": "The runtime lock: what `make run` installs (the kernel's dependencies, every plugin's under\n"
    "# plugins/, the `standard` extra).",
    "dev": "The development lock: the runtime lock plus the `test` and `dev` extras and the test kit's\n"
    "# dependencies (what `make test` adds).",
}


def _header(name: str, digest: str) -> str:
    return (
        f"# {_HEADERS[name]}\n"
        "# Every distribution pinned, every file by its sha256: pip installs it with --require-hashes.\n"
        "# The repository's own packages are not here: make install adds them --no-deps.\n"
        "# Made by `make lock` (tools/lock.py, uv pip compile --universal --generate-hashes); do not edit.\n"
        f"# inputs-sha256: {digest}\n"
    )


def _strip_local(text: str) -> str:
    """uv's output without the local (``-e``) projects: they cannot be pinned by hash."""
    out = []
    skipping = False
    for line in text.splitlines():
        if line.startswith("-e "):
            skipping = True
            continue
        if skipping and line.startswith("    # via"):
            continue
        if skipping and line.startswith("    #   "):
            continue
        skipping = False
        out.append(line)
    return "\n".join(out).strip("\n") + "\n"


def _uv() -> list[str]:
    here = Path(sys.executable).parent / "uv"
    if here.exists():
        return [str(here)]
    found = shutil.which("uv")
    if found:
        return [found]
    raise SystemExit("uv is not installed: `make install` (the dev extra has it) or `pip install uv`")


def _compile(
    name: str, lines: list[str], digest: str, upgrade: bool, constraints: str | None, root: Path
) -> None:
    out = root / "requirements" / f"{name}.txt"
    with tempfile.TemporaryDirectory(prefix="truckllm-lock-") as tmp:
        source = Path(tmp) / f"{name}.in"
        source.write_text("\n".join(lines) + "\n")
        work = Path(tmp) / f"{name}.txt"
        if out.exists():
            shutil.copyfile(out, work)  # kept pins are uv's preferences: a refresh changes only what it must
        command = [
            *_uv(),
            "pip",
            "compile",
            str(source),
            "--output-file",
            str(work),
            "--generate-hashes",
            "--universal",
            "--python-version",
            PYTHON_VERSION,
            "--no-header",
            "--quiet",
        ]
        if name == "build":
            command.append("--no-annotate")
        if upgrade:
            command.append("--upgrade")
        if constraints is not None:
            cfile = Path(tmp) / "constraints.txt"
            cfile.write_text(constraints)
            command += ["--constraint", str(cfile)]
        subprocess.run(command, check=True, cwd=root)
        body = _strip_local(work.read_text().replace(tmp + "/", ""))
    out.parent.mkdir(exist_ok=True)
    out.write_text(_header(name, digest) + body)
    print(f"requirements/{name}.txt: {len(_entries(body))} distributions")


def _build_requires(project: Project) -> list[str]:
    build = project.data.get("build-system", {})
    return [str(r) for r in build.get("requires", [])] if isinstance(build, dict) else []


def lock(upgrade: bool = False, root: Path = ROOT) -> None:
    """Write the three locks from the projects' ``pyproject.toml`` files (uv resolves)."""
    found = projects(root)
    digest = inputs_digest(found, root)
    kernel = found[0]
    plugins = [p for p in found if p.rel.startswith("plugins/")]
    testing = [p for p in found if p.rel == "testing"]
    build_requires = sorted({str(r) for p in found for r in _build_requires(p)})
    runtime = [f"-e {kernel.path}[standard]", *(f"-e {p.path}" for p in plugins)]
    dev = [f"-e {kernel.path}[standard,test,dev]", *(f"-e {p.path}" for p in plugins + testing)]
    # editables: hatchling's editable install of a package whose sources are not at the root
    # (the kernel's core/truckllm) asks for it
    _compile("build", ["pip", "editables", *build_requires], digest, upgrade, None, root)
    _compile("runtime", runtime, digest, upgrade, None, root)
    runtime_pins = "\n".join(pins((root / "requirements" / "runtime.txt").read_text())) + "\n"
    _compile("dev", dev, digest, upgrade, runtime_pins, root)


def _print_entry(name: str) -> int:
    """Print ``name``'s entry of the dev lock, hashes included (``make lock`` installs uv so)."""
    for entry in _entries((ROOT / "requirements" / "dev.txt").read_text()):
        if re.match(rf"{re.escape(name)}==", entry):
            print(entry)
            return 0
    print(f"{name} is not in requirements/dev.txt", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    """``tools/lock.py [--check | --upgrade]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="check the locks against pyproject.toml, offline"
    )
    parser.add_argument("--upgrade", action="store_true", help="newest allowed version of everything")
    parser.add_argument("--entry", metavar="NAME", help="print NAME's entry of the dev lock (pin and hashes)")
    args = parser.parse_args(argv)
    if args.entry:
        return _print_entry(args.entry)
    if args.check:
        problems = check()
        for problem in problems:
            print(f"lock: {problem}", file=sys.stderr)
        if not problems:
            print(f"locks: requirements/{{{','.join(LOCKS)}}}.txt match the pyproject.toml files")
        return 1 if problems else 0
    os.environ.setdefault("UV_NO_PROGRESS", "1")
    lock(upgrade=args.upgrade)
    return 0


if __name__ == "__main__":
    sys.exit(main())
