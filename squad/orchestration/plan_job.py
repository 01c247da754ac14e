"""`squad plan --out DIR`: the first job of a run spread over CI jobs.

It starts the run as `squad run` does (run started, context pack, baseline, plan), splits the run's budget among
the task jobs, and writes the run's journal so far to DIR as the `plan` fragment. The plan's dependency waves
become the CI matrix: a wave holds only tasks whose dependencies are all in earlier waves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from squad.agents.context import ContextPack, resolve_commit
from squad.domain.events import ContextBuilt, Event, JobStarted, RunFinished, RunStarted
from squad.domain.ids import new_run_id
from squad.domain.plan import Plan
from squad.domain.state import RunState
from squad.errors import SquadError, UsageError
from squad.infra.fragments import check_out, write_fragment
from squad.infra.journal import Journal
from squad.infra.jsonl import read_jsonl
from squad.orchestration.baseline import baseline_error, run_baseline
from squad.orchestration.config import RunConfig
from squad.orchestration.context import ModelFactory, RunContext
from squad.orchestration.jobs import job_context, release_leases, split_budget
from squad.orchestration.planner import plan_run

PLANNED = "planned"
BASELINE_FAILED = "baseline_failed"
TOO_MANY_WAVES = "too_many_waves"


@dataclass
class PlanOutcome:
    """What the plan job did: `planned`, `baseline_failed` or `too_many_waves`, and the fragment it wrote."""

    run: str
    status: str
    fragment: Path
    plan: Plan | None = None
    waves: list[list[str]] = field(default_factory=list)
    max_parallel: int = 1
    base_commit: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == PLANNED

    def matrix(self) -> dict[str, Any]:
        """The CI matrix: `waves` (task ids per dependency level), `include` (one entry per task, with its wave),
        and what a workflow needs besides (`max_parallel`, the `base` commit every job checks out)."""
        return {
            "run": self.run,
            "waves": self.waves,
            "include": [{"task": t, "wave": n} for n, wave in enumerate(self.waves, start=1) for t in wave],
            "max_parallel": self.max_parallel,
            "base": self.base_commit,
        }


async def plan_job(
    config: RunConfig,
    task_text: str,
    out: Path,
    *,
    agent: str | None = None,
    max_waves: int | None = None,
    model_factory: ModelFactory | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> PlanOutcome:
    """Start a run, plan it, split its budget, and write the plan fragment to `out`.

    Nothing is written (no run folder, no fragment) when the run cannot start or `out` is taken.

    Raises:
        UsageError: an empty task, no reviewer in the team, `agent` is a reviewer, HEAD is no commit, `out` holds
            something else than a fragment of this run (another run's plan, a task's fragment, other files).
        ConfigError: a model the run would call cannot be called (`RunConfig.preflight`).
        RunError: the plan is invalid after one retry (the run is journaled as failed).
    """
    task_text = task_text.strip()
    if not task_text:
        raise UsageError("the task is empty", hint='squad plan "what the team should do" --out DIR')
    config.check_team(agent)
    run = new_run_id()
    check_out(Path(out), kind="plan", run=run, task=None)  # another run's plan there would be lost
    config.preflight(planning=agent is None, models=model_factory is None)
    journal = Journal(config.root, run)
    with journal.lock():
        state = RunState(run=journal.run)
        base = await asyncio.to_thread(resolve_commit, config.root, "HEAD")
        async with job_context(
            config, journal, state, limits=config.limits, model_factory=model_factory, on_event=on_event
        ) as rc:
            rc.emit(RunStarted(run=journal.run, task_text=task_text, base_commit=base, agent=agent))
            rc.emit(JobStarted(job="plan"))
            try:
                outcome = await _plan(rc, agent, max_waves, Path(out))
            except SquadError as exc:
                rc.emit(RunFinished(status="failed", error=str(exc)))
                raise
            finally:
                await rc.in_thread(release_leases, rc)
        _write(journal, outcome.fragment)
    return outcome


async def _plan(rc: RunContext, agent: str | None, max_waves: int | None, out: Path) -> PlanOutcome:
    state, config = rc.state, rc.config
    outcome = PlanOutcome(run=rc.run_id, status=PLANNED, fragment=out, base_commit=state.base_commit or "")
    rc.pack = await rc.in_thread(ContextPack.build, config.root, config.settings, state.base_commit)
    rc.emit(ContextBuilt(commit=rc.pack.commit, blocks=len(rc.pack.system_blocks())))
    if not await run_baseline(rc):
        outcome.status, outcome.error = BASELINE_FAILED, baseline_error(rc)
        return outcome
    plan = await plan_run(rc, agent)
    split = split_budget(config, state, plan)
    rc.emit(split)
    outcome.plan, outcome.waves, outcome.max_parallel = plan, plan.waves(), split.max_parallel
    if max_waves is not None and len(outcome.waves) > max_waves:
        outcome.status = TOO_MANY_WAVES
        outcome.error = (
            f"the plan has {len(outcome.waves)} dependency waves and the workflow runs at most {max_waves}: "
            + " -> ".join("[" + ", ".join(w) + "]" for w in outcome.waves)
        )
    return outcome


def _write(journal: Journal, out: Path) -> None:
    """The run's journal so far, as the plan fragment."""
    write_fragment(
        out,
        kind="plan",
        run=journal.run,
        task=None,
        records=read_jsonl(journal.events_path),
        responses=read_jsonl(journal.responses_path),
        ledger=journal.ledger_path.read_text(encoding="utf-8") if journal.ledger_path.is_file() else "",
        transcripts=journal.read_transcripts(),
    )
