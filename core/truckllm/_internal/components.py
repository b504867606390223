"""Building the store and the loggers a config names, and attaching them to a plugin manager.

Stores and loggers are classes registered by plugins (``register_stores``, ``register_loggers``);
the kernel instantiates them with their ``Options`` struct decoded from config, and registers the
instances with the runtime's plugin manager so that their hookimpl methods (``store_usage``,
``emit_log``, ``render_metrics``, ``startup``, ``shutdown``) are called like any plugin's.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, TypeVar

import msgspec
from loguru import logger

from truckllm._internal.config.loader import decode_options, logger_entries, store_options
from truckllm._internal.config.schema import Config
from truckllm._internal.plugins import PluginHost
from truckllm._internal.store import Store
from truckllm.errors import StartupError
from truckllm.types import Logger

__all__ = ["attach", "build_loggers", "build_store", "call_method", "logger_signature", "store_signature"]


_T = TypeVar("_T")


def _instantiate(kind: str, name: str, cls: type[_T], options: dict[str, Any]) -> _T:
    options_type = getattr(cls, "Options", None)
    # the constructor takes the class's own ``Options`` struct, a type known only at run time
    factory: Any = cls
    try:
        decoded = decode_options(options, options_type) if options_type is not None else options
        instance: _T = factory(decoded)
        return instance
    except msgspec.ValidationError as exc:
        raise StartupError(f"{kind} {name!r}: bad options: {exc}") from None
    except Exception as exc:
        raise StartupError(f"{kind} {name!r} failed to start: {type(exc).__name__}: {exc}") from None


def store_signature(config: Config) -> bytes:
    """What identifies the configured store (a change needs a restart)."""
    return msgspec.json.encode(config.store)


def logger_signature(config: Config) -> bytes:
    """What identifies the configured loggers (a change rebuilds them on reload)."""
    return msgspec.json.encode(logger_entries(config))


def build_store(host: PluginHost, config: Config) -> Store | None:
    """The configured store instance, or ``None`` when no store plugin is installed for the default."""
    store_type = str(config.store.get("type", "memory"))
    cls = host.stores.get(store_type)
    if cls is None:
        logger.warning("no store plugin {!r} installed: limits and budgets are not enforced", store_type)
        return None
    return _instantiate("store", store_type, cls, store_options(config))


def build_loggers(host: PluginHost, config: Config) -> list[tuple[str, Logger]]:
    """The configured logger instances, in config order."""
    return [
        (name, _instantiate("logger", name, host.loggers[name], options))
        for name, options in logger_entries(config)
    ]


def attach(host: PluginHost, store: Store | None, loggers: Sequence[tuple[str, Logger]]) -> None:
    """Register the store and logger instances with ``host``'s plugin manager."""
    host.dispatch.clear()
    if store is not None and not host.pm.is_registered(store):
        host.pm.register(store, name="store")
    for i, (name, instance) in enumerate(loggers):
        if not host.pm.is_registered(instance):
            host.pm.register(instance, name=f"logger-{i}-{name}")


async def call_method(instance: object, method: str, **kwargs: object) -> None:
    """Call an instance's hook method if it has one, awaiting it; log (never raise) a failure."""
    fn = getattr(instance, method, None)
    if fn is None:
        return
    try:
        params = inspect.signature(fn).parameters
        result = fn(**{k: v for k, v in kwargs.items() if k in params})
        if inspect.isawaitable(result):
            await result
    except Exception as exc:
        logger.opt(exception=exc).error("{} of {} failed", method, type(instance).__name__)
