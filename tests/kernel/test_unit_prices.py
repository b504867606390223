"""Prices beyond tokens: images, seconds of audio, characters, search units, calls.

The classes of bug: a unit charged at the wrong rate (or twice, or not at all); a budget reserving
less than a request can cost; a deployment serving a budgeted key although its price cannot count
the endpoint's work; an upstream's absurd unit count refunding or inflating a budget; a price in
the config or the book not reaching the kernel whole.
"""

from __future__ import annotations

import math

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from truckllm._internal.config.schema import PriceConfig
from truckllm._internal.numbers import MAX_AUDIO_SECONDS, sane_usage
from truckllm._internal.pricebook import (
    batch_fraction,
    check_entry,
    dearer,
    describe_price,
    price_from_config,
    worst_cost,
)
from truckllm._internal.units import (
    BYTES_PER_AUDIO_SECOND,
    covers,
    image_rate,
    image_tier,
    request_units,
    unit_cost,
    worst_unit_cost,
)
from truckllm.types import ChatRequest, Price, PriceEntry, Upload, UploadedFile, Usage

DALLE = Price(
    image=0.04,
    images={"1024x1024/standard": 0.04, "1024x1792/hd": 0.12, "1024x1792": 0.08, "*/hd": 0.08},
)


def json_request(endpoint: str, **fields: object) -> ChatRequest:
    body = msgspec.json.encode({"model": "m", **fields})
    return ChatRequest(endpoint=endpoint, body=body, model="m")


@pytest.mark.parametrize(
    ("tier", "rate"),
    [
        ("1024x1792/hd", 0.12),  # exact
        ("1024x1024/standard", 0.04),  # exact
        ("1024x1792", 0.08),  # size alone, listed
        ("*/hd", 0.08),  # quality alone, listed
        ("1024x1792/standard", 0.08),  # not listed: its size's rate (listed), the only near one
        ("1024x1024/hd", 0.08),  # not listed: its quality's rate
        ("1792x1024/hd", 0.08),  # size unknown, quality listed
        ("1792x1024/standard", 0.12),  # nothing near: the table's dearest, never less
        ("1792x1024", 0.12),  # an unlisted size alone: the dearest
        ("", 0.04),  # nothing asked: the default image rate
    ],
)
def test_an_images_rate_is_its_tier_or_never_less_than_it_may_be(tier: str, rate: float) -> None:
    assert image_rate(DALLE, tier) == rate


def test_an_images_rate_without_a_table_is_the_image_rate_and_none_without_either() -> None:
    assert image_rate(Price(image=0.02), "512x512/standard") == 0.02
    assert image_rate(Price(input=1, output=2), "1024x1024") is None


@pytest.mark.parametrize(
    ("endpoint", "fields", "tier"),
    [
        ("images.generations", {"size": "1024x1536", "quality": "high"}, "1024x1536/high"),
        ("images.generations", {"size": "1024x1536"}, "1024x1536"),
        ("images.generations", {"quality": "hd"}, "*/hd"),
        ("images.generations", {"size": "auto", "quality": "auto"}, ""),
        ("images.generations", {}, ""),
        ("images.generations", {"size": 5}, ""),  # not a string: nothing named
        ("chat", {"size": "1024x1024"}, ""),  # not an images request
    ],
)
def test_the_tier_is_read_from_the_request(endpoint: str, fields: dict[str, object], tier: str) -> None:
    assert image_tier(json_request(endpoint, **fields)) == tier


def test_images_are_charged_per_image_only_when_the_answer_reported_no_tokens() -> None:
    price = Price(input=5, output=40, image=0.5)
    assert unit_cost(price, Usage(images=3, requests=1)) == pytest.approx(1.5)
    tokens = Usage(prompt_tokens=10, completion_tokens=4000, total_tokens=4010, images=3, requests=1)
    assert unit_cost(price, tokens) == 0.0  # charged by its tokens elsewhere


@pytest.mark.parametrize(
    ("price", "usage", "usd"),
    [
        (Price(audio_second=0.0001), Usage(audio_seconds=90.5), 0.00905),
        (Price(character=0.000015), Usage(characters=1000), 0.015),
        (Price(search_unit=0.002), Usage(search_units=3), 0.006),
        (Price(request=0.001), Usage(requests=2), 0.002),
        (Price(request=0.001), Usage(), 0.001),  # a call with a usage is at least one call
        (Price(request=0.0), Usage(requests=1), 0.0),  # free, and priced
        (Price(), Usage(audio_seconds=10, characters=10, search_units=10, images=1), 0.0),  # unpriced
    ],
)
def test_each_unit_is_charged_at_its_rate(price: Price, usage: Usage, usd: float) -> None:
    assert unit_cost(price, usage) == pytest.approx(usd)


rates = st.one_of(st.none(), st.floats(min_value=0, max_value=10, allow_nan=False))
sizes = st.sampled_from(["1024x1024", "1024x1536", "1536x1024", "1792x1024", "*", ""])
qualities = st.sampled_from(["low", "high", "hd", "standard", ""])


def _tier(size: str, quality: str) -> str:
    if size and quality:
        return f"{size}/{quality}"
    return f"*/{quality}" if quality else ("" if size == "*" else size)


@settings(max_examples=300, deadline=None)
@given(
    image=rates,
    table=st.dictionaries(st.builds(_tier, sizes, qualities).filter(bool), st.floats(0, 10), max_size=6),
    audio=rates,
    character=rates,
    search=rates,
    request=rates,
    n=st.integers(1, 10),
    size=sizes,
    quality=qualities,
    seconds=st.floats(0, 10_000),
    chars=st.integers(0, 4096),
    units=st.integers(1, 50),
)
def test_what_a_budget_reserves_covers_what_the_call_can_cost(
    image: float | None,
    table: dict[str, float],
    audio: float | None,
    character: float | None,
    search: float | None,
    request: float | None,
    n: int,
    size: str,
    quality: str,
    seconds: float,
    chars: int,
    units: int,
) -> None:
    """The reservation (worst case of the units known before the call) is never below the cost
    of an answer using at most those units, whatever tier the answer is charged at."""
    price = Price(
        image=image,
        images=table or None,
        audio_second=audio,
        character=character,
        search_unit=search,
        request=request,
    )
    tier = _tier(size, quality)
    worst = Usage(images=n, audio_seconds=seconds, characters=chars, search_units=units, requests=1)
    reserved = worst_unit_cost(price, worst, tier)
    for used in (worst, Usage(images=max(n - 1, 0), requests=1)):
        assert unit_cost(price, used, tier) <= reserved + 1e-12


def test_worst_cost_adds_the_units_to_the_tokens() -> None:
    price = Price(input=5, output=40, images={"1024x1024/low": 0.011, "1024x1536/high": 0.25})
    tokens = worst_cost(price, 100, 1000)
    assert tokens == pytest.approx((100 * 5 + 1000 * 40) / 1e6)
    assert worst_cost(price, 100, 1000, Usage(images=4), "1024x1024/low") == pytest.approx(tokens + 4 * 0.011)
    assert worst_cost(price, 100, 1000, Usage(images=4), "") == pytest.approx(tokens + 4 * 0.25)


@pytest.mark.parametrize(
    ("request_", "units"),
    [
        (json_request("images.generations", prompt="x"), Usage(images=1, requests=1)),
        (json_request("images.generations", prompt="x", n=4), Usage(images=4, requests=1)),
        (json_request("images.generations", prompt="x", n="4"), Usage(images=1, requests=1)),
        (json_request("audio.speech", input="héllo", voice="alloy"), Usage(characters=5, requests=1)),
        (json_request("moderations", input="x"), Usage(requests=1)),
        (json_request("rerank", query="q", documents=["a"] * 250), Usage(search_units=3, requests=1)),
        (
            json_request("rerank", query="q", documents=[{"text": "a" * 4001}]),
            Usage(search_units=1, requests=1),
        ),
        (json_request("rerank", query="q", documents=["a" * 4001] * 40), Usage(search_units=2, requests=1)),
        (json_request("chat", messages=[]), None),
        (json_request("embeddings", input="x"), None),
    ],
)
def test_the_units_a_request_may_use_are_known_before_it_is_sent(
    request_: ChatRequest, units: Usage | None
) -> None:
    assert request_units(request_) == units


@pytest.mark.parametrize(
    ("endpoint", "form", "sizes", "units"),
    [
        ("audio.transcriptions", {}, (25 * BYTES_PER_AUDIO_SECOND + 1,), Usage(audio_seconds=26, requests=1)),
        ("audio.translations", {}, (BYTES_PER_AUDIO_SECOND,), Usage(audio_seconds=1, requests=1)),
        ("images.edits", {"n": "3", "size": "1024x1024"}, (10, 10), Usage(images=3, requests=1)),
        ("images.edits", {"n": "x"}, (10,), Usage(images=1, requests=1)),
    ],
)
def test_an_uploads_units_are_read_from_its_form_and_its_files(
    endpoint: str, form: dict[str, str], sizes: tuple[int, ...], units: Usage
) -> None:
    """A transcription's seconds are reserved from its upload's size at BYTES_PER_AUDIO_SECOND
    (a rate below every common speech encoding); an edit's images from its form's ``n``."""
    files = tuple(
        UploadedFile(field="file", filename="a", content_type="audio/wav", path="/nonexistent", size=size)
        for size in sizes
    )
    request = ChatRequest(endpoint=endpoint, body=b"", model="m", upload=Upload(fields=form, files=files))
    assert request_units(request) == units
    if endpoint == "images.edits" and "size" in form:
        assert image_tier(request) == "1024x1024"


@pytest.mark.parametrize(
    ("price", "endpoint", "covered"),
    [
        (None, "chat", False),
        (Price(), "chat", True),  # a token endpoint: any price (as before)
        (Price(input=0, output=0), "images.generations", False),
        (Price(image=0.04), "images.generations", True),
        (Price(images={"1024x1024": 0.02}), "images.edits", True),
        (Price(input=5, output=40), "images.generations", True),  # tokens reported (gpt-image-1)
        (Price(input=1), "audio.speech", False),  # speech reports no usage: per character only
        (Price(character=0.000015), "audio.speech", True),
        (Price(input=2.5), "audio.transcriptions", True),
        (Price(audio_second=0.0001), "audio.translations", True),
        (Price(), "audio.transcriptions", False),
        (Price(search_unit=0.002), "rerank", True),
        (Price(input=0.05), "rerank", True),
        (Price(), "rerank", False),
        (Price(), "moderations", False),
        (Price(request=0.0), "moderations", True),  # free and priced
        (Price(request=0.0), "audio.speech", True),  # a per-call price covers every endpoint
    ],
)
def test_a_price_covers_an_endpoint_only_when_it_can_count_its_work(
    price: Price | None, endpoint: str, covered: bool
) -> None:
    assert covers(price, endpoint) is covered


def test_usage_adds_every_unit() -> None:
    a = Usage(
        prompt_tokens=1, total_tokens=1, images=2, audio_seconds=1.5, characters=3, search_units=1, requests=1
    )
    b = Usage(images=1, audio_seconds=0.25, characters=4, search_units=2, requests=1)
    assert a + b == Usage(
        prompt_tokens=1,
        total_tokens=1,
        images=3,
        audio_seconds=1.75,
        characters=7,
        search_units=3,
        requests=2,
    )


@pytest.mark.parametrize(
    ("usage", "sane"),
    [
        (Usage(images=-3, requests=1), Usage(requests=1)),
        (Usage(audio_seconds=-1.0), Usage()),
        (Usage(audio_seconds=math.nan), Usage()),
        (Usage(audio_seconds=math.inf), Usage(audio_seconds=MAX_AUDIO_SECONDS)),
        (Usage(search_units=10**12), Usage(search_units=10**9)),
        (Usage(audio_seconds=12.75, characters=10), Usage(audio_seconds=12.75, characters=10)),  # kept as is
    ],
)
def test_an_upstreams_unit_counts_are_clamped(usage: Usage, sane: Usage) -> None:
    assert sane_usage(usage) == sane


def test_a_config_price_reaches_the_kernel_whole() -> None:
    config = msgspec.convert(
        {
            "input": 1,
            "output": 2,
            "image": 0.04,
            "images": {"1024x1024/hd": 0.08},
            "audio_second": 0.0001,
            "character": 0.000015,
            "search_unit": 0.002,
            "request": 0,
            "batch": 0.5,
        },
        PriceConfig,
    )
    price = price_from_config(config)
    assert price == Price(
        input=1,
        output=2,
        image=0.04,
        images={"1024x1024/hd": 0.08},
        audio_second=0.0001,
        character=0.000015,
        search_unit=0.002,
        request=0,
        batch=0.5,
    )
    shown = describe_price(price)
    assert (
        shown["images"] == {"1024x1024/hd": 0.08} and shown["request"] == 0 and shown["cached_input"] is None
    )


@pytest.mark.parametrize(
    "bad",
    [{"image": -1}, {"images": {"1024x1024": -0.1}}, {"batch": 1.5}, {"batch": -0.1}, {"images": {"": 1}}],
)
def test_a_bad_config_price_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(bad, PriceConfig)


@pytest.mark.parametrize(
    "price",
    [
        Price(image=-0.01),
        Price(image=math.nan),
        Price(images={"1024x1024": math.inf}),
        Price(character=True),
        Price(batch=2.0),
        Price(request=-1.0),
    ],
)
def test_a_bad_book_price_is_refused(price: Price) -> None:
    with pytest.raises(ValueError):
        check_entry(PriceEntry(provider_type="openai", model="m", price=price, date="2026-12-07"))


def test_dearer_takes_each_unit_rate_and_each_tier_at_its_highest() -> None:
    a = Price(input=1, image=0.04, images={"a": 0.1, "b": 0.3}, character=None, batch=0.5)
    b = Price(input=2, image=0.02, images={"b": 0.2, "c": 0.5}, character=0.00001)
    both = dearer(a, b)
    assert both.input == 2 and both.image == 0.04 and both.character == 0.00001 and both.batch == 0.5
    assert both.images == {"a": 0.1, "b": 0.3, "c": 0.5}


def test_batch_work_is_half_price_unless_the_price_says() -> None:
    assert batch_fraction(Price()) == 0.5
    assert batch_fraction(Price(batch=0.25)) == 0.25
