"""The lock files: they match the pyproject.toml files, every entry is pinned and hashed, and pip
refuses a file whose hash was altered (what ``make install`` relies on)."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _tool(name: str) -> ModuleType:
    """``tools/<name>.py`` (a script, not a package), imported."""
    spec = importlib.util.spec_from_file_location(f"truckllm_tools_{name}", ROOT / "tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


lock = _tool("lock")
audit = _tool("audit")
pytestmark = pytest.mark.timeout(300)


def test_the_committed_locks_match_the_projects() -> None:
    assert lock.check(ROOT) == []


def test_the_runtime_lock_is_in_the_dev_lock_with_the_same_pins() -> None:
    def pinned(name: str) -> set[str]:  # name==version (a marker may differ: dev has more reasons)
        return {p.split(";")[0].strip() for p in lock.pins((ROOT / "requirements" / name).read_text())}

    runtime, dev = pinned("runtime.txt"), pinned("dev.txt")
    assert runtime and runtime <= dev, sorted(runtime - dev)


def test_serving_needs_no_development_tool() -> None:
    names = {re.split(r"[=; ]", p)[0] for p in lock.pins((ROOT / "requirements" / "runtime.txt").read_text())}
    for tool in ("pytest", "mypy", "ruff", "openai", "anthropic", "boto3", "selenium", "uv", "pip-audit"):
        assert tool not in names, f"{tool} in the runtime lock"
    assert {"starlette", "hypercorn", "packaging"} <= names


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The projects' pyproject.toml files and the locks, copied: a repository to break."""
    for pyproject in [
        ROOT / "pyproject.toml",
        ROOT / "testing" / "pyproject.toml",
        *ROOT.glob("plugins/*/pyproject.toml"),
    ]:
        target = tmp_path / pyproject.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pyproject, target)
    shutil.copytree(ROOT / "requirements", tmp_path / "requirements")
    assert lock.check(tmp_path) == []
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


CHANGES: dict[str, Callable[[Path], None]] = {
    "a kernel dependency added": lambda r: _edit(
        r / "pyproject.toml", '"pluggy>=1.5,<2",', '"pluggy>=1.5,<2",\n    "rich>=13",'
    ),
    "a kernel range changed": lambda r: _edit(r / "pyproject.toml", '"pluggy>=1.5,<2"', '"pluggy>=1.6,<2"'),
    "an extra changed": lambda r: _edit(r / "pyproject.toml", '"pytest>=8.3,<10"', '"pytest>=8.4,<10"'),
    "a plugin's dependency changed": lambda r: _edit(
        r / "plugins" / "truckllm-logger-sql" / "pyproject.toml", "asyncpg>=0.29", "asyncpg>=0.30"
    ),
    "a plugin added": lambda r: shutil.copytree(
        r / "plugins" / "truckllm-cache", r / "plugins" / "truckllm-new"
    ),
    "a plugin removed": lambda r: shutil.rmtree(r / "plugins" / "truckllm-cache"),
    "the test kit's dependency changed": lambda r: _edit(
        r / "testing" / "pyproject.toml", '"botocore>=1.34,<2"', '"botocore>=1.35,<2"'
    ),
    "the build backend changed": lambda r: _edit(
        r / "plugins" / "truckllm-cache" / "pyproject.toml",
        'requires = ["hatchling"]',
        'requires = ["flit_core"]',
    ),
    "the runtime lock deleted": lambda r: (r / "requirements" / "runtime.txt").unlink(),
    "the dev lock made by hand": lambda r: (r / "requirements" / "dev.txt").write_text("pytest==8.3.0\n"),
    "an unpinned line added": lambda r: _edit(
        r / "requirements" / "runtime.txt", "\nstarlette==", "\nrich\nstarlette=="
    ),
    "a hash removed": lambda r: (r / "requirements" / "build.txt").write_text(
        re.sub(r" \\\n    --hash=sha256:[0-9a-f]{64}", "", (r / "requirements" / "build.txt").read_text())
    ),
    "an option line added": lambda r: _edit(
        r / "requirements" / "runtime.txt",
        "\nstarlette==",
        "\n--extra-index-url https://example.invalid/simple\nstarlette==",
    ),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_lock_that_disagrees_fails_the_check_naming_the_fix(copy: Path, change: str) -> None:
    CHANGES[change](copy)
    problems = lock.check(copy)
    assert problems, change
    assert all("make lock" in p for p in problems), problems


def test_the_check_runs_with_the_standard_library_alone(copy: Path) -> None:
    # make install runs it with the system Python, before anything is installed: -I -S (no site)
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(ROOT / "tools" / "lock.py"), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    CHANGES["a plugin added"](copy)
    script = copy / "lock.py"
    shutil.copyfile(ROOT / "tools" / "lock.py", script)
    (copy / "tools").mkdir()
    shutil.copyfile(ROOT / "tools" / "lock.py", copy / "tools" / "lock.py")
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(copy / "tools" / "lock.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1 and "run `make lock`" in done.stderr


# -- pip refuses an altered hash -------------------------------------------------------------------


def _entry(name: str) -> str:
    """The lock entry (with its hashes) of ``name`` in the runtime lock."""
    text = (ROOT / "requirements" / "runtime.txt").read_text()
    match = re.search(
        rf"^{re.escape(name)}==\S+(?: ;[^\\\n]*)? \\\n(?:    --hash=sha256:[0-9a-f]{{64}}(?: \\)?\n)+",
        text,
        re.M,
    )
    assert match, name
    return match.group(0)


def _pip_install(requirements: Path, target: Path) -> subprocess.CompletedProcess[str]:
    """pip as ``make install`` runs it (hashes required, wheels only, no dependencies), into a
    throwaway folder."""
    return subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--require-hashes", "--no-deps", "--only-binary", ":all:",
         "--target", str(target), "-r", str(requirements)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )  # fmt: skip


def _flip(entry: str) -> str:
    """``entry`` with one hex digit changed in every hash."""
    return re.sub(
        r"(--hash=sha256:[0-9a-f]{10})([0-9a-f])",
        lambda m: m.group(1) + ("0" if m.group(2) != "0" else "1"),
        entry,
    )


@pytest.mark.parametrize("name", ["six", "idna"])
def test_an_altered_hash_fails_the_install(tmp_path: Path, name: str) -> None:
    good = tmp_path / "good.txt"
    good.write_text(_entry(name))
    done = _pip_install(good, tmp_path / "good")
    if done.returncode != 0:
        pytest.skip(f"the package index cannot be reached to fetch {name}: {done.stderr.strip()[-300:]}")
    assert list((tmp_path / "good").glob(f"{name}-*.dist-info"))
    bad = tmp_path / "bad.txt"
    bad.write_text(_flip(_entry(name)))
    assert bad.read_text() != good.read_text()
    done = _pip_install(bad, tmp_path / "bad")
    assert done.returncode != 0
    assert "DO NOT MATCH THE HASHES" in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "bad").exists() or not list((tmp_path / "bad").glob(f"{name}-*.dist-info"))


def test_an_entry_without_hash_fails_the_install(tmp_path: Path) -> None:
    bare = tmp_path / "bare.txt"
    bare.write_text(_entry("six").split(" \\")[0] + "\n")
    done = _pip_install(bare, tmp_path / "bare")
    assert done.returncode != 0 and "hash" in done.stderr.lower(), done.stderr[-2000:]


# -- the audit's verdicts --------------------------------------------------------------------------


def test_audit_fails_on_a_known_vulnerability() -> None:
    data = {
        "dependencies": [
            {"name": "acme", "version": "1.0", "vulns": [{"id": "GHSA-xxxx", "fix_versions": ["1.1"]}]},
            {"name": "fine", "version": "2.0", "vulns": []},
        ]
    }
    outcome = audit.judge("runtime.txt", 1, "", data)
    assert outcome.vulnerable == ["acme 1.0: GHSA-xxxx (fixed in: 1.1)"] and outcome.audited == 2
    assert audit.report(outcome) is True


def test_audit_passes_when_nothing_is_known() -> None:
    data = {"dependencies": [{"name": "fine", "version": "2.0", "vulns": []}]}
    assert audit.report(audit.judge("runtime.txt", 0, "", data)) is False


@pytest.mark.parametrize(
    "stderr",
    [
        "requests.exceptions.ConnectionError: HTTPSConnectionPool(host='x', port=443): Max retries exceeded",
        "requests.exceptions.ProxyError: Unable to connect to proxy",
        "NameResolutionError: Failed to resolve 'x' ([Errno -2] Name or service not known)",
        "ReadTimeoutError: Read timed out.",
    ],
)
def test_an_unreachable_database_is_said_not_failed(stderr: str, capsys: pytest.CaptureFixture[str]) -> None:
    outcome = audit.judge("runtime.txt", 1, stderr, None)
    assert outcome.unreachable
    assert audit.report(outcome) is False
    assert "cannot be reached: NOT AUDITED" in capsys.readouterr().out


def test_pins_the_database_cannot_answer_are_said_not_failed(capsys: pytest.CaptureFixture[str]) -> None:
    data = {"dependencies": [{"name": "acme", "skip_reason": "Dependency not found on PyPI"}]}
    assert audit.report(audit.judge("runtime.txt", 0, "", data)) is False
    assert "1 of 1 pins could not be audited" in capsys.readouterr().out


def test_another_pip_audit_error_fails() -> None:
    outcome = audit.judge("runtime.txt", 2, "usage: pip-audit: error: unrecognized arguments", None)
    assert outcome.error is not None and audit.report(outcome) is True
