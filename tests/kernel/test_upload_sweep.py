"""Stale upload spool directories swept at start-up (``_internal/upload.sweep_stale``).

Only what a crashed gateway of this user left is removed: a directory named as ``Spool`` names
them, really a directory (never a symbolic link, never followed), of this user, whose process is
gone (same host) or older than any request may last. The clock and the liveness check are
injected; nothing here waits.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from truckllm._internal.upload import Spool, host_tag, sweep_stale

HOST = "0123abcd"
OTHER_HOST = "fedc9876"
NOW = 1_000_000.0
MAX_AGE = 1200.0
DEAD, LIVE = 424242, 434343


def alive(pid: int) -> bool:
    return pid == LIVE


def make(root: Path, name: str, age: float = 0.0) -> Path:
    path = root / name
    path.mkdir(mode=0o700)
    (path / "part-1").write_bytes(b"audio")
    os.utime(path, (NOW - age, NOW - age))
    return path


def sweep(root: Path, host: str = HOST, now: float = NOW) -> list[str]:
    return sorted(sweep_stale(str(root), MAX_AGE, now=lambda: now, alive=alive, host=host))


@pytest.mark.parametrize(
    ("name", "age", "removed"),
    [
        (f"truckllm-upload-{HOST}-{DEAD}-abc_12", 0.0, True),  # its process is gone
        (f"truckllm-upload-{HOST}-{LIVE}-abc_12", 0.0, False),  # a live worker's upload
        (f"truckllm-upload-{HOST}-{LIVE}-abc_12", MAX_AGE + 1, True),  # older than any request
        (f"truckllm-upload-{HOST}-{LIVE}-abc_12", MAX_AGE - 1, False),
        (f"truckllm-upload-{OTHER_HOST}-{DEAD}-abc_12", 0.0, False),  # a pid of another machine
        (f"truckllm-upload-{OTHER_HOST}-{DEAD}-abc_12", MAX_AGE + 1, True),
        (f"truckllm-upload-{HOST}-0-abc_12", 0.0, False),  # pid 0 is no process: age only
        (f"truckllm-upload-{HOST}-{os.getpid()}-abc_12", 0.0, False),  # this process's own
        ("truckllm-upload-abc_12", MAX_AGE * 10, False),  # not our name: never touched
        (f"truckllm-upload-{HOST}-{DEAD}-", MAX_AGE * 10, False),
        (f"truckllm-upload-{HOST}-{DEAD}-abc.12", MAX_AGE * 10, False),
        (f"xtruckllm-upload-{HOST}-{DEAD}-abc", MAX_AGE * 10, False),
        (f"truckllm-upload-{HOST.upper()}-{DEAD}-abc", MAX_AGE * 10, False),
        ("some-other-dir", MAX_AGE * 10, False),
    ],
)
def test_which_directories_are_stale(tmp_path: Path, name: str, age: float, removed: bool) -> None:
    path = make(tmp_path, name, age)
    assert sweep(tmp_path) == ([name] if removed else [])
    assert path.exists() is not removed


def test_a_symbolic_link_named_like_a_spool_is_never_followed_nor_removed(tmp_path: Path) -> None:
    root, outside = tmp_path / "spool", tmp_path / "precious"
    root.mkdir()
    outside.mkdir()
    (outside / "data").write_bytes(b"keep me")
    link = root / f"truckllm-upload-{HOST}-{DEAD}-abc"
    link.symlink_to(outside, target_is_directory=True)
    assert sweep(root) == []
    assert link.is_symlink() and (outside / "data").read_bytes() == b"keep me"


def test_links_inside_a_stale_directory_are_removed_not_followed(tmp_path: Path) -> None:
    root, outside = tmp_path / "spool", tmp_path / "precious"
    root.mkdir()
    outside.mkdir()
    (outside / "data").write_bytes(b"keep me")
    stale = make(root, f"truckllm-upload-{HOST}-{DEAD}-abc")
    (stale / "to-dir").symlink_to(outside, target_is_directory=True)
    (stale / "to-file").symlink_to(outside / "data")
    assert sweep(root) == [stale.name]
    assert not stale.exists() and (outside / "data").read_bytes() == b"keep me"


def test_a_file_named_like_a_spool_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / f"truckllm-upload-{HOST}-{DEAD}-abc"
    path.write_bytes(b"x")
    assert sweep(tmp_path) == [] and path.exists()


@pytest.mark.skipif(os.getuid() != 0, reason="making another user's directory needs root")
def test_another_users_directory_is_left_alone(tmp_path: Path) -> None:
    path = make(tmp_path, f"truckllm-upload-{HOST}-{DEAD}-abc", MAX_AGE * 10)
    os.chown(path, 54321, 54321)
    assert sweep(tmp_path) == [] and path.exists()


def test_a_missing_root_is_nothing_to_sweep(tmp_path: Path) -> None:
    assert sweep(tmp_path / "absent") == []


def test_the_spool_names_its_directory_so_that_a_sweep_recognises_it(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path))
    _, fd = spool.new_file()
    os.close(fd)
    assert spool.path is not None
    name = Path(spool.path).name
    assert name.startswith(f"truckllm-upload-{host_tag()}-{os.getpid()}-")
    live: Callable[[int], bool] = lambda pid: True  # noqa: E731
    assert sweep_stale(str(tmp_path), MAX_AGE, alive=live) == []  # this process's: kept
    other = sweep_stale(str(tmp_path), MAX_AGE, now=lambda: os.stat(spool.path or "").st_mtime + MAX_AGE + 1)
    assert other == [name]  # past the age: removed whoever owns it
    spool.close()
