"""The spill file: records that overflow the in-memory queue while the database is down, as JSON
lines, capped at ``spill_max_bytes``; replayed once the database answers again.

Replay first renames the file to ``<path>.replay`` (new overflow starts a fresh file), reads it in
batches, and deletes it when every batch is written. A crash mid-replay replays the whole file
again on the next start; the writer skips request ids already stored, so nothing is counted twice.
Every method does file I/O: call it from a thread.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import msgspec

from truckllm.types import RequestRecord

__all__ = ["SpillFile"]

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(RequestRecord)


class SpillFile:
    """A capped JSON-lines file of records.

    :param path: the file (its folder is created when needed).
    :param max_bytes: the cap; a record that would pass it is refused.
    """

    def __init__(self, path: str | Path, max_bytes: int) -> None:
        self.path = Path(path)
        self.replay_path = self.path.with_name(self.path.name + ".replay")
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def append(self, records: Sequence[RequestRecord]) -> int:
        """Append ``records`` while under the cap; how many were written (the rest are refused)."""
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "ab") as f:
                size = f.tell()
                written = 0
                chunk = bytearray()
                for record in records:
                    line = _ENCODER.encode(record) + b"\n"
                    if size + len(chunk) + len(line) > self.max_bytes:
                        break
                    chunk += line
                    written += 1
                f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            return written

    def start_replay(self) -> bool:
        """Is there a file to replay? (Moves the spill file aside unless a replay is pending.)"""
        with self._lock:
            if self.replay_path.exists():
                return True
            if self.path.exists() and self.path.stat().st_size > 0:
                self.path.rename(self.replay_path)
                return True
            return False

    def read(self, offset: int, count: int) -> tuple[list[RequestRecord], int]:
        """Up to ``count`` records of the replay file from byte ``offset``; the next offset.
        A line that does not decode is skipped."""
        records: list[RequestRecord] = []
        with open(self.replay_path, "rb") as f:
            f.seek(offset)
            while len(records) < count:
                line = f.readline()
                if not line:
                    break
                if not line.endswith(b"\n"):  # a torn last line
                    offset = f.tell()
                    break
                with contextlib.suppress(msgspec.DecodeError):
                    records.append(_DECODER.decode(line))
                offset = f.tell()
        return records, offset

    def finish_replay(self) -> None:
        """Every record of the replay file is written: delete it."""
        with self._lock:
            self.replay_path.unlink(missing_ok=True)

    def pending_bytes(self) -> int:
        """The size of both files (for the figures)."""
        return sum(p.stat().st_size for p in (self.path, self.replay_path) if p.exists())
