"""A rogue distribution declaring a ``truckllm`` entry point (issue 22, "Done when").

With ``plugins.allow`` set, its module is never imported, by any command (``plugins``,
``validate``, ``serve``), and the listing shows it present, not allowed; without an allow-list it
is loaded (the marker proves the test can see an import) and the start-up warning names it.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.supply_chain.conftest import Rogue, free_port

pytestmark = pytest.mark.timeout(300)

MOCK_ONLY = ["truckllm-provider-mock", "truckllm-strategy-weighted", "truckllm-store-memory"]


def config(tmp: Path, allow: list[str] | None, port: int = 0, name: str = "truckllm.yaml") -> Path:
    """A config serving the mock provider, with ``plugins.allow`` when given."""
    plugins = f"plugins: {{allow: {json.dumps(allow)}}}\n" if allow is not None else ""
    path = tmp / name
    path.write_text(
        plugins
        + (f'server: {{listen: "127.0.0.1:{port}", graceful_timeout: 5s}}\n' if port else "")
        + "admin: {token: rogue-test-admin-token-0123456789}\n"
        + "providers:\n  demo: {type: mock}\n"
        + "models:\n  demo: {deployments: [{provider: demo, model: echo, price: {}}]}\n"
    )
    return path


def rows_of(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    return {row["name"]: row for row in json.loads(result.stdout)}


# -- with plugins.allow: never imported, listed as present, not allowed ---------------------------


@pytest.mark.parametrize(
    "allow",
    [
        MOCK_ONLY,  # not named at all
        [*MOCK_ONLY, "truckllm-rogue>=1"],  # named, but its version is outside the range
        [*MOCK_ONLY, "truckllm-rogue<0.1"],
        [*MOCK_ONLY, "truckllm-rogue==0.1.1"],
        [*MOCK_ONLY, "truckllm-rogue!=0.1"],
        [*MOCK_ONLY, "truckllm-rogu"],  # a near name is another name
        [*MOCK_ONLY, "truckllm-rogue-extra"],
    ],
)
def test_not_allowed_rogue_is_listed_never_imported(rogue: Rogue, allow: list[str]) -> None:
    rows = rows_of(rogue.truckllm("plugins", "--json", "--config", str(config(rogue.tmp, allow))))
    assert not rogue.imported()
    row = rows["truckllm-rogue"]
    assert row["status"] == "not allowed" and row["allowed"] is False
    assert row["module"] is None and row["hooks"] == []
    assert row["entry_point"] == "provider-rogue" and row["version"] == "0.1"
    assert row["first_party"] is False
    assert "plugins.allow" in row["error"]
    # its installed files are shown all the same: an operator sees what is there
    assert Path(row["location"]) == rogue.record.parent
    assert row["record_sha256"] == hashlib.sha256(rogue.record.read_bytes()).hexdigest()
    assert row["files"]["mismatched"] == [] and row["files"]["missing"] == []
    assert row["files"]["verified"] == row["files"]["listed"] - row["files"]["unhashed"] > 0
    # the allowed plugins load; everything else installed is not allowed either
    assert rows["truckllm-provider-mock"]["status"] == "loaded"
    assert {r["status"] for n, r in rows.items() if n not in MOCK_ONLY} == {"not allowed"}


def test_every_command_leaves_a_not_allowed_plugin_unimported(rogue: Rogue) -> None:
    path = config(rogue.tmp, MOCK_ONLY)
    listing = rogue.truckllm("plugins", "--config", str(path))
    assert listing.returncode == 0, listing.stderr
    assert (
        "truckllm-rogue 0.1  [provider-rogue]  present, NOT ALLOWED: not in plugins.allow" in listing.stdout
    )
    validate = rogue.truckllm("validate", "--config", str(path))
    assert validate.returncode == 0, validate.stderr
    assert "truckllm-rogue 0.1" in validate.stderr and "is not allowed" in validate.stderr
    prices = rogue.truckllm("prices", "--config", str(path))
    assert prices.returncode == 0, prices.stderr
    assert not rogue.imported()


def test_an_allowed_name_that_is_not_installed_is_warned_about(rogue: Rogue) -> None:
    result = rogue.truckllm("validate", "--config", str(config(rogue.tmp, [*MOCK_ONLY, "Acme_Not.Here>=1"])))
    assert result.returncode == 0, result.stderr
    assert "plugins.allow names acme-not-here, which is not installed" in result.stderr


def test_the_kernel_itself_is_listed_with_its_files(rogue: Rogue) -> None:
    rows = json.loads(
        rogue.truckllm("plugins", "--json", "--all", "--config", str(config(rogue.tmp, MOCK_ONLY))).stdout
    )
    (kernel,) = [r for r in rows if r["name"] == "truckllm._internal.defaults"]
    assert kernel["version"] and kernel["first_party"] is True and kernel["record_sha256"]
    assert kernel["files"]["mismatched"] == [] and kernel["files"]["missing"] == []


def test_the_allow_list_is_read_from_the_environment_too(rogue: Rogue, tmp_path: Path) -> None:
    path = tmp_path / "env.yaml"
    path.write_text(
        "plugins: {allow: ['${ALLOWED_A}', '${ALLOWED_B:-truckllm-store-memory}']}\n"
        "providers: {demo: {type: mock}}\nmodels: {demo: {deployments: [{provider: demo, model: echo}]}}\n"
    )
    env = {**rogue.env(), "ALLOWED_A": "truckllm-provider-mock"}
    result = subprocess.run(
        [sys.executable, "-m", "truckllm.cli", "plugins", "--json", "--config", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    rows = rows_of(result)
    assert rows["truckllm-rogue"]["status"] == "not allowed" and not rogue.imported()
    assert rows["truckllm-provider-mock"]["status"] == "loaded"
    assert rows["truckllm-store-memory"]["status"] == "loaded"


def test_allowed_rogue_is_loaded(rogue: Rogue) -> None:
    for allow in (["truckllm-rogue"], ["Truckllm_Rogue>=0.1,<1"], ["truckllm.rogue==0.1"]):
        rogue.marker.unlink(missing_ok=True)
        rows = rows_of(rogue.truckllm("plugins", "--json", "--config", str(config(rogue.tmp, allow))))
        assert rows["truckllm-rogue"]["status"] == "loaded", allow
        assert rogue.imported(), allow


# -- without plugins.allow: loaded, and the start-up warning names it ------------------------------


def test_without_allow_list_the_warning_names_the_rogue(rogue: Rogue) -> None:
    result = rogue.truckllm("validate", "--config", str(config(rogue.tmp, None)))
    assert result.returncode == 0, result.stderr
    assert rogue.imported()  # loaded: the marker shows this test sees an import when there is one
    warning = [line for line in result.stderr.splitlines() if "plugins.allow is not set" in line]
    assert len(warning) == 1, result.stderr
    assert "truckllm-rogue 0.1" in warning[0] and str(rogue.record.parent) in warning[0]
    assert "truckllm-provider-mock" not in warning[0]  # TruckLLM's own are not named


def test_a_tampered_file_is_named_in_the_listing(rogue: Rogue) -> None:
    rogue.module_file.write_text(rogue.module_file.read_text() + "\nSTOLEN = True\n")
    (rogue.site / "truckllm_rogue-0.1.dist-info" / "METADATA").unlink(missing_ok=False)
    (rogue.site / "truckllm_rogue-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: truckllm-rogue\nVersion: 0.1\n"
    )
    rows = rows_of(rogue.truckllm("plugins", "--json", "--config", str(config(rogue.tmp, MOCK_ONLY))))
    files = rows["truckllm-rogue"]["files"]
    assert files["mismatched"] == ["truckllm_rogue.py"] and files["missing"] == []
    listing = rogue.truckllm("plugins", "--config", str(config(rogue.tmp, MOCK_ONLY)))
    assert "CHANGED SINCE INSTALL: truckllm_rogue.py" in listing.stdout
    rogue.module_file.unlink()
    rows = rows_of(rogue.truckllm("plugins", "--json", "--config", str(config(rogue.tmp, MOCK_ONLY))))
    assert rows["truckllm-rogue"]["files"]["missing"] == ["truckllm_rogue.py"]


# -- a real start-up ---------------------------------------------------------------------------


def http(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def serve(rogue: Rogue, allow: list[str] | None) -> tuple[str, dict[str, Any]]:
    """``truckllm serve`` with the rogue installed: its start-up log and ``/admin/v1/plugins``."""
    port = free_port()
    path = config(rogue.tmp, allow, port=port, name="serve.yaml")
    log_path = rogue.tmp / "serve.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "truckllm.cli", "serve", "--config", str(path)],
            env=rogue.env(),
            cwd=rogue.tmp,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60  # a bound on a hung start-up, not a measurement
            while True:
                try:
                    if http(f"http://127.0.0.1:{port}/admin/v1/health")[0] == 200:
                        break
                except OSError:
                    pass
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "truckllm serve did not come up: " + log_path.read_text()
                time.sleep(0.1)
            status, body = http(
                f"http://127.0.0.1:{port}/admin/v1/plugins", token="rogue-test-admin-token-0123456789"
            )
            assert status == 200, body
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            finally:
                if proc.poll() is None:
                    proc.kill()
    return log_path.read_text(), json.loads(body)


def test_serve_start_up_with_and_without_allow_list(rogue: Rogue) -> None:
    log, listing = serve(rogue, MOCK_ONLY)
    assert not rogue.imported()
    assert listing["allow"] == MOCK_ONLY
    (row,) = [r for r in listing["plugins"] if r["name"] == "truckllm-rogue"]
    assert row["status"] == "not allowed" and row["allowed"] is False
    assert row["record_sha256"] == hashlib.sha256(rogue.record.read_bytes()).hexdigest()
    assert "truckllm-rogue 0.1" in log and "is not allowed (not in plugins.allow): not imported" in log

    log, listing = serve(rogue, None)
    assert rogue.imported()
    assert listing["allow"] is None
    (row,) = [r for r in listing["plugins"] if r["name"] == "truckllm-rogue"]
    assert row["status"] == "loaded" and row["first_party"] is False
    (warning,) = [line for line in log.splitlines() if "plugins.allow is not set" in line]
    assert "truckllm-rogue 0.1" in warning
