"""Affinity routing: a conversation keeps going to the provider account holding its prompt cache.

Providers cache prompt prefixes per account, so a conversation spread over N keys hits the cache
about 1/N as often. With ``affinity.enabled``, each request gets an affinity key
(:func:`affinity_key`: ``prompt_cache_key``, a client's session header, ``user`` /
``metadata.user_id``, else a hash of the stable prefix: system + tools + first user turn); the
key pins one candidate (deployment, provider key) of the alias in the runtime store (its
:class:`~truckllm._internal.store.StateStore`, shared by every process; in process memory when
the store keeps no state), with a sliding TTL (``affinity.ttl``, per provider:
``affinity.provider_ttl``).

:class:`AffinityBook` (one per gateway: ``Gateway.affinity``) reads the pin (one store read per
request), puts the pinned candidate first when it is usable, and otherwise pins the strategy's
first choice, or another key of the same deployment when that keeps each key's share of the
deployment's live pins within ``max_skew`` of even (:meth:`AffinityBook._new`); a pin is
written only when it changes or when half its TTL has gone. Unusable candidates (cooldown,
ejection, over rpm/tpm) are already out of the usable list, so their pins move on the next
request.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from urllib.parse import quote

import msgspec
from loguru import logger

from truckllm._internal.config.schema import AffinityConfig
from truckllm._internal.dialect_state import MemoryState
from truckllm._internal.schemas.openai import UserMessage
from truckllm._internal.store import StateStore, Store
from truckllm.types import AFFINITY_MOVE_REASONS, AffinityPins, AffinitySnapshot, Candidate, ChatRequest

__all__ = ["SESSION_HEADERS", "AffinityBook", "affinity_key", "ttl_of"]

SESSION_HEADERS = (
    "x-truckllm-session",
    "x-claude-code-session-id",  # Claude Code (2.1.86 on)
    "session-id",  # Codex CLI
    "session_id",  # Codex CLI (older), pi
    "conversation_id",  # Codex CLI (older)
    "x-session-id",  # OpenCode
    "x-session-affinity",  # OpenCode (older)
)
"""Client headers naming a conversation, in the order they are looked at (lower-case)."""

_MAX_ID = 256  # longer ids are hashed like any other; this only bounds what is hashed
_MAX_TRACKED = 100_000  # pins tallied in process for the share cap
_MEMORY_PINS = 100_000  # pins kept in process memory when the store keeps no state


def ttl_of(settings: AffinityConfig, cand: Candidate) -> float:
    """How long a pin to ``cand`` lives: its provider entry's ``provider_ttl``, else ``ttl``
    (at least one second)."""
    return max(float(settings.provider_ttl.get(cand.provider.name, settings.ttl)), 1.0)


class _Pin(msgspec.Struct, array_like=True):
    """A stored pin: the candidate id, its (provider, key, model), and when it was written (wall)."""

    id: str
    provider: str
    key: str
    model: str
    written: float


def _text(raw: object) -> str | None:
    return raw[:_MAX_ID] if isinstance(raw, str) and raw else None


def _unmarked(value: object) -> object:
    """``value`` (builtins) without prompt-cache marks, and a content list of one text part as
    its text: an agent moves its ``cache_control`` mark to the newest turn on every request, and
    the stable prefix is the same conversation whichever part carries the mark."""
    if isinstance(value, dict):
        kept = {k: _unmarked(v) for k, v in value.items() if k != "cache_control"}
        content = kept.get("content")
        if isinstance(content, list) and len(content) == 1 and isinstance(content[0], dict):
            part = content[0]
            if part.get("type") == "text" and isinstance(part.get("text"), str) and len(part) == 2:
                kept["content"] = part["text"]
        return kept
    if isinstance(value, list):
        return [_unmarked(v) for v in value]
    return value


def _prefix_hash(request: ChatRequest) -> str | None:
    """A hash of the request's stable prefix: system/developer messages, tools, the first user
    turn (prompt-cache marks left out: :func:`_unmarked`)."""
    typed = request.typed
    messages = getattr(typed, "messages", None)
    if not messages:
        prompt = getattr(typed, "prompt", None)
        if isinstance(prompt, str) and prompt:
            return hashlib.sha256(prompt.encode()).hexdigest()
        return None
    stable: list[object] = []
    for message in messages:
        stable.append(message)
        if isinstance(message, UserMessage):
            break
    tools = getattr(typed, "tools", None)
    stable.append(None if tools is msgspec.UNSET else tools)
    try:
        encoded = msgspec.json.encode(_unmarked(msgspec.json.decode(msgspec.json.encode(stable))))
    except (TypeError, msgspec.EncodeError, msgspec.DecodeError):
        return None
    return hashlib.sha256(encoded).hexdigest()


def affinity_key(request: ChatRequest) -> str | None:
    """The request's conversation identity (``None``: nothing to pin it by), in order:
    ``prompt_cache_key``, a session header (:data:`SESSION_HEADERS`), ``user``,
    ``metadata.user_id``, a hash of the stable prefix. The source is part of the key."""
    try:
        fields = request.fields()
    except (msgspec.DecodeError, ValueError):
        fields = {}

    def field(name: str) -> object:
        raw = fields.get(name)
        if raw is None:
            return None
        try:
            return msgspec.json.decode(raw)
        except msgspec.DecodeError:
            return None

    found = _text(field("prompt_cache_key"))
    if found:
        return "pck:" + found
    for header in SESSION_HEADERS:
        found = _text(request.headers.get(header))
        if found:
            return "session:" + found
    found = _text(field("user"))
    if found:
        return "user:" + found
    metadata = field("metadata")
    if isinstance(metadata, dict):
        found = _text(metadata.get("user_id"))
        if found:
            return "user:" + found
    prefix = _prefix_hash(request)
    return "prefix:" + prefix if prefix else None


_Pair = tuple[str, str, str]  # (alias, provider, key)


def _pair(alias: str, cand: Candidate) -> _Pair:
    return (alias, cand.provider.name, cand.key.name)


class _Tally:
    """Live pins per (alias, provider key), in this process (for the share cap): the pins this process
    wrote or read, each until its TTL ends, the least recently seen dropped beyond a bound."""

    def __init__(self) -> None:
        self.pins: OrderedDict[str, tuple[_Pair, float]] = OrderedDict()  # name -> (pair, until)
        self.counts: Counter[_Pair] = Counter()

    def expire(self, now: float) -> None:
        """Drop pins whose TTL has ended (they are kept in the order they were last seen)."""
        while self.pins:
            name, (_, until) = next(iter(self.pins.items()))
            if until > now and len(self.pins) <= _MAX_TRACKED:
                break
            self._drop(name)

    def _drop(self, name: str) -> None:
        pair, _ = self.pins.pop(name)
        self.counts[pair] -= 1
        if self.counts[pair] <= 0:
            del self.counts[pair]

    def see(self, name: str, pair: _Pair, until: float) -> None:
        """``name`` pins ``pair`` until ``until``."""
        if name in self.pins:
            self._drop(name)
        self.pins[name] = (pair, until)
        self.counts[pair] += 1


class AffinityBook:
    """One gateway's affinity pins: where they are stored, and the share tally of this process."""

    def __init__(self, clock: Callable[[], float], wall_clock: Callable[[], float]) -> None:
        self.clock = clock
        self.wall_clock = wall_clock
        self.memory = MemoryState(clock, _MEMORY_PINS, 64 * 1024 * 1024)
        self.tally = _Tally()
        self.moves: Counter[str] = Counter()  # why pins were (re)written: new, moved, capped, refresh
        self._writes: set[asyncio.Future[None]] = set()  # pin writes following a failover, in flight

    def snapshot(self) -> AffinitySnapshot:
        """What an admin view or a metrics exporter shows: live pins per alias and provider key
        (this process's view: the pins it wrote or read, until their TTL ends), and pin writes
        by reason since start (every reason of :data:`~truckllm.types.AFFINITY_MOVE_REASONS`)."""
        self.tally.expire(self.clock())
        return AffinitySnapshot(
            live=tuple(
                AffinityPins(alias=alias, provider=provider, key=key, pins=count)
                for (alias, provider, key), count in sorted(self.tally.counts.items())
            ),
            moves={reason: self.moves[reason] for reason in AFFINITY_MOVE_REASONS},
        )

    def backend(self, store: Store | None) -> StateStore:
        """Where pins live: the runtime store when it keeps state, else this process's memory."""
        if store is not None and isinstance(store, StateStore):
            return store
        return self.memory

    @staticmethod
    def name(gateway_key: str | None, alias: str, key: str) -> str:
        """The stored name of one conversation's pin: scoped to the gateway key and the alias."""
        scope = quote(gateway_key, safe="") if gateway_key is not None else "*"
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        return f"affinity:{scope}:{quote(alias, safe='')}:{digest}"

    def prefetch(self, store: Store | None, name: str) -> asyncio.Future[bytes | None]:
        """Start reading ``name``'s pin now (the endpoint does, while the store admits the
        request: the two round trips overlap); :meth:`order` takes the result."""
        return asyncio.ensure_future(self.backend(store).get_state(name))

    async def order(
        self,
        store: Store | None,
        alias: str,
        name: str,
        ordered: Sequence[Candidate],
        settings: AffinityConfig,
        prefetched: asyncio.Future[bytes | None] | None = None,
    ) -> list[Candidate]:
        """``ordered`` (the strategy's order of the usable candidates) with the pinned candidate
        first: the stored pin when it is usable, else a new pin (the strategy's first choice
        whose key is under its share cap). A store failure leaves the strategy's order.
        ``prefetched``: the read :meth:`prefetch` started for ``name``."""
        if not ordered:
            return list(ordered)
        backend = self.backend(store)
        try:
            raw = await (prefetched if prefetched is not None else backend.get_state(name))
        except Exception as exc:
            logger.opt(exception=exc).warning("affinity: the runtime store failed a read; not pinning")
            return list(ordered)
        pin: _Pin | None = None
        if raw is not None:
            try:
                pin = msgspec.msgpack.decode(raw, type=_Pin)
            except msgspec.DecodeError:
                pin = None
        now, wall = self.clock(), self.wall_clock()  # the pin's age is on the wall clock: shared
        self.tally.expire(now)
        chosen = self._pinned(pin, ordered)
        reason = ""
        if chosen is not None:
            assert pin is not None
            ttl = ttl_of(settings, chosen)
            age = max(wall - pin.written, 0.0)
            if age >= ttl / 2:
                reason = "refresh"  # rewritten below: a whole TTL from now
            self.tally.see(name, _pair(alias, chosen), now + (ttl if reason else max(ttl - age, 0.0)))
        else:
            chosen, capped = self._new(alias, ordered, settings)
            reason = "new" if pin is None else "moved"
            if capped:
                self.moves["capped"] += 1
            self.tally.see(name, _pair(alias, chosen), now + ttl_of(settings, chosen))
        if reason:
            self.moves[reason] += 1
            if reason != "refresh":
                logger.debug(
                    "affinity: {} pinned to {}/{} ({})", name, chosen.provider.name, chosen.key.name, reason
                )
            await self._write(backend, name, chosen, ttl_of(settings, chosen))
        return [chosen, *(c for c in ordered if c is not chosen)]

    async def served(self, store: Store | None, alias: str, name: str, cand: Candidate, ttl: float) -> None:
        """The request was served by ``cand``, not by the candidate its pin put first (that one
        failed): the conversation's cache is now warm on ``cand``, so the pin moves there."""
        self.moves["failover"] += 1
        self.tally.see(name, _pair(alias, cand), self.clock() + ttl)
        await self._write(self.backend(store), name, cand, ttl)

    def follow(self, store: Store | None, alias: str, name: str, cand: Candidate, ttl: float) -> None:
        """:meth:`served` without awaiting (the caller has an answer to return at once): in
        process memory the pin moves now; a runtime store's write runs as a task of its own."""
        backend = self.backend(store)
        if backend is self.memory:
            self.moves["failover"] += 1
            self.tally.see(name, _pair(alias, cand), self.clock() + ttl)
            self.memory.put_now(name, self._encoded(cand), ttl)
            return
        task = asyncio.ensure_future(self.served(store, alias, name, cand, ttl))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    def _encoded(self, cand: Candidate) -> bytes:
        value = _Pin(
            id=cand.id,
            provider=cand.provider.name,
            key=cand.key.name,
            model=cand.deployment.model,
            written=self.wall_clock(),
        )
        return msgspec.msgpack.encode(value)

    async def _write(self, backend: StateStore, name: str, cand: Candidate, ttl: float) -> None:
        try:
            await backend.put_state(name, self._encoded(cand), ttl)
        except Exception as exc:
            logger.opt(exception=exc).warning("affinity: the runtime store failed a write")

    @staticmethod
    def _pinned(pin: _Pin | None, ordered: Sequence[Candidate]) -> Candidate | None:
        """The usable candidate ``pin`` names (by id, else by provider, key and model after a reload)."""
        if pin is None:
            return None
        for cand in ordered:
            if cand.id == pin.id:
                return cand
        for cand in ordered:
            same = (cand.provider.name, cand.key.name, cand.deployment.model)
            if same == (pin.provider, pin.key, pin.model):
                return cand
        return None

    def _new(
        self, alias: str, ordered: Sequence[Candidate], settings: AffinityConfig
    ) -> tuple[Candidate, bool]:
        """The candidate a new pin goes to, and whether the share bounds passed over the
        strategy's first choice.

        The strategy chooses the deployment (its first choice's: priority, cost and weights
        across deployments are its business); among that deployment's usable keys, whose live
        pins are ``live`` over ``n`` keys, a key holding fewer than ``live * (1 - max_skew) / n``
        takes the pin first (the strategy's first such), else the strategy's first key holding
        at most ``(live + 1) * (1 + max_skew) / n`` with this one: each key's share of its
        deployment's pins stays within ``max_skew`` of even, so pins cannot starve keys."""
        first = ordered[0]
        group = [c for c in ordered if c.deployment.index == first.deployment.index]
        counts = self.tally.counts
        pairs = {_pair(alias, c) for c in group}
        if len(pairs) < 2:
            return first, False
        live = sum(counts[pair] for pair in pairs)
        floor = live * (1 - settings.max_skew) / len(pairs)
        for cand in group:
            if counts[_pair(alias, cand)] < floor:
                return cand, cand is not first
        bound = max((live + 1) * (1 + settings.max_skew) / len(pairs), 1.0)
        for cand in group:
            if counts[_pair(alias, cand)] + 1 <= bound:
                return cand, cand is not first
        return first, False
