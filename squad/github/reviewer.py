"""The real `Reviewer` of a pull request: every reviewer charter of the base branch, through the one review gate.

The gate (`squad.orchestration.review`) runs each reviewer in one throwaway detached worktree at the PR
head, read-only, in parallel; `squad.domain.review` turns each session into a verdict. Here only what a
PR reviewer is SHOWN differs from a task review: the rules for untrusted PR data, the PR's metadata and
diff (one shared, cached block for every reviewer), the reviewer's role, and only the read-only tools
offered (with invisible characters in their output shown as <U+XXXX>).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

from squad.agents import prompts
from squad.agents.loop import AgentLimits
from squad.agents.tools import (
    Diff,
    ListFiles,
    ReadDecisions,
    ReadFile,
    Search,
    SubmitVerdict,
    Toolbox,
    ToolContext,
    ToolResult,
)
from squad.config import Charter
from squad.domain.events import AgentEvent, RunFinished, RunStarted
from squad.domain.usage import Usage
from squad.github import gitrepo
from squad.github.review import Reviewer, ReviewInput, ReviewOutcome
from squad.github.sanitize import sanitize_code
from squad.infra.journal import Journal
from squad.infra.telemetry import run_telemetry
from squad.models.base import ModelRequest, ModelResponse, SystemBlock
from squad.orchestration.context import record_call
from squad.orchestration.review import ReviewerResult, ReviewSetup, run_reviewers

if TYPE_CHECKING:
    from squad.models.base import Model
    from squad.orchestration import RunConfig
    from squad.orchestration.context import ModelFactory


def agent_reviewer(config: RunConfig, model_factory: ModelFactory | None = None) -> Reviewer:
    """A Reviewer that runs every reviewer charter of the config's team (at most concurrency.max_agents at once)."""
    settings = config.settings

    async def review(inp: ReviewInput) -> ReviewOutcome:
        journal = Journal(inp.journal_root, inp.run_id).create() if inp.journal_root is not None else None
        with run_telemetry(journal, settings.telemetry, config.requested_model) if journal else nullcontext():
            if journal is not None:
                journal.emit(
                    RunStarted(run=inp.run_id, task_text=f"review of PR #{inp.pr_number}", base_commit=inp.base_sha)
                )
            outcome = await _review(inp, journal)
            if journal is not None:
                status = "failed" if outcome.errors else "done"
                journal.emit(RunFinished(status=status, cost_usd=outcome.cost_usd))
        return outcome

    async def _review(inp: ReviewInput, journal: Journal | None) -> ReviewOutcome:
        from squad.models import ModelRuntime, create_model

        runtime = ModelRuntime.from_settings(settings, _recorder(journal) if journal else None, limits=config.limits)

        def emit(event: AgentEvent) -> None:
            if journal is not None:
                journal.emit(event)

        models: dict[str, Model] = {}

        def model_for(charter: Charter) -> Model:
            name = config.model_for(charter)
            if name not in models:  # one object per name: shared scripted bindings, shared breaker state
                models[name] = (
                    model_factory(name, runtime)
                    if model_factory
                    else create_model(name, settings=settings, runtime=runtime)
                )
            return models[name]

        shared = "\n\n".join(
            [
                prompts.template("pr_review_rules"),
                f"PR #{inp.pr_number}: base {inp.base_sha}, head {inp.head_sha}.",
                inp.pr_metadata,  # every PR-controlled string, sanitized and fenced (squad.github.prcontext)
                inp.diff,
            ]
        )

        def system(charter: Charter, _allowed: frozenset[str]) -> tuple[SystemBlock, ...]:
            role = prompts.render("pr_review_role", name=charter.name, role=charter.role, body=charter.body)
            return (SystemBlock(shared, cache=True), SystemBlock(role.strip()))

        worktree = gitrepo.worktree_at(inp.root, inp.head_sha)
        setup = ReviewSetup(
            worktree=worktree,
            base_commit=inp.base_sha,
            run_id=inp.run_id,
            task="review",
            system=system,
            prompt=prompts.template("pr_review_task"),
            # Offer only what a reviewer may run: a write tool in the list invites calls that can only fail,
            # and costs prompt tokens. Every reviewer gets this same list, so the cached prefix stays shared.
            toolbox=VisibleToolbox([Diff(), ListFiles(), ReadDecisions(), ReadFile(), Search(), SubmitVerdict()]),
        )
        try:
            results = await run_reviewers(
                config.team.reviewers,
                setup,
                settings=settings,
                limits=AgentLimits.from_limits(config.limits, settings.models.max_tokens),
                model_for=model_for,
                emit_for=lambda _charter: emit,
                max_parallel=settings.concurrency.max_agents,
            )
        finally:
            await asyncio.to_thread(gitrepo.remove_worktree, inp.root, worktree)
            await runtime.aclose()
        return outcome_of(results)

    return review


def _recorder(journal: Journal) -> Callable[[ModelRequest, ModelResponse], None]:
    """The review's model recorder: each response kept (the page's transcripts) and each call journaled, priced."""

    def record(request: ModelRequest, response: ModelResponse) -> None:
        record_call(journal, request, response, task=request.task)

    return record


class VisibleToolbox(Toolbox):
    """A Toolbox whose results show invisible and control characters as `<U+XXXX>`.

    Tool output is PR content too: a bidi control read through `diff` or `read_file` must be as visible
    to the reviewer as it is in the prompt's diff, or Trojan Source hides in tool results.
    """

    async def call(self, name: str, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        result = await super().call(name, args, ctx)
        content = sanitize_code(result.content)
        if content == result.content:
            return result
        return ToolResult(content, is_error=result.is_error, finished=result.finished, data=result.data)


def outcome_of(results: list[ReviewerResult]) -> ReviewOutcome:
    """The PR review's outcome: findings of complete verdicts; an incomplete one is an error, said so."""
    outcome = ReviewOutcome(reviewers=[r.charter.name for r in results])
    usage = Usage()
    summaries: list[str] = []
    for r in results:
        name = r.charter.name
        if r.session is None or r.verdict is None:
            outcome.errors.append(f"reviewer {name} failed: {r.error}")
            outcome.not_reviewed.append(f"review by {name} (it failed)")
            continue
        usage = usage + r.session.usage
        outcome.cost_usd += r.session.cost_usd
        if not r.verdict.complete:
            why = r.session.error or f"stopped: {r.session.stop_reason}"
            outcome.errors.append(f"reviewer {name} gave no verdict ({why})")
            reason = "budget cut" if r.session.stop_reason == "budget" else r.session.stop_reason
            outcome.not_reviewed.append(f"review by {name} ({reason})")
            continue
        summaries.append(f"**{name}** ({r.verdict.verdict}): {r.verdict.summary}")
        outcome.findings.extend(r.verdict.findings)
    outcome.summary = "\n\n".join(summaries)
    outcome.input_tokens = usage.total_input
    outcome.output_tokens = usage.output_tokens
    return outcome
