"""Git plumbing for the Action: read trees at a sha, build the PR diff, load base-branch config, push.

Everything reads commits by sha (`git cat-file`, `git ls-tree`, `git diff base...head`), never the
work tree, so what the PR head contains on disk cannot influence which settings or charters apply.
Every git call runs with a scrubbed environment: no token or API key reaches a git subprocess.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from squad.errors import SquadError, UsageError, WorkspaceError
from squad.infra.git import run_git
from squad.infra.remote import auth_env, check_branch


def git(root: Path, *args: str, check: bool = True, extra_env: Mapping[str, str] | None = None) -> str:
    """Run git in `root` (squad.infra.git: no secrets, no hooks); return stdout (surrogate-escaped text)."""
    env = {"GIT_LITERAL_PATHSPECS": "1", **(extra_env or {})}  # paths from a PR are never globs
    out = run_git(root, *args, text=False, env=env)
    if check and out.returncode != 0:
        raise WorkspaceError(f"git {args[0]} failed: {out.stderr.decode(errors='replace').strip()}")
    return out.stdout.decode("utf-8", errors="surrogateescape")


def resolve_commit(root: Path, sha: str, what: str) -> str:
    """The full sha of commit `sha`, or a UsageError saying how to make it available."""
    out = run_git(root, "rev-parse", "--verify", "--quiet", f"{sha}^{{commit}}")
    if out.returncode != 0:
        raise UsageError(
            f"the {what} commit {sha} is not in the checked-out repository {root}",
            hint="use actions/checkout with `fetch-depth: 0` (and `ref: ${{ github.event.pull_request.head.sha }}`)",
        )
    return out.stdout.strip()


def has_commit(root: Path, sha: str) -> bool:
    return bool(sha) and run_git(root, "cat-file", "-e", f"{sha}^{{commit}}").returncode == 0


def fetch(root: Path, remote: str, ref: str, token: str | None) -> None:
    """Fetch `ref` from `remote` into the object store only (FETCH_HEAD): nothing is checked out or run."""
    out = run_git(
        root, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", remote, ref, text=False, env=auth_env(token)
    )
    if out.returncode != 0:
        err = out.stderr.decode(errors="replace").strip()
        raise WorkspaceError(f"git fetch {ref} failed: {err.replace(token, '***') if token else err}")


def show(root: Path, sha: str, path: str) -> str | None:
    """Text of `path` at commit `sha`, or None when it does not exist there."""
    out = run_git(root, "cat-file", "blob", f"{sha}:{path}", text=False)
    return out.stdout.decode("utf-8", errors="replace") if out.returncode == 0 else None


def ls_tree(root: Path, sha: str, prefix: str) -> list[str]:
    """Paths of the files under `prefix` at commit `sha` (recursive, sorted)."""
    out = git(root, "ls-tree", "-r", "-z", "--name-only", sha, "--", prefix)
    return sorted(p for p in out.split("\0") if p)


def materialize_squad_config(root: Path, sha: str, dest: Path) -> Path:
    """Copy `.squad/squad.toml` and `.squad/agents/*.md` as of `sha` into `dest` (a fresh directory).

    Config is always taken from the BASE commit: a PR must not be able to change the reviewers'
    charters, models or budgets that judge it.
    """
    for path in ls_tree(root, sha, ".squad"):
        if path == ".squad/squad.toml" or (path.startswith(".squad/agents/") and path.endswith(".md")):
            text = show(root, sha, path)
            if text is not None:
                target = dest / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
    return dest


@dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str


@dataclass(frozen=True)
class PullDiff:
    """The reviewable part of base...head: raw diff text, files in it, files left out and why, and per file the
    head-side line numbers the diff shows (added or context lines: where GitHub takes an inline comment)."""

    text: str
    files: tuple[str, ...]
    skipped: tuple[SkippedFile, ...]
    lines: dict[str, frozenset[int]] = field(default_factory=dict)


_HUNK_RE = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@")


def diff_lines(text: str) -> frozenset[int]:
    """Head-side line numbers shown in one file's unified diff (`+` and context lines of every hunk)."""
    lines: set[int] = set()
    number: int | None = None
    for line in text.split("\n"):
        if m := _HUNK_RE.match(line):
            number = int(m.group(1))
        elif number is None or line.startswith("\\"):
            continue
        elif line.startswith(("+", " ")):
            lines.add(number)
            number += 1
        elif not line.startswith("-"):
            number = None  # the next file's header
    return frozenset(lines)


def build_diff(root: Path, base: str, head: str, max_bytes: int) -> PullDiff:
    """Diff of `base...head` (changes since the merge base), bounded by `max_bytes`.

    Binary files are skipped; a single file whose diff is over a quarter of the budget is skipped as
    too large (so one generated file cannot crowd out the rest); once the budget is spent the
    remaining files are skipped as over the limit. Every skip is reported, never silent.
    """
    numstat = git(root, "diff", "--numstat", "-z", "--no-renames", f"{base}...{head}")
    per_file_cap = max(1000, max_bytes // 4)
    parts: list[str] = []
    files: list[str] = []
    skipped: list[SkippedFile] = []
    lines: dict[str, frozenset[int]] = {}
    used = 0
    for record in numstat.split("\0"):
        if not record:
            continue
        added, deleted, path = record.split("\t", 2)
        if added == "-" and deleted == "-":
            skipped.append(SkippedFile(path, "binary"))
            continue
        if used >= max_bytes:
            skipped.append(SkippedFile(path, f"over the diff limit (github.max_diff_bytes = {max_bytes})"))
            continue
        text = git(root, "diff", "--no-color", "--no-ext-diff", "--no-renames", f"{base}...{head}", "--", path)
        size = len(text.encode("utf-8", errors="surrogateescape"))
        if size > per_file_cap:
            skipped.append(SkippedFile(path, f"too large ({size} bytes of diff)"))
            continue
        if used + size > max_bytes:
            skipped.append(SkippedFile(path, f"over the diff limit (github.max_diff_bytes = {max_bytes})"))
            used = max_bytes
            continue
        parts.append(text)
        files.append(path)
        lines[path] = diff_lines(text)
        used += size
    return PullDiff("".join(parts), tuple(files), tuple(skipped), lines)


def commit_messages(root: Path, base: str, head: str, limit: int = 50) -> list[str]:
    """The full messages of the commits in `base..head`, oldest first (at most `limit`, the newest ones)."""
    out = git(root, "log", "-z", f"--max-count={limit}", "--format=%B", f"{base}..{head}")
    return [m.strip() for m in reversed(out.split("\0")) if m.strip()]


def worktree_at(root: Path, sha: str) -> Path:
    """A throwaway detached worktree at `sha` (outside the user's work tree), for read-only reviewers: the `tree`
    folder of a fresh `squad-review-*` temp dir (`remove_worktree` removes both)."""
    path = Path(tempfile.mkdtemp(prefix="squad-review-")) / "tree"
    try:
        git(root, "worktree", "add", "--detach", "--quiet", str(path), sha)
    except SquadError:
        shutil.rmtree(path.parent, ignore_errors=True)
        raise
    return path


def remove_worktree(root: Path, path: Path) -> None:
    """Remove a `worktree_at` worktree and its temp dir (left behind, one empty dir per review piles up)."""
    git(root, "worktree", "remove", "--force", str(path), check=False)
    git(root, "worktree", "prune", check=False)
    shutil.rmtree(path, ignore_errors=True)
    if path.parent.name.startswith("squad-review-"):
        shutil.rmtree(path.parent, ignore_errors=True)


def push(root: Path, remote: str, sha: str, branch: str, token: str | None, *, expect: str | None = None) -> None:
    """`git push <remote> <sha>:refs/heads/<branch>` (fast-forward only), authenticated for this call only
    (`auth_env`). With `expect`, the push is refused unless the branch is still at that sha (a lease): squad
    never pushes over work that landed on the branch since it last looked."""
    check_branch(branch)
    lease = [f"--force-with-lease=refs/heads/{branch}:{expect}"] if expect else []
    out = run_git(
        root, "push", "--porcelain", *lease, remote, f"{sha}:refs/heads/{branch}", text=False, env=auth_env(token)
    )
    if out.returncode != 0:
        err = out.stderr.decode(errors="replace").strip()
        if token:
            err = err.replace(token, "***")
        raise WorkspaceError(
            f"git push to {branch!r} failed: {err}",
            hint="the branch may have moved meanwhile, or the token lacks `contents: write`",
        )
