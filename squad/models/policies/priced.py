"""Priced: every response leaves the model layer with its cost in dollars."""

from __future__ import annotations

import logging
from dataclasses import replace

from squad.models.base import Model, ModelRequest, ModelResponse, StreamCallback, emit
from squad.models.pricing import PriceOf, cost

log = logging.getLogger("squad.models")


class Priced:
    """Return a NEW response with `cost_usd` set from `price_of` (the inner response is never changed).

    The model that answered is priced (a dated id finds its family row), else the one asked for. With no
    price for either, the call counts as $0 and a `warning` event says so, once per model name in `warned`
    (share one set per run). Dollar budgets never get here with such a model: Budgeted refuses it first.
    """

    def __init__(self, inner: Model, *, price_of: PriceOf, warned: set[str] | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.price_of = price_of
        self.warned = warned if warned is not None else set()

    async def complete(self, request: ModelRequest, on_event: StreamCallback | None = None) -> ModelResponse:
        response = await self.inner.complete(request, on_event)
        answered = response.model or self.name
        row = self.price_of(answered)
        if row is None:
            row = self.price_of(self.name)
        if row is not None:
            return replace(response, cost_usd=cost(row, response.usage))
        if answered not in self.warned:
            self.warned.add(answered)
            message = f"no price known for model {answered!r}: its cost counts as $0"
            log.warning("%s (add [pricing.%r] to squad.toml)", message, answered)
            await emit(
                on_event,
                {
                    "type": "warning",
                    "agent": request.agent,
                    "task": request.task,
                    "message": message,
                    "hint": f'add [pricing."{answered}"] to .squad/squad.toml'
                    " (input, output, cache_write_5m, cache_write_1h, cache_read in USD/MTok)",
                },
            )
        return replace(response, cost_usd=0.0)
