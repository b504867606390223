"""The retry budget: two limits on retries, so that they cannot multiply load in an outage.

One per gateway (kept across reloads); each call takes the routing's ``retry_budget`` config.
"""

from __future__ import annotations

from truckllm._internal.config.schema import RetryBudgetConfig

__all__ = ["RetryBudget"]


class RetryBudget:
    """Two limits on retries, so that they cannot multiply load in an outage.

    Envoy's budget: retries in flight may not exceed ``ratio`` of requests in flight, with a
    floor of ``min``. gRPC's throttling: a token bucket (``tokens``) loses 1 per failed attempt
    and gains ``token_ratio`` per success; no retry while it is at or below half.
    """

    def __init__(self) -> None:
        self.active_requests = 0
        self.active_retries = 0
        self.denied = 0
        self.tokens: float | None = None

    def _bucket(self, config: RetryBudgetConfig) -> float:
        if self.tokens is None:
            self.tokens = float(config.tokens)
        return self.tokens

    def allow(self, config: RetryBudgetConfig) -> bool:
        """May one more retry start now?"""
        if self.active_retries < max(config.min, config.ratio * self.active_requests) and (
            self._bucket(config) > config.tokens / 2
        ):
            return True
        self.denied += 1
        return False

    def bucket_allows(self, config: RetryBudgetConfig) -> bool:
        """Is the token bucket above half (failovers after refused connections need that)?"""
        if self._bucket(config) > config.tokens / 2:
            return True
        self.denied += 1
        return False

    def failed(self, config: RetryBudgetConfig) -> None:
        """An attempt failed (a retryable failure)."""
        self.tokens = max(0.0, self._bucket(config) - 1)

    def succeeded(self, config: RetryBudgetConfig) -> None:
        """An attempt succeeded."""
        tokens = self.tokens
        full = float(config.tokens)
        if tokens is None:  # as _bucket(), without the call (once per request)
            tokens = full
        self.tokens = min(full, tokens + config.token_ratio)
