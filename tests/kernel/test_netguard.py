"""SSRF guard: refused upstream addresses at config time and at connect time."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from truckllm._internal.config.loader import parse_config
from truckllm._internal.netguard import BlockedAddress, GuardedResolver, NetPolicy, address_problem
from truckllm._internal.plugins import make_plugin_manager
from truckllm.errors import ConfigError

OPEN = NetPolicy()
STRICT = NetPolicy(allow_loopback=False, allow_private=False)


@pytest.mark.parametrize(
    ("address", "open_ok", "strict_ok"),
    [
        ("169.254.169.254", False, False),
        ("fe80::1", False, False),
        ("::ffff:169.254.169.254", False, False),
        ("64:ff9b::a9fe:a9fe", False, False),  # NAT64 of 169.254.169.254
        ("0.0.0.0", False, False),
        ("224.0.0.1", False, False),
        ("127.0.0.1", True, False),
        ("::ffff:127.0.0.1", True, False),
        ("10.0.0.1", True, False),
        ("100.64.0.1", True, False),
        ("2002:0a00:0001::", True, False),  # 6to4 of 10.0.0.1
        ("8.8.8.8", True, True),
        ("2606:4700:4700::1111", True, True),
    ],
)
def test_address_policy(address: str, open_ok: bool, strict_ok: bool) -> None:
    ip = ipaddress.ip_address(address)
    assert (address_problem(ip, OPEN) is None) == open_ok
    assert (address_problem(ip, STRICT) is None) == strict_ok


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/v1", "http://[::ffff:169.254.169.254]/v1", "http://[fe80::1]/v1"]
)
def test_metadata_base_url_is_refused_at_validation(url: str) -> None:
    text = f"providers:\n  p: {{type: openai, base_url: '{url}', keys: [{{name: a, value: k}}]}}\n"
    with pytest.raises(ConfigError, match="link-local"):
        parse_config(text, make_plugin_manager().registry(), env={})


def test_private_base_url_refused_only_when_configured() -> None:
    text = "providers:\n  p: {type: openai, base_url: 'http://10.0.0.1/v1', keys: [{name: a, value: k}]}\n"
    registry = make_plugin_manager().registry()
    parse_config(text, registry, env={})
    with pytest.raises(ConfigError, match="private address"):
        parse_config("server: {upstream: {allow_private: false}}\n" + text, registry, env={})


class _Fixed:
    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[dict[str, object]]:
        return [{"hostname": host, "host": a, "port": port, "family": family, "proto": 0, "flags": 0}
                for a in self.addresses]

    async def close(self) -> None:
        pass


async def test_a_name_that_resolves_to_metadata_is_refused_at_connect() -> None:
    resolver = GuardedResolver(OPEN, _Fixed("169.254.169.254"))  # type: ignore[arg-type]
    with pytest.raises(BlockedAddress, match="link-local"):
        await resolver.resolve("rebind.example", 80)
    mixed = GuardedResolver(STRICT, _Fixed("127.0.0.1", "93.184.216.34"))  # type: ignore[arg-type]
    assert [r["host"] for r in await mixed.resolve("x.example", 443)] == ["93.184.216.34"]
