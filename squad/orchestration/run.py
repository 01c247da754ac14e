"""A run: context -> plan -> scheduled tasks (through an executor) -> integration -> report.

The Coordinator opens the run (journal, run lock, state, workspace, models), and `_Run` drives it. State
is the fold of the journal (`RunContext.state`), so starting and resuming are the same code: a resumed
run folds its journal, keeps its plan and settled tasks, and asks each open task's state machine what
to do next. Spend is folded too, so a resumed run's budgets continue where the run stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING

from squad.agents.context import ContextPack, resolve_commit
from squad.domain.events import (
    Applied,
    ApplyRefused,
    ContextBuilt,
    Event,
    Interrupted,
    Released,
    RunFinished,
    RunResumed,
    RunStarted,
    TaskReopened,
    TaskStatus,
)
from squad.domain.ids import new_run_id
from squad.domain.plan import Plan, PlanTask
from squad.domain.state import RunState
from squad.domain.task import Phase
from squad.errors import RunError, SquadError, UsageError
from squad.infra import processes
from squad.infra.journal import Journal
from squad.infra.telemetry import run_telemetry
from squad.infra.workspace import Workspace
from squad.orchestration.baseline import baseline_error, run_baseline
from squad.orchestration.config import RunConfig
from squad.orchestration.context import ModelFactory, RunContext
from squad.orchestration.executor import Executor, TaskSpec, task_spec
from squad.orchestration.flow import LocalExecutor
from squad.orchestration.integrate import integrate_settled
from squad.orchestration.people import person_name, reopen
from squad.orchestration.planner import make_plan, plan_run
from squad.orchestration.report import RunReport, build_report, run_decisions
from squad.orchestration.resume import only_report_left, process_registry, recover
from squad.orchestration.scheduler import schedule

if TYPE_CHECKING:
    from squad.models import ModelRuntime


class Coordinator:
    """Runs one task text through plan, parallel work, review and integration.

    Args:
        config: the run's configuration (settings, team, limits, model override, --apply).
        model_factory: `(model name, runtime) -> Model`; default `squad.models.create_model`.
        on_event: called with every journal event as it is written (the CLI's live view).
    """

    def __init__(
        self,
        config: RunConfig,
        *,
        model_factory: ModelFactory | None = None,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        self.config = config
        self.model_factory = model_factory
        self.on_event = on_event

    def _runtime(self) -> ModelRuntime:
        """The models' runtime with the run's limits (`squad plan`: nothing spent before, nothing journaled)."""
        from squad.models import ModelRuntime

        return ModelRuntime.from_settings(self.config.settings, None, limits=self.config.limits)

    def _model(self, name: str, runtime: ModelRuntime) -> object:
        if self.model_factory is not None:
            return self.model_factory(name, runtime)
        from squad.models import create_model

        return create_model(name, settings=self.config.settings, runtime=runtime)

    async def plan(self, task_text: str) -> Plan:
        """Plan only (`squad plan`): context at HEAD, the lead reads and plans in a throwaway view, no run folder."""
        if not task_text.strip():
            raise UsageError("the task is empty", hint='squad plan "what the team should do"')
        self.config.preflight(models=self.model_factory is None)
        runtime = self._runtime()
        root = self.config.root
        pack = await asyncio.to_thread(ContextPack.build, root, self.config.settings, "HEAD")
        _agent, model_name = self.config.lead()
        try:
            return await make_plan(
                self.config,
                task_text=task_text,
                model=self._model(model_name, runtime),  # type: ignore[arg-type]
                pack=pack,
                workspace=Workspace(root),
                run_id=new_run_id(),  # names the lead's throwaway view only: no run folder, no ledger
                ledger_file=None,
                emit=lambda _event: None,
            )
        finally:
            await runtime.aclose()

    async def run(
        self,
        task_text: str = "",
        *,
        agent: str | None = None,
        resume: str | None = None,
        retry: str | None = None,
        note: str | None = None,
    ) -> RunReport:
        """Run (or resume) a task end to end and return the report (also written to report.json).

        `retry` (with `resume`) reopens a task that needs a person, failed or conflicts, with an optional `note`
        for the agent and the reviewer; its lockout starts afresh and spend continues from the journal.

        Raises:
            UsageError: unknown or reviewer `agent`, no reviewer in the team, unknown `resume` run.
            RunLockedError: another process works on the run.
            RunError: the plan is invalid after one retry, or the run failed in an unexpected way.
        """
        config = self.config
        config.check_team(agent)
        ws = Workspace(config.root)
        if config.apply and (why := ws.unclean_reason()):
            raise UsageError(
                f"--apply needs a clean working tree on a branch: {why}",
                hint="commit or stash your changes, or run without --apply and merge squad/<run> yourself",
            )
        if resume:
            journal = Journal(config.root, resume)
            if not journal.exists:
                raise UsageError(f"no run {resume!r} in {journal.dir.parent}", hint="`squad runs` lists the runs")
        else:
            if not task_text.strip():
                raise UsageError("the task is empty", hint='squad run "what the team should do"')
            journal = Journal(config.root, new_run_id())
        # Nothing is written for a run that could not start. An injected factory decides what model names mean.
        config.preflight(planning=agent is None, models=self.model_factory is None)
        with (
            journal.lock(),
            processes.tracking(process_registry(journal)),
            run_telemetry(journal, config.settings.telemetry, config.requested_model),
        ):
            return await self._locked_run(journal, ws, task_text, agent, resume, retry, note)

    async def _locked_run(
        self,
        journal: Journal,
        ws: Workspace,
        task_text: str,
        agent: str | None,
        resume: str | None,
        retry: str | None,
        note: str | None,
    ) -> RunReport:
        config = self.config
        journal.create()
        state = journal.state() if resume else RunState(run=journal.run)
        # A done run killed before its report or its release only gets those; a fully finished one is refused.
        finishing = bool(resume) and only_report_left(journal, state, retry=retry)
        if resume:
            if retry is not None:
                reopen(state, retry)  # validates before anything is written
            task_text, agent = state.task_text, agent or state.agent
            base = state.base_commit or resolve_commit(config.root)
        else:
            base = await asyncio.to_thread(resolve_commit, config.root, "HEAD")
        journal.listeners.append(state.apply)
        if self.on_event is not None:
            journal.listeners.append(self.on_event)
        started = RunResumed if resume else RunStarted
        journal.emit(started(run=journal.run, task_text=task_text, base_commit=base, agent=agent))
        if retry is not None:
            journal.emit(TaskReopened(task=retry, person=person_name(config.root), note=note or None))
        rc = RunContext.open(
            config,
            journal,
            state,
            ws,
            limits=config.limits,
            spent=state.spend_totals(),
            model_factory=self.model_factory,
        )
        try:
            if resume:
                await recover(rc)  # what the killed process left: processes, git locks, attempts' decisions
            run = _Run(rc, agent)
            return await (run._finish("done", None, []) if finishing else run.execute())
        except SquadError as exc:
            journal.emit(RunFinished(status="failed", error=str(exc)))
            raise
        except Exception as exc:  # a bug must still end the run cleanly: journaled, worktrees released
            traceback.print_exc(file=sys.stderr)
            journal.emit(RunFinished(status="failed", error=f"internal error: {type(exc).__name__}: {exc}"))
            _release_all(rc)
            raise RunError(
                f"the run stopped on an internal error: {type(exc).__name__}: {exc}",
                hint=f"the traceback is above; please report it. `squad log {journal.run}` shows how far it got",
            ) from exc
        finally:
            rc.pool.shutdown(wait=False)  # a thread still in a git command finishes it and exits
            with contextlib.suppress(Exception):
                await rc.runtime.aclose()


BASELINE_FAILED = "baseline_failed"


class _Run:
    """One run in progress (one per `Coordinator.run` call)."""

    def __init__(self, rc: RunContext, agent: str | None) -> None:
        self.rc = rc
        self.agent = agent
        self.not_merged: dict[str, str] = {}

    @property
    def state(self) -> RunState:
        return self.rc.state

    async def execute(self) -> RunReport:
        rc = self.rc
        status, error, conflicts = "failed", None, []
        try:
            rc.pack = await rc.in_thread(ContextPack.build, rc.config.root, rc.config.settings, self.state.base_commit)
            rc.emit(ContextBuilt(commit=rc.pack.commit, blocks=len(rc.pack.system_blocks())))
            if not await self._baseline():
                return await self._finish(BASELINE_FAILED, baseline_error(rc), [])
            plan = await self._plan()
            done = {t: ts.phase for t, ts in self.state.tasks.items() if ts.phase.settled}
            executor: Executor = LocalExecutor(rc)

            async def run_one(pt: PlanTask) -> Phase:
                return (await executor.run_task(self._spec(pt))).phase

            outcome = await schedule(plan.tasks, run_one, rc.config.settings.concurrency.max_agents, done=done)
            for tid, phase in outcome.items():
                if phase is Phase.BLOCKED and self.state.tasks[tid].phase is not Phase.BLOCKED:
                    rc.emit(
                        TaskStatus(task=tid, status=Phase.BLOCKED.value, reason="a task it depends on was not approved")
                    )
            result = await integrate_settled(rc, run_one)
            status, conflicts, self.not_merged = result.status, result.conflicts, result.not_merged
            if status == "done" and rc.config.apply:
                try:
                    rc.emit(Applied(branch=await rc.in_thread(rc.workspace.apply, rc.run_id)))
                except SquadError as exc:
                    rc.emit(ApplyRefused(reason=exc.message))
                    raise
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            rc.emit(Interrupted())
            report = build_report(self.state, "interrupted")
            report.next_command = f"squad run --resume {rc.run_id}"
            return report
        except SquadError as exc:
            if self.state.plan is None:
                raise
            status, error = "failed", str(exc)
        return await self._finish(status, error, conflicts)

    async def _finish(self, status: str, error: str | None, conflicts: list[str]) -> RunReport:
        rc = self.rc
        decisions = run_decisions(rc.journal.ledger_path)
        report = build_report(
            self.state, status, error=error, conflicts=conflicts, decisions=decisions, not_merged=self.not_merged
        )
        rc.emit(RunFinished(status=status, error=report.error, cost_usd=report.cost_usd))
        report.usage = self.state.usage_report()
        rc.journal.write_report(report.to_dict())
        if status == "done":
            await rc.in_thread(_release_all, rc)
        return report

    async def _baseline(self) -> bool:
        """The test command on the base commit before anyone is paid to work (`baseline.run_baseline`)."""
        return await run_baseline(self.rc)

    async def _plan(self) -> Plan:
        return await plan_run(self.rc, self.agent)

    def _spec(self, pt: PlanTask) -> TaskSpec:
        return task_spec(self.state, pt)


def _release_all(rc: RunContext) -> None:
    """Remove every worktree of the run, keeping the branches.

    Not only this process's leases: after a crash and `--resume`, tasks approved before the crash keep
    worktrees this process never leased, and those must go too.
    """
    from squad.infra.gc import gc

    for lease in rc.leases.values():
        with contextlib.suppress(SquadError):
            rc.workspace.release(lease)
    removed = len(rc.leases)
    with contextlib.suppress(SquadError):
        removed += len(gc(rc.workspace, runs=[rc.run_id], keep_branches=True, lock_runs=False).worktrees)
    rc.emit(Released(worktrees=removed))
