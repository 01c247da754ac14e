"""The remote a run spread over CI jobs shares: task branches pushed by one job, fetched by the next.

Every call goes through `run_git` (no secrets in git's environment, no hooks). A token, when given, reaches only
the one git process that needs it, as an `http.extraheader` config entry passed through GIT_CONFIG_COUNT/KEY/VALUE
in its environment: never on a command line (other processes can read /proc/<pid>/cmdline), never in .git/config.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path

from squad.errors import UsageError, WorkspaceError
from squad.infra.git import run_git

_BRANCH_RE = re.compile(r"[A-Za-z0-9._/-]+")


def auth_env(token: str | None) -> dict[str, str]:
    """`token` as an `http.extraheader` for ONE git process, through GIT_CONFIG_COUNT/KEY/VALUE in its
    environment (empty without a token): never written to .git/config, never on a command line."""
    if not token:
        return {}
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.extraheader",
        "GIT_CONFIG_VALUE_0": f"AUTHORIZATION: basic {basic}",
    }


def check_branch(branch: str) -> None:
    """Refuse a branch name git could read as an option, a path out of refs/heads, or a revision range.

    Raises:
        WorkspaceError: `branch` is such a name.
    """
    if not _BRANCH_RE.fullmatch(branch) or ".." in branch or branch.startswith(("-", "/")):
        raise WorkspaceError(f"refusing to use an unusual branch name {branch!r}")


@dataclass(frozen=True)
class Remote:
    """Where a run's branches are shared: a remote name or URL, an optional token for HTTPS, and whether this
    job pushes to it (without, it only fetches the commits it lacks)."""

    name: str = "origin"
    token: str | None = None
    push: bool = True

    def env(self) -> dict[str, str]:
        """The git environment that authenticates one call (empty without a token)."""
        return auth_env(self.token)

    def _scrub(self, text: str) -> str:
        return text.replace(self.token, "***") if self.token else text


def check_remote(root: Path, remote: Remote) -> None:
    """Raise UsageError unless `remote` is a configured remote of the repository at `root`, or a URL or path."""
    if run_git(root, "remote", "get-url", remote.name).returncode == 0:
        return
    if "://" in remote.name or remote.name.startswith(("/", "git@")) or Path(remote.name).is_dir():
        return
    raise UsageError(
        f"no git remote {remote.name!r} in {root}",
        hint="pass --remote NAME (or a URL), or --no-push to keep the branches in this clone",
    )


def remote_tip(root: Path, remote: Remote, branch: str) -> str | None:
    """The commit `branch` points at on the remote, or None when the remote has no such branch.

    Raises:
        WorkspaceError: the remote cannot be read.
    """
    check_branch(branch)
    out = run_git(root, "ls-remote", "--heads", remote.name, f"refs/heads/{branch}", env=remote.env())
    if out.returncode != 0:
        raise WorkspaceError(f"cannot read {remote.name}: {remote._scrub(out.stderr.strip())}")
    for line in out.stdout.splitlines():
        sha, _, ref = line.partition("\t")
        if ref == f"refs/heads/{branch}":
            return sha
    return None


def has_commit(root: Path, sha: str) -> bool:
    """True when commit `sha` is in the repository at `root`."""
    return run_git(root, "cat-file", "-e", f"{sha}^{{commit}}").returncode == 0


def is_ancestor(root: Path, older: str, newer: str) -> bool:
    """True when commit `older` is `newer` or one of its ancestors (the repository at `root` holds both)."""
    return run_git(root, "merge-base", "--is-ancestor", older, newer).returncode == 0


def fetch_commit(root: Path, remote: Remote, sha: str, branch: str | None = None) -> None:
    """Make commit `sha` available in `root`: fetch `branch` from the remote when it holds it, else the commit.

    Only objects arrive (and FETCH_HEAD): no local branch is written, so the Workspace stays their only writer.

    Raises:
        WorkspaceError: the fetch failed, or the remote's `branch` does not contain `sha`.
    """
    if has_commit(root, sha):
        return
    what = sha
    if branch is not None:
        check_branch(branch)
        what = f"refs/heads/{branch}"
    out = run_git(root, "fetch", "--quiet", "--no-tags", remote.name, what, env=remote.env())
    if out.returncode != 0:
        raise WorkspaceError(
            f"cannot fetch {branch or sha} from {remote.name}: {remote._scrub(out.stderr.strip())}",
            hint="the job that pushed it may have failed; rerun it, then this one",
        )
    if not has_commit(root, sha):
        raise WorkspaceError(
            f"{remote.name}'s {branch or sha} does not contain commit {sha[:12]}",
            hint="the branch was changed after its job pushed it; rerun that job",
        )


def push_branch(root: Path, remote: Remote, sha: str, branch: str, *, expect: str | None) -> None:
    """Point the remote's `branch` at `sha`, if it still is where this job saw it (`expect`; None: absent).

    A rerun of a job on a fresh runner does its task again and replaces the branch its killed attempt pushed
    (so the branch never holds two attempts' commits); the lease refuses to overwrite anyone else's push made
    in between.

    Raises:
        WorkspaceError: the push was refused or failed.
    """
    check_branch(branch)
    ref = f"refs/heads/{branch}"
    lease = f"--force-with-lease={ref}:{expect or ''}"
    out = run_git(root, "push", "--porcelain", lease, remote.name, f"{sha}:{ref}", env=remote.env())
    if out.returncode != 0:
        raise WorkspaceError(
            f"git push of {branch} to {remote.name} failed: {remote._scrub((out.stderr or out.stdout).strip())}",
            hint="another job may have pushed that branch meanwhile, or the token lacks `contents: write`",
        )
