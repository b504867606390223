"""Running the app under hypercorn: one process, or several workers; signals; drain.

SIGTERM and SIGINT stop accepting, let in-flight requests and streams finish within
``server.graceful_timeout``, flush records, and exit 0. SIGHUP re-reads the config.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import sys
from typing import Any

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config as HypercornConfig
from loguru import logger

from truckllm._internal.app import create_app
from truckllm._internal.config.schema import Config
from truckllm._internal.gateway import Gateway
from truckllm._internal.preflight import bind_error, check_bindable, check_exposure, preflight
from truckllm._internal.sdnotify import notify
from truckllm.errors import ConfigError

__all__ = ["app_factory", "check_exposure", "hypercorn_config", "run_server"]


def hypercorn_config(
    config: Config, listen: str | None = None, workers: int | None = None
) -> HypercornConfig:
    """Hypercorn settings from the ``server:`` section."""
    hc = HypercornConfig()
    worker_fd = os.environ.get("TRUCKLLM_WORKER_FD")
    hc.bind = (
        [f"fd://{worker_fd}"]
        if worker_fd and (workers or config.server.workers) == 1
        else [listen or config.server.listen]
    )
    hc.workers = workers or config.server.workers
    hc.graceful_timeout = config.server.graceful_timeout
    hc.keep_alive_timeout = config.server.keep_alive_timeout
    # no per-read timeout: it would cut a long stream whose client sends nothing while it reads;
    # request bodies have their own deadline (server.read_timeout), idle and unfinished-header
    # connections are closed at keep_alive_timeout
    hc.read_timeout = None
    hc.h11_max_incomplete_size = config.server.limits.max_header_bytes
    hc.accesslog = None
    hc.errorlog = "-"
    hc.backlog = 2048
    hc.include_server_header = False  # no software banner (and one header less to write)
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
        notify("RELOADING=1")
        try:
            gateway.reload()
        except ConfigError as exc:
            logger.error("config reload refused; the running config stays:\n{}", exc)
        notify(f"READY=1\nSTATUS=serving config version {gateway.runtime.version}")

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
    bind = preflight(config, listen)
    if os.environ.get("TRUCKLLM_WORKER_FD"):
        workers = 1  # a worker of supervise(), which holds the socket
    else:
        check_bindable(bind)
    hc = hypercorn_config(config, bind, workers)
    if hc.workers > 1:
        del gateway  # each worker builds its own
        return supervise(config_path, bind, hc.workers)
    logger.info("serving {} on http://{}", config_path, bind)
    tune_gc()
    try:
        _run_loop(_serve(gateway, hc))
    except OSError as exc:  # the address was taken between the check and the bind
        error = bind_error(bind, exc)
        if error is None:
            raise
        raise error from None
    return 0


def tune_gc() -> None:
    """Fewer, cheaper garbage collections on the request path.

    Everything alive at start-up (modules, plugins, the config) is moved out of the collector's
    sight (``gc.freeze``), and the youngest generation is collected every 20,000 allocations
    instead of 700: requests allocate many short-lived containers, and most die by reference
    counting anyway.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def _run_loop(coro: Any) -> None:
    if sys.platform == "linux":
        import uvloop

        uvloop.run(coro)
    else:
        asyncio.run(coro)


def _listen(bind: str) -> socket.socket:
    host, _, port = bind.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, int(port)))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def supervise(config_path: str, bind: str, workers: int) -> int:
    """Run ``workers`` worker processes on one shared listening socket.

    Each worker is a whole gateway (its own event loop, session, watcher); SIGHUP and SIGTERM are
    forwarded to every worker, so each reloads in place or drains its own requests. A worker that
    dies is replaced. With several workers, Prometheus metrics use the multiprocess directory in
    ``PROMETHEUS_MULTIPROC_DIR`` (a fresh temporary one when unset).
    """
    import shutil
    import subprocess
    import tempfile
    import time

    sock = _listen(bind)
    own_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        own_dir = tempfile.mkdtemp(prefix="truckllm-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_dir
    env = {**os.environ, "TRUCKLLM_WORKER_FD": str(sock.fileno())}
    command = [sys.executable, "-m", "truckllm.cli", "serve", "--config", config_path, "--workers", "1"]

    def spawn(index: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            command, env={**env, "TRUCKLLM_WORKER": str(index)}, pass_fds=(sock.fileno(),)
        )

    procs = [spawn(i) for i in range(workers)]
    stopping = False

    def forward(signum: int, _frame: Any) -> None:
        nonlocal stopping
        if signum in (signal.SIGTERM, signal.SIGINT):
            stopping = True
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM if signum == signal.SIGINT else signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    logger.info("serving {} with {} workers on http://{}", config_path, workers, bind)
    notify(f"READY=1\nSTATUS={workers} workers")
    exit_code = 0
    while True:
        time.sleep(0.2)
        for i, proc in enumerate(procs):
            code = proc.poll()
            if code is None:
                continue
            if stopping:
                exit_code = exit_code or code
            else:
                logger.error("worker {} exited with {}; starting a new one", i, code)
                procs[i] = spawn(i)
        if stopping and all(p.poll() is not None for p in procs):
            break
    sock.close()
    if own_dir:
        shutil.rmtree(own_dir, ignore_errors=True)
    return exit_code


def app_factory() -> Any:
    """The ASGI app for ``hypercorn 'truckllm.server:app_factory()'`` (config from ``TRUCKLLM_CONFIG``)."""
    setup_logging()
    path = os.environ.get("TRUCKLLM_CONFIG", "config/truckllm.yaml")
    return create_app(Gateway(path))
