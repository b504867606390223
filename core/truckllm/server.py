"""Running the app under hypercorn: one process, or several workers; signals; drain.

SIGTERM and SIGINT stop accepting, let in-flight requests and streams finish within
``server.graceful_timeout``, flush records, and exit 0. SIGHUP re-reads the config.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config as HypercornConfig
from loguru import logger

from truckllm.app import create_app
from truckllm.config.schema import Config
from truckllm.errors import ConfigError, StartupError
from truckllm.gateway import Gateway

__all__ = ["app_factory", "hypercorn_config", "run_server"]


def _is_loopback(listen: str) -> bool:
    host = listen.rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")


def check_exposure(config: Config, listen: str) -> None:
    """Refuse to serve without gateway keys anywhere but loopback."""
    if config.keys is None:
        if not _is_loopback(listen):
            raise StartupError(
                f"no gateway keys are configured and the gateway would listen on {listen}: "
                "add a keys: section, or listen on 127.0.0.1"
            )
        logger.warning("no keys: section: any bearer token is accepted (listening on loopback only)")


def hypercorn_config(
    config: Config, listen: str | None = None, workers: int | None = None
) -> HypercornConfig:
    """Hypercorn settings from the ``server:`` section."""
    hc = HypercornConfig()
    hc.bind = [listen or config.server.listen]
    hc.workers = workers or config.server.workers
    hc.graceful_timeout = config.server.graceful_timeout
    hc.keep_alive_timeout = config.server.keep_alive_timeout
    hc.read_timeout = int(config.server.read_timeout) or None
    hc.h11_max_incomplete_size = config.server.limits.max_header_bytes
    hc.accesslog = None
    hc.errorlog = "-"
    hc.backlog = 2048
    if sys.platform == "linux":
        hc.worker_class = "uvloop"
    return hc


async def _serve(gateway: Gateway, hc: HypercornConfig) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_term() -> None:
        logger.info("stop signal received: draining")
        gateway.draining = True
        stop.set()

    def on_hup() -> None:
        try:
            gateway.reload()
        except ConfigError as exc:
            logger.error("config reload refused; the running config stays:\n{}", exc)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_term)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    app = create_app(gateway)
    await hypercorn_serve(app, hc, shutdown_trigger=stop.wait)  # type: ignore[arg-type]


def setup_logging(level: str | None = None) -> None:
    """The kernel's own log sink: stderr, no variable values in tracebacks (they could hold secrets)."""
    logger.remove()
    logger.add(
        sys.stderr,
        level=level or os.environ.get("TRUCKLLM_LOG_LEVEL", "INFO"),
        diagnose=False,
        backtrace=False,
        format="{time:YYYY-MM-DD HH:mm:ss.SSS} | {level:<7} | {name}: {message}",
        filter=lambda record: "truckllm_logger" not in record["extra"],  # logger plugins' own sinks
    )


def run_server(config_path: str, listen: str | None = None, workers: int | None = None) -> int:
    """Serve ``config_path`` until SIGTERM; return the exit code."""
    setup_logging()
    gateway = Gateway(config_path)
    config = gateway.runtime.config
    bind = listen or config.server.listen
    check_exposure(config, bind)
    hc = hypercorn_config(config, bind, workers)
    if hc.workers > 1:
        from hypercorn.run import run as hypercorn_run

        os.environ["TRUCKLLM_CONFIG"] = config_path
        hc.application_path = "truckllm.server:app_factory()"
        logger.info("serving {} with {} workers on {}", config_path, hc.workers, bind)
        return int(hypercorn_run(hc) or 0)
    logger.info("serving {} on http://{}", config_path, bind)
    if sys.platform == "linux":
        import uvloop

        uvloop.run(_serve(gateway, hc))
    else:
        asyncio.run(_serve(gateway, hc))
    return 0


def app_factory() -> Any:
    """The ASGI app for ``hypercorn 'truckllm.server:app_factory()'`` (config from ``TRUCKLLM_CONFIG``)."""
    setup_logging()
    path = os.environ.get("TRUCKLLM_CONFIG", "config/truckllm.yaml")
    return create_app(Gateway(path))
