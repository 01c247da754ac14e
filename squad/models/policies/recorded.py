"""Recorded: every successful call is handed to the run's recorder (the journal: replay and `squad cost`)."""

from __future__ import annotations

from collections.abc import Callable

from squad.models.base import Model, ModelRequest, ModelResponse, StreamCallback

#: Receives each completed call, after pricing; `Journal.record_response` is the one the runs use.
Recorder = Callable[[ModelRequest, ModelResponse], None]


class Recorded:
    """Hand (request, response) to `recorder` after each successful call; failures are not recorded."""

    def __init__(self, inner: Model, *, recorder: Recorder) -> None:
        self.inner = inner
        self.name = inner.name
        self.recorder = recorder

    async def complete(self, request: ModelRequest, on_event: StreamCallback | None = None) -> ModelResponse:
        response = await self.inner.complete(request, on_event)
        self.recorder(request, response)
        return response
