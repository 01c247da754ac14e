"""Fallback: the `[models] fallback` chain. Only FailoverError moves on to the next model."""

from __future__ import annotations

from collections.abc import Sequence

from squad.errors import ModelError
from squad.models.base import Model, ModelRequest, ModelResponse, StreamCallback, emit
from squad.models.errors import FailoverError


class Fallback:
    """Try `models` in order (the first is the primary; its name is this model's name).

    A FailoverError (retries used up, breaker open, retry-after too long) moves on to the next model with
    a `model_fallback` event; when every model failed over, a ModelError lists why. Everything else
    (BudgetExceededError, a 401, a 400, cancellation) propagates at once: another model would not fix it.
    """

    def __init__(self, models: Sequence[Model]) -> None:
        if not models:
            raise ValueError("Fallback needs at least one model")
        self.models = tuple(models)
        self.name = self.models[0].name

    async def complete(self, request: ModelRequest, on_event: StreamCallback | None = None) -> ModelResponse:
        reasons: list[str] = []
        last: FailoverError | None = None
        for position, model in enumerate(self.models):
            if position:
                await emit(
                    on_event,
                    {
                        "type": "model_fallback",
                        "agent": request.agent,
                        "task": request.task,
                        "model": model.name,
                        "after": self.models[position - 1].name,
                        "reason": reasons[-1],
                    },
                )
            try:
                return await model.complete(request, on_event)
            except FailoverError as exc:
                last = exc
                reasons.append(exc.message)
        raise ModelError(
            f"model call for agent {request.agent!r} on task {request.task!r} failed: " + "; ".join(reasons),
            hint="the API is overloaded or rate-limited: try again later, add fallback models "
            "([models] fallback = [...]) or raise [retry] max_wait_s in .squad/squad.toml",
        ) from last
