"""TruckLLM's price book: USD per million tokens of each kind, by provider type and model.

The figures ship with the package, one JSON file per provider type in ``data/`` (each entry dated
and sourced), and are read when the gateway builds its plugin manager; nothing is fetched, at
start-up or ever. ``price:`` in a config always wins over them; see the README for how a model is
found (exact name, then its snapshot, region and version cut away).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cache
from importlib import resources

import msgspec

from truckllm import hookimpl
from truckllm.types import Price, PriceEntry

__all__ = ["DataFile", "ModelPrice", "entries", "load", "register_prices"]

DATA_PACKAGE = "truckllm_prices.data"


class ModelPrice(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """One model's line in a data file: USD per million tokens, limits, date (and aliases).

    ``aliases``: other names the provider accepts for the same model at the same price
    (``claude-sonnet-4-0`` for ``claude-sonnet-4-20250514``); ``source`` overrides the file's.
    """

    model: str
    aliases: tuple[str, ...] = ()
    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    reasoning: float | None = None
    context_window: int | None = None
    max_output_tokens: int | None = None
    date: str
    source: str | None = None
    note: str = ""


class DataFile(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """One provider type's prices: where they come from, notes, and one line per model."""

    provider_type: str
    source: str
    notes: str = ""
    models: tuple[ModelPrice, ...]


def load() -> list[DataFile]:
    """Every data file shipped in the package, decoded strictly, sorted by file name."""
    folder = resources.files(DATA_PACKAGE)
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".json")), key=lambda f: f.name)
    return [msgspec.json.decode(f.read_bytes(), type=DataFile) for f in files]


def _entries(data: DataFile) -> Iterator[PriceEntry]:
    for line in data.models:
        price = Price(
            input=line.input,
            output=line.output,
            cached_input=line.cached_input,
            cache_write=line.cache_write,
            reasoning=line.reasoning,
        )
        for name in (line.model, *line.aliases):
            yield PriceEntry(
                provider_type=data.provider_type,
                model=name,
                price=price,
                context_window=line.context_window,
                max_output_tokens=line.max_output_tokens,
                source=line.source or data.source,
                date=line.date,
            )


@cache
def entries() -> tuple[PriceEntry, ...]:
    """Every entry of the book (an alias is an entry of its own), read once per process."""
    return tuple(entry for data in load() for entry in _entries(data))


@hookimpl
def register_prices(register: Callable[[PriceEntry], None]) -> None:
    """Register every entry of the book."""
    for entry in entries():
        register(entry)
