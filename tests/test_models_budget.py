"""Budgets stop a call BEFORE it is sent (the server never sees it), also for spend carried over from
before (a resumed run, a CI job's slice); the limits' boundaries; pricing of Claude models."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from messages_server import MessagesServer

from squad.config import BudgetSettings, Price, RateLimitSettings, Settings
from squad.domain.usage import Estimate, Limits, Spend, SpendTotals
from squad.errors import BudgetExceededError
from squad.models import (
    Message,
    ModelRequest,
    ModelResponse,
    ModelRuntime,
    SpendBook,
    SystemBlock,
    TextBlock,
    Usage,
    create_model,
    estimate_input_tokens,
    price,
)

pytestmark = pytest.mark.timeout(30)

UNLIMITED = {k: 0 for k in BudgetSettings.model_fields if k != "task_timeout_s"}


def settings(**budgets: Any) -> Settings:
    return Settings(
        budgets=BudgetSettings(**{**UNLIMITED, **budgets}),
        rate_limits=RateLimitSettings(requests_per_minute=0, input_tokens_per_minute=0, output_tokens_per_minute=0),
    )


def request(agent: str = "backend", size: int = 400) -> ModelRequest:
    return ModelRequest(
        system=(SystemBlock("sys"),), messages=(Message("user", (TextBlock("x" * size),)),), agent=agent, task="t"
    )


def run_calls(
    st: Settings, agents: list[str], model_name: str = "claude-sonnet-5-5", spent: SpendTotals | None = None
) -> tuple[list[Any], ModelRuntime]:
    runtime = ModelRuntime.from_settings(st, spent=spent)
    model = create_model(model_name, settings=st, runtime=runtime)

    async def one(agent: str) -> Any:
        try:
            return await model.complete(request(agent))
        except BudgetExceededError as exc:
            return exc

    async def main() -> list[Any]:
        out = [await one(a) for a in agents]
        await runtime.aclose()
        return out

    return asyncio.run(main()), runtime


def test_turn_budget_stops_before_the_call(messages_server: MessagesServer) -> None:
    results, runtime = run_calls(settings(agent_turns=2), ["backend"] * 3 + ["tester"])
    assert [type(r).__name__ for r in results] == [
        "ModelResponse",
        "ModelResponse",
        "BudgetExceededError",
        "ModelResponse",
    ]
    err = results[2]
    assert "agent_turns" in err.message and "'backend'" in err.message and "limit 2 turns" in err.message
    assert err.hint == "raise budgets.agent_turns in .squad/squad.toml (0 = unlimited)"
    assert [r.agent for r in messages_server.requests] == ["backend", "backend", "tester"]
    assert runtime.spend.agent("backend").turns == 2 and runtime.spend.run.turns == 3


def test_input_token_budget_uses_the_estimate(messages_server: MessagesServer) -> None:
    est = estimate_input_tokens(request())
    # The first call spends its real usage; the second's estimate would pass the limit.
    results, runtime = run_calls(settings(run_input_tokens=est + est // 2), ["a", "b"])
    assert isinstance(results[0], ModelResponse) and isinstance(results[1], BudgetExceededError)
    spent = runtime.spend.run.input_tokens
    assert spent == results[0].usage.total_input
    assert f"spent {spent:,} input tokens" in results[1].message and f"~{est:,} input tokens" in results[1].message
    assert "budgets.run_input_tokens" in (results[1].hint or "")
    assert len(messages_server.requests) == 1


def test_dollar_budget_fails_closed_before_the_first_call(messages_server: MessagesServer) -> None:
    results, _ = run_calls(settings(run_usd=0.0001), ["a"], model_name="claude-opus-4-1")  # ~$0.0015 of input
    assert isinstance(results[0], BudgetExceededError)
    assert "run_usd" in results[0].message and "limit $0.0001" in results[0].message
    assert messages_server.requests == []


def test_output_budget_refuses_once_used_up(messages_server: MessagesServer) -> None:
    results, _ = run_calls(settings(agent_output_tokens=1), ["a", "a"])
    assert isinstance(results[0], ModelResponse) and isinstance(results[1], BudgetExceededError)
    assert "agent_output_tokens" in results[1].message
    assert len(messages_server.requests) == 1


def test_concurrent_calls_cannot_all_slip_under_the_limit(messages_server: MessagesServer) -> None:
    """Eight agents check at once: in-flight reservations let exactly the calls that fit through."""
    est = estimate_input_tokens(request())
    st = settings(run_input_tokens=est * 3)
    runtime = ModelRuntime.from_settings(st)
    model = create_model("claude-sonnet-5-5", settings=st, runtime=runtime)

    async def main() -> list[Any]:
        out = await asyncio.gather(*(model.complete(request(f"a{i}")) for i in range(8)), return_exceptions=True)
        await runtime.aclose()
        return out

    results = asyncio.run(main())
    assert sum(isinstance(r, ModelResponse) for r in results) == 3
    assert sum(isinstance(r, BudgetExceededError) for r in results) == 5
    assert len(messages_server.requests) == 3


def test_usage_and_cost_recorded_per_agent_and_model(messages_server: MessagesServer) -> None:
    results, runtime = run_calls(settings(), ["a", "b", "a"])
    a = runtime.spend.agent("a")
    assert a.turns == 2
    assert a.usd == pytest.approx(results[0].cost_usd + results[2].cost_usd) and a.usd > 0
    assert runtime.spend.run.usd == pytest.approx(sum(r.cost_usd for r in results))
    assert runtime.spend.model("claude-sonnet-5-5") == runtime.spend.run
    assert runtime.spend.agent("nobody").turns == 0


# --------------------------------------------------------------------------------------------------
# Spend carried over: a resumed run, a CI job's slice


def test_seeded_spend_at_the_limit_refuses_the_first_call_before_any_request(messages_server: MessagesServer) -> None:
    """A resumed run that had spent its $0.20 must not get a fresh $0.20: nothing reaches the server."""
    seed = SpendTotals(run=Spend(usd=0.20, turns=7))
    results, runtime = run_calls(settings(run_usd=0.2), ["backend"], spent=seed)
    assert isinstance(results[0], BudgetExceededError)
    assert "budget run_usd would be exceeded" in results[0].message and "spent $0.2000" in results[0].message
    assert messages_server.requests == []
    assert runtime.spend == seed  # nothing was added, nothing held


def test_seeded_agent_spend_counts_against_that_agent_only(messages_server: MessagesServer) -> None:
    seed = SpendTotals(run=Spend(turns=3), by_agent={"backend": Spend(turns=3)})
    results, runtime = run_calls(settings(agent_turns=3), ["backend", "tester"], spent=seed)
    assert isinstance(results[0], BudgetExceededError) and "agent_turns" in results[0].message
    assert isinstance(results[1], ModelResponse)
    assert [r.agent for r in messages_server.requests] == ["tester"]
    assert runtime.spend.run.turns == 4 and runtime.spend.agent("backend").turns == 3


def test_limits_passed_in_override_the_settings(messages_server: MessagesServer) -> None:
    """A CI job's slice: the runtime's limits are what it is given, not [budgets]."""
    st = settings()  # unlimited in squad.toml
    runtime = ModelRuntime.from_settings(st, limits=Limits(agent_turns=1))
    model = create_model("claude-sonnet-5-5", settings=st, runtime=runtime)

    async def main() -> None:
        await model.complete(request())
        with pytest.raises(BudgetExceededError, match="agent_turns"):
            await model.complete(request())
        await runtime.aclose()

    asyncio.run(main())
    assert len(messages_server.requests) == 1


@pytest.mark.parametrize(("key", "scope"), [("agent_output_tokens", "agent"), ("run_output_tokens", "run")])
def test_output_budget_boundary_is_spent_at_or_over_the_limit(key: str, scope: str) -> None:
    """Output cannot be estimated, so an output budget refuses once spent >= limit: exactly at the limit is
    used up (a `>` check would let one more call through), one token below is not."""

    def book(spent_output: int) -> SpendBook:
        spend = Spend(output_tokens=spent_output)
        seed = SpendTotals(run=spend, by_agent={"a": spend} if scope == "agent" else {})
        return SpendBook(Limits(**{key: 100}), seed)

    estimate = Estimate(input_tokens=10, usd=0.0)
    with pytest.raises(BudgetExceededError, match=f"budget {key} is used up") as info:
        book(100).reserve(agent="a", task="t", model="m", estimate=estimate)
    assert "limit 100 output tokens" in info.value.message
    with pytest.raises(BudgetExceededError):
        book(101).reserve(agent="a", task="t", model="m", estimate=estimate)
    book(99).reserve(agent="a", task="t", model="m", estimate=estimate)


def test_input_budget_boundary_lets_a_call_that_exactly_fills_it_through() -> None:
    book = SpendBook(Limits(run_input_tokens=100), SpendTotals(run=Spend(input_tokens=60)))
    book.reserve(agent="a", task="t", model="m", estimate=Estimate(40, 0.0))  # 60 + 40 = 100: fits
    with pytest.raises(BudgetExceededError, match="spent 100 input tokens"):  # the reservation counts
        book.reserve(agent="b", task="t", model="m", estimate=Estimate(1, 0.0))


def test_a_free_model_is_not_refused_by_a_dollar_budget_it_cannot_spend() -> None:
    """Scripted calls cost $0: a run that used up its dollars on Claude may still replay or script."""
    book = SpendBook(Limits(run_usd=1.0), SpendTotals(run=Spend(usd=0.5)))
    book.reserve(agent="a", task="t", model="scripted:x", estimate=Estimate(10, 0.0))
    with pytest.raises(BudgetExceededError, match="run_usd"):
        book.reserve(agent="a", task="t", model="claude-x", estimate=Estimate(10, 0.6))


def test_failed_call_releases_its_reservation() -> None:
    book = SpendBook(Limits(run_input_tokens=1000))
    held = book.reserve(agent="a", task="t", model="m", estimate=Estimate(750, 0.0))
    with pytest.raises(BudgetExceededError):
        book.reserve(agent="b", task="t", model="m", estimate=Estimate(750, 0.0))
    book.release(held)
    book.reserve(agent="b", task="t", model="m", estimate=Estimate(750, 0.0))


def test_reservations_are_given_back_one_by_one_while_others_stay_in_flight() -> None:
    book = SpendBook(Limits(run_input_tokens=1000, agent_turns=2))
    first = book.reserve(agent="a", task="t", model="m", estimate=Estimate(400, 0.0))
    second = book.reserve(agent="a", task="t", model="m", estimate=Estimate(400, 0.0))
    with pytest.raises(BudgetExceededError, match="agent_turns"):  # two of a's calls in flight
        book.reserve(agent="a", task="t", model="m", estimate=Estimate(100, 0.0))
    book.release(first)
    book.release(first)  # twice changes nothing
    assert book.held == Spend(input_tokens=400, turns=1) and book.held_by("a") == book.held
    third = book.reserve(agent="a", task="t", model="m", estimate=Estimate(400, 0.0))  # 400 + 400 held
    book.settle(second, Usage(input_tokens=300), 0.0)
    assert book.held == Spend(input_tokens=400, turns=1) and book.totals.run.input_tokens == 300
    with pytest.raises(BudgetExceededError, match="run_input_tokens"):  # 300 spent + 400 held + 301
        book.reserve(agent="b", task="t", model="m", estimate=Estimate(301, 0.0))
    book.settle(third, Usage(input_tokens=400), 0.0)
    assert book.held == Spend() and book.held_by("a") == Spend()


# --------------------------------------------------------------------------------------------------
# Pricing


@pytest.mark.parametrize(
    ("model", "inp", "out", "read"),
    [
        ("claude-opus-4-1-20250805", 15, 75, 1.5),
        ("claude-opus-4-20250514", 15, 75, 1.5),
        ("claude-opus-4-5-20251101", 5, 25, 0.5),
        ("claude-opus-5", 5, 25, 0.5),
        ("claude-sonnet-4-5-20250929", 3, 15, 0.3),
        ("claude-sonnet-5-5", 2, 10, 0.1),
        ("claude-haiku-4-5-20251001", 1, 5, 0.1),
        ("claude-3-5-haiku-20241022", 0.8, 4, 0.08),
        ("claude-fable-5-2", 8, 40, 0.2),
    ],
)
def test_price_table_matches_families_by_prefix(model: str, inp: float, out: float, read: float) -> None:
    assert price(model, Usage(input_tokens=1_000_000)) == pytest.approx(inp)
    assert price(model, Usage(output_tokens=1_000_000)) == pytest.approx(out)
    assert price(model, Usage(cache_read_input_tokens=1_000_000)) == pytest.approx(read)
    assert price(model, Usage(cache_creation_input_tokens=1_000_000)) == pytest.approx(inp * 1.25)


def test_cache_writes_and_reads_are_priced_apart() -> None:
    usage = Usage(
        input_tokens=1000, output_tokens=500, cache_creation_input_tokens=10_000, cache_read_input_tokens=70_000
    )
    expected = (1000 * 3 + 500 * 15 + 10_000 * 3.75 + 70_000 * 0.30) / 1e6
    assert price("claude-sonnet-4-5", usage) == pytest.approx(expected)


def test_settings_pricing_overrides_the_table() -> None:
    st = Settings(
        pricing={
            "claude-sonnet-5-5": Price(input=1, output=1, cache_write_5m=1, cache_write_1h=1, cache_read=1),
            "claude-custom": Price(input=7, output=0, cache_write_5m=0, cache_write_1h=0, cache_read=0),
        }
    )
    assert price("claude-sonnet-5-5-20261001", Usage(output_tokens=10**6), st) == pytest.approx(1)
    assert price("claude-custom-x", Usage(input_tokens=10**6), st) == pytest.approx(7)


def test_unknown_model_fails_closed_under_a_dollar_budget(messages_server: MessagesServer) -> None:
    """No price, so a dollar budget cannot be enforced: the call is refused, not counted as $0."""
    results, runtime = run_calls(settings(run_usd=5.0), ["a"], model_name="claude-mystery-1")
    assert isinstance(results[0], BudgetExceededError)
    assert "no price is known for model 'claude-mystery-1'" in results[0].message
    assert '[pricing."claude-mystery-1"]' in (results[0].hint or "")
    assert messages_server.requests == [] and runtime.spend.run == Spend()


def test_unknown_model_without_dollar_budgets_costs_zero_and_warns_once(
    messages_server: MessagesServer, caplog: pytest.LogCaptureFixture
) -> None:
    st = settings(run_input_tokens=10**6, agent_turns=10)  # token and turn budgets work without a price
    runtime = ModelRuntime.from_settings(st)
    model = create_model("claude-mystery-1", settings=st, runtime=runtime)
    events: list[dict[str, Any]] = []

    async def main() -> list[ModelResponse]:
        out = [await model.complete(request(), on_event=events.append) for _ in range(3)]
        await runtime.aclose()
        return out

    with caplog.at_level(logging.WARNING, logger="squad.models"):
        responses = asyncio.run(main())
    assert all(r.cost_usd == 0 for r in responses) and runtime.spend.run.turns == 3
    warnings = [e for e in events if e["type"] == "warning"]
    assert len(warnings) == 1 and "claude-mystery-1" in warnings[0]["message"]
    assert '[pricing."claude-mystery-1"]' in warnings[0]["hint"]
    assert len([r for r in caplog.records if "claude-mystery-1" in r.getMessage()]) == 1
