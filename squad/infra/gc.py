"""`squad gc`: remove the worktrees and branches of finished or abandoned runs, and nothing else.

Only names squad creates are candidates: task branches `squad/<run>--<task>` and (when asked) run
branches `squad/<run>`; any other branch is never deleted, nor a branch checked out in a work tree squad
does not own (such as the user's current branch). A run another process works on (its run lock is
held) is left alone: named, it is an error naming that process; found by the sweep, it is skipped.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from squad.domain.ids import RUN_BRANCH_RE, RUN_ID_RE, TASK_BRANCH_RE, check_run, run_branch
from squad.infra.journal import Journal
from squad.infra.locks import RunLock, RunLockedError
from squad.infra.workspace import Workspace


@dataclass
class GcReport:
    """What `gc` removed (or, with dry_run, would remove)."""

    runs: list[str] = field(default_factory=list)
    worktrees: list[Path] = field(default_factory=list)
    branches: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # human-readable reasons something was left alone
    dry_run: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "runs": self.runs,
            "worktrees": [str(p) for p in self.worktrees],
            "branches": self.branches,
            "skipped": self.skipped,
            "dry_run": self.dry_run,
        }


def run_state(root: Path, run: str) -> str:
    """`finished` (report.json or a finished journal), `active` (a run folder without either), or `abandoned`."""
    journal = Journal(root, run)
    if not journal.dir.is_dir():
        return "abandoned"
    if journal.report_path.exists():
        return "finished"
    if journal.exists:
        with contextlib.suppress(Exception):  # an unreadable journal is not proof the run ended
            if journal.state().finished:
                return "finished"
    return "active"


@contextlib.contextmanager
def _locked(ws: Workspace, run: str, take: bool) -> Iterator[None]:
    if not take:
        yield
        return
    with RunLock(ws.locks_dir, run):
        yield


def gc(
    ws: Workspace,
    *,
    runs: Iterable[str] | None = None,
    keep_branches: bool = False,
    run_branches: bool = False,
    dry_run: bool = False,
    lock_runs: bool = True,
) -> GcReport:
    """Remove worktrees and task branches of `runs`, or of every finished or abandoned run when None.

    Without `runs`, only runs whose id has `new_run_id`'s shape are considered. `lock_runs=False` is for a
    run cleaning up after itself (it holds its own run lock).

    Raises:
        RunLockedError: a named run is in use by another process.
    """
    report = GcReport(dry_run=dry_run)
    wanted: list[str] = []
    if runs is not None:
        wanted = list(dict.fromkeys(runs))
        for run in wanted:
            check_run(run)
    with ws._lock("worktrees"):
        ws._git("worktree", "prune")
        branches = [b.removeprefix("refs/heads/") for b in _squad_refs(ws)]
        checked_out = ws._worktrees()
        if runs is None:
            known: set[str] = set()
            for b in branches:
                if (m := TASK_BRANCH_RE.fullmatch(b) or RUN_BRANCH_RE.fullmatch(b)) and RUN_ID_RE.fullmatch(m["run"]):
                    known.add(m["run"])
            if ws.worktrees_dir.is_dir():
                known.update(p.name for p in ws.worktrees_dir.iterdir() if p.is_dir() and RUN_ID_RE.fullmatch(p.name))
            for run in sorted(known):
                if run_state(ws.root, run) == "active":
                    report.skipped.append(f"run {run} is still active (no report.json); name it with --run")
                elif lock_runs and RunLock(ws.locks_dir, run).held_elsewhere:
                    report.skipped.append(f"run {run} is in use by another squad process")
                else:
                    wanted.append(run)
        user_branches = {b for p, b in checked_out.items() if b and not ws._owned(p)}
        for run in wanted:
            try:
                with _locked(ws, run, lock_runs and not dry_run):
                    _collect(ws, run, report, checked_out, branches, user_branches, keep_branches, run_branches)
            except RunLockedError:
                if runs is not None:
                    raise
                report.skipped.append(f"run {run} is in use by another squad process")
        if not dry_run:
            ws._git("worktree", "prune")
    return report


def _squad_refs(ws: Workspace) -> list[str]:
    return ws._git("for-each-ref", "--format=%(refname)", "refs/heads/squad/").stdout.split()


def _collect(
    ws: Workspace,
    run: str,
    report: GcReport,
    checked_out: dict[Path, str | None],
    branches: list[str],
    user_branches: set[str],
    keep_branches: bool,
    run_branches: bool,
) -> None:
    report.runs.append(run)
    run_dir = ws.worktrees_dir / run
    paths = {p for p in checked_out if p.is_relative_to(run_dir.resolve())}
    if run_dir.is_dir():
        paths.update(p.resolve() for p in run_dir.iterdir() if p.is_dir())
    for path in sorted(paths):
        report.worktrees.append(path)
        if not report.dry_run:
            ws._remove_worktree(path)
    if keep_branches:
        return
    doomed = [b for b in branches if (m := TASK_BRANCH_RE.fullmatch(b)) and m["run"] == run]
    if run_branches and run_branch(run) in branches:
        doomed.append(run_branch(run))
    for b in doomed:
        if b in user_branches:
            report.skipped.append(f"branch {b} is checked out outside squad's worktrees")
            continue
        report.branches.append(b)
        if not report.dry_run:
            ws._git("branch", "-D", b)
