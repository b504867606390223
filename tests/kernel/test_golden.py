"""truckllm_testing.golden: compare, write when missing, rewrite when asked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from truckllm_testing.golden import UPDATE_ENV, case_names, check_fields, check_file


def test_check_file_compares_and_writes_a_missing_file_but_fails(tmp_path: Path) -> None:
    path = tmp_path / "a.out.json"
    with pytest.raises(pytest.fail.Exception, match="was missing"):
        check_file(path, {"x": 1})
    assert json.loads(path.read_text()) == {"x": 1}
    check_file(path, {"x": 1})
    with pytest.raises(AssertionError):
        check_file(path, {"x": 2})


def test_check_fields_compares_only_the_given_keys_and_rewrites_when_updating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "case.json"
    case = {"input": "hi", "output": "HI"}
    path.write_text(json.dumps(case))
    check_fields(path, dict(case), {"output": "HI"}, ("output", "error"))
    with pytest.raises(AssertionError):
        check_fields(path, dict(case), {"output": "Hi"}, ("output",))
    monkeypatch.setenv(UPDATE_ENV, "1")
    check_fields(path, dict(case), {"output": "Hi"}, ("output",))
    assert json.loads(path.read_text()) == {"input": "hi", "output": "Hi"}
    monkeypatch.setenv(UPDATE_ENV, "0")  # "0" means: do not rewrite
    with pytest.raises(AssertionError):
        check_fields(path, json.loads(path.read_text()), {"output": "HI"}, ("output",))


def test_case_names_strip_the_suffix(tmp_path: Path) -> None:
    for name in ("b.in.json", "a.in.json", "a.out.json"):
        (tmp_path / name).write_text("{}")
    assert case_names(tmp_path, ".in.json") == ["a", "b"]
