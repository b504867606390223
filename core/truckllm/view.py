"""What lifecycle hooks see of the gateway: live state, never a secret.

``startup(app)`` and ``shutdown(app)`` receive a :class:`GatewayView`, not the gateway: it exposes
the figures a logger or a store reports (health, in flight, queues, reload counts, the running
aliases and providers) and nothing that holds a key value (no config, no secrets). A plugin gets
the secrets config hands to it, in its own options, and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from truckllm.gateway import Gateway

__all__ = ["GatewayView", "RuntimeView"]


class RuntimeView:
    """The running config version as plugins may see it."""

    __slots__ = ("_gateway",)

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    @property
    def version(self) -> int:
        """The config version (1 at start, +1 per applied reload)."""
        return self._gateway.runtime.version

    @property
    def aliases(self) -> Mapping[str, Any]:
        """Alias name → its plan (candidates with providers and key names; no key values)."""
        return self._gateway.runtime.aliases

    @property
    def providers(self) -> Mapping[str, Any]:
        """Provider name → :class:`~truckllm.types.Provider` (type, base URL, options; no keys)."""
        return self._gateway.runtime.providers


class GatewayView:
    """A read-only window on the running gateway for ``startup`` / ``shutdown`` hooks."""

    __slots__ = ("_gateway",)

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    @property
    def runtime(self) -> RuntimeView:
        """The running config's aliases and providers."""
        return RuntimeView(self._gateway)

    @property
    def health(self) -> Any:
        """Every key's and candidate's live state (:class:`truckllm.health.HealthRegistry`)."""
        return self._gateway.health

    @property
    def clock(self) -> Any:
        """The gateway's monotonic clock."""
        return self._gateway.clock

    @property
    def in_flight(self) -> int:
        """Requests being served now."""
        return self._gateway.in_flight

    @property
    def draining(self) -> bool:
        """True once the gateway is stopping for good (not during a reload)."""
        return self._gateway.draining

    @property
    def background(self) -> Any:
        """The after-response queue (size, drops, plugin error counts)."""
        return self._gateway.background

    @property
    def budget(self) -> Any:
        """The retry budget (``denied`` counts refused retries)."""
        return self._gateway.budget

    @property
    def loggers(self) -> list[tuple[str, Any]]:
        """The running logger instances, ``(name, instance)``."""
        return list(self._gateway.loggers)

    @property
    def reloads_ok(self) -> int:
        """Config reloads applied."""
        return self._gateway.reloads_ok

    @property
    def reloads_failed(self) -> int:
        """Config reloads refused."""
        return self._gateway.reloads_failed

    @property
    def last_reload_ok(self) -> bool:
        """Whether the last reload was applied."""
        return self._gateway.last_reload_ok
