"""TruckLLM inbound dialect plugin: OpenAI's Files and Batch APIs (``/v1/files``, ``/v1/batches``).

A file and the batches built on it belong to the provider account that stored them: the gateway
records, per gateway key, which account holds each id, sends every later call on it there, and
answers 404 to any other key. A batch's usage is recorded once, when it is first seen finished,
at the batch price. The background poller is the ``batches`` component (``loggers: [batches]``:
:mod:`.component`). See the README.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from truckllm import hookimpl

from .component import BatchesOptions, BatchPoller
from .dialect import NAME, BatchesDialect

__all__ = [
    "NAME",
    "TRUCKLLM_API",
    "BatchPoller",
    "BatchesDialect",
    "BatchesOptions",
    "register_dialects",
    "register_loggers",
]

TRUCKLLM_API = 1
"""The plugin API version this plugin was written for."""


@hookimpl
def register_dialects(register: Callable[[Any], None]) -> None:
    """Offer the ``batches`` inbound dialect."""
    register(BatchesDialect())


@hookimpl
def register_loggers(register: Callable[[str, type], None]) -> None:
    """Offer the ``batches`` component (the background poller, configured under ``loggers:``)."""
    register("batches", BatchPoller)
