"""Budgeted: no call is sent that could take a budget past its limit; every call's real spend is booked."""

from __future__ import annotations

from squad.domain.usage import Estimate
from squad.models.base import Model, ModelRequest, ModelResponse, StreamCallback
from squad.models.pricing import PriceOf
from squad.models.spend import SpendBook
from squad.models.tokens import estimate_input_tokens


class Budgeted:
    """Reserve the call's estimate in the run's SpendBook before the call (fails closed), settle the real
    usage and cost after, release the reservation when the call fails.

    Args:
        inner: the model to call; its responses must carry their cost (wrap a `Priced`).
        book: the run's SpendBook, shared by every agent.
        price_of: the price of a model name, None when unknown (with a dollar limit, such a call is refused).
    """

    def __init__(self, inner: Model, *, book: SpendBook, price_of: PriceOf) -> None:
        self.inner = inner
        self.name = inner.name
        self.book = book
        self.price_of = price_of

    def estimate(self, request: ModelRequest) -> Estimate:
        """Input tokens (chars / 4) and their dollars at this model's input rate (None: no known price)."""
        tokens = estimate_input_tokens(request)
        row = self.price_of(self.name)
        return Estimate(tokens, None if row is None else tokens * row.input / 1_000_000)

    async def complete(self, request: ModelRequest, on_event: StreamCallback | None = None) -> ModelResponse:
        held = self.book.reserve(
            agent=request.agent, task=request.task, model=self.name, estimate=self.estimate(request)
        )
        try:
            response = await self.inner.complete(request, on_event)
        except BaseException:
            self.book.release(held)
            raise
        self.book.settle(held, response.usage, response.cost_usd, model=response.model or self.name)
        return response
