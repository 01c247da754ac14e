"""The model layer's own failures: transient (worth another attempt) and failover (worth another model).

Both are ModelErrors, so whatever escapes the policy stack still reaches the user as a clear model error.
"""

from __future__ import annotations

from squad.errors import ModelError


class TransientModelError(ModelError):
    """A failure worth retrying: 429, 5xx, 529 overloaded, an `error` event mid-stream, a dropped
    connection, a read timeout, a 200 that is not an event stream. `retry_after` is what the server asked
    for, in seconds (or None). `overloaded` marks capacity problems, after which the fallback model is
    worth trying."""

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


class FailoverError(ModelError):
    """This model cannot serve the call now (retries used up, breaker open, a retry-after longer than we
    wait): the signal on which the Fallback policy moves to the next model. Nothing else triggers it."""
