"""FileSource: a watched file is applied only once it holds still, never half-written or empty."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from truckllm._internal.config.source import FileSource


def _poll(source: FileSource) -> str | None:
    return asyncio.run(source.poll())


def _touch(path: Path, text: str, tick: int) -> None:
    """Write ``text`` and give it a distinct mtime (file systems may reuse one within a tick)."""
    path.write_text(text)
    os.utime(path, ns=(tick * 1_000_000_000, tick * 1_000_000_000))


def test_a_change_is_read_only_after_it_held_still_for_one_poll(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    _touch(path, "models: {}\n", 1)
    source = FileSource(str(path))
    assert source.read() == "models: {}\n"
    assert _poll(source) is None  # unchanged
    _touch(path, "", 2)  # an editor truncated the file ...
    assert _poll(source) is None  # ... the change is seen but not read yet
    _touch(path, "providers: {}\n", 3)  # ... and then wrote it
    assert _poll(source) is None  # changed again since the last poll: still settling
    assert _poll(source) == "providers: {}\n"
    assert _poll(source) is None  # read once


def test_an_empty_or_missing_file_is_not_a_change(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    _touch(path, "models: {}\n", 1)
    source = FileSource(str(path))
    source.read()
    _touch(path, "  \n", 2)
    assert _poll(source) is None and _poll(source) is None
    path.unlink()
    assert _poll(source) is None and _poll(source) is None
    _touch(path, "models: {}\n", 3)  # the same text as before comes back: nothing to apply
    assert _poll(source) is None and _poll(source) is None
    _touch(path, "admin: {}\n", 4)
    assert _poll(source) is None
    assert _poll(source) == "admin: {}\n"


def test_own_writes_are_not_seen_as_changes(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("models: {}\n")
    source = FileSource(str(path))
    source.read()
    source.write("admin: {}\n")
    assert path.read_text() == "admin: {}\n"
    assert _poll(source) is None and _poll(source) is None
