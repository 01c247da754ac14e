"""Model layer benchmarks, measured side by side in one run.

1. Overhead per call: our layer (create_model -> the policy stack: budget, pricing, retries, breaker,
   governor, fallback, recorder; AnthropicModel mapping) versus a bare SDK streaming call with the same
   body against the same loopback Messages server, interleaved call by call. Target: < 2 ms/call.
2. The policy stack alone: create_model around an in-process model that answers at once, versus calling
   that model bare, with every budget and rate limit on (never binding). Microseconds, without the HTTP
   noise that dominates (1) on a shared machine.
3. Governor fairness: one heavy agent (prompts 40x larger) and seven light agents share an
   input-token limit; prints when each agent finished its calls, with our RateGovernor (fair
   queuing by share of the limit) and with a first-come-first-served bucket as the baseline.

Run: `python benchmarks/run.py models` (or this file directly).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the loopback server lives with the tests
sys.path.insert(0, str(ROOT))

from messages_server import MessagesServer  # noqa: E402

from squad.config import BudgetSettings, RateLimitSettings, Settings  # noqa: E402
from squad.models import (  # noqa: E402
    AnthropicModel,
    Message,
    ModelRequest,
    ModelResponse,
    ModelRuntime,
    RateGovernor,
    SystemBlock,
    TextBlock,
    ToolSpec,
    Usage,
    create_model,
)

CALLS = 300


def _request(agent: str = "bench", size: int = 2000) -> ModelRequest:
    tools = tuple(
        ToolSpec(n, f"{n} tool", {"type": "object", "properties": {"path": {"type": "string"}}})
        for n in ("diff", "finish", "list_files", "read_file", "search", "write_file")
    )
    return ModelRequest(
        system=(SystemBlock("Team norms. " * 100, cache=True), SystemBlock("You are the backend specialist.")),
        messages=(Message("user", (TextBlock("y" * size),)),),
        tools=tools,
        max_tokens=1024,
        agent=agent,
        task="bench",
    )


async def _overhead(server: MessagesServer) -> tuple[list[float], list[float]]:
    import anthropic

    settings = Settings(
        budgets=BudgetSettings(
            run_usd=0,
            agent_usd=0,
            run_input_tokens=0,
            run_output_tokens=0,
            agent_input_tokens=0,
            agent_output_tokens=0,
            agent_turns=0,
        ),
        rate_limits=RateLimitSettings(
            requests_per_minute=10**6, input_tokens_per_minute=10**9, output_tokens_per_minute=10**9
        ),  # limits on, never binding
    )
    recorded: list[object] = []
    runtime = ModelRuntime.from_settings(settings, recorder=lambda req, resp: recorded.append(resp))
    ours = create_model("claude-sonnet-5-5", settings=settings, runtime=runtime)
    request = _request()
    body = AnthropicModel("claude-sonnet-5-5").build_params(request)
    bare = anthropic.AsyncAnthropic(api_key="bench", base_url=server.url, max_retries=0)
    headers = {"x-squad-agent": "bench/bench"}

    async def bare_call() -> None:
        async with bare.messages.stream(**body, extra_headers=headers) as stream:
            async for _event in stream:
                pass
            await stream.get_final_message()

    for _ in range(20):  # warm both paths: imports, connection pools
        await bare_call()
        await ours.complete(request)
    t_bare: list[float] = []
    t_ours: list[float] = []
    for i in range(CALLS):
        order = (
            (bare_call, lambda: ours.complete(request)) if i % 2 == 0 else (lambda: ours.complete(request), bare_call)
        )
        for fn in order:
            start = time.perf_counter()
            await fn()
            (t_bare if fn is bare_call else t_ours).append(time.perf_counter() - start)
    await bare.close()
    await runtime.aclose()
    assert len(recorded) == CALLS + 20
    return t_bare, t_ours


class _Instant:
    """An in-process model that answers at once: what is left of a call is our layer's own work."""

    name = "claude-sonnet-5-5"

    async def complete(self, request: ModelRequest, on_event: object = None) -> ModelResponse:
        return ModelResponse((TextBlock("ok"),), "end_turn", Usage(1000, 100, 0, 5000), self.name)


async def _stack() -> tuple[float, float]:
    """Microseconds per call: the bare instant model, and create_model's stack around it (best of 5 x 2000)."""
    big = 10**12
    settings = Settings(
        budgets=BudgetSettings(
            run_usd=big,
            agent_usd=big,
            run_input_tokens=big,
            run_output_tokens=big,
            agent_input_tokens=big,
            agent_output_tokens=big,
            agent_turns=big,
        ),  # every check runs, none binds
        rate_limits=RateLimitSettings(
            requests_per_minute=10**9, input_tokens_per_minute=10**12, output_tokens_per_minute=10**12
        ),
    )
    runtime = ModelRuntime.from_settings(settings, recorder=lambda req, resp: None)
    runtime.backends["claude-sonnet-5-5"] = bare = _Instant()
    ours = create_model("claude-sonnet-5-5", settings=settings, runtime=runtime)
    request = _request()
    best = {"bare": float("inf"), "ours": float("inf")}
    for _ in range(5):
        for key, model in (("bare", bare), ("ours", ours)):
            start = time.perf_counter()
            for _ in range(2000):
                await model.complete(request)
            best[key] = min(best[key], (time.perf_counter() - start) / 2000 * 1e6)
    return best["bare"], best["ours"]


class _FifoGovernor:
    """Baseline for comparison: the same input-token bucket, but callers served first come, first served."""

    def __init__(self, per_minute: int) -> None:
        self.rate = per_minute / 60
        self.level = self.capacity = self.rate
        self.stamp = time.monotonic()
        self.lock = asyncio.Lock()

    async def acquire(self, agent: str, tokens: int) -> int:
        async with self.lock:
            while True:
                now = time.monotonic()
                self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.level >= min(tokens, self.capacity):
                    self.level -= tokens
                    return tokens
                await asyncio.sleep((min(tokens, self.capacity) - self.level) / self.rate)

    def reconcile(self, permit: int, usage: Usage) -> None:
        return None


async def _fairness(governor: RateGovernor | _FifoGovernor) -> dict[str, float]:
    finished: dict[str, float] = {}
    start = time.monotonic()

    async def agent(name: str, tokens: int, calls: int) -> None:
        for _ in range(calls):
            permit = await governor.acquire(name, tokens)
            await asyncio.sleep(0.02)  # the call itself
            governor.reconcile(permit, Usage(input_tokens=tokens, output_tokens=50))  # type: ignore[arg-type]
        finished[name] = time.monotonic() - start

    await asyncio.gather(agent("heavy", 4000, 5), *(agent(f"light{i}", 100, 5) for i in range(7)))
    return finished


def main() -> None:
    with MessagesServer() as server:
        os.environ["ANTHROPIC_BASE_URL"] = server.url
        os.environ.setdefault("ANTHROPIC_API_KEY", "bench-not-a-real-key")
        t_bare, t_ours = asyncio.run(_overhead(server))
    bare_ms = statistics.median(t_bare) * 1000
    ours_ms = statistics.median(t_ours) * 1000
    print(f"overhead per call, {CALLS} interleaved streaming calls each (median):")
    print(f"  bare SDK stream       {bare_ms:7.3f} ms")
    print(f"  squad create_model    {ours_ms:7.3f} ms")
    print(f"  difference            {ours_ms - bare_ms:+7.3f} ms/call  (ratio {ours_ms / bare_ms:.3f}x; target < 2 ms)")
    print(f"  means: bare {statistics.mean(t_bare) * 1000:.3f} ms, ours {statistics.mean(t_ours) * 1000:.3f} ms")

    bare_us, ours_us = asyncio.run(_stack())
    print("policy stack alone, around an in-process model that answers at once (best of 5 x 2000 calls):")
    print(f"  bare model {bare_us:7.1f} us, through create_model {ours_us:7.1f} us: {ours_us - bare_us:+.1f} us/call")

    print("governor fairness: 1 heavy (4000 tok/call) + 7 light (100 tok/call), 5 calls each, 2000 input tok/s:")
    print("  finished at (s)     " + " ".join(f"{n:>7s}" for n in ["heavy", *(f"light{i}" for i in range(7))]))
    for label, governor in (
        ("RateGovernor (fair)", RateGovernor(input_tokens_per_minute=120_000, burst_s=1.0)),
        ("FIFO bucket (base)", _FifoGovernor(120_000)),
    ):
        finished = asyncio.run(_fairness(governor))
        lights = [finished[f"light{i}"] for i in range(7)]
        print(f"  {label:19s} " + " ".join(f"{finished[n]:7.2f}" for n in ["heavy", *(f"light{i}" for i in range(7))]))
        print(
            f"  {'':19s} light spread {max(lights) - min(lights):.2f} s, last light at {max(lights):.2f} s "
            f"= {max(lights) / finished['heavy']:.2f}x the heavy agent's finish"
        )


if __name__ == "__main__":
    main()
