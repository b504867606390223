"""The ``loggers: [{sql: {...}}]`` options and the database URL they name.

- :class:`SqlOptions`: every option, decoded strictly by the kernel.
- :class:`Target`: the URL read into a backend and where it points (never the password in text).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import unquote, urlsplit

import msgspec

from truckllm.kit.options import Duration, Secret

__all__ = ["NonNegInt", "PosInt", "SqlOptions", "Target", "parse_target"]

PosInt = Annotated[int, msgspec.Meta(ge=1)]
"""An integer of at least 1 (options)."""
NonNegInt = Annotated[int, msgspec.Meta(ge=0)]
"""An integer of at least 0 (options)."""

DEFAULT_URL = "sqlite:///truckllm-requests.db"
"""Where records go when ``url`` is not given: a file in the working directory."""


class Target(msgspec.Struct, frozen=True, kw_only=True):
    """A database URL, read.

    :ivar backend: ``sqlite`` or ``postgres``.
    :ivar path: the SQLite file (``sqlite`` only).
    :ivar where: the URL without user and password, for logs and errors.
    """

    backend: Literal["sqlite", "postgres"]
    path: str = ""
    where: str = ""


def parse_target(url: str) -> Target:
    """Read ``url`` (``sqlite:///path.db`` or ``postgresql://user:pass@host:port/db``);
    raises ValueError (never quoting the password) for anything else."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        if parts.netloc:
            raise ValueError("a sqlite url is sqlite:///relative/path.db or sqlite:////absolute/path.db")
        path = unquote(parts.path[1:]) if parts.path.startswith("/") else ""
        if not path or path.endswith("/"):
            raise ValueError("a sqlite url names a file: sqlite:///truckllm-requests.db")
        return Target(backend="sqlite", path=path, where=f"sqlite:///{path}")
    if parts.scheme in ("postgresql", "postgres"):
        try:
            host, port = parts.hostname, parts.port
        except ValueError:
            raise ValueError("the postgresql url has a bad port") from None
        if not host:
            raise ValueError("a postgresql url names a host: postgresql://user:pass@host:5432/db")
        database = parts.path.lstrip("/")
        where = f"postgresql://{host}" + (f":{port}" if port else "") + (f"/{database}" if database else "")
        return Target(backend="postgres", where=where)
    raise ValueError("url must start with sqlite:/// or postgresql://")


class SqlOptions(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """``loggers: [{sql: {url: ...}}]``.

    :ivar url: ``sqlite:///relative/or/absolute.db`` or ``postgresql://user:pass@host:port/db``;
        a secret: never logged (logs name the host and database only).
    :ivar batch_size: the most records one transaction writes (with a backlog, e.g. after an
        outage, up to 10 times as many, back to back).
    :ivar flush_interval: the longest a record waits for its batch to fill.
    :ivar max_queue: records held in memory while the database is slow or down; more overflow
        to ``spill_path`` (or are dropped and counted).
    :ivar spill_path: a file where overflowing records go as JSON lines, replayed once the
        database answers again; unset: overflow is dropped.
    :ivar spill_max_bytes: the spill file's cap; beyond it records are dropped and counted.
    :ivar retention_days: request rows older than this are deleted (PostgreSQL: whole daily
        partitions dropped); 0 keeps them forever.
    :ivar pool_size: PostgreSQL connections (the writer's and the readers').
    :ivar shutdown_timeout: the longest ``shutdown`` spends writing what is queued.
    :ivar connect_timeout: per connection attempt.
    :ivar max_backoff: the longest wait between tries of a batch while the database is down
        (short: ``db_up`` turns 1 within seconds of the database answering again).
    """

    url: Secret = Secret(DEFAULT_URL)
    batch_size: PosInt = 500
    flush_interval: Duration = Duration(1)
    max_queue: PosInt = 50_000
    spill_path: str | None = None
    spill_max_bytes: PosInt = 256 * 1024 * 1024
    retention_days: NonNegInt = 30
    pool_size: PosInt = 4
    shutdown_timeout: Duration = Duration(10)
    connect_timeout: Duration = Duration(5)
    max_backoff: Duration = Duration(2)

    def __post_init__(self) -> None:
        parse_target(self.url.reveal())
        if self.spill_path is not None and not self.spill_path.strip():
            raise ValueError("spill_path must name a file")
        if self.flush_interval <= 0 or self.connect_timeout <= 0:
            raise ValueError("flush_interval and connect_timeout must be positive")

    @property
    def target(self) -> Target:
        """The URL, read."""
        return parse_target(self.url.reveal())

    def sqlite_file(self) -> Path:
        """The SQLite file (``sqlite`` backend)."""
        return Path(self.target.path)
