"""Test doubles for the model layer: a manual clock (time moves only when a test says so) and a fake inner
model that plays scripted outcomes. Policies are tested alone with these; nothing waits on the wall clock.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from squad.models import Message, ModelRequest, ModelResponse, SystemBlock, TextBlock, Usage
from squad.models.base import StreamCallback


@dataclass(order=True)
class _Timer:
    when: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A `squad.models.clock.Clock` whose time moves only through `advance` (or, with `autojump`, through
    `sleep` itself: a sleeper's time passes at once, firing every timer due meanwhile).

    Attributes:
        slept: every `sleep` asked for, in order.
    """

    def __init__(self, start: float = 1000.0, *, autojump: bool = False) -> None:
        self.t = start
        self.autojump = autojump
        self.slept: list[float] = []
        self._timers: list[_Timer] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self.t

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer(self.t + max(0.0, delay), next(self._seq), callback)
        heapq.heappush(self._timers, timer)
        return timer

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if self.autojump:
            self.advance(seconds)
            await asyncio.sleep(0)
            return
        woken = asyncio.get_running_loop().create_future()
        self.call_later(seconds, lambda: woken.done() or woken.set_result(None))
        await woken

    @property
    def sleepers(self) -> int:
        """Timers pending (sleeps and governor wake-ups)."""
        return sum(1 for t in self._timers if not t.cancelled)

    def next_at(self) -> float | None:
        """When the earliest pending timer fires (None: nothing is pending)."""
        live = [t.when for t in self._timers if not t.cancelled]
        return min(live) if live else None

    def advance(self, seconds: float) -> None:
        """Move time forward, firing every timer due on the way at its own time."""
        target = self.t + seconds
        while self._timers and self._timers[0].when <= target:
            timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self.t = max(self.t, timer.when)
            timer.callback()
        self.t = target

    async def run(self, *aws: Awaitable[Any], max_jumps: int = 100_000) -> list[Any]:
        """Run `aws` to completion in virtual time: let them settle, then jump to the next timer, and so on.

        Only for code that waits on this clock alone (no real I/O): the tasks must settle within a few
        loop iterations between jumps.
        """
        tasks = [asyncio.ensure_future(a) for a in aws]
        for _ in range(max_jumps):
            await settle()
            if all(t.done() for t in tasks):
                return [t.result() for t in tasks]
            when = self.next_at()
            if when is None:
                raise AssertionError("deadlock: tasks are waiting and no timer is pending")
            self.advance(when - self.t)
        raise AssertionError("virtual time ran too long")


async def settle(rounds: int = 20) -> None:
    """Let every ready callback and task run (a few loop iterations; no time passes)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def until(predicate: Callable[[], bool], *, attempts: int = 5000) -> None:
    """Wait (real I/O may be involved) until `predicate()` holds; fail after `attempts` short polls."""
    for _ in range(attempts):
        if predicate():
            return
        await asyncio.sleep(0.002)
    raise AssertionError("condition never became true")


def request(agent: str = "backend", task: str = "t", size: int = 400) -> ModelRequest:
    return ModelRequest(
        system=(SystemBlock("sys"),), messages=(Message("user", (TextBlock("x" * size),)),), agent=agent, task=task
    )


def response(text: str = "ok", *, model: str = "fake", usage: Usage | None = None) -> ModelResponse:
    return ModelResponse(content=(TextBlock(text),), stop_reason="end_turn", usage=usage or Usage(100, 10), model=model)


Outcome = ModelResponse | BaseException | Callable[[], Awaitable[ModelResponse]]


class FakeModel:
    """An inner model that plays `outcomes` in order: a response is returned, an exception raised, a
    coroutine function awaited (to hold a call in flight). Then it answers `response()`.

    Attributes:
        calls: the requests it received.
    """

    def __init__(self, *outcomes: Outcome, name: str = "fake") -> None:
        self.name = name
        self.outcomes: list[Outcome] = list(outcomes)
        self.calls: list[ModelRequest] = []

    async def complete(self, request: ModelRequest, on_event: StreamCallback | None = None) -> ModelResponse:
        self.calls.append(request)
        outcome: Outcome = self.outcomes.pop(0) if self.outcomes else response(model=self.name)
        if isinstance(outcome, BaseException):
            raise outcome
        if isinstance(outcome, ModelResponse):
            return outcome
        return await outcome()


def events_of(kind: str, events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e.get("type") == kind]
