"""Whatever an upstream sends, reading it ends cleanly: an error is classified, an answer checked,
a stream's frames relayed or refused, never an exception of another kind and never a hang."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from truckllm_provider_azure import read_azure_error
from truckllm_provider_azure.errors import filtered_answer
from truckllm_provider_azure.stream import drop_filter_chunks

from truckllm.types import UpstreamError

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
KEYS = st.sampled_from(
    ["error", "code", "content_filter", "innererror", "content_filter_result", "choices", "finish_reason",
     "content_filter_results", "filtered", "severity", "prompt_filter_results", "usage", "message"]
)  # fmt: skip
AZURISH = st.recursive(
    st.none() | st.booleans() | st.sampled_from(["content_filter", "high", "ResponsibleAIPolicyViolation"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=25,
)
BODIES = st.binary(max_size=200) | (JSON | AZURISH).map(lambda v: json.dumps(v).encode())


@settings(max_examples=300, deadline=None)
@given(status=st.sampled_from([400, 401, 403, 404, 429, 500, 503]), body=BODIES)
def test_any_error_body_is_classified(status: int, body: bytes) -> None:
    error = read_azure_error(status, {"retry-after": "x"}, body)
    assert isinstance(error, UpstreamError) and 400 <= error.status <= 599
    if error.code == "content_filter":
        assert error.status == 400 and not error.retryable


@settings(max_examples=300, deadline=None)
@given(body=BODIES)
def test_any_answer_is_checked_for_the_filter(body: bytes) -> None:
    refused = filtered_answer(body)
    assert refused is None or (refused.status == 400 and refused.code == "content_filter")


@settings(max_examples=200, deadline=None)
@given(
    chunks=st.lists(
        AZURISH
        | JSON
        | st.fixed_dictionaries(
            {"choices": st.just([]), "x": st.fixed_dictionaries({"prompt_filter_results": JSON})}
        ),
        max_size=6,
    )
)
def test_only_filter_only_chunks_are_dropped(chunks: list[Any]) -> None:
    frames = [b"data: " + json.dumps(chunk).encode() for chunk in chunks]
    kept = drop_filter_chunks(b"".join(frame + b"\n\n" for frame in frames))
    expected = [
        frame
        for frame, chunk in zip(frames, chunks, strict=True)
        if not (
            isinstance(chunk, dict)
            and chunk.get("prompt_filter_results") is not None
            and chunk.get("choices") == []
            and chunk.get("usage") is None
        )
    ]
    assert kept == b"".join(frame + b"\n\n" for frame in expected)
