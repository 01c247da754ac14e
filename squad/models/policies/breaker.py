"""CircuitBreaker (the per-model state, shared through the runtime) and CircuitBreaking (the policy)."""

from __future__ import annotations

import time
from collections.abc import Callable

from squad.models.base import Model, ModelRequest, ModelResponse, StreamCallback
from squad.models.errors import FailoverError, TransientModelError


class CircuitBreaker:
    """Per model: after `threshold` consecutive transient failures, refuse calls for `cooldown_s`, then let
    ONE trial through (half-open; concurrent calls keep being refused): its success closes the breaker,
    its failure reopens it. A call that ends without saying anything about the model's health (a 400,
    a cancellation) frees the trial slot and changes nothing else.

    Args:
        threshold: consecutive failures that open the breaker.
        cooldown_s: how long it stays open.
        clock: monotonic seconds (injected by tests).
    """

    def __init__(self, threshold: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.failures = 0
        self._opened_at: float | None = None
        self._trial = False  # half-open: a trial call is in flight
        self._clock = clock

    @property
    def is_open(self) -> bool:
        """Calls are refused now (open and cooling down, or half-open with its trial in flight)."""
        return self._trial or (self._opened_at is not None and self._clock() - self._opened_at < self.cooldown_s)

    @property
    def in_trial(self) -> bool:
        """Half-open: the one trial call is in flight."""
        return self._trial

    def allow(self) -> bool:
        """May a call go out now? (Takes the trial slot when the cool-down is over.)"""
        if self._trial:
            return False
        if self._opened_at is None:
            return True
        if self._clock() - self._opened_at < self.cooldown_s:
            return False
        self._trial = True
        return True

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a trial call through (0 when closed or half-open)."""
        if self._opened_at is None or self._trial:
            return 0.0
        return max(0.0, self.cooldown_s - (self._clock() - self._opened_at))

    def success(self) -> None:
        self.failures = 0
        self._opened_at = None
        self._trial = False

    def failure(self) -> None:
        self.failures += 1
        if self._trial or self.failures >= self.threshold:
            self._opened_at = self._clock()
        self._trial = False

    def abandon(self) -> None:
        """The call ended without a verdict on the model's health: free the trial slot."""
        self._trial = False


class CircuitBreaking:
    """Fail over at once while `breaker` refuses calls; report each attempt's outcome to it.

    Transient failures count against the model; other errors (401, 400, cancellation) do not, but a
    half-open trial that ends with one gives its slot back.
    """

    def __init__(self, inner: Model, *, breaker: CircuitBreaker) -> None:
        self.inner = inner
        self.name = inner.name
        self.breaker = breaker

    async def complete(self, request: ModelRequest, on_event: StreamCallback | None = None) -> ModelResponse:
        breaker = self.breaker
        if not breaker.allow():
            wait = f"next trial in {breaker.retry_in():.0f} s" if breaker.retry_in() else "a trial call is in flight"
            raise FailoverError(
                f"{self.name}: circuit breaker open after {breaker.failures} consecutive failures ({wait})"
            )
        trial = breaker.in_trial  # this call took the half-open trial slot
        try:
            response = await self.inner.complete(request, on_event)
        except TransientModelError:
            breaker.failure()
            raise
        except BaseException:
            if trial:
                breaker.abandon()
            raise
        breaker.success()
        return response
