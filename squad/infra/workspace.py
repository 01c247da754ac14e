"""Git worktrees for squad runs: one worktree and branch per task, commits, merges, garbage collection.

Every task of a run works in its own linked worktree under `<git-common-dir>/squad/worktrees/<run>/<task>`
on branch `squad/<run>--<task>`, so agents never touch the user's branch or work tree. Facts this module
is built on (see DESIGN.md section 6):

- concurrent `git worktree add` fails intermittently, and a failed add leaves its new branch behind, so
  add/remove/prune run one at a time under a FileLock in `<git-common-dir>/squad/locks/worktrees.lock`
  and a failed add deletes the branch it created before retrying;
- commits go through the git CLI (GitPython's `index.commit` shares COMMIT_EDITMSG across worktrees);
- subprocess git is thread-safe and needs no open handles, so it is used everywhere.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from squad.domain.ids import (
    RUN_BRANCH_RE,
    check_run,
    check_task,
    run_branch,
    task_branch,
)
from squad.errors import NotARepoError, WorkspaceError
from squad.infra.git import identity, run_git
from squad.infra.locks import LockTimeoutError, hold
from squad.infra.safefs import multi_link_files
from squad.infra.user_tree import UserTree

#: Worktree folder of a run's read-only view of its base commit, where the lead reads the code while planning.
#: Not a valid task id either.
VIEW = "_plan"
#: Worktree folder of a run's integration worktree (where merges into `squad/<run>` happen). Not a valid
#: task id, so it can never collide with a task.
INTEGRATION = "_integration"

_ADD_ATTEMPTS = 3
_BASE_KEY = "squadbase"  # branch.<name>.squadbase: the commit a task branch started from (removed with the branch)


@dataclass
class Lease:
    """A worktree leased to one task of one run."""

    run: str
    task: str
    path: Path
    branch: str
    base_commit: str


@dataclass
class MergeResult:
    """Outcome of `Workspace.merge`: `sha` is the target's new head when ok, `conflicts` the unmerged paths."""

    ok: bool
    conflicts: list[str]
    sha: str | None


def _run_git(
    args: Iterable[str], cwd: Path, *, check: bool = True, input: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    args = list(args)
    proc = run_git(cwd, *args, input=input, env=env)
    if check and proc.returncode != 0:
        raise WorkspaceError(f"`git {' '.join(args)}` failed in {cwd}: {(proc.stderr or proc.stdout).strip()}")
    return proc


class Workspace(UserTree):
    """Worktrees, commits, merges and gc for squad runs in the repository at `root`.

    Args:
        root: the repository's (main) work tree; the run folders live in `root/.squad/runs`.
        lock_timeout: seconds to wait for the worktree lock before raising WorkspaceError.
    """

    def __init__(self, root: Path, *, lock_timeout: float = 120.0) -> None:
        root = Path(root)
        proc = _run_git(
            ["rev-parse", "--path-format=absolute", "--show-toplevel", "--git-common-dir"], root, check=False
        )
        if proc.returncode != 0:
            raise NotARepoError(f"{root} is not inside a git work tree", hint="run `git init` or cd into your repo")
        top, common = proc.stdout.splitlines()[:2]
        self.root = Path(top).resolve()
        self.common_dir = Path(common).resolve()
        self.squad_dir = self.common_dir / "squad"
        self.worktrees_dir = self.squad_dir / "worktrees"
        self.locks_dir = self.squad_dir / "locks"
        self.lock_timeout = lock_timeout

    # ---------------------------------------------------------------- helpers

    def _git(self, *args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run_git(args, cwd or self.root, check=check)

    @contextlib.contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        """Hold `<git-common-dir>/squad/locks/<name>.lock` against other threads and processes."""
        try:
            with hold(self.locks_dir / f"{name}.lock", self.lock_timeout):
                yield
        except LockTimeoutError as exc:
            raise WorkspaceError(exc.message, hint=exc.hint) from None

    def worktree_path(self, run: str, task: str) -> Path:
        """Where the worktree of (run, task) lives."""
        return self.worktrees_dir / run / task

    def _branch_exists(self, branch: str) -> bool:
        return self._git("show-ref", "--verify", "--quiet", f"refs/heads/{branch}", check=False).returncode == 0

    def _try_resolve(self, rev: str) -> str | None:
        proc = self._git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
        return proc.stdout.strip() if proc.returncode == 0 else None

    def _resolve(self, rev: str) -> str:
        sha = self._try_resolve(rev)
        if sha is None:
            raise WorkspaceError(f"cannot resolve {rev!r} to a commit in {self.root}")
        return sha

    def _worktrees(self) -> dict[Path, str | None]:
        """Registered worktrees: resolved path -> checked-out branch name (None when detached)."""
        out = self._git("worktree", "list", "--porcelain").stdout
        result: dict[Path, str | None] = {}
        for chunk in out.strip().split("\n\n"):
            path: Path | None = None
            branch: str | None = None
            for line in chunk.splitlines():
                if line.startswith("worktree "):
                    path = Path(line[len("worktree ") :]).resolve()
                elif line.startswith("branch refs/heads/"):
                    branch = line[len("branch refs/heads/") :]
            if path is not None:
                result[path] = branch
        return result

    def _owned(self, path: Path) -> bool:
        """True for paths inside squad's worktrees folder — the only directories squad ever deletes."""
        return path.resolve().is_relative_to(self.worktrees_dir.resolve())

    # ---------------------------------------------------------------- lease / commit / release

    def lease(self, run: str, task: str, base: str = "HEAD") -> Lease:
        """Give task `task` of run `run` its worktree, creating it from `base` (resolved once to a sha).

        Idempotent: when the worktree already exists on its branch it is reused as is (resume), and when
        only the branch exists (released without deleting it) a worktree is added back on that branch.
        """
        check_run(run)
        check_task(task)
        return self._lease(run, task, task_branch(run, task), base)

    def integration(self, run: str, base: str = "HEAD") -> Lease:
        """The run's integration worktree, on branch `squad/<run>` (created from `base` when missing)."""
        check_run(run)
        return self._lease(run, INTEGRATION, run_branch(run), base)

    def view(self, run: str, commit: str) -> Lease:
        """A detached worktree of `commit` for run `run`, on no branch: what the lead reads while planning.

        It writes no branch, and `commit` refuses it (a lease on no branch). Reused when it is already at
        `commit` (a resumed run re-plans); `release` removes it.
        """
        check_run(run)
        sha = self._resolve(commit)
        path = self.worktree_path(run, VIEW)
        with self._lock("worktrees"):
            if path.resolve() in self._worktrees() and path.is_dir():
                head = self._git("rev-parse", "--verify", "-q", "HEAD", cwd=path, check=False).stdout.strip()
                if head == sha:
                    sha = ""
                else:
                    self._remove_worktree(path)
                    self._git("worktree", "prune")
            if sha:
                self._add(path, ["--detach", str(path), sha], created_branch=None)
        lease = Lease(run, VIEW, path, "", sha or self._resolve(commit))
        self._checkout(lease)
        return lease

    def _lease(self, run: str, task: str, branch: str, base: str) -> Lease:
        # Only what must not interleave with other worktree changes runs under the lock; the lock is shared by
        # every lease of a run, so each git process inside it delays all the others. Resolving the base is a
        # read, done first (a lease that reuses its branch never needs it, so an error waits until it does).
        # Stale metadata (a worktree folder deleted by hand) makes `worktree add` fail, and the failure path
        # in `_add` prunes it and retries, so the common path does not prune.
        path = self.worktree_path(run, task)
        base_sha = self._try_resolve(base)
        with self._lock("worktrees"):
            checked_out = self._worktrees()
            if checked_out.get(path.resolve()) == branch and path.is_dir():
                sha = None
            else:
                for other, other_branch in checked_out.items():
                    if other_branch == branch and other != path.resolve():
                        raise WorkspaceError(
                            f"branch {branch} is already checked out in {other}",
                            hint=f"switch that work tree to another branch, then retry (git -C {other} switch -)",
                        )
                if self._branch_exists(branch):
                    self._add(path, [str(path), branch], created_branch=None)
                    sha = None
                else:
                    sha = base_sha or self._resolve(base)  # raises the clear error
                    self._add(path, ["-b", branch, str(path), sha], created_branch=branch)
                    self._git("config", f"branch.{branch}.{_BASE_KEY}", sha)
        # Reading the recorded base of an existing branch needs no lock either.
        lease = Lease(run, task, path, branch, sha or self._base_of(branch))
        self._checkout(lease)
        return lease

    def _checkout(self, lease: Lease) -> None:
        """Fill a worktree added with --no-checkout (or one whose checkout was interrupted).

        This is the slow part of a lease (it writes every file), and it touches only this worktree's own
        index and files, so it runs outside the worktree lock: leases of a run check out in parallel.
        A worktree has no index until its checkout completes (git writes the index last, atomically), so a
        missing index means "not checked out yet" — also after a crash, when the lease is reused.
        """
        git_dir = Path(_run_git(["rev-parse", "--absolute-git-dir"], lease.path).stdout.strip())
        if not (git_dir / "index").exists():
            _run_git(["reset", "--hard", "-q"], lease.path)

    def _add(self, path: Path, args: list[str], *, created_branch: str | None) -> None:
        """Run `git worktree add --no-checkout` (lock held); clean up a failed attempt, retry up to 3 times."""
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        error = ""
        for attempt in range(_ADD_ATTEMPTS):
            proc = self._git("worktree", "add", "--no-checkout", *args, check=False)
            if proc.returncode == 0:
                return
            error = (proc.stderr or proc.stdout).strip()
            # A failed add can leave its new branch, a half-made folder and stale metadata behind.
            if created_branch and self._branch_exists(created_branch):
                self._git("branch", "-D", created_branch, check=False)
            if not existed and path.exists() and self._owned(path):
                shutil.rmtree(path, ignore_errors=True)
            self._git("worktree", "prune", check=False)
            time.sleep(0.05 * (attempt + 1))
        raise WorkspaceError(
            f"could not create worktree {path} after {_ADD_ATTEMPTS} attempts: {error}",
            hint="if that folder is left over from an earlier run, remove it or run `squad gc`",
        )

    def _base_of(self, branch: str) -> str:
        """The commit `branch` started from: recorded in its branch config, else its merge base with HEAD."""
        proc = self._git("config", "--get", f"branch.{branch}.{_BASE_KEY}", check=False)
        if proc.returncode == 0 and proc.stdout.strip():
            return proc.stdout.strip()
        proc = self._git("merge-base", branch, "HEAD", check=False)
        return proc.stdout.strip() if proc.returncode == 0 else self._resolve(branch)

    def _check_lease(self, lease: Lease) -> None:
        """Refuse to act on anything but a squad worktree that has its lease's branch checked out."""
        if not self._owned(lease.path) or not lease.path.is_dir():
            raise WorkspaceError(f"{lease.path} is not a squad worktree", hint="lease it with Workspace.lease first")
        head = _run_git(["symbolic-ref", "-q", "HEAD"], lease.path, check=False).stdout.strip()
        if head != f"refs/heads/{lease.branch}":
            raise WorkspaceError(f"worktree {lease.path} is on {head or 'a detached HEAD'}, not {lease.branch}")

    def commit(self, lease: Lease, *, agent: str, message: str) -> str | None:
        """Commit everything in the lease's worktree as `<agent> (squad)`; return the sha, None if unchanged.

        The message gets `Squad-Run` and `Squad-Agent` trailers. No hook runs (NO_HOOKS): the review gate
        and the configured test command are squad's checks, a user's interactive or formatting hook must not
        stall or rewrite an agent's commit, and an agent-written hook must never run.
        """
        self._check_lease(lease)
        if not message.strip():
            raise WorkspaceError("a commit message is required")
        # A hard link's data may be an outside file's (agent code can make one): never copy it into history.
        linked = multi_link_files(lease.path)
        for rel in linked:
            (lease.path / rel).unlink()
        if linked:
            message += "\n\nsquad left out hard-linked file(s), whose data may belong elsewhere: " + ", ".join(linked)
        _run_git(["add", "-A"], lease.path)
        if _run_git(["diff", "--cached", "--quiet"], lease.path, check=False).returncode == 0:
            return None
        full = _run_git(
            ["interpret-trailers", "--trailer", f"Squad-Run: {lease.run}", "--trailer", f"Squad-Agent: {agent}"],
            lease.path,
            input=message.strip() + "\n",
        ).stdout
        name, email = f"{agent} (squad)", f"{re.sub(r'[^A-Za-z0-9._-]', '-', agent) or 'agent'}@squad.invalid"
        # Env identity beats -c user.*, so set both: a GIT_AUTHOR_NAME in the caller's env must not leak in.
        env = identity(name, email)
        _run_git(
            [
                *("-c", f"user.name={name}", "-c", f"user.email={email}", "-c", "commit.gpgsign=false"),
                *("commit", "-q", "--no-verify", "--cleanup=whitespace", "-F", "-"),
            ],
            lease.path,
            input=full,
            env=env,
        )
        return _run_git(["rev-parse", "HEAD"], lease.path).stdout.strip()

    def release(self, lease: Lease, *, delete_branch: bool = False) -> None:
        """Remove the lease's worktree (discarding uncommitted changes); optionally delete its branch too."""
        with self._lock("worktrees"):
            self._remove_worktree(lease.path)
            self._git("worktree", "prune")
            if delete_branch and self._branch_exists(lease.branch):
                self._git("branch", "-D", lease.branch)

    def _remove_worktree(self, path: Path) -> None:
        """Remove one squad worktree (lock held); never anything outside squad's worktrees folder."""
        if not self._owned(path):
            raise WorkspaceError(f"refusing to remove {path}: not inside {self.worktrees_dir}")
        if path.resolve() in self._worktrees():
            self._git("worktree", "remove", "--force", "--force", str(path), check=False)
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # the run's folder, once its last worktree is gone

    # ---------------------------------------------------------------- merge

    def merge(
        self, target_branch: str, source_branch: str, *, base: str = "HEAD", message: str | None = None
    ) -> MergeResult:
        """Merge `source_branch` into the run branch `target_branch` (`squad/<run>`) in the integration worktree.

        The target is created from `base` when missing. On conflict the merge is aborted, the target is left
        exactly as it was, and the conflicted paths are returned. Never touches the user's work tree.
        """
        match = RUN_BRANCH_RE.fullmatch(target_branch)
        if not match:
            raise WorkspaceError(f"refusing to merge into {target_branch!r}: squad merges only into squad/<run>")
        run = match["run"]
        source_sha = self._resolve(source_branch)
        with self._lock(f"merge-{run}"):
            lease = self.integration(run, base)
            return self._merge_locked(lease, source_branch, source_sha, message)

    def merge_into(self, lease: Lease, source_branch: str, *, message: str | None = None) -> MergeResult:
        """Like `merge`, into an integration worktree already leased with `integration` (no lease per merge).

        A run merging many branches leases its integration worktree once and merges them all here: each
        `merge` re-leases it under the worktrees lock, which queued behind the run's other worktree work.
        """
        if lease.task != INTEGRATION or lease.branch != run_branch(lease.run):
            raise WorkspaceError(f"refusing to merge into {lease.branch!r}: not a run's integration worktree")
        source_sha = self._resolve(source_branch)
        with self._lock(f"merge-{lease.run}"):
            self._check_lease(lease)
            return self._merge_locked(lease, source_branch, source_sha, message)

    def _merge_locked(self, lease: Lease, source_branch: str, source_sha: str, message: str | None) -> MergeResult:
        """Merge `source_sha` in the integration worktree `lease` (merge lock held); abort on conflict."""
        wt = lease.path
        if _run_git(["rev-parse", "-q", "--verify", "MERGE_HEAD"], wt, check=False).returncode == 0:
            _run_git(["merge", "--abort"], wt, check=False)  # left over from a crash mid-merge
        name, email = "squad", "squad@squad.invalid"
        env = identity(name, email)
        proc = _run_git(
            [
                *("-c", "commit.gpgsign=false", "merge", "--no-ff", "--no-edit", "--no-verify"),
                *("-m", message or f"Merge {source_branch} into {lease.branch}", source_sha),
            ],
            wt,
            check=False,
            env=env,
        )
        if proc.returncode == 0:
            return MergeResult(True, [], _run_git(["rev-parse", "HEAD"], wt).stdout.strip())
        conflicts = _run_git(["diff", "--name-only", "--diff-filter=U", "-z"], wt, check=False).stdout
        paths = [p for p in conflicts.split("\0") if p]
        _run_git(["merge", "--abort"], wt, check=False)
        if not paths:
            raise WorkspaceError(
                f"merging {source_branch} into {lease.branch} failed: {(proc.stderr or proc.stdout).strip()}"
            )
        return MergeResult(False, sorted(paths), None)

    # ---------------------------------------------------------------- other reads and writes

    def head(self, path: Path) -> str:
        """The commit checked out in the worktree at `path`."""
        return _run_git(["rev-parse", "HEAD"], path).stdout.strip()

    def diff(self, lease: Lease, base: str) -> str:
        """`git diff --stat --patch base..HEAD` in the lease's worktree: what the task changed since `base`."""
        return _run_git(["diff", "--stat", "--patch", f"{base}..HEAD"], lease.path).stdout

    def tip(self, branch: str) -> str | None:
        """The commit `branch` points at, or None when there is no such branch."""
        return self._try_resolve(f"refs/heads/{branch}")

    def merge_commits(self, lease: Lease, commits: Iterable[str], *, keep_conflicts: bool = False) -> list[str]:
        """Merge `commits` into a task's worktree (skipping ones already in it); the conflicted paths, or [].

        Gives a task with several dependencies all of their approved work before it starts. On a conflict the
        merge is aborted and the worktree left as it was, unless `keep_conflicts`: then the merge stays in
        progress with git's conflict markers, for an agent to resolve (its commit completes the merge).
        """
        self._check_lease(lease)
        for sha in commits:
            if _run_git(["merge-base", "--is-ancestor", sha, "HEAD"], lease.path, check=False).returncode == 0:
                continue
            proc = _run_git(
                ["-c", "commit.gpgsign=false", "merge", "--no-ff", "--no-edit", "--no-verify", sha],
                lease.path,
                check=False,
                env=identity("squad", "squad@squad.invalid"),
            )
            if proc.returncode != 0:
                out = _run_git(["diff", "--name-only", "--diff-filter=U", "-z"], lease.path, check=False).stdout
                if keep_conflicts and out.strip("\0"):
                    return sorted(p for p in out.split("\0") if p)
                _run_git(["merge", "--abort"], lease.path, check=False)
                return sorted(p for p in out.split("\0") if p) or [
                    f"(merge of {sha[:12]} failed: {proc.stderr.strip()})"
                ]
        return []

    def reset(self, lease: Lease, commit: str) -> None:
        """Put the lease's worktree and branch back at `commit`, with no untracked or ignored files left.

        How an interrupted attempt starts over: never on top of the killed attempt's half-written files.
        """
        self._check_lease(lease)
        _run_git(["reset", "-q", "--hard", commit], lease.path)
        _run_git(["clean", "-q", "-ffdx"], lease.path)

    def commit_file(self, lease: Lease, path: str, data: bytes, *, message: str) -> str | None:
        """Commit `data` at repo path `path` on the lease's branch as squad; None when the branch has it already.

        Written through git's object database and index, never through the work tree, so a symlink an agent
        planted at `path` (or at a folder on the way) is never followed: the commit replaces it with a regular
        file, and the work tree is then reset to the commit (git itself never writes through a link).
        Whether there is anything to commit is decided by the branch's tree, not by the work tree's files.
        """
        self._check_lease(lease)
        parts = path.split("/")
        for depth in range(1, len(parts)):  # a file where a folder of the path must be: say so, never replace it
            where = "/".join(parts[:depth])
            kind = _run_git(["cat-file", "-t", f"HEAD:{where}"], lease.path, check=False).stdout.strip()
            if kind and kind != "tree":
                raise WorkspaceError(
                    f"cannot commit {path} on {lease.branch}: the branch has a file at {where}, where a folder must be",
                    hint=f"remove or rename {where} on {lease.branch} (it came from the run's work), then resume",
                )
        blob = _run_git(["hash-object", "-w", "--stdin"], lease.path, input=data.decode("utf-8")).stdout.strip()
        current = _run_git(["rev-parse", "-q", "--verify", f"HEAD:{path}"], lease.path, check=False).stdout.strip()
        if current == blob:
            return None
        _run_git(["update-index", "--add", "--replace", "--cacheinfo", f"100644,{blob},{path}"], lease.path)
        _run_git(
            ["-c", "commit.gpgsign=false", "commit", "-q", "--no-verify", "-m", message],
            lease.path,
            env=identity("squad", "squad@squad.invalid"),
        )
        _run_git(["reset", "-q", "--hard", "HEAD"], lease.path)
        return self.head(lease.path)
