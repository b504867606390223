"""TruckLLM store plugin ``redis``: limits, budgets, cooldowns and usage shared through Redis.

Every worker and replica pointed at one Redis shares one view: GCRA rate limits and budget
reservations are checked and taken by one Lua script per request (one round trip, Redis's own
clock), settlements and usage are batched off the hot path, cooldowns are extend-only marks,
published as they are made (:meth:`RedisStore.watch_cooldowns` follows them; the gateway's poll
repairs what a lost subscription missed). While Redis is unreachable the store answers from a per-process
:class:`~truckllm.kit.localstate.LocalState` (``degraded=True``): rate limits per process (open
across processes), budgets denied (closed); writes are kept and sent when Redis is back.

State values (:class:`~truckllm.kit.store.StateStore`: a stateful dialect's stored conversations)
are one Redis string each, ``SET`` with ``PX`` and read with ``GET``: every process sees a value as
soon as it is put. They have no local fallback: while Redis is unreachable they raise
:class:`~truckllm.kit.localstate.StoreUnavailable`.

Every key the store writes expires (see the README's key layout), but a ``total`` budget's.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import redis.asyncio as aioredis
from loguru import logger
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import SSLConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    NoScriptError,
    RedisClusterException,
    RedisError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from truckllm import hookimpl
from truckllm.kit.localstate import (
    GROUP_FIELDS,
    RESERVATION_TTL,
    WINDOW_KEEP,
    Clock,
    LocalState,
    Outage,
    StoreUnavailable,
    UsageBuckets,
    check_admission,
    check_retention,
    sane_decision,
    settled_cost,
    window_end,
)
from truckllm.kit.options import Duration, Secret
from truckllm.kit.store import (
    DEFAULT_USAGE_RETENTION,
    USAGE_COUNTERS,
    Admission,
    CooldownMark,
    Decision,
    Period,
    Settlement,
    UsageQuery,
    UsageReport,
    UsageRow,
    budget_window,
)
from truckllm.kit.tasks import stop_task
from truckllm.types import RequestRecord
from truckllm_store_redis import scripts
from truckllm_store_redis.push import decode_push, encode_clear, encode_mark

__all__ = ["RATE_KEEP", "TRUCKLLM_API", "RedisStore", "SentinelOptions", "register_stores"]

TRUCKLLM_API = 1

RATE_KEEP = 3600.0
"""Seconds a rate key outlives a full bucket (so a late settlement still finds its interval)."""

BUDGET_KEEP = WINDOW_KEEP
"""Seconds a budget window's hash outlives the window (late settlements land in it)."""

_UNREACHABLE = (RedisError, OSError, TimeoutError)
_json = msgspec.json.Encoder()
_log = logger.bind(plugin="store-redis")
_group_decoder = msgspec.json.Decoder(list[str])
_LABEL_FIELDS = tuple(g for g in GROUP_FIELDS if g != "day")
"""A usage hash field's label: the group's values but the day (the hash's), in this order; new
fields are only ever appended, so an older label is a prefix."""


@dataclass
class _BudgetWrite:
    """One budget window's pending settlements: reservations to release, USD to add to spent."""

    release: list[str] = field(default_factory=list)  # request ids
    cancel: list[str] = field(default_factory=list)  # request ids whose admit timed out
    spent: float = 0.0  # >= 0
    expire_at: float = 0.0


@dataclass
class _Pending:
    """Writes waiting for the next flush, merged per key.

    ``cleared`` (operator enables) are sent before ``cooldowns``: a clear drops the marks queued
    before it, and a mark queued after it is kept.
    """

    rates: dict[str, int] = field(default_factory=dict)
    budgets: dict[tuple[str, str], _BudgetWrite] = field(default_factory=dict)
    usage: UsageBuckets = field(default_factory=UsageBuckets)
    cooldowns: list[CooldownMark] = field(default_factory=list)
    cleared: dict[tuple[str, str], None] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rates) + len(self.budgets) + len(self.usage) + len(self.cooldowns) + len(self.cleared)

    def rate(self, key: str, units: int) -> None:
        self.rates[key] = self.rates.get(key, 0) + units

    def budget(
        self,
        key: str,
        window: str,
        expire_at: float,
        release: list[str],
        spent: float,
        cancel: Sequence[str] = (),
    ) -> None:
        entry = self.budgets.setdefault((key, window), _BudgetWrite())
        entry.release += release
        entry.cancel += cancel
        entry.spent += max(spent, 0.0)
        entry.expire_at = max(entry.expire_at, expire_at)

    def clear(self, provider: str, key: str) -> None:
        self.cooldowns = [m for m in self.cooldowns if (m.provider, m.key) != (provider, key)]
        self.cleared[(provider, key)] = None

    def merge(self, newer: _Pending) -> None:
        """Add the writes queued after these (``newer``) to these."""
        for key, units in newer.rates.items():
            self.rate(key, units)
        for (key, window), write in newer.budgets.items():
            self.budget(key, window, write.expire_at, write.release, write.spent, write.cancel)
        for row in newer.usage.drain():
            self.usage.add_row(row)
        for provider, key in newer.cleared:
            self.clear(provider, key)
        self.cooldowns += newer.cooldowns


_Admit = tuple[list[str], list[float | int | str], "asyncio.Future[Any]"]
"""One queued admit: the script's keys and arguments, and the future its reply resolves."""


@dataclass
class _Reservation:
    created_at: float
    items: list[tuple[str, str, float, float]] = field(default_factory=list)  # key, window, USD, expire_at


_REDIRECTED = (MovedError, AskError, TryAgainError, ClusterDownError)
"""What a cluster node answers when it does not serve the slot (now): the command did not run."""

_REROUTE = (*_REDIRECTED, RedisConnectionError, OSError)
"""What a cluster node's own client fails with when the slot moved or the node went away: an
admit is sent again through the cluster client, which follows redirects, retries (as it would
have) and refreshes its view of the topology."""


class _NodeClients:
    """A Redis Cluster's primaries, each through a plain client of its own, for the commands of
    one hash slot (every script and transaction of the store's): no cluster pipeline, no per-command
    routing.

    The node of a slot is the cluster client's (it learns moves and failovers); a node's client is
    dropped (:meth:`forget`) when it answers with a redirect or loses its connection.
    """

    def __init__(self, cluster: Any, make: Callable[[str, int], Any]) -> None:
        self.cluster = cluster
        self.make = make
        self._clients: dict[str, Any] = {}
        self._slots: dict[str, int] = {}

    def client_for(self, key: str) -> Any:
        """The client of the primary that serves ``key``'s slot (made on first use).

        :raises redis.exceptions.RedisClusterException: the cluster client knows no node for it.
        """
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = self.cluster.keyslot(key)
        node = self.cluster.nodes_manager.get_node_from_slot(slot)
        client = self._clients.get(node.name)
        if client is None:
            client = self._clients[node.name] = self.make(node.host, node.port)
        return client

    async def forget(self, client: Any | None = None) -> None:
        """Close ``client`` (every node's when None); the next call opens a new one."""
        for name, known in list(self._clients.items()):
            if client is None or known is client:
                del self._clients[name]
                with contextlib.suppress(Exception):
                    await known.aclose()


class _AdmitPipeline:
    """Concurrent admits share round trips: what queues while calls are in flight goes in the next.

    Each admit is still exactly one run of the admit script, sent once: alone as ``ADMIT``, or with
    the others queued with it as one ``ADMIT_BATCH`` call (one command, one reply). Up to
    ``inflight`` calls are in flight at a time (first come, first sent), so a burst of requests
    never waits in line for connections. In a cluster the call goes straight to the ``{limits}``
    slot's primary (``nodes``); a redirect or a lost connection sends it again through the
    cluster client.
    """

    def __init__(
        self,
        redis: Any,
        inflight: int,
        max_batch: int = 256,
        gate: contextlib.AbstractAsyncContextManager[Any] | None = None,
        nodes: _NodeClients | None = None,
        slot_key: str = "",
    ) -> None:
        self.redis = redis
        self.gate = gate or contextlib.nullcontext()
        self.inflight = inflight
        self.max_batch = max_batch
        self.nodes = nodes
        self.slot_key = slot_key
        self._queue: list[_Admit] = []
        self._active = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, keys: list[str], args: list[float | int | str]) -> asyncio.Future[Any]:
        """Queue one admit; the future resolves to the script's reply (or its error)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((keys, args, future))
        if self._active < self.inflight:
            self._active += 1
            task = loop.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return future

    async def close(self) -> None:
        """Cancel what is in flight (callers get their fallback answers)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = [item for item in self._queue[: self.max_batch] if not item[2].done()]
                del self._queue[: self.max_batch]
                if not batch:
                    continue
                try:
                    async with self.gate:
                        replies = await self._send(batch)
                except Exception as exc:
                    replies = [exc] * len(batch)
                for (_, _, future), reply in zip(batch, replies, strict=True):
                    if future.done():  # the caller gave up (timeout)
                        continue
                    if isinstance(reply, Exception):
                        future.set_exception(reply)
                    else:
                        future.set_result(reply)
        finally:
            self._active -= 1

    async def _send(self, batch: list[_Admit]) -> list[Any]:
        """The batch's replies, through the slot's node when in a cluster (the cluster client when
        that node redirects or fails)."""
        if self.nodes is None:
            return await self._call(self.redis, batch)
        try:
            client = self.nodes.client_for(self.slot_key)
        except (RedisError, RedisClusterException):  # no topology yet: the cluster client finds it
            return await self._call(self.redis, batch)
        try:
            return await self._call(client, batch)
        except _REROUTE:
            await self.nodes.forget(client)
            return await self._call(self.redis, batch)

    @staticmethod
    async def _call(redis: Any, batch: list[_Admit]) -> list[Any]:
        """One EVALSHA (EVAL when Redis lost its script cache): ``ADMIT`` for one admit, else
        ``ADMIT_BATCH``."""
        if len(batch) == 1:
            keys, args, _ = batch[0]
            try:
                return [await redis.evalsha(scripts.ADMIT_SHA, len(keys), *keys, *args)]
            except NoScriptError:
                return [await redis.eval(scripts.ADMIT, len(keys), *keys, *args)]
        all_keys: list[str] = []
        all_args: list[float | int | str] = [len(batch)]
        for keys, args, _ in batch:
            all_keys += keys
            all_args += [len(keys), len(args), *args]
        try:
            replies = await redis.evalsha(scripts.ADMIT_BATCH_SHA, len(all_keys), *all_keys, *all_args)
        except NoScriptError:
            replies = await redis.eval(scripts.ADMIT_BATCH, len(all_keys), *all_keys, *all_args)
        return list(replies)


class SentinelOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``store: sentinel:``: find the primary through Redis Sentinel.

    :ivar master: the name the sentinels monitor the primary as.
    :ivar nodes: the sentinels' ``host:port``.
    :ivar username: ACL user for the sentinels themselves (none: the sentinels need no auth).
    :ivar password: the sentinels' password (a secret).
    """

    master: str
    nodes: list[str]
    username: str | None = None
    password: Secret | None = None

    def __post_init__(self) -> None:
        if not self.master:
            raise ValueError("sentinel.master must name the monitored primary")
        if not self.nodes:
            raise ValueError("sentinel.nodes must list at least one sentinel host:port")
        for node in self.nodes:
            _host_port(node, 26379)


def _host_port(addr: str, default_port: int) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``) split; a missing port is ``default_port``."""
    host, sep, port = addr.rpartition(":")
    if not sep:
        host, port = addr, ""
    if port and not port.isdigit():
        raise ValueError(f"not a host:port: {addr!r}")
    return host.strip("[]") or "127.0.0.1", int(port or default_port)


def _split(batch: _Pending) -> list[_Pending]:
    """``batch`` cut by hash slot: ``{limits}`` (rates, budgets), ``{usage}``, ``{cooldowns}``
    (clears, then marks); empty parts are left out."""
    limits = _Pending(rates=batch.rates, budgets=batch.budgets)
    usage = _Pending(usage=batch.usage)
    cooldowns = _Pending(cooldowns=batch.cooldowns, cleared=batch.cleared)
    return [part for part in (limits, usage, cooldowns) if len(part)]


def _expire_at(period: Period, now: float) -> float:
    end = window_end(period, now)
    return 0.0 if end is None else end + BUDGET_KEEP


class RedisStore:
    """``type: redis``: one view of limits, budgets, cooldowns and usage for every process.

    :param options: the ``store:`` section.
    :param clock: unix time for budget windows and the local fallback (Redis's clock drives GCRA).
    """

    name = "redis"

    class Options(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
        """``store:`` options of ``type: redis``.

        :ivar addr: ``host:port`` (ignored when ``url`` is set).
        :ivar url: ``redis://[user:password@]host:port/db`` or ``rediss://`` for TLS; wins over ``addr``.
        :ivar prefix: prepended to every key.
        :ivar username: ACL user.
        :ivar password: the password (a secret: ``${REDIS_PASSWORD}``).
        :ivar db: the database number.
        :ivar timeout: the hot-path budget of :meth:`RedisStore.admit`, connection included.
        :ivar io_timeout: off the hot path: flushes, queries, cooldowns, readiness.
        :ivar flush_interval: how often settlements and usage are sent (a lost Redis: probed every 250 ms).
        :ivar max_connections: connection pool size, all opened at start (callers wait for a free one).
        :ivar usage_retention: how long a UTC day's usage hash is kept (it expires then).
        :ivar cluster: connect to a Redis Cluster (``nodes``, else ``url`` or ``addr``, are where
            its topology is first read); every script and transaction touches one hash slot.
        :ivar nodes: a cluster's startup nodes, ``host:port`` each (with ``cluster: true``).
        :ivar sentinel: find the primary through Redis Sentinel (instead of ``addr``).
        :ivar tls: connect with TLS (``rediss://`` in ``url`` sets it too).
        :ivar ca_file: the CA certificate file that verifies the server (with TLS; none: the
            system's CAs).
        """

        addr: str = "127.0.0.1:6379"
        url: str | None = None
        prefix: str = "truckllm:"
        username: str | None = None
        password: Secret | None = None
        db: int = 0
        timeout: Duration = Duration(0.05)
        io_timeout: Duration = Duration(3.0)
        flush_interval: Duration = Duration(1.0)
        max_connections: int = 16
        usage_retention: Duration = Duration(DEFAULT_USAGE_RETENTION)
        cluster: bool = False
        nodes: list[str] = msgspec.field(default_factory=list)
        sentinel: SentinelOptions | None = None
        tls: bool = False
        ca_file: str | None = None

        def __post_init__(self) -> None:
            check_retention(self.usage_retention)
            if self.cluster and self.sentinel is not None:
                raise ValueError("cluster and sentinel exclude each other")
            if self.nodes and not self.cluster:
                raise ValueError("nodes lists a cluster's startup nodes: set cluster: true")
            if self.cluster and self.db != 0:
                raise ValueError("a Redis Cluster has database 0 only")
            if self.max_connections < 1:
                raise ValueError("max_connections must be at least 1")
            for node in self.nodes:
                _host_port(node, 6379)

    def __init__(self, options: RedisStore.Options | None = None, *, clock: Clock = time.time) -> None:
        self.options = options or RedisStore.Options()
        self.clock = clock
        self.state = LocalState(clock, usage_retention=self.options.usage_retention)
        self.mode = "cluster" if self.options.cluster else "sentinel" if self.options.sentinel else "single"
        """``single``, ``cluster`` or ``sentinel``."""
        # cluster and sentinel pools refuse a connection past max_connections instead of waiting:
        # the store waits here instead (one connection per node per call at most)
        self._gate: contextlib.AbstractAsyncContextManager[Any] = (
            contextlib.nullcontext()
            if self.mode == "single"
            else asyncio.Semaphore(self.options.max_connections)
        )
        self._sentinel: Sentinel | None = None
        self.where = self._where()
        self.outage = Outage("store-redis", f"redis {self.where}", clock)
        p = self.options.prefix
        self._limits = f"{p}{{limits}}:"
        self._cancelled = f"{p}{{limits}}:cancelled"
        self._probe_key = f"{p}{{limits}}:probe"  # never written: the probe's PEXPIRE finds nothing
        self._days_key = f"{p}{{usage}}:days"
        self._day_prefix = f"{p}{{usage}}:day:"
        self._cd_until = f"{p}{{cooldowns}}:until"
        self._cd_reason = f"{p}{{cooldowns}}:reason"
        self._cd_channel = f"{p}{{cooldowns}}:push"
        self._state = f"{p}state:"
        self._pending = _Pending()
        self._reservations: dict[str, _Reservation] = {}
        self._local_ids: dict[str, float] = {}
        self._redis: Any = None
        self._nodes: _NodeClients | None = None
        self._task: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()
        self._swept = 0.0
        self._closed = asyncio.Event()
        self._watches: set[asyncio.Future[None]] = set()
        self._subscriptions = 0
        self.subscribed = asyncio.Event()
        """Set while at least one :meth:`watch_cooldowns` subscription is live."""
        self.watch_idle = 5.0
        """Seconds of silence on a subscription before it is pinged (it must answer within
        ``io_timeout``, or the subscription ends: a dead connection is found without traffic)."""
        self.push_skipped = 0
        """Pushes received and not applied: malformed or hostile messages, or ``apply`` failed."""

    def _where(self) -> str:
        o = self.options
        if o.sentinel is not None:
            return f"sentinel {o.sentinel.master}@{','.join(o.sentinel.nodes)}"
        if o.cluster and o.nodes:
            return f"cluster {','.join(o.nodes)}"
        if o.url is None:
            return f"cluster {o.addr}" if o.cluster else o.addr
        rest = o.url.split("://", 1)[-1].rsplit("@", 1)[-1]
        where = rest.split("/", 1)[0].split("?", 1)[0]
        return f"cluster {where}" if o.cluster else where

    # --- keys (documented in the README) --------------------------------------------------------

    def rate_key(self, key: str) -> str:
        """``<prefix>{limits}:rate:<key>``: hash ``tat``, ``ei`` (seconds per unit)."""
        return f"{self._limits}rate:{key}"

    def budget_key(self, key: str, window: str) -> str:
        """``<prefix>{limits}:budget:<key>:<window>``: hash ``spent``, ``reserved`` (USD)."""
        return f"{self._limits}budget:{key}:{window}"

    def state_key(self, name: str) -> str:
        """``<prefix>state:<name>``: string, a state value (no hash tag: one key per command, so
        values spread over a cluster's slots); expires with the value's ``ttl``."""
        return f"{self._state}{name}"

    def push_channel(self) -> str:
        """``<prefix>{cooldowns}:push``: the channel cooldown marks and clears are published on."""
        return self._cd_channel

    def day_key(self, day: str) -> str:
        """``<prefix>{usage}:day:<YYYY-MM-DD>``: hash ``<json group>\\t<counter>`` -> total."""
        return f"{self._day_prefix}{day}"

    def day_expires_at(self, day: str) -> int:
        """Unix time at which a day's usage hash expires: the end of the day plus ``usage_retention``."""
        start = dt.datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=dt.UTC).timestamp()
        return math.ceil(start + 86400 + self.options.usage_retention)

    # --- lifecycle ------------------------------------------------------------------------------

    def _tls(self) -> dict[str, Any]:
        """The TLS arguments of a connection (none without TLS)."""
        o = self.options
        tls = o.tls or (o.url is not None and o.url.startswith("rediss://"))
        if not tls:
            return {}
        return {"ssl_ca_certs": o.ca_file} if o.ca_file is not None else {}

    def _client(self, max_connections: int | None = None, retries: int = 1) -> Any:
        """A client with a pool of its own (``max_connections``, by default the option);
        ``retries``: by default once, so that a connection Redis closed is reopened at once.

        A ``redis.asyncio.Redis`` (standalone, or the primary Sentinel names), or a
        ``redis.asyncio.cluster.RedisCluster`` (``max_connections`` per node)."""
        o = self.options
        kwargs: dict[str, Any] = {
            "max_connections": max_connections or o.max_connections,
            "socket_timeout": o.io_timeout,
            "socket_connect_timeout": o.io_timeout,
        }
        if o.username is not None:
            kwargs["username"] = o.username
        if o.password is not None:
            kwargs["password"] = o.password.reveal()
        tls = self._tls()
        if self.mode == "cluster":
            return self._cluster_client(kwargs, tls)
        kwargs["retry"] = Retry(NoBackoff(), retries)
        if self.mode == "sentinel":
            return self._sentinel_client(kwargs, tls)
        if o.url is not None:
            kwargs |= {"timeout": None, **tls}
            return aioredis.Redis.from_pool(aioredis.BlockingConnectionPool.from_url(o.url, **kwargs))
        return self._plain_client(*_host_port(o.addr, 6379), kwargs, tls)

    def _plain_client(self, host: str, port: int, kwargs: dict[str, Any], tls: dict[str, Any]) -> Any:
        """A ``redis.asyncio.Redis`` of ``host:port`` with a blocking pool of its own (waiting for
        a connection is bounded by each call's own timeout); TLS when the options ask for it."""
        o = self.options
        kwargs = {**kwargs, "timeout": None}
        if o.tls or (o.url is not None and o.url.startswith("rediss://")):
            kwargs |= {"connection_class": SSLConnection, **tls}
        pool = aioredis.BlockingConnectionPool(host=host, port=port, db=o.db, **kwargs)
        return aioredis.Redis.from_pool(pool)  # owns the pool: aclose() closes it

    def _node_client(self, host: str, port: int) -> Any:
        """A cluster primary's own client (:class:`_NodeClients`): no retry of its own (a failed
        call is sent again through the cluster client)."""
        o = self.options
        kwargs: dict[str, Any] = {
            "max_connections": o.max_connections,
            "socket_timeout": o.io_timeout,
            "socket_connect_timeout": o.io_timeout,
            "retry": Retry(NoBackoff(), 0),
        }
        if o.username is not None:
            kwargs["username"] = o.username
        if o.password is not None:
            kwargs["password"] = o.password.reveal()
        return self._plain_client(host, port, kwargs, self._tls())

    def _cluster_client(self, kwargs: dict[str, Any], tls: dict[str, Any]) -> RedisCluster:
        o = self.options
        # MOVED / ASK are followed and a failover's connection errors retried by the cluster client
        # (3 times, 25 ms apart and doubling: a call gives up within about 0.2 s, and the store's
        # outage probe takes over, with the refreshed topology)
        kwargs |= tls
        kwargs["retry"] = Retry(ExponentialBackoff(cap=0.1, base=0.025), 3)
        if o.nodes or o.url is None:
            startup = [ClusterNode(*_host_port(n, 6379)) for n in (o.nodes or [o.addr])]
            if o.tls:
                kwargs["ssl"] = True
            return RedisCluster(startup_nodes=startup, **kwargs)
        return RedisCluster.from_url(o.url, **kwargs)

    def _sentinel_client(self, kwargs: dict[str, Any], tls: dict[str, Any]) -> aioredis.Redis:
        o = self.options
        assert o.sentinel is not None
        tls_on = o.tls or (o.url is not None and o.url.startswith("rediss://"))
        if self._sentinel is None:
            sentinel_kwargs: dict[str, Any] = {
                "socket_timeout": o.io_timeout,
                "socket_connect_timeout": o.io_timeout,
            }
            if o.sentinel.username is not None:
                sentinel_kwargs["username"] = o.sentinel.username
            if o.sentinel.password is not None:
                sentinel_kwargs["password"] = o.sentinel.password.reveal()
            if tls_on:
                sentinel_kwargs |= {"ssl": True, **tls}
            nodes = [_host_port(n, 26379) for n in o.sentinel.nodes]
            self._sentinel = Sentinel(nodes, sentinel_kwargs=sentinel_kwargs)
        if tls_on:
            kwargs |= {"ssl": True, **tls}
        client: aioredis.Redis = self._sentinel.master_for(o.sentinel.master, db=o.db, **kwargs)
        return client

    async def _ping(self, redis: Any) -> None:
        """Probe the server as the store uses it (:data:`~.scripts.PROBE`: a script writing a key
        under the prefix and reading ``TIME``, so that an ACL user who may not do what an admit
        does is an outage, not a passed ``PING``); in a cluster, also reach the primary of each
        of the store's other slots (an ``EXISTS`` of one key of each: a dead node in the client's
        view of the topology is followed to its successor, as every command is)."""
        await self._probe_script(keys=[self._probe_key], client=redis)
        if self.mode == "cluster":
            for key in (self._days_key, self._cd_until):
                await redis.exists(key)

    async def start(self) -> None:
        """Connect and load the admit script; an unreachable Redis starts the store degraded."""
        self._redis = self._client()
        if self.mode == "cluster":
            self._nodes = _NodeClients(self._redis, self._node_client)
        self._admits = _AdmitPipeline(
            self._redis,
            inflight=max(1, self.options.max_connections // 2),
            gate=self._gate,
            nodes=self._nodes,
            slot_key=self._cancelled,
        )
        self._settle_script = self._redis.register_script(scripts.SETTLE_RATES)
        self._budget_script = self._redis.register_script(scripts.SETTLE_BUDGETS)
        self._mark_script = self._redis.register_script(scripts.MARK_COOLDOWN)
        self._clear_script = self._redis.register_script(scripts.CLEAR_COOLDOWN)
        self._probe_script = self._redis.register_script(scripts.PROBE)
        try:
            async with asyncio.timeout(self.options.io_timeout):
                await self._redis.script_load(scripts.ADMIT)
                await self._warm(self._redis)
        except _UNREACHABLE as exc:
            self.outage.failed(exc)
        self._task = asyncio.get_running_loop().create_task(self._flush_loop(), name="truckllm-store-redis")

    async def _warm(self, redis: Any) -> None:
        """Open every pooled connection now, so that a burst of admits never waits for a connect
        (a cluster: one connection to every primary)."""
        if self.mode == "cluster":
            await self._ping(redis)
            if self._nodes is not None:  # and every connection to the {limits} slot's primary
                await self._warm_pool(self._nodes.client_for(self._cancelled))
            return
        await self._warm_pool(redis)

    @staticmethod
    async def _warm_pool(redis: Any) -> None:
        """Open every connection of a plain client's pool."""
        pool = redis.connection_pool
        size = getattr(pool, "max_connections", 1)
        opening = [pool.get_connection() for _ in range(size)]
        connections = await asyncio.gather(*opening, return_exceptions=True)
        for conn in connections:
            if not isinstance(conn, BaseException):
                await pool.release(conn)
        errors = [c for c in connections if isinstance(c, BaseException)]
        if errors:
            raise errors[0]

    async def close(self) -> None:
        """End every :meth:`watch_cooldowns` (they return), stop the flush task, send everything
        pending (once), close the connections."""
        self._closed.set()
        if self._watches:
            await asyncio.wait(set(self._watches), timeout=self.options.io_timeout)
        task, self._task = self._task, None
        await stop_task(task)
        if self._redis is None:
            return
        try:
            await self.flush(probe=True)
        except _UNREACHABLE as exc:
            self.outage.failed(exc)
        finally:
            if len(self._pending):
                _log.error("closing with Redis unreachable: {} pending writes are lost", len(self._pending))
            client, self._redis = self._redis, None
            await self._admits.close()
            if self._nodes is not None:
                await self._nodes.forget()
            await client.aclose()
            if self._sentinel is not None:
                for node in self._sentinel.sentinels:
                    await node.aclose()

    async def _flush_loop(self) -> None:
        while True:  # while Redis is down, probe at least every 250 ms
            await asyncio.sleep(
                min(self.options.flush_interval, 0.25) if self.outage.down else self.options.flush_interval
            )
            with contextlib.suppress(*_UNREACHABLE):  # recorded in self.outage
                await self.flush(probe=True)
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # a cancel the client library turned into an error
                raise asyncio.CancelledError

    async def flush(self, *, probe: bool = False) -> None:
        """Send pending settlements, usage and cooldowns in one transaction.

        :param probe: while Redis is down, ping it first (otherwise return at once).
        :raises redis.exceptions.RedisError: Redis did not take the batch (it stays pending).
        """
        async with self._flush_lock:
            redis = self._redis
            if redis is None:
                return
            if self.outage.down:
                if not probe:
                    return
                try:
                    async with asyncio.timeout(self.options.io_timeout):
                        if self._nodes is not None:  # the cluster client renews its own connections
                            await self._nodes.forget()  # the nodes' clients: no stale one survives
                        else:
                            await redis.connection_pool.disconnect()  # no stale one survives an outage
                        await self._ping(redis)
                        await self._warm(redis)
                except _UNREACHABLE as exc:
                    self.outage.failed(exc)
                    raise
                self.outage.recovered()
            self._sweep(self.clock())
            if not len(self._pending):
                return
            batch, self._pending = self._pending, _Pending()
            try:
                async with asyncio.timeout(self.options.io_timeout):
                    await self._send(redis, batch)
            except _UNREACHABLE as exc:
                batch.merge(self._pending)
                self._pending = batch
                self.outage.failed(exc)
                raise

    async def _send(self, redis: Any, batch: _Pending) -> None:
        """One transaction (standalone, Sentinel), or one per hash slot (a cluster refuses a
        transaction across slots: ``{limits}``, then ``{usage}``, then ``{cooldowns}``, each on
        its primary's own client: :meth:`_send_part`); what a
        failed transaction and the ones after it held goes back to the pending writes."""
        if self.mode != "cluster":
            async with self._gate, redis.pipeline(transaction=True) as pipe:
                await self._queue_writes(pipe, batch)
                self._refused(await pipe.execute(raise_on_error=False))
            return
        parts = _split(batch)
        for i, part in enumerate(parts):
            try:
                async with self._gate:
                    await self._send_part(redis, part)
            except BaseException:
                unsent = _Pending()
                for rest in parts[i:]:
                    unsent.merge(rest)
                batch.rates, batch.budgets, batch.usage = unsent.rates, unsent.budgets, unsent.usage
                batch.cooldowns, batch.cleared = unsent.cooldowns, unsent.cleared
                raise

    async def _send_part(self, redis: Any, part: _Pending) -> None:
        """One slot's writes in one transaction on the slot's primary's own client (a plain
        MULTI/EXEC: a cluster transaction pipeline runs a thread per queued command); sent again
        through the cluster client when that node redirects (the transaction did not run). A
        lost connection raises (the node's client is dropped; the part stays pending, and the
        outage probe refreshes the topology): a transaction is never sent twice."""
        assert self._nodes is not None
        try:
            client = self._nodes.client_for(self._slot_key(part))
        except (RedisError, RedisClusterException):
            client = None
        if client is not None:
            try:
                async with client.pipeline(transaction=True) as pipe:
                    await self._queue_writes(pipe, part)
                    self._refused(await pipe.execute(raise_on_error=False))
                return
            except _REDIRECTED:
                await self._nodes.forget(client)
            except _UNREACHABLE:
                await self._nodes.forget(client)
                raise
        async with redis.pipeline(transaction=True) as pipe:
            await self._queue_writes(pipe, part)
            self._refused(await pipe.execute(raise_on_error=False))

    def _slot_key(self, part: _Pending) -> str:
        """A key of the slot of a part of :func:`_split`."""
        if part.rates or part.budgets:
            return self._cancelled
        return self._days_key if len(part.usage) else self._cd_until

    @staticmethod
    def _refused(results: list[Any]) -> None:
        errors = [r for r in results if isinstance(r, Exception)]
        if errors:  # a command Redis refused is not retried (the others were applied)
            _log.error("redis refused {} of {} writes: {}", len(errors), len(results), errors[0])

    async def _script(self, pipe: Any, script: Any, keys: list[str], args: list[Any]) -> None:
        """Queue a script call on ``pipe``: ``EVALSHA`` after a ``SCRIPT EXISTS`` check, or in a
        cluster ``EVAL`` (a cluster pipeline cannot load a script a failover lost)."""
        if self.mode == "cluster":
            pipe.eval(script.script, len(keys), *keys, *args)
        else:
            await script(keys=keys, args=args, client=pipe)

    async def _queue_writes(self, pipe: Any, batch: _Pending) -> None:
        if batch.rates:
            keys = [self.rate_key(k) for k in batch.rates]
            await self._script(pipe, self._settle_script, keys, [RATE_KEEP, *batch.rates.values()])
        for (key, window), write in batch.budgets.items():
            await self._script(
                pipe,
                self._budget_script,
                [self.budget_key(key, window), self._cancelled],
                [repr(write.spent), int(write.expire_at), len(write.cancel), *write.cancel, *write.release],
            )
        now = self.clock()
        days: set[str] = set()
        for row in batch.usage.rows():
            group = row.group
            expires_at = self.day_expires_at(group["day"])
            if expires_at <= now:  # past the retention already (EXPIREAT would delete the whole day)
                continue
            name = self.day_key(group["day"])
            label = _json.encode([group[g] for g in _LABEL_FIELDS]).decode()
            for counter in USAGE_COUNTERS:
                value = getattr(row, counter)
                if value > 0:
                    pipe.hincrby(name, f"{label}\t{counter}", value)
            if row.cost_usd > 0:
                pipe.hincrbyfloat(name, f"{label}\tcost_usd", row.cost_usd)
            if group["day"] not in days:
                days.add(group["day"])
                pipe.expireat(name, expires_at)
        if days:
            pipe.sadd(self._days_key, *days)
            pipe.expire(self._days_key, math.ceil(self.options.usage_retention + 2 * 86400))
        for provider, key in batch.cleared:
            await self._script(
                pipe, self._clear_script, self._cooldown_keys(), self._clear_args(provider, key)
            )
        for mark in batch.cooldowns:
            await self._script(pipe, self._mark_script, self._cooldown_keys(), self._mark_args(mark))

    def _sweep(self, now: float) -> None:
        if now - self._swept < 60.0:
            return
        self._swept = now
        for rid in [r for r, res in self._reservations.items() if res.created_at < now - RESERVATION_TTL]:
            for key, window, amount, expire_at in self._reservations.pop(rid).items:
                self._pending.budget(key, window, expire_at, [rid], amount)
        for rid in [r for r, at in self._local_ids.items() if at < now - RESERVATION_TTL]:
            del self._local_ids[rid]

    # --- the hot path: one round trip ------------------------------------------------------------

    async def admit(self, admission: Admission) -> Decision:
        """Check and take every rate limit and budget of one request in one Lua call.

        While Redis is unreachable (or slower than ``timeout``) the answer comes from this
        process's state with ``degraded=True``: rate limits per process, budgets denied.
        """
        if not admission.rates and not admission.budgets:
            return Decision(allowed=True)
        check_admission(admission)
        redis = self._redis
        if redis is None or self.outage.down:
            return self._fallback(admission)
        now = self.clock()
        keys: list[str] = []
        args: list[float | int | str] = [
            len(admission.rates),
            len(admission.budgets),
            RATE_KEEP,
            admission.request_id,
        ]
        for rate in admission.rates:
            keys.append(self.rate_key(rate.key))
            args += [rate.period / rate.rate, rate.burst if rate.burst is not None else rate.rate, rate.cost]
        items: list[tuple[str, str, float, float]] = []
        for budget in admission.budgets:
            window = budget_window(budget.period, now)
            expire_at = _expire_at(budget.period, now)
            keys.append(self.budget_key(budget.key, window))
            args += [budget.limit, budget.amount, int(expire_at)]
            items.append((budget.key, window, budget.amount, expire_at))
        if items:
            keys.append(self._cancelled)
        try:
            async with asyncio.timeout(self.options.timeout):
                reply = await self._admits.submit(keys, args)
        except _UNREACHABLE as exc:
            self.outage.failed(exc, slow=isinstance(exc, TimeoutError | RedisTimeoutError))
            # the script may still run (a slow Redis, a client retry after a failover): the next
            # flush cancels the request, releasing what it reserved or keeping it from reserving
            for key, window, _, expire_at in items:
                self._pending.budget(key, window, expire_at, [], 0.0, cancel=[admission.request_id])
            return self._fallback(admission)
        if self.outage.slow:
            self.outage.recovered()
        decision = sane_decision(admission, self._decision(admission, reply))
        if decision.allowed and items:
            reservation = self._reservations.setdefault(admission.request_id, _Reservation(created_at=now))
            reservation.items += items
        return decision

    @staticmethod
    def _decision(admission: Admission, reply: list[Any]) -> Decision:
        checks = [r.key for r in admission.rates] + [b.key for b in admission.budgets]
        allowed, index, retry = int(reply[0]), int(reply[1]), reply[2]
        values = [float(v) for v in reply[3:]]
        if allowed:
            return Decision(allowed=True, remaining=dict(zip(checks, values, strict=True)))
        key = checks[index - 1]
        is_rate = index <= len(admission.rates)
        return Decision(
            allowed=False,
            denied_by=key,
            kind="rate" if is_rate else "budget",
            retry_after=float(retry) if retry else None,
            remaining={key: values[0]},
        )

    def _fallback(self, admission: Admission) -> Decision:
        decision = self.state.admit_fallback(admission)
        if decision.allowed:
            self._local_ids[admission.request_id] = self.clock()
        return decision

    # --- off the hot path -----------------------------------------------------------------------

    async def settle(self, settlement: Settlement) -> None:
        """Queue a request's corrections for the next flush (no I/O here)."""
        if self._local_ids.pop(settlement.request_id, None) is not None:
            self.state.settle(settlement)  # admitted from the local fallback
            return
        now = self.clock()
        for key, units in settlement.rate_adjust.items():
            if units:
                self._pending.rate(key, units)
        reservation = self._reservations.pop(settlement.request_id, None)
        items = reservation.items if reservation is not None else []
        last = {key: i for i, (key, *_) in enumerate(items)}  # the correction goes to the latest window
        rid = [settlement.request_id]
        for i, (key, window, amount, expire_at) in enumerate(items):
            correction = settlement.budget_adjust.get(key)
            adjust = correction[1] if correction is not None and last[key] == i else 0.0
            self._pending.budget(key, window, expire_at, rid, settled_cost(amount, adjust))
        for key, (period, adjust) in settlement.budget_adjust.items():
            if key not in last and 0 < adjust < math.inf:  # no reservation: a refund is dropped
                self._pending.budget(key, budget_window(period, now), _expire_at(period, now), [], adjust)

    def _cooldown_keys(self) -> list[str]:
        return [self._cd_until, self._cd_reason]

    @staticmethod
    def _member(provider: str, key: str) -> str:
        return _json.encode([provider, key]).decode()

    def _mark_args(self, mark: CooldownMark) -> list[str | float | bytes]:
        member = self._member(mark.provider, mark.key)
        return [member, mark.until, mark.reason, self._cd_channel, encode_mark(mark)]

    def _clear_args(self, provider: str, key: str) -> list[str | bytes]:
        return [self._member(provider, key), self._cd_channel, encode_clear(provider, key)]

    async def mark_cooldown(self, mark: CooldownMark) -> None:
        """Share a cooldown now (extend-only) and publish it, in one round trip; while Redis is
        down it is kept and sent (and published) later. A mark whose ``until`` is not a finite
        number is ignored."""
        if not math.isfinite(mark.until):
            return
        self.state.mark_cooldown(mark)
        redis = self._redis
        if redis is None or self.outage.down:
            self._pending.cooldowns.append(mark)
            return
        slot = (mark.provider, mark.key)
        cleared = slot in self._pending.cleared  # a clear from an outage not flushed yet goes first
        try:
            async with asyncio.timeout(self.options.io_timeout), self._gate:
                if cleared:
                    args = self._clear_args(*slot)
                    await self._clear_script(keys=self._cooldown_keys(), args=args, client=redis)
                    self._pending.cleared.pop(slot, None)
                await self._mark_script(keys=self._cooldown_keys(), args=self._mark_args(mark), client=redis)
        except _UNREACHABLE as exc:
            self.outage.failed(exc)
            self._pending.cooldowns.append(mark)

    async def clear_cooldown(self, provider: str, key: str) -> None:
        """Remove a key's mark now (an operator's ``enable``) and publish the clear, in one round
        trip; while Redis is down the clear is kept and sent, before any later mark, when it is
        back."""
        self.state.clear_cooldown(provider, key)
        redis = self._redis
        if redis is None or self.outage.down:
            self._pending.clear(provider, key)
            return
        pending = self._pending
        pending.cooldowns = [m for m in pending.cooldowns if (m.provider, m.key) != (provider, key)]
        try:
            async with asyncio.timeout(self.options.io_timeout), self._gate:
                await self._clear_script(
                    keys=self._cooldown_keys(), args=self._clear_args(provider, key), client=redis
                )
        except _UNREACHABLE as exc:
            self.outage.failed(exc)
            self._pending.clear(provider, key)

    async def cooldowns(self) -> Sequence[CooldownMark]:
        """Every cooldown in force in Redis (this process's own marks while it is unreachable)."""
        redis = self._redis
        if redis is None or self.outage.down:
            return self.state.cooldowns()
        now = self.clock()
        try:
            async with (
                asyncio.timeout(self.options.io_timeout),
                self._gate,
                redis.pipeline(transaction=False) as pipe,
            ):
                pipe.zrangebyscore(self._cd_until, f"({now!r}", "+inf", withscores=True)
                pipe.hgetall(self._cd_reason)
                marks, reasons = await pipe.execute()
        except _UNREACHABLE as exc:
            self.outage.failed(exc)
            return self.state.cooldowns()
        out = []
        for member, until in marks:
            if not math.isfinite(until):
                continue
            provider, key = _group_decoder.decode(member)
            reason = reasons.get(member, b"").decode()
            out.append(CooldownMark(provider=provider, key=key, until=float(until), reason=reason))
        return sorted(out, key=lambda m: (m.provider, m.key))

    async def watch_cooldowns(self, apply: Callable[[CooldownMark], object]) -> None:
        """Call ``apply`` with every cooldown mark and clear (``until`` 0) any process publishes,
        own ones included, from a subscription of its own (one connection, outside the pool).

        A message that is not a valid push (:func:`~truckllm_store_redis.push.decode_push`) is
        skipped and counted in :attr:`push_skipped`, as is one whose ``apply`` raised. Returns at
        once while Redis is unreachable and when :meth:`close` is called; raises when the
        subscription is lost (a closed connection, or no answer to a ping within ``io_timeout``
        after ``watch_idle`` seconds of silence). The caller restarts it; the gateway's
        once-a-second :meth:`cooldowns` poll repairs what was missed meanwhile.
        """
        if self._redis is None or self.outage.down or self._closed.is_set():
            return
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[None] = loop.create_future()
        self._watches.add(finished)
        client = self._client(max_connections=1, retries=0)  # a lost connection ends the watch
        reader = loop.create_task(self._follow(client, apply), name="truckllm-store-redis-watch")
        closing = loop.create_task(self._closed.wait())
        try:
            await asyncio.wait({reader, closing}, return_when=asyncio.FIRST_COMPLETED)
            if reader.done():
                reader.result()  # raises what ended the subscription
        finally:
            await stop_task(closing)
            await stop_task(reader)
            await client.aclose()
            self._watches.discard(finished)
            finished.set_result(None)

    async def _follow(self, client: aioredis.Redis, apply: Callable[[CooldownMark], object]) -> None:
        """Subscribe, then apply each push until the connection is lost."""
        io_timeout = self.options.io_timeout
        async with client.pubsub() as pubsub:
            async with asyncio.timeout(io_timeout):
                await pubsub.subscribe(self._cd_channel)
                while (await self._next(pubsub, io_timeout))["type"] != "subscribe":
                    pass  # the confirmation: from here on, every push reaches this subscription
            self._live(+1)
            try:
                pinged = False
                while True:
                    try:
                        message = await self._next(pubsub, io_timeout if pinged else self.watch_idle)
                    except RedisTimeoutError:
                        if pinged:
                            raise
                        async with asyncio.timeout(io_timeout):
                            await pubsub.ping()
                        pinged = True
                        continue
                    pinged = False  # anything received shows the connection is alive
                    if message["type"] == "message":
                        self._take(message["data"], apply)
            finally:
                self._live(-1)

    @staticmethod
    async def _next(pubsub: Any, wait: float) -> dict[str, Any]:
        """The next message of any type on ``pubsub``.

        :raises redis.exceptions.TimeoutError: nothing arrived within ``wait`` seconds.
        """
        message: dict[str, Any] | None = await pubsub.get_message(timeout=wait)
        if message is None:
            raise RedisTimeoutError(f"nothing received from redis in {wait:g}s")
        return message

    def _live(self, change: int) -> None:
        self._subscriptions += change
        if self._subscriptions > 0:
            self.subscribed.set()
        else:
            self.subscribed.clear()

    def _take(self, data: object, apply: Callable[[CooldownMark], object]) -> None:
        """Apply one push; a malformed one, or one ``apply`` fails on, is skipped and counted."""
        mark = decode_push(data)
        if mark is None:
            self.push_skipped += 1
            _log.debug("skipped a malformed cooldown push ({} so far)", self.push_skipped)
            return
        try:
            apply(mark)
        except Exception as exc:
            self.push_skipped += 1
            _log.warning("applying a pushed cooldown of {}/{} failed: {}", mark.provider, mark.key, exc)

    async def usage(self, query: UsageQuery) -> UsageReport:
        """Aggregated usage read from the per-day hashes (what is still pending is not included).

        :raises truckllm.kit.localstate.StoreUnavailable: Redis is unreachable.
        """
        redis = self._redis
        if redis is None or self.outage.down:
            raise StoreUnavailable(f"redis {self.where} is unreachable")
        first_day = self.state.first_usage_day(self.clock())
        try:
            async with asyncio.timeout(self.options.io_timeout), self._gate:
                members = await redis.smembers(self._days_key)
                days = sorted(d.decode() if isinstance(d, bytes) else d for d in members)
                old = [d for d in days if d < first_day]
                if old:  # their hashes have expired
                    await redis.srem(self._days_key, *old)
                days = [d for d in days if d >= first_day and _day_overlaps(d, query)]
                async with redis.pipeline(transaction=False) as pipe:
                    for day in days:
                        pipe.hgetall(self.day_key(day))
                    hashes = await pipe.execute()
        except _UNREACHABLE as exc:
            self.outage.failed(exc)
            raise StoreUnavailable(f"redis {self.where} is unreachable: {exc}") from exc
        buckets = UsageBuckets()
        for day, fields in zip(days, hashes, strict=True):
            rows: dict[bytes, UsageRow] = {}
            for name, value in fields.items():
                label, _, counter = name.rpartition(b"\t")
                row = rows.get(label)
                if row is None:
                    # a label written before a field was added lacks it: that field is "-"
                    values = _group_decoder.decode(label)
                    row = rows[label] = UsageRow(
                        group={**dict(zip(_LABEL_FIELDS, values, strict=False)), "day": day}
                    )
                if counter == b"cost_usd":
                    cost = float(value)
                    row.cost_usd = cost if 0 < cost < math.inf else 0.0
                elif counter.decode() in USAGE_COUNTERS:
                    setattr(row, counter.decode(), max(int(value), 0))
            for row in rows.values():
                buckets.add_row(row)
        return buckets.query(query)

    # --- state values (StateStore) -------------------------------------------------------------

    def _state_client(self) -> Any:
        redis = self._redis
        if redis is None or self.outage.down:
            raise StoreUnavailable(f"redis {self.where} is unreachable")
        return redis

    def _state_failed(self, exc: BaseException) -> StoreUnavailable:
        self.outage.failed(exc, slow=isinstance(exc, TimeoutError | RedisTimeoutError))
        return StoreUnavailable(f"redis {self.where} is unreachable: {exc}")

    async def get_state(self, name: str) -> bytes | None:
        """``GET`` the value of ``name``; ``None`` when absent or expired (Redis expires it).

        :raises truckllm.kit.localstate.StoreUnavailable: Redis is unreachable (at once during an
            outage, else after ``io_timeout`` at most).
        """
        redis = self._state_client()
        try:
            async with asyncio.timeout(self.options.io_timeout), self._gate:
                value = await redis.get(self.state_key(name))
        except _UNREACHABLE as exc:
            raise self._state_failed(exc) from exc
        if value is None:
            return None
        return value if isinstance(value, bytes) else value.encode()  # str only from a decoding client

    async def put_state(self, name: str, value: bytes, ttl: float) -> None:
        """``SET`` ``value`` under ``name`` with ``PX`` = ``ttl`` in milliseconds (at least 1),
        replacing any.

        :raises ValueError: ``ttl`` is not a finite number.
        :raises truckllm.kit.localstate.StoreUnavailable: Redis is unreachable.
        """
        if not math.isfinite(ttl):
            raise ValueError(f"state ttl must be a finite number of seconds, not {ttl!r}")
        redis = self._state_client()
        try:
            async with asyncio.timeout(self.options.io_timeout), self._gate:
                await redis.set(self.state_key(name), bytes(value), px=max(1, math.ceil(ttl * 1000)))
        except _UNREACHABLE as exc:
            raise self._state_failed(exc) from exc

    async def create_state(self, name: str, value: bytes, ttl: float) -> bool:
        """``SET`` ``value`` under ``name`` with ``NX`` and ``PX`` = ``ttl`` in milliseconds (at
        least 1): stored only where no value is; ``True`` when this call stored it.

        :raises ValueError: ``ttl`` is not a finite number.
        :raises truckllm.kit.localstate.StoreUnavailable: Redis is unreachable.
        """
        if not math.isfinite(ttl):
            raise ValueError(f"state ttl must be a finite number of seconds, not {ttl!r}")
        redis = self._state_client()
        try:
            async with asyncio.timeout(self.options.io_timeout), self._gate:
                stored = await redis.set(
                    self.state_key(name), bytes(value), px=max(1, math.ceil(ttl * 1000)), nx=True
                )
        except _UNREACHABLE as exc:
            raise self._state_failed(exc) from exc
        return bool(stored)

    async def delete_state(self, name: str) -> bool:
        """``DEL`` ``name``; ``True`` when a value (unexpired: Redis drops expired ones) was deleted.

        :raises truckllm.kit.localstate.StoreUnavailable: Redis is unreachable.
        """
        redis = self._state_client()
        try:
            async with asyncio.timeout(self.options.io_timeout), self._gate:
                deleted = await redis.delete(self.state_key(name))
        except _UNREACHABLE as exc:
            raise self._state_failed(exc) from exc
        return int(deleted) > 0

    async def ready(self) -> dict[str, Any]:
        """``{"ok": True, "redis": "ok"}`` after a PING, else ``{"ok": False, "redis": "unreachable"}``."""
        details: dict[str, Any] = {
            "store": self.name,
            "addr": self.where,
            "pending": len(self._pending),
            "push_subscriptions": self._subscriptions,
            "push_skipped": self.push_skipped,
        }
        redis = self._redis
        if redis is not None:
            try:
                async with asyncio.timeout(self.options.io_timeout), self._gate:
                    await self._ping(redis)
            except _UNREACHABLE as exc:
                self.outage.failed(exc)
            else:
                self.outage.recovered()  # the flush task sends what is pending
                return {"ok": True, "redis": "ok", **details}
        return {
            "ok": False,
            "redis": "unreachable",
            "since": self.outage.since,
            "error": self.outage.error or "not started",
            **details,
        }

    @hookimpl
    def store_usage(self, record: RequestRecord) -> None:
        """Count a finished request; sent with the next flush."""
        self._pending.usage.add_record(record)


def _day_overlaps(day: str, query: UsageQuery) -> bool:
    import datetime as dt

    start = dt.datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=dt.UTC).timestamp()
    if query.since is not None and start + 86400 <= query.since:
        return False
    return query.until is None or start < query.until


@hookimpl
def register_stores(register: Callable[[str, type], None]) -> None:
    """Register ``type: redis``."""
    register("redis", RedisStore)
