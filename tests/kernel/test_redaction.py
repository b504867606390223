"""The admin config view hides secrets by their type, not by their name (issue 13, finding 11).

Rule: in ``GET /admin/v1/config`` (``redacted_config``) a value is ``<secret>`` exactly when the
schema or the plugin's ``Options`` types it as a secret (``Secret``, ``Meta(extra=SECRET)``, a map
of secrets); every other field shows, whatever its name (``retry_budget.tokens``). Only maps that
carry no type (a provider's ``headers``, the options of a plugin without ``Options``) fall back to
the name rule, and URL credentials are masked everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import msgspec
import msgspec.inspect as mi
import pytest

from truckllm._internal.config.schema import Config
from truckllm._internal.gateway import Gateway
from truckllm._internal.plugins import PluginHost, make_plugin_manager
from truckllm._internal.redact import redacted_config
from truckllm._internal.secrets import REDACTED
from truckllm_testing.server import GatewayServer

Path_ = tuple[str | int, ...]


def is_secret(t: mi.Type) -> bool:
    if isinstance(t, mi.Metadata):
        return bool((t.extra or {}).get("secret")) or is_secret(t.type)
    if isinstance(t, mi.UnionType):
        return any(is_secret(m) for m in t.types)
    return isinstance(t, mi.CustomType) and t.cls.__name__ == "Secret"


def fields(t: mi.Type, path: Path_ = ()) -> Iterator[tuple[Path_, bool]]:
    """Every scalar field under ``t``, and whether its type says secret."""
    if is_secret(t):
        yield path, True
    elif isinstance(t, mi.Metadata):
        yield from fields(t.type, path)
    elif isinstance(t, mi.UnionType):
        inner = [m for m in t.types if not isinstance(m, mi.NoneType)]
        nested = [
            m for m in inner if isinstance(m, mi.StructType | mi.ListType | mi.VarTupleType | mi.DictType)
        ]
        for member in nested or inner[:1]:
            yield from fields(member, path)
    elif isinstance(t, mi.StructType):
        for f in t.fields:
            yield from fields(f.type, (*path, f.encode_name))
    elif isinstance(t, mi.DictType):
        if isinstance(t.value_type, mi.AnyType | mi.StrType):
            return  # a free-form map: checked by the name rule below
        yield from fields(t.value_type, (*path, "name"))
    elif isinstance(t, mi.ListType | mi.VarTupleType):
        yield from fields(t.item_type, (*path, 0))
    else:
        yield path, False


def tree_with(paths: list[tuple[Path_, bool]]) -> dict[str, Any]:
    """A builtins tree with a distinct marker at every path."""
    tree: dict[str, Any] = {}
    for n, (path, _) in enumerate(paths):
        node: Any = tree
        for part, after in zip(path, (*path[1:], None), strict=True):
            if after is None:
                if isinstance(part, int):
                    while len(node) <= part:
                        node.append(None)
                node[part] = f"marker-{n}-value"
            elif isinstance(part, int):
                while len(node) <= part:
                    node.append([] if isinstance(after, int) else {})
                node = node[part]
            else:
                node = node.setdefault(part, [] if isinstance(after, int) else {})
    return tree


def shown(view: Any) -> str:
    return msgspec.json.encode(view).decode()


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return make_plugin_manager()


def test_every_schema_field_is_hidden_exactly_when_typed_secret() -> None:
    paths = list(fields(mi.type_info(Config)))
    assert sum(secret for _, secret in paths) >= 4  # admin.token, both key values, keys[].hash
    view = shown(redacted_config(tree_with(paths)))
    for n, (path, secret) in enumerate(paths):
        assert (f"marker-{n}-value" not in view) is secret, (path, secret)


@pytest.mark.parametrize("kind", ["providers", "stores", "loggers"])
def test_every_plugin_option_is_hidden_exactly_when_typed_secret(host: PluginHost, kind: str) -> None:
    table: dict[str, Any] = getattr(host, kind)
    for name, item in sorted(table.items()):
        options = item.options if kind == "providers" else item.Options
        if options is None:  # a plugin with no options (the rerank providers) has none to hide
            continue
        paths = list(fields(mi.type_info(options)))
        values = tree_with(paths)
        if kind == "providers":
            tree = {"providers": {"p": {"type": name, "options": values}}}
            types = {"provider:p": options}
        elif kind == "stores":
            tree = {"store": {"type": name, **values}}
            types = {"store": options}
        else:
            tree = {"loggers": [{name: values}]}
            types = {f"logger:{name}": options}
        view = shown(redacted_config(tree, types))
        for n, (path, secret) in enumerate(paths):
            assert (f"marker-{n}-value" not in view) is secret, (kind, name, path)


def test_non_secret_fields_named_like_secrets_show() -> None:
    """The instance of issue 13: ``retry_budget.tokens`` was hidden by the name rule."""
    gateway = Gateway(
        "<t>",
        config_text="""
admin: {token: admin-token-for-the-view-test-1}
routing: {retry_budget: {tokens: 77}, cooldown: {max_retry_after: 1234s}}
providers:
  oa: {type: openai, base_url: "https://api.example.com/v1", keys: [{name: key-name-visible, value: sk-proj-hiddenvalue123456}],
       headers: {Authorization: Bearer sk-hiddenheader12345, x-team: visible-team}}
  demo: {type: mock}
models: {m: {deployments: [{provider: oa, model: gpt}]}}
keys: [{name: token-holder, hash: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}]
""",
    )
    view = redacted_config(gateway.runtime.config)
    assert view["routing"]["retry_budget"]["tokens"] == 77
    assert view["routing"]["cooldown"]["max_retry_after"] == 1234
    assert view["keys"][0]["name"] == "token-holder" and view["keys"][0]["hash"] == REDACTED
    provider = view["providers"]["oa"]
    assert provider["keys"][0] == {**provider["keys"][0], "name": "key-name-visible", "value": REDACTED}
    assert provider["headers"] == {"Authorization": REDACTED, "x-team": "visible-team"}
    text = shown(view)
    for secret in ("admin-token-for-the-view", "sk-proj-hiddenvalue", "sk-hiddenheader", "0123456789abcdef"):
        assert secret not in text


def test_the_admin_view_walks_provider_options_with_their_type() -> None:
    """Anthropic's ``max_tokens`` option was hidden by the name rule in ``GET /admin/v1/config``."""
    text = """
admin: {token: admin-token-for-the-view-test-2}
routing: {retry_budget: {tokens: 77}}
providers:
  an: {type: anthropic, keys: [{name: k, value: sk-ant-hiddenvalue-0123456789}], options: {max_tokens: 4321}}
models: {m: {deployments: [{provider: an, model: claude}]}}
"""
    with GatewayServer(text) as gw:
        got = httpx.get(
            gw.url + "/admin/v1/config", headers={"authorization": "Bearer admin-token-for-the-view-test-2"}
        )
    view = got.json()["config"]
    assert view["providers"]["an"]["options"]["max_tokens"] == 4321
    assert view["routing"]["retry_budget"]["tokens"] == 77
    assert view["providers"]["an"]["keys"][0]["value"] == REDACTED
    assert "sk-ant-hiddenvalue" not in got.text and "admin-token-for" not in got.text


def test_untyped_options_keep_the_name_rule_and_urls_are_masked() -> None:
    """A store or logger plugin without ``Options``: its map carries no type, so names decide."""
    tree = {
        "store": {
            "type": "custom",
            "api_token": "untyped-secret-1",
            "endpoint": "https://u:pw12345@x.example/v1?sig=abc",
        },
        "loggers": [{"custom-logger": {"password": "untyped-secret-2", "level": "info"}}],
        "providers": {"r": {"type": "x", "base_url": "redis://:redispass123@cache.internal:6379/0"}},
    }
    view = redacted_config(tree, {})
    assert view["store"]["api_token"] == REDACTED
    assert view["store"]["endpoint"] == "https://x.example/v1?sig=" + REDACTED
    assert view["loggers"][0]["custom-logger"] == {"password": REDACTED, "level": "info"}
    assert view["providers"]["r"]["base_url"] == "redis://cache.internal:6379/0"
    for secret in ("untyped-secret", "pw12345", "redispass123"):
        assert secret not in shown(view)
