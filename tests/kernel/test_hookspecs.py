"""The plugin API documents itself: every hookspec is complete, and every hook has a test."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from truckllm import hookspecs

SPECS = [
    (name, fn)
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
    if hasattr(fn, "truckllm_spec")
]
ROOT = Path(__file__).resolve().parents[2]


def test_there_are_hookspecs() -> None:
    names = {name for name, _ in SPECS}
    assert {"select_provider", "transform_request", "parse_usage", "store_usage", "emit_log"} <= names


@pytest.mark.parametrize(("name", "fn"), SPECS, ids=[n for n, _ in SPECS])
def test_hookspec_is_documented(name: str, fn: object) -> None:
    doc = inspect.getdoc(fn) or ""
    params = [p for p in inspect.signature(fn).parameters]  # type: ignore[arg-type]
    for param in params:
        assert f":param {param}:" in doc, f"{name}: no :param {param}:"
    assert ":returns:" in doc, f"{name}: no :returns:"
    assert ".. versionadded::" in doc, f"{name}: no versionadded"
    firstresult = fn.truckllm_spec["firstresult"]  # type: ignore[attr-defined]
    assert ("First non-None result wins." in doc) == firstresult, f"{name}: firstresult not stated"


def test_every_hook_has_a_test() -> None:
    """datasette-style: a ``test_hook_<name>`` exists somewhere in the repository's tests."""
    sources = "\n".join(
        p.read_text(errors="replace")
        for folder in ("tests", "plugins")
        for p in (ROOT / folder).rglob("test_*.py")
    )
    missing = [name for name, _ in SPECS if not re.search(rf"def test_hook_{name}\b", sources)]
    assert not missing, f"hooks without a test_hook_<name>: {missing}"


def test_api_version_is_an_int() -> None:
    assert isinstance(hookspecs.HOOKSPEC_VERSION, int)
