"""The shipped price data: every file decodes strictly, every entry is valid, dated and sourced,
and no (provider type, model) is listed twice."""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from importlib import resources

import msgspec
import pytest
import truckllm_prices

from truckllm._internal.pricebook import check_entry
from truckllm.types import PriceEntry

FILES = truckllm_prices.load()
ENTRIES = truckllm_prices.entries()
PRICED_PRESETS = {"groq", "mistral", "deepseek", "xai", "together", "fireworks", "openrouter", "perplexity"}
LOCAL_PRESETS = {"ollama", "vllm", "lmstudio"}  # the operator's own machine: free, never in the book
RERANK_TYPES = {"cohere", "jina", "voyage"}  # issue 20: rerank vendors
KNOWN_TYPES = (
    {"openai", "anthropic", "gemini", "bedrock", "vertex", "vertex-anthropic", "azure"}
    | {f"openai:{preset}" for preset in PRICED_PRESETS}
    | RERANK_TYPES
)


def file_name(provider_type: str) -> str:
    """A provider type's data file: ``openai:groq`` is ``openai.groq.json`` (no ``:`` in a file name)."""
    return provider_type.replace(":", ".") + ".json"


def test_every_provider_type_of_issue_16_has_a_file() -> None:
    assert {f.provider_type for f in FILES} == KNOWN_TYPES
    names = sorted(p.name for p in resources.files(truckllm_prices.DATA_PACKAGE).iterdir())
    assert [n for n in names if n.endswith(".json")] == sorted(file_name(t) for t in KNOWN_TYPES)


def test_a_local_preset_has_no_prices() -> None:
    types = {e.provider_type for e in ENTRIES}
    assert not types & {f"openai:{preset}" for preset in LOCAL_PRESETS}
    assert {f"openai:{preset}" for preset in PRICED_PRESETS} <= types


def test_every_priced_preset_is_a_preset_of_the_openai_provider() -> None:
    from truckllm_provider_openai.presets import PRESETS

    assert set(PRESETS) == PRICED_PRESETS | LOCAL_PRESETS
    assert all(PRESETS[name].local for name in LOCAL_PRESETS)
    assert not any(PRESETS[name].local for name in PRICED_PRESETS)


def test_a_file_with_an_unknown_field_is_refused() -> None:
    body = b'{"provider_type": "x", "source": "https://x", "models": [], "extra": 1}'
    with pytest.raises(msgspec.ValidationError, match="extra"):
        msgspec.json.decode(body, type=truckllm_prices.DataFile)


@pytest.mark.parametrize("entry", ENTRIES, ids=[f"{e.provider_type}/{e.model}" for e in ENTRIES])
def test_every_entry_is_valid_dated_and_sourced(entry: PriceEntry) -> None:
    assert (
        check_entry(entry) is entry
    )  # the kernel's own check: prices >= 0 and finite, limits >= 1, ISO date
    for name in ("input", "output", "cached_input", "cache_write", "reasoning"):
        value = getattr(entry.price, name)
        assert value is None or (math.isfinite(value) and value >= 0), name
    read = dt.date.fromisoformat(entry.date)
    assert dt.date(2024, 1, 1) <= read <= dt.date.today()
    assert entry.source.startswith("https://")
    assert entry.model == entry.model.strip() and " " not in entry.model
    if entry.price.cached_input is not None:
        assert entry.price.cached_input <= entry.price.input  # a cache hit never costs more than a miss
    if entry.context_window and entry.max_output_tokens:
        assert entry.max_output_tokens <= entry.context_window


DAYS = sorted(
    {dt.date.today()} | {dt.date.fromisoformat(m.effective) for f in FILES for m in f.models if m.effective}
)


@pytest.mark.parametrize("day", DAYS, ids=str)
def test_no_model_is_listed_twice_on_any_day(day: dt.date) -> None:
    entries = truckllm_prices.entries(day)
    twice = [key for key, n in Counter((e.provider_type, e.model) for e in entries).items() if n > 1]
    assert twice == []
    for e in entries:
        check_entry(e)  # scheduled lines are valid too


def test_a_line_is_scheduled_at_most_once_per_date() -> None:
    lines = Counter(
        (f.provider_type, name, m.effective)
        for f in FILES
        for m in f.models
        for name in (m.model, *m.aliases)
    )
    assert [key for key, n in lines.items() if n > 1] == []


def test_a_scheduled_price_applies_from_its_date() -> None:
    data = truckllm_prices.DataFile(
        provider_type="x",
        source="https://x",
        models=(
            truckllm_prices.ModelPrice(model="m", input=1, output=2, date="2026-01-01"),
            truckllm_prices.ModelPrice(
                model="m", input=3, output=4, date="2026-01-01", effective="2027-01-01"
            ),
            truckllm_prices.ModelPrice(
                model="later", input=5, output=6, date="2026-01-01", effective="2027-06-01"
            ),
        ),
    )

    def book(day: dt.date) -> dict[str, float]:
        return {e.model: e.price.input for e in truckllm_prices._entries(data, day)}

    assert book(dt.date(2026, 12, 31)) == {"m": 1}  # nothing of `later` yet: unpriced until then
    assert book(dt.date(2027, 1, 1)) == {"m": 3}
    assert book(dt.date(2027, 6, 1)) == {"m": 3, "later": 5}


UNIT_RATES = ("image", "images", "audio_second", "character", "search_unit")


def test_every_file_prices_at_least_one_model() -> None:
    """A chat model's output, or (a rerank vendor's file) its input tokens or a unit of work."""
    for data in FILES:
        assert any(
            line.output > 0
            or (data.provider_type in RERANK_TYPES and line.input > 0)
            or any(getattr(line, name) for name in UNIT_RATES)
            for line in data.models
        ), data.provider_type
