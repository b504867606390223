"""Provider credentials fetched and refreshed off the request path (cloud tokens, AWS sessions).

A provider plugin whose ``ProviderSpec.credentials`` is set gets one
:class:`~truckllm.types.CredentialSource` per configured (provider, key) — one per provider for a
keyless one. :class:`Credentials` (one per gateway) builds them for each config version, keeps
the ones whose provider config and key value did not change, refreshes each before serving and
again before it expires, in a background task with jittered backoff on failure, and closes them
when their key leaves the config or the gateway stops.

The request path only reads: :meth:`Credentials.value` is the source's ``current()`` string,
handed to ``transform_request`` as ``api_key``. Whether a key's credential is usable is on its
:class:`~truckllm._internal.health.KeyState` (``credential_until``, on the gateway's clock), so the
selection skips a key whose credential is missing or expired and the "no candidate" error says why.

A 401 from upstream on a refreshed credential (:meth:`Credentials.refused`: revoked, rotated, a
clock skew) takes the key out of selection and refreshes it at once, instead of disabling the key
until a reload; only when the value that refresh fetched is refused as well (within a minute) is
the key disabled like any refused key. A credential that never expires (a static key) is
disabled at its first 401.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import msgspec
from loguru import logger

from truckllm._internal.runtime import Runtime
from truckllm._internal.scrub import Scrubber
from truckllm.errors import CredentialError
from truckllm.types import Candidate, CredentialSource

__all__ = ["MIN_MARGIN", "Credentials", "refresh_at"]

MIN_MARGIN = 60.0
"""Seconds before its expiry a credential is refreshed at least (and 20% of its lifetime)."""
_BACKOFF = (1.0, 60.0)  # first and longest wait after a failed refresh
_FIRST_WAIT = 30.0  # how long start-up waits for the first refresh of every source
_REFUSED_AGAIN = 60.0  # a value a refusal's refresh fetched, refused within this: the credential's fault


def refresh_at(fetched: float, expires: float) -> float:
    """When a credential fetched at ``fetched`` and expiring at ``expires`` is refreshed."""
    if math.isinf(expires):
        return math.inf
    margin = max(MIN_MARGIN, 0.2 * (expires - fetched))
    return max(fetched, expires - margin)


@dataclass
class _Entry:
    """One source and what the kernel knows of it."""

    provider: str
    key: str
    signature: str
    source: CredentialSource
    ready: bool = False  # a refresh succeeded at least once
    expires: float = 0.0  # unix time of the current value's expiry
    task: asyncio.Task[None] | None = None
    first: asyncio.Event = field(default_factory=asyncio.Event)  # set after the first try
    published: float = -math.inf  # when (monotonic) the current value was fetched
    sleeping: bool = False  # the refresh task waits for its next refresh (safe to cancel)
    wanted: bool = False  # a refusal asked for a refresh that has not succeeded yet
    forced: str | None = None  # the value a refresh asked for by a refusal fetched


class Credentials:
    """Every credential source of the running config, refreshed in the background.

    :param clock: the gateway's clock (cooldowns and selection use it).
    :param wall_clock: unix time (sources give their expiry in it).
    :param sleep: the gateway's sleep (virtual in tests).
    :param on_failure: called with ``(provider, key, why)`` when a refresh fails (``why``: the
        :class:`~truckllm.errors.CredentialError`'s words or the exception's type, never more);
        the gateway raises a ``credentials_failing`` alert there. It must not raise.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        rng: random.Random,
        on_failure: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self.clock = clock
        self.wall_clock = wall_clock
        self.sleep = sleep
        self.random = rng
        self.on_failure = on_failure
        self.entries: dict[tuple[str, str], _Entry] = {}
        self.runtime: Runtime | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the gateway's, once started
        self._closing: set[asyncio.Task[None]] = set()  # sources being closed
        self._handed: dict[tuple[str, str], tuple[str, ...]] = {}  # each source's current, previous values
        self._own: Scrubber | None = None  # a scrubber of every value handed out (None: none yet)
        self._merged: tuple[Scrubber, Scrubber, Scrubber] | None = None  # (base, own, union) cached

    def value(self, cand: Candidate) -> str | None:
        """The candidate's current credential, or ``None`` when its provider needs none."""
        entry = self.entries.get((cand.provider.name, cand.key.name))
        if entry is None:
            return None
        return entry.source.current() if entry.ready else ""

    def sync(self, rt: Runtime) -> list[_Entry]:
        """Match the sources to ``rt``: keep unchanged ones, make new ones (their refresh tasks
        started), close removed ones. Returns the new entries."""
        self.runtime = rt
        wanted: dict[tuple[str, str], tuple[str, str]] = {}  # (provider, key) -> (signature, value)
        for name, spec in rt.specs.items():
            if spec.credentials is None:
                continue
            provider_text = msgspec.json.encode(rt.providers[name]).decode()
            keys = [key.name for key in rt.config.providers[name].keys] or ["-"]  # "-": a keyless provider
            for key in keys:
                secret = rt.secrets.get((name, key))
                value = secret.reveal() if secret is not None else ""
                digest = hashlib.sha256(f"{provider_text}\0{key}\0{value}".encode()).hexdigest()
                wanted[(name, key)] = (digest, value)
        created: list[_Entry] = []
        for ident, entry in list(self.entries.items()):
            if wanted.get(ident, ("",))[0] != entry.signature:
                self._drop(ident)
        for ident, (digest, value) in wanted.items():
            if ident in self.entries:
                continue
            name, key = ident
            factory = rt.specs[name].credentials
            assert factory is not None
            state = rt.health.key(name, key)
            state.credential_until = -math.inf  # not usable until its first refresh
            try:
                source = factory(rt.providers[name], value)
            except Exception as exc:
                logger.error(
                    "provider {} key {}: the credential source could not be made ({})",
                    name,
                    key,
                    type(exc).__name__,
                )
                continue
            entry = self.entries[ident] = _Entry(provider=name, key=key, signature=digest, source=source)
            self._begin(entry)
            created.append(entry)
        return created

    def _begin(self, entry: _Entry) -> None:
        """Start ``entry``'s refresh task on the gateway's loop (a reload may run off it)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            if self._loop is None:
                return  # not serving yet: start() begins it
            self._loop.call_soon_threadsafe(self._begin, entry)
            return
        if self.entries.get((entry.provider, entry.key)) is entry and entry.task is None:
            entry.task = asyncio.get_running_loop().create_task(self._keep_fresh(entry))

    def refused(self, provider: str, key: str, started: float) -> bool:
        """The upstream refused (401) the credential an attempt started at ``started``
        (``time.monotonic``) carried. Returns whether that is handled here: the value was
        replaced since, or the key now waits, out of selection, for a refresh started at once.
        ``False`` (disable the key, as any refused key) when the key has no refreshed credential,
        its credential never expires, or the refused value is the one such a refresh fetched,
        within a minute of fetching it (later, it is refreshed again: a minute apart at most)."""
        entry = self.entries.get((provider, key))
        if entry is None or not entry.ready or math.isinf(entry.expires):
            return False
        if started < entry.published:
            return True  # it carried an earlier value; the current one is untried
        if self._current(entry) == entry.forced and time.monotonic() - entry.published < _REFUSED_AGAIN:
            return False  # a fresh value was refused as well (or none can be read): it is the credential
        if self.runtime is not None:
            state = self.runtime.health.key(provider, key)
            state.credential_refused = True
            state.credential_until = -math.inf
        if not entry.wanted:
            entry.wanted = True
            logger.warning(
                "provider {} key {}: the provider refused its credential (401); fetching a fresh one",
                provider,
                key,
            )
            if entry.task is None or entry.task.done() or entry.sleeping:
                if entry.task is not None:
                    entry.task.cancel()
                entry.task, entry.sleeping = None, False
                self._begin(entry)
        return True

    async def start(self, rt: Runtime) -> None:
        """Make every source and wait (up to 30 s) for each one's first refresh."""
        self._loop = asyncio.get_running_loop()
        created = self.sync(rt)
        if created:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_FIRST_WAIT):
                    await asyncio.gather(*(entry.first.wait() for entry in created))

    async def stop(self) -> None:
        """Stop refreshing and close every source (waiting for the closes)."""
        for ident in list(self.entries):
            self._drop(ident)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def _drop(self, ident: tuple[str, str]) -> None:
        entry = self.entries.pop(ident)
        self._handed.pop(ident, None)  # kept scrubbed until the next refresh rebuilds the scrubber
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a reload off the loop: finish on it
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._finish, entry)
            return
        self._finish(entry, loop)

    def _finish(self, entry: _Entry, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Stop ``entry``'s refresh task and close its source (on the gateway's loop)."""
        if entry.task is not None:
            entry.task.cancel()
        closing = (loop or asyncio.get_running_loop()).create_task(self._close(entry))
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    @staticmethod
    async def _close(entry: _Entry) -> None:
        try:
            await entry.source.close()
        except Exception as exc:
            logger.warning(
                "provider {} key {}: closing its credential failed ({})",
                entry.provider,
                entry.key,
                type(exc).__name__,
            )

    def _learn(self, entry: _Entry) -> None:
        """Add the entry's new value to the scrubber (its previous one stays: requests in flight
        may still carry it)."""
        try:
            value = entry.source.current()
        except Exception:
            return
        ident = (entry.provider, entry.key)
        self._handed[ident] = (value, *self._handed.get(ident, ())[:1])
        self._own = Scrubber([v for values in self._handed.values() for v in values])

    def scrubber(self, base: Scrubber) -> Scrubber:
        """``base`` (the config's secrets) joined with every credential value handed out, so that
        an upstream echoing a token it was sent reaches nobody with it."""
        own = self._own
        if own is None:
            return base
        merged = self._merged
        if merged is None or merged[0] is not base or merged[1] is not own:
            merged = self._merged = (base, own, Scrubber.union(base, own))
        return merged[2]

    def _publish(self, entry: _Entry) -> None:
        """Put the entry's expiry on its key's state, on the gateway's clock."""
        rt = self.runtime
        if rt is None:
            return
        left = entry.expires - self.wall_clock()
        state = rt.health.key(entry.provider, entry.key)
        state.credential_refused = False
        state.credential_until = math.inf if math.isinf(entry.expires) else self.clock() + left

    async def _keep_fresh(self, entry: _Entry) -> None:
        """Refresh ``entry`` now, then before each expiry; back off after failures."""
        failures = 0
        while True:
            fetched = self.wall_clock()
            try:
                expires = float(await entry.source.refresh())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the message may hold what the library read: name the type only
                failures += 1
                entry.first.set()
                wait = min(_BACKOFF[1], _BACKOFF[0] * 2 ** (failures - 1))
                wait = self.random.uniform(wait / 2, wait)
                why = str(exc)[:300] if isinstance(exc, CredentialError) else type(exc).__name__
                logger.warning(
                    "provider {} key {}: credential refresh failed ({}); retrying in {:.0f}s",
                    entry.provider,
                    entry.key,
                    why,
                    wait,
                )
                if self.on_failure is not None:
                    self.on_failure(entry.provider, entry.key, why)
                await self._wait(entry, wait)
                continue
            if math.isnan(expires):
                expires = fetched
            failures = 0
            entry.ready = True
            entry.expires = expires
            entry.published = time.monotonic()
            entry.forced, entry.wanted = (self._current(entry) if entry.wanted else None), False
            self._learn(entry)
            self._publish(entry)
            entry.first.set()
            at = refresh_at(fetched, expires)
            if math.isinf(at):
                return
            await self._wait(entry, max(at - self.wall_clock(), 1.0))

    async def _wait(self, entry: _Entry, seconds: float) -> None:
        """Sleep until the entry's next refresh (:meth:`refused` may cut it short)."""
        entry.sleeping = True
        try:
            await self.sleep(seconds)
        finally:
            if asyncio.current_task() is entry.task:  # not a task refused() has replaced
                entry.sleeping = False

    @staticmethod
    def _current(entry: _Entry) -> str | None:
        """The source's current value (``None`` when reading it raises)."""
        try:
            return entry.source.current()
        except Exception:
            return None
