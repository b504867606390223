"""RECORD: its sha256, and every file it lists hashed again (changed, missing, refused hashes)."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata as md
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.supply_chain.conftest import ROGUE_MODULE, build_wheel
from truckllm._internal.installed import describe, record_path, verify_record


def _hash(data: bytes, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm, data).digest()
    return f"{algorithm}=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    """``truckllm-rogue`` installed by pip (``--target``): a RECORD as an installer writes it."""
    wheel = build_wheel(tmp_path, "truckllm-rogue", "0.1", {"provider-rogue": "truckllm_rogue"}, ROGUE_MODULE)
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return site


def _dist(site: Path) -> md.Distribution:
    (dist,) = md.distributions(path=[str(site)])
    return dist


def test_an_intact_install_verifies(installed: Path) -> None:
    dist = _dist(installed)
    facts = describe(dist)
    record = installed / "truckllm_rogue-0.1.dist-info" / "RECORD"
    assert record_path(dist) == record
    assert facts["location"] == str(record.parent)
    assert facts["record_sha256"] == hashlib.sha256(record.read_bytes()).hexdigest()
    assert facts["editable"] is False
    files = facts["files"]
    assert files["mismatched"] == [] and files["missing"] == []
    assert files["verified"] + files["unhashed"] == files["listed"] and files["verified"] >= 4


@pytest.mark.parametrize(
    "change",
    [
        lambda p: p.write_bytes(p.read_bytes() + b"\n"),  # one byte more
        lambda p: p.write_bytes(p.read_bytes()[:-1]),  # one byte less
        lambda p: p.write_bytes(p.read_bytes().replace(b"imported", b"IMPORTED")),  # same size
        lambda p: p.write_bytes(b""),
    ],
)
def test_any_change_to_a_listed_file_is_named(installed: Path, change: object) -> None:
    target = installed / "truckllm_rogue.py"
    change(target)  # type: ignore[operator]
    files = verify_record(_dist(installed))
    assert files["mismatched"] == ["truckllm_rogue.py"] and files["missing"] == []


def test_a_missing_file_is_named(installed: Path) -> None:
    (installed / "truckllm_rogue-0.1.dist-info" / "entry_points.txt").unlink()
    files = verify_record(_dist(installed))
    assert files["missing"] == ["truckllm_rogue-0.1.dist-info/entry_points.txt"]


def test_a_changed_record_changes_its_hash(installed: Path) -> None:
    dist = _dist(installed)
    before = describe(dist)["record_sha256"]
    record = installed / "truckllm_rogue-0.1.dist-info" / "RECORD"
    # rewrite RECORD to hide a changed module: its own hash shows it
    module = installed / "truckllm_rogue.py"
    module.write_text("STOLEN = True\n")
    lines = [
        f"truckllm_rogue.py,{_hash(module.read_bytes())},{module.stat().st_size}"
        if line.startswith("truckllm_rogue.py,")
        else line
        for line in record.read_text().splitlines()
    ]
    record.write_text("\n".join(lines) + "\n")
    after = describe(_dist(installed))
    assert after["files"]["mismatched"] == []  # a consistent forgery passes the file check...
    assert after["record_sha256"] != before  # ...but not the comparison with the known RECORD hash


@pytest.mark.parametrize(
    ("algorithm", "ok"),
    [("sha256", True), ("sha512", True), ("sha384", True), ("md5", False), ("sha1", False)],
)
def test_record_hash_algorithms(tmp_path: Path, algorithm: str, ok: bool) -> None:
    info = tmp_path / "acme-1.0.dist-info"
    info.mkdir()
    (tmp_path / "acme.py").write_text("X = 1\n")
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme\nVersion: 1.0\n")
    digest = _hash(b"X = 1\n", algorithm)
    (info / "RECORD").write_text(
        f"acme.py,{digest},6\nacme-1.0.dist-info/METADATA,,\nacme-1.0.dist-info/RECORD,,\n"
    )
    files = verify_record(_dist(tmp_path))
    assert files["listed"] == 3 and files["unhashed"] == 2
    if ok:
        assert files["verified"] == 1 and files["mismatched"] == []
    else:
        assert files["verified"] == 0 and files["mismatched"] == [f"acme.py (hash {algorithm} refused)"]


def test_no_record_is_said(tmp_path: Path) -> None:
    info = tmp_path / "acme-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme\nVersion: 1.0\n")
    facts = describe(_dist(tmp_path))
    assert facts["record_sha256"] is None and facts["files"] is None


@pytest.mark.parametrize(
    ("direct_url", "editable", "source"),
    [
        ({"url": "file:///src/acme", "dir_info": {"editable": True}}, True, "/src/acme"),
        ({"url": "file:///src/my%20acme", "dir_info": {}}, False, "/src/my acme"),
        ({"url": "https://example.invalid/acme.whl", "archive_info": {}}, False, None),
        ("not json", False, None),
        ([1, 2], False, None),
    ],
)
def test_editable_installs_are_told(
    tmp_path: Path, direct_url: object, editable: bool, source: str | None
) -> None:
    info = tmp_path / "acme-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme\nVersion: 1.0\n")
    text = direct_url if isinstance(direct_url, str) else json.dumps(direct_url)
    (info / "direct_url.json").write_text(text)
    (info / "RECORD").write_text(
        f"acme-1.0.dist-info/direct_url.json,{_hash(text.encode())},{len(text)}\nacme-1.0.dist-info/RECORD,,\n"
    )
    facts = describe(_dist(tmp_path))
    assert (facts["editable"], facts["source"]) == (editable, source)
    assert facts["files"]["verified"] == 1


def test_the_repository_plugins_installed_here_verify() -> None:
    # every plugin of this venv: editable (make install) or not, its RECORD's files are intact
    plugins = [d for d in md.distributions() if any(ep.group == "truckllm" for ep in d.entry_points)]
    assert plugins
    for dist in plugins:
        facts = describe(dist)
        assert facts["record_sha256"] is not None, dist.metadata["name"]
        assert facts["files"]["mismatched"] == [] and facts["files"]["missing"] == [], dist.metadata["name"]
