"""What lets a run killed anywhere (SIGKILL, a crash, a power cut) be resumed to the same result, nothing lost
or doubled.

A resumed run folds its journal and asks each task's state machine for the next step (`squad.domain.task`);
an attempt that was working starts over from its round's base commit. What the journal cannot say is what
the killed process left behind outside it, and `recover` deals with that before any work goes on:

1. processes it had started (tests, the `run` tool, setup, git) — killed, or for git waited for
   (`squad.infra.processes`);
2. git lock files those left in the run's worktrees and branches — removed, since nobody can hold them any
   more (`squad.infra.git_locks`);
3. decisions of attempts — an attempt's `record_decision` calls go to its own file, kept in the run ledger
   once its work is committed (`keep_decisions`, also called by the flow right after the commit) and
   dropped when it was killed before that (`squad.infra.ledger.keep_attempt`), so a redone attempt records
   its decisions exactly once; the lead's planning session is an attempt too, kept once the plan is journaled.

Each repair is journaled. A run killed after `run_finished` is finished on resume by writing its report and
releasing its worktrees (`only_report_left`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from squad.domain.events import AttemptDecisions, ProcessReaped, StaleLockRemoved
from squad.errors import UsageError
from squad.infra.git_locks import remove_stale_locks
from squad.infra.journal import PLAN_ATTEMPT
from squad.infra.ledger import drop_attempt, keep_attempt, remove_temp_files
from squad.infra.processes import ProcessRegistry

if TYPE_CHECKING:
    from squad.domain.state import RunState
    from squad.infra.journal import Journal
    from squad.orchestration.context import RunContext


def process_registry(journal: Journal) -> ProcessRegistry:
    """Where the run records the processes it has running (installed with `squad.infra.processes.tracking`)."""
    return ProcessRegistry(journal.procs_dir)


def only_report_left(journal: Journal, state: RunState, *, retry: str | None = None) -> bool:
    """True when the run finished `done` but was killed before its report was written or its worktrees released.

    Raises:
        UsageError: the run finished `done` and nothing is left to do, or a task of a done run is to be retried.
    """
    if state.status != "done":
        return False
    report = journal.read_report()
    if retry is not None or (report is not None and report.get("status") == "done" and state.released):
        raise UsageError(f"run {journal.run} already finished", hint=f"its branch is squad/{journal.run}")
    return True


async def recover(rc: RunContext) -> None:
    """Before a resumed run does any work: end what the killed process left running, remove the git locks it
    left, and keep or drop the decisions of its attempts (see the module docstring)."""
    for reaped in await rc.in_thread(process_registry(rc.journal).reap):
        rc.emit(ProcessReaped(pid=reaped.pid, command=reaped.command, action=reaped.action))
    ws = rc.workspace
    for lock in await rc.in_thread(remove_stale_locks, ws.common_dir, ws.worktrees_dir, rc.run_id):
        rc.emit(StaleLockRemoved(path=lock))
    await rc.in_thread(remove_temp_files, rc.journal.attempts_dir)
    for task, round_, path in list(rc.journal.attempt_ledgers()):
        ts = rc.state.tasks.get(task)
        planned = task == PLAN_ATTEMPT and rc.state.plan is not None  # the planning's count once the plan is journaled
        if planned or (ts is not None and round_ in ts.committed_rounds):
            await keep_decisions(rc, task, round_)
            continue
        dropped = await rc.in_thread(drop_attempt, path)
        if dropped and ts is not None:
            rc.emit(AttemptDecisions(task=task, round=round_, kept=False, titles=[e.title for e in dropped]))


async def keep_decisions(rc: RunContext, task: str, round_: int) -> None:
    """An attempt's work is committed (or the plan journaled, task `PLAN_ATTEMPT`): its decisions join the run
    ledger (idempotent: by entry id)."""
    path = rc.journal.attempt_ledger(task, round_)
    kept = await rc.in_thread(keep_attempt, rc.workspace.root, path, rc.journal.ledger_path)
    if kept and task in rc.state.tasks:
        rc.emit(AttemptDecisions(task=task, round=round_, kept=True, titles=[e.title for e in kept]))
