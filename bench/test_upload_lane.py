"""The upload lane (``bench/upload_lane.py``): wired into ``python -m bench``, and the memory goal
held by a real gateway subprocess (a memory figure, not a timed one).

The slow test sends a 64 MiB multipart upload through ``truckllm serve`` (one worker) to the test
kit's fake OpenAI and asserts the gateway's peak resident set grew by less than 20 MB, the
upstream got the bytes exact (SHA-256) and no spooled file is left.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.harness import LANES
from bench.run import markdown, parse_args, targets
from bench.upload_lane import GOAL_MB, measure


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_64_mib_upload_grows_the_gateways_peak_rss_by_less_than_20_mb(tmp_path: Path) -> None:
    figures = measure(64, tmp_path)
    assert figures["upstream_bytes_exact"] is True
    assert figures["spool_left"] == []
    growth = figures["peak_growth_mb"]
    assert isinstance(growth, float) and growth < GOAL_MB, figures


def test_the_lane_is_one_of_the_runners_lanes() -> None:
    assert "upload" in LANES
    settings = parse_args(["--lanes", "upload", "--upload-mb", "64"])
    assert settings.lanes == ("upload",) and settings.upload_mb == 64
    assert parse_args([]).upload_mb == 200


def lane(growth: float, exact: bool = True) -> dict[str, Any]:
    return {
        "upload_mb": 200,
        "seconds": 2.0,
        "mb_per_s": 100.0,
        "rss_before_mb": 120.0,
        "hwm_after_mb": 120.0 + growth,
        "peak_growth_mb": growth,
        "goal_mb": GOAL_MB,
        "ok": growth < GOAL_MB,
        "upstream_bytes_exact": exact,
        "spool_left": [],
    }


@pytest.mark.parametrize(
    ("lanes", "met"),
    [
        ({}, None),  # not run
        ({"upload": lane(3.0)}, True),
        ({"upload": lane(19.9)}, True),
        ({"upload": lane(20.0)}, False),
        ({"upload": lane(3.0, exact=False)}, None),  # the bytes were wrong: no figure to judge
    ],
)
def test_the_upload_target_and_its_verdict(lanes: dict[str, Any], met: bool | None) -> None:
    (target,) = [t for t in targets(lanes, parse_args([])) if t["target"].startswith("upload")]
    assert target["met"] is met and target["limit"] == GOAL_MB


def test_the_markdown_has_the_upload_row() -> None:
    text = markdown({"lanes": {"upload": lane(3.0)}, "targets": []})
    assert "| 200 MiB | 120 | 123 | 3.00 | < 20 |" in text
