"""A test server on 127.0.0.1: the life cycle the fakes and the hostile upstream share.

Subclasses build their aiohttp application in :meth:`LoopbackServer.app`; this class serves it on
a free port (the same one again after :meth:`~LoopbackServer.close`, so a test can simulate an
outage and its recovery), with ``async with``, or from a daemon thread (``running()``) for
synchronous clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Self

from aiohttp import web

__all__ = ["LoopbackServer"]


class LoopbackServer:
    """Serves :meth:`app` on a port of 127.0.0.1."""

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def app(self) -> web.Application:
        """The application to serve (built at each :meth:`start`)."""
        raise NotImplementedError

    @property
    def port(self) -> int:
        """The TCP port; only valid once started."""
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._port

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Start serving on a free port of 127.0.0.1 (idempotent; after :meth:`close`, the same port)."""
        if self._runner is not None:
            return
        runner = web.AppRunner(self.app(), handler_cancellation=True, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", self._port or 0))
            await web.SockSite(runner, sock).start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = sock.getsockname()[1]

    async def close(self) -> None:
        """Stop serving and drop open connections."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        """``async with server:`` starts it."""
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Stop the server."""
        await self.close()

    def start_in_thread(self) -> None:
        """Serve from a daemon thread with its own event loop, for synchronous clients."""
        if self._thread is not None:
            return
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.close())
                loop.close()

        thread = threading.Thread(target=run, name=f"{type(self).__name__}-server", daemon=True)
        thread.start()
        ready.wait()
        if errors:
            thread.join()
            raise errors[0]
        self._thread = thread

    def stop_thread(self) -> None:
        """Stop a server started with :meth:`start_in_thread`."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._thread = None
        self._loop = None

    @contextlib.contextmanager
    def running(self) -> Iterator[Self]:
        """``with server.running():`` serves from a thread for the block."""
        self.start_in_thread()
        try:
            yield self
        finally:
            self.stop_thread()
