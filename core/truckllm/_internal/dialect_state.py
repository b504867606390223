"""Stored state for stateful dialects: one request's :class:`~truckllm.types.DialectState`.

A dialect that remembers conversations (the Responses API's ``previous_response_id``) reads and
writes opaque values through ``ChatRequest.state``. Names are scoped here, by dialect and gateway
key, so a key never sees another key's values. Values live in the runtime store when it
implements :class:`~truckllm._internal.store.StateStore` (shared by every process), else in a
bounded in-process LRU (:class:`MemoryState`, one per gateway).

Writes are queued by ``put`` and made by :meth:`RequestState.flush`, which the kernel awaits
before an answer's last bytes are sent: a client that asks a follow-up as soon as it has read an
answer always finds what the answer stored.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from urllib.parse import quote

from loguru import logger

from truckllm._internal.store import StateCreate, StateStore, Store
from truckllm.errors import GatewayError
from truckllm.types import ServedBy

__all__ = ["MemoryState", "RequestState", "backend_of"]


class MemoryState:
    """Values with a time to live in this process's memory, the least recently used dropped
    beyond ``max_items`` values or ``max_bytes`` bytes in all (used when the runtime store keeps
    no state)."""

    def __init__(
        self, clock: Callable[[], float], max_items: int, max_bytes: int = 256 * 1024 * 1024
    ) -> None:
        self.clock = clock
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.size = 0  # bytes of the values kept
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def _drop(self, name: str) -> tuple[float, bytes] | None:
        found = self._items.pop(name, None)
        if found is not None:
            self.size -= len(found[1])
        return found

    async def get_state(self, name: str) -> bytes | None:
        """The live value of ``name`` (an expired one is dropped)."""
        found = self._items.get(name)
        if found is None:
            return None
        if found[0] <= self.clock():
            self._drop(name)
            return None
        self._items.move_to_end(name)
        return found[1]

    async def put_state(self, name: str, value: bytes, ttl: float) -> None:
        """Keep ``value`` for ``ttl`` seconds (dropping the oldest beyond ``max_items``)."""
        self.put_now(name, value, ttl)

    def put_now(self, name: str, value: bytes, ttl: float) -> None:
        """:meth:`put_state` without awaiting (it does no I/O)."""
        self._drop(name)
        if len(value) > self.max_bytes:
            return
        self._items[name] = (self.clock() + ttl, value)
        self.size += len(value)
        while len(self._items) > self.max_items or self.size > self.max_bytes:
            self._drop(next(iter(self._items)))

    async def delete_state(self, name: str) -> bool:
        """Drop ``name``; ``True`` when it was live."""
        found = self._drop(name)
        return found is not None and found[0] > self.clock()

    async def create_state(self, name: str, value: bytes, ttl: float) -> bool:
        """Keep ``value`` unless a live value is there (no await in between: atomic here)."""
        if await self.get_state(name) is not None:
            return False
        self.put_now(name, value, ttl)
        return name in self._items


def backend_of(store: Store | None, memory: MemoryState) -> StateStore:
    """The runtime store when it keeps state, else ``memory``."""
    if store is not None and isinstance(store, StateStore):
        return store
    return memory


def _unavailable(exc: Exception) -> GatewayError:
    logger.opt(exception=exc).error("the runtime store failed a state operation")
    return GatewayError(
        503,
        "The gateway's state store is unavailable; try again.",
        type="server_error",
        code="state_unavailable",
        headers={"retry-after": "1"},
    )


_MAX_TTL = 10 * 365 * 86400.0


def _sane_ttl(ttl: float) -> float:
    """``ttl`` within 1 ms .. 10 years (a NaN is 1 ms)."""
    if ttl != ttl:  # NaN
        return 0.001
    return min(max(ttl, 0.001), _MAX_TTL)


class RequestState:
    """One request's :class:`~truckllm.types.DialectState`: names scoped to its dialect and key."""

    __slots__ = ("_backend", "_max_bytes", "_pending", "_prefix", "held", "key", "served_by", "ttl")

    def __init__(
        self, backend: StateStore, dialect: str, key: str | None, ttl: float, max_bytes: int
    ) -> None:
        self.key = key
        self.ttl = ttl
        self.served_by: ServedBy | None = None
        self._backend = backend
        self._max_bytes = max_bytes
        # key names may hold ':' (a config name): quoted, so that no (key, name) pair spells
        # another's; "*" (which quoting never makes) is the open gateway's one shared scope
        scope = quote(key, safe="") if key is not None else "*"
        self._prefix = f"state:{quote(dialect, safe='')}:{scope}:"
        self._pending: dict[str, tuple[bytes, float]] = {}
        self.held = False  # set while output guardrails may still change the answer

    @property
    def queued(self) -> bool:
        """Writes are waiting for :meth:`flush`."""
        return bool(self._pending)

    async def get(self, name: str) -> bytes | None:
        """The value under ``name`` (this request's own queued write first)."""
        queued = self._pending.get(name)
        if queued is not None:
            return queued[0]
        try:
            return await self._backend.get_state(self._prefix + name)
        except Exception as exc:
            raise _unavailable(exc) from None

    def put(self, name: str, value: bytes, ttl: float | None = None) -> None:
        """Queue a write of ``value`` (dropped with a warning beyond ``server.state.max_bytes``)."""
        if len(value) > self._max_bytes:
            logger.warning(
                "not storing {} bytes of dialect state: over server.state.max_bytes ({})",
                len(value),
                self._max_bytes,
            )
            return
        self._pending[name] = (value, self.ttl if ttl is None else ttl)

    async def delete(self, name: str) -> bool:
        """Remove ``name`` now (and any queued write of it)."""
        self._pending.pop(name, None)
        try:
            return await self._backend.delete_state(self._prefix + name)
        except Exception as exc:
            raise _unavailable(exc) from None

    async def create(self, name: str, value: bytes, ttl: float | None = None) -> bool:
        """Store ``value`` under ``name`` now unless a value is there (or queued by this request);
        ``True`` when this call stored it. Atomic across processes when the backend implements
        :class:`~truckllm._internal.store.StateCreate` (Redis ``SET NX``), else a read then a
        write (atomic within one process when the backend is this process's memory). A value over
        ``server.state.max_bytes`` is not stored (``False``, logged)."""
        if len(value) > self._max_bytes:
            logger.warning("not creating {} bytes of dialect state: over server.state.max_bytes", len(value))
            return False
        if name in self._pending:
            return False
        life = _sane_ttl(self.ttl if ttl is None else ttl)
        backend = self._backend
        try:
            if isinstance(backend, StateCreate):
                return await backend.create_state(self._prefix + name, value, life)
            if await backend.get_state(self._prefix + name) is not None:
                return False
            await backend.put_state(self._prefix + name, value, life)
            return True
        except Exception as exc:
            raise _unavailable(exc) from None

    def discard(self) -> None:
        """Drop every queued write: the answer they describe is not the one the client got (an
        output guardrail masked or blocked it), so it must not be stored."""
        self._pending.clear()

    async def flush(self) -> None:
        """Make every queued write (a failed one is logged: the answer itself still goes out).
        While :attr:`held` (output guardrails are still checking a stream) nothing is written:
        the guard flushes or discards at the stream's end."""
        if self.held:
            return
        pending, self._pending = self._pending, {}
        for name, (value, ttl) in pending.items():
            try:
                await self._backend.put_state(self._prefix + name, value, _sane_ttl(ttl))
            except Exception as exc:
                logger.opt(exception=exc).error("the runtime store failed to keep dialect state")
