"""``make audit``: pip-audit of every pin of the lock files, offline-tolerant.

For each lock (``requirements/runtime.txt``, ``requirements/dev.txt``), pip-audit looks every
pinned version up in the advisory database (``--require-hashes --disable-pip``: the lock is read
as it is, nothing is installed or resolved). The outcome, per lock:

- a known vulnerability in a pin: printed (package, version, advisory, fixed versions) and the
  command fails;
- the advisory database cannot be reached (no network, a name that does not resolve, a proxy
  that refuses), or it answers "not found" for pins (a mirror without per-release data): said,
  with how many pins could not be audited, and the command does not fail for that reason alone;
- any other error of pip-audit: printed, and the command fails.

Usage: ``python tools/audit.py LOCK...``; ``AUDIT_ARGS`` in the environment is appended to
pip-audit's arguments (e.g. ``--ignore-vuln GHSA-xxxx`` for a reviewed, accepted advisory).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

_UNREACHABLE = (
    "ConnectionError",
    "ProxyError",
    "NameResolutionError",
    "Max retries exceeded",
    "Temporary failure in name resolution",
    "Name or service not known",
    "timed out",
    "Network is unreachable",
    "SSLError",
)


@dataclass
class Outcome:
    """What pip-audit found for one lock."""

    lock: str
    pins: int = 0
    audited: int = 0
    vulnerable: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    unreachable: bool = False
    error: str | None = None


def run_pip_audit(lock: Path, extra: list[str]) -> tuple[int, str, dict[str, object] | None]:
    """pip-audit's exit code, stderr and JSON report (None when it wrote none) for ``lock``."""
    with tempfile.TemporaryDirectory(prefix="truckllm-audit-") as tmp:
        report = Path(tmp) / "report.json"
        command = [
            sys.executable,
            "-m",
            "pip_audit",
            "--requirement",
            str(lock),
            "--require-hashes",
            "--disable-pip",
            "--progress-spinner",
            "off",
            "--format",
            "json",
            "--output",
            str(report),
            *extra,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
        data = json.loads(report.read_text()) if report.exists() and report.stat().st_size else None
    return done.returncode, done.stderr, data


def judge(lock: str, code: int, stderr: str, data: dict[str, object] | None) -> Outcome:
    """The outcome of one pip-audit run (see the module's doc)."""
    outcome = Outcome(lock=lock)
    if data is None:
        if any(marker in stderr for marker in _UNREACHABLE):
            outcome.unreachable = True
        else:
            tail = stderr.strip().splitlines()[-5:]
            outcome.error = f"pip-audit exited {code}: " + " | ".join(tail or ["no output"])
        return outcome
    deps = data.get("dependencies", [])
    assert isinstance(deps, list)
    for dep in deps:
        outcome.pins += 1
        name, version = dep.get("name"), dep.get("version", "?")
        if dep.get("skip_reason"):
            outcome.skipped.append(f"{name}")
            continue
        outcome.audited += 1
        for vuln in dep.get("vulns", []):
            fixes = ", ".join(vuln.get("fix_versions", [])) or "no fixed version yet"
            outcome.vulnerable.append(f"{name} {version}: {vuln.get('id')} (fixed in: {fixes})")
    return outcome


def report(outcome: Outcome) -> bool:
    """Print one lock's outcome; True when it fails the audit."""
    if outcome.error is not None:
        print(f"audit {outcome.lock}: FAILED to run: {outcome.error}")
        return True
    if outcome.unreachable:
        print(f"audit {outcome.lock}: the advisory database cannot be reached: NOT AUDITED (not a failure)")
        return False
    for line in outcome.vulnerable:
        print(f"audit {outcome.lock}: VULNERABLE {line}")
    if outcome.skipped:
        print(
            f"audit {outcome.lock}: {len(outcome.skipped)} of {outcome.pins} pins could not be audited "
            "(the advisory database has no answer for them: unreachable or a mirror without "
            "per-release data): not a failure; e.g. " + ", ".join(outcome.skipped[:5])
        )
    verdict = f"{len(outcome.vulnerable)} known vulnerabilities" if outcome.vulnerable else "none known"
    print(f"audit {outcome.lock}: {outcome.audited} of {outcome.pins} pins audited, {verdict}")
    return bool(outcome.vulnerable)


def main(argv: list[str] | None = None) -> int:
    """Audit each lock named on the command line; 1 when one has a known vulnerability or
    pip-audit failed for another reason than an unreachable database."""
    locks = (argv if argv is not None else sys.argv[1:]) or ["requirements/runtime.txt"]
    extra = shlex.split(os.environ.get("AUDIT_ARGS", ""))
    failed = False
    for lock in locks:
        try:
            code, stderr, data = run_pip_audit(Path(lock), extra)
        except subprocess.TimeoutExpired:
            code, stderr, data = 1, "timed out", None
        failed |= report(judge(lock, code, stderr, data))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
