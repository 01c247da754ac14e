"""Each model policy alone, around a fake inner model, with an injected clock, sleep and jitter.

The whole stack over the real SDK and HTTP is tested in test_models_anthropic.py / test_models_budget.py /
test_models_governor.py; here every policy's own contract, without any wall-clock wait.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest
from model_fakes import FakeModel, ManualClock, request, response, settle

from squad.config import Price, RetrySettings
from squad.domain.usage import Limits, Spend, SpendTotals
from squad.errors import BudgetExceededError, ModelError
from squad.models import (
    Budgeted,
    CircuitBreaker,
    CircuitBreaking,
    FailoverError,
    Fallback,
    ModelResponse,
    Priced,
    RateGovernor,
    RateLimited,
    Recorded,
    Retrying,
    SpendBook,
    TextBlock,
    TransientModelError,
    Usage,
    estimate_input_tokens,
)
from squad.models.pricing import FREE, lookup, price_list

pytestmark = pytest.mark.timeout(30)

PRICE = Price(input=2, output=10, cache_write_5m=2.5, cache_write_1h=4, cache_read=0.1)


def known(_model: str) -> Price | None:
    return PRICE


def unknown(_model: str) -> Price | None:
    return None


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# --------------------------------------------------------------------------------------------------
# Budgeted


def test_budgeted_books_the_real_spend_per_run_agent_and_model() -> None:
    book = SpendBook(Limits(run_input_tokens=10**6))
    answer = ModelResponse((), "end_turn", Usage(120, 30, 1000, 50), "claude-x-20260101", cost_usd=0.25)
    model = Budgeted(FakeModel(answer, name="claude-x"), book=book, price_of=known)
    assert run(model.complete(request("a"))) is answer
    totals = book.totals
    assert totals.run == Spend(input_tokens=1170, output_tokens=30, cache_write_tokens=1000, cache_read_tokens=50,
                               usd=0.25, turns=1)  # fmt: skip
    assert totals.agent("a") == totals.run and totals.agent("b") == Spend()
    assert totals.model("claude-x-20260101") == totals.run  # the model that answered
    assert book.held == Spend()


def test_budgeted_refuses_before_the_inner_model_is_called() -> None:
    inner = FakeModel()
    book = SpendBook(Limits(agent_turns=1), SpendTotals(by_agent={"a": Spend(turns=1)}))
    model = Budgeted(inner, book=book, price_of=known)
    with pytest.raises(BudgetExceededError, match="agent_turns"):
        run(model.complete(request("a")))
    assert inner.calls == [] and book.held == Spend()
    run(model.complete(request("b")))  # another agent still has its turns
    assert len(inner.calls) == 1


def test_budgeted_releases_the_reservation_when_the_call_fails() -> None:
    est = estimate_input_tokens(request())
    book = SpendBook(Limits(run_input_tokens=est))  # room for exactly one call in flight
    model = Budgeted(FakeModel(ModelError("boom")), book=book, price_of=known)
    with pytest.raises(ModelError, match="boom"):
        run(model.complete(request()))
    assert book.held == Spend() and book.totals.run == Spend()
    run(model.complete(request()))  # the failed call's reservation is gone, so this one fits
    assert book.totals.run.turns == 1


def test_budgeted_reservations_stop_parallel_calls_slipping_under_a_limit() -> None:
    """Eight calls check at once while none has finished: exactly the three that fit are sent."""
    est = estimate_input_tokens(request())
    book = SpendBook(Limits(run_input_tokens=est * 3))

    async def main() -> list[Any]:
        opened = asyncio.Event()

        async def held() -> ModelResponse:
            await opened.wait()
            return response(usage=Usage(input_tokens=est))

        inner = FakeModel(*[held] * 8)
        model = Budgeted(inner, book=book, price_of=known)
        calls = [asyncio.create_task(model.complete(request(f"a{i}"))) for i in range(8)]
        await settle()
        assert len(inner.calls) == 3 and book.held.input_tokens == est * 3 and book.held.turns == 3
        opened.set()
        return await asyncio.gather(*calls, return_exceptions=True)

    results = run(main())
    assert sum(isinstance(r, ModelResponse) for r in results) == 3
    assert sum(isinstance(r, BudgetExceededError) for r in results) == 5
    assert book.totals.run.input_tokens == est * 3 and book.held == Spend()


def test_budgeted_estimates_dollars_at_the_input_rate() -> None:
    model = Budgeted(FakeModel(name="claude-x"), book=SpendBook(), price_of=known)
    est = model.estimate(request(size=4000))
    assert est.input_tokens == estimate_input_tokens(request(size=4000))
    assert est.usd == pytest.approx(est.input_tokens * 2 / 1e6)
    assert Budgeted(FakeModel(), book=SpendBook(), price_of=unknown).estimate(request()).usd is None
    assert Budgeted(FakeModel(), book=SpendBook(), price_of=price_list(free=True)).estimate(request()).usd == 0


def test_unknown_price_fails_closed_under_a_dollar_limit_only() -> None:
    inner = FakeModel(name="claude-mystery")
    with pytest.raises(BudgetExceededError, match="no price is known for model 'claude-mystery'") as info:
        run(Budgeted(inner, book=SpendBook(Limits(agent_usd=1.0)), price_of=unknown).complete(request()))
    assert '[pricing."claude-mystery"]' in (info.value.hint or "")
    assert inner.calls == []
    # Token and turn limits can still be enforced without a price.
    book = SpendBook(Limits(run_input_tokens=10**6, agent_turns=5))
    run(Budgeted(inner, book=book, price_of=unknown).complete(request()))
    assert len(inner.calls) == 1 and book.totals.run.turns == 1


# --------------------------------------------------------------------------------------------------
# RateLimited


def test_rate_limited_waits_for_the_governor_on_every_attempt() -> None:
    clock = ManualClock()
    governor = RateGovernor(requests_per_minute=60, burst_s=1.0, clock=clock)  # 1 request/s, bucket of 1
    sent_at: list[float] = []

    async def answer() -> ModelResponse:
        sent_at.append(clock.now())
        return response()

    model = RateLimited(FakeModel(*[answer] * 3), governor=governor)
    run(clock.run(*(model.complete(request(f"a{i}")) for i in range(3))))
    assert [t - 1000.0 for t in sent_at] == pytest.approx([0.0, 1.0, 2.0])


def test_rate_limited_429_pauses_everyone_only_when_the_governor_honours_it() -> None:
    clock = ManualClock()
    governor = RateGovernor(max_pause_s=5.0, clock=clock)
    model = RateLimited(
        FakeModel(
            TransientModelError("429", status=429, retry_after=2.0),
            TransientModelError("429", status=429, retry_after=9.0),
            TransientModelError("503", status=503, retry_after=3.0),
        ),
        governor=governor,
    )

    async def main() -> None:
        with pytest.raises(TransientModelError):
            await model.complete(request("a"))
        assert governor.paused_for == pytest.approx(2.0)  # everyone holds off
        clock.advance(2.0)
        for _ in range(2):  # longer than the governor's cap (Retrying fails over), and not a 429: no pause
            with pytest.raises(TransientModelError):
                await model.complete(request("a"))
            assert governor.paused_for == 0

    run(main())


def test_rate_limited_reconciles_failed_attempts_as_unused() -> None:
    clock = ManualClock()
    governor = RateGovernor(input_tokens_per_minute=60 * 100, burst_s=1.0, clock=clock)  # bucket of 100
    model = RateLimited(FakeModel(ModelError("400")), governor=governor)
    size = 100 * 4 - len("sys")  # an estimate of 100 tokens: the whole bucket

    async def main() -> float:
        with pytest.raises(ModelError):
            await model.complete(request(size=size))
        start = clock.now()
        await clock.run(model.complete(request(size=size)))  # the failed attempt gave its tokens back: no wait
        return clock.now() - start

    assert run(main()) == 0


# --------------------------------------------------------------------------------------------------
# Retrying

RETRY = RetrySettings(max_attempts=4, base_delay_s=1.0, max_wait_s=30.0)


def test_retrying_backs_off_with_jitter_and_reports_each_retry() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    inner = FakeModel(TransientModelError("overloaded"), TransientModelError("reset"), response("third"))
    model = Retrying(inner, retry=RETRY, sleep=sleep, rand=lambda: 0.5)
    events: list[dict[str, Any]] = []
    assert run(model.complete(request("a", "t"), on_event=events.append)).text == "third"
    assert slept == [0.75, 1.5]  # base * 2^(n-1), times (0.5 + rand / 2)
    assert events == [
        {"type": "model_retry", "agent": "a", "task": "t", "model": "fake", "attempt": 1, "wait_s": 0.75,
         "error": "overloaded"},
        {"type": "model_retry", "agent": "a", "task": "t", "model": "fake", "attempt": 2, "wait_s": 1.5,
         "error": "reset"},
    ]  # fmt: skip
    assert len(inner.calls) == 3


def test_retrying_honours_retry_after_up_to_the_cap_and_fails_over_above_it() -> None:
    clock = ManualClock(autojump=True)
    inner = FakeModel(TransientModelError("429", status=429, retry_after=12.5), response())
    assert run(Retrying(inner, retry=RETRY, sleep=clock.sleep).complete(request())).text == "ok"
    assert clock.slept == [12.5]

    inner = FakeModel(TransientModelError("429", status=429, retry_after=3600))
    with pytest.raises(FailoverError, match=r"fake: the server asked to wait 3600 s .*max_wait_s = 30 s"):
        run(Retrying(inner, retry=RETRY, sleep=clock.sleep).complete(request()))
    assert len(inner.calls) == 1 and clock.slept == [12.5]  # no wait at all


def test_retrying_fails_over_when_attempts_are_used_up_with_capped_waits() -> None:
    clock = ManualClock(autojump=True)
    inner = FakeModel(*[TransientModelError("529 overloaded")] * 5)
    retry = RetrySettings(max_attempts=4, base_delay_s=10.0, max_wait_s=0.1)
    with pytest.raises(FailoverError, match=r"4 attempt\(s\) failed, last: 529 overloaded"):
        run(Retrying(inner, retry=retry, sleep=clock.sleep).complete(request()))
    assert len(inner.calls) == 4 and len(clock.slept) == 3 and max(clock.slept) <= 0.1


@pytest.mark.parametrize(
    "error",
    [ModelError("401"), BudgetExceededError("over"), FailoverError("breaker open")],
    ids=["final", "budget", "failover"],
)
def test_retrying_lets_other_errors_through_at_once(error: Exception) -> None:
    clock = ManualClock(autojump=True)
    inner = FakeModel(error)
    with pytest.raises(type(error)):
        run(Retrying(inner, retry=RETRY, sleep=clock.sleep).complete(request()))
    assert len(inner.calls) == 1 and clock.slept == []


# --------------------------------------------------------------------------------------------------
# CircuitBreaking


def test_breaker_opens_fails_over_without_calling_then_recovers_after_the_cool_down() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(threshold=2, cooldown_s=30, clock=clock.now)
    inner = FakeModel(TransientModelError("500"), TransientModelError("500"))
    model = CircuitBreaking(inner, breaker=breaker)
    for _ in range(2):
        with pytest.raises(TransientModelError):
            run(model.complete(request()))
    with pytest.raises(
        FailoverError, match=r"fake: circuit breaker open after 2 consecutive failures \(next trial in 30 s\)"
    ):
        run(model.complete(request()))
    assert len(inner.calls) == 2 and breaker.is_open
    clock.advance(29.9)
    with pytest.raises(FailoverError):
        run(model.complete(request()))
    clock.advance(0.1)
    assert run(model.complete(request())).text == "ok"  # the trial succeeds and closes the breaker
    assert not breaker.is_open and breaker.failures == 0 and len(inner.calls) == 3


def test_half_open_breaker_lets_one_trial_through_and_a_failed_trial_reopens_it() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(threshold=3, cooldown_s=10, clock=clock.now)
    for _ in range(3):
        breaker.failure()
    clock.advance(10)

    async def main() -> None:
        release = asyncio.Event()

        async def slow_failure() -> ModelResponse:
            await release.wait()
            raise TransientModelError("still down")

        model = CircuitBreaking(FakeModel(slow_failure), breaker=breaker)
        trial = asyncio.create_task(model.complete(request("a")))
        await settle()
        with pytest.raises(FailoverError, match="a trial call is in flight"):
            await model.complete(request("b"))
        release.set()
        with pytest.raises(TransientModelError):
            await trial

    run(main())
    assert breaker.is_open and breaker.retry_in() == 10  # one failed trial reopens it, for a full cool-down


def test_breaker_ignores_final_errors_but_a_trial_ending_in_one_frees_its_slot() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(threshold=1, cooldown_s=5, clock=clock.now)
    inner = FakeModel(ModelError("401"), ModelError("400"), TransientModelError("503"), ModelError("400"))
    model = CircuitBreaking(inner, breaker=breaker)
    for _ in range(2):
        with pytest.raises(ModelError):
            run(model.complete(request()))
    assert breaker.failures == 0 and not breaker.is_open
    with pytest.raises(TransientModelError):
        run(model.complete(request()))
    assert breaker.is_open
    clock.advance(5)
    with pytest.raises(ModelError, match="400"):  # the trial ends without a verdict
        run(model.complete(request()))
    assert not breaker.in_trial
    assert run(model.complete(request())).text == "ok"  # the next call is the trial, and closes it
    assert not breaker.is_open


# --------------------------------------------------------------------------------------------------
# Fallback


def test_fallback_moves_on_only_after_a_failover_and_says_why() -> None:
    primary = FakeModel(FailoverError("claude-a: 3 attempt(s) failed"), name="claude-a")
    second = FakeModel(FailoverError("claude-b: circuit breaker open"), name="claude-b")
    third = FakeModel(response("from c", model="claude-c"), name="claude-c")
    model = Fallback([primary, second, third])
    events: list[dict[str, Any]] = []
    assert model.name == "claude-a"
    assert run(model.complete(request("a", "t"), on_event=events.append)).text == "from c"
    assert events == [
        {"type": "model_fallback", "agent": "a", "task": "t", "model": "claude-b", "after": "claude-a",
         "reason": "claude-a: 3 attempt(s) failed"},
        {"type": "model_fallback", "agent": "a", "task": "t", "model": "claude-c", "after": "claude-b",
         "reason": "claude-b: circuit breaker open"},
    ]  # fmt: skip


@pytest.mark.parametrize(
    "error",
    [BudgetExceededError("budget run_usd"), ModelError("401"), TransientModelError("529"), asyncio.CancelledError()],
    ids=["budget", "final", "transient", "cancelled"],
)
def test_fallback_propagates_everything_but_failover_at_once(error: BaseException) -> None:
    second = FakeModel(name="claude-b")
    events: list[dict[str, Any]] = []
    with pytest.raises(type(error)):
        run(Fallback([FakeModel(error, name="claude-a"), second]).complete(request(), on_event=events.append))
    assert second.calls == [] and events == []


def test_fallback_with_every_model_failed_over_is_a_model_error_listing_why() -> None:
    model = Fallback([FakeModel(FailoverError("a: 6 attempt(s) failed")), FakeModel(FailoverError("b: breaker open"))])
    with pytest.raises(
        ModelError, match=r"agent 'backend' on task 't' failed: a: 6 attempt\(s\) failed; b: breaker"
    ) as info:
        run(model.complete(request()))
    assert not isinstance(info.value, FailoverError)
    assert "fallback" in (info.value.hint or "") and "max_wait_s" in (info.value.hint or "")


def _refusal(model: str, cost: float, why: str = "cyber: exploit development") -> ModelResponse:
    return ModelResponse(
        content=(TextBlock("I can't"),), stop_reason="refusal", usage=Usage(100, 5), model=model,
        cost_usd=cost, stop_detail=why,
    )  # fmt: skip


def test_a_refusal_moves_on_once_and_the_answer_carries_the_refused_spend() -> None:
    primary = FakeModel(_refusal("claude-a", 0.5), name="claude-a")
    second = FakeModel(replace(response("from b", model="claude-b"), cost_usd=0.25), name="claude-b")
    third = FakeModel(name="claude-c")
    events: list[dict[str, Any]] = []
    answer = run(Fallback([primary, second, third]).complete(request("a", "t"), on_event=events.append))
    assert (answer.text, answer.model, answer.stop_reason) == ("from b", "claude-b", "end_turn")
    assert answer.cost_usd == pytest.approx(0.75) and answer.usage == Usage(200, 15)  # what the request cost
    assert (len(primary.calls), len(second.calls), third.calls) == (1, 1, [])
    assert events == [
        {"type": "model_fallback", "agent": "a", "task": "t", "model": "claude-b", "after": "claude-a",
         "reason": "claude-a refused (cyber: exploit development)"},
    ]  # fmt: skip


def test_the_last_models_refusal_is_returned_with_every_refusals_spend() -> None:
    models = [FakeModel(_refusal(m, 0.1, f"{m} says no"), name=m) for m in ("claude-a", "claude-b")]
    answer = run(Fallback(models).complete(request()))
    assert (answer.stop_reason, answer.model, answer.stop_detail) == ("refusal", "claude-b", "claude-b says no")
    assert answer.cost_usd == pytest.approx(0.2) and [len(m.calls) for m in models] == [1, 1]
    alone = _refusal("claude-a", 0.1)
    assert run(Fallback([FakeModel(alone)]).complete(request())) is alone  # no fallback: untouched


def test_a_refusal_followed_only_by_failovers_is_the_answer() -> None:
    """The refusal is a real answer; a fallback that could not serve does not turn it into a model error."""
    refusal = _refusal("claude-a", 0.1)
    model = Fallback([FakeModel(refusal), FakeModel(FailoverError("claude-b: circuit breaker open"))])
    assert run(model.complete(request())) is refusal


# --------------------------------------------------------------------------------------------------
# Priced


def test_priced_returns_a_new_response_and_never_mutates_the_inner_one() -> None:
    usage = Usage(
        input_tokens=1000, output_tokens=500, cache_creation_input_tokens=10_000, cache_read_input_tokens=70_000
    )
    inner_response = response(model="claude-sonnet-4-5-20250929", usage=usage)
    model = Priced(FakeModel(inner_response, name="claude-sonnet-4-5"), price_of=price_list())
    priced = run(model.complete(request()))
    assert priced is not inner_response and inner_response.cost_usd == 0.0
    assert priced.cost_usd == pytest.approx((1000 * 3 + 500 * 15 + 10_000 * 3.75 + 70_000 * 0.30) / 1e6)
    assert priced.content == inner_response.content and priced.usage == usage


def test_priced_uses_the_requested_models_price_when_the_answering_one_is_unknown() -> None:
    answer = response(model="some-proxy-alias", usage=Usage(output_tokens=1_000_000))
    priced = run(Priced(FakeModel(answer, name="claude-haiku-4-5"), price_of=price_list()).complete(request()))
    assert priced.cost_usd == pytest.approx(5.0)


def test_priced_unknown_model_costs_zero_with_one_warning_per_run() -> None:
    warned: set[str] = set()
    events: list[dict[str, Any]] = []
    inner = FakeModel(*[response(model="claude-mystery-2")] * 3, name="claude-mystery-2")
    for _ in range(3):  # each agent gets its own Priced; the warned set is the run's
        model = Priced(inner, price_of=price_list(), warned=warned)
        assert run(model.complete(request("a", "t"), on_event=events.append)).cost_usd == 0
    assert events == [
        {"type": "warning", "agent": "a", "task": "t", "message": "no price known for model 'claude-mystery-2': its "
         "cost counts as $0", "hint": 'add [pricing."claude-mystery-2"] to .squad/squad.toml (input, output, '
         "cache_write_5m, cache_write_1h, cache_read in USD/MTok)"},
    ]  # fmt: skip


def test_scripted_and_replayed_backends_are_free_whatever_model_they_name() -> None:
    answer = response(model="claude-opus-4-1", usage=Usage(output_tokens=10**6))  # a replayed real response
    events: list[dict[str, Any]] = []
    priced = run(Priced(FakeModel(answer), price_of=price_list(free=True)).complete(request(), on_event=events.append))
    assert priced.cost_usd == 0 and events == []
    assert lookup("claude-opus-4-1") is not None and price_list(free=True)("anything") == FREE


# --------------------------------------------------------------------------------------------------
# Recorded


def test_recorded_hands_each_successful_call_to_the_recorder() -> None:
    seen: list[tuple[str, str]] = []
    inner = FakeModel(response("first"), ModelError("400"))
    model = Recorded(inner, recorder=lambda req, resp: seen.append((req.agent, resp.text)))
    run(model.complete(request("a")))
    with pytest.raises(ModelError):
        run(model.complete(request("b")))
    assert seen == [("a", "first")]
