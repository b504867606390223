"""Where the config comes from, and how the gateway notices it changed.

A file is polled (content hash, so editors' rename-and-replace and touch-without-change are both
handled); an ``http(s)://`` source is polled with ``If-None-Match`` and the ``ETag`` it sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import urllib.request
from typing import Protocol

import aiohttp

from truckllm.errors import ConfigError, Problem

__all__ = ["ConfigSource", "FileSource", "HTTPSource", "TextSource", "open_source"]


class ConfigSource(Protocol):
    """A config's origin."""

    name: str
    writable: bool

    def read(self) -> str:
        """The current text (blocking; at start-up)."""

    async def poll(self) -> str | None:
        """The new text if it changed since the last read or poll, else ``None``."""

    def write(self, text: str) -> None:
        """Persist ``text`` (only when ``writable``)."""


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class TextSource:
    """A config given as text (tests, ``PUT`` without a file)."""

    writable = False

    def __init__(self, text: str, name: str = "<config>") -> None:
        self.text = text
        self.name = name

    def read(self) -> str:
        """The text."""
        return self.text

    async def poll(self) -> str | None:
        """Never changes by itself."""
        return None

    def write(self, text: str) -> None:
        """Keep the text in memory."""
        self.text = text


class FileSource:
    """A config file on disk."""

    writable = True

    def __init__(self, path: str) -> None:
        self.name = path
        self.path = path
        self._seen: str | None = None
        self._stat: tuple[int, int, int] | None = None
        self._pending: tuple[int, int, int] | None = None

    def _stat_now(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def read(self) -> str:
        """Read the file (raising :class:`ConfigError` when it cannot be read)."""
        try:
            with open(self.path, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise ConfigError(
                [Problem(message=f"cannot read config: {exc.strerror}", file=self.path)]
            ) from None
        except UnicodeDecodeError:
            raise ConfigError([Problem(message="the config is not valid UTF-8", file=self.path)]) from None
        self._seen = _digest(text)
        self._stat = self._stat_now()
        return text

    async def poll(self) -> str | None:
        """The new text once the file changed and then held still for one poll.

        A change is read only when two polls in a row see the same inode, size and mtime: an
        editor or ``echo >`` that truncates and then writes is never caught half-way, so a
        half-written file is never applied. A missing or empty file is not a change (deleting
        or truncating the config does not wipe the running one).
        """
        stat = self._stat_now()
        if stat is None or stat == self._stat:
            self._pending = None
            return None
        if stat != self._pending:
            self._pending = stat  # changed since the last poll: wait until it settles
            return None
        self._pending = None
        try:
            text = await asyncio.to_thread(self._read_text)
        except (OSError, UnicodeDecodeError):
            return None
        if self._stat_now() != stat:
            self._pending = None  # written to while we read: look again next time
            return None
        self._stat = stat
        if not text.strip():
            return None
        digest = _digest(text)
        if digest == self._seen:
            return None
        self._seen = digest
        return text

    def _read_text(self) -> str:
        with open(self.path, encoding="utf-8") as fh:
            return fh.read()

    def write(self, text: str) -> None:
        """Replace the file atomically (write a sibling, then rename over it)."""
        folder = os.path.dirname(os.path.abspath(self.path))
        fd, tmp = tempfile.mkstemp(prefix=".truckllm-", suffix=".yaml", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            if os.path.exists(self.path):
                os.chmod(tmp, os.stat(self.path).st_mode & 0o777)
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        self._seen = _digest(text)
        self._stat = self._stat_now()


class HTTPSource:
    """A config served over HTTP(S), polled with ``ETag`` / ``If-None-Match``."""

    writable = False

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.name = url
        self.url = url
        self.timeout = timeout
        self.etag: str | None = None
        self._seen: str | None = None

    def read(self) -> str:
        """Fetch the config (blocking; at start-up)."""
        request = urllib.request.Request(
            self.url, headers={"accept": "application/yaml, application/json, */*"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                text = str(response.read().decode("utf-8"))
                self.etag = response.headers.get("etag")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError([Problem(message=f"cannot fetch config: {exc}", file=self.url)]) from None
        self._seen = _digest(text)
        return text

    async def poll(self) -> str | None:
        """The new text when the server says it changed (304 and errors: no change)."""
        headers = {"if-none-match": self.etag} if self.etag else {}
        try:
            timeout = aiohttp.ClientTimeout(total=self.timeout)
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(self.url, headers=headers) as response,
            ):
                if response.status != 200:
                    return None
                text = await response.text()
                self.etag = response.headers.get("etag")
        except (aiohttp.ClientError, TimeoutError, UnicodeDecodeError):
            return None
        digest = _digest(text)
        if digest == self._seen:
            return None
        self._seen = digest
        return text

    def write(self, text: str) -> None:
        """An HTTP source cannot be written."""
        raise PermissionError("the config comes from an HTTP source and cannot be written here")


def open_source(location: str) -> ConfigSource:
    """A source for a path or an ``http(s)://`` URL."""
    if location.startswith(("http://", "https://")):
        return HTTPSource(location)
    return FileSource(location)
