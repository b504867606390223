"""Building the plugin manager: entry points, API versions, registration, listing.

Built-in plugins load exactly like third-party ones, through the ``truckllm`` entry-point group;
the kernel never imports a plugin by name. With ``plugins.allow`` set (:mod:`.allowlist`), only the
allowed distributions' entry points are loaded: the others are decided on their metadata alone,
listed as present but not allowed, and never imported. With no allow-list, a distribution that is
not TruckLLM's own (:mod:`.first_party`) is loaded and named in a warning.

A plugin that fails to import, declares another API version or raises while registering is
recorded in :attr:`PluginHost.failures` and skipped; the gateway refuses to start only when the
config needs what that plugin would have provided (the config error then names the failed plugin
and why).
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
from truckllm._internal.allowlist import AllowList, normalize
from truckllm._internal.config.loader import Registry
from truckllm._internal.dialect import InboundDialect
from truckllm._internal.dispatch import Dispatcher
from truckllm._internal.first_party import FIRST_PARTY
from truckllm._internal.installed import describe, record_path
from truckllm._internal.mounts import Mount, check_prefix
from truckllm._internal.pricebook import EMPTY_BOOK, PriceBook, PriceBookBuilder, check_entry
from truckllm._internal.store import Store
from truckllm.errors import StartupError
from truckllm.types import GuardrailSpec, Logger, PriceEntry, ProviderSpec, StrategySpec

__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginFailure",
    "PluginHost",
    "Refusal",
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
    dist: md.Distribution | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Refusal:
    """An entry point of a distribution that ``plugins.allow`` does not allow: never imported."""

    name: str
    distribution: str
    version: str
    reason: str
    dist: md.Distribution = field(compare=False, repr=False)


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
    allow: AllowList | None = None
    refused: list[Refusal] = field(default_factory=list)
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
    allow: Sequence[str] | None = None,
) -> PluginHost:
    """A fresh plugin manager: hookspecs, defaults, entry-point plugins, ``extra`` plugins.

    :param disabled: entry-point names not to load (config ``plugins.disable``).
    :param extra: plugin objects to register too (tests register throwaway plugins here).
    :param autoload: load entry points; default: unless ``TRUCKLLM_DISABLE_PLUGIN_AUTOLOAD`` is set.
    :param allow: config ``plugins.allow``: the distributions whose entry points may be loaded
        (None: every one; the others are never imported). ``extra`` plugins are not concerned.
    :raises StartupError: a plugin implements a hook that does not exist, two plugins
        register the same provider type, strategy, store or logger name, or ``allow`` is invalid.
    """
    pm = pluggy.PluginManager("truckllm")
    pm.add_hookspecs(hookspecs)
    try:
        allow_list = AllowList.parse(allow) if allow is not None else None
    except ValueError as exc:
        raise StartupError(str(exc)) from None
    host = PluginHost(pm=pm, allow=allow_list)
    pm.register(defaults, name=DEFAULTS_NAME)
    for name in disabled:
        pm.set_blocked(name)
    if autoload is None:
        autoload = not os.environ.get("TRUCKLLM_DISABLE_PLUGIN_AUTOLOAD")
    if autoload:
        _load_entry_points(host)
        _warn_about_origins(host)
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
    """Load the allowed entry points of the ``truckllm`` group; decide on metadata alone first.

    An entry point's name belongs to the first (allowed) distribution found declaring it: the
    same distribution found twice on the path is skipped, another one declaring a taken name is
    recorded as failed (a package cannot replace a plugin by reusing its name).
    """
    owners: dict[str, str] = {}
    refused: set[tuple[str, str]] = set()
    for dist in md.distributions():
        eps = [ep for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]
        if not eps:
            continue
        dist_name = str(dist.metadata["name"] or "?")
        key = normalize(dist_name)
        refusal = host.allow.refusal(dist_name, dist.version) if host.allow is not None else None
        for ep in eps:
            if refusal is not None:
                if (key, ep.name) not in refused:
                    refused.add((key, ep.name))
                    host.refused.append(Refusal(ep.name, dist_name, dist.version, refusal, dist))
                continue
            owner = owners.get(ep.name)
            if owner is not None:
                if owner != key:
                    _fail(host, ep.name, dist, f"entry point name {ep.name!r} is already taken by {owner}")
                continue
            owners[ep.name] = key
            if host.pm.is_blocked(ep.name):
                continue
            host.dists[ep.name] = dist
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken plugin must not take the gateway down
                _fail(host, ep.name, dist, f"import failed: {type(exc).__name__}: {exc}")
                continue
            _register(host, plugin, ep.name, dist, entry_point=f"{ep.name} = {ep.value}")


def _where(dist: md.Distribution) -> str:
    record = record_path(dist)
    return str(record.parent if record is not None else dist.locate_file(""))


def _warn_about_origins(host: PluginHost) -> None:
    """Start-up warnings: foreign code loaded with no allow-list; code present but not allowed;
    allowed names that are not installed."""
    if host.allow is None:
        foreign: dict[str, md.Distribution] = {}
        for dist in host.dists.values():
            name = str(dist.metadata["name"] or "?")
            if normalize(name) not in FIRST_PARTY:
                foreign.setdefault(normalize(name), dist)
        if foreign:
            named = "; ".join(
                f"{d.metadata['name']} {d.version} ({_where(d)})" for _, d in sorted(foreign.items())
            )
            logger.warning(
                "plugins.allow is not set and {} distribution(s) that are not TruckLLM's are loaded: {}. "
                "Every installed package declaring a `truckllm` entry point runs inside the gateway, "
                "which holds every provider key: list the distributions you mean to run in plugins.allow",
                len(foreign),
                named,
            )
        return
    done: set[str] = set()
    for refusal in host.refused:
        if normalize(refusal.distribution) in done:
            continue
        done.add(normalize(refusal.distribution))
        names = ", ".join(r.name for r in host.refused if r.distribution == refusal.distribution)
        logger.warning(
            "{} {} ({}) declares TruckLLM plugins ({}) and is not allowed ({}): not imported",
            refusal.distribution,
            refusal.version,
            _where(refusal.dist),
            names,
            refusal.reason,
        )
    installed = [str(d.metadata["name"] or "") for d in md.distributions()]
    for name in host.allow.unmatched(installed):
        logger.warning("plugins.allow names {}, which is not installed", name)


def _fail(host: PluginHost, name: str, dist: md.Distribution | None, error: str) -> None:
    failure = PluginFailure(
        name=name,
        distribution=dist.metadata["name"] if dist else None,
        version=dist.version if dist else None,
        error=error,
        dist=dist,
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


def _origin(dist: md.Distribution | None, verify: bool) -> dict[str, Any]:
    """A row's install facts (:func:`.installed.describe`) and whether the distribution is TruckLLM's."""
    if dist is None:
        return {
            "first_party": None,
            "location": None,
            "editable": False,
            "source": None,
            "record_sha256": None,
            "files": None,
        }
    facts = describe(dist) if verify else {"location": _where(dist)}
    return {"first_party": normalize(str(dist.metadata["name"] or "")) in FIRST_PARTY, **facts}


def _kernel_origin(verify: bool) -> dict[str, Any]:
    """The defaults' row: the kernel's own distribution (``truckllm``), installed files included."""
    try:
        kernel = md.distribution("truckllm")
    except md.PackageNotFoundError:  # run from a source tree
        return {**_origin(None, verify), "first_party": True}
    return {**_origin(kernel, verify), "version": kernel.version}


def list_plugins(host: PluginHost, all: bool = False, verify: bool = True) -> list[dict[str, Any]]:
    """One sorted row per plugin: name, version, entry_point, module, hooks, status, error, and
    where it is installed.

    The same list feeds ``truckllm plugins`` and ``GET /admin/v1/plugins``. ``status`` is
    ``loaded``, ``failed`` or ``not allowed`` (present, but not in ``plugins.allow``: never
    imported; ``error`` says why). ``allowed``: whether ``plugins.allow`` lets it load (True when
    no allow-list is set). ``first_party``: one of TruckLLM's own distributions. ``location``:
    its ``.dist-info`` folder; ``editable`` and ``source``: an editable install and the folder it
    points at. ``record_sha256``: sha256 of its ``RECORD``; ``files``: each file RECORD lists
    hashed again (``verify``; counts, and the paths ``mismatched`` or ``missing``). ``all`` adds
    the kernel's own defaults, with the kernel's distribution's version, location and files. The
    store and logger instances the gateway registers while serving (``store``,
    ``logger-0-stdout``) are not plugins: their plugin is listed, they are not.
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
                "allowed": True,
                "error": None,
                **(_kernel_origin(verify) if name == DEFAULTS_NAME else _origin(dist, verify)),
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
                "allowed": True,
                "error": failure.error,
                **_origin(failure.dist, verify),
            }
        )
    for refusal in host.refused:
        rows.append(
            {
                "name": refusal.distribution,
                "version": refusal.version,
                "entry_point": refusal.name,
                "module": None,
                "hooks": [],
                "status": "not allowed",
                "allowed": False,
                "error": refusal.reason,
                **_origin(refusal.dist, verify),
            }
        )
    return sorted(rows, key=lambda r: (r["name"], r["entry_point"] or ""))
