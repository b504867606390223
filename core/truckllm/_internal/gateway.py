"""The gateway object: the current runtime, live health, the upstream session, background work.

One :class:`Gateway` per app. It owns every piece of mutable state (no module globals): the
runtime snapshot (swapped whole on reload), the health registry (kept across reloads), the
shared aiohttp session, the retry budget and the after-response queue.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
from loguru import logger

from truckllm._internal.affinity import AffinityBook
from truckllm._internal.alerts import Alerts
from truckllm._internal.background import Background, call_each
from truckllm._internal.components import (
    attach,
    build_loggers,
    build_store,
    call_method,
    logger_signature,
    store_signature,
)
from truckllm._internal.config.loader import parse_config, parse_plugins
from truckllm._internal.config.schema import Config
from truckllm._internal.config.source import ConfigSource, TextSource, open_source
from truckllm._internal.credentials import Credentials
from truckllm._internal.dialect_state import MemoryState
from truckllm._internal.guardrails import guards_of
from truckllm._internal.health import Clock, HealthRegistry, KeyState
from truckllm._internal.netguard import GuardedResolver, NetPolicy
from truckllm._internal.plugins import PluginHost, make_plugin_manager
from truckllm._internal.retry_budget import RetryBudget
from truckllm._internal.runtime import Runtime, build_runtime
from truckllm._internal.sessions import AdminSessions
from truckllm._internal.store import CooldownMark, CooldownPush, Store
from truckllm._internal.tasks import stop_task
from truckllm._internal.upload import sweep_stale
from truckllm._internal.view import GatewayView
from truckllm.errors import ConfigError, StartupError
from truckllm.types import Logger

__all__ = ["Gateway", "RetryBudget"]

_MARK_REASONS = frozenset({"rate_limit", "quota"})
"""Cooldown reasons a store's mark may carry through (anything else from the store is "shared")."""
_SPOOL_MIN_AGE = 86400.0
"""Seconds before a spool directory of a live process (or of another host) may be swept."""

DISABLED_MARK = "disabled"
"""The reason of the store mark an operator's ``disable`` leaves: the key is out, in every
process, until an ``enable`` clears the mark."""

OPERATOR_DISABLED = "disabled by an operator"
"""``KeyState.disabled`` of a key an operator took out (``POST .../disable``)."""

DISABLE_SECONDS = 10 * 365 * 86400.0
"""How long a disable mark lives in the store: until an enable, in practice."""


class Gateway:
    """Everything one running gateway holds."""

    def __init__(
        self,
        config_source: str | None = None,
        *,
        config_text: str | None = None,
        env: Mapping[str, str] | None = None,
        extra_plugins: tuple[object, ...] = (),
        autoload: bool | None = None,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        rng: random.Random | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
        watch_interval: float = 1.0,
    ) -> None:
        self.config_source = config_source
        self.source: ConfigSource = (
            TextSource(config_text, config_source or "<config>")
            if config_text is not None
            else open_source(config_source or "config/truckllm.yaml")
        )
        self.env = env
        self.extra_plugins = extra_plugins
        self.autoload = autoload
        self.clock = clock
        self.wall_clock = wall_clock
        self.random = rng or random.Random()
        self.sleep = sleep
        self.health = HealthRegistry(clock)
        self.budget = RetryBudget()
        self.background = Background()
        self.strategy_state: dict[tuple[str, str], dict[str, Any]] = {}
        self.affinity = AffinityBook(clock, wall_clock)  # conversations' pins (kept across reloads)
        self.sessions = AdminSessions(self)  # admin sign-in for mounted pages
        self.alerts = Alerts(self)  # alerts to emit_alert, deduplicated across processes
        self.memory_state = MemoryState(clock, 10_000)  # dialect state when the store keeps none
        self.credentials = Credentials(
            clock, wall_clock, sleep, self.random, on_failure=self.alerts.credentials_failing
        )
        self.session: aiohttp.ClientSession | None = None
        self.in_flight = 0
        self.streams: Counter[str] = Counter()
        self.draining = False
        self.started = False
        self._idle: asyncio.Event | None = None  # made by stop() when it waits for in_flight to be 0
        self.version = 0
        self.store: Store | None = None
        self.loggers: list[tuple[str, Logger]] = []
        self.reloads_ok = 0
        self.reloads_failed = 0
        self.last_reload_ok = True
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sync_task: asyncio.Task[None] | None = None
        self._push_task: asyncio.Task[None] | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self.watch_interval = watch_interval
        self.view = GatewayView(self)
        self.runtime: Runtime = self._build(config_text)

    # --- config ---------------------------------------------------------------------------------

    def _load(self, host: PluginHost, text: str) -> Config:
        return parse_config(text, host.registry(), source=self.source.name, env=self.env)

    def _build(self, text: str | None = None) -> Runtime:
        if text is None:
            text = self.source.read()
        # plugins.allow and plugins.disable are read first: no other plugin is ever imported
        policy = parse_plugins(text, source=self.source.name, env=self.env)
        host = make_plugin_manager(
            policy.disable, self.extra_plugins, autoload=self.autoload, allow=policy.allow
        )
        config = self._load(host, text)
        self.version += 1
        runtime = build_runtime(config, host, self.health, version=self.version, source=self.source.name)
        runtime.extra["text"] = text
        runtime.extra["loaded_at"] = time.time()
        guards_of(runtime)  # guardrails built now: a factory's failure is logged at load, not at a request
        return runtime

    def prepare(self, text: str | None = None) -> Runtime:
        """Build (validate) a runtime from the config source (or ``text``) without applying it.

        Safe to run in a worker thread: it touches nothing the event loop uses.

        :raises ConfigError: the config is invalid (counted as a failed reload).
        """
        try:
            return self._build(text)
        except Exception:
            self.reloads_failed += 1
            self.last_reload_ok = False
            raise

    def install(self, runtime: Runtime) -> Runtime:
        """Swap ``runtime`` in atomically (requests in flight keep the one they started with).

        Loggers are rebuilt when their config changed; a changed ``store:`` takes effect at the
        next restart.
        """
        old = self.runtime
        old_loggers = self.loggers
        if self.started:
            if store_signature(runtime.config) != store_signature(old.config):
                logger.warning("store: section changed; the new store takes effect at the next restart")
            if logger_signature(runtime.config) != logger_signature(old.config):
                self.loggers = build_loggers(runtime.host, runtime.config)
                for _, instance in self.loggers:
                    self._spawn(call_method(instance, "startup", app=self.view))
                for _, instance in old_loggers:
                    self._spawn(call_method(instance, "shutdown", app=self.view))
            attach(runtime.host, self.store, self.loggers)
            self.credentials.sync(runtime)  # new keys' credentials are fetched in the background
        self.runtime = runtime
        self.reloads_ok += 1
        self.last_reload_ok = True
        logger.info("config version {} applied from {}", runtime.version, runtime.source or "<text>")
        return runtime

    def reload(self, text: str | None = None) -> Runtime:
        """Build a runtime from the config source (or ``text``) and swap it in atomically.

        :raises ConfigError: the new config is invalid; the running one stays.
        """
        return self.install(self.prepare(text))

    def apply(self, text: str, persist: bool = True) -> Runtime:
        """Validate and apply a new config text; write it to the source when it is writable.

        :raises ConfigError: invalid; nothing changed.
        :raises PermissionError: valid and applied, but the source cannot be written.
        """
        runtime = self.reload(text)
        if persist:
            self.source.write(text)
        return runtime

    async def apply_off_loop(self, text: str, persist: bool = True) -> Runtime:
        """:meth:`apply`, with the parsing and validation in a worker thread (a large config
        never stalls the event loop); the swap itself happens on the loop."""
        runtime = self.install(await asyncio.to_thread(self.prepare, text))
        if persist:
            self.source.write(text)
        return runtime

    async def _watch(self, interval: float) -> None:
        """Re-read the config source when it changes (every ``interval`` seconds)."""
        while True:
            await asyncio.sleep(interval)
            try:
                text = await self.source.poll()
            except Exception as exc:
                logger.warning("config source {} could not be polled: {}", self.source.name, exc)
                continue
            if text is None:
                continue
            try:
                self.reload(text)
            except ConfigError as exc:
                logger.error(
                    "config change in {} refused; the running config stays:\n{}", self.source.name, exc
                )
            except Exception as exc:
                self.reloads_failed += 1
                self.last_reload_ok = False
                logger.opt(exception=exc).error("config change in {} refused", self.source.name)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- shared state -------------------------------------------------------------------------

    def disable_key(self, provider: str, key: str) -> None:
        """An operator takes a key out here at once, and (through a store mark, applied by every
        process's cooldown sync within a second) everywhere, until an enable."""
        self.health.key(provider, key).disabled = OPERATOR_DISABLED

    async def share_disable(self, provider: str, key: str) -> None:
        """Leave the disable mark in the store (raises what the store raises)."""
        if self.store is None:
            return
        until = self.wall_clock() + DISABLE_SECONDS
        await self.store.mark_cooldown(
            CooldownMark(provider=provider, key=key, until=until, reason=DISABLED_MARK)
        )

    def share_cooldown(self, provider: str, key: str, seconds: float, reason: str) -> None:
        """Tell the other processes (through the store) that a key cools down for ``seconds``."""
        if self.store is None:
            return
        mark = CooldownMark(provider=provider, key=key, until=self.wall_clock() + seconds, reason=reason)
        self._spawn(self._mark(mark))

    async def _mark(self, mark: CooldownMark) -> None:
        assert self.store is not None
        try:
            await self.store.mark_cooldown(mark)
        except Exception as exc:
            logger.bind(plugin="store").warning("cannot share a cooldown: {}", exc)

    async def _sync_cooldowns(self, interval: float = 1.0) -> None:
        """Apply the cooldowns other processes marked (every ``interval`` seconds)."""
        while True:
            await asyncio.sleep(interval)
            await self.sync_cooldowns()

    async def sync_cooldowns(self) -> None:
        """Read the cooldowns marked in the store (by any process) and apply them here.

        A mark is clamped like a ``Retry-After``. A mark that disappeared before its end was
        cleared (an operator's ``enable`` in another process): a cooldown that came only from it
        ends here too. A key enabled here while the store was being read keeps its enable.
        """
        if self.store is None:
            return
        asked = self.clock()
        try:
            marks = await self.store.cooldowns()
        except Exception as exc:
            logger.bind(plugin="store").debug("cooldown sync failed: {}", exc)
            return
        marked = set()
        for mark in marks:
            if self.apply_mark(mark, asked):
                marked.add((mark.provider, mark.key))
        now = self.clock()
        for (provider, key), state in self.health.keys.items():
            if (provider, key) not in marked and state.shared_until > now:
                self._unmark(state, now)

    def apply_mark(self, mark: CooldownMark, asked: float | None = None) -> bool:
        """Apply one cooldown mark from the store (``until`` in the past: the mark was cleared).

        ``asked``: when the mark was read; a key enabled here since keeps its enable. Returns
        whether the mark is in force.
        """
        if (mark.provider, mark.key) not in self.runtime.key_names:
            return False  # a key this config does not have: marks must not grow the registry
        now_wall, now = self.wall_clock(), self.clock()
        remaining = mark.until - now_wall
        state = self.health.key(mark.provider, mark.key)
        if remaining <= 0:
            if state.shared_until > now:
                self._unmark(state, now)
            return False
        if asked is not None and state.enabled_at >= asked:
            return True  # enabled while the store was read: the mark is being cleared
        if mark.reason == DISABLED_MARK:
            state.disabled = OPERATOR_DISABLED
            state.shared_until = max(state.shared_until, now + DISABLE_SECONDS)
            return True
        limit = self.runtime.config.routing.cooldown.max_retry_after
        until = now + min(remaining, limit)
        # the reason is shown to clients ("cooling down ... (rate_limit)"): only the kernel's own words
        reason = mark.reason if mark.reason in _MARK_REASONS else "shared"
        state.cool(now, until - now, reason)
        state.shared_until = max(state.shared_until, until)
        return True

    @staticmethod
    def _unmark(state: KeyState, now: float) -> None:
        """The store's mark for ``state`` was cleared: end a cooldown (or an operator's disable)
        that came only from it."""
        if state.disabled == OPERATOR_DISABLED:
            state.enable(now)
        if state.cooldown_until <= state.shared_until + 1e-6:
            state.cooldown_until = now
            state.cooldown_reason = ""
        state.shared_until = 0.0

    async def _follow_marks(self, store: CooldownPush) -> None:
        """Apply cooldown marks as the store pushes them (stores with ``watch_cooldowns``); the
        once-a-second sync still runs, so a lost push is repaired within a second."""
        delay = 0.5
        while True:
            try:
                await store.watch_cooldowns(self.apply_mark)
                delay = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.bind(plugin="store").debug("cooldown push stopped: {}", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    # --- lifecycle ------------------------------------------------------------------------------

    async def _sweep_uploads(self) -> None:
        """Remove the upload spool directories a crashed process left (see
        :func:`~truckllm._internal.upload.sweep_stale`). One whose process is alive (or of another
        host) is removed only past twice ``server.request_timeout`` (an answer may stream past its
        deadline) and a day at least: another gateway sharing the directory may allow longer."""
        server = self.runtime.config.server
        max_age = max(2 * server.request_timeout, _SPOOL_MIN_AGE)
        removed = await asyncio.to_thread(sweep_stale, server.upload_dir, max_age)
        if removed:
            logger.info("removed {} stale upload spool directories", len(removed))

    async def start(self) -> None:
        """Open the upstream session and start background work (ASGI lifespan start)."""
        if self.started:
            return
        upstream = self.runtime.config.server.upstream
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(NetPolicy(upstream.allow_loopback, upstream.allow_private)),
            limit=0,
            limit_per_host=0,
            ttl_dns_cache=300,
            keepalive_timeout=60,
            enable_cleanup_closed=False,
            family=socket.AF_UNSPEC,
        )
        self.session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=True,
            skip_auto_headers=("User-Agent",),
            timeout=aiohttp.ClientTimeout(total=None),
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),  # an upstream's cookies never ride on another request
        )
        self.background.start()
        await self._sweep_uploads()
        await self.credentials.start(self.runtime)
        self.store = build_store(self.runtime.host, self.runtime.config)
        if self.store is not None:
            await self.store.start()
        self.loggers = build_loggers(self.runtime.host, self.runtime.config)
        attach(self.runtime.host, self.store, self.loggers)
        failures = await call_each(self.runtime.host, "startup", app=self.view)
        if failures:
            name, exc = failures[0]
            await self.background.stop()
            raise StartupError(f"plugin {name!r} failed to start: {type(exc).__name__}: {exc}")
        if self.store is not None:
            self._sync_task = asyncio.get_running_loop().create_task(self._sync_cooldowns())
            if isinstance(self.store, CooldownPush):
                self._push_task = asyncio.get_running_loop().create_task(self._follow_marks(self.store))
        if self.watch_interval:
            self._watch_task = asyncio.get_running_loop().create_task(self._watch(self.watch_interval))
        self.started = True

    async def stop(self, grace: float | None = None) -> None:
        """Drain in-flight requests (up to ``grace`` s), flush records, close the session."""
        if not self.started:
            return
        self.draining = True
        grace = self.runtime.config.server.graceful_timeout if grace is None else grace
        if self.in_flight:
            logger.info("draining {} in-flight requests (grace {}s)", self.in_flight, grace)
            idle = self._idle = asyncio.Event()  # set by leave() when the last request ends
            try:
                async with asyncio.timeout(grace):
                    await idle.wait()
            except TimeoutError:
                logger.warning("{} requests still in flight after {}s grace", self.in_flight, grace)
        await self.background.stop()
        for task in (self._sync_task, self._push_task, self._watch_task):
            await stop_task(task)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.alerts.drain()  # the alerts being sent reach the loggers before they close
        await call_each(self.runtime.host, "shutdown", app=self.view)
        await self.credentials.stop()
        if self.store is not None:
            try:
                await self.store.close()
            except Exception as exc:
                logger.bind(plugin="store").error("store close failed: {}", exc)
        if self.session is not None:
            await self.session.close()
            await asyncio.sleep(0)  # let the connector's transports finish closing
            self.session = None
        self.started = False

    def enter(self) -> None:
        """A request started."""
        self.in_flight += 1
        if self._idle is not None:  # only while stop() waits
            self._idle.clear()

    def leave(self) -> None:
        """A request finished (its response fully sent or abandoned)."""
        self.in_flight -= 1
        if self.in_flight <= 0:
            self.in_flight = 0
            if self._idle is not None:  # only while stop() waits
                self._idle.set()
