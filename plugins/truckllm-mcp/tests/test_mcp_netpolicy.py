"""Every outbound connection the MCP gateway makes obeys ``server.upstream`` (the policy provider
base URLs obey): the first connection, a name's addresses (a rebinding name included), and a
redirect's target, whoever follows it. A refused address is never dialled: the servers below
count the connections they accept."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpcore2
import httpx2
import pytest
from truckllm_mcp import McpGateway
from truckllm_mcp.net import GuardedBackend, Refused, upstream_http_client

from truckllm._internal.netguard import NetPolicy, address_problem
from truckllm_testing.conformance import wait_for
from truckllm_testing.server import GatewayServer

from .conftest import UpstreamProcess


def policy(loopback: bool = True, private: bool = True) -> Callable[[str], str | None]:
    """The kernel's judgement under ``server.upstream`` (what ``GatewayView.address_problem`` asks)."""
    return lambda address: address_problem(ipaddress.ip_address(address), NetPolicy(loopback, private))


class FakeInner(httpcore2.AsyncNetworkBackend):
    """Records the addresses it was asked to connect to; ``fail`` ones raise ConnectError."""

    def __init__(self, fail: frozenset[str] = frozenset()) -> None:
        self.dialled: list[str] = []
        self.fail = fail

    async def connect_tcp(
        self, host: str, port: int, *args: Any, **kwargs: Any
    ) -> httpcore2.AsyncNetworkStream:
        self.dialled.append(host)
        if host in self.fail:
            raise httpcore2.ConnectError(f"{host} down")
        return httpcore2.AsyncNetworkStream()


# addresses a name resolves to, the policy → the addresses dialled (in order; [] = refused)
CASES = [
    (["169.254.169.254"], {}, []),  # cloud metadata
    (["fe80::1"], {}, []),  # link-local v6
    (["::ffff:169.254.169.254"], {}, []),  # v4-mapped metadata
    (["64:ff9b::a9fe:a9fe"], {}, []),  # NAT64 of the metadata address
    (["0.0.0.0"], {}, []),
    (["224.0.0.1"], {}, []),
    (["127.0.0.1"], {"loopback": False}, []),
    (["::1"], {"loopback": False}, []),
    (["::ffff:127.0.0.1"], {"loopback": False}, []),
    (["10.0.0.5"], {"private": False}, []),
    (["192.168.1.2"], {"private": False}, []),
    (["100.64.0.1"], {"private": False}, []),  # CGNAT
    (["8.8.8.8"], {"loopback": False, "private": False}, ["8.8.8.8"]),
    (["127.0.0.1"], {}, ["127.0.0.1"]),
    (["169.254.169.254", "8.8.8.8"], {}, ["8.8.8.8"]),  # a name with a refused and an allowed address
    (["10.0.0.5", "127.0.0.1"], {"private": False}, ["127.0.0.1"]),
]


@pytest.mark.parametrize(("addresses", "rules", "dialled"), CASES)
async def test_a_connection_dials_only_addresses_the_policy_allows(
    addresses: list[str], rules: dict[str, bool], dialled: list[str]
) -> None:
    inner = FakeInner()

    async def resolve(host: str, port: int) -> list[str]:
        return addresses

    backend = GuardedBackend(policy(**rules), inner=inner, resolve=resolve)
    if not dialled:
        with pytest.raises(httpcore2.ConnectError, match=r"refused by server\.upstream") as caught:
            await backend.connect_tcp("upstream.test", 443)
        assert isinstance(caught.value.__cause__, Refused)
        assert inner.dialled == []
    else:
        await backend.connect_tcp("upstream.test", 443)
        assert inner.dialled == dialled


async def test_an_allowed_address_that_fails_falls_to_the_next_allowed_one() -> None:
    inner = FakeInner(fail=frozenset({"8.8.8.8"}))

    async def resolve(host: str, port: int) -> list[str]:
        return ["8.8.8.8", "169.254.169.254", "1.1.1.1"]

    await GuardedBackend(policy(), inner=inner, resolve=resolve).connect_tcp("upstream.test", 443)
    assert inner.dialled == ["8.8.8.8", "1.1.1.1"]


# --- real connections: a redirect's target is judged like any other ------------------------------------


class Counting:
    """An HTTP server on ``host`` counting accepted connections; ``/go?to=<url>`` answers a 307."""

    def __init__(self, host: str, port: int = 0) -> None:
        self.host = host
        self.wanted = port
        self.accepted = 0
        self.server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        head = await reader.readuntil(b"\r\n\r\n")
        target = head.split(b" ", 2)[1].decode()
        if target.startswith("/go?to="):
            answer = f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {target[7:]}\r\ncontent-length: 0\r\n\r\n"
        else:
            answer = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
        writer.write(answer.encode())
        await writer.drain()
        writer.close()

    async def __aenter__(self) -> Counting:
        self.server = await asyncio.start_server(self._serve, self.host, self.wanted)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def servers() -> AsyncIterator[tuple[Counting, Counting]]:
    """``allowed`` on 127.0.0.1 and ``refused`` on 127.0.0.2 (both loopback on Linux), on the same
    port: a connection to either address would be answered."""
    async with Counting("127.0.0.1") as allowed, Counting("127.0.0.2", allowed.port) as refused:
        yield allowed, refused


def only_first(address: str) -> str | None:
    return None if address == "127.0.0.1" else f"{address} is not 127.0.0.1"


async def names(host: str, port: int) -> list[str]:
    known = {
        "good.test": ["127.0.0.1"],
        "evil.test": ["127.0.0.2"],
        "rebind.test": ["127.0.0.2", "127.0.0.1"],
    }
    return known.get(host, [host])


def client() -> httpx2.AsyncClient:
    return upstream_http_client({}, httpx2.Timeout(5.0), only_first, 1024, resolve=names)


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.2:{port}/",  # a refused literal address
        "http://evil.test:{port}/",  # a name resolving to one
    ],
)
async def test_a_refused_target_is_never_dialled_directly_or_by_a_redirect(
    servers: tuple[Counting, Counting], target: str
) -> None:
    allowed, refused = servers
    url = target.format(port=refused.port)
    async with client() as http:
        with pytest.raises(httpx2.ConnectError, match=r"refused by server\.upstream"):
            await http.get(url)
        # even a client told to follow redirects (the SDK follows none off the origin)
        with pytest.raises(httpx2.ConnectError, match=r"refused by server\.upstream"):
            await http.get(f"http://good.test:{allowed.port}/go?to={url}", follow_redirects=True)
        # and by default, none is followed at all
        answer = await http.get(f"http://good.test:{allowed.port}/go?to={url}")
        assert answer.status_code == 307
    assert refused.accepted == 0 and allowed.accepted == 2


async def test_a_rebinding_name_reaches_only_its_allowed_address(servers: tuple[Counting, Counting]) -> None:
    allowed, refused = servers
    async with client() as http:
        # the refused address comes first, and a server listens there: it would answer if dialled
        answer = await http.get(f"http://rebind.test:{allowed.port}/")
    assert answer.status_code == 200 and allowed.accepted == 1 and refused.accepted == 0


# --- the gateway: its configured servers under server.upstream -------------------------------------------


def gateway(upstream: dict[str, bool], servers: dict[str, Any]) -> str:
    return json.dumps(
        {
            "server": {"upstream": upstream},
            "providers": {"demo": {"type": "mock"}},
            "models": {"m": {"deployments": [{"provider": "demo", "model": "echo"}]}},
            "keys": [{"name": "dev", "value": "tllm_netpolicy_0123456789abc"}],
            "loggers": [
                {
                    "mcp": {
                        "servers": {n: {**s, "connect_timeout": "3s"} for n, s in servers.items()},
                        "access": [{"keys": ["dev"]}],
                        "backoff_base": "30s",
                        "backoff_max": "30s",
                    }
                }
            ],
        }
    )


ALPHA = {"Authorization": "Bearer alpha-upstream-token-7f3c9a2e51"}


@pytest.mark.parametrize(
    ("upstream", "host", "reason"),
    [
        ({"allow_loopback": False}, "127.0.0.1", "127.0.0.1 is loopback"),
        ({"allow_loopback": False}, "localhost", "is loopback"),  # refused once resolved
        ({"allow_loopback": False}, "[::ffff:127.0.0.1]", "127.0.0.1 is loopback"),
    ],
)
def test_a_server_the_policy_refuses_is_down_and_never_dialled(
    tmp_path: Path, upstream: dict[str, bool], host: str, reason: str
) -> None:
    alpha = UpstreamProcess("alpha", tmp_path / "alpha.jsonl").start()
    try:
        servers = {
            "alpha": {"url": f"http://{host}:{alpha.port}/mcp", "headers": ALPHA},
            "meta": {"url": "http://169.254.169.254/mcp"},
        }
        with GatewayServer(gateway(upstream, servers), autoload=True) as gw:
            assert gw.gateway is not None
            component = gw.gateway.view.component(McpGateway)
            assert component is not None
            wait_for(lambda: all(u.state == "down" for u in component.upstreams.values()), 20, "both down")
            alpha_error = component.upstreams["alpha"].error or ""
            # (the words after "server." are scrubbed here: alpha's token contains "upstream")
            assert "refused by server." in alpha_error and reason in alpha_error, alpha_error
            meta_error = component.upstreams["meta"].error or ""
            assert "169.254.169.254 is link-local" in meta_error, meta_error
        assert alpha.events("http") == []  # not one request reached it
    finally:
        alpha.stop()


def test_the_default_policy_still_reaches_loopback_servers_but_never_metadata(tmp_path: Path) -> None:
    alpha = UpstreamProcess("alpha", tmp_path / "alpha.jsonl").start()
    try:
        servers = {
            "alpha": {"url": f"http://localhost:{alpha.port}/mcp", "headers": ALPHA},
            "meta": {"url": "http://169.254.169.254/mcp"},
        }
        with GatewayServer(gateway({}, servers), autoload=True) as gw:
            assert gw.gateway is not None
            component = gw.gateway.view.component(McpGateway)
            assert component is not None
            wait_for(lambda: component.upstreams["alpha"].state == "up", 20, "alpha up")
            wait_for(lambda: component.upstreams["meta"].state == "down", 20, "meta down")
            assert "link-local" in (component.upstreams["meta"].error or "")
        assert alpha.events("http")
    finally:
        alpha.stop()
