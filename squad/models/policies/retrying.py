"""Retrying: transient failures get more attempts, with waits that never exceed `[retry] max_wait_s`."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

from squad.config import RetrySettings
from squad.models.base import Model, ModelRequest, ModelResponse, StreamCallback, emit
from squad.models.errors import FailoverError, TransientModelError


def backoff_delay(
    attempt: int,
    retry: RetrySettings,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number `attempt` (1-based).

    The server's `retry-after` wins when given (the caller refuses values above the cap first);
    otherwise exponential backoff (base * 2^(attempt-1)) with jitter in [50%, 100%] so agents
    that failed together do not retry together. Never more than `retry.max_wait_s`.
    """
    if retry_after is not None:
        return min(max(0.0, retry_after), retry.max_wait_s)
    delay = retry.base_delay_s * (2 ** (attempt - 1))
    return min(retry.max_wait_s, delay * (0.5 + rand() / 2))


class Retrying:
    """Up to `retry.max_attempts` attempts on TransientModelError, with a `model_retry` event before each wait.

    Raises FailoverError (the next model may serve the call) when the attempts are used up, or at once when
    the server asks to wait longer than `retry.max_wait_s`: a retry-after of an hour must neither hang the
    run nor be ignored. Any other error propagates untouched.

    Args:
        inner: the model to call.
        retry: `[retry]` settings.
        sleep: how to wait (injected by tests).
        rand: jitter source in [0, 1) (injected by tests).
    """

    def __init__(
        self,
        inner: Model,
        *,
        retry: RetrySettings,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.retry = retry
        self.sleep = sleep
        self.rand = rand

    async def complete(self, request: ModelRequest, on_event: StreamCallback | None = None) -> ModelResponse:
        retry = self.retry
        last: TransientModelError | None = None
        for attempt in range(1, retry.max_attempts + 1):
            try:
                return await self.inner.complete(request, on_event)
            except TransientModelError as exc:
                last = exc
                if exc.retry_after is not None and exc.retry_after > retry.max_wait_s:
                    raise FailoverError(
                        f"{self.name}: the server asked to wait {exc.retry_after:g} s (retry-after), "
                        f"more than [retry] max_wait_s = {retry.max_wait_s:g} s"
                    ) from exc
                if attempt == retry.max_attempts:
                    break
                wait = backoff_delay(attempt, retry, exc.retry_after, self.rand)
                await emit(
                    on_event,
                    {
                        "type": "model_retry",
                        "agent": request.agent,
                        "task": request.task,
                        "model": self.name,
                        "attempt": attempt,
                        "wait_s": round(wait, 3),
                        "error": exc.message,
                    },
                )
                await self.sleep(wait)
        raise FailoverError(f"{self.name}: {retry.max_attempts} attempt(s) failed, last: {last}") from last
