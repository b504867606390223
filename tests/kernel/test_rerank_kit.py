"""``truckllm.kit.rerank``: an upstream's results are taken only when they are an answer, the
gateway's answer follows the client's request, counts are never negative."""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from truckllm.kit.rerank import (
    RerankRequest,
    RerankResult,
    read_count,
    read_error,
    read_results,
    rerank_answer,
)

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def request(**extra: Any) -> RerankRequest:
    body = {"model": "m", "query": "q", "documents": ["a", {"text": "b"}, "c"], **extra}
    return msgspec.json.decode(json.dumps(body).encode(), type=RerankRequest)


@given(items=JSON, documents=st.integers(min_value=0, max_value=6))
def test_results_are_an_answer_or_a_reason(items: Any, documents: int) -> None:
    """Whatever an upstream sends: either a reason, or results whose indexes are distinct
    documents' and whose scores are finite numbers."""
    results = read_results(items, documents)
    if isinstance(results, str):
        assert results
        return
    indexes = [r.index for r in results]
    assert len(set(indexes)) == len(indexes) <= documents
    assert all(0 <= i < documents for i in indexes)
    assert all(math.isfinite(r.relevance_score) for r in results)


@pytest.mark.parametrize(
    "items",
    [
        None, {}, "results", [1], [{"index": 3, "relevance_score": 0.1}], [{"index": -1, "relevance_score": 0.1}],
        [{"index": 0, "relevance_score": 0.1}, {"index": 0, "relevance_score": 0.2}],
        [{"index": True, "relevance_score": 0.1}], [{"index": 0.0, "relevance_score": 0.1}],
        [{"index": 0, "relevance_score": None}], [{"index": 0, "relevance_score": "0.5"}],
        [{"index": 0, "relevance_score": float("inf")}], [{"index": 0}],
        [{"index": i % 3, "relevance_score": 0.1} for i in range(4)],
    ],
)  # fmt: skip
def test_each_kind_of_bad_results_is_refused(items: Any) -> None:
    assert isinstance(read_results(items, 3), str)


@pytest.mark.parametrize(
    ("value", "count"),
    [(3, 3), (0, 0), (2.0, 2), (1.2, 2), (-1, None), (-0.5, None), (True, None), ("12", None), (None, None),
     (float("nan"), None), (float("inf"), None), ([1], None)],
)  # fmt: skip
def test_counts_are_read_defensively(value: Any, count: int | None) -> None:
    assert read_count(value) == count


@pytest.mark.parametrize(
    ("extra", "indexes", "documents"),
    [
        ({}, [2, 0, 1], False),
        ({"top_n": 2}, [2, 0], False),
        ({"top_n": 9}, [2, 0, 1], False),
        ({"return_documents": True}, [2, 0, 1], True),
        ({"return_documents": False, "top_n": 1}, [2], False),
    ],
)
def test_the_answer_follows_the_clients_request(
    extra: dict[str, Any], indexes: list[int], documents: bool
) -> None:
    results = [RerankResult(2, 0.9), RerankResult(0, 0.5), RerankResult(1, 0.1)]
    answer = json.loads(rerank_answer(request(**extra), results, model="up", search_units=1))
    assert [r["index"] for r in answer["results"]] == indexes
    texts = {0: "a", 1: "b", 2: "c"}
    for result in answer["results"]:
        assert ("document" in result) is documents
        if documents:
            assert result["document"] == {"text": texts[result["index"]]}
    assert answer["meta"]["billed_units"] == {"search_units": 1}
    assert "usage" not in answer and answer["model"] == "up" and answer["id"].startswith("rerank-")


@pytest.mark.parametrize(
    ("status", "body", "headers", "kind", "message", "retry"),
    [
        (429, b'{"message": "trial key limit"}', {"retry-after": "4"}, "rate_limit", "trial key limit", 4.0),
        (429, b'{"detail": "slow"}', {"retry-after": "-4"}, "rate_limit", "slow", None),
        (401, b'{"detail": "invalid key"}', {}, "auth", "invalid key", None),
        (422, b'{"detail": [{"loc": ["body", "x"], "msg": "bad x"}]}', {}, "bad_request", "bad x", None),
        (503, b"<html>down</html>", {"retry-after": "2"}, "overloaded", "<html>down</html>", 2.0),
        (500, b"", {}, "server", "upstream answered HTTP 500", None),
        (402, b'{"error": {"message": "no credit"}}', {}, "quota", "no credit", None),
    ],
)
def test_errors_of_every_shape_are_classified(
    status: int, body: bytes, headers: dict[str, str], kind: str, message: str, retry: float | None
) -> None:
    error = read_error(status, headers, body)
    assert (error.kind, error.message, error.retry_after) == (kind, message, retry)
