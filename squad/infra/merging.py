"""The git sequences of squad's merges, each safe to repeat after a kill: `squad.infra.workspace` calls them with
its locks held and its checks done.

A merge killed half way (git itself killed: MERGE_HEAD and a half-updated index left behind) is abandoned before
the next one starts; a commit merged already is skipped (a dependency) or merges as "Already up to date" with no
new commit (the run branch), so a resume that repeats a merge the journal had not recorded yet changes nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from squad.errors import WorkspaceError
from squad.infra import faults
from squad.infra.git import identity, run_git

SQUAD_EMAIL = "squad@squad.invalid"
_SQUAD = identity("squad", SQUAD_EMAIL)
_MERGE = ("-c", "commit.gpgsign=false", "merge", "--no-ff", "--no-edit", "--no-verify")


@dataclass
class MergeResult:
    """Outcome of `Workspace.merge`: `sha` is the target's new head when ok, `conflicts` the unmerged paths."""

    ok: bool
    conflicts: list[str]
    sha: str | None


def _conflicted(worktree: Path) -> list[str]:
    out = run_git(worktree, "diff", "--name-only", "--diff-filter=U", "-z").stdout
    return sorted(p for p in out.split("\0") if p)


def abandon_merge(worktree: Path) -> None:
    """Abort a merge a killed squad left half done (MERGE_HEAD present), so the next merge starts clean."""
    if run_git(worktree, "rev-parse", "-q", "--verify", "MERGE_HEAD").returncode == 0:
        run_git(worktree, "merge", "--abort")


def merge_commit(worktree: Path, sha: str, message: str) -> MergeResult:
    """Merge `sha` into the integration worktree's branch (never fast-forward); on a conflict abort, leaving the
    branch as it was, and return the conflicted paths.

    Raises:
        WorkspaceError: the merge failed without a conflict.
    """
    abandon_merge(worktree)
    if run_git(worktree, "status", "--porcelain", "--untracked-files=no").stdout.strip():
        # Only squad writes tracked files here (merges, the ledger commit): changes are a killed step's leftovers.
        run_git(worktree, "reset", "-q", "--hard", "HEAD")
    proc = run_git(worktree, *_MERGE, "-m", message, sha, env=_SQUAD)
    if proc.returncode == 0:
        faults.point("merged")  # test-only: killed after the merge commit, before the journal says so
        return MergeResult(True, [], run_git(worktree, "rev-parse", "HEAD").stdout.strip())
    paths = _conflicted(worktree)
    run_git(worktree, "merge", "--abort")
    if not paths:
        raise WorkspaceError(f"merging {sha[:12]} in {worktree} failed: {(proc.stderr or proc.stdout).strip()}")
    return MergeResult(False, paths, None)


def merge_all(worktree: Path, commits: Iterable[str], *, keep_conflicts: bool = False) -> list[str]:
    """Merge `commits` into a task's worktree in turn, skipping ones already in it; the conflicted paths, or [].

    On a conflict the merge is aborted and the worktree left as it was, unless `keep_conflicts`: then the merge
    stays in progress with git's conflict markers, for an agent to resolve (its commit completes the merge).
    """
    abandon_merge(worktree)
    for sha in commits:
        if run_git(worktree, "merge-base", "--is-ancestor", sha, "HEAD").returncode == 0:
            continue
        proc = run_git(worktree, *_MERGE, sha, env=_SQUAD)
        if proc.returncode != 0:
            paths = _conflicted(worktree)
            if keep_conflicts and paths:
                return paths
            run_git(worktree, "merge", "--abort")
            return paths or [f"(merge of {sha[:12]} failed: {proc.stderr.strip()})"]
    return []


@dataclass
class BranchSurvey:
    """What a run branch holds past its base, read from its first-parent history (oldest first): `stale` merges
    (squad's, of work none of the approved commits is in), `foreign` commits (not squad's merges or decisions
    commits: a person's follow-up, say), each as "<sha> <subject>", and `keep`, the branch's last commit before
    the first foreign one."""

    stale: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    keep: str | None = None


def survey_run_branch(repo: Path, base: str, tip: str, approved: Collection[str], ledger_file: str) -> BranchSurvey:
    """Which of the commits on `tip`'s first-parent line past `base` still hold approved work, by structure alone.

    A merge made by squad (author and committer squad's identity, two parents) holds approved work when one of
    the `approved` commits is among those it brought in (`parent1..parent2`): the task's own commit, or the
    conflict round's commit built on it. A commit by squad with one parent that changes only `ledger_file` is the
    run's decisions commit. Anything else is foreign. Reads only: the repository at `repo` must hold `tip`.
    """
    log = run_git(repo, "log", "--first-parent", "--reverse", "--format=%H%x1f%P%x1f%ae%x1f%ce%x1f%s", f"{base}..{tip}")
    if log.returncode != 0:
        raise WorkspaceError(f"cannot read the history of {tip[:12]}: {log.stderr.strip()}")
    survey, previous, holds = BranchSurvey(), base, set(approved)
    for line in log.stdout.splitlines():
        sha, parents, author, committer, subject = line.split("\x1f", 4)
        ours, parent_list, what = author == committer == SQUAD_EMAIL, parents.split(), f"{sha[:12]} {subject}"
        if ours and len(parent_list) == 2:
            brought = run_git(repo, "rev-list", f"{parent_list[0]}..{parent_list[1]}").stdout.split()
            if not holds.intersection(brought):
                survey.stale.append(what)
        elif not (ours and len(parent_list) == 1 and _changes(repo, sha) == [ledger_file]):
            if not survey.foreign:
                survey.keep = previous
            survey.foreign.append(what)
        previous = sha
    return survey


def _changes(repo: Path, sha: str) -> list[str]:
    out = run_git(repo, "diff-tree", "--no-commit-id", "--name-only", "-r", "-z", sha).stdout
    return sorted(p for p in out.split("\0") if p)
