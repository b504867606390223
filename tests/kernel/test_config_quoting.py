"""Config problems never quote a value from the environment or a secret field (issue 13, finding 4).

Rule: whatever field of the config (the kernel's schema and every installed plugin's ``Options``)
gets its value from ``${VAR}``, whole or in part, no problem message, no ``truckllm validate``
output and no admin answer contains that value or any 8-character piece of it; the variable's
name is shown instead. Values of secret-typed fields are never quoted either.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import msgspec.inspect as mi
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from truckllm._internal.cli import main as cli_main
from truckllm._internal.config.loader import parse_config
from truckllm._internal.config.quoting import MIN_FRAGMENT
from truckllm._internal.config.schema import Config
from truckllm._internal.plugins import PluginHost, make_plugin_manager
from truckllm.errors import ConfigError
from truckllm_testing.server import GatewayServer

EXAMPLES = max(3, int(os.environ.get("TRUCKLLM_PROPERTY_EXAMPLES", "300")) // 50)
VAR = "TLM_LEAK"
ADMIN = "quoting-admin-token-Xk29fPq7Lm3w"

BASE: dict[str, Any] = {
    "admin": {"token": ADMIN},
    "server": {"listen": "127.0.0.1:8080"},
    "providers": {
        "oa": {
            "type": "openai",
            "base_url": "https://api.example.com/v1",
            "keys": [{"name": "k1", "value": "v1"}],
        },
        "demo": {"type": "mock"},
    },
    "models": {
        "m": {"deployments": [{"provider": "oa", "model": "gpt"}], "fallbacks": ["d"]},
        "d": {"deployments": [{"provider": "demo", "model": "echo"}]},
    },
    "keys": [{"name": "team", "value": "team-key-value"}],
}
"""A valid config; every field below is put into it in turn."""

Path_ = tuple[str | int, ...]


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return make_plugin_manager()


def leaves(t: mi.Type, path: Path_, seen: frozenset[type] = frozenset()) -> Iterator[Path_]:
    """Every scalar field under ``t`` (dict members get a sample name, lists index 0)."""
    if isinstance(t, mi.Metadata):
        yield from leaves(t.type, path, seen)
    elif isinstance(t, mi.UnionType):
        inner = [m for m in t.types if not isinstance(m, mi.NoneType)]
        containers = [
            m for m in inner if isinstance(m, mi.StructType | mi.DictType | mi.ListType | mi.VarTupleType)
        ]
        if containers:
            for member in containers:
                yield from leaves(member, path, seen)
        elif inner:
            yield path
    elif isinstance(t, mi.StructType):
        if t.cls in seen:
            return
        for f in t.fields:
            yield from leaves(f.type, (*path, f.encode_name), seen | {t.cls})
    elif isinstance(t, mi.DictType):
        yield from leaves(t.value_type, (*path, "zz"), seen)
    elif isinstance(t, mi.ListType | mi.VarTupleType):
        yield from leaves(t.item_type, (*path, 0), seen)
    else:
        yield path


def put(config: dict[str, Any], path: Path_, value: Any) -> dict[str, Any]:
    """``config`` with ``value`` at ``path`` (missing mappings and lists are made)."""
    config = copy.deepcopy(config)
    node: Any = config
    for part, after in itertools.pairwise(path):
        empty: Any = [] if isinstance(after, int) else {}
        if isinstance(part, int):
            while len(node) <= part:
                node.append(empty)
            if not isinstance(node[part], list | dict):
                node[part] = empty
            node = node[part]
        else:
            if not isinstance(node.get(part), list | dict):
                node[part] = empty
            node = node[part]
    last = path[-1]
    if isinstance(last, int):
        while len(node) <= last:
            node.append(None)
    node[last] = value
    return config


def all_paths(host: PluginHost) -> list[tuple[str, Path_]]:
    """(name, path) of every field: the schema's, and every installed plugin's ``Options``."""
    found = []
    for path in leaves(mi.type_info(Config), ()):
        if path[:2] == ("providers", "zz"):
            path = ("providers", "oa", *path[2:])
        if path[:2] == ("models", "zz"):
            path = ("models", "m", *path[2:])
        if path == ("store", "zz"):
            path = ("store", "type")
        if path[:2] == ("loggers", 0):
            path = ("loggers", 0)  # a logger's name (its options are below, per logger)
        found.append((".".join(map(str, path)), path))
    for name, spec in sorted(host.providers.items()):
        for path in leaves(mi.type_info(spec.options), ()) if spec.options else ():
            found.append(
                (
                    f"provider {name} options." + ".".join(map(str, path)),
                    ("providers", f"p_{name}", "options", *path),
                )
            )
    for name, cls in sorted(host.stores.items()):
        for path in leaves(mi.type_info(cls.Options), ()):
            found.append((f"store {name}." + ".".join(map(str, path)), ("store", *path)))
    for name, cls in sorted(host.loggers.items()):
        for path in leaves(mi.type_info(cls.Options), ()):
            found.append((f"logger {name}." + ".".join(map(str, path)), ("loggers", 0, name, *path)))
    return found


def base_for(path: Path_) -> dict[str, Any]:
    config = copy.deepcopy(BASE)
    if path[0] == "providers" and str(path[1]).startswith("p_"):
        kind = str(path[1])[2:]
        config["providers"][path[1]] = {"type": kind, "keys": [{"name": "k", "value": "v"}]}
    if path[0] == "store":
        config["store"] = {"type": STORE_OF.get(path, "memory")}
    return config


STORE_OF: dict[Path_, str] = {}
# upper-case letters, digits and dashes: "any 8 characters of it" never matches a message's own
# words or field names, which are lower-case (a drawn "provider0000" matched `providers.oa`, and
# "Zq7anthropiKx9" matched `p_anthropic`)
secrets = st.text(string.ascii_uppercase + string.digits + "-", min_size=12, max_size=40)
wrappers = st.sampled_from(["{}", "x{}", "{}/y", "https://{}.example/v1", "${{{}}}"])


def leaked(secret: str, text: str) -> bool:
    """``secret`` or any 8-character piece of it shows in ``text``."""
    return any(secret[i : i + MIN_FRAGMENT] in text for i in range(len(secret) - MIN_FRAGMENT + 1))


def problems(text: str, host: PluginHost, env: dict[str, str]) -> str:
    try:
        parse_config(text, host.registry(), env=env)
    except ConfigError as exc:
        return str(exc) + json.dumps([p.message for p in exc.problems])
    return ""


def test_the_walk_covers_every_section(host: PluginHost) -> None:
    names = {name for name, _ in all_paths(host)}
    for expected in (
        "store.type",
        "server.limits.max_header_bytes",
        "routing.cooldown.max_duration",
        "providers.oa.keys.0.routing.backoff.base",
        "models.m.deployments.0.price.input",
        "keys.0.budget.period",
        "admin.token",
        "provider openai options.organization",
    ):
        assert expected in names, sorted(names)
    assert len(names) > 150


@pytest.fixture(scope="module")
def paths(host: PluginHost) -> list[tuple[str, Path_]]:
    found = all_paths(host)
    for name, cls in host.stores.items():
        for path in leaves(mi.type_info(cls.Options), ()):
            STORE_OF[("store", *path)] = name
    return found


def test_no_problem_message_quotes_a_value_from_the_environment(
    host: PluginHost, paths: list[tuple[str, Path_]]
) -> None:
    """The table: every field, its value from ``${TLM_LEAK}`` (whole, or inside a longer string)."""

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(secret=secrets, wrapper=wrappers)
    def check(path: Path_, secret: str, wrapper: str) -> None:
        value = wrapper.format(f"${{{VAR}}}") if wrapper != "${{{}}}" else f"${{{VAR}}}"
        config = put(base_for(path), path, value)
        out = problems(json.dumps(config), host, {VAR: secret})
        assert not leaked(secret, out), (path, out)

    refused = 0
    for name, path in paths:
        check(path)
        out = problems(
            json.dumps(put(base_for(path), path, f"${{{VAR}}}")), host, {VAR: "Zz9-not-a-valid-anything"}
        )
        refused += bool(out)
        assert "Zz9-not-a-valid-anything" not in out, (name, out)
    assert refused > len(paths) // 3  # most fields refuse a random string: their messages were checked


def test_the_instance_of_issue_13(host: PluginHost) -> None:
    secret = "k3Y-mAsTeR-0123456789abcdefXYZ"
    out = problems('store: {type: "${TRUCKLLM_MASTER_KEY}"}', host, {"TRUCKLLM_MASTER_KEY": secret})
    assert "unknown store type (from ${TRUCKLLM_MASTER_KEY})" in out
    assert not leaked(secret, out)


FIRST, OTHER = "sk-FIRST-aaaa-0123456789", "sk-OTHER-bbbb-9876543210"


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        # ruamel's duplicate-key message quoted both values
        (f"keys:\n  - {{name: a, value: {FIRST}, value: {OTHER}}}\n", (FIRST, OTHER)),
        (f"admin:\n  token: {FIRST}\n  token: {OTHER}\n", (FIRST, OTHER)),
        # a secret-typed value and a problem in the same entry
        (f"providers: {{p: {{type: openai, keys: [{{name: k, value: {FIRST}, rpm: -1}}]}}}}\n", (FIRST,)),
        (f"keys: [{{name: k, value: {FIRST}, budget: {{usd: 1, period: {FIRST}}}}}]\n", (FIRST,)),
        (
            f"providers: {{p: {{type: openai, keys: [{{name: k, value: {FIRST}}}]}}}}\nstore: {{type: {FIRST}}}\n",
            (FIRST,),
        ),
    ],
)
def test_no_problem_message_quotes_a_secret_field(
    host: PluginHost, text: str, hidden: tuple[str, ...]
) -> None:
    out = problems(text, host, {})
    assert out
    for secret in hidden:
        assert not leaked(secret, out), out


def every_field_from_the_environment(host: PluginHost, paths: list[tuple[str, Path_]]) -> str:
    """One config with every kernel field from ``${TLM_LEAK}`` (the plugins' store and logger
    fields too): as many problems at once as the loader reports."""
    config = copy.deepcopy(BASE)
    for _, path in paths:
        if path[0] in ("providers", "models") and path[1] not in ("oa", "m"):
            continue
        if path[:2] in (("admin", "token"), ("server", "listen")):
            continue  # keep the admin API reachable for the admin checks
        config = put(config, path, f"${{{VAR}}}")
    return json.dumps(config)


def test_truckllm_validate_and_the_admin_api_do_not_show_it(
    host: PluginHost,
    paths: list[tuple[str, Path_]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "Ab3-LEAK-Cd4-LEAK-Ef5-LEAK-Gh6"
    text = every_field_from_the_environment(host, paths)
    assert problems(text, host, {VAR: secret})  # refused, with many problems
    config = tmp_path / "truckllm.yaml"
    config.write_text(text)
    monkeypatch.setenv(VAR, secret)
    assert cli_main(["validate", "--config", str(config)]) == 1
    assert cli_main(["serve", "--config", str(config)]) == 1
    shown = capsys.readouterr()
    assert "problem(s)" in shown.err
    assert not leaked(secret, shown.out + shown.err), shown.err[:3000]

    admin = {"authorization": f"Bearer {ADMIN}"}
    with GatewayServer(json.dumps(BASE), env={VAR: secret}) as gw:
        answers = [
            httpx.post(gw.url + "/admin/v1/config/validate", content=text, headers=admin),
            httpx.put(gw.url + "/admin/v1/config", content=text, headers=admin),
            httpx.post(
                gw.url + "/admin/v1/config/validate", content='store: {type: "${TLM_LEAK}"}', headers=admin
            ),
        ]
    for answer in answers:
        assert answer.status_code == 422, answer.text[:500]
        assert not leaked(secret, answer.text), answer.text[:3000]
    assert "(from ${TLM_LEAK})" in answers[2].text
