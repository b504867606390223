"""Plugin loading through entry points, API versions, failure isolation, listing."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from truckllm import hookimpl
from truckllm._internal.cli import main
from truckllm._internal.config.loader import parse_config
from truckllm._internal.plugins import list_plugins, make_plugin_manager
from truckllm.errors import ConfigError, StartupError
from truckllm.types import ProviderSpec, StrategySpec


def test_builtin_plugins_load_through_entry_points() -> None:
    host = make_plugin_manager()
    assert {"openai", "mock"} <= set(host.providers)
    assert "first" in host.strategies
    rows = {row["name"]: row for row in list_plugins(host)}
    row = rows["truckllm-provider-openai"]
    assert row["version"] == "0.1.0"
    assert row["entry_point"] == "provider-openai = truckllm_provider_openai"
    assert row["module"] == "truckllm_provider_openai"
    assert "transform_request" in row["hooks"] and row["status"] == "loaded"
    assert "truckllm._internal.defaults" not in rows
    assert "truckllm._internal.defaults" in {r["name"] for r in list_plugins(host, all=True)}


def test_autoload_can_be_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUCKLLM_DISABLE_PLUGIN_AUTOLOAD", "1")
    host = make_plugin_manager()
    assert host.providers == {}
    assert list_plugins(host) == []


def test_blocked_plugin_removes_its_feature_and_nothing_else() -> None:
    """Blocking an entry point is what uninstalling the package looks like to the kernel."""
    host = make_plugin_manager(disabled=["provider-openai"])
    assert "openai" not in host.providers and "mock" in host.providers
    demo = "providers:\n  d: {type: mock}\nmodels:\n  m: {deployments: [{provider: d, model: x}]}\n"
    assert "m" in parse_config(demo, host.registry(), env={}).models
    with pytest.raises(ConfigError) as info:
        parse_config(
            "providers:\n  o: {type: openai, keys: [{name: a, value: k}]}\n", host.registry(), env={}
        )
    assert "unknown provider type 'openai'" in str(info.value)


class _WrongApi:
    TRUCKLLM_API = 99

    @staticmethod
    @hookimpl
    def register_providers(register: Callable[[ProviderSpec], None]) -> None:
        register(ProviderSpec(type="future"))


def test_plugin_with_another_api_version_is_refused_and_reported() -> None:
    host = make_plugin_manager(extra=[_WrongApi()], autoload=False)
    assert "future" not in host.providers
    (failure,) = host.failures
    assert "plugin API 99" in failure.error and "serves API 1" in failure.error
    rows = list_plugins(host)
    assert rows[-1]["status"] == "failed"


class _Misspelt:
    @staticmethod
    @hookimpl
    def transform_requests() -> None:  # not a hook
        return None


def test_misspelt_hook_stops_startup() -> None:
    with pytest.raises(StartupError, match="unknown hook"):
        make_plugin_manager(extra=[_Misspelt()], autoload=False)


class _Strategy:
    def __init__(self, name: str) -> None:
        self.__name__ = f"strategy-{name}-{id(self)}"
        self.strategy = name

    @hookimpl
    def register_strategies(self, register: Callable[[StrategySpec], None]) -> None:
        register(StrategySpec(name=self.strategy))


def test_a_name_registered_twice_stops_startup_naming_both_plugins() -> None:
    with pytest.raises(StartupError, match="'twice' is registered twice"):
        make_plugin_manager(extra=[_Strategy("twice"), _Strategy("twice")], autoload=False)


class _Raising:
    __name__ = "raising-plugin"

    @staticmethod
    @hookimpl
    def register_providers(register: Callable[[ProviderSpec], None]) -> None:
        register(ProviderSpec(type="half"))
        raise RuntimeError("boom")


def test_plugin_raising_at_registration_is_isolated_and_named_when_config_needs_it() -> None:
    host = make_plugin_manager(extra=[_Raising()])
    assert "half" not in host.providers and "mock" in host.providers
    assert any("register_providers raised RuntimeError: boom" in f.error for f in host.failures)
    with pytest.raises(ConfigError) as info:
        parse_config("providers:\n  h: {type: half}\n", host.registry(), env={})
    assert "raising-plugin: register_providers raised RuntimeError: boom" in str(info.value)


@pytest.fixture
def broken_distribution(tmp_path: Path) -> Iterator[Path]:
    """An installed distribution whose entry point fails to import."""
    dist = tmp_path / "truckllm_provider_broken-0.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: truckllm-provider-broken\nVersion: 0.3\n")
    (dist / "entry_points.txt").write_text("[truckllm]\nprovider-broken = truckllm_provider_broken\n")
    (tmp_path / "truckllm_provider_broken.py").write_text("import no_such_module_anywhere\n")
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    sys.modules.pop("truckllm_provider_broken", None)


def test_plugin_failing_to_import_is_reported_not_fatal(broken_distribution: Path) -> None:
    host = make_plugin_manager()
    assert "mock" in host.providers
    (failure,) = [f for f in host.failures if f.name == "provider-broken"]
    assert failure.distribution == "truckllm-provider-broken" and failure.version == "0.3"
    assert "ModuleNotFoundError" in failure.error
    rows = [r for r in list_plugins(host) if r["status"] == "failed"]
    assert rows[0]["name"] == "truckllm-provider-broken"


def test_cli_plugins_lists_loaded_and_failed(
    broken_distribution: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "truckllm-provider-openai 0.1.0" in out
    assert "truckllm-provider-broken 0.3" in out and "FAILED: import failed" in out


def test_cli_validate_prints_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        textwrap.dedent("""\
        providers:
          o: {type: nosuch}
        models:
          m: {deployments: [{provider: o, model: x}], strategy: nope}
        """)
    )
    assert main(["validate", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:2: providers.o.type: unknown provider type 'nosuch'" in err
    assert "2 problem(s)" in err
    good = tmp_path / "good.yaml"
    good.write_text("providers:\n  d: {type: mock}\nmodels:\n  m: {deployments: [{provider: d, model: x}]}\n")
    assert main(["validate", "--config", str(good)]) == 0
