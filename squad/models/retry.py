"""Transient model failures and the backoff between retries (the retry loop itself is in registry.py)."""

from __future__ import annotations

import random
from collections.abc import Callable

from squad.config import RetrySettings
from squad.errors import ModelError


class TransientModelError(ModelError):
    """A failure worth retrying: 429, 5xx, 529 overloaded, an `error` event mid-stream, a dropped
    connection or a read timeout. `retry_after` is what the server asked for, in seconds (or None).
    `overloaded` marks capacity problems, after which the fallback model is worth trying."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = None,
        overloaded: bool = False,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after
        self.status = status
        self.overloaded = overloaded


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
