"""Calling the request-path hooks: the plugin that registered the type answers, first and directly.

The ``firstresult`` request-path hooks are answered, for one provider type, by the plugin that
registered that type with ``register_providers`` (``transform_request``, ``transform_response``,
``transform_stream``, ``parse_usage``), and for one strategy by the plugin that registered it
with ``register_strategies`` (``select_provider``). Registration gives every type and strategy
exactly one owner: a name registered twice stops start-up with an error naming both plugins
(:func:`truckllm._internal.plugins.make_plugin_manager`). So the :class:`Dispatcher` calls the owner's
implementation first, directly, and the other implementations, in pluggy's order, only when the
owner has none for that hook or returns ``None``.

A route depends on what was registered and nothing else: never on which plugin answered an
earlier call. It is the same with ``TRUCKLLM_TRACE_PLUGINS`` set, which only adds a log line per
call. A hook with a wrapper implementation (``hookwrapper``/``wrapper``) goes through pluggy's own
call, which alone knows how to run wrappers.

Why not pluggy's call for every request: pluggy asks each implementation in turn until one
answers, checking the arguments on the way, about 0.4 µs per implementation that declines
(``python -m bench.dispatch``, ``parse_usage`` answered by the openai plugin, whose own work is
0.4 µs): 2.0 µs through pluggy with the four built-in providers, 5.6 µs with twelve more provider
plugins installed, 10.9 µs with thirty; 1.1 to 1.2 µs through the dispatcher in all three. A
request makes three to four such calls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Literal, overload

import pluggy
from loguru import logger

from truckllm.types import Candidate, ProviderResult, StreamTranslator, UpstreamRequest, Usage

__all__ = ["OWNER_KIND", "Dispatcher", "Impl"]

Impl = tuple[str, Callable[..., object], tuple[str, ...]]
"""One implementation: ``(plugin name, function, argument names)``."""

OWNER_KIND: Mapping[str, str] = {
    "select_provider": "strategies",
    "transform_request": "providers",
    "transform_response": "providers",
    "transform_stream": "providers",
    "parse_usage": "providers",
}
"""For each hook :meth:`Dispatcher.call` routes, the registration that names its owner."""


def _traced(hook_name: str, name: str, function: Callable[..., object]) -> Callable[..., object]:
    def call(*args: object) -> object:
        logger.debug("hook {} -> {}", hook_name, name)
        return function(*args)

    return call


class Dispatcher:
    """Calls hooks for the kernel: request-path hooks by owner, fan-out hooks one by one.

    :param pm: the plugin manager.
    :param owners: ``(kind, name) -> plugin name`` as registration recorded it (``kind`` is
        ``providers`` or ``strategies``); read at each route's first use, so the table may still
        be filling when the dispatcher is made.
    :param trace: log every call (``TRUCKLLM_TRACE_PLUGINS``); the routes are the same.
    """

    def __init__(
        self, pm: pluggy.PluginManager, owners: Mapping[tuple[str, str], str], trace: bool = False
    ) -> None:
        self.pm = pm
        self.owners = owners
        self.trace = trace
        self._routes: dict[tuple[str, str], tuple[Impl, ...] | None] = {}
        self._each: dict[str, tuple[Impl, ...]] = {}

    def clear(self) -> None:
        """Forget the routes (after plugins were registered or unregistered)."""
        self._routes.clear()
        self._each.clear()

    def _impls(self, hook_name: str) -> tuple[Impl, ...]:
        caller: pluggy.HookCaller = getattr(self.pm.hook, hook_name)
        impls = reversed(caller.get_hookimpls())  # pluggy calls the last registered first
        return tuple((impl.plugin_name, impl.function, tuple(impl.argnames)) for impl in impls)

    def each(self, hook_name: str) -> tuple[Impl, ...]:
        """Every implementation of ``hook_name``, in pluggy's call order (each one logs its call
        when tracing)."""
        found = self._each.get(hook_name)
        if found is None:
            found = self._impls(hook_name)
            if self.trace:
                found = tuple((name, _traced(hook_name, name, fn), args) for name, fn, args in found)
            self._each[hook_name] = found
        return found

    def route(self, hook_name: str, key: str) -> tuple[Impl, ...] | None:
        """The implementations that may answer ``hook_name`` for ``key``, in the order they are
        asked: the owner's first, then the others in pluggy's order. ``None``: the hook has a
        wrapper, so pluggy calls it."""
        try:
            return self._routes[(hook_name, key)]
        except KeyError:
            pass
        caller: pluggy.HookCaller = getattr(self.pm.hook, hook_name)
        found: tuple[Impl, ...] | None = None
        if not any(impl.hookwrapper or impl.wrapper for impl in caller.get_hookimpls()):
            owner = self.owners.get((OWNER_KIND.get(hook_name, ""), key))
            # sorted is stable: the owner's implementation first, the others in pluggy's order
            found = tuple(sorted(self._impls(hook_name), key=lambda impl: impl[0] != owner))
        self._routes[(hook_name, key)] = found
        return found

    @overload
    def call(
        self, hook_name: Literal["select_provider"], key: str, **kwargs: object
    ) -> Sequence[Candidate] | None: ...

    @overload
    def call(
        self, hook_name: Literal["transform_request"], key: str, **kwargs: object
    ) -> UpstreamRequest | None: ...

    @overload
    def call(
        self, hook_name: Literal["transform_response"], key: str, **kwargs: object
    ) -> ProviderResult | None: ...

    @overload
    def call(
        self, hook_name: Literal["transform_stream"], key: str, **kwargs: object
    ) -> StreamTranslator | None: ...

    @overload
    def call(self, hook_name: Literal["parse_usage"], key: str, **kwargs: object) -> Usage | None: ...

    def call(self, hook_name: str, key: str, **kwargs: object) -> object:
        """The first non-None result of ``hook_name`` for ``key`` (a provider type or strategy
        name), asking the implementations in :meth:`route` order."""
        try:
            route = self._routes[(hook_name, key)]  # a known route, without a call to route()
        except KeyError:
            route = self.route(hook_name, key)
        if route is None:
            return getattr(self.pm.hook, hook_name)(**kwargs)
        for name, function, argnames in route:
            result = function(*map(kwargs.__getitem__, argnames))
            if result is not None:
                if self.trace:
                    logger.debug("hook {} for {!r} -> {}", hook_name, key, name)
                return result
        if self.trace:
            logger.debug("hook {} for {!r} -> no answer", hook_name, key)
        return None
