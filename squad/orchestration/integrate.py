"""Integration: merge approved branches in plan order into `squad/<run>`, commit the run's decisions, test.

Every write goes through the Workspace (the only writer of branches). Each step is idempotent on a
resume: merged tasks are skipped (the journal says so), and the ledger commit is decided by the run
branch's tree, not by files in a worktree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from squad.domain.events import LedgerCommitted, MergeConflict, Merged, TestsRan
from squad.domain.ids import run_branch
from squad.domain.review import TestResult, Verdict, veto_on_tests
from squad.orchestration.testing import baseline_result, run_tests
from squad.orchestration.worktrees import make_ready

if TYPE_CHECKING:
    from squad.orchestration.context import RunContext


@dataclass
class Integration:
    """How integration ended: `done`, `conflict` or `tests_failed`, with the conflicted files."""

    status: str
    conflicts: list[str]
    tests: dict[str, Any] | None = None


async def integrate(rc: RunContext) -> Integration:
    """Merge every approved task into the run branch, commit the run's ledger there, run the tests."""
    from squad.infra.ledger import Ledger

    state, ws = rc.state, rc.workspace
    assert state.plan is not None
    target = run_branch(rc.run_id)
    # Leased once for all merges, the ledger commit and the tests (not once per merge).
    lease = await rc.in_thread(ws.integration, rc.run_id, state.base_commit or "HEAD")
    rc.leases["_integration"] = lease
    for pt in state.plan.tasks:
        ts = state.tasks[pt.id]
        if ts.merged:
            continue
        assert ts.commit is not None
        result = await rc.in_thread(ws.merge_into, lease, ts.commit, message=f"squad: merge task {pt.id} ({ts.agent})")
        if not result.ok:
            # The work stays approved, so a resume retries the merge, not the task.
            rc.emit(MergeConflict(task=pt.id, files=result.conflicts))
            return Integration("conflict", result.conflicts)
        rc.emit(Merged(task=pt.id, commit=result.sha, branch=target))
    source = rc.journal.ledger_path
    if source.exists() and source.read_text(encoding="utf-8").strip():
        rel = Ledger(lease.path).run_file(rc.run_id).relative_to(lease.path.resolve()).as_posix()
        message = f"squad: decisions of run {rc.run_id}"
        sha = await rc.in_thread(ws.commit_file, lease, rel, source.read_bytes(), message=message)
        if sha is not None:
            rc.emit(LedgerCommitted(path=rel, commit=sha))
    settings = rc.config.settings
    if not settings.commands.test.strip():
        return Integration("done", [])
    failure = await make_ready(rc, lease, None, setup_again=False)
    if failure:
        tests = TestResult(command=settings.commands.test, exit_code=None, output=failure)
    else:
        tests = await run_tests(
            settings.commands.test, lease.path, settings, junit=rc.journal.dir / "junit" / "_integration.xml"
        )
    rc.emit(TestsRan(task=None, where="integration", **tests.to_dict()))
    if not tests.passed and veto_on_tests(_APPROVED, tests, True, baseline_result(rc.state.baseline)).approved:
        return Integration("done", [], tests.to_dict())  # failing exactly as the base commit did (allowed baseline)
    return Integration("done" if tests.passed else "tests_failed", [], tests.to_dict())


_APPROVED = Verdict(reviewer="integration", verdict="approve")
