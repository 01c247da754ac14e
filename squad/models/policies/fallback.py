"""Fallback: the `[models] fallback` chain. A FailoverError or a refusal moves on to the next model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from squad.errors import ModelError
from squad.models.base import Model, ModelRequest, ModelResponse, StreamCallback, emit
from squad.models.errors import FailoverError


def refused(response: ModelResponse, asked: str) -> str | None:
    """Why `response` (from the model named `asked`) is a refusal, as a fallback reason; None when it is not one."""
    if response.stop_reason != "refusal":
        return None
    return f"{response.model or asked} refused ({response.stop_detail or 'no reason given'})"


class Fallback:
    """Try `models` in order (the first is the primary; its name is this model's name), each at most once.

    Two things move on to the next model, each with a `model_fallback` event that says why:

    - a FailoverError (retries used up, breaker open, retry-after too long): this model cannot serve now;
    - a response with `stop_reason: "refusal"`: a refusal is that model's safety classifier's verdict, not
      a fault of the request, so the same request goes to the next model. The refused response is a
      completed call: the policies below (and `Recorded`, per model) have already priced, booked and
      journaled it, so spend stays honest.

    A refusal from the last model is returned (the agent ends with its reason, as without a fallback); so
    is an earlier refusal when every model after it failed over (it is the only answer). The response
    returned after refusals carries their usage and cost added to its own: what the request cost in all,
    so the caller's totals (an agent's spend) count the refused calls too; each call was recorded alone.
    When every model failed over, a ModelError lists why. Everything else (BudgetExceededError, a 401,
    a 400, cancellation) propagates at once: another model would not fix it.
    """

    def __init__(self, models: Sequence[Model]) -> None:
        if not models:
            raise ValueError("Fallback needs at least one model")
        self.models = tuple(models)
        self.name = self.models[0].name

    async def complete(self, request: ModelRequest, on_event: StreamCallback | None = None) -> ModelResponse:
        reasons: list[str] = []
        last: FailoverError | None = None
        refusal: ModelResponse | None = None  # the latest refused response, returned if nothing better comes
        spent: list[ModelResponse] = []  # the refused responses: their cost is part of this request's
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
                response = await model.complete(request, on_event)
            except FailoverError as exc:
                last = exc
                reasons.append(exc.message)
                continue
            why = refused(response, model.name)
            if why is None or position == len(self.models) - 1:
                return _with_spent(response, spent)
            refusal = response
            spent.append(response)
            reasons.append(why)
        if refusal is not None:
            return _with_spent(refusal, spent[:-1])
        raise ModelError(
            f"model call for agent {request.agent!r} on task {request.task!r} failed: " + "; ".join(reasons),
            hint="the API is overloaded or rate-limited: try again later, add fallback models "
            "([models] fallback = [...]) or raise [retry] max_wait_s in .squad/squad.toml",
        ) from last


def _with_spent(response: ModelResponse, refused: list[ModelResponse]) -> ModelResponse:
    """`response` with the usage and cost of the `refused` calls before it added (a new object, never mutated)."""
    if not refused:
        return response
    usage, cost = response.usage, response.cost_usd
    for earlier in refused:
        usage, cost = usage + earlier.usage, cost + earlier.cost_usd
    return replace(response, usage=usage, cost_usd=cost)
