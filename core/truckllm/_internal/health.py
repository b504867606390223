"""Live per-key and per-candidate state: in flight, latency, cooldowns, ejection, limits.

Owned by the gateway (not by a config snapshot), keyed by names, so that the state of unchanged
keys survives a config reload. Updated in place on the event loop: no locks, no I/O.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from truckllm._internal.config.schema import CooldownConfig
from truckllm.types import Candidate, KeyHealth, RateLimits

__all__ = ["Clock", "HealthRegistry", "KeyState", "PairStats", "WindowCounter", "pair_stats"]

Clock = Callable[[], float]

EWMA_ALPHA = 0.3


class WindowCounter:
    """Counts over the last 60 seconds in one-second buckets; add and read are O(1) amortised."""

    __slots__ = ("_buckets", "_last", "_total")

    def __init__(self) -> None:
        self._buckets = [0] * 60
        self._last = 0  # the last second seen; buckets of seconds before last-59 are zero
        self._total = 0

    def _advance(self, second: int) -> None:
        if second <= self._last:
            return
        if second - self._last >= 60:
            self._buckets = [0] * 60
            self._total = 0
        else:
            for s in range(self._last + 1, second + 1):
                slot = s % 60
                self._total -= self._buckets[slot]
                self._buckets[slot] = 0
        self._last = second

    def add(self, now: float, amount: int = 1) -> None:
        """Count ``amount`` at time ``now``."""
        second = int(now)
        if second > self._last:  # (the test _advance() begins with, without the call)
            self._advance(second)
        self._buckets[second % 60 if second >= self._last - 59 else self._last % 60] += amount
        self._total += amount

    def total(self, now: float) -> int:
        """The sum over the 60 seconds up to ``now``."""
        self._advance(int(now))
        return self._total


@dataclass
class KeyState:
    """One provider key's health, shared by every deployment that uses it."""

    provider: str
    name: str
    in_flight: int = 0
    cooldown_until: float = 0.0
    cooldown_reason: str = ""
    consecutive_failures: int = 0
    ejections: int = 0
    ejected_until: float = 0.0
    ejected_reason: str = ""  # why the last ejection happened (alerts and logs)
    recovered_at: float = 0.0
    disabled: str = ""  # non-empty: why the key is out until re-enabled (401/403)
    limits: RateLimits | None = None
    limits_at: float = 0.0
    requests: WindowCounter = field(default_factory=WindowCounter)
    tokens: WindowCounter = field(default_factory=WindowCounter)
    successes: int = 0
    failures: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    outcomes: deque[bool] = field(default_factory=lambda: deque(maxlen=100))
    half_open: bool = False
    shared_until: float = 0.0  # the cooldown applied from another process's mark in the store
    enabled_at: float = float("-inf")  # when an operator last re-enabled the key
    credential_until: float = float("inf")  # a refreshed credential's expiry (gateway clock); -inf: none yet
    credential_refused: bool = False  # the upstream refused (401) its credential: a fresh one is on its way

    def enable(self, now: float) -> None:
        """An operator put the key back: no cooldown, ejection or disablement; slow start from now."""
        self.disabled = ""
        self.cooldown_until = self.ejected_until = self.shared_until = 0.0
        self.cooldown_reason = ""
        self.consecutive_failures = 0
        self.enabled_at = now
        if self.recovered_at > now:  # the slow start begins now, not when the cooldown would have ended
            self.recovered_at = now

    def available_at(self, now: float) -> float:
        """When the key may take traffic again (``now`` or earlier: it may now)."""
        if self.disabled:
            return float("inf")
        return max(self.cooldown_until, self.ejected_until)

    def state(self, now: float) -> KeyHealth:
        """``ok``, ``cooldown``, ``ejected``, ``half_open``, ``disabled``, ``credential`` (no usable
        fetched credential) or ``recovering`` (slow start)."""
        if self.disabled:
            return "disabled"
        if self.credential_until <= now:
            return "credential"
        if self.ejected_until > now:
            return "ejected"
        if self.half_open:
            return "half_open"
        if self.cooldown_until > now:
            return "cooldown"
        if self.recovered_at and now - self.recovered_at < SLOW_START_SECONDS:
            return "recovering"
        return "ok"

    def cool(self, now: float, seconds: float, reason: str) -> None:
        """Cool the key down for ``seconds``; a later cooldown extends, never shortens."""
        until = now + seconds
        if until > self.cooldown_until:
            self.cooldown_until = until
            self.cooldown_reason = reason
            self.recovered_at = until

    def weight_factor(self, now: float) -> float:
        """Slow start: from 10% right after recovery to 100% after ``SLOW_START_SECONDS``."""
        if not self.recovered_at or now <= self.recovered_at:
            return 1.0
        elapsed = now - self.recovered_at
        if elapsed >= SLOW_START_SECONDS:
            return 1.0
        return max(0.1, elapsed / SLOW_START_SECONDS)


SLOW_START_SECONDS = 30.0


class PairStats:
    """Live metrics of one (deployment, key) candidate; the read-only view strategies get."""

    __slots__ = ("_clock", "failures", "in_flight", "key_state", "latency_ewma", "successes", "ttft_ewma")

    def __init__(self, key_state: KeyState, clock: Clock) -> None:
        self.key_state = key_state
        self._clock = clock
        self.in_flight = 0
        self.latency_ewma: float | None = None
        self.ttft_ewma: float | None = None
        self.successes = 0
        self.failures = 0

    @property
    def key_in_flight(self) -> int:
        """Requests in flight on the key, whatever the deployment."""
        return self.key_state.in_flight

    @property
    def requests_last_minute(self) -> int:
        """Requests sent on the key in the last 60 s."""
        return self.key_state.requests.total(self._clock())

    @property
    def tokens_last_minute(self) -> int:
        """Tokens used on the key in the last 60 s."""
        return self.key_state.tokens.total(self._clock())

    def _fresh(self, reset: float | None) -> bool:
        """A provider figure holds until its window resets (or 60 s when the reset is unknown)."""
        horizon = reset if reset is not None else 60.0
        return self._clock() < self.key_state.limits_at + horizon

    @property
    def remaining_requests(self) -> int | None:
        """The provider's last remaining-requests figure for the key (``None`` once its window reset)."""
        limits = self.key_state.limits
        if limits is None or not self._fresh(limits.reset_requests):
            return None
        return limits.remaining_requests

    @property
    def remaining_tokens(self) -> int | None:
        """The provider's last remaining-tokens figure for the key (``None`` once its window reset)."""
        limits = self.key_state.limits
        if limits is None or not self._fresh(limits.reset_tokens):
            return None
        return limits.remaining_tokens

    @property
    def limit_requests(self) -> int | None:
        """The provider's requests-per-window limit for the key, when it said."""
        limits = self.key_state.limits
        return limits.limit_requests if limits else None

    @property
    def limit_tokens(self) -> int | None:
        """The provider's tokens-per-window limit for the key, when it said."""
        limits = self.key_state.limits
        return limits.limit_tokens if limits else None

    @property
    def weight_factor(self) -> float:
        """Slow-start factor of the key (1.0 when fully recovered)."""
        return self.key_state.weight_factor(self._clock())

    def observe(self, latency: float, ttft: float | None) -> None:
        """Fold one successful attempt's latency (and TTFT) into the EWMAs."""
        self.successes += 1
        self.latency_ewma = (
            latency
            if self.latency_ewma is None
            else (EWMA_ALPHA * latency + (1 - EWMA_ALPHA) * self.latency_ewma)
        )
        if ttft is not None:
            self.ttft_ewma = (
                ttft if self.ttft_ewma is None else (EWMA_ALPHA * ttft + (1 - EWMA_ALPHA) * self.ttft_ewma)
            )


def pair_stats(candidate: Candidate) -> PairStats:
    """The kernel's own stats of ``candidate`` (strategies see them as a read-only
    :class:`~truckllm.types.CandidateStats`).

    :raises TypeError: the candidate carries stats the kernel did not make (a strategy returned a
        candidate of its own making rather than one it was given).
    """
    stats = candidate.stats
    if not isinstance(stats, PairStats):
        raise TypeError(f"candidate {candidate.id!r} carries stats the kernel did not make")
    return stats


class HealthRegistry:
    """Every key's and candidate's live state, by name; survives config reloads."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self.keys: dict[tuple[str, str], KeyState] = {}
        self.pairs: dict[tuple[str, str, str, str], PairStats] = {}

    def key(self, provider: str, name: str) -> KeyState:
        """The state of one provider key (made on first use)."""
        state = self.keys.get((provider, name))
        if state is None:
            state = self.keys[(provider, name)] = KeyState(provider=provider, name=name)
        return state

    def pair(self, alias: str, provider: str, model: str, key: str, keep: bool = True) -> PairStats:
        """The stats of one candidate (made on first use; kept only when ``keep``, so that names
        chosen by clients cannot grow the registry without end)."""
        ident = (alias, provider, model, key)
        stats = self.pairs.get(ident)
        if stats is None:
            stats = PairStats(self.key(provider, key), self.clock)
            if keep:
                self.pairs[ident] = stats
        return stats

    def record_failure(
        self, state: KeyState, cooldown: CooldownConfig, now: float, kind: str = "server"
    ) -> bool:
        """Count a failure that says the key (or its provider) is unwell; maybe eject the key.

        Ejects after ``cooldown.failures`` in a row, when the error ratio over the last
        ``cooldown.window`` attempts passes ``cooldown.error_ratio``, or at once when a half-open
        probe fails. An ejection lasts ``cooldown.duration`` times the number of ejections so
        far, capped at ``cooldown.max_duration``. Returns whether the key was ejected.
        """
        state.failures += 1
        state.errors[kind] += 1
        state.consecutive_failures += 1
        state.outcomes.append(False)
        recent = list(state.outcomes)[-cooldown.window :]
        ratio_bad = (
            len(recent) >= cooldown.min_requests and recent.count(False) / len(recent) > cooldown.error_ratio
        )
        if not (state.half_open or state.consecutive_failures >= cooldown.failures or ratio_bad):
            return False
        if not state.half_open and not self._may_eject(state, cooldown, now):
            return False
        if state.half_open:
            state.ejected_reason = "its half-open probe failed"
        elif state.consecutive_failures >= cooldown.failures:
            state.ejected_reason = f"{state.consecutive_failures} consecutive failures"
        else:
            bad = recent.count(False)
            state.ejected_reason = f"error ratio {bad / len(recent):.2f} over the last {len(recent)} attempts"
        state.ejections += 1
        seconds = min(cooldown.duration * state.ejections, cooldown.max_duration)
        state.ejected_until = now + seconds
        state.recovered_at = state.ejected_until
        state.consecutive_failures = 0
        state.outcomes.clear()
        state.half_open = True  # when it comes back, one probe at a time until a success
        return True

    def _may_eject(self, state: KeyState, cooldown: CooldownConfig, now: float) -> bool:
        siblings = [k for (provider, _), k in self.keys.items() if provider == state.provider]
        ejected = sum(1 for k in siblings if k.ejected_until > now and k is not state)
        allowed = max(1, int(len(siblings) * cooldown.max_ejection_percent / 100))
        return ejected < allowed

    def record_success(self, state: KeyState) -> None:
        """A success: the key is healthy again (a half-open key closes; ejections decay by one)."""
        state.successes += 1
        state.consecutive_failures = 0
        state.outcomes.append(True)
        if state.half_open:
            state.half_open = False
        if state.ejections and state.ejected_until <= self.clock():
            state.ejections -= 1

    def probing(self, state: KeyState, now: float) -> bool:
        """True while a half-open key already has its one probe in flight."""
        return state.half_open and state.ejected_until <= now and state.in_flight > 0
