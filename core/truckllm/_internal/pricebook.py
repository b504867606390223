"""The price book: what plugins registered through ``register_prices``, and each deployment's price.

A deployment's price comes from ``price:`` in the config when it has one (always), else from the
book's entry for (its provider's type, its upstream model), else it has none. :class:`Pricing`
carries the price and where it came from (``config``, ``book``, ``none``), with the book's entry
when one matched (its date, source, context window and max output tokens), also when the config's
price wins.

Lookups try the model's name exactly, then its normal form (:func:`normal_model`):

- a resource path or ARN is cut to the model's own name: ``projects/p/locations/l/publishers/
  google/models/gemini-2.5-pro`` → ``gemini-2.5-pro``, ``models/gemini-2.5-pro`` →
  ``gemini-2.5-pro``, ``arn:aws:bedrock:...:inference-profile/us.anthropic.claude...`` →
  ``us.anthropic.claude...``;
- a Bedrock cross-region inference profile's geography goes (``us.``, ``eu.``, ``apac.``,
  ``jp.``, ``au.``, ``ca.``, ``us-gov.``, ``global.``): ``us.anthropic.claude-sonnet-4-...`` →
  ``anthropic.claude-sonnet-4-...`` (the in-region price; a book may list a profile exactly);
- a Vertex version suffix goes: ``claude-sonnet-4@20250514`` → ``claude-sonnet-4``;
- a Bedrock version suffix goes: ``anthropic.claude-sonnet-4-6-v1:0`` → ``anthropic.claude-sonnet-4-6``;
- a dated snapshot or version suffix goes: ``gpt-4o-2024-08-06`` → ``gpt-4o``,
  ``claude-sonnet-4-20250514`` → ``claude-sonnet-4``, ``gemini-2.0-flash-001`` →
  ``gemini-2.0-flash``, ``claude-3-5-haiku-latest`` → ``claude-3-5-haiku``.

Each shorter name is looked up in turn (``eu.anthropic.claude-...-v1:0`` finds
``anthropic.claude-...-v1:0``), then the normal form among the normal forms of the book's names
(two entries with one normal form: the dearer one). A snapshot priced unlike its family is found
exactly, as long as the book lists it.

A provider whose options name a ``preset`` (an OpenAI-compatible service behind ``type: openai``)
is looked up as ``<type>:<preset>`` (``openai:groq``), never as OpenAI itself.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from loguru import logger

from truckllm._internal.config.schema import PriceConfig
from truckllm._internal.units import worst_unit_cost
from truckllm.types import Price, PriceEntry, Provider, Usage

__all__ = [
    "PriceBook",
    "PriceBookBuilder",
    "Pricing",
    "batch_fraction",
    "book_type",
    "check_entry",
    "dearer",
    "normal_model",
    "price_from_config",
    "resolve",
    "worst_cost",
]

PRICE_FIELDS = ("input", "output", "cached_input", "cache_write", "reasoning")
"""The token rates of :class:`~truckllm.types.Price` (USD per million), in the order they are shown."""
UNIT_FIELDS = ("image", "audio_second", "character", "search_unit", "request", "batch")
"""The per-unit rates of :class:`~truckllm.types.Price` (USD per unit; ``batch`` a fraction),
besides the ``images`` table, in the order they are shown."""
DEFAULT_BATCH_FRACTION = 0.5
"""The fraction of the normal price charged for batch work when ``Price.batch`` is unset."""

_RESOURCE = re.compile(r"^(?:.*/)?models/(?P<model>[^/]+)$")
_ARN = re.compile(
    r"^arn:aws[a-z-]*:bedrock:[^/]*:(?:inference-profile|foundation-model|[a-z-]+)/(?P<model>[^/]+)$"
)
_GEOGRAPHY = re.compile(r"^(?:us|eu|apac|jp|au|ca|us-gov|global)\.(?=[a-z0-9-]+\.)")
_VERTEX_VERSION = re.compile(r"@[A-Za-z0-9._-]+$")
_BEDROCK_VERSION = re.compile(r"-v\d+(?::\d+)*(?::\d+k)?$")
_SNAPSHOT = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|\d{3}|latest)$")


def _forms(model: str) -> list[str]:
    """``model`` and each shorter name of it, one rule after the other (the last: its normal form)."""
    forms = [model.strip()]
    arn = _ARN.match(forms[-1])
    if arn:
        forms.append(arn.group("model"))
    resource = _RESOURCE.match(forms[-1])
    if resource:
        forms.append(resource.group("model"))
    for rule in (_GEOGRAPHY, _VERTEX_VERSION, _BEDROCK_VERSION, _SNAPSHOT):
        shorter = rule.sub("", forms[-1])
        if shorter != forms[-1]:
            forms.append(shorter)
    return forms


def normal_model(model: str) -> str:
    """``model`` without what names one snapshot, region or path of it (see the module's doc)."""
    return _forms(model)[-1]


def book_type(provider: Provider) -> str:
    """The provider type ``provider`` is priced as: its ``type``, or ``<type>:<preset>`` when its
    options name a preset (an OpenAI-compatible service is not priced as OpenAI)."""
    options = provider.options
    preset = options.get("preset") if isinstance(options, Mapping) else getattr(options, "preset", None)
    return f"{provider.type}:{preset}" if isinstance(preset, str) and preset else provider.type


def check_entry(entry: object) -> PriceEntry:
    """``entry`` as a valid :class:`PriceEntry`.

    :raises TypeError: it is not a ``PriceEntry``.
    :raises ValueError: a name is empty, a price is negative or not finite, a limit is below 1,
        or the date is not an ISO date (``YYYY-MM-DD``).
    """
    if not isinstance(entry, PriceEntry) or not isinstance(entry.price, Price):
        raise TypeError("register() takes a truckllm.types.PriceEntry")
    if not entry.provider_type or not entry.model:
        raise ValueError("a PriceEntry names its provider_type and model")
    rates = [(name, getattr(entry.price, name)) for name in (*PRICE_FIELDS, *UNIT_FIELDS)]
    images = entry.price.images
    if images is not None and not isinstance(images, Mapping):
        raise ValueError(f"{entry.provider_type}/{entry.model}: price.images is not a mapping")
    rates += [(f"images[{tier!r}]", rate) for tier, rate in (images or {}).items()]
    for name, value in rates:
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            raise ValueError(f"{entry.provider_type}/{entry.model}: price.{name} is {value!r}, not a price")
    if entry.price.batch is not None and entry.price.batch > 1:
        raise ValueError(
            f"{entry.provider_type}/{entry.model}: price.batch is a fraction of the price (0 to 1)"
        )
    for name in ("context_window", "max_output_tokens"):
        value = getattr(entry, name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"{entry.provider_type}/{entry.model}: {name} is {value!r}, not a token count")
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", entry.date):
        raise ValueError(f"{entry.provider_type}/{entry.model}: date {entry.date!r} is not YYYY-MM-DD")
    return entry


def _weight(entry: PriceEntry) -> tuple[float, float]:
    return (entry.price.output, entry.price.input)


@dataclass(frozen=True)
class PriceBook:
    """Price entries by (provider type, model), and by the normal form of their model."""

    entries: Mapping[tuple[str, str], PriceEntry]
    normal: Mapping[tuple[str, str], PriceEntry]

    @classmethod
    def of(cls, entries: Iterable[PriceEntry]) -> PriceBook:
        """A book of ``entries`` (a later entry for the same type and model replaces an earlier)."""
        exact: dict[tuple[str, str], PriceEntry] = {}
        for entry in entries:
            exact[(entry.provider_type, entry.model)] = entry
        normal: dict[tuple[str, str], PriceEntry] = {}
        for (kind, model), entry in exact.items():
            key = (kind, normal_model(model))
            known = normal.get(key)
            if known is None or _weight(entry) > _weight(known):
                normal[key] = entry
        return cls(entries=exact, normal=normal)

    def lookup(self, provider_type: str, model: str) -> PriceEntry | None:
        """The entry for ``model`` sold as ``provider_type``: its exact name, then each shorter name
        of it (path, geography, version, snapshot cut one after the other), then the dearest entry
        whose own normal form is the model's."""
        forms = [model, *_forms(model)]
        for name in forms:
            entry = self.entries.get((provider_type, name))
            if entry is not None:
                return entry
        return self.normal.get((provider_type, forms[-1]))

    def __len__(self) -> int:
        return len(self.entries)


EMPTY_BOOK = PriceBook(entries={}, normal={})


class PriceBookBuilder:
    """Collects the entries of every ``register_prices`` implementation, in call order."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], tuple[PriceEntry, str]] = {}

    def add(self, entries: Iterable[PriceEntry], plugin: str) -> None:
        """Add one plugin's entries (a later entry for the same type and model wins, with a warning
        naming both: plugin, source and date)."""
        for entry in entries:
            key = (entry.provider_type, entry.model)
            known = self._entries.get(key)
            if known is not None:
                logger.bind(plugin=plugin).warning(
                    "price book: {}/{} is registered by plugin {!r} ({}, {}) and by plugin {!r} ({}, {}); "
                    "the later, {!r}, is used",
                    entry.provider_type,
                    entry.model,
                    known[1],
                    known[0].source or "no source",
                    known[0].date,
                    plugin,
                    entry.source or "no source",
                    entry.date,
                    plugin,
                )
            self._entries[key] = (entry, plugin)

    def build(self) -> PriceBook:
        """The book."""
        return PriceBook.of(entry for entry, _ in self._entries.values())


@dataclass(frozen=True)
class Pricing:
    """One deployment's price and where it came from.

    :ivar price: USD per million tokens, or ``None`` (unpriced: cost unknown).
    :ivar origin: ``config`` (``price:``), ``book`` (the price book) or ``none``.
    :ivar entry: the book's entry for the deployment's model, when one matched (also when the
        config's price wins: its limits still apply).
    """

    price: Price | None
    origin: Literal["config", "book", "none"]
    entry: PriceEntry | None = None

    @property
    def label(self) -> str:
        """``config``, ``book <date>`` or ``none``."""
        if self.origin == "book" and self.entry is not None:
            return f"book {self.entry.date}"
        return self.origin

    @property
    def context_window(self) -> int | None:
        """The model's context window according to the book, when known."""
        return self.entry.context_window if self.entry is not None else None

    def describe(self) -> dict[str, Any]:
        """A JSON-ready view: price, source, date, source URL, context window, max output tokens."""
        entry = self.entry
        return {
            "price": describe_price(self.price) if self.price is not None else None,
            "price_source": self.origin,
            "price_label": self.label,
            "price_date": entry.date if entry is not None and self.origin == "book" else None,
            "price_url": (entry.source or None) if entry is not None and self.origin == "book" else None,
            "context_window": entry.context_window if entry is not None else None,
            "max_output_tokens": entry.max_output_tokens if entry is not None else None,
        }


UNPRICED = Pricing(price=None, origin="none")


def describe_price(price: Price) -> dict[str, Any]:
    """A JSON-ready view of ``price``: every token rate (``None`` when unset), and the unit rates
    and ``images`` table that are set."""
    out: dict[str, Any] = {f: getattr(price, f) for f in PRICE_FIELDS}
    for name in UNIT_FIELDS:
        value = getattr(price, name)
        if value is not None:
            out[name] = value
    if price.images:
        out["images"] = dict(sorted(price.images.items()))
    return out


def batch_fraction(price: Price) -> float:
    """The fraction of ``price`` charged for batch work (``Price.batch``, default 0.5)."""
    return price.batch if price.batch is not None else DEFAULT_BATCH_FRACTION


def price_from_config(config: PriceConfig) -> Price:
    """The kernel's :class:`Price` for a ``price:`` of the config."""
    return Price(
        input=config.input,
        output=config.output,
        cached_input=config.cached_input,
        cache_write=config.cache_write,
        reasoning=config.reasoning,
        image=config.image,
        images=dict(config.images) if config.images else None,
        audio_second=config.audio_second,
        character=config.character,
        search_unit=config.search_unit,
        request=config.request,
        batch=config.batch,
    )


def dearer(a: Price, b: Price) -> Price:
    """Field by field, the higher of two prices (an unset token rate counts as the rate it stands
    for; an unset unit rate is the other price's; ``images`` tier by tier; ``batch``, a discount,
    the higher fraction)."""
    out: dict[str, Any] = {}
    for name in PRICE_FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        if x is None and y is None:
            out[name] = None
        else:
            out[name] = max(_rate(a, name) if x is None else x, _rate(b, name) if y is None else y)
    for name in UNIT_FIELDS:
        values = [v for v in (getattr(a, name), getattr(b, name)) if v is not None]
        out[name] = max(values) if values else None
    if a.images or b.images:
        tiers: dict[str, float] = dict(a.images or {})
        for tier, rate in (b.images or {}).items():
            tiers[tier] = max(rate, tiers.get(tier, rate))
        out["images"] = tiers
    return Price(**out)


def _rate(price: Price, name: str) -> float:
    """The rate ``price`` charges for ``name`` (an unset one is the input or output rate)."""
    value = getattr(price, name)
    if value is not None:
        return float(value)
    return price.output if name == "reasoning" else price.input


def worst_cost(
    price: Price, prompt_tokens: int, completion_tokens: int, units: Usage | None = None, tier: str = ""
) -> float:
    """The most a request of ``prompt_tokens`` and ``completion_tokens`` (and ``units``, from
    :func:`truckllm._internal.units.request_units`) can cost at ``price``, in USD: every prompt
    token at the dearest prompt rate (input, cached, cache write), every completion token at the
    dearer of output and reasoning, plus its units at their rates (images at their ``tier``'s rate
    when the table names it, else the dearest image rate): what a budget reserves."""
    prompt_rate = max(_rate(price, "input"), _rate(price, "cached_input"), _rate(price, "cache_write"))
    completion_rate = max(_rate(price, "output"), _rate(price, "reasoning"))
    tokens = (prompt_tokens * prompt_rate + completion_tokens * completion_rate) / 1_000_000
    return tokens + worst_unit_cost(price, units, tier)


def resolve(config: PriceConfig | None, provider: Provider, model: str, book: PriceBook) -> Pricing:
    """The price of ``model`` served by ``provider``: ``price:`` of the config, else the book's."""
    entry = book.lookup(book_type(provider), model)
    if config is not None:
        return Pricing(price=price_from_config(config), origin="config", entry=entry)
    if entry is not None:
        return Pricing(price=entry.price, origin="book", entry=entry)
    return UNPRICED
