"""What lifecycle hooks see of the gateway: live state, never a secret.

``startup(app)`` and ``shutdown(app)`` receive a :class:`GatewayView`, not the gateway: the
figures a logger or a store reports, as typed values made by the kernel, and nothing that holds a
key value (no config, no secrets). :meth:`GatewayView.snapshot` takes one
:class:`~truckllm.types.GatewaySnapshot` (keys' states, in flight, the after-response queue,
plugin errors, retry-budget denials, the config version and reloads, other loggers' figures,
affinity pins and pin moves);
:attr:`GatewayView.runtime` names the running aliases and providers. A plugin gets the secrets
config hands to it, in its own options, and nothing else.

Every value here is built by the kernel from its own state and checked by ``mypy --strict`` with
it: when the kernel changes, this module changes with it, and what a plugin reads keeps its type.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from types import MappingProxyType
from typing import TYPE_CHECKING, TypeVar

import msgspec
from loguru import logger

from truckllm._internal.dialect import LocalCall
from truckllm._internal.mounts import AdminAnswer, GatewayCaller
from truckllm._internal.request_log import RequestLog
from truckllm._internal.sessions import AdminSessions
from truckllm.types import (
    AliasInfo,
    Deployment,
    GatewaySnapshot,
    GuardDecision,
    GuardSubject,
    KeySnapshot,
    LoggerCounters,
    LoggerFigures,
    LoggerMetrics,
    PluginErrorCount,
    Provider,
    RequestRecord,
)

if TYPE_CHECKING:
    from truckllm._internal.background import Background
    from truckllm._internal.gateway import Gateway, RetryBudget
    from truckllm._internal.health import HealthRegistry
    from truckllm._internal.mounts import AdminAnswer
    from truckllm._internal.runtime import AliasPlan, Runtime
    from truckllm._internal.sessions import AdminSessions

__all__ = ["GatewayView", "RuntimeView", "logger_figures"]

_C = TypeVar("_C")


def _alias_info(plan: AliasPlan) -> AliasInfo:
    deployments: dict[int, Deployment] = {}
    for candidate in plan.candidates:
        deployments.setdefault(candidate.deployment.index, candidate.deployment)
    return AliasInfo(
        name=plan.alias,
        strategy=plan.strategy,
        deployments=tuple(deployments[i] for i in sorted(deployments)),
        fallbacks=plan.fallbacks,
    )


class RuntimeView:
    """The running config as plugins may see it: its version, aliases and providers.

    Always the running one: after a reload, the same object answers for the new config.
    """

    __slots__ = ("_aliases", "_gateway")

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._aliases: tuple[Runtime, Mapping[str, AliasInfo]] | None = None

    @property
    def version(self) -> int:
        """The config version (1 at start, +1 per applied reload)."""
        return self._gateway.runtime.version

    @property
    def aliases(self) -> Mapping[str, AliasInfo]:
        """Alias name → its strategy, deployments and fallbacks (made once per config version)."""
        runtime = self._gateway.runtime
        if self._aliases is None or self._aliases[0] is not runtime:
            infos = {name: _alias_info(plan) for name, plan in runtime.aliases.items()}
            self._aliases = (runtime, MappingProxyType(infos))
        return self._aliases[1]

    @property
    def metric_tags(self) -> frozenset[str]:
        """The request tags that may become metric label values (``tags.metrics``)."""
        return frozenset(self._gateway.runtime.config.tags.metrics)

    @property
    def teams(self) -> AbstractSet[str]:
        """The names of the running config's teams (``teams:``; a read-only view, not a copy)."""
        return self._gateway.runtime.config.teams.keys()

    @property
    def orgs(self) -> AbstractSet[str]:
        """The names of the running config's organisations (``orgs:``; a read-only view)."""
        return self._gateway.runtime.config.orgs.keys()

    @property
    def providers(self) -> Mapping[str, Provider]:
        """Provider name → :class:`~truckllm.types.Provider` (type, base URL, options; no keys)."""
        return MappingProxyType(self._gateway.runtime.providers)


def request_log_of(loggers: Iterable[tuple[str, object]]) -> RequestLog | None:
    """The first of ``loggers`` implementing :class:`~truckllm.kit.request_log.RequestLog`."""
    for _, instance in loggers:
        if isinstance(instance, RequestLog):
            return instance
    return None


def logger_figures(loggers: Iterable[tuple[str, object]]) -> tuple[LoggerFigures, ...]:
    """The figures of every logger that reports some (:class:`~truckllm.types.LoggerMetrics`).

    ``index`` counts the loggers of one name in order, those reporting nothing included. A
    logger whose figures cannot be read (its ``metrics`` raises, or is not a mapping) is left out
    and logged; values that are not numbers are left out.
    """
    seen: dict[str, int] = {}
    found: list[LoggerFigures] = []
    for name, instance in loggers:
        index = seen.get(name, 0)
        seen[name] = index + 1
        try:
            if not isinstance(instance, LoggerMetrics):
                continue
            metrics = instance.metrics
            counters = instance.metrics_counters if isinstance(instance, LoggerCounters) else frozenset()
            if not isinstance(metrics, Mapping):
                continue
            figures = {
                str(key): float(value)
                for key, value in metrics.items()
                if isinstance(value, int | float) and not isinstance(value, bool)
            }
            counted = frozenset(str(c) for c in counters)
        except Exception:
            logger.bind(plugin=name).opt(exception=True).warning("logger {} figures unreadable", name)
            continue
        found.append(LoggerFigures(name=name, index=index, figures=figures, counters=counted))
    return tuple(found)


class GatewayView:
    """A read-only window on the running gateway for ``startup`` / ``shutdown`` hooks."""

    __slots__ = ("_gateway", "_runtime")

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._runtime = RuntimeView(gateway)

    def snapshot(self) -> GatewaySnapshot:
        """The gateway's live state now: cheap enough for every metrics scrape."""
        gw = self._gateway
        health, background = gw.health, gw.background
        now = health.clock()
        return GatewaySnapshot(
            version=gw.runtime.version,
            in_flight=gw.in_flight,
            draining=gw.draining,
            keys=tuple(
                KeySnapshot(provider=provider, name=name, state=state.state(now), in_flight=state.in_flight)
                for (provider, name), state in sorted(health.keys.items())
            ),
            background_queue=background.queue.qsize(),
            background_dropped=background.dropped,
            plugin_errors=tuple(
                PluginErrorCount(plugin=plugin, hook=hook, count=count)
                for (plugin, hook), count in sorted(background.plugin_errors.items())
            ),
            retry_budget_denied=gw.budget.denied,
            reloads_ok=gw.reloads_ok,
            reloads_failed=gw.reloads_failed,
            last_reload_ok=gw.last_reload_ok,
            loggers=logger_figures(gw.loggers),
            affinity=gw.affinity.snapshot() if gw.runtime.config.affinity.enabled else None,
        )

    @property
    def runtime(self) -> RuntimeView:
        """The running config's version, aliases and providers."""
        return self._runtime

    @property
    def clock(self) -> Callable[[], float]:
        """The gateway's monotonic clock (seconds)."""
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

    @property
    def sessions(self) -> AdminSessions:
        """Admin sign-in for mounted pages (:class:`truckllm.kit.web.AdminSessions`)."""
        return self._gateway.sessions

    @property
    def request_log(self) -> RequestLog | None:
        """The first running logger whose records can be searched, or ``None``."""
        return request_log_of(self._gateway.loggers)

    async def admin(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: object = None,
        client: str = "in-process",
    ) -> AdminAnswer:
        """Call the admin API in this process, with the admin's authority: ``path`` is a
        documented admin URL (``/admin/v1/providers``), ``query`` its query parameters, ``body``
        a JSON value (``PUT /admin/v1/config`` takes the YAML text as a string), ``client`` the
        address the audit log names. Only a plugin page serving a request the kernel admitted as
        the admin's should call it."""
        from truckllm._internal.admin.inprocess import call_admin

        return await call_admin(self._gateway, method, path, query=query, body=body, client=client)

    def component(self, cls: type[_C]) -> _C | None:
        """The running instance of ``cls`` among the components the config built (``loggers:``
        entries and the ``cache:`` section), the first in config order; ``None`` when the running
        config names none. After a reload that rebuilt them, the new instance. A mount serving a
        component's API (``register_mounts``) finds its component this way."""
        for _, instance in self._gateway.loggers:
            if isinstance(instance, cls):
                return instance
        return None

    def record(self, record: RequestRecord) -> None:
        """Hand a request record a plugin made (a call it served itself, e.g. an MCP tool call)
        to ``store_usage`` and every logger's ``emit_log``, like the kernel's own records: at once
        when every implementation is a plain function and nothing is queued, otherwise queued
        after what is (a coroutine hook always runs on the background task). Its
        ``error_message`` is scrubbed of the config's secrets first; key names only, never values.
        A record with a ``gateway_key`` and that key's ``team`` but no ``metadata`` gets the key's
        default metadata (its organisation's and team's), as the kernel's own records do."""
        if record.error_message:
            scrubbed = self.scrub(record.error_message)
            if scrubbed != record.error_message:
                record = msgspec.structs.replace(record, error_message=scrubbed)
        if record.team is not None and record.gateway_key is not None and not record.metadata:
            runtime = self._gateway.runtime
            scoped = runtime.keyring.named(record.gateway_key, runtime.config)
            if scoped is not None and scoped.team == record.team and scoped.metadata:
                record = msgspec.structs.replace(record, metadata=dict(scoped.metadata))
        self._gateway.background.submit(self._gateway.runtime.host, record)

    def scrub(self, text: str) -> str:
        """``text`` with every secret of the running config (any fragment of 8 or more characters)
        and every key-looking string replaced by ``<secret>``: for strings from upstream."""
        return self._gateway.runtime.scrubber.text(text)

    def address_problem(self, address: str) -> str | None:
        """Why the gateway may not dial the IP address ``address`` under the running config's
        ``server.upstream`` policy (link-local and metadata addresses never; loopback and private
        ones as ``allow_loopback`` / ``allow_private`` say; IPv6 forms embedding an IPv4 address
        judged by it), or ``None`` when it may: the check provider connections get, for plugins
        that dial upstreams themselves (resolve a name, then judge every address before
        connecting). An ``address`` that is not an IP address is refused."""
        import ipaddress

        from truckllm._internal.netguard import NetPolicy
        from truckllm._internal.netguard import address_problem as judge

        try:
            ip = ipaddress.ip_address(address.strip("[]").split("%", 1)[0])
        except ValueError:
            return f"{address[:100]!r} is not an IP address"
        upstream = self._gateway.runtime.config.server.upstream
        return judge(ip, NetPolicy(upstream.allow_loopback, upstream.allow_private))

    async def admit(self, caller: GatewayCaller) -> None:
        """Take one request from the requests-per-minute limits of ``caller``'s gateway key, team
        and organisation (``rpm``; tokens and budgets are not charged), as a request on ``/v1``
        would.

        :raises truckllm.errors.GatewayError: 429 (``rate_limit_exceeded``, with ``retry-after``)
            when one of them is used up.
        """
        from truckllm._internal.admission import admit
        from truckllm._internal.governance import levels

        gw = self._gateway
        runtime = gw.runtime
        if caller.name is None or gw.store is None:
            return
        key = runtime.keyring.named(caller.name, runtime.config)
        if key is None:
            return
        rpm_only = [
            msgspec.structs.replace(level, tpm=None, budgets=())
            for level in levels(runtime.config, key, None, key.config.tags)
            if level.rpm is not None
        ]
        if rpm_only:
            await admit(gw.store, key, [], (0, 0), "rsv_" + os.urandom(12).hex(), levels=rpm_only)

    async def guard(self, subject: GuardSubject) -> GuardDecision:
        """Run the running config's guardrails over ``subject``, as the kernel runs them on its
        own endpoints: the entries whose ``stages``, ``aliases``, ``keys``, ``exclude_keys``,
        ``endpoints`` and ``exclude_endpoints`` take ``subject.stage``, ``subject.alias``,
        ``subject.gateway_key`` and ``subject.endpoint``, in config order, each under its
        ``timeout`` and ``on_error``. For a plugin serving calls itself (an MCP tool call's
        arguments before they go upstream, its result before the client reads it): send on
        the decision's ``texts``, refuse the call on ``block`` (with ``message``, in the
        caller's own error format), and put ``results`` in the call's record."""
        from truckllm._internal.guardrails import guards_of, run_checks

        runtime = self._gateway.runtime
        entries = guards_of(runtime).applying(
            subject.stage, subject.alias, subject.gateway_key, subject.endpoint
        )
        texts = tuple(t.text for t in subject.texts)
        if not entries:
            return GuardDecision(texts=texts)
        check = await run_checks(entries, subject)
        return GuardDecision(
            action=check.action,
            texts=check.texts,
            message=check.error.message if check.error is not None else "",
            results=tuple(check.results),
        )

    def local_call(self, dialect: str, key: str | None) -> LocalCall:
        """A call of the inbound dialect ``dialect`` made by this gateway itself as the gateway key
        named ``key`` (``None``: the open gateway's shared scope, for a gateway without keys): its
        ``state`` is that key's stored state of the dialect, and ``forward`` / ``forward_stream``
        serve requests through the request path as that key (its allow-list, limits and budget;
        one request record each, under its name), exactly as the dialect's ``local`` routes do
        for a client. For background work no client asked for (polling a batch and recording its
        usage): such requests are the gateway's own, never refused by the key's (team's, org's)
        rate limits or budgets and taking none of their rpm or tpm, while their cost is settled
        at every level's budgets. The running config's key is used, with its team, organisation
        and tags.

        :raises LookupError: no such dialect is registered, or the running config has no key of
            that name (a key removed since: the caller should give up its work for it).
        """
        from truckllm._internal.forward import local_call

        gw = self._gateway
        runtime = gw.runtime
        found = runtime.host.dialects.get(dialect)
        if found is None:
            raise LookupError(f"no inbound dialect {dialect!r} is registered")
        gateway_key = None
        if key is not None:
            gateway_key = runtime.keyring.named(key, runtime.config)
            if gateway_key is None:
                raise LookupError(f"the running config has no gateway key {key!r}")
        return local_call(gw, runtime, found, gateway_key, own=True)

    # --- deprecated: the kernel's own objects, whose shape is not part of the plugin API ----------

    def _deprecated(self, name: str, instead: str) -> None:
        warnings.warn(
            f"GatewayView.{name} is deprecated and goes in the next minor release: use {instead}",
            DeprecationWarning,
            stacklevel=3,
        )

    @property
    def health(self) -> HealthRegistry:
        """Deprecated: use ``snapshot().keys``. The kernel's health registry."""
        self._deprecated("health", "snapshot().keys")
        return self._gateway.health

    @property
    def background(self) -> Background:
        """Deprecated: use ``snapshot()`` (``background_queue``, ``background_dropped``,
        ``plugin_errors``). The kernel's after-response queue."""
        self._deprecated("background", "snapshot().background_queue, background_dropped, plugin_errors")
        return self._gateway.background

    @property
    def budget(self) -> RetryBudget:
        """Deprecated: use ``snapshot().retry_budget_denied``. The kernel's retry budget."""
        self._deprecated("budget", "snapshot().retry_budget_denied")
        return self._gateway.budget

    @property
    def loggers(self) -> list[tuple[str, object]]:
        """Deprecated: use ``snapshot().loggers``. The running logger instances, ``(name, instance)``."""
        self._deprecated("loggers", "snapshot().loggers")
        return list(self._gateway.loggers)
