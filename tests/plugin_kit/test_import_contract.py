"""The plugin contract, checked by import-linter: a plugin imports only the hook API and the kit.

``make lint`` runs ``lint-imports`` with ``[tool.importlinter]`` from ``pyproject.toml``. These tests
run that same contract on the real tree (it holds), on a throwaway plugin that imports kernel
modules on purpose in every way a plugin could (it fails, naming each import), and on a throwaway
plugin using every public module (it holds); and they check that the contract covers every plugin
package of the repository. Offline; one ``lint-imports`` run each (well under a second).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("importlinter", reason="import-linter comes with the dev extra (make install)")

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
THROWAWAY = "truckllm_provider_throwaway"

KIT_MODULES = sorted(
    f"truckllm.kit.{path.stem}"
    for path in (ROOT / "core/truckllm/kit").glob("*.py")
    if path.stem != "__init__"
)
PUBLIC = ["truckllm", "truckllm.types", "truckllm.errors", "truckllm.hookspecs", "truckllm.kit", *KIT_MODULES]


def config() -> dict[str, Any]:
    """``[tool.importlinter]`` of the repository's ``pyproject.toml``."""
    data: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return data


def contract(data: Mapping[str, Any], contract_id: str) -> dict[str, Any]:
    """The contract with ``id`` ``contract_id``."""
    (found,) = (c for c in data["contracts"] if c.get("id") == contract_id)
    return dict(found)


def plugin_packages() -> set[str]:
    """Every plugin package of the repository: ``truckllm_*`` under ``plugins/*/`` and ``contrib/*/``."""
    return {
        init.parent.name
        for pattern in ("plugins/*/truckllm_*/__init__.py", "contrib/*/truckllm_*/__init__.py")
        for init in ROOT.glob(pattern)
    }


def contrib_path() -> list[str]:
    """The folders holding the contrib packages (not installed: found on ``PYTHONPATH``)."""
    return sorted(str(init.parent.parent) for init in ROOT.glob("contrib/*/truckllm_*/__init__.py"))


def toml(value: object) -> str:
    """A TOML value for the strings, booleans and lists of strings a contract holds."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml(item) for item in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def write_config(folder: Path, data: Mapping[str, Any]) -> None:
    """``folder/pyproject.toml`` holding ``data`` as ``[tool.importlinter]``."""
    lines = ["[tool.importlinter]"]
    lines += [f"{key} = {toml(value)}" for key, value in data.items() if key != "contracts"]
    for each in data["contracts"]:
        lines += ["", "[[tool.importlinter.contracts]]"]
        lines += [f"{key} = {toml(value)}" for key, value in each.items()]
    (folder / "pyproject.toml").write_text("\n".join(lines) + "\n")


def lint_imports(cwd: Path, extra_path: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` with the config in ``cwd``, the contrib packages and ``extra_path`` importable."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([*extra_path, *contrib_path()]), COLUMNS="400")
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def with_throwaway(folder: Path, modules: Mapping[str, str]) -> Path:
    """A throwaway plugin package ``truckllm_provider_throwaway`` in ``folder/src`` (module name →
    source), and the repository's contract extended to it in ``folder``."""
    package = folder / "src" / THROWAWAY
    package.mkdir(parents=True)
    for name, source in modules.items():
        (package / f"{name}.py").write_text(source)
    data = config()
    data["root_packages"] = [*data["root_packages"], THROWAWAY]
    data["contracts"] = [dict(c) for c in data["contracts"]]
    for each in data["contracts"]:
        if each.get("id") == "plugin-kit":
            each["source_modules"] = [*each["source_modules"], THROWAWAY]
    write_config(folder, data)
    return folder / "src"


def test_the_tree_keeps_the_contract() -> None:
    """Every plugin under ``plugins/`` and ``contrib/`` imports only the hook API and the kit."""
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " kept, 0 broken." in result.stdout


def test_the_contract_covers_every_plugin_package() -> None:
    """A new plugin package is checked once it is listed: every one of the repository is."""
    data = config()
    packages = plugin_packages()
    assert len(packages) >= 20
    assert set(data["root_packages"]) == {"truckllm", *packages}
    assert set(contract(data, "plugin-kit")["source_modules"]) == packages
    assert set(contract(data, "kernel-imports-no-plugin")["forbidden_modules"]) == packages


def test_a_plugin_importing_the_kernel_breaks_the_contract(tmp_path: Path) -> None:
    """A private kernel module imported by a plugin, at module level, inside a function, for typing
    only or nested in a kernel package, fails ``lint-imports``, which names each import."""
    src = with_throwaway(
        tmp_path,
        {
            "__init__": "from truckllm import hookimpl\nfrom truckllm._internal import pipeline\n",
            "lazy": "def attempt() -> None:\n    import truckllm._internal.attempt\n",
            "typed": (
                "from typing import TYPE_CHECKING\n\n"
                "if TYPE_CHECKING:\n    from truckllm._internal.gateway import Gateway\n"
            ),
            "nested": "from truckllm._internal.config.schema import Config\n",
            "behind_the_kit": "from truckllm._internal.localstate import LocalState\n",
        },
    )
    result = lint_imports(tmp_path, [str(src)])
    assert result.returncode == 1, result.stdout + result.stderr
    assert " kept, 1 broken." in result.stdout
    for importer, imported in [
        (THROWAWAY, "truckllm._internal.pipeline"),
        (f"{THROWAWAY}.lazy", "truckllm._internal.attempt"),
        (f"{THROWAWAY}.typed", "truckllm._internal.gateway"),
        (f"{THROWAWAY}.nested", "truckllm._internal.config.schema"),
        (f"{THROWAWAY}.behind_the_kit", "truckllm._internal.localstate"),
    ]:
        assert f"{importer} -> {imported} (l." in result.stdout, (importer, imported, result.stdout)


def test_a_plugin_using_the_public_modules_keeps_the_contract(tmp_path: Path) -> None:
    """``truckllm`` (``hookimpl``), types, errors, hookspecs and every kit module are allowed,
    although the kit itself imports the kernel."""
    source = "".join(f"import {module}\n" for module in PUBLIC) + "from truckllm import hookimpl\n"
    src = with_throwaway(tmp_path, {"__init__": source})
    result = lint_imports(tmp_path, [str(src)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert " kept, 0 broken." in result.stdout
