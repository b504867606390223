"""The one statement that writes a batch to PostgreSQL: its rows and their rollups, with no
Python work per record.

The batch arrives as one JSON array (the records encoded by msgspec, in C: :func:`.codec.encode_batch`),
is read by ``json_to_recordset``, inserted with ``ON CONFLICT (request_id, started_at) DO
NOTHING``, and the rows the insert ``RETURNING``\\ s (those actually inserted: a retried batch adds
nothing twice) are summed per bucket and dimensions into ``rollup_minute`` / ``_hour`` / ``_day``
(``INSERT ... ON CONFLICT DO UPDATE`` adding), all in data-modifying CTEs of one statement: one
round trip, atomic without an explicit transaction. The statement's value is the count of rows
inserted.

PostgreSQL's JSON functions refuse ``\\u0000`` anywhere in a document: a batch holding one
(rare) goes through :data:`UNNEST_SQL` instead, the same statement reading Python row tuples
(:func:`.codec.to_row`, NUL stored as U+FFFD) from ``unnest`` arrays.
"""

from __future__ import annotations

from .codec import COLUMNS, UNIT_COLUMNS
from .rollup import BOUNDS_MS, DIMENSIONS, FIGURES, HIST_COLUMNS, STEP_SECONDS, UNIT_FIGURES, table_of

__all__ = ["JSON_SQL", "PG_TYPES", "UNNEST_SQL", "write_sql"]

_INT64_MAX = 2**63 - 1
_N = len(BOUNDS_MS) + 1

PG_TYPES: dict[str, str] = {
    "started_at": "float8",
    "latency_ms": "float8",
    "ttft_ms": "float8",
    "upstream_ms": "float8",
    "added_ms": "float8",
    "cost_usd": "float8",
    "stream": "bool",
    "client_disconnected": "bool",
    "status": "int8",
    "status_class": "int2",
    "body_truncated": "int2",
    "prompt_tokens": "int8",
    "completion_tokens": "int8",
    "total_tokens": "int8",
    "cached_tokens": "int8",
    "cache_write_tokens": "int8",
    "reasoning_tokens": "int8",
    "images": "int8",
    "audio_seconds": "float8",
    "characters": "int8",
    "search_units": "int8",
    "requests": "int8",
}
"""The ``requests`` columns' PostgreSQL types (``text`` when not named)."""

_USAGE = (
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
_INT_UNITS = ("images", "characters", "search_units", "requests")
# a RequestRecord's JSON fields read as they are (Usage and RecordBodies omit their defaults)
_RECORD_FIELDS = (
    "request_id text, started_at float8, endpoint text, dialect text, alias text, gateway_key text,"
    " stream bool, status numeric, latency_ms float8, ttft_ms float8, upstream_ms float8,"
    " provider text, provider_type text, deployment text, model text, provider_key text,"
    " attempts json, fallbacks json, usage json, cost_usd float8, error_kind text,"
    " error_message text, client_disconnected bool, extra json, bodies json,"
    ' team text, org text, "user" text, tags json, guardrails json, metadata json'
)


def _int64(expr: str) -> str:
    return f"GREATEST({-_INT64_MAX - 1}, LEAST({_INT64_MAX}, {expr}))::int8"


def _json_columns() -> dict[str, str]:
    """Each ``requests`` column as an expression over ``json_to_recordset``'s ``r``."""
    out = {c: f"r.{c}" for c in COLUMNS}
    out["status"] = _int64("r.status")
    out["status_class"] = "floor(r.status / 100)::int2"
    out["added_ms"] = "r.latency_ms - r.upstream_ms"
    for name in _USAGE:
        tokens = _int64(f"COALESCE((r.usage->>'{name}')::numeric, 0)")
        out[name] = f"CASE WHEN r.usage IS NOT NULL THEN {tokens} END"
    for name in _INT_UNITS:
        count = _int64(f"COALESCE((r.usage->>'{name}')::numeric, 0)")
        out[name] = f"CASE WHEN r.usage IS NOT NULL THEN {count} END"
    # msgspec writes a seconds value that is not finite as null: 0, as the codec stores it
    seconds = "COALESCE((r.usage->>'audio_seconds')::float8, 0)"
    out["audio_seconds"] = f"CASE WHEN r.usage IS NOT NULL THEN {seconds} END"
    # json keeps its input text: exactly what to_row stores
    for name in ("attempts", "fallbacks", "extra", "tags", "guardrails", "metadata"):
        out[name] = f"r.{name}::text"
    out["end_user"] = 'r."user"'  # a reserved word: quoted
    out["body_request"] = "CASE WHEN r.bodies IS NOT NULL THEN COALESCE(r.bodies->>'request', '') END"
    out["body_response"] = "CASE WHEN r.bodies IS NOT NULL THEN COALESCE(r.bodies->>'response', '') END"
    out["body_truncated"] = (
        "CASE WHEN r.bodies IS NOT NULL THEN (COALESCE((r.bodies->>'request_truncated')::bool, false)::int"
        " + 2 * COALESCE((r.bodies->>'response_truncated')::bool, false)::int)::int2 END"
    )
    return out


def _slot(expr: str) -> str:
    """The histogram slot of ``expr`` ms: how many :data:`BOUNDS_MS` are below it (as
    ``bisect_left``), from ``width_bucket`` over the negated bounds."""
    negated = ", ".join(repr(-float(b)) for b in reversed(BOUNDS_MS))
    return f"{len(BOUNDS_MS)} - width_bucket(-({expr}), ARRAY[{negated}]::float8[])"


def _bucket(width: int) -> str:
    """``int(started_at // width) * width`` exactly (``floor(x / w)`` may round up to the next
    integer; ``q * w`` is exact for these widths and times)."""
    q = f"floor(started_at / {width})"
    return f"(({q} - CASE WHEN {q} * {width} > started_at THEN 1 ELSE 0 END) * {width})::int8"


def _rollup_cte(step: str, width: int) -> str:
    table = table_of(step)  # type: ignore[arg-type]
    dims = ", ".join(DIMENSIONS)
    hist = [f"count(*) FILTER (WHERE lat_slot = {i})" for i in range(_N)]
    hist += [f"count(*) FILTER (WHERE add_slot = {i})" for i in range(_N)]
    sets = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in (*FIGURES, *HIST_COLUMNS, *UNIT_FIGURES))
    figures = ", ".join((*FIGURES, *HIST_COLUMNS, *UNIT_FIGURES))
    units = [
        f"sum(u_{c})" if c == "audio_seconds" else f"LEAST(sum(u_{c}), {_INT64_MAX})" for c in UNIT_COLUMNS
    ]
    return (
        f"{table}_add AS (INSERT INTO {table} (bucket, {dims}, {figures})"
        f" SELECT {_bucket(width)} AS b, {dims}, count(*), count(*) FILTER (WHERE status >= 400),"
        f" LEAST(sum(prompt_tokens), {_INT64_MAX}), LEAST(sum(completion_tokens), {_INT64_MAX}),"
        f" sum(cost_usd), {', '.join(hist)}, {', '.join(units)}"
        f" FROM ins GROUP BY b, {dims}"
        f" ON CONFLICT (bucket, {dims}) DO UPDATE SET {sets})"
    )


def write_sql(source: str) -> str:
    """The statement inserting the rows of ``source`` (a ``SELECT`` of :data:`COLUMNS`) and
    adding the inserted ones to the rollups; its value: how many rows were inserted."""
    cols = ", ".join(COLUMNS)
    ctes = [
        f"src AS ({source})",
        f"ins AS (INSERT INTO requests ({cols}) SELECT {cols} FROM src"
        " ON CONFLICT (request_id, started_at) DO NOTHING"
        " RETURNING started_at, COALESCE(gateway_key, '') AS gateway_key, alias,"
        " COALESCE(provider, '') AS provider, COALESCE(model, '') AS model, status,"
        " COALESCE(prompt_tokens, 0) AS prompt_tokens, COALESCE(completion_tokens, 0) AS completion_tokens,"
        f" cost_usd, {_slot('latency_ms')} AS lat_slot, {_slot('added_ms')} AS add_slot,"
        f" {', '.join(f'COALESCE(requests.{c}, 0) AS u_{c}' for c in UNIT_COLUMNS)})",
        *(_rollup_cte(step, width) for step, width in STEP_SECONDS.items()),
    ]
    return f"WITH {', '.join(ctes)} SELECT count(*) FROM ins"


_columns = _json_columns()
JSON_SQL = write_sql(
    f"SELECT {', '.join(f'{_columns[c]} AS {c}' for c in COLUMNS)}"
    f" FROM json_to_recordset(convert_from($1::bytea, 'UTF8')::json) AS r({_RECORD_FIELDS})"
)
"""Write the batch given as ``$1``: the UTF-8 bytes of a JSON array of records."""

UNNEST_SQL = write_sql(
    "SELECT * FROM unnest("
    + ", ".join(f"${i + 1}::{PG_TYPES.get(c, 'text')}[]" for i, c in enumerate(COLUMNS))
    + f") AS r({', '.join(COLUMNS)})"
)
"""Write the batch given as one array per column of :data:`COLUMNS` (``$1`` ... ``$n``)."""
