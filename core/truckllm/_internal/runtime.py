"""A config snapshot made ready to serve: providers, candidates, effective routing.

One :class:`Runtime` is built per config version and never changed; the gateway swaps it as a
whole on reload, and requests keep the runtime they started with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from loguru import logger

from truckllm._internal.auth import KeyRing
from truckllm._internal.config.loader import merge_routing
from truckllm._internal.config.schema import Config, DeploymentConfig, ModelConfig, RoutingConfig
from truckllm._internal.health import HealthRegistry
from truckllm._internal.plugins import PluginHost
from truckllm._internal.pricebook import EMPTY_BOOK, PriceBook, Pricing, dearer, resolve
from truckllm._internal.scrub import Scrubber, config_secrets
from truckllm._internal.secrets import Secret
from truckllm.types import Candidate, Deployment, KeyRef, Provider, ProviderSpec

__all__ = [
    "DIRECT_MODEL",
    "MAX_DIRECT_PLANS",
    "UNKNOWN_ALIAS",
    "AliasPlan",
    "Runtime",
    "build_runtime",
    "warn_unpriced",
]

MAX_DIRECT_PLANS = 1000
"""``provider/model`` plans kept per config version (and whose live stats are kept)."""
DIRECT_MODEL = re.compile(r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._:@+/-]{0,255}$")
"""What a model named by a client in ``provider/model`` may look like."""
UNKNOWN_ALIAS = "<unknown>"
"""The alias a record carries when the client named a model the config does not serve: one
bucket, so that names made up by clients cannot grow usage rows or metric labels."""


@dataclass(frozen=True)
class AliasPlan:
    """How one alias is served."""

    alias: str
    strategy: str
    candidates: tuple[Candidate, ...]
    routing: RoutingConfig
    candidate_routing: dict[str, RoutingConfig]
    fallbacks: tuple[str, ...]
    context_window_fallbacks: tuple[str, ...]
    endpoints: frozenset[str]
    owned_by: str
    pricing: tuple[Pricing, ...] = ()  # per deployment index: its price and where it came from


@dataclass(frozen=True)
class Runtime:
    """An immutable, ready-to-serve view of one config version."""

    config: Config
    host: PluginHost
    providers: dict[str, Provider]
    specs: dict[str, ProviderSpec]
    secrets: dict[tuple[str, str], Secret]
    aliases: dict[str, AliasPlan]
    keyring: KeyRing
    health: HealthRegistry
    version: int = 0
    source: str = ""
    loaded_at: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)
    direct: dict[str, AliasPlan] = field(default_factory=dict)
    scrubber: Scrubber = field(default_factory=lambda: Scrubber(()))
    prices: dict[tuple[str, str], Pricing] = field(default_factory=dict)  # (provider, model): aliases' dearer
    book: PriceBook = EMPTY_BOOK
    key_names: frozenset[tuple[str, str]] = frozenset()  # (provider, key name) of every configured key

    def plan(self, name: str, allowed: frozenset[str] | None = None) -> AliasPlan | None:
        """The plan for an alias, or for ``provider/model`` where direct addressing is allowed.

        ``provider/model`` reaches a provider only when its config says ``direct: true``, or when
        ``allowed`` (the gateway key's ``models``) names ``provider/*`` or ``provider/model``
        explicitly. Its deployment carries the price the aliases of the config give the same
        provider and model (the dearer, from their ``price:`` or the book), else the price book's
        for the provider's type and the model, else none (a key with a budget cannot use it).
        Plans are made on first use and kept for this config version (at most
        :data:`MAX_DIRECT_PLANS`).
        """
        plan = self.aliases.get(name)
        if plan is not None:
            return plan
        provider, sep, model = name.partition("/")
        if not sep or not model or provider not in self.config.providers:
            return None
        opted_in = self.config.providers[provider].direct or (
            allowed is not None and (name in allowed or f"{provider}/*" in allowed)
        )
        if not opted_in or not DIRECT_MODEL.fullmatch(model):
            return None
        direct = self.direct.get(name)
        if direct is None:
            pricing = self.direct_pricing(provider, model)
            model_config = ModelConfig(deployments=(DeploymentConfig(provider=provider, model=model),))
            keep = len(self.direct) < MAX_DIRECT_PLANS
            direct = _plan(
                name,
                model_config,
                self.config,
                self.providers,
                self.specs,
                self.health,
                self.host.registry().default_strategy,
                self.book,
                keep=keep,
                direct_pricing=pricing,
            )
            if keep:
                self.direct[name] = direct
        return direct

    def direct_pricing(self, provider: str, model: str) -> Pricing:
        """What ``provider/model`` is charged: the aliases' dearer price for it, else the book's."""
        known = self.prices.get((provider, model))
        if known is not None:
            return known
        return resolve(None, self.providers[provider], model, self.book)

    def api_key(self, candidate: Candidate) -> str:
        """The plain key value for one attempt (empty for key-less providers)."""
        secret = self.secrets.get((candidate.key.provider, candidate.key.name))
        return secret.reveal() if secret is not None else ""


def _plan(
    alias: str,
    model: ModelConfig,
    config: Config,
    providers: dict[str, Provider],
    specs: dict[str, ProviderSpec],
    health: HealthRegistry,
    default_strategy: str,
    book: PriceBook = EMPTY_BOOK,
    keep: bool = True,
    direct_pricing: Pricing | None = None,
) -> AliasPlan:
    """The candidates of one alias, with the routing each inherits and each deployment's price
    (``direct_pricing``: the one deployment of a ``provider/model`` plan is priced so)."""
    candidates: list[Candidate] = []
    pricing: list[Pricing] = []
    candidate_routing: dict[str, RoutingConfig] = {}
    endpoints: set[str] = set()
    for index, dep in enumerate(model.deployments):
        pc = config.providers[dep.provider]
        spec = specs[dep.provider]
        endpoints |= spec.endpoints
        priced = direct_pricing or resolve(dep.price, providers[dep.provider], dep.model, book)
        pricing.append(priced)
        deployment = Deployment(
            alias=alias,
            index=index,
            provider=dep.provider,
            model=dep.model,
            weight=dep.weight,
            priority=dep.priority,
            price=priced.price,
            context_window=priced.entry.context_window if priced.entry is not None else None,
        )
        keys = pc.keys if spec.needs_keys or pc.keys else ()
        key_refs = [
            (
                KeyRef(
                    provider=dep.provider,
                    name=k.name,
                    weight=k.weight,
                    rpm=k.rpm,
                    tpm=k.tpm,
                    max_in_flight=k.max_in_flight,
                ),
                k.routing,
            )
            for k in keys
            if k.models is None or dep.model in k.models
        ]
        if not key_refs:
            key_refs = [(KeyRef(provider=dep.provider, name="-"), None)]
        for ref, key_routing in key_refs:
            cid = f"{alias}#{index}:{dep.provider}/{ref.name}"
            candidates.append(
                Candidate(
                    id=cid,
                    deployment=deployment,
                    provider=providers[dep.provider],
                    key=ref,
                    stats=health.pair(alias, dep.provider, dep.model, ref.name, keep=keep),
                )
            )
            candidate_routing[cid] = merge_routing(
                config.routing, pc.routing, model.routing, dep.routing, key_routing
            )
    return AliasPlan(
        alias=alias,
        strategy=model.strategy or default_strategy,
        candidates=tuple(candidates),
        routing=merge_routing(config.routing, model.routing),
        candidate_routing=candidate_routing,
        fallbacks=model.fallbacks,
        context_window_fallbacks=model.context_window_fallbacks,
        endpoints=frozenset(endpoints),
        owned_by=config.providers[model.deployments[0].provider].type,
        pricing=tuple(pricing),
    )


def _alias_prices(aliases: dict[str, AliasPlan]) -> dict[tuple[str, str], Pricing]:
    """Per (provider, model) the aliases serve, the dearer of their prices, field by field (two
    aliases price one model differently: a ``provider/model`` request is reserved and charged at
    the dearer). Unpriced deployments give nothing: the book prices the model or nothing does."""
    prices: dict[tuple[str, str], Pricing] = {}
    for plan in aliases.values():
        seen: set[int] = set()
        for cand in plan.candidates:
            dep = cand.deployment
            if dep.index in seen or dep.index >= len(plan.pricing):
                continue
            seen.add(dep.index)
            priced = plan.pricing[dep.index]
            if priced.price is None:
                continue
            key = (dep.provider, dep.model)
            known = prices.get(key)
            if known is None or known.price is None:
                prices[key] = priced
            else:
                prices[key] = Pricing(
                    price=dearer(known.price, priced.price),
                    origin="config" if "config" in (known.origin, priced.origin) else "book",
                    entry=known.entry or priced.entry,
                )
    return prices


def warn_unpriced(aliases: dict[str, AliasPlan]) -> list[str]:
    """Log a warning for each configured alias deployment without a price (neither ``price:`` nor
    the book): its cost counts as $0 and a key with a budget is never served by it. Returns the
    warnings."""
    warnings = []
    for alias, plan in aliases.items():
        seen: set[int] = set()
        for cand in plan.candidates:
            dep = cand.deployment
            if dep.index in seen or dep.price is not None:
                continue
            seen.add(dep.index)
            message = (
                f"model {alias!r}: deployment {dep.index} (provider {dep.provider!r}, type "
                f"{cand.provider.type!r}, model {dep.model!r}) has no price: neither price: in the config "
                "nor the price book knows it; its cost counts as $0 and keys with a budget are not served "
                "by it"
            )
            logger.warning(message)
            warnings.append(message)
    return warnings


def build_runtime(
    config: Config,
    host: PluginHost,
    health: HealthRegistry,
    *,
    version: int = 0,
    source: str = "",
    warn: bool = True,
) -> Runtime:
    """Resolve providers, candidates, the routing each candidate inherits and each deployment's
    price (``price:`` of the config, else the plugins' price book). ``warn``: log a warning for
    every alias deployment with no price."""
    providers: dict[str, Provider] = {}
    specs: dict[str, ProviderSpec] = {}
    secrets: dict[tuple[str, str], Secret] = {}
    for name, pc in config.providers.items():
        spec = host.providers[pc.type]
        specs[name] = spec
        default = spec.resolve(pc.options)[0] if spec.resolve is not None else None
        base_url = (pc.base_url or default or spec.default_base_url).rstrip("/")
        providers[name] = Provider(
            name=name, type=pc.type, base_url=base_url, headers=dict(pc.headers), options=pc.options
        )
        for key in pc.keys:
            if key.value is not None:
                secrets[(name, key.name)] = key.value

    registry_default = host.registry().default_strategy
    aliases = {
        alias: _plan(alias, model, config, providers, specs, health, registry_default, host.prices)
        for alias, model in config.models.items()
    }
    if warn:
        warn_unpriced(aliases)
    return Runtime(
        config=config,
        host=host,
        providers=providers,
        specs=specs,
        secrets=secrets,
        aliases=aliases,
        keyring=KeyRing(config.keys),
        health=health,
        version=version,
        source=source,
        prices=_alias_prices(aliases),
        book=host.prices,
        key_names=frozenset(
            [(name, key.name) for name, pc in config.providers.items() for key in pc.keys]
            + [(name, "-") for name in config.providers]  # the one key of a key-less provider
        ),
        scrubber=Scrubber(config_secrets(config)),
    )
