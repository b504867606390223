"""What is installed of a distribution: where, how, and whether its files are still as installed.

Every installed distribution (wheel or editable) has a ``RECORD`` file in its ``.dist-info``
folder: one line per installed file with the file's sha256 and size, written by the installer.
:func:`describe` gives the sha256 of the ``RECORD`` itself (one fingerprint of the whole install:
compare it across machines or with the wheel's) and checks every file ``RECORD`` lists against
the file on disk: a file that changed since it was installed, or is missing, is named.

An editable install's ``RECORD`` lists only what the installer wrote (the ``.pth`` or finder that
points at the source folder, and the ``.dist-info``): its source files are not covered, and
``editable`` and ``source`` say so.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata as md
import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["describe", "record_path", "verify_record"]

_ALGORITHMS = frozenset({"sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512", "blake2b"})
"""Hash algorithms a ``RECORD`` may use (the wheel spec forbids md5 and sha1)."""
_CHUNK = 1 << 16


def record_path(dist: md.Distribution) -> Path | None:
    """The distribution's ``RECORD`` file on disk, or None (an install without one)."""
    for file in dist.files or ():
        if file.name == "RECORD" and file.parent.name.endswith(".dist-info"):
            path = Path(str(file.locate()))
            return path if path.is_file() else None
    return None


def _file_hash(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def verify_record(dist: md.Distribution) -> dict[str, Any]:
    """Each file ``RECORD`` lists, hashed again and compared.

    :returns: ``listed`` (files in RECORD), ``verified`` (hash matches), ``unhashed`` (listed with
        no hash: RECORD itself, signatures), ``mismatched`` and ``missing`` (paths as RECORD
        writes them, sorted).
    """
    listed = verified = unhashed = 0
    mismatched: list[str] = []
    missing: list[str] = []
    for file in dist.files or ():
        listed += 1
        if file.hash is None:
            unhashed += 1
            continue
        path = Path(str(file.locate()))
        algorithm = file.hash.mode
        if algorithm not in _ALGORITHMS:
            mismatched.append(f"{file} (hash {algorithm} refused)")
            continue
        try:
            got = _file_hash(path, algorithm)
        except FileNotFoundError:
            missing.append(str(file))
            continue
        except OSError as exc:
            mismatched.append(f"{file} (unreadable: {type(exc).__name__})")
            continue
        if got == file.hash.value:
            verified += 1
        else:
            mismatched.append(str(file))
    return {
        "listed": listed,
        "verified": verified,
        "unhashed": unhashed,
        "mismatched": sorted(mismatched),
        "missing": sorted(missing),
    }


def _direct_url(dist: md.Distribution) -> tuple[bool, str | None]:
    """(editable, source folder) from ``direct_url.json`` (PEP 610), when the installer wrote one."""
    text = dist.read_text("direct_url.json")
    if not text:
        return False, None
    try:
        data = json.loads(text)
    except ValueError:
        return False, None
    if not isinstance(data, dict):
        return False, None
    editable = bool(isinstance(data.get("dir_info"), dict) and data["dir_info"].get("editable"))
    url = data.get("url")
    source = None
    if isinstance(url, str) and url.startswith("file:"):
        source = unquote(urlsplit(url).path)
    return editable, source


def describe(dist: md.Distribution) -> dict[str, Any]:
    """Where ``dist`` is installed and whether its files are as installed.

    :returns: ``location`` (its ``.dist-info`` folder), ``editable`` and ``source`` (the folder an
        editable or local install came from), ``record_sha256`` (sha256 of RECORD, hex; None
        without one) and ``files`` (:func:`verify_record`; None without a RECORD).
    """
    record = record_path(dist)
    editable, source = _direct_url(dist)
    location = str(record.parent) if record is not None else str(dist.locate_file(""))
    if record is None:
        return {
            "location": location,
            "editable": editable,
            "source": source,
            "record_sha256": None,
            "files": None,
        }
    return {
        "location": location,
        "editable": editable,
        "source": source,
        "record_sha256": hashlib.sha256(record.read_bytes()).hexdigest(),
        "files": verify_record(dist),
    }
