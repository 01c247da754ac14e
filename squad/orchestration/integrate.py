"""Integration: merge approved work in plan order into `squad/<run>`, commit the run's decisions, test.

With `[review] integrate = "approved"` (the default) every approved task whose dependencies were merged is
merged, even when other tasks failed or need a person: the run is then `partial`. A merge that conflicts
does not stop the run: the task goes through a conflict round (its change re-applied on top of the run
branch, the conflicted files named, the resolution reviewed again), bounded by `[review] max_rounds`.

Every write goes through the Workspace (the only writer of branches). Each step is idempotent on a
resume: merged tasks are skipped (the journal says so), and the ledger commit is decided by the run
branch's tree, not by files in a worktree.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from squad.domain.events import LedgerCommitted, MergeConflict, Merged
from squad.domain.ids import run_branch
from squad.domain.plan import PlanTask
from squad.domain.review import Verdict, veto_on_tests
from squad.domain.task import APPROVED, Phase
from squad.orchestration.testing import baseline_result, test_worktree

if TYPE_CHECKING:
    from squad.orchestration.context import RunContext

#: Runs a task's flow again (its conflict rounds) and returns where it settled.
Resolver = Callable[[PlanTask], Awaitable[Phase]]


@dataclass
class Integration:
    """How integration ended: `done`, `partial` (some tasks merged, not all), `conflict`, `tests_failed`, or the
    phase of the tasks when none could be merged; what was merged and what was not, and why."""

    status: str
    conflicts: list[str] = field(default_factory=list)
    tests: dict[str, Any] | None = None
    merged: list[str] = field(default_factory=list)
    not_merged: dict[str, str] = field(default_factory=dict)


def _why_not(rc: RunContext, pt: PlanTask) -> str | None:
    """Why `pt` cannot be merged now, or None when it can."""
    ts = rc.state.tasks[pt.id]
    if not ts.approved:
        return f"{ts.phase.value}" + (f": {ts.reason}" if ts.reason else "")
    unmerged = [d for d in pt.depends_on if not rc.state.tasks[d].merged]
    if unmerged:
        return f"depends on {', '.join(unmerged)}, which was not merged"
    return None


async def integrate(rc: RunContext, resolve: Resolver) -> Integration:
    """Merge what may be merged into the run branch, resolving conflicts in conflict rounds; ledger; tests."""
    from squad.infra.ledger import Ledger

    state, ws, settings = rc.state, rc.workspace, rc.config.settings
    assert state.plan is not None
    target = run_branch(rc.run_id)
    # Leased once for all merges, the ledger commit and the tests (not once per merge).
    lease = await rc.in_thread(ws.integration, rc.run_id, state.base_commit or "HEAD")
    rc.leases["_integration"] = lease
    result = Integration("done")
    for pt in state.plan.tasks:
        why = _why_not(rc, pt)
        while why is None and not state.tasks[pt.id].merged:
            ts = state.tasks[pt.id]
            assert ts.commit is not None
            # Named by whoever wrote the approved work (a revision's author, not the one the plan first chose).
            message = f"squad: merge task {pt.id} ({ts.author or ts.agent})"
            merge = await rc.in_thread(ws.merge_into, lease, ts.commit, message=message)
            if merge.ok:
                rc.emit(Merged(task=pt.id, commit=merge.sha, branch=target))
                break
            rc.emit(MergeConflict(task=pt.id, files=merge.conflicts))  # the task goes to a conflict round
            result.conflicts = merge.conflicts
            await resolve(pt)
            why = _why_not(rc, pt)
        if state.tasks[pt.id].merged:
            result.merged.append(pt.id)
        else:
            result.not_merged[pt.id] = why or "not merged"
    if result.merged:
        await _commit_ledger(rc, lease, Ledger)
    if result.not_merged:
        phases = [state.tasks[t].phase for t in result.not_merged]
        result.status = "partial" if result.merged else _worst(phases)
    if not result.merged or not settings.commands.test.strip():
        return result
    tests = await test_worktree(rc, lease, None, "integration")
    result.tests = tests.to_dict()
    same_as_base = veto_on_tests(_APPROVED, tests, True, baseline_result(state.baseline)).approved
    if not tests.passed and not same_as_base:
        result.status = "tests_failed"
    return result


async def integrate_settled(rc: RunContext, resolve: Resolver) -> Integration:
    """Integrate a run whose tasks have all settled, as `[review] integrate` says: "approved" merges what can be
    merged (the run is `partial` when not everything was), "all" only a run whose every task was approved.
    When nothing may be merged, the status is the most telling phase of the tasks. Used by `squad run` and by
    `squad integrate` alike."""
    phases = [ts.phase for ts in rc.state.tasks.values()]
    partial_ok = rc.config.settings.review.integrate == "approved"
    approved = [phase in APPROVED for phase in phases]
    if not (all(approved) or (partial_ok and any(approved))):
        return Integration(_worst(phases))
    result = await integrate(rc, resolve)
    if not partial_ok and result.not_merged:  # all-or-nothing: an unresolved conflict is the status
        result.status = _worst([rc.state.tasks[t].phase for t in result.not_merged])
    return result


_APPROVED = Verdict(reviewer="integration", verdict="approve")


def _worst(phases: list[Phase]) -> str:
    """The run's status when nothing could be merged: the most telling phase of the tasks."""
    for phase in (Phase.CONFLICT, Phase.NEEDS_HUMAN, Phase.FAILED):
        if phase in phases:
            return phase.value
    return "failed"


async def _commit_ledger(rc: RunContext, lease: Any, ledger_cls: Any) -> None:
    """Commit the run's decisions on the run branch (decided by the branch's tree: idempotent)."""
    source = rc.journal.ledger_path
    if not (source.exists() and source.read_text(encoding="utf-8").strip()):
        return
    rel = ledger_cls(lease.path).run_file(rc.run_id).relative_to(lease.path.resolve()).as_posix()
    message = f"squad: decisions of run {rc.run_id}"
    sha = await rc.in_thread(rc.workspace.commit_file, lease, rel, source.read_bytes(), message=message)
    if sha is not None:
        rc.emit(LedgerCommitted(path=rel, commit=sha))
