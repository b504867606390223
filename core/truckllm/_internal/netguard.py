"""Which upstream addresses the gateway may connect to (SSRF guard).

Checked twice: on literal IPs in ``base_url`` when the config is validated, and on every address
a host name resolves to, at connect time (so a name that rebinds to a forbidden address is
refused too). Link-local addresses (cloud metadata services such as 169.254.169.254) and
unspecified / multicast / reserved ones are always refused; loopback and private ranges are
allowed unless ``server.upstream`` says otherwise (local model servers are common). IPv6 forms
that embed an IPv4 address (mapped, NAT64, 6to4, Teredo) are judged by that address.
"""

from __future__ import annotations

import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

__all__ = ["GuardedResolver", "NetPolicy", "address_problem"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")


class NetPolicy:
    """What may be dialled: always no link-local/metadata; loopback and private by choice."""

    def __init__(self, allow_loopback: bool = True, allow_private: bool = True) -> None:
        self.allow_loopback = allow_loopback
        self.allow_private = allow_private


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _SIX_TO_FOUR:
        return ip.sixtofour
    return None


def address_problem(ip: IPAddress, policy: NetPolicy) -> str | None:
    """Why ``ip`` may not be dialled under ``policy``, or ``None`` when it may."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_v4(ip)
        if inner is not None:
            return address_problem(inner, policy)
    if ip.is_link_local:
        return f"{ip} is link-local (cloud metadata services live there)"
    if ip.is_unspecified or ip.is_multicast or ip.is_reserved:
        return f"{ip} is not a unicast address"
    if ip.is_loopback:
        return None if policy.allow_loopback else f"{ip} is loopback"
    if ip.is_private or (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT):
        return None if policy.allow_private else f"{ip} is a private address"
    return None


def host_problem(host: str, policy: NetPolicy) -> str | None:
    """For a literal IP host (config check): why it is refused; names are checked at connect."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        if host.lower() in ("localhost", "localhost.localdomain") and not policy.allow_loopback:
            return f"{host} is loopback"
        return None
    return address_problem(ip, policy)


class BlockedAddress(OSError):
    """The upstream's name resolved only to refused addresses."""


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that drops refused addresses; none left → a connect error."""

    def __init__(self, policy: NetPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self.inner = inner or ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve ``host`` and keep only addresses the policy allows."""
        results = await self.inner.resolve(host, port, family)
        allowed: list[ResolveResult] = []
        reasons: list[str] = []
        for result in results:
            problem = address_problem(ipaddress.ip_address(result["host"]), self.policy)
            if problem is None:
                allowed.append(result)
            else:
                reasons.append(problem)
        if not allowed:
            raise BlockedAddress(f"upstream {host} refused: {'; '.join(reasons) or 'no address'}")
        return allowed

    async def close(self) -> None:
        """Close the inner resolver."""
        await self.inner.close()
