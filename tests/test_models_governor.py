"""RateGovernor: limits respected across concurrent agents (checked on the server's request times),
round-robin fairness, rate-limit headers and retry-after, cancellation."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from messages_server import MessagesServer, Reply

from squad.config import RateLimitSettings, RetrySettings, Settings
from squad.models import (
    Budget,
    Message,
    ModelRequest,
    ModelRuntime,
    RateGovernor,
    SystemBlock,
    TextBlock,
    Usage,
    create_model,
)

pytestmark = pytest.mark.timeout(30)


def settings() -> Settings:
    return Settings(
        retry=RetrySettings(max_attempts=3, base_delay_s=0.01, max_wait_s=1.0),
        rate_limits=RateLimitSettings(requests_per_minute=0, input_tokens_per_minute=0, output_tokens_per_minute=0),
    )


def request(agent: str, size: int = 40) -> ModelRequest:
    return ModelRequest(
        system=(SystemBlock("shared", cache=True),),
        messages=(Message("user", (TextBlock("x" * size),)),),
        agent=agent,
        task="t",
    )


def within_rate(times: list[float], per_second: float, burst: float, slack: float = 1.0) -> bool:
    """Every window [t_i, t_j] holds at most burst + rate * (t_j - t_i) (+ slack) requests."""
    times = sorted(times)
    return all(
        (j - i + 1) <= burst + per_second * (times[j] - times[i]) + slack
        for i in range(len(times))
        for j in range(i, len(times))
    )


async def warm_up(model: Any, runtime: ModelRuntime) -> None:
    """One call first, then a full bucket: the SDK import and client set-up (up to ~1 s) would
    otherwise sit between the first grant and its request, bunching the arrivals we measure."""
    await model.complete(request("warmup"))
    await asyncio.sleep(0.3)


def test_eight_agents_share_the_request_rate(messages_server: MessagesServer) -> None:
    st = settings()
    governor = RateGovernor(requests_per_minute=1200, burst_s=0.25)  # 20/s, bursts of 5
    runtime = ModelRuntime(governor=governor, budget=Budget(st))
    model = create_model("claude-sonnet-5-5", settings=st, runtime=runtime)
    done: dict[str, list[float]] = {}

    async def agent(name: str) -> None:
        for _ in range(5):
            await model.complete(request(name))
            done.setdefault(name, []).append(time.monotonic())

    async def main() -> float:
        await warm_up(model, runtime)
        start = time.monotonic()
        await asyncio.gather(*(agent(f"a{i}") for i in range(8)))
        await runtime.aclose()
        return start

    start = asyncio.run(main())
    elapsed = time.monotonic() - start
    times = [r.ts for r in messages_server.requests if r.agent != "warmup"]
    assert len(times) == 40 and all(len(v) == 5 for v in done.values())
    assert within_rate(times, per_second=20, burst=5)
    assert not within_rate(times, per_second=20, burst=5, slack=-30)  # the check itself can fail
    assert elapsed >= (40 - 5) / 20 * 0.9
    # Nobody starved: every agent finished within the last third of the run.
    finishes = [v[-1] - start for v in done.values()]
    assert min(finishes) > elapsed * 0.6


def test_heavy_agent_cannot_starve_light_ones(messages_server: MessagesServer) -> None:
    """Input tokens limited; one agent sends prompts 40x bigger. Fair queuing by share of the limit:
    the light agents' calls all go out before the heavy agent's second call, and they finish first."""
    st = settings()
    governor = RateGovernor(input_tokens_per_minute=60_000, burst_s=1.0)  # 1000 tokens/s, bucket 1000
    runtime = ModelRuntime(governor=governor, budget=Budget(st))
    model = create_model("claude-sonnet-5-5", settings=st, runtime=runtime)
    finished: dict[str, float] = {}

    async def agent(name: str, size: int) -> None:
        for _ in range(3):
            await model.complete(request(name, size))
        finished[name] = time.monotonic()

    async def main() -> None:
        await warm_up(model, runtime)
        await asyncio.gather(agent("heavy", 2400), *(agent(f"light{i}", 60) for i in range(7)))
        await runtime.aclose()

    asyncio.run(main())
    order = [r.agent for r in messages_server.requests if r.agent != "warmup"]
    assert len(order) == 24
    heavy_at = [i for i, a in enumerate(order) if a == "heavy"]
    light_at = [k for k, a in enumerate(order) if a != "heavy"]
    assert len(heavy_at) == 3 and max(light_at) < heavy_at[1], order
    assert max(v for k, v in finished.items() if k != "heavy") < finished["heavy"]


def test_round_robin_order_is_per_agent_not_fifo() -> None:
    """Agent A queues 6 calls before B and C queue theirs: grants alternate A, B, C, A, B, C, ..."""

    async def main() -> list[str]:
        governor = RateGovernor(requests_per_minute=6000, burst_s=0.01)  # 100/s, bucket of 1
        await governor.acquire("warmup", 1)  # empty the bucket so everyone queues
        grants: list[str] = []

        async def call(agent: str) -> None:
            await governor.acquire(agent, 1)
            grants.append(agent)

        tasks = [asyncio.create_task(call("A")) for _ in range(6)]
        await asyncio.sleep(0)
        tasks += [asyncio.create_task(call(x)) for x in "BC" for _ in range(2)]
        await asyncio.gather(*tasks)
        return grants

    assert asyncio.run(main()) == ["A", "B", "C", "A", "B", "C", "A", "A", "A", "A"]


def test_ratelimit_headers_from_the_server_pause_everyone(messages_server: MessagesServer) -> None:
    reset = (datetime.now(UTC) + timedelta(seconds=0.6)).isoformat()
    messages_server.script(
        "a0",
        Reply(
            text="last one",
            headers={"anthropic-ratelimit-requests-remaining": "0", "anthropic-ratelimit-requests-reset": reset},
        ),
    )
    st = settings()
    runtime = ModelRuntime.from_settings(st)  # default limits are far from binding here
    model = create_model("claude-sonnet-5-5", settings=st, runtime=runtime)

    async def main() -> None:
        await model.complete(request("a0"))
        await model.complete(request("a1"))

    asyncio.run(main())
    first, second = messages_server.requests
    assert second.ts - first.ts >= 0.4


def test_retry_after_pauses_other_agents_too(messages_server: MessagesServer) -> None:
    messages_server.script("a0", Reply.error(429, "rate_limit_error", retry_after="0.5"))
    st = settings()
    runtime = ModelRuntime.from_settings(st)
    model = create_model("claude-sonnet-5-5", settings=st, runtime=runtime)

    async def main() -> None:
        first = asyncio.create_task(model.complete(request("a0")))
        await asyncio.sleep(0.15)  # a0 got its 429 by now
        await asyncio.gather(first, model.complete(request("a1")))

    asyncio.run(main())
    t0 = messages_server.requests[0].ts
    later = [r.ts - t0 for r in messages_server.requests[1:]]
    assert len(later) == 2 and min(later) >= 0.45


def test_output_tokens_are_charged_after_the_call() -> None:
    async def main() -> float:
        governor = RateGovernor(output_tokens_per_minute=6000, burst_s=0.1)  # 100/s, bucket 10
        permit = await governor.acquire("a", 10)
        governor.reconcile(permit, Usage(input_tokens=10, output_tokens=40))  # 30 in debt
        start = time.monotonic()
        await governor.acquire("b", 10)
        return time.monotonic() - start

    assert asyncio.run(main()) >= 0.25


def test_reconcile_returns_overestimated_input_tokens() -> None:
    async def main() -> float:
        governor = RateGovernor(input_tokens_per_minute=600, burst_s=10)  # 10/s, bucket 100
        permit = await governor.acquire("a", 100)
        governor.reconcile(permit, Usage(input_tokens=5, cache_read_input_tokens=500))  # reads are free
        start = time.monotonic()
        await governor.acquire("b", 90)
        return time.monotonic() - start

    assert asyncio.run(main()) < 0.1


def test_cancelled_waiter_does_not_block_the_queue() -> None:
    async def main() -> list[str]:
        governor = RateGovernor(requests_per_minute=600, burst_s=0.1)  # 10/s, bucket 1
        await governor.acquire("warm", 1)
        got: list[str] = []

        async def call(agent: str) -> None:
            await governor.acquire(agent, 1)
            got.append(agent)

        doomed = asyncio.create_task(call("doomed"))
        other = asyncio.create_task(call("other"))
        await asyncio.sleep(0.01)
        doomed.cancel()
        await asyncio.gather(other, return_exceptions=True)
        assert governor.waiting == 0
        return got

    assert asyncio.run(main()) == ["other"]


def test_unlimited_governor_never_waits() -> None:
    async def main() -> float:
        governor = RateGovernor()
        start = time.monotonic()
        for i in range(1000):
            governor.reconcile(await governor.acquire(f"a{i % 8}", 10**6), Usage(output_tokens=10**6))
        return time.monotonic() - start

    assert asyncio.run(main()) < 1.0


def test_from_settings_reads_rate_limits() -> None:
    st = Settings(
        rate_limits=RateLimitSettings(requests_per_minute=60, input_tokens_per_minute=0, output_tokens_per_minute=120)
    )
    governor = RateGovernor.from_settings(st)
    state: dict[str, Any] = {"req": governor._requests, "in": governor._input, "out": governor._output}
    assert state["in"] is None
    assert state["req"].rate == 1.0 and state["out"].rate == 2.0
