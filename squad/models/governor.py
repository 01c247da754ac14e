"""RateGovernor: one per process, shared by every agent; keeps model calls under the rate limits.

Three token buckets refill continuously: requests, input tokens and output tokens per minute
(settings.rate_limits; 0 = unlimited). A call first estimates its input (chars / 4) and waits for
`acquire`; afterwards `reconcile` corrects the input bucket with the real usage and charges the
output (which cannot be known in advance: a call may start while the output bucket is not in debt).
The server knows better than our estimate, so `observe_headers` tightens the buckets from the
`anthropic-ratelimit-*-remaining` / `-reset` headers, and a 429's `retry-after` pauses everyone.

Fairness: waiting calls are served by start-time fair queuing across agents, not FIFO. Each agent
has a virtual clock that advances by the share of the limits its calls use (1/requests-rate +
input tokens/input-rate, plus its output tokens afterwards); the waiting call with the earliest
virtual start goes next. With equal calls this is plain round-robin (A, B, C, A, B, C); an agent
sending prompts 40x larger gets its turn 40x less often, so it cannot make seven light agents wait
behind its token debt. An idle agent earns no credit (its clock restarts at the current virtual
time). No background task: the dispatcher runs whenever something changes and arms one timer
(`clock.call_later`) for the next refill; the clock is injected, so tests move time by hand.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from squad.config import Settings
from squad.models.base import Usage
from squad.models.clock import SYSTEM_CLOCK, Clock, Timer


@dataclass(frozen=True, slots=True)
class Permit:
    """A granted slot: which agent, how many input tokens were charged up front, and when."""

    agent: str
    input_tokens: int
    granted_at: float


class _Bucket:
    """A continuously refilling token bucket that may go into debt (an oversized call still runs)."""

    def __init__(self, per_minute: int, burst_s: float, now: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_s)
        self.level = self.capacity
        self.stamp = now

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
            self.stamp = now

    def wait_for(self, amount: float) -> float:
        """Seconds until `amount` (capped at capacity) is available; 0 when it is now.

        A millionth of a token short counts as available: refilling for exactly the computed wait can land
        a rounding error below `need`, and a timer re-armed for 1e-15 s would spin instead of granting.
        """
        need = min(amount, self.capacity)
        short = need - self.level
        return 0.0 if short <= 1e-6 else short / self.rate


@dataclass(order=True)
class _Waiter:
    start: float  # virtual start tag: lowest goes first
    seq: int  # arrival order breaks ties
    agent: str = field(compare=False)
    tokens: int = field(compare=False)
    future: asyncio.Future[Permit] = field(compare=False)


class RateGovernor:
    """Requests / input tokens / output tokens per minute, shared fairly across agents.

    Args:
        requests_per_minute, input_tokens_per_minute, output_tokens_per_minute: limits, 0 = unlimited.
        burst_s: bucket capacity in seconds of refill (60 = a full minute's allowance, like the API).
        max_pause_s: the longest a `retry-after` / ratelimit reset may pause everyone.
        clock: time source and timer (default: the system clock; tests inject a manual one).
    """

    def __init__(
        self,
        requests_per_minute: int = 0,
        input_tokens_per_minute: int = 0,
        output_tokens_per_minute: int = 0,
        *,
        burst_s: float = 60.0,
        max_pause_s: float = 60.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._clock = clock.now
        self._call_later = clock.call_later
        now = clock.now()
        self._requests = _Bucket(requests_per_minute, burst_s, now) if requests_per_minute else None
        self._input = _Bucket(input_tokens_per_minute, burst_s, now) if input_tokens_per_minute else None
        self._output = _Bucket(output_tokens_per_minute, burst_s, now) if output_tokens_per_minute else None
        self._max_pause_s = max_pause_s
        self._paused_until = 0.0
        self._heap: list[_Waiter] = []
        self._seq = itertools.count()
        self._vtime = 0.0  # virtual time: start tag of the last granted call
        self._agent_clock: dict[str, float] = {}  # virtual finish tag of each agent's last call
        self._timer: Timer | None = None

    @classmethod
    def from_settings(cls, settings: Settings, *, burst_s: float = 60.0, clock: Clock = SYSTEM_CLOCK) -> RateGovernor:
        r = settings.rate_limits
        return cls(
            r.requests_per_minute,
            r.input_tokens_per_minute,
            r.output_tokens_per_minute,
            burst_s=burst_s,
            max_pause_s=settings.retry.max_wait_s,
            clock=clock,
        )

    @property
    def max_pause_s(self) -> float:
        """The longest pause this governor honours; a caller asked to wait longer should fail over instead."""
        return self._max_pause_s

    @property
    def paused_for(self) -> float:
        """Seconds until a pause (retry-after, used-up ratelimit header) ends; 0 when not paused."""
        return max(0.0, self._paused_until - self._clock())

    @property
    def waiting(self) -> int:
        """Calls waiting for a slot."""
        return sum(1 for w in self._heap if not w.future.done())

    async def acquire(self, agent: str, input_tokens: int) -> Permit:
        """Wait for this agent's turn and enough budget; charge one request and `input_tokens`."""
        now = self._clock()
        start = max(self._vtime, self._agent_clock.get(agent, 0.0))
        self._agent_clock[agent] = start + self._cost(input_tokens)
        if not self._heap and self._wait_time(input_tokens, now) <= 0:
            self._vtime = start
            return self._grant(agent, input_tokens, now)
        future: asyncio.Future[Permit] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, _Waiter(start, next(self._seq), agent, input_tokens, future))
        self._dispatch()
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # granted just as we were cancelled: give it back
                self._give_back(future.result())
            self._dispatch()
            raise

    def reconcile(self, permit: Permit, usage: Usage) -> None:
        """Correct the input charge with the real usage and charge the output tokens."""
        now = self._clock()
        if self._input is not None:
            self._input.refill(now)
            # Cache reads do not count against the API's input-token limit; writes and plain input do.
            real = usage.input_tokens + usage.cache_creation_input_tokens
            self._input.level = min(self._input.capacity, self._input.level + permit.input_tokens - real)
        if self._output is not None:
            self._output.refill(now)
            self._output.level -= usage.output_tokens
            # Output is part of the agent's share too; charge it to its virtual clock.
            clock = self._agent_clock.get(permit.agent, self._vtime)
            self._agent_clock[permit.agent] = clock + usage.output_tokens / self._output.rate
        self._dispatch()

    def pause(self, seconds: float) -> None:
        """Hold every new call for `seconds` (capped at max_pause_s), e.g. after a 429 retry-after."""
        if seconds > 0:
            until = self._clock() + min(seconds, self._max_pause_s)
            self._paused_until = max(self._paused_until, until)

    def observe_headers(self, headers: Mapping[str, str]) -> None:
        """Tighten the buckets from `anthropic-ratelimit-*` headers (pause until `-reset` when one is used up).

        `retry-after` is not handled here: the retry loop decides whether to honour it (and pauses
        everyone through `pause`) or to fail over because it is longer than the cap.
        """
        now = self._clock()
        for kind, bucket in (
            ("requests", self._requests),
            ("input-tokens", self._input),
            ("output-tokens", self._output),
        ):
            remaining = _number(headers.get(f"anthropic-ratelimit-{kind}-remaining"))
            if remaining is None:
                continue
            if bucket is not None:
                bucket.refill(now)
                bucket.level = min(bucket.level, remaining)
            if remaining <= 0:
                reset = _seconds_until(headers.get(f"anthropic-ratelimit-{kind}-reset"))
                if reset:
                    self.pause(reset)

    # -- internals
    def _wait_time(self, tokens: int, now: float) -> float:
        wait = max(0.0, self._paused_until - now)
        if self._requests is not None:
            self._requests.refill(now)
            wait = max(wait, self._requests.wait_for(1))
        if self._input is not None:
            self._input.refill(now)
            wait = max(wait, self._input.wait_for(tokens))
        if self._output is not None:
            self._output.refill(now)
            if self._output.level <= 0:  # output is charged after the call: wait until out of debt
                wait = max(wait, -self._output.level / self._output.rate + 1e-3)
        return wait

    def _grant(self, agent: str, tokens: int, now: float) -> Permit:
        if self._requests is not None:
            self._requests.level -= 1
        if self._input is not None:
            self._input.level -= tokens
        return Permit(agent, tokens, now)

    def _give_back(self, permit: Permit) -> None:
        now = self._clock()
        for bucket, amount in ((self._requests, 1), (self._input, permit.input_tokens)):
            if bucket is not None:
                bucket.refill(now)
                bucket.level = min(bucket.capacity, bucket.level + amount)

    def _cost(self, tokens: int) -> float:
        """A call's share of the limits, in seconds of refill (1 when nothing is limited: round-robin)."""
        cost = 0.0
        if self._requests is not None:
            cost += 1 / self._requests.rate
        if self._input is not None:
            cost += tokens / self._input.rate
        return cost or 1.0

    def _dispatch(self) -> None:
        """Grant waiting calls in virtual-start order while the buckets allow; else arm a timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._heap:
            head = self._heap[0]
            if head.future.done():  # cancelled while waiting
                heapq.heappop(self._heap)
                continue
            now = self._clock()
            wait = self._wait_time(head.tokens, now)
            if wait > 0:
                self._timer = self._call_later(wait, self._dispatch)
                return
            heapq.heappop(self._heap)
            self._vtime = head.start
            head.future.set_result(self._grant(head.agent, head.tokens, now))


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _seconds_until(value: str | None) -> float | None:
    """Seconds from now until an RFC 3339 timestamp (the `-reset` headers); None if unparsable."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0.0, when.timestamp() - time.time())


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """`retry-after-ms` (milliseconds) or `retry-after` (seconds) from response headers."""
    ms = _number(headers.get("retry-after-ms"))
    if ms is not None:
        return ms / 1000
    return _number(headers.get("retry-after"))
