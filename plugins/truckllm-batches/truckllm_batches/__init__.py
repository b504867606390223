"""TruckLLM inbound dialect plugin: OpenAI's Files and Batch APIs (``/v1/files``, ``/v1/batches``).

A file and the batches built on it belong to the provider account that stored them: the gateway
records, per gateway key, which account holds each id, sends every later call on it there, and
answers 404 to any other key. A batch's usage is recorded once, when it is first seen finished,
at the batch price. See the README.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from truckllm import hookimpl
from truckllm.kit.view import GatewayView

from .dialect import NAME, BatchesDialect
from .poller import Poller, poller_for

__all__ = ["NAME", "TRUCKLLM_API", "BatchesDialect", "register_dialects", "shutdown", "startup"]

_RUNNING: dict[int, Poller] = {}
"""The pollers of this process's running gateways, by the id of their view: one per gateway,
added at its startup and removed at its shutdown (a process may run several gateways)."""

TRUCKLLM_API = 1
"""The plugin API version this plugin was written for."""


@hookimpl
def register_dialects(register: Callable[[Any], None]) -> None:
    """Offer the ``batches`` inbound dialect."""
    register(BatchesDialect())


@hookimpl
async def startup(app: GatewayView) -> None:
    """Start this gateway's batch poller (see :mod:`.poller`), when the dialect is served."""
    try:
        app.local_call(NAME, None)
    except LookupError:
        return  # the dialect is disabled in this gateway
    poller = poller_for(app)
    _RUNNING[id(app)] = poller
    poller.start()


@hookimpl
async def shutdown(app: GatewayView) -> None:
    """Stop this gateway's batch poller."""
    poller = _RUNNING.pop(id(app), None)
    if poller is not None:
        await poller.stop()
