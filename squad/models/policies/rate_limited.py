"""RateLimited: every attempt waits for the shared RateGovernor and reports back what it used."""

from __future__ import annotations

from squad.models.base import Model, ModelRequest, ModelResponse, StreamCallback, Usage
from squad.models.errors import TransientModelError
from squad.models.governor import RateGovernor
from squad.models.tokens import estimate_input_tokens


class RateLimited:
    """Acquire a slot from `governor` (charged with the estimated input), make one attempt, reconcile with
    the real usage (nothing used when it failed). A 429 with a retry-after the governor honours pauses
    every agent: the limit is shared. A longer one pauses nobody; Retrying fails over instead.
    """

    def __init__(self, inner: Model, *, governor: RateGovernor) -> None:
        self.inner = inner
        self.name = inner.name
        self.governor = governor

    async def complete(self, request: ModelRequest, on_event: StreamCallback | None = None) -> ModelResponse:
        governor = self.governor
        permit = await governor.acquire(request.agent, estimate_input_tokens(request))
        try:
            response = await self.inner.complete(request, on_event)
        except TransientModelError as exc:
            governor.reconcile(permit, Usage())
            if exc.status == 429 and exc.retry_after and exc.retry_after <= governor.max_pause_s:
                governor.pause(exc.retry_after)
            raise
        except BaseException:
            governor.reconcile(permit, Usage())
            raise
        governor.reconcile(permit, response.usage)
        return response
