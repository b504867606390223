"""The kernel's list of TruckLLM's own distributions names exactly the repository's packages."""

from __future__ import annotations

import tomllib
from pathlib import Path

from truckllm._internal.allowlist import normalize
from truckllm._internal.first_party import FIRST_PARTY

ROOT = Path(__file__).resolve().parents[2]


def _name(pyproject: Path) -> str:
    with pyproject.open("rb") as f:
        return normalize(str(tomllib.load(f)["project"]["name"]))


def test_first_party_is_every_package_of_the_repository() -> None:
    found = {_name(ROOT / "pyproject.toml"), _name(ROOT / "testing" / "pyproject.toml")}
    found |= {_name(p) for p in ROOT.glob("plugins/*/pyproject.toml")}
    found |= {_name(p) for p in ROOT.glob("contrib/*/pyproject.toml") if p.parent.name != "plugin-template"}
    missing = sorted(found - FIRST_PARTY)
    assert not missing, f"add to core/truckllm/_internal/first_party.py: {missing}"
    assert sorted(FIRST_PARTY - found) == [], "first_party.py names a package the repository no longer has"


def test_the_plugin_template_is_not_first_party() -> None:
    # a copy of the template is someone else's plugin: it must be warned about like any other
    assert _name(ROOT / "contrib" / "plugin-template" / "pyproject.toml") not in FIRST_PARTY


def test_names_are_normalized() -> None:
    assert all(name == normalize(name) for name in FIRST_PARTY)
