"""Ownership records: which provider account holds each file and batch, per gateway key.

Every record lives in the request's :class:`~truckllm.kit.dialect.DialectState`, which the kernel
scopes to the dialect and the gateway key: a key never reads another key's records, so an id
another key created is unknown here (404, the answer for an id that never existed).

- ``file:<id>`` (:class:`FileRecord`): the provider entry and key that stored the file, the alias
  it was uploaded for, the File object as the client got it;
- ``batch:<id>`` (:class:`BatchRecord`): the same for a batch, its Batch object as last seen,
  whether its usage was recorded;
- ``bill:<id>``: a batch's bill token, taken (an atomic delete in the store) by the one call that
  records the batch's usage;
- ``index:file`` / ``index:batch``: the ids of the key's files and batches, newest last (what the
  list routes page over; at most :data:`MAX_INDEX` ids are kept).

An id is looked up only when it has an id's shape (:func:`valid_id`); any other is unknown
without a store call.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from truckllm.kit.dialect import DialectState

__all__ = [
    "MAX_ID",
    "MAX_INDEX",
    "BatchRecord",
    "FileRecord",
    "add_to_index",
    "bill_name",
    "drop_from_index",
    "index",
    "load_batch",
    "load_file",
    "save_batch",
    "save_file",
    "valid_id",
]

MAX_ID = 256
"""The longest id looked up or stored."""
MAX_INDEX = 10_000
"""The most ids a key's list of files (or of batches) keeps: the oldest are dropped from the list
(still reachable by id)."""

_ID_SHAPE = re.compile(rf"[A-Za-z0-9_.-]{{1,{MAX_ID}}}")


class FileRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One file a gateway key uploaded, or a batch's output or error file.

    :ivar provider: the ``providers.<name>`` entry that holds it.
    :ivar key: the provider key's name.
    :ivar alias: the alias it was uploaded for (every later call goes through it).
    :ivar object: the File object as the client gets it.
    :ivar held: the gateway keeps its bytes (a batch input file for a provider that keeps none:
        Anthropic), in :attr:`parts` parts (:mod:`.blobs`).
    :ivar parts: how many parts hold its bytes.
    :ivar virtual: the output of a batch on such a provider: no File object upstream (retrieve and
        delete answered from this record; the content read from the provider's results).
    """

    provider: str
    key: str
    alias: str
    object: dict[str, Any]
    held: bool = False
    parts: int = 0
    virtual: bool = False


class BatchRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One batch a gateway key created.

    :ivar provider: the ``providers.<name>`` entry that runs it.
    :ivar key: the provider key's name.
    :ivar alias: the alias of its requests.
    :ivar object: the Batch object as last seen.
    :ivar billed: its usage was recorded.
    :ivar held: its input file is one the gateway keeps (an Anthropic Message Batch): its output
        files are virtual, and the fields the provider does not keep (``input_file_id``,
        ``metadata``) come from the first object seen.
    :ivar polled_at: when the background poller (any replica's) last asked about it (Unix s).
    :ivar polls: how many times it did (the backoff's step).
    """

    provider: str
    key: str
    alias: str
    object: dict[str, Any]
    billed: bool = False
    held: bool = False
    polled_at: float = 0.0
    polls: int = 0


_FILE = msgspec.json.Decoder(FileRecord)
_BATCH = msgspec.json.Decoder(BatchRecord)
_INDEX = msgspec.json.Decoder(list[str])


def valid_id(ident: str) -> bool:
    """``ident`` has an id's shape: 1 to :data:`MAX_ID` letters, digits and ``_ - .``."""
    return _ID_SHAPE.fullmatch(ident) is not None


def bill_name(batch_id: str) -> str:
    """The state name of a batch's bill token."""
    return "bill:" + batch_id


async def load_file(state: DialectState, file_id: str) -> FileRecord | None:
    """The record of ``file_id`` for this key (``None``: unknown, or a damaged value)."""
    if not valid_id(file_id):
        return None
    raw = await state.get("file:" + file_id)
    try:
        return _FILE.decode(raw) if raw is not None else None
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


async def load_batch(state: DialectState, batch_id: str) -> BatchRecord | None:
    """The record of ``batch_id`` for this key (``None``: unknown, or a damaged value)."""
    if not valid_id(batch_id):
        return None
    raw = await state.get("batch:" + batch_id)
    try:
        return _BATCH.decode(raw) if raw is not None else None
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def save_file(state: DialectState, file_id: str, record: FileRecord) -> None:
    """Queue the write of a file's record."""
    state.put("file:" + file_id, msgspec.json.encode(record))


def save_batch(state: DialectState, batch_id: str, record: BatchRecord) -> None:
    """Queue the write of a batch's record."""
    state.put("batch:" + batch_id, msgspec.json.encode(record))


async def index(state: DialectState, kind: str) -> list[str]:
    """The ids of this key's ``kind`` (``file`` or ``batch``), oldest first."""
    raw = await state.get("index:" + kind)
    try:
        return _INDEX.decode(raw) if raw is not None else []
    except (msgspec.DecodeError, msgspec.ValidationError):
        return []


async def add_to_index(state: DialectState, kind: str, ident: str) -> None:
    """Queue the write of the index with ``ident`` added (a read, then a write: two uploads of one
    key at the same moment may each miss the other's id in the list, never in ownership)."""
    ids = [i for i in await index(state, kind) if i != ident]
    ids.append(ident)
    state.put("index:" + kind, msgspec.json.encode(ids[-MAX_INDEX:]))


async def drop_from_index(state: DialectState, kind: str, ident: str) -> None:
    """Queue the write of the index without ``ident``."""
    ids = await index(state, kind)
    if ident in ids:
        state.put("index:" + kind, msgspec.json.encode([i for i in ids if i != ident]))
