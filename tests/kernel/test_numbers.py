"""The clamps of :mod:`truckllm._internal.numbers`: their quick checks of the common case give
exactly what the field-by-field clamp gives."""

from __future__ import annotations

import math

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from truckllm._internal.numbers import (
    MAX_AUDIO_SECONDS,
    MAX_TOKENS,
    clamp_seconds,
    sane_count,
    sane_limits,
    sane_seconds,
    sane_usage,
)
from truckllm.types import RateLimits, Usage

_FIGURE = 2**62

counts = st.one_of(
    st.integers(min_value=-5, max_value=5),
    st.integers(min_value=MAX_TOKENS - 2, max_value=MAX_TOKENS + 2),
    st.booleans(),
    st.sampled_from([0.0, 1.0, -1.0, 2.5, math.nan, math.inf, -math.inf]),
)
seconds = st.one_of(
    st.sampled_from([0, 0.0, 1.5, -1.0, math.nan, math.inf, MAX_AUDIO_SECONDS, MAX_AUDIO_SECONDS * 2]),
    st.booleans(),
    st.floats(allow_nan=True),
)


def clamped_usage(usage: Usage) -> Usage:
    """Every field clamped on its own, the total at least the sum (the definition)."""
    fields: dict[str, float] = {
        name: sane_count(getattr(usage, name)) for name in usage.__struct_fields__ if name != "audio_seconds"
    }
    fields["audio_seconds"] = sane_seconds(usage.audio_seconds)
    fields["total_tokens"] = max(
        fields["total_tokens"], fields["prompt_tokens"] + fields["completion_tokens"]
    )
    return Usage(**fields)  # type: ignore[arg-type]


@settings(deadline=None)  # no timing: a loaded machine is slow, not wrong
@given(st.lists(counts, min_size=10, max_size=10), seconds)
def test_sane_usage_is_the_field_by_field_clamp(values: list[object], audio: object) -> None:
    names = [name for name in Usage.__struct_fields__ if name != "audio_seconds"]
    usage = Usage(**dict(zip(names, values, strict=True)), audio_seconds=audio)  # type: ignore[arg-type]
    result = sane_usage(usage)
    assert result is not None
    assert msgspec.structs.astuple(result) == msgspec.structs.astuple(clamped_usage(usage))
    if result is usage:  # kept as it was only when nothing needed clamping
        assert all(getattr(usage, n) == sane_count(getattr(usage, n)) for n in names)


def test_sane_usage_keeps_a_sane_usage_as_it_is() -> None:
    usage = Usage(prompt_tokens=10, completion_tokens=5, total_tokens=15, cached_tokens=3, audio_seconds=1.5)
    assert sane_usage(usage) is usage
    assert sane_usage(Usage(prompt_tokens=1, total_tokens=1)) is not None
    assert sane_usage(None) is None


limit_values = st.one_of(
    st.none(),
    st.integers(min_value=-3, max_value=3),
    st.integers(min_value=_FIGURE - 1, max_value=_FIGURE + 1),
    st.booleans(),
    st.sampled_from([1.5, math.nan, math.inf]),
)
reset_values = st.one_of(
    st.none(), st.integers(min_value=-3, max_value=100), st.floats(allow_nan=True), st.booleans()
)


@settings(deadline=None)
@given(st.lists(limit_values, min_size=4, max_size=4), st.lists(reset_values, min_size=2, max_size=2))
def test_sane_limits_is_the_field_by_field_clamp(figures: list[object], resets: list[object]) -> None:
    limits = RateLimits(
        limit_requests=figures[0],  # type: ignore[arg-type]
        limit_tokens=figures[1],  # type: ignore[arg-type]
        remaining_requests=figures[2],  # type: ignore[arg-type]
        remaining_tokens=figures[3],  # type: ignore[arg-type]
        reset_requests=resets[0],  # type: ignore[arg-type]
        reset_tokens=resets[1],  # type: ignore[arg-type]
    )
    result = sane_limits(limits, 60.0)
    for name, value in zip(
        ("limit_requests", "limit_tokens", "remaining_requests", "remaining_tokens"), figures, strict=True
    ):
        expected = None if value is None else sane_count(value, _FIGURE)
        assert getattr(result, name) == expected
    for name, value in zip(("reset_requests", "reset_tokens"), resets, strict=True):
        if value is None:
            assert getattr(result, name) is None
        elif isinstance(value, int | float) and 0 <= value <= 60.0:
            assert getattr(result, name) == value
        elif isinstance(value, int | float):
            assert getattr(result, name) == clamp_seconds(value, 60.0)
