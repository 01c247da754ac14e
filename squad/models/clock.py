"""Time for the model layer: one injectable clock, so waiting (backoff, rate limits, breaker cool-downs) is
testable without the wall clock.

`SYSTEM_CLOCK` is the real thing (time.monotonic, asyncio.sleep, loop.call_later). Tests pass a manual clock
with the same three methods and move time forward themselves.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol


class Timer(Protocol):
    """A scheduled callback that can be cancelled (asyncio.TimerHandle is one)."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Monotonic time, a sleep, and a one-shot timer: everything the model layer waits with."""

    def now(self) -> float:
        """Monotonic seconds."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds`."""
        ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        """Call `callback` once, `delay` seconds from now, on the running event loop."""
        ...


class SystemClock:
    """The real clock: time.monotonic, asyncio.sleep and the running loop's call_later."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(delay, callback)


SYSTEM_CLOCK: Clock = SystemClock()
