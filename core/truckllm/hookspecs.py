"""The plugin API: every hook a TruckLLM plugin may implement.

Plugins are modules (or objects) registered with the kernel's pluggy manager; their functions
carry ``@hookimpl`` (``from truckllm import hookimpl``). Hooks on the request path are plain,
synchronous and pure: they build values and the kernel does the I/O. Hooks after the response
(``store_usage``, ``emit_log``) and lifecycle hooks may return an awaitable, which the kernel
awaits on its own so that one failing plugin silences no other.

The ``firstresult`` request-path hooks (``select_provider``, ``transform_*``, ``parse_usage``)
belong to the plugin that registered the provider type (``register_providers``) or the strategy
(``register_strategies``); a type or strategy registered by two plugins stops start-up, naming
both. The kernel asks the owner's implementation first, directly, and the other plugins'
implementations (in pluggy's order) only when the owner has none or returns ``None``; so an
implementation returns ``None`` at once for a ``provider.type`` (or strategy name) it did not
register. A provider that cannot serve one request raises
:class:`truckllm.errors.UnsupportedRequest` instead of returning ``None``.

``HOOKSPEC_VERSION`` changes only when a hook changes incompatibly. A plugin declares the version
it was written for with a module-level ``TRUCKLLM_API = 1``; the kernel refuses to load a plugin
declaring another version.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from pluggy import HookimplMarker, HookspecMarker

from truckllm._internal.dialect import InboundDialect
from truckllm._internal.mounts import Mount
from truckllm._internal.store import Store
from truckllm._internal.view import GatewayView
from truckllm.types import (
    Alert,
    CacheContext,
    CachedAnswer,
    Candidate,
    ChatRequest,
    GuardrailSpec,
    Logger,
    PriceEntry,
    Provider,
    ProviderResult,
    ProviderSpec,
    RequestRecord,
    SelectionContext,
    StrategySpec,
    StreamTranslator,
    UpstreamRequest,
    UpstreamResponse,
    Usage,
)

HOOKSPEC_VERSION = 1
"""The plugin API version this kernel serves."""

hookspec = HookspecMarker("truckllm")
"""Marks a hook specification (kernel use)."""

hookimpl = HookimplMarker("truckllm")
"""Marks a plugin's hook implementation: ``@hookimpl def transform_request(...)``."""


# --- registration: called once per plugin manager, at start-up and on reload ---------------------


@hookspec
def register_providers(register: Callable[[ProviderSpec], None]) -> None:
    """Declare the provider types this plugin serves.

    Called once when the kernel builds its plugin manager, before config is validated, so that
    ``providers.<name>.type`` can be checked. A type registered twice stops start-up.

    :param register: call it once per :class:`~truckllm.types.ProviderSpec`.

    :returns: ``None``.

    .. versionadded:: 0.1
    """


@hookspec
def register_strategies(register: Callable[[StrategySpec], None]) -> None:
    """Declare the balancing strategies this plugin implements in ``select_provider``.

    :param register: call it once per :class:`~truckllm.types.StrategySpec`.

    :returns: ``None``.

    .. versionadded:: 0.1
    """


@hookspec
def register_stores(register: Callable[[str, type[Store]], None]) -> None:
    """Declare runtime-store classes: ``register("redis", RedisStore)``.

    The kernel builds the one named by ``store.type`` in the app's lifespan, decoding the rest of
    the ``store:`` section strictly with the class's ``Options`` struct, and registers the instance
    with the plugin manager so that its ``store_usage`` hookimpl is called.

    :param register: call it with the store type name and its class, which implements
        :class:`truckllm.kit.store.Store` (and optionally :class:`truckllm.kit.store.CooldownPush`).

    :returns: ``None``.

    .. versionadded:: 0.1
    """


@hookspec
def register_loggers(register: Callable[[str, type[Logger]], None]) -> None:
    """Declare logger classes: ``register("stdout", StdoutLogger)``.

    The kernel builds each logger named in ``loggers:`` in the app's lifespan, with its
    ``Options`` struct decoded strictly from the config entry, and registers the instance with the
    plugin manager so that its ``emit_log`` hookimpl is called.

    :param register: call it with the logger name and its class (a
        :class:`~truckllm.types.Logger`; one that reports figures of its own implements
        :class:`~truckllm.types.LoggerMetrics` too).

    :returns: ``None``.

    .. versionadded:: 0.1
    """


@hookspec
def register_prices(register: Callable[[PriceEntry], None]) -> None:
    """Offer a price book: the price and limits of models by provider type.

    Called once per plugin manager. A deployment without ``price:`` in the config takes the
    book's entry for its provider's type and upstream model (``price:`` always wins); the cost
    strategy, budgets, usage records and context-window fallbacks use it. Two entries for the
    same (type, model): the later registered wins, and a warning names both sources.

    :param register: call it once per :class:`~truckllm.types.PriceEntry`.
    :returns: ``None``.

    .. versionadded:: 0.2
    """


@hookspec
def register_dialects(register: Callable[[InboundDialect], None]) -> None:
    """Declare inbound API dialects (front doors speaking another API's format).

    Called once per plugin manager. Each registered object is a
    :class:`truckllm.kit.dialect.InboundDialect`: its name, its routes, and how to parse requests,
    render errors and translate answers. The kernel mounts the routes at start-up (a new dialect
    plugin needs a restart). A name registered twice stops start-up.

    :param register: call it once per dialect object.
    :returns: ``None``.

    .. versionadded:: 0.1
    """


@hookspec
def register_mounts(register: Callable[[Mount], None]) -> None:
    """Declare pages and JSON endpoints served under the plugin's own prefix, behind the admin
    sign-in (a web console, a plugin's own admin API).

    Called once per plugin manager. Each :class:`truckllm.kit.web.Mount` names a prefix and a
    factory of starlette routes relative to it; the kernel calls the factory at start-up with the
    :class:`~truckllm.kit.view.GatewayView` and admits a request to a route only with the admin
    token or a signed-in admin session (``GatewayView.sessions``), checking the session's CSRF
    token on every request that may change something. A prefix under the kernel's own
    (``/v1``, ``/admin``, ``/metrics``...) or overlapping another mount's stops start-up. A mount
    with ``auth="gateway_key"`` serves clients instead: it admits any valid gateway key
    (``Authorization: Bearer``) and tells the routes who called
    (:func:`truckllm.kit.web.gateway_caller`).

    :param register: call it once per mount.
    :returns: ``None``.

    .. versionadded:: 0.3
    """


@hookspec
def register_guardrails(register: Callable[[GuardrailSpec], None]) -> None:
    """Declare guardrail types: checks that may allow, block or modify (mask) a request before it
    goes upstream and its answer before the client reads it, on every front door.

    Called once per plugin manager. Each ``guardrails:`` entry of the config names a type; the
    kernel builds it with ``spec.make(options)`` (``options`` decoded strictly into
    ``spec.options``) once per config version, and calls its ``check`` with a
    :class:`~truckllm.types.GuardSubject` under the entry's timeout and failure mode (fail
    closed by default). A type registered twice stops start-up.

    :param register: call it once per :class:`~truckllm.types.GuardrailSpec`.
    :returns: ``None``.

    .. versionadded:: 0.3
    """


# --- request path: synchronous, pure, no I/O ------------------------------------------------------


@hookspec(firstresult=True)
def select_provider(
    strategy: str, candidates: Sequence[Candidate], context: SelectionContext
) -> list[Candidate] | None:
    """Once per request: order its (deployment, key) candidates, best first.

    The kernel has already removed keys that are cooling down, ejected or over their limits.
    Return every candidate you are willing to try, in order; the kernel tries them in that order.
    Must be pure and cheap: no I/O, no awaiting, no sleeping. Not called when only one
    candidate is usable (there is nothing to order), so a strategy's state sees only the
    requests that had a choice.

    :param strategy: the alias's ``strategy``, e.g. ``"weighted"``.
    :param candidates: the usable candidates, at least two.
    :param context: the clock, a random source and per-alias scratch state.
    :returns: the ordered candidates, or ``None`` if ``strategy`` is not yours.

    First non-None result wins.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def transform_request(
    provider: Provider, model: str, request: ChatRequest, api_key: str
) -> UpstreamRequest | None:
    """Once per attempt: build the upstream call for one provider; the kernel sends it.

    May raise :class:`truckllm.errors.UnsupportedRequest` when this provider cannot serve the
    request as asked (the kernel then tries another candidate).

    :param provider: the ``providers.<name>`` entry; check ``provider.type``.
    :param model: the deployment's upstream model name.
    :param request: the client's request, decoded and validated once.
    :param api_key: this attempt's key value; never log it, never put it in a body.
    :returns: URL, headers and body, or ``None`` if ``provider.type`` is not yours.

    First non-None result wins.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def transform_response(
    provider: Provider, request: ChatRequest, response: UpstreamResponse, model: str
) -> ProviderResult | None:
    """Once per non-stream attempt (and per stream attempt that failed before streaming).

    Read the complete upstream answer, success or error: translate a success into the client's
    dialect, classify an error (:class:`~truckllm.types.UpstreamError`) and read rate-limit
    headers.

    :param provider: the provider the attempt went to.
    :param request: the client's request.
    :param response: status, lower-case headers and the whole body.
    :param model: the deployment's upstream model name (for answers that do not name it).
    :returns: the result, or ``None`` if ``provider.type`` is not yours.

    First non-None result wins.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def transform_stream(
    provider: Provider, request: ChatRequest, response: UpstreamResponse, model: str
) -> StreamTranslator | None:
    """Once per stream attempt whose upstream answered 2xx: make the stream's translator.

    :param provider: the provider the attempt went to.
    :param request: the client's request.
    :param response: status and headers; ``body`` is empty (the stream follows).
    :param model: the deployment's upstream model name (for streams that do not name it).
    :returns: a fresh :class:`~truckllm.types.StreamTranslator`, or ``None`` if not yours.

    First non-None result wins.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def parse_usage(provider: Provider, request: ChatRequest, body: bytes) -> Usage | None:
    """Once per successful non-stream answer: the token counts it reports.

    Streams report usage through their translator's ``usage`` attribute instead.

    :param provider: the provider that answered.
    :param request: the client's request.
    :param body: the upstream's response body, as received.
    :returns: the usage, or ``None`` if ``provider.type`` is not yours.

    First non-None result wins.

    .. versionadded:: 0.1
    """


# --- response caches: may do I/O -----------------------------------------------------------------


@hookspec
def cache_lookup(request: ChatRequest, context: CacheContext) -> Awaitable[CachedAnswer | None] | None:
    """Once per request a cache may answer: a stored answer to send instead of asking upstream.

    Called after the gateway key was checked, the request decoded and its alias resolved and
    admitted (the key's rpm counts a cached answer; its tpm and budget are charged nothing), and
    before a candidate is selected. Not called when the client sent ``Cache-Control: no-cache``
    or ``no-store`` (the answer says ``x-truckllm-cache: bypass``). The implementations are asked
    in pluggy's order and the first answer wins; one that raises counts as a miss. The kernel
    sends a hit as it is (a whole body, or the stream's frames replayed in order) with
    ``x-truckllm-cache: hit``, and records it with ``cost_usd`` 0 and, in ``extra``, ``cache:
    hit`` and ``cost_saved_usd``; every answer of a gateway with a cache says ``hit``, ``miss``
    or ``bypass`` (none without one). A cache never answers across gateway keys unless its own
    config says so (``context.gateway_key``).

    :param request: the client's request, decoded.
    :param context: the alias, gateway key, dialect and shared storage (:class:`CacheContext`).
    :returns: ``None`` (a miss), or an awaitable of the :class:`CachedAnswer` or ``None``.

    .. versionadded:: 0.2
    """


@hookspec
def cache_store(request: ChatRequest, context: CacheContext, answer: CachedAnswer) -> Awaitable[None] | None:
    """Once per complete successful answer to a request that was looked up and missed.

    Never for an error, a stream cut short or ended by an error event, or a client that left
    before the end; not when the client sent ``Cache-Control: no-store``; never for a hit. Called
    once the answer is complete: a whole answer just before it is sent, a stream after its last
    frame was sent (before the response is closed). Streams over 16 MiB are not offered.

    :param request: the client's request, decoded.
    :param context: as given to ``cache_lookup``.
    :param answer: the answer exactly as the client received it, with its usage and cost.
    :returns: ``None``, or an awaitable the kernel awaits (its failure is logged, never raised).

    .. versionadded:: 0.2
    """


# --- after the response: may do I/O ---------------------------------------------------------------


@hookspec
def store_usage(record: RequestRecord) -> Awaitable[None] | None:
    """Once per finished request, for the configured store, off the response path.

    :param record: the finished request; frozen; key names only.
    :returns: ``None``, or an awaitable the kernel awaits.

    .. versionadded:: 0.1
    """


@hookspec
def emit_log(record: RequestRecord) -> Awaitable[None] | None:
    """Once per finished request, for every logger, after the response was sent.

    A logger that raises or is slow never fails or delays a request: the kernel awaits each
    result separately, off the response path, and counts failures.

    :param record: the finished request; frozen; key names only, never key values.
    :returns: ``None``, or an awaitable the kernel awaits.

    .. versionadded:: 0.1
    """


@hookspec
def emit_alert(alert: Alert) -> Awaitable[None] | None:
    """Once per alert (a budget threshold crossed, a provider key ejected, enabled, disabled, its
    credential failing), for every logger, off the request path; the kernel sends each alert once
    per threshold and period across every process sharing the store (``alert.id`` is the same
    everywhere, for receivers that dedupe).

    :param alert: the :class:`~truckllm.types.Alert`.
    :returns: ``None`` or an awaitable.

    .. versionadded:: 0.3
    """


@hookspec
def render_metrics() -> bytes | None:
    """When ``GET /metrics`` is scraped: Prometheus text to include in the answer.

    Every implementation's text is concatenated (each must use its own metric names).

    :returns: Prometheus text exposition bytes, or ``None``.

    .. versionadded:: 0.1
    """


# --- lifecycle -----------------------------------------------------------------------------------


@hookspec
def startup(app: GatewayView) -> Awaitable[None] | None:
    """Once when the gateway starts serving (in the ASGI lifespan), after stores and loggers.

    :param app: the gateway's live state, never a secret: ``app.snapshot()`` (keys, in flight,
        queues, reloads, other loggers' figures), ``app.runtime`` (aliases, providers).
    :returns: ``None``, or an awaitable the kernel awaits.

    .. versionadded:: 0.1
    """


@hookspec
def shutdown(app: GatewayView) -> Awaitable[None] | None:
    """Once when the gateway stops, after in-flight requests drained: flush and close.

    :param app: the gateway's live state, never a secret: ``app.snapshot()`` (keys, in flight,
        queues, reloads, other loggers' figures), ``app.runtime`` (aliases, providers).
    :returns: ``None``, or an awaitable the kernel awaits.

    .. versionadded:: 0.1
    """
