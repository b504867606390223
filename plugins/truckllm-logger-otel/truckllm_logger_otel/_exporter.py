"""A span exporter wrapper that counts what it exports and can be cut short at shutdown."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = ["CountingExporter"]


class CountingExporter(SpanExporter):
    """Passes batches to ``inner`` and counts exported and failed spans.

    Runs on the batch processor's worker thread. :meth:`abort` (called when shutdown runs out of
    time) shuts ``inner`` down, which stops its retries, and fails every later batch at once.

    :param inner: the real exporter (OTLP/HTTP, or an in-memory one in tests).
    """

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.exported = 0
        """Spans the receiver accepted."""
        self.failed = 0
        """Spans whose batch failed (receiver down or refusing, timeout, or aborted)."""
        self._lock = threading.Lock()
        self._stopped = False
        self._aborted = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export one batch through ``inner`` (or fail it at once after :meth:`abort`)."""
        if self._aborted:
            self.failed += len(spans)
            return SpanExportResult.FAILURE
        try:
            result = self.inner.export(spans)
        except Exception:
            self.failed += len(spans)
            raise
        if result is SpanExportResult.SUCCESS:
            self.exported += len(spans)
        else:
            self.failed += len(spans)
        return result

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush ``inner`` (the OTLP exporter buffers nothing)."""
        return self.inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Shut ``inner`` down, once."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self.inner.shutdown()

    def abort(self) -> None:
        """Give up: fail every later batch at once and stop ``inner`` (ends its retry waits)."""
        self._aborted = True
        self.shutdown()
