"""TruckLLM response cache: a request asked again gets the stored answer, replayed.

Off unless configured. It is a logger-style component (so the kernel builds it with its options
and registers it like any logger); list it under ``loggers:``::

    loggers:
      - cache:
          aliases: [gpt-4o-mini]   # the aliases it caches ("*": every alias)
          keys: [ci, batch]        # the gateway keys it caches for ("*": every key)
          ttl: 1h                  # how long an answer is kept
          max_entry_bytes: 1048576 # a larger answer is not kept
          shared_across_keys: false

Exact match on a canonical serialisation of the request (:func:`canonical`); entries live in the
runtime store's shared state (every worker and replica sees them) with a time to live, and never
serve another gateway key unless ``shared_across_keys`` is true.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import ClassVar

import msgspec

from truckllm import hookimpl
from truckllm.kit.options import Duration
from truckllm.types import CacheContext, CachedAnswer, ChatRequest, RequestRecord
from truckllm_cache.canonical import EXCLUDED, canonical, entry_name

__all__ = ["EXCLUDED", "TRUCKLLM_API", "ResponseCache", "canonical", "entry_name", "register_loggers"]

TRUCKLLM_API = 1
"""The plugin API version this plugin was written for."""


class ResponseCache:
    """The ``cache`` component: answers ``cache_lookup`` and keeps what ``cache_store`` offers.

    :param options: decoded from the ``loggers:`` entry.
    """

    class Options(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
        """``loggers: [{cache: {...}}]``.

        :ivar aliases: the aliases whose answers are cached; ``"*"`` is every alias. Required.
        :ivar keys: the gateway keys whose requests are cached; ``"*"`` is every key (and the
            gateway without keys).
        :ivar ttl: how long an answer is kept.
        :ivar max_entry_bytes: an answer larger than this (stored form) is not kept.
        :ivar shared_across_keys: one key may be served an answer another key's request got.
        """

        aliases: tuple[str, ...]
        keys: tuple[str, ...] = ("*",)
        ttl: Duration = Duration(3600)
        max_entry_bytes: int = 1024 * 1024
        shared_across_keys: bool = False

        def __post_init__(self) -> None:
            if not self.aliases:
                raise ValueError("aliases: name at least one alias (or '*')")
            if self.ttl <= 0:
                raise ValueError("ttl: must be positive")
            if self.max_entry_bytes <= 0:
                raise ValueError("max_entry_bytes: must be positive")

    name: ClassVar[str] = "cache"
    """The name in ``loggers:``."""
    metrics_counters: ClassVar[frozenset[str]] = frozenset(
        {"hits", "misses", "stored", "stored_bytes", "too_large", "store_errors"}
    )
    """Every figure is a counter."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self._aliases = frozenset(options.aliases)
        self._keys = frozenset(options.keys)
        self._counts = dict.fromkeys(self.metrics_counters, 0)

    @property
    def metrics(self) -> Mapping[str, float]:
        """Hits, misses, answers stored and their bytes, answers too large to keep, failed writes."""
        return dict(self._counts)

    def applies(self, context: CacheContext) -> bool:
        """Whether this request's alias and gateway key are opted in."""
        if "*" not in self._aliases and context.alias not in self._aliases:
            return False
        return "*" in self._keys or (context.gateway_key is not None and context.gateway_key in self._keys)

    def _name(self, request: ChatRequest, context: CacheContext) -> str | None:
        if not self.applies(context):
            return None
        key = None if self.options.shared_across_keys else context.gateway_key
        return entry_name(request, key, shared=self.options.shared_across_keys)

    @hookimpl
    async def cache_lookup(self, request: ChatRequest, context: CacheContext) -> CachedAnswer | None:
        """The stored answer to this request, if any."""
        name = self._name(request, context)
        if name is None:
            return None
        value = await context.storage.get_state(name)
        answer = None
        if value is not None:
            try:
                answer = msgspec.msgpack.decode(value, type=CachedAnswer)
            except msgspec.DecodeError:
                answer = None
        self._counts["hits" if answer is not None else "misses"] += 1
        return answer

    @hookimpl
    async def cache_store(self, request: ChatRequest, context: CacheContext, answer: CachedAnswer) -> None:
        """Keep a complete answer (unless it is too large)."""
        name = self._name(request, context)
        if name is None:
            return
        value = msgspec.msgpack.encode(answer)
        if len(value) > self.options.max_entry_bytes:
            self._counts["too_large"] += 1
            return
        try:
            await context.storage.put_state(name, value, float(self.options.ttl))
        except Exception:
            self._counts["store_errors"] += 1
            raise
        self._counts["stored"] += 1
        self._counts["stored_bytes"] += len(value)

    @hookimpl
    def emit_log(self, record: RequestRecord) -> None:
        """Nothing: the cache reads no records (a logger-style component must have this hook)."""
        return None


@hookimpl
def register_loggers(register: Callable[[str, type], None]) -> None:
    """Offer ``cache`` (configured under ``loggers:``)."""
    register("cache", ResponseCache)
