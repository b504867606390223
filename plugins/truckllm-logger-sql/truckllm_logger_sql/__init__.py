"""TruckLLM logger plugin: request records in SQLite (the default, one file) or PostgreSQL,
searchable: the request log behind ``/admin/v1/requests`` and the console.

``emit_log`` only appends to a bounded in-memory queue; one writer task (started in ``startup``)
writes batches, one transaction each, with their rollups (see :mod:`.writer`). The logger
implements :class:`~truckllm.kit.request_log.RequestLog`: ``search`` is one keyset-paginated
query per page, ``get`` one query by id, ``series`` reads only the rollup tables.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, ClassVar

from truckllm import hookimpl
from truckllm.kit.request_log import LogPage, LogQuery, Series, SeriesQuery
from truckllm.types import RequestRecord

from .options import SqlOptions
from .store import Store, open_store
from .writer import Writer

__all__ = ["TRUCKLLM_API", "SqlLogger", "SqlOptions", "register_loggers"]

TRUCKLLM_API = 1
"""The plugin API version this plugin was written for."""


class SqlLogger:
    """Writes request records to a database and answers request log queries from it.

    :param options: decoded from the ``loggers:`` entry.
    :param clock: unix time now (retention; tests inject one).
    :param rng: the backoff jitter's random source.
    :param store: the backend (default: the one ``options.url`` names).
    """

    Options = SqlOptions

    name: ClassVar[str] = "sql"
    """The name in ``loggers:``."""

    metrics_counters: ClassVar[frozenset[str]] = Writer.counters
    """The keys of :attr:`metrics` that only ever grow (exported as counters)."""

    def __init__(
        self,
        options: SqlOptions,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        store: Store | None = None,
    ) -> None:
        self.options = options
        self.store = store or open_store(options)
        self.writer = Writer(self.store, options, clock=clock, rng=rng)

    @property
    def metrics(self) -> dict[str, int]:
        """``queued``, ``written``, ``dropped``, ``spilled``, ``replayed``, ``failed_batches``
        and ``db_up`` (0 or 1), for the metrics logger."""
        w = self.writer
        return {
            "queued": w.queued,
            "written": w.written,
            "dropped": w.dropped,
            "spilled": w.spilled,
            "replayed": w.replayed,
            "failed_batches": w.failed_batches,
            "db_up": w.db_up,
        }

    # --- hooks ------------------------------------------------------------------------------------

    @hookimpl
    def emit_log(self, record: RequestRecord) -> None:
        """Queue the record (memory only; a full queue spills or drops, counted)."""
        self.writer.offer(record)

    @hookimpl
    async def startup(self, app: Any) -> None:
        """Migrate the schema (a warning if the database is down) and start the writer."""
        await self.writer.start()

    @hookimpl
    async def shutdown(self, app: Any) -> None:
        """Write what is queued (within ``shutdown_timeout``), then close the database."""
        await self.writer.stop()

    # --- the request log --------------------------------------------------------------------------

    async def search(self, query: LogQuery) -> LogPage:
        """One page of records matching ``query``, newest first, without bodies; ValueError for
        a cursor this log did not make."""
        return await self.store.search(query)

    async def get(self, request_id: str) -> RequestRecord | None:
        """One record with its attempts, usage, cost and bodies (when recorded)."""
        return await self.store.get(request_id)

    async def series(self, query: SeriesQuery) -> Series:
        """Figures over time from the rollup tables."""
        return await self.store.series(query)


@hookimpl
def register_loggers(register: Callable[[str, type], None]) -> None:
    """Offer ``sql``."""
    register("sql", SqlLogger)
