"""Golden-file checks for translation tests: expected outputs kept as JSON files beside the tests.

Two layouts are supported:

- one expected file per case (``check_file``): ``requests/<case>.out.json`` next to its input;
- the expected fields inside the case file itself (``check_fields``): ``requests/<case>.json``
  holds the input and, under the given keys, what the code must produce.

With ``TRUCKLLM_UPDATE_GOLDEN=1`` in the environment, the checks rewrite the expected parts from
what the code produced instead of comparing (review the diff afterwards).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "TOKEN_FIELDS",
    "UPDATE_ENV",
    "case_names",
    "case_paths",
    "check_fields",
    "check_file",
    "updating",
    "usage_fields",
]

UPDATE_ENV = "TRUCKLLM_UPDATE_GOLDEN"
"""Set to anything but empty or ``0`` to rewrite golden files instead of checking them."""


TOKEN_FIELDS = (
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
"""The token counts of :class:`~truckllm.types.Usage`, always written to a golden file."""


def usage_fields(usage: Any) -> dict[str, Any] | None:
    """A :class:`~truckllm.types.Usage` as a golden file keeps it: every token count, and the
    other units of work (images, seconds...) only when not zero, so that adding a unit to ``Usage``
    leaves every golden file of a chat translation as it was."""
    if usage is None:
        return None
    return {
        name: getattr(usage, name)
        for name in usage.__struct_fields__
        if name in TOKEN_FIELDS or getattr(usage, name)
    }


def updating() -> bool:
    """The golden files are being rewritten (``TRUCKLLM_UPDATE_GOLDEN`` set, not ``0``)."""
    return os.environ.get(UPDATE_ENV, "") not in ("", "0")


def _dump(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def case_paths(folder: Path) -> list[Path]:
    """The ``*.json`` case files in ``folder``, sorted."""
    return sorted(folder.glob("*.json"))


def case_names(folder: Path, suffix: str) -> list[str]:
    """The names of the files in ``folder`` ending in ``suffix``, without it, sorted."""
    return sorted(p.name[: -len(suffix)] for p in folder.glob("*" + suffix))


def check_file(path: Path, actual: Any) -> None:
    """``actual`` equals the JSON in ``path``; a missing file is written and the test fails."""
    if updating() or not path.exists():
        path.write_text(_dump(actual))
        if not updating():
            pytest.fail(f"golden file {path.name} was missing; written, review it")
    assert actual == json.loads(path.read_text())


def check_fields(path: Path, case: dict[str, Any], actual: dict[str, Any], keys: Iterable[str]) -> None:
    """The ``keys`` of the case file ``path`` (already read as ``case``) equal ``actual``'s."""
    keys = tuple(keys)
    if updating():
        for key in keys:
            case.pop(key, None)
        case.update(actual)
        path.write_text(_dump(case))
        return
    assert {k: case.get(k) for k in keys if k in case or k in actual} == actual
