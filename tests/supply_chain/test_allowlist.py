"""``plugins.allow``: entries, names, version ranges, and the config's pre-read of the section."""

from __future__ import annotations

import pytest

from truckllm._internal.allowlist import AllowList, entry_problem, normalize, problems
from truckllm._internal.config.loader import Registry, parse_config, parse_plugins
from truckllm._internal.plugins import make_plugin_manager
from truckllm.errors import ConfigError, StartupError

# -- entries ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "entry",
    ["truckllm-provider-openai", "acme>=1.2,<2", "acme==1.0", "acme~=1.4", "Acme_Plugin", "a.b-c_d!=3"],
)
def test_valid_entries(entry: str) -> None:
    assert entry_problem(entry) is None


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("", "expected a distribution name"),
        ("   ", "expected a distribution name"),
        (3, "expected a distribution name"),
        (None, "expected a distribution name"),
        ("acme >= ", "not a distribution name"),
        ("acme>=1.0<2", "not a distribution name"),
        ("-e ./acme", "not a distribution name"),
        ("./plugins/acme", "not a distribution name"),
        ("acme @ https://example.invalid/acme.whl", "a URL cannot be allowed"),
        ("acme[extra]", "extras mean nothing"),
        ("acme; sys_platform == 'linux'", "environment marker"),
    ],
)
def test_invalid_entries_say_why(entry: object, why: str) -> None:
    problem = entry_problem(entry)
    assert problem is not None and why in problem


def test_a_name_listed_twice_is_a_problem_in_any_spelling() -> None:
    assert problems(["acme", "other", "ACME>=1"]) == [
        (2, "acme is already allowed by entry 0: one entry per distribution")
    ]
    assert problems(["acme_plugin", "acme.plugin"])[0][0] == 1
    with pytest.raises(ValueError, match=r"plugins.allow\[1\]"):
        AllowList.parse(["acme", "Acme"])


@pytest.mark.parametrize(
    ("name", "normal"),
    [("Acme", "acme"), ("acme_plugin", "acme-plugin"), ("acme.plugin", "acme-plugin"), ("A__B--c", "a-b-c")],
)
def test_names_compare_as_pypi_compares_them(name: str, normal: str) -> None:
    assert normalize(name) == normal
    assert AllowList.parse([name]).refusal(normal, "1.0") is None


# -- version ranges --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "version", "allowed"),
    [
        ("acme", "0.0.1", True),
        ("acme", "not-a-version", True),  # no range: any version, comparable or not
        ("acme>=1.2,<2", "1.2", True),
        ("acme>=1.2,<2", "1.9.9", True),
        ("acme>=1.2,<2", "2.0", False),
        ("acme>=1.2,<2", "1.1.9", False),
        ("acme==1.0", "1.0.0", True),
        ("acme==1.0", "1.0.1", False),
        ("acme~=1.4", "1.5", True),
        ("acme~=1.4", "2.0", False),
        ("acme!=1.3", "1.3", False),
        ("acme>=1", "2.0rc1", True),  # a pre-release installed is judged, not hidden
        ("acme>=1", "not-a-version", False),
        ("acme==1.0", "1.0+local", True),
    ],
)
def test_version_ranges(entry: str, version: str, allowed: bool) -> None:
    refusal = AllowList.parse([entry]).refusal("acme", version)
    assert (refusal is None) is allowed, refusal


def test_a_distribution_not_named_is_refused_and_told_why() -> None:
    allow = AllowList.parse(["acme"])
    assert allow.refusal("other", "1.0") == "not in plugins.allow"
    assert "outside" in (AllowList.parse(["acme<1"]).refusal("acme", "1.0") or "")


def test_unmatched_names() -> None:
    allow = AllowList.parse(["acme", "other>=1", "third"])
    assert allow.unmatched(["ACME", "third", "unrelated"]) == ["other"]


def test_an_empty_allow_list_allows_nothing() -> None:
    allow = AllowList.parse([])
    assert allow.refusal("truckllm-provider-mock", "0.1.0") == "not in plugins.allow"


# -- the config ------------------------------------------------------------------------------------


def test_parse_plugins_reads_the_section_alone() -> None:
    # the rest of the config need not be valid yet: providers' types come from plugins not loaded
    text = (
        "providers: {x: {type: from-a-plugin}}\nplugins:\n  allow: [acme>=1]\n  disable: [provider-openai]\n"
    )
    plugins = parse_plugins(text)
    assert plugins.allow == ("acme>=1",) and plugins.disable == ("provider-openai",)
    assert parse_plugins("providers: {}\n").allow is None
    assert parse_plugins("plugins:\n").allow is None
    assert parse_plugins("plugins: {allow: []}\n").allow == ()


def test_parse_plugins_substitutes_the_environment() -> None:
    plugins = parse_plugins("plugins: {allow: ['${A}', '${B:-acme}']}\n", env={"A": "first"})
    assert plugins.allow == ("first", "acme")


@pytest.mark.parametrize(
    ("text", "field", "line", "message"),
    [
        ("x: 1\nplugins:\n  allow: [ok, 'acme[x]']\n", "plugins.allow[1]", 3, "extras"),
        ("plugins:\n  allow:\n    - acme\n    - ACME\n", "plugins.allow[1]", 4, "already allowed"),
        ("plugins:\n  allow: acme\n", "plugins.allow", 2, "expected a list"),
        ("plugins:\n  allowed: [acme]\n", "plugins.allowed", 2, "allow"),
        ("plugins: {allow: ['${NOPE}']}\n", "plugins.allow[0]", 1, "NOPE is not set"),
    ],
)
def test_parse_plugins_problems_name_field_and_line(text: str, field: str, line: int, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_plugins(text, source="c.yaml", env={})
    problem = info.value.problems[0]
    assert (problem.field, problem.line, problem.file) == (field, line, "c.yaml")
    assert message in problem.message, problem.message


def test_parse_plugins_refuses_what_is_not_a_config() -> None:
    for text in ("- a list\n", "key: [unclosed\n"):
        with pytest.raises(ConfigError):
            parse_plugins(text)


def test_the_full_parse_reports_a_bad_entry_too() -> None:
    registry = Registry(providers={}, strategies=frozenset(), stores=frozenset(), loggers=frozenset())
    with pytest.raises(ConfigError) as info:
        parse_config("plugins: {allow: ['a @ https://x.invalid/a.whl']}\n", registry)
    assert [p.field for p in info.value.problems] == ["plugins.allow[0]"]


def test_the_plugin_manager_refuses_an_invalid_list() -> None:
    with pytest.raises(StartupError, match="URL"):
        make_plugin_manager(autoload=False, allow=["a @ https://x.invalid/a.whl"])


def test_installed_plugins_follow_the_allow_list() -> None:
    host = make_plugin_manager(autoload=True, allow=["truckllm-provider-mock"])
    assert set(host.providers) == {"mock"}
    assert {r.distribution for r in host.refused} >= {
        "truckllm-provider-openai",
        "truckllm-strategy-weighted",
    }
    assert not host.strategies.keys() - {"first"}
    host = make_plugin_manager(autoload=True, allow=["truckllm-provider-mock<0.1"])
    assert host.providers == {}
    host = make_plugin_manager(autoload=True, allow=None)
    assert {"mock", "openai"} <= set(host.providers) and host.refused == []


# -- the gateway: start-up and reload --------------------------------------------------------------

GATEWAY_CONFIG = """
plugins: {{allow: {allow}}}
providers:
  demo: {{type: mock}}
{extra}models:
  demo: {{deployments: [{{provider: demo, model: echo}}]}}
"""


def test_a_reload_applies_a_new_allow_list() -> None:
    from truckllm._internal.gateway import Gateway

    gateway = Gateway("<t>", config_text=GATEWAY_CONFIG.format(allow="[truckllm-provider-mock]", extra=""))
    assert set(gateway.runtime.host.providers) == {"mock"}
    # a provider whose plugin is not allowed is a config error naming what is missing; the running
    # config stays
    openai = "  oa: {type: openai, keys: [{name: k, value: sk-test}]}\n"
    with pytest.raises(ConfigError, match="openai"):
        gateway.reload(GATEWAY_CONFIG.format(allow="[truckllm-provider-mock]", extra=openai))
    assert set(gateway.runtime.host.providers) == {"mock"}
    # allowed at the reload: imported then
    gateway.reload(
        GATEWAY_CONFIG.format(allow="[truckllm-provider-mock, truckllm-provider-openai]", extra=openai)
    )
    assert set(gateway.runtime.host.providers) == {"mock", "openai"}
    # taken off the list: no longer registered (its module stays imported until a restart)
    gateway.reload(GATEWAY_CONFIG.format(allow="[truckllm-provider-mock]", extra=""))
    assert set(gateway.runtime.host.providers) == {"mock"}
    with pytest.raises(ConfigError) as info:
        gateway.reload(GATEWAY_CONFIG.format(allow="['truckllm-provider-mock[x]']", extra=""))
    assert [p.field for p in info.value.problems] == ["plugins.allow[0]"]
