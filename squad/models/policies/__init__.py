"""Model policies: small wrappers around one `Model`, each a `Model` itself, stacked by `create_model`.

For each model of the `[models] fallback` chain, innermost first::

    RateLimited     the shared RateGovernor: wait for a slot, reconcile after; a 429's retry-after pauses all
    CircuitBreaking refuse (fail over) while the model's breaker is open; count transient failures
    Retrying        retry transient failures with backoff + jitter or the server's retry-after (capped)
    Priced          a new response with cost_usd set (never mutated)
    Budgeted        reserve the estimate in the run's SpendBook before the call, settle the real spend after
    Recorded        hand every completed call (a refused one too) to the run journal

then `Fallback` over the chain (moves on on a FailoverError, or on a response with stop_reason "refusal").
Each policy is tested alone with a fake inner model and an injected clock.
"""

from __future__ import annotations

from squad.models.policies.breaker import CircuitBreaker, CircuitBreaking
from squad.models.policies.budgeted import Budgeted
from squad.models.policies.fallback import Fallback
from squad.models.policies.priced import Priced
from squad.models.policies.rate_limited import RateLimited
from squad.models.policies.recorded import Recorded, Recorder
from squad.models.policies.retrying import Retrying, backoff_delay

__all__ = [
    "Budgeted",
    "CircuitBreaker",
    "CircuitBreaking",
    "Fallback",
    "Priced",
    "RateLimited",
    "Recorded",
    "Recorder",
    "Retrying",
    "backoff_delay",
]
