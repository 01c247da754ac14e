"""What the jobs of a run spread over CI jobs share: their run context, the budget split, the task spec.

A job (`squad plan --out`, `squad task`, `squad integrate`) is a short-lived process on its own checkout. It opens
the same `RunContext` a local run opens (journal, the one fold, workspace, models with budgets seeded from what
was spent), so the task flow, review gate and integration it runs are the local run's code, unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from squad.domain.events import BudgetSplit, Event, parse_event
from squad.domain.plan import Plan
from squad.domain.state import RunState, fold
from squad.domain.usage import Limits, SpendTotals, rate_share
from squad.infra import processes
from squad.infra.fragments import Fragment, FragmentError
from squad.infra.workspace import Workspace
from squad.orchestration.context import ModelFactory, RunContext
from squad.orchestration.resume import process_registry, recover

if TYPE_CHECKING:
    from squad.infra.journal import Journal
    from squad.orchestration.config import RunConfig


@contextlib.asynccontextmanager
async def job_context(
    config: RunConfig,
    journal: Journal,
    state: RunState,
    *,
    limits: Limits,
    spent: SpendTotals | None = None,
    model_factory: ModelFactory | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> AsyncIterator[RunContext]:
    """The run context of one job: `state` follows the journal from here on; models spend within `limits`.

    The caller holds the journal's lock and has folded `state` from it.
    """

    journal.create()
    journal.listeners.append(state.apply)
    if on_event is not None:
        journal.listeners.append(on_event)
    rc = RunContext.open(
        config, journal, state, Workspace(config.root), limits=limits, spent=spent, model_factory=model_factory
    )
    try:
        with processes.tracking(process_registry(journal)):
            # A job rerun on the runner that ran it resumes its journal: end what the killed job left first.
            await recover(rc)
            yield rc
    finally:
        rc.pool.shutdown(wait=False)
        with contextlib.suppress(Exception):
            await rc.runtime.aclose()


def release_leases(rc: RunContext) -> None:
    """Remove the worktrees this job leased (branches stay: they are what was pushed or will be merged)."""
    from squad.errors import SquadError

    for lease in rc.leases.values():
        with contextlib.suppress(SquadError):
            rc.workspace.release(lease)
    rc.leases.clear()


def split_budget(config: RunConfig, state: RunState, plan: Plan) -> BudgetSplit:
    """The plan's split of the run's budget: one equal slice per task of what planning left, and each job's
    share of the per-minute rate limits among the jobs that run at once."""
    waves = plan.waves()
    parallel = max(1, min(config.settings.concurrency.max_jobs, max((len(w) for w in waves), default=1)))
    rates = config.settings.rate_limits
    return BudgetSplit(
        shares=len(plan.tasks),
        max_parallel=parallel,
        run=config.limits.to_dict(),
        task=config.limits.share(len(plan.tasks), state.spend).to_dict(),
        rates={
            "requests_per_minute": rate_share(rates.requests_per_minute, parallel),
            "input_tokens_per_minute": rate_share(rates.input_tokens_per_minute, parallel),
            "output_tokens_per_minute": rate_share(rates.output_tokens_per_minute, parallel),
        },
        spent_usd=round(state.spend.usd, 6),
    )


def job_config(config: RunConfig, budget: BudgetSplit) -> RunConfig:
    """A task job's config: its slice of the run's budget and its share of the rate limits (a copy; the loaded
    settings are not changed)."""
    rates = config.settings.rate_limits.model_copy(update=budget.rates)
    settings = config.settings.model_copy(update={"rate_limits": rates})
    return replace(config, settings=settings, limits=Limits.from_dict(budget.task))


def plan_fragment(fragments: Sequence[Fragment], run: str) -> tuple[Fragment, RunState]:
    """The plan fragment of `run` among `fragments`, and the run state it describes.

    Raises:
        FragmentError: there is none, or it holds no plan or budget split.
    """
    found = next((f for f in fragments if f.kind == "plan"), None)
    if found is None:
        raise FragmentError(
            f"no plan fragment of run {run} in --from", hint="pass the folder `squad plan --out` wrote (its artifact)"
        )
    state = fold(run, (parse_event(r) for r in found.records))
    if state.plan is None or state.budget is None:
        raise FragmentError(
            f"the plan fragment {found.path} holds no plan and budget split (planning failed or stopped on the "
            "baseline)",
            hint=f"see why with: squad log {run} (in the plan job's checkout)",
        )
    return found, state


def run_fragments(fragments: Sequence[Fragment], run: str) -> tuple[Fragment, list[Fragment]]:
    """The plan fragment of `run` and its task fragments in plan order: what makes the run's one journal
    (`merge_records(plan, tasks, [t.task for t in tasks])`), for `squad integrate` and for reading a run from its
    fragments without integrating it (`squad log/cost --from`).

    Raises:
        FragmentError: no usable plan fragment, or a fragment of a task the plan lacks.
    """
    plan, state = plan_fragment(fragments, run)
    assert state.plan is not None
    order = state.plan.ids
    strays = [f for f in fragments if f.kind == "task" and f.task not in order]
    if strays:
        raise FragmentError(f"{strays[0].path} is a fragment of task {strays[0].task!r}, which run {run} lacks")
    return plan, sorted((f for f in fragments if f.kind == "task"), key=lambda f: order.index(f.task or ""))
