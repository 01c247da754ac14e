"""The user's own work tree, as the Workspace sees it: what a run will not see, and `--apply`.

A mixin of `squad.infra.workspace.Workspace` (the only writer of branches): these are its operations on the
checkout the user works in, kept apart from the worktrees squad owns.
"""

from __future__ import annotations

import subprocess
from typing import Protocol

from squad.domain.ids import run_branch
from squad.errors import WorkspaceError


class _Git(Protocol):
    def _git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]: ...

    def unclean_reason(self) -> str | None: ...


class UserTree:
    """`uncommitted`, `unclean_reason` and `apply` on the repository's main work tree."""

    def uncommitted(self: _Git) -> list[str]:
        """Paths in the user's work tree that differ from HEAD (changed, staged or untracked, not ignored): what a
        run, which works from HEAD, will not see."""
        tokens = iter(self._git("status", "--porcelain", "-z", "--untracked-files=normal").stdout.split("\0"))
        paths = set()
        for entry in tokens:
            if len(entry) > 3:
                paths.add(entry[3:])
                if entry[0] in "RC":  # a rename or copy: its source path follows as a token of its own
                    next(tokens, None)
        return sorted(paths)

    def unclean_reason(self: _Git) -> str | None:
        """Why the user's work tree cannot take a merge now (`--apply`), or None when it can."""
        if self._git("status", "--porcelain", "--untracked-files=no").stdout.strip():
            return "your working tree has uncommitted changes"
        if not self._git("symbolic-ref", "-q", "--short", "HEAD", check=False).stdout.strip():
            return "HEAD is detached (not on a branch)"
        return None

    def apply(self: _Git, run: str) -> str:
        """Merge `squad/<run>` into the user's current branch (`--apply`); returns that branch.

        Raises:
            WorkspaceError: the work tree is not clean, or the merge failed (it is aborted).
        """
        branch = run_branch(run)
        why = self.unclean_reason()
        if why:
            raise WorkspaceError(
                f"--apply refused: {why}; {branch} is ready but was not merged",
                hint=f"commit or stash your changes, then: git merge {branch}",
            )
        current = self._git("symbolic-ref", "-q", "--short", "HEAD").stdout.strip()
        proc = self._git("merge", "--no-ff", "--no-edit", branch, check=False)
        if proc.returncode != 0:
            self._git("merge", "--abort", check=False)
            raise WorkspaceError(
                f"--apply: merging {branch} into {current} failed: {(proc.stderr or proc.stdout).strip()}",
                hint=f"merge it yourself: git merge {branch}",
            )
        return current
