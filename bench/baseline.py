"""Before and after in one run: ``python -m bench --baseline DIR``.

``DIR`` is another checkout of this repository (the "before" version). Its gateway runs from the
same virtualenv with ``PYTHONPATH`` pointing first at ``DIR/core``, every ``DIR/plugins/*/`` and
``DIR/testing``: the venv's package metadata (entry points) is shared, the code they name is
imported from ``DIR``. :func:`verify` proves that before anything is timed.

The lanes where a before/after pair makes sense (latency, concurrency-50 throughput, the streaming
lane's time to first token, hold) run the baseline gateway beside the current one, round by
round in alternating order; each lane's result then carries a ``before`` entry next to its own
figures, and :func:`figures` flattens both into one table (figure, before, after, after/before)
for stdout, ``latest.json`` and ``latest.md``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["HEADERS", "baseline_env", "figures", "pythonpath", "ratio", "rows", "verify"]

HEADERS = ["figure", "before", "after", "after / before"]
_PROBE = (
    "import json, truckllm, truckllm_provider_openai, truckllm_testing; "
    "print(json.dumps([truckllm.__file__, truckllm_provider_openai.__file__, truckllm_testing.__file__]))"
)


def pythonpath(checkout: Path) -> list[str]:
    """The folders that make ``checkout``'s kernel, plugins and test kit importable, in that order."""
    plugins = sorted(str(p) for p in (checkout / "plugins").glob("*/") if p.is_dir())
    return [str(checkout / "core"), *plugins, str(checkout / "testing")]


def baseline_env(checkout: Path, env: dict[str, str]) -> dict[str, str]:
    """``env`` with ``checkout``'s folders first on ``PYTHONPATH``."""
    out = dict(env)
    rest = [out["PYTHONPATH"]] if out.get("PYTHONPATH") else []
    out["PYTHONPATH"] = os.pathsep.join([*pythonpath(checkout), *rest])
    return out


def verify(checkout: Path, env: dict[str, str], python: str = sys.executable) -> dict[str, Any]:
    """Start ``python`` the way the baseline gateway starts and check that the kernel, the OpenAI
    provider and the test kit it imports come from ``checkout``; raise ``RuntimeError`` otherwise.

    Returns the checkout, its commit (when it is a git checkout) and the modules' files.
    """
    root = checkout.resolve()
    if not (root / "core" / "truckllm").is_dir():
        raise RuntimeError(f"--baseline {checkout}: no core/truckllm there (not a checkout of this repo)")
    done = subprocess.run(
        [python, "-c", _PROBE],
        env=env,
        cwd=str(root),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"--baseline {checkout}: cannot import its gateway:\n{done.stderr[-2000:]}")
    files = [str(Path(f).resolve()) for f in json.loads(done.stdout.strip().splitlines()[-1])]
    stray = [f for f in files if not f.startswith(str(root) + os.sep)]
    if stray:
        raise RuntimeError(f"--baseline {checkout}: these modules come from elsewhere: {', '.join(stray)}")
    return {"dir": str(root), "commit": git_commit(root), "modules": files}


def git_commit(folder: Path) -> str | None:
    """``folder``'s checked-out commit, with ``+dirty`` when it has uncommitted changes; ``None``
    when it is not a git checkout."""
    try:
        head = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def ratio(after: float | None, before: float | None) -> float | None:
    """``after / before``; ``None`` when either is missing or ``before`` is not positive (an added
    latency can be zero or negative: no meaningful ratio)."""
    if after is None or before is None or math.isnan(after) or math.isnan(before) or before <= 0:
        return None
    return after / before


def _get(tree: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(tree, dict):
            return None
        tree = tree.get(key)
    return tree


Row = tuple[str, float | None, float | None]


def _pair(out: list[Row], label: str, res: Any, *path: str) -> None:
    """One row from ``res[path]`` (after) and ``res['before'][path]`` (before), when both ran."""
    before = _get(res, "before", *path)
    after = _get(res, *path)
    if (before is not None or after is not None) and isinstance(res, dict) and "before" in res:
        out.append((label, before, after))


def _latency(lane: Any) -> list[Row]:
    out: list[Row] = []
    c1 = _get(lane, "concurrency_1")
    _pair(out, "pass-through added p50, concurrency 1, ms", c1, "added", "p50")
    _pair(out, "pass-through added p99, concurrency 1, ms", c1, "added", "p99")
    _pair(out, "pass-through gateway p50, concurrency 1, ms", c1, "gateway", "p50")
    for rate, res in (_get(lane, "rates") or {}).items():
        _pair(out, f"pass-through added p50, {rate} req/s, ms", res, "added", "p50")
        _pair(out, f"pass-through added p99, {rate} req/s, ms", res, "added", "p99")
    return out


def _throughput(lane: Any) -> list[Row]:
    out: list[Row] = []
    c50 = _get(lane, "1", "concurrency_50")
    _pair(out, "throughput at concurrency 50, 1 worker, req/s", c50, "rps", "gateway")
    _pair(out, "concurrency 50 gateway p50, ms", c50, "gateway", "p50")
    _pair(out, "concurrency 50 gateway p99, ms", c50, "gateway", "p99")
    return out


def _streaming(lane: Any) -> list[Row]:
    out: list[Row] = []
    runs = _get(lane, "ttft_runs") or []
    for i, run in enumerate(runs, 1):
        label = f"added TTFT p99, run {i} of {len(runs)}, ms" if len(runs) > 1 else "added TTFT p99, ms"
        _pair(out, label, run, "added", "p99")
    openai = _get(lane, "openai")
    _pair(out, "added TTFT p50, ms", _get(openai, "ttft"), "added", "p50")
    return out


def _hold(lane: Any) -> list[Row]:
    out: list[Row] = []
    if not isinstance(lane, dict) or "held_min" not in lane:
        return out
    _pair(out, f"streams held (of {lane['target']:,})", lane, "held_min")
    _pair(out, "RSS before the streams, MB", lane, "rss_before_mb")
    _pair(out, "RSS holding them, MB", lane, "rss_peak_mb")
    _pair(out, "RSS per held stream, KB", lane, "rss_per_stream_kb")
    _pair(out, "held streams: TTFT p99 while ramping, ms", lane, "ttft_ms", "p99")
    return out


_LANES: dict[str, Callable[[Any], list[Row]]] = {
    "latency": _latency,
    "throughput": _throughput,
    "streaming": _streaming,
    "hold": _hold,
}


def figures(lanes: dict[str, Any], only: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Every before/after pair in the lanes' results (of ``only`` those lanes), in lane order:
    ``{"lane", "figure", "before", "after", "ratio"}``."""
    out = []
    for name, pick in _LANES.items():
        if only is not None and name not in only:
            continue
        for label, before, after in pick(lanes.get(name)):
            out.append(
                {
                    "lane": name,
                    "figure": label,
                    "before": before,
                    "after": after,
                    "ratio": ratio(after, before),
                }
            )
    return out


def rows(found: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """Table rows (:data:`HEADERS`) for :func:`figures`' output."""
    return [
        [f["figure"], f["before"], f["after"], "-" if f["ratio"] is None else f"x{f['ratio']:.2f}"]
        for f in found
    ]
