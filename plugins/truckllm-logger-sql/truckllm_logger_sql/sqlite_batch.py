"""The statements that write a batch to SQLite with no Python work per record (SQLite runs in
the gateway's process: its CPU is the gateway's, so it matters too).

- :data:`INSERT_JSON`: the batch, one JSON array encoded by msgspec (:func:`.codec.encode_batch`),
  read with ``json_each`` / ``json_extract``; a request id already stored, or met earlier in the
  batch, is skipped (a retried batch adds nothing twice).
- :data:`INSERT_ROWS`: the same from Python row tuples (:func:`.codec.to_row`), for a batch whose
  JSON holds ``\\u0000`` (SQLite's JSON functions cut a string at a NUL): rare.
- :func:`rollup_sql`: the rows inserted by this transaction (``rowid`` above the largest before
  it) summed per bucket and dimensions and added to a rollup table.
"""

from __future__ import annotations

from truckllm.kit.request_log import Step

from .codec import COLUMNS
from .rollup import BOUNDS_MS, DIMENSIONS, FIGURES, HIST_COLUMNS, STEP_SECONDS, table_of

__all__ = ["INSERT_JSON", "INSERT_ROWS", "ROLLUPS", "rollup_sql"]

_INT64_MAX = 2**63 - 1
_N = len(BOUNDS_MS) + 1
_USAGE = (
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)


# a RequestRecord's JSON fields, each extracted once per record (SQLite 3.40 parses the record's
# text again at every json_extract call site: the fewer, the cheaper)
_FIELDS = (
    "request_id", "started_at", "endpoint", "dialect", "alias", "gateway_key", "stream", "status",
    "latency_ms", "ttft_ms", "upstream_ms", "provider", "provider_type", "deployment", "model",
    "provider_key", "attempts", "fallbacks", "usage", "cost_usd", "error_kind", "error_message",
    "client_disconnected", "extra", "bodies",
)  # fmt: skip


def _int64(expr: str) -> str:
    return f"min(max({expr}, {-_INT64_MAX - 1}), {_INT64_MAX})"


def _columns() -> dict[str, str]:
    """Each ``requests`` column as an expression over the extracted fields ``f``."""
    out = {c: f"f.{c}" for c in COLUMNS}
    out["status"] = _int64("f.status")
    out["status_class"] = "(f.status - ((f.status % 100) + 100) % 100) / 100"  # floor, as //
    out["added_ms"] = "f.latency_ms - f.upstream_ms"
    for name in _USAGE:
        tokens = _int64(f"coalesce(json_extract(f.usage, '$.{name}'), 0)")
        out[name] = f"CASE WHEN f.usage IS NOT NULL THEN {tokens} END"
    out["body_request"] = (
        "CASE WHEN f.bodies IS NOT NULL THEN coalesce(json_extract(f.bodies, '$.request'), '') END"
    )
    out["body_response"] = (
        "CASE WHEN f.bodies IS NOT NULL THEN coalesce(json_extract(f.bodies, '$.response'), '') END"
    )
    out["body_truncated"] = (
        "CASE WHEN f.bodies IS NOT NULL THEN coalesce(json_extract(f.bodies, '$.request_truncated'), 0)"
        " + 2 * coalesce(json_extract(f.bodies, '$.response_truncated'), 0) END"
    )
    return out


_COLS = ", ".join(COLUMNS)
_EXPRS = _columns()

INSERT_JSON = (
    "WITH f AS MATERIALIZED (SELECT key AS k, "
    + ", ".join(f"json_extract(value, '$.{name}') AS {name}" for name in _FIELDS)
    + " FROM json_each(?1))"
    f" INSERT INTO requests ({_COLS}) SELECT {', '.join(_EXPRS[c] for c in COLUMNS)} FROM f"
    " WHERE f.k IN (SELECT min(k) FROM f GROUP BY request_id)"
    " AND NOT EXISTS (SELECT 1 FROM requests q WHERE q.request_id = f.request_id)"
)
"""Insert the new records of the JSON array ``?1`` (UTF-8 text)."""

INSERT_ROWS = f"INSERT INTO requests ({_COLS}) VALUES ({', '.join('?' * len(COLUMNS))})"
"""Insert one row of :data:`COLUMNS` (callers skip the ids already stored)."""


def _slot(expr: str) -> str:
    """The histogram slot of ``expr`` ms: how many :data:`BOUNDS_MS` are below it (as
    ``bisect_left``); ``NULL`` (NaN) goes to the last slot."""
    whens = " ".join(f"WHEN {expr} <= {float(b)!r} THEN {i}" for i, b in enumerate(BOUNDS_MS))
    return f"CASE WHEN {expr} IS NULL THEN NULL {whens} ELSE {len(BOUNDS_MS)} END"


def _bucket(width: int) -> str:
    """``int(started_at // width) * width`` exactly (the quotient truncated, then corrected
    when it is above the floor)."""
    q = f"CAST(started_at / {width} AS INTEGER)"
    return f"(({q} - ({q} * {width} > started_at)) * {width})"


def rollup_sql(step: Step) -> str:
    """Add the rows with ``rowid > ?`` to the rollup table of ``step``."""
    table = table_of(step)
    dims = ", ".join(DIMENSIONS)
    hist = [f"count(*) FILTER (WHERE lat_slot = {i})" for i in range(_N)]
    hist += [f"count(*) FILTER (WHERE add_slot = {i})" for i in range(_N)]
    sets = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in (*FIGURES, *HIST_COLUMNS))
    rows = (
        f"SELECT {_bucket(STEP_SECONDS[step])} AS b, coalesce(gateway_key, '') AS gateway_key, alias,"
        " coalesce(provider, '') AS provider, coalesce(model, '') AS model, status,"
        " coalesce(prompt_tokens, 0) AS prompt_tokens, coalesce(completion_tokens, 0) AS completion_tokens,"
        f" cost_usd, {_slot('latency_ms')} AS lat_slot,"
        f" CASE WHEN upstream_ms IS NOT NULL THEN coalesce({_slot('added_ms')}, {len(BOUNDS_MS)})"
        " END AS add_slot"
        " FROM requests WHERE rowid > ?"
    )
    return (  # the slots computed once per row (a flattened subquery would per aggregate)
        f"WITH x AS MATERIALIZED ({rows})"
        f" INSERT INTO {table} (bucket, {dims}, {', '.join(FIGURES)}, {', '.join(HIST_COLUMNS)})"
        f" SELECT b, {dims}, count(*), sum(status >= 400), sum(prompt_tokens), sum(completion_tokens),"
        f" sum(cost_usd), {', '.join(hist)} FROM x WHERE true GROUP BY b, {dims}"
        f" ON CONFLICT (bucket, {dims}) DO UPDATE SET {sets}"
    )


ROLLUPS: tuple[str, ...] = tuple(rollup_sql(step) for step in STEP_SECONDS)
""":func:`rollup_sql` of every step."""
