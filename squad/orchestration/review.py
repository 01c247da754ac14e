"""The review gate: every reviewer charter judges the work in parallel, read-only; code decides.

One gate for a task's round in `squad run` and for a pull request in the Action. What differs is only
what the reviewers are shown (the system blocks and the prompt) and which tool list they are offered
(a run offers its shared toolbox so every prompt shares one cached prefix; the Action offers only the
read-only tools). What each reviewer may EXECUTE is the same everywhere: `review_tools(charter)`. A
reviewer whose session ends without a valid `submit_verdict` gives an incomplete rejection
(`squad.domain.review.verdict_from_submission`); the verdicts are combined by `combine`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from squad.agents.loop import AgentLimits, AgentResult, run_agent
from squad.agents.tools import Toolbox, ToolContext, review_tools
from squad.config import Charter, Settings
from squad.domain.events import AgentEvent
from squad.domain.review import Finding, Verdict, combine, merge_findings, verdict_from_submission
from squad.errors import SquadError
from squad.models.base import Model, SystemBlock


@dataclass(frozen=True)
class ReviewSetup:
    """Where and how the reviewers work.

    Args:
        worktree: the code under review (the reviewers' jail).
        base_commit: what `diff` compares against.
        run_id, task: labels of the reviewers' sessions (task: the plan task, or `review` for a PR).
        system: builds a reviewer's system blocks from its charter and the tools it may run (shared,
            cached blocks first).
        prompt: the user message every reviewer gets.
        toolbox: the tools offered (execution is still limited to `review_tools`).
    """

    worktree: Path
    base_commit: str
    run_id: str
    task: str
    system: Callable[[Charter, frozenset[str]], tuple[SystemBlock, ...]]
    prompt: str
    toolbox: Toolbox


@dataclass(frozen=True)
class ReviewerResult:
    """One reviewer's session and its verdict (None when the session raised)."""

    charter: Charter
    verdict: Verdict | None
    session: AgentResult | None
    error: str | None = None


async def run_reviewers(
    reviewers: Sequence[Charter],
    setup: ReviewSetup,
    *,
    settings: Settings,
    limits: AgentLimits,
    model_for: Callable[[Charter], Model],
    emit_for: Callable[[Charter], Callable[[AgentEvent], None]],
    max_parallel: int,
) -> list[ReviewerResult]:
    """Run every reviewer (sorted by name, at most `max_parallel` at once) and return their results."""
    gate = asyncio.Semaphore(max(1, max_parallel))

    async def one(charter: Charter) -> ReviewerResult:
        allowed = review_tools(charter)
        ctx = ToolContext(
            worktree=setup.worktree,
            run_id=setup.run_id,
            agent=charter.name,
            task=setup.task,
            settings=settings,
            base_commit=setup.base_commit,
            ledger_file=None,
            allowed=allowed,
        )
        async with gate:
            result = await run_agent(
                model=model_for(charter),
                toolbox=setup.toolbox,
                ctx=ctx,
                system=setup.system(charter, allowed),
                prompt=setup.prompt,
                limits=limits,
                emit=emit_for(charter),
            )
        verdict = verdict_from_submission(
            charter.name, stop_reason=result.stop_reason, data=result.data, error=result.error
        )
        return ReviewerResult(charter, verdict, result)

    ordered = sorted(reviewers, key=lambda c: c.name)
    outcomes = await asyncio.gather(*(one(c) for c in ordered), return_exceptions=True)
    results: list[ReviewerResult] = []
    for charter, outcome in zip(ordered, outcomes, strict=True):
        if isinstance(outcome, asyncio.CancelledError):
            raise outcome
        if isinstance(outcome, SquadError):  # says what went wrong in words a user can act on
            results.append(ReviewerResult(charter, None, None, str(outcome)))
        elif isinstance(outcome, BaseException):
            results.append(ReviewerResult(charter, None, None, f"{type(outcome).__name__}: {outcome}"))
        else:
            results.append(outcome)
    return results


def joint_verdict(results: Sequence[ReviewerResult]) -> Verdict:
    """The gate's verdict on one piece of work: every reviewer must approve; findings merged by code."""
    verdicts = [
        r.verdict or verdict_from_submission(r.charter.name, stop_reason="model_error", data=None, error=r.error)
        for r in results
    ]
    if len(verdicts) == 1:
        return verdicts[0]
    findings: list[Finding] = merge_findings(f for v in verdicts for f in v.findings)
    return Verdict(
        reviewer=", ".join(v.reviewer for v in verdicts),
        verdict=combine(verdicts),
        summary="\n\n".join(f"{v.reviewer} ({v.verdict}): {v.summary}" for v in verdicts),
        findings=tuple(findings),
        complete=all(v.complete for v in verdicts),
    )
