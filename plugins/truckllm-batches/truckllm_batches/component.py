"""The ``batches`` component: this gateway's background poller and its settings.

Configured as a ``loggers:`` entry (the kernel decodes its options strictly when the config is
loaded, builds one instance per gateway and calls its ``startup`` / ``shutdown``; a reload that
changes the entry builds a new one, and the old one stops)::

    loggers:
      - batches:
          poll_interval: 60s     # between rounds, and the first backoff (0: no poller)
          poll_max: 15m          # the longest wait between two questions about one batch
                                 # (default 15m, or poll_interval when longer)

Without the entry no poller runs: a finished batch is then charged when a client first
retrieves (or cancels) it, which a client must do to learn its output file's id.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec
from loguru import logger

from truckllm import hookimpl
from truckllm.kit.options import Duration
from truckllm.kit.view import GatewayView

from .files import NAME
from .poller import Poller, PollSettings

__all__ = ["DEFAULT_POLL_MAX", "BatchPoller", "BatchesOptions"]

DEFAULT_POLL_MAX = 900.0
"""The longest backoff when ``poll_max`` is unset (unless ``poll_interval`` is longer)."""


class BatchesOptions(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """``loggers: [{batches: {...}}]``.

    :ivar poll_interval: seconds between the poller's rounds, and the first backoff of a batch
        (``0``: no poller).
    :ivar poll_max: the longest backoff between two questions about one batch, at least
        ``poll_interval`` (unset: 15 minutes, or ``poll_interval`` when longer).
    """

    poll_interval: Duration = Duration(60)
    poll_max: Duration | None = None

    def __post_init__(self) -> None:
        if self.poll_max is not None and self.poll_max < self.poll_interval:
            raise ValueError("poll_max must be at least poll_interval")

    def settings(self) -> PollSettings:
        """The poller's settings."""
        most = self.poll_max if self.poll_max is not None else max(DEFAULT_POLL_MAX, self.poll_interval)
        return PollSettings(interval=float(self.poll_interval), most=float(most))


class BatchPoller:
    """The component configured as ``loggers: [batches]``: one :class:`~.poller.Poller` for the
    gateway that built it (kept here, per gateway: nothing at module level)."""

    Options = BatchesOptions
    name: ClassVar[str] = "batches"
    """Its name in ``loggers:``."""
    metrics_counters: ClassVar[frozenset[str]] = frozenset({"polls"})
    """``polls`` only grows (``truckllm_logger_batches_polls`` with the Prometheus logger)."""

    def __init__(self, options: BatchesOptions) -> None:
        self.options = options
        self.poller: Poller | None = None

    @property
    def metrics(self) -> dict[str, float]:
        """``polls``: questions the poller asked since it started."""
        return {"polls": float(self.poller.visits if self.poller is not None else 0)}

    @hookimpl
    async def startup(self, app: GatewayView) -> None:
        """Start the poller, when the ``batches`` dialect is served and ``poll_interval`` is not 0."""
        if self.poller is not None:
            return
        try:
            app.local_call(NAME, None)
        except LookupError:
            logger.warning("loggers: batches is configured but the batches dialect is not served")
            return
        self.poller = Poller(app, self.options.settings())
        self.poller.start()

    @hookimpl
    async def shutdown(self, app: GatewayView) -> None:
        """Stop the poller."""
        if self.poller is not None:
            await self.poller.stop()
