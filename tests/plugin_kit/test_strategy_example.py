"""``contrib/strategy-header``, an outside-style strategy plugin, loaded through its entry point.

The package is made visible the way an editable install does it, without touching the shared
environment: a ``.dist-info`` folder with its ``entry_points.txt`` on ``sys.path``, next to the
package's source folder. The kernel then finds it like any installed plugin.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from truckllm._internal.cli import main
from truckllm._internal.config.loader import parse_config
from truckllm._internal.plugins import list_plugins, make_plugin_manager
from truckllm.errors import ConfigError
from truckllm_testing.conformance import GatewayClient
from truckllm_testing.fakes import FakeOpenAI, Fault
from truckllm_testing.server import GatewayServer

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "contrib" / "strategy-header"
DIST = "truckllm-strategy-header"


def write_dist_info(folder: Path) -> Path:
    """What ``pip install -e contrib/strategy-header`` would leave in site-packages, in ``folder``."""
    info = folder / "truckllm_strategy_header-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {DIST}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[truckllm]\nstrategy-header = truckllm_strategy_header\n")
    return folder


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The plugin findable through the ``truckllm`` entry-point group, for this test only."""
    monkeypatch.delenv("TRUCKLLM_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    site = write_dist_info(tmp_path / "site")
    monkeypatch.syspath_prepend(str(PACKAGE))
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop("truckllm_strategy_header", None)


def test_the_kernel_finds_it_and_lists_it(installed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    host = make_plugin_manager()
    assert "header" in host.strategies
    (row,) = [r for r in list_plugins(host) if r["name"] == DIST]
    assert row["status"] == "loaded" and row["version"] == "0.1.0"
    assert row["entry_point"] == "strategy-header = truckllm_strategy_header"
    assert row["hooks"] == ["register_strategies", "select_provider"]
    assert main(["plugins"]) == 0
    assert f"{DIST} 0.1.0  [strategy-header = truckllm_strategy_header]" in capsys.readouterr().out


def config(primary: FakeOpenAI, secondary: FakeOpenAI) -> str:
    return f"""
admin: {{token: admin-token}}
routing: {{backoff: {{base: 1ms, max: 5ms}}}}
providers:
  primary:
    type: openai
    base_url: {primary.base_url}
    keys: [{{name: p-one, value: pk-1}}, {{name: p-two, value: pk-2}}]
  secondary: {{type: openai, base_url: "{secondary.base_url}", keys: [{{name: s-one, value: sk-1}}]}}
models:
  chat:
    strategy: header
    deployments: [{{provider: primary, model: gpt-p}}, {{provider: secondary, model: gpt-s}}]
"""


def ask(client: GatewayClient, prefer: str | None = None) -> tuple[str, str]:
    """(provider that answered, attempts) for one chat request."""
    headers = {"x-truckllm-prefer": prefer} if prefer is not None else None
    answer = client.chat({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}, headers=headers)
    assert answer.status == 200, answer.body
    return answer.headers["x-truckllm-provider"], answer.headers["x-truckllm-attempts"]


def test_the_gateway_routes_by_the_header(installed: Path) -> None:
    primary = FakeOpenAI(keys=["pk-1", "pk-2"])
    secondary = FakeOpenAI(keys=["sk-1"])
    with primary.running(), secondary.running(), GatewayServer(config(primary, secondary)) as gw:
        client = GatewayClient(gw)
        rows = json.loads(client.request("GET", "/admin/v1/plugins", token="admin-token").body)["plugins"]
        assert [r["status"] for r in rows if r["name"] == DIST] == ["loaded"]

        assert ask(client) == ("primary", "1")  # no header: config order
        assert ask(client, "secondary") == ("secondary", "1")
        assert ask(client, "s-one") == ("secondary", "1")  # a key name
        assert ask(client, "nobody, secondary") == ("secondary", "1")
        assert ask(client, "primary/p-two") == ("primary", "1")
        assert [r.api_key for r in primary.requests] == ["pk-1", "pk-2"]
        assert [r.json["model"] for r in secondary.requests] == ["gpt-s"] * 3

        # the preferred provider failing: failover goes on in the remaining order
        secondary.inject(Fault(status=500))
        assert ask(client, "secondary") == ("primary", "2")
        assert primary.violations == secondary.violations == []


def test_its_own_tests_pass(installed: Path) -> None:
    """The package's tests, run from its folder with its own pytest config, as its author would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUCKLLM_")}
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE), str(installed)])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q"],
        cwd=PACKAGE,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout.strip().splitlines()[-1]


def test_a_config_naming_it_without_it_installed_says_so() -> None:
    """Without the package the strategy is unknown, and the config error says which ones exist."""
    host = make_plugin_manager()
    with pytest.raises(ConfigError, match="strategy"):
        parse_config(
            "providers:\n  d: {type: mock}\nmodels:\n  m: {strategy: header, deployments: [{provider: d, model: x}]}\n",
            host.registry(),
            env={},
        )
