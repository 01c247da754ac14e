"""RateGovernor: limits respected across concurrent agents, fair queuing, rate-limit headers and retry-after,
cancellation. Time is a manual clock: grants are checked at the exact virtual times they happen, with no
wall-clock wait; the server-facing tests check what reaches the loopback server before and after time moves."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from messages_server import MessagesServer, Reply
from model_fakes import ManualClock, request, response, settle, until

from squad.config import RateLimitSettings, RetrySettings, Settings
from squad.models import (
    ModelRequest,
    ModelResponse,
    ModelRuntime,
    RateGovernor,
    RateLimited,
    Usage,
    create_model,
    estimate_input_tokens,
)

pytestmark = pytest.mark.timeout(30)


def settings(max_wait_s: float = 1.0) -> Settings:
    return Settings(
        retry=RetrySettings(max_attempts=3, base_delay_s=0.01, max_wait_s=max_wait_s),
        rate_limits=RateLimitSettings(requests_per_minute=0, input_tokens_per_minute=0, output_tokens_per_minute=0),
    )


def within_rate(times: list[float], per_second: float, burst: float, slack: float = 1e-9) -> bool:
    """Every window [t_i, t_j] holds at most burst + rate * (t_j - t_i) (+ slack) requests."""
    times = sorted(times)
    return all(
        (j - i + 1) <= burst + per_second * (times[j] - times[i]) + slack
        for i in range(len(times))
        for j in range(i, len(times))
    )


class Agents:
    """Agents calling through RateLimited in virtual time. The inner model records (agent, time) when a call
    is sent, yields once like a real call, and reports as many input tokens as were estimated."""

    def __init__(self, governor: RateGovernor, clock: ManualClock) -> None:
        self.clock = clock
        self.sent: list[tuple[str, float]] = []
        self.finished: dict[str, float] = {}
        self.name = "inner"
        self.model = RateLimited(self, governor=governor)

    async def complete(self, request: ModelRequest, on_event: Any = None) -> ModelResponse:
        self.sent.append((request.agent, self.clock.now()))
        await asyncio.sleep(0)
        return response(usage=Usage(input_tokens=estimate_input_tokens(request), output_tokens=10))

    async def agent(self, name: str, calls: int, size: int = 40) -> None:
        for _ in range(calls):
            await self.model.complete(request(name, size=size))
        self.finished[name] = self.clock.now()


def test_eight_agents_share_the_request_rate() -> None:
    clock = ManualClock(start=0.0)
    governor = RateGovernor(requests_per_minute=1200, burst_s=0.25, clock=clock)  # 20/s, bursts of 5
    agents = Agents(governor, clock)
    asyncio.run(clock.run(*(agents.agent(f"a{i}", 5) for i in range(8))))
    times = [t for _, t in agents.sent]
    assert len(times) == 40 and all(len([a for a, _ in agents.sent if a == f"a{i}"]) == 5 for i in range(8))
    assert within_rate(times, per_second=20, burst=5)
    assert not within_rate(times, per_second=20, burst=4)  # the check itself can fail: the burst is used
    assert max(times) == pytest.approx((40 - 5) / 20)  # 5 at once, then one every 1/20 s: never faster
    # Nobody starved: round-robin, so the last eight calls are one per agent.
    assert {a for a, _ in agents.sent[-8:]} == {f"a{i}" for i in range(8)}


def test_heavy_agent_cannot_starve_light_ones() -> None:
    """Input tokens limited; one agent sends prompts 40x bigger. Fair queuing by share of the limit:
    the light agents' calls all go out before the heavy agent's second call, and they finish first."""
    clock = ManualClock(start=0.0)
    governor = RateGovernor(input_tokens_per_minute=60_000, burst_s=1.0, clock=clock)  # 1000 tokens/s, bucket 1000
    agents = Agents(governor, clock)
    asyncio.run(clock.run(agents.agent("heavy", 3, 2400), *(agents.agent(f"light{i}", 3, 60) for i in range(7))))
    order = [a for a, _ in agents.sent]
    assert len(order) == 24
    heavy_at = [i for i, a in enumerate(order) if a == "heavy"]
    light_at = [k for k, a in enumerate(order) if a != "heavy"]
    assert len(heavy_at) == 3 and max(light_at) < heavy_at[1], order
    assert max(v for k, v in agents.finished.items() if k != "heavy") < agents.finished["heavy"]


def test_round_robin_order_is_per_agent_not_fifo() -> None:
    """Agent A queues 6 calls before B and C queue theirs: grants alternate A, B, C, A, B, C, ..."""
    clock = ManualClock()

    async def main() -> list[str]:
        governor = RateGovernor(requests_per_minute=6000, burst_s=0.01, clock=clock)  # 100/s, bucket of 1
        await governor.acquire("warmup", 1)  # empty the bucket so everyone queues
        grants: list[str] = []

        async def call(agent: str) -> None:
            await governor.acquire(agent, 1)
            grants.append(agent)

        tasks = [asyncio.create_task(call("A")) for _ in range(6)]
        await asyncio.sleep(0)
        tasks += [asyncio.create_task(call(x)) for x in "BC" for _ in range(2)]
        await clock.run(*tasks)
        return grants

    assert asyncio.run(main()) == ["A", "B", "C", "A", "B", "C", "A", "A", "A", "A"]


def test_ratelimit_headers_from_the_server_pause_everyone(messages_server: MessagesServer) -> None:
    """`requests-remaining: 0` with a reset 30 s away: no call reaches the server until the pause (capped at
    [retry] max_wait_s = 1 s) is over."""
    reset = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
    messages_server.script(
        "a0",
        Reply(
            text="last one",
            headers={"anthropic-ratelimit-requests-remaining": "0", "anthropic-ratelimit-requests-reset": reset},
        ),
    )
    clock = ManualClock()
    st = settings(max_wait_s=1.0)
    runtime = ModelRuntime.from_settings(st, clock=clock)  # default limits are far from binding here
    model = create_model("claude-sonnet-5-5", settings=st, runtime=runtime)

    async def main() -> None:
        await model.complete(request("a0"))
        assert runtime.governor.paused_for == pytest.approx(1.0)
        second = asyncio.create_task(model.complete(request("a1")))
        await until(lambda: runtime.governor.waiting == 1)
        clock.advance(0.99)
        await settle()
        assert len(messages_server.requests) == 1 and runtime.governor.waiting == 1
        clock.advance(0.01)
        await second
        await runtime.aclose()

    asyncio.run(main())
    assert [r.agent for r in messages_server.requests] == ["a0", "a1"]


def test_a_reset_header_shorter_than_the_cap_is_honoured() -> None:
    governor = RateGovernor(max_pause_s=60, clock=ManualClock())
    reset = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
    governor.observe_headers(
        {"anthropic-ratelimit-input-tokens-remaining": "0", "anthropic-ratelimit-input-tokens-reset": reset}
    )
    assert 20 < governor.paused_for <= 30  # the header is wall-clock time: less whatever passed since
    governor.observe_headers({"anthropic-ratelimit-requests-remaining": "3"})  # not used up: no further pause
    assert governor.paused_for <= 30


def test_retry_after_pauses_other_agents_too(messages_server: MessagesServer) -> None:
    """a0 gets a 429 with retry-after 0.5: a1, arriving meanwhile, waits with it; nothing is sent until the
    clock has moved 0.5 s, then both go."""
    messages_server.script("a0", Reply.error(429, "rate_limit_error", retry_after="0.5"))
    clock = ManualClock()
    st = settings()
    runtime = ModelRuntime.from_settings(st, clock=clock)
    model = create_model("claude-sonnet-5-5", settings=st, runtime=runtime)
    events: list[dict[str, Any]] = []

    async def main() -> None:
        first = asyncio.create_task(model.complete(request("a0"), on_event=events.append))
        await until(lambda: clock.sleepers == 1)  # a0 got its 429 and sleeps its retry-after
        assert runtime.governor.paused_for == pytest.approx(0.5)
        second = asyncio.create_task(model.complete(request("a1")))
        await until(lambda: runtime.governor.waiting == 1)
        clock.advance(0.49)
        await settle()
        assert len(messages_server.requests) == 1 and runtime.governor.waiting == 1
        clock.advance(0.01)
        await asyncio.gather(first, second)
        await runtime.aclose()

    asyncio.run(main())
    assert clock.slept == [0.5] and [e["wait_s"] for e in events if e["type"] == "model_retry"] == [0.5]
    assert sorted(r.agent for r in messages_server.requests[1:]) == ["a0", "a1"]


def test_output_tokens_are_charged_after_the_call() -> None:
    clock = ManualClock()

    async def main() -> float:
        governor = RateGovernor(output_tokens_per_minute=6000, burst_s=0.1, clock=clock)  # 100/s, bucket 10
        permit = await governor.acquire("a", 10)
        governor.reconcile(permit, Usage(input_tokens=10, output_tokens=40))  # 30 in debt
        start = clock.now()
        await clock.run(governor.acquire("b", 10))
        return clock.now() - start

    assert asyncio.run(main()) == pytest.approx(0.3, abs=0.002)  # until out of debt: 30 tokens at 100/s


def test_reconcile_returns_overestimated_input_tokens() -> None:
    clock = ManualClock()

    async def main() -> tuple[float, float]:
        governor = RateGovernor(input_tokens_per_minute=600, burst_s=10, clock=clock)  # 10/s, bucket 100
        permit = await governor.acquire("a", 100)
        governor.reconcile(permit, Usage(input_tokens=5, cache_read_input_tokens=500))  # reads are free
        start = clock.now()
        await clock.run(governor.acquire("b", 90))
        waited = clock.now() - start
        permit = await clock.run(governor.acquire("c", 100))  # the bucket is at 5 now: 9.5 s to refill 95
        return waited, clock.now() - start

    waited, refill = asyncio.run(main())
    assert waited == 0 and refill == pytest.approx(9.5)


def test_cancelled_waiter_does_not_block_the_queue() -> None:
    clock = ManualClock()

    async def main() -> list[str]:
        governor = RateGovernor(requests_per_minute=600, burst_s=0.1, clock=clock)  # 10/s, bucket 1
        await governor.acquire("warm", 1)
        got: list[str] = []

        async def call(agent: str) -> None:
            await governor.acquire(agent, 1)
            got.append(agent)

        doomed = asyncio.create_task(call("doomed"))
        other = asyncio.create_task(call("other"))
        await settle()
        doomed.cancel()
        await clock.run(other)
        assert governor.waiting == 0 and clock.now() - 1000.0 == pytest.approx(0.1)  # the first free slot
        return got

    assert asyncio.run(main()) == ["other"]


def test_unlimited_governor_never_waits() -> None:
    clock = ManualClock()

    async def main() -> None:
        governor = RateGovernor(clock=clock)
        for i in range(1000):
            governor.reconcile(await governor.acquire(f"a{i % 8}", 10**6), Usage(output_tokens=10**6))

    asyncio.run(clock.run(main()))  # virtual time: any wait would move the clock
    assert clock.now() == 1000.0


def test_from_settings_reads_rate_limits() -> None:
    st = Settings(
        rate_limits=RateLimitSettings(requests_per_minute=60, input_tokens_per_minute=0, output_tokens_per_minute=120)
    )
    governor = RateGovernor.from_settings(st)
    state: dict[str, Any] = {"req": governor._requests, "in": governor._input, "out": governor._output}
    assert state["in"] is None
    assert state["req"].rate == 1.0 and state["out"].rate == 2.0
    assert governor.max_pause_s == st.retry.max_wait_s
