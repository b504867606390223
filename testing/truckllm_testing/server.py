"""A real TruckLLM gateway on loopback, in a background thread, for end-to-end tests.

```python
with GatewayServer(CONFIG_YAML) as gw:
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key="anything")
```

The gateway runs under hypercorn on its own event loop in a daemon thread, bound to a free port
on 127.0.0.1; ``stop()`` drains it like SIGTERM would. ``gateway`` is the live
:class:`~truckllm._internal.gateway.Gateway` (its health, background queue and runtime can be inspected).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from hypercorn.asyncio import serve

from truckllm._internal.app import create_app
from truckllm._internal.gateway import Gateway
from truckllm._internal.server import hypercorn_config

__all__ = ["GatewayServer"]


async def _settle() -> None:
    """Cancel what is left on the loop and let closing transports finish closing."""
    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    await asyncio.sleep(0.05)


class GatewayServer:
    """A running gateway for tests; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        config_text: str | None = None,
        *,
        config_path: str | None = None,
        env: Mapping[str, str] | None = None,
        extra_plugins: tuple[object, ...] = (),
        autoload: bool | None = None,
        gateway_kwargs: Mapping[str, Any] | None = None,
        graceful_timeout: float = 5.0,
        start_timeout: float = 60.0,
    ) -> None:
        self.config_text = config_text
        self.config_path = config_path
        self.env = dict(env) if env is not None else {}
        self.extra_plugins = extra_plugins
        self.autoload = autoload
        self.gateway_kwargs = dict(gateway_kwargs or {})
        self.graceful_timeout = graceful_timeout
        self.start_timeout = start_timeout
        self.url = ""
        self.port = 0
        self.gateway: Gateway | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    def start(self) -> GatewayServer:
        """Start serving; return once the gateway answers."""
        self.gateway = Gateway(
            self.config_path or "<test>",
            config_text=self.config_text if self.config_path is None else None,
            env=self.env,
            extra_plugins=self.extra_plugins,
            autoload=self.autoload,
            **self.gateway_kwargs,
        )
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.set_inheritable(True)
        # listen now: hypercorn runs the lifespan start-up (which marks the gateway started)
        # before it listens, and a client connecting in between would be refused; a listening
        # socket queues it in the backlog until hypercorn accepts
        sock.listen(128)
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._sock = sock
        self._thread = threading.Thread(target=self._run, name="truckllm-test-gateway", daemon=True)
        self._thread.start()
        ready = self._ready.wait(self.start_timeout)
        if self._error is not None:
            raise RuntimeError("gateway failed to start") from self._error
        if not ready:
            self.stop()
            raise RuntimeError(f"gateway did not start within {self.start_timeout:g} s")
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to the test thread
            self._error = exc
            self._ready.set()
        finally:
            # let connections the server or the upstream session were closing finish closing,
            # so no transport is left for the garbage collector to find open
            loop.run_until_complete(_settle())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    async def _serve(self) -> None:
        assert self.gateway is not None
        self._stop = asyncio.Event()
        hc = hypercorn_config(self.gateway.runtime.config, workers=1)
        hc.bind = [f"fd://{self._sock.fileno()}"]
        hc.graceful_timeout = self.graceful_timeout
        hc.accesslog = None
        hc.errorlog = None
        hc.worker_class = "asyncio"
        app = create_app(self.gateway)
        asyncio.get_running_loop().call_later(0.05, self._probe)
        await serve(app, hc, shutdown_trigger=self._stop.wait)  # type: ignore[arg-type]

    def _probe(self) -> None:
        if self.gateway is not None and self.gateway.started:
            self._ready.set()
        elif self.loop is not None:
            self.loop.call_later(0.02, self._probe)

    def call(self, coro: Any, timeout: float = 30) -> Any:
        """Run a coroutine on the gateway's loop and return its result (for inspecting state)."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        """Stop like SIGTERM: refuse new requests, drain, flush, close."""
        if self.loop is None or self._stop is None:
            return
        if self.gateway is not None:
            self.loop.call_soon_threadsafe(setattr, self.gateway, "draining", True)
        self.loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(self.graceful_timeout + 15)
        with contextlib.suppress(OSError):  # hypercorn closed it already
            self._sock.close()

    def __enter__(self) -> GatewayServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
