"""TruckLLM's price book: USD per million tokens of each kind (and per image, second of audio,
character, search unit or call), by provider type and model.

The figures ship with the package, one JSON file per provider type in ``data/`` (each entry dated
and sourced), and are read when the gateway builds its plugin manager; nothing is fetched, at
start-up or ever. ``price:`` in a config always wins over them; see the README for how a model is
found (exact name, then its snapshot, region and version cut away).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from functools import cache
from importlib import resources

import msgspec

from truckllm import hookimpl
from truckllm.types import Price, PriceEntry

__all__ = ["DataFile", "ModelPrice", "entries", "load", "register_prices"]

DATA_PACKAGE = "truckllm_prices.data"


class ModelPrice(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """One model's line in a data file: USD per million tokens, per unit, limits, date (and aliases).

    Unit rates (:class:`truckllm.types.Price`): ``image`` (USD per image at the default size and
    quality), ``images`` (per image by ``"<size>/<quality>"``, ``"<size>"`` or ``"*/<quality>"``),
    ``audio_second``, ``character``, ``search_unit``, ``request`` (per call) and ``batch`` (the
    fraction of the price charged for batch work); a model sold only by the unit has ``input`` and
    ``output`` 0.

    ``aliases``: other names the provider accepts for the same model at the same price
    (``claude-sonnet-4-0`` for ``claude-sonnet-4-20250514``); ``source`` overrides the file's;
    ``effective``: the ISO date from which a scheduled price applies (a model may have several
    lines, one per date; the book takes the latest that has begun).
    """

    model: str
    aliases: tuple[str, ...] = ()
    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    reasoning: float | None = None
    image: float | None = None
    images: dict[str, float] | None = None
    audio_second: float | None = None
    character: float | None = None
    search_unit: float | None = None
    request: float | None = None
    batch: float | None = None
    context_window: int | None = None
    max_output_tokens: int | None = None
    date: str
    effective: str | None = None
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


def _current(lines: tuple[ModelPrice, ...], day: dt.date) -> Iterator[ModelPrice]:
    """Of each model's lines, the one in force on ``day`` (the latest ``effective`` not after it;
    a model whose every line is scheduled later has none yet)."""
    chosen: dict[str, ModelPrice] = {}
    for line in lines:
        if line.effective is not None and dt.date.fromisoformat(line.effective) > day:
            continue
        known = chosen.get(line.model)
        if known is None or (line.effective or "") > (known.effective or ""):
            chosen[line.model] = line
    return iter(chosen.values())


def _entries(data: DataFile, day: dt.date) -> Iterator[PriceEntry]:
    for line in _current(data.models, day):
        price = Price(
            input=line.input,
            output=line.output,
            cached_input=line.cached_input,
            cache_write=line.cache_write,
            reasoning=line.reasoning,
            image=line.image,
            images=line.images,
            audio_second=line.audio_second,
            character=line.character,
            search_unit=line.search_unit,
            request=line.request,
            batch=line.batch,
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
def entries(day: dt.date | None = None) -> tuple[PriceEntry, ...]:
    """Every entry of the book in force on ``day`` (default: today; an alias is an entry of its
    own), read once per process and day."""
    return tuple(entry for data in load() for entry in _entries(data, day or dt.date.today()))


@hookimpl
def register_prices(register: Callable[[PriceEntry], None]) -> None:
    """Register every entry of the book in force today."""
    for entry in entries(dt.date.today()):
        register(entry)
