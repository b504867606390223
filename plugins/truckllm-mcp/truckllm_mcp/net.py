"""The HTTP client the gateway dials streamable-HTTP MCP servers with: the gateway's network
policy on every connection, and a bound on the bytes of every answer.

- **Policy.** Every TCP connection (the first, a reconnection, one a redirect leads to) resolves
  the host itself and judges every address with the gateway's ``server.upstream`` policy
  (``GatewayView.address_problem``: never link-local / metadata addresses, loopback and private
  ones as configured) before connecting, and connects only to an address the policy allows, so
  a name that resolves (or rebinds) to a refused address is refused at connect time. No proxy is
  taken from the environment.
- **Bounds.** An answer that is not an event stream (JSON, an error page) is read at most
  ``max_bytes`` bytes: one byte more fails the read with :class:`AnswerTooLarge` before anything
  is parsed (the SDK caps each event of an event stream at the same size). Answers are asked for
  uncompressed (``Accept-Encoding: identity``) and a compressed one is refused, so that the bound
  counts the bytes that are parsed.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

import anyio
import httpcore2
import httpx2
from httpcore2 import AsyncNetworkBackend, AsyncNetworkStream

__all__ = [
    "AddressJudge",
    "AnswerTooLarge",
    "BoundedTransport",
    "GuardedBackend",
    "Refused",
    "Resolver",
    "upstream_http_client",
]

AddressJudge = Callable[[str], "str | None"]
"""``address → why it may not be dialled`` (``None``: it may): ``GatewayView.address_problem``."""

Resolver = Callable[[str, int], "Any"]
"""``(host, port) → awaitable list of IP addresses`` (injected in tests)."""

TOO_LARGE = "answer exceeded"
"""Words every :class:`AnswerTooLarge` message carries (how a failed call is told from others)."""


class Refused(OSError):
    """Every address of the upstream's host is refused by the gateway's network policy."""


class AnswerTooLarge(httpx2.StreamError):
    """An upstream answer was larger than the bound, or compressed (read no further).

    A :class:`httpx2.StreamError`, so that the SDK fails the one request it answered (a JSON-RPC
    parse error naming this message) rather than the whole connection.
    """


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (TCP), in the resolver's order, without duplicates."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: dict[str, None] = {}
    for info in infos:
        seen.setdefault(str(info[4][0]), None)
    return list(seen)


class GuardedBackend(AsyncNetworkBackend):
    """An httpcore2 network backend judging every address before it connects.

    :param judge: why an address may not be dialled (``None``: it may), read at each connection
        (the running config's policy, reloads included).
    :param inner: the backend that connects (httpcore2's default).
    :param resolve: resolves a host to its addresses.
    """

    def __init__(
        self,
        judge: AddressJudge,
        inner: AsyncNetworkBackend | None = None,
        resolve: Resolver = system_resolver,
    ) -> None:
        self.judge = judge
        self.inner = inner if inner is not None else httpcore2.AnyIOBackend()
        self.resolve = resolve

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore2's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> AsyncNetworkStream:
        """Connect to the first address of ``host`` the policy allows (TLS still names ``host``).

        :raises httpcore2.ConnectError: no address is allowed (:class:`Refused` as the cause), or
            none of the allowed ones could be connected to.
        """
        try:
            with anyio.fail_after(timeout):
                addresses = await self.resolve(host, port)
        except (OSError, TimeoutError) as exc:
            raise httpcore2.ConnectError(f"cannot resolve {host}: {exc}") from exc
        reasons: list[str] = []
        allowed: list[str] = []
        for address in addresses:
            problem = self.judge(address)
            if problem is None:
                allowed.append(address)
            else:
                reasons.append(problem)
        if not allowed:
            refused = Refused(
                f"upstream {host} refused by server.upstream: {'; '.join(reasons) or 'no address'}"
            )
            raise httpcore2.ConnectError(str(refused)) from refused
        last: Exception | None = None
        for address in allowed:
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except httpcore2.ConnectError as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore2's interface
        socket_options: Iterable[Any] | None = None,
    ) -> AsyncNetworkStream:
        """Never: MCP servers are dialled over TCP only."""
        raise httpcore2.ConnectError("unix sockets are not dialled")

    async def sleep(self, seconds: float) -> None:
        """Sleep (the inner backend's way)."""
        await self.inner.sleep(seconds)


class _Bounded(httpx2.AsyncByteStream):
    """``inner``, failing once more than ``limit`` bytes came through."""

    def __init__(self, inner: httpx2.AsyncByteStream, limit: int, problem: str | None = None) -> None:
        self.inner = inner
        self.limit = limit
        self.problem = problem

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.problem is not None:
            raise AnswerTooLarge(self.problem)
        seen = 0
        async for chunk in self.inner:
            seen += len(chunk)
            if seen > self.limit:
                raise AnswerTooLarge(
                    f"the MCP server's {TOO_LARGE} {self.limit} bytes (max_answer_bytes); read no further"
                )
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


class BoundedTransport(httpx2.AsyncHTTPTransport):
    """httpx2's transport over a :class:`GuardedBackend`, bounding every answer but event streams.

    :param judge: the address policy (see :class:`GuardedBackend`).
    :param max_bytes: the most bytes of one answer read.
    :param resolve: resolves a host (injected in tests).
    """

    def __init__(self, judge: AddressJudge, max_bytes: int, resolve: Resolver = system_resolver) -> None:
        super().__init__(trust_env=False)
        self.max_bytes = max_bytes
        # the default pool, with the guarded backend (httpx2's transport takes no backend itself)
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=httpx2.create_ssl_context(trust_env=False),
            network_backend=GuardedBackend(judge, resolve=resolve),
            max_connections=100,  # httpx2's default limits
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
        )

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send ``request``; its answer's body is bounded (see the module docstring)."""
        response = await super().handle_async_request(request)
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        problem = None
        if encoding not in ("", "identity"):
            problem = f"the MCP server answered compressed ({encoding[:40]}); the gateway asks for identity"
        elif response.headers.get("content-type", "").lower().startswith("text/event-stream"):
            return response  # bounded per event by the SDK (max_sse_event_size)
        stream = response.stream
        assert isinstance(stream, httpx2.AsyncByteStream)
        return httpx2.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_Bounded(stream, self.max_bytes, problem),
            extensions=response.extensions,
        )


def upstream_http_client(
    headers: Mapping[str, str],
    timeout: httpx2.Timeout,
    judge: AddressJudge,
    max_bytes: int,
    resolve: Resolver = system_resolver,
) -> httpx2.AsyncClient:
    """The client one streamable-HTTP upstream is dialled with: ``headers`` on every request,
    the network policy on every connection, answers bounded, no redirect followed by httpx2
    itself (the SDK follows a same-origin one; its connection is judged like any other)."""
    return httpx2.AsyncClient(
        headers={**headers, "accept-encoding": "identity"},
        timeout=timeout,
        transport=BoundedTransport(judge, max_bytes, resolve),
        follow_redirects=False,
        trust_env=False,
    )
