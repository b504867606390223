"""Building the plugin manager: entry points, API versions, registration, listing.

Built-in plugins load exactly like third-party ones, through the ``truckllm`` entry-point group;
the kernel never imports a plugin by name. A plugin that fails to import, declares another API
version or raises while registering is recorded in :attr:`PluginHost.failures` and skipped; the
gateway refuses to start only when the config needs what that plugin would have provided (the
config error then names the failed plugin and why).
"""

from __future__ import annotations

import importlib.metadata as md
import inspect
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import msgspec
import pluggy
from loguru import logger

from truckllm import hookspecs
from truckllm._internal import defaults
from truckllm._internal.config.loader import Registry
from truckllm._internal.dialect import InboundDialect
from truckllm._internal.dispatch import Dispatcher
from truckllm._internal.mounts import Mount, check_prefix
from truckllm._internal.pricebook import EMPTY_BOOK, PriceBook, PriceBookBuilder, check_entry
from truckllm._internal.store import Store
from truckllm.errors import StartupError
from truckllm.types import GuardrailSpec, Logger, PriceEntry, ProviderSpec, StrategySpec

__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginFailure",
    "PluginHost",
    "async_hooks",
    "list_plugins",
    "make_plugin_manager",
]

ENTRY_POINT_GROUP = "truckllm"
DEFAULTS_NAME = "truckllm._internal.defaults"


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded or registered, and why."""

    name: str
    distribution: str | None
    version: str | None
    error: str


@dataclass
class PluginHost:
    """The plugin manager and what its plugins registered."""

    pm: pluggy.PluginManager
    failures: list[PluginFailure] = field(default_factory=list)
    providers: dict[str, ProviderSpec] = field(default_factory=dict)
    strategies: dict[str, StrategySpec] = field(default_factory=dict)
    stores: dict[str, type[Store]] = field(default_factory=dict)
    loggers: dict[str, type[Logger]] = field(default_factory=dict)
    dialects: dict[str, InboundDialect] = field(default_factory=dict)
    mounts: dict[str, Mount] = field(default_factory=dict)
    guardrails: dict[str, GuardrailSpec] = field(default_factory=dict)
    owners: dict[tuple[str, str], str] = field(default_factory=dict)
    dists: dict[str, md.Distribution] = field(default_factory=dict)
    entry_points: dict[str, str] = field(default_factory=dict)
    prices: PriceBook = EMPTY_BOOK
    dispatch: Dispatcher = field(init=False)

    def __post_init__(self) -> None:
        self.dispatch = Dispatcher(self.pm, self.owners, trace=bool(os.environ.get("TRUCKLLM_TRACE_PLUGINS")))

    @property
    def hook(self) -> Any:
        """The manager's hook relay (``host.hook.transform_request(...)``)."""
        return self.pm.hook

    def registry(self, default_strategy: str = "weighted") -> Registry:
        """Names the config may use, for validation."""
        default = default_strategy if default_strategy in self.strategies else "first"
        return Registry(
            providers=dict(self.providers),
            strategies=frozenset(self.strategies),
            stores=frozenset(self.stores),
            loggers=frozenset(self.loggers),
            default_strategy=default,
            failed=tuple(f"{f.name}: {f.error}" for f in self.failures),
            store_classes=dict(self.stores),
            logger_classes=dict(self.loggers),
            guardrails=dict(self.guardrails),
        )


def _plugin_api(plugin: object) -> int:
    return int(getattr(plugin, "TRUCKLLM_API", hookspecs.HOOKSPEC_VERSION))


def make_plugin_manager(
    disabled: Sequence[str] = (),
    extra: Iterable[object] = (),
    *,
    autoload: bool | None = None,
) -> PluginHost:
    """A fresh plugin manager: hookspecs, defaults, entry-point plugins, ``extra`` plugins.

    :param disabled: entry-point names not to load (config ``plugins.disable``).
    :param extra: plugin objects to register too (tests register throwaway plugins here).
    :param autoload: load entry points; default: unless ``TRUCKLLM_DISABLE_PLUGIN_AUTOLOAD`` is set.
    :raises StartupError: a plugin implements a hook that does not exist, or two plugins
        register the same provider type, strategy, store or logger name.
    """
    pm = pluggy.PluginManager("truckllm")
    pm.add_hookspecs(hookspecs)
    host = PluginHost(pm=pm)
    pm.register(defaults, name=DEFAULTS_NAME)
    for name in disabled:
        pm.set_blocked(name)
    if autoload is None:
        autoload = not os.environ.get("TRUCKLLM_DISABLE_PLUGIN_AUTOLOAD")
    if autoload:
        _load_entry_points(host)
    for plugin in extra:
        name = getattr(plugin, "__name__", None) or f"{type(plugin).__name__}-{id(plugin):x}"
        _register(host, plugin, name, None)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise StartupError(f"plugin {exc.plugin!r} implements an unknown hook: {exc}") from None
    _collect_registrations(host)
    host.prices = _collect_prices(host)
    if os.environ.get("TRUCKLLM_TRACE_PLUGINS"):
        pm.trace.root.setwriter(lambda msg: logger.debug("hook {}", msg.rstrip()))
        pm.enable_tracing()
    return host


def _load_entry_points(host: PluginHost) -> None:
    seen: set[str] = set()
    for dist in md.distributions():
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP or ep.name in seen:
                continue
            seen.add(ep.name)
            if host.pm.is_blocked(ep.name):
                continue
            dist_name = dist.metadata["name"]
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken plugin must not take the gateway down
                _fail(host, ep.name, dist, f"import failed: {type(exc).__name__}: {exc}")
                continue
            _register(host, plugin, ep.name, dist, entry_point=f"{ep.name} = {ep.value}")
            if dist_name:
                host.dists[ep.name] = dist


def _fail(host: PluginHost, name: str, dist: md.Distribution | None, error: str) -> None:
    failure = PluginFailure(
        name=name,
        distribution=dist.metadata["name"] if dist else None,
        version=dist.version if dist else None,
        error=error,
    )
    host.failures.append(failure)
    logger.bind(plugin=name).error("plugin {} not loaded: {}", name, error)


def _register(
    host: PluginHost, plugin: object, name: str, dist: md.Distribution | None, entry_point: str = ""
) -> None:
    api = _plugin_api(plugin)
    if api != hookspecs.HOOKSPEC_VERSION:
        _fail(
            host,
            name,
            dist,
            f"written for plugin API {api}; this kernel serves API {hookspecs.HOOKSPEC_VERSION}",
        )
        return
    try:
        host.pm.register(plugin, name=name)
    except ValueError as exc:
        _fail(host, name, dist, f"cannot register: {exc}")
        return
    wrong = async_hooks(host.pm, plugin)
    if wrong:
        host.pm.unregister(plugin)
        allowed = ", ".join(sorted(n for n in _hook_names() if _may_await(n))) or "none"
        _fail(
            host,
            name,
            dist,
            f"hook {', '.join(wrong)} is async (async def or an async generator), but the kernel calls it "
            f"synchronously: every call would fail; only {allowed} may be async def",
        )
        return
    host.entry_points[name] = entry_point


def _hook_names() -> list[str]:
    return [n for n, f in vars(hookspecs).items() if callable(f) and hasattr(f, "truckllm_spec")]


def _may_await(hook_name: str) -> bool:
    """Whether the hookspec lets an implementation return an awaitable (its return type says so)."""
    spec = getattr(hookspecs, hook_name, None)
    return "Awaitable" in str(getattr(spec, "__annotations__", {}).get("return", ""))


def _is_async(function: Any) -> bool:
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        type(function).__call__  # an object with async __call__
    )


def async_hooks(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    """The hooks ``plugin`` implements with ``async def`` that the kernel calls synchronously
    (and any it implements as an async generator: no hook is called as one)."""
    wrong = []
    for caller in pm.get_hookcallers(plugin) or []:
        if caller.spec is None:
            continue  # an unknown hook is reported by check_pending
        for impl in caller.get_hookimpls():
            if impl.plugin is not plugin:
                continue
            if inspect.isasyncgenfunction(impl.function) or (
                _is_async(impl.function) and not _may_await(caller.name)
            ):
                wrong.append(caller.name)
    return sorted(wrong)


def _dialect(value: object) -> InboundDialect:
    """``value`` as a dialect, checked; one that does not declare ``reframes_own`` gets the
    protocol's default (``False``)."""
    if not isinstance(getattr(value, "name", None), str) or not hasattr(value, "routes"):
        raise TypeError("register() takes an InboundDialect object")
    if not hasattr(value, "reframes_own"):
        try:
            setattr(value, "reframes_own", False)  # noqa: B010 (an object of the plugin's own class)
        except AttributeError:
            raise TypeError(
                "an InboundDialect declares reframes_own (or subclasses truckllm.kit.dialect.InboundDialect)"
            ) from None
    if not isinstance(value, InboundDialect):
        raise TypeError("register() takes an InboundDialect object")
    if not isinstance(value.reframes_own, bool):
        raise TypeError("InboundDialect.reframes_own is a bool")
    return value


def _mount(value: object, others: Iterable[Mount]) -> Mount:
    """``value`` as a mount, checked: a valid prefix of its own, a factory, relative paths."""
    if not isinstance(value, Mount):
        raise TypeError("register() takes a truckllm.kit.web.Mount")
    if not isinstance(value.name, str) or not value.name or not callable(value.routes):
        raise TypeError("a Mount has a name and a routes factory")
    why = check_prefix(value.prefix)
    if why is not None:
        raise StartupError(f"mount {value.name!r}: prefix {value.prefix!r} refused: {why}")
    for path in (*value.public, *((value.login,) if value.login is not None else ())):
        if not isinstance(path, str) or not path.startswith("/"):
            raise StartupError(f"mount {value.name!r}: {path!r} is not a path relative to its prefix")
    for other in others:
        a, b = value.prefix + "/", other.prefix + "/"
        if a.startswith(b) or b.startswith(a):
            raise StartupError(
                f"mounts {other.name!r} ({other.prefix}) and {value.name!r} ({value.prefix}) overlap"
            )
    return value


def _guardrail(value: object) -> GuardrailSpec:
    """``value`` as a guardrail type, checked: a name, a factory, an ``Options`` Struct or none."""
    if not isinstance(value, GuardrailSpec):
        raise TypeError("register() takes a GuardrailSpec")
    if not value.type or not callable(value.make):
        raise TypeError("a GuardrailSpec has a type name and a make factory")
    if value.options is not None and not (
        isinstance(value.options, type) and issubclass(value.options, msgspec.Struct)
    ):
        raise TypeError("GuardrailSpec.options is a msgspec Struct type")
    return value


def _collect_registrations(host: PluginHost) -> None:
    def adder(kind: str, plugin_name: str) -> Callable[..., None]:
        def claim(key: str) -> str:
            owner = host.owners.get((kind, key))
            if owner is not None:
                raise StartupError(
                    f"{kind[:-1] if kind != 'strategies' else 'strategy'} name {key!r} is registered twice: "
                    f"by plugin {owner!r} and by plugin {plugin_name!r}"
                )
            host.owners[(kind, key)] = plugin_name
            return key

        def add(*args: object) -> None:
            if kind == "providers":
                spec = args[0]
                if not isinstance(spec, ProviderSpec):
                    raise TypeError("register() takes a ProviderSpec")
                host.providers[claim(spec.type)] = spec
            elif kind == "strategies":
                strategy = args[0]
                if not isinstance(strategy, StrategySpec):
                    raise TypeError("register() takes a StrategySpec")
                host.strategies[claim(strategy.name)] = strategy
            elif kind == "dialects":
                dialect = _dialect(args[0])
                host.dialects[claim(dialect.name)] = dialect
            elif kind == "mounts":
                mount = _mount(args[0], host.mounts.values())
                host.mounts[claim(mount.name)] = mount
            elif kind == "guardrails":
                guardrail = _guardrail(args[0])
                host.guardrails[claim(guardrail.type)] = guardrail
            else:
                name, cls = args
                if not isinstance(name, str) or not isinstance(cls, type):
                    raise TypeError("register() takes a name and a class")
                table: dict[str, type[Store]] | dict[str, type[Logger]]
                table = host.stores if kind == "stores" else host.loggers
                table[claim(name)] = cls

        return add

    for kind in ("providers", "strategies", "stores", "loggers", "dialects", "mounts", "guardrails"):
        caller = getattr(host.pm.hook, f"register_{kind}")
        for impl in caller.get_hookimpls():
            plugin_name = host.pm.get_name(impl.plugin) or "?"
            try:
                impl.function(register=adder(kind, plugin_name))
            except StartupError:
                raise
            except Exception as exc:
                dist = host.dists.get(plugin_name)
                _fail(host, plugin_name, dist, f"register_{kind} raised {type(exc).__name__}: {exc}")
                host.pm.unregister(name=plugin_name)
                _forget(host, plugin_name)


def _collect_prices(host: PluginHost) -> PriceBook:
    """The price book of every ``register_prices`` implementation, in registration order (a later
    entry for the same provider type and model wins). A plugin whose ``register_prices`` raises or
    registers an invalid entry is recorded as failed and unregistered; none of its entries count."""
    builder = PriceBookBuilder()
    for impl in host.pm.hook.register_prices.get_hookimpls():
        plugin_name = host.pm.get_name(impl.plugin) or "?"
        entries: list[PriceEntry] = []
        try:
            impl.function(register=lambda entry, _into=entries: _into.append(check_entry(entry)))
        except Exception as exc:
            _fail(
                host,
                plugin_name,
                host.dists.get(plugin_name),
                f"register_prices raised {type(exc).__name__}: {exc}",
            )
            host.pm.unregister(name=plugin_name)
            _forget(host, plugin_name)
            continue
        builder.add(entries, plugin_name)
    return builder.build()


def _forget(host: PluginHost, plugin_name: str) -> None:
    """Drop whatever ``plugin_name`` registered before it failed."""
    tables: dict[str, dict[str, Any]] = {
        "providers": host.providers,
        "strategies": host.strategies,
        "stores": host.stores,
        "loggers": host.loggers,
        "dialects": host.dialects,
        "mounts": host.mounts,
        "guardrails": host.guardrails,
    }
    for (kind, key), owner in list(host.owners.items()):
        if owner == plugin_name:
            del host.owners[(kind, key)]
            tables[kind].pop(key, None)


def list_plugins(host: PluginHost, all: bool = False) -> list[dict[str, Any]]:
    """One sorted row per plugin: name, version, entry_point, module, hooks, status, error.

    The same list feeds ``truckllm plugins`` and ``GET /admin/v1/plugins``. ``all`` adds the
    kernel's own defaults. The store and logger instances the gateway registers while serving
    (``store``, ``logger-0-stdout``) are not plugins: their plugin is listed, they are not.
    """
    rows: list[dict[str, Any]] = []
    for name, plugin in host.pm.list_name_plugin():
        if plugin is None or (name not in host.entry_points and name != DEFAULTS_NAME):
            continue
        dist = host.dists.get(name)
        if dist is None and name == DEFAULTS_NAME and not all:
            continue
        module = plugin if isinstance(plugin, ModuleType) else sys.modules.get(type(plugin).__module__)
        callers = host.pm.get_hookcallers(plugin) or []
        rows.append(
            {
                "name": dist.metadata["name"] if dist else name,
                "version": dist.version if dist else None,
                "entry_point": host.entry_points.get(name) or None,
                "module": getattr(module, "__name__", type(plugin).__module__),
                "hooks": sorted(c.name for c in callers),
                "status": "loaded",
                "error": None,
            }
        )
    for failure in host.failures:
        rows.append(
            {
                "name": failure.distribution or failure.name,
                "version": failure.version,
                "entry_point": failure.name,
                "module": None,
                "hooks": [],
                "status": "failed",
                "error": failure.error,
            }
        )
    return sorted(rows, key=lambda r: (r["name"], r["entry_point"] or ""))
