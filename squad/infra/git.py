"""The one way squad runs git: the git CLI, no secrets in its environment, no hooks.

Every module's git helper (workspace, coordinator, context, ledger, tools, GitHub) goes through
`run_git`, so the rules live in one place: agents write files that git would otherwise execute (hooks
under a repo-relative core.hooksPath), and no git process may see an API key or token.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, overload

from squad.errors import NotARepoError, SquadError

#: Disables every hook (post-commit, post-merge, post-checkout, reference-transaction...).
NO_HOOKS = ("-c", "core.hooksPath=/dev/null")
#: Variables that would redirect git away from the repository we mean.
_GIT_ENV_DROP = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_PREFIX", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR")


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for squad's git commands: scrubbed of secrets, no location overrides, no prompts."""
    from squad.infra.env import scrubbed_env

    env = {k: v for k, v in scrubbed_env().items() if k not in _GIT_ENV_DROP}
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["LC_ALL"] = "C"  # stable, parseable messages
    if extra:
        env.update(extra)
    return env


def identity(name: str, email: str) -> dict[str, str]:
    """Author and committer env for `run_git(env=...)`: env beats `-c user.*` and any GIT_AUTHOR_* of the caller."""
    return {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }


@overload
def run_git(
    cwd: Path,
    *args: str,
    text: Literal[True] = True,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]: ...
@overload
def run_git(
    cwd: Path,
    *args: str,
    text: Literal[False],
    input: bytes | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[bytes]: ...
def run_git(
    cwd: Path,
    *args: str,
    text: bool = True,
    input: str | bytes | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str] | subprocess.CompletedProcess[bytes]:
    """Run `git <args>` in `cwd` with `git_env(env)` and hooks off; never raises on a non-zero exit.

    Raises:
        SquadError: git is not installed. subprocess.TimeoutExpired: past `timeout` seconds.
    """
    try:
        return subprocess.run(
            ["git", *NO_HOOKS, *args],
            cwd=cwd,
            capture_output=True,
            text=text,
            input=input,
            env=git_env(env),
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise SquadError("git is not installed or not on PATH", hint="install git >= 2.20") from None


def find_repo_root(start: Path | None = None) -> Path:
    """The top of the git work tree containing `start` (default: cwd).

    Raises:
        NotARepoError: outside a git repository.
    """
    cwd = Path(start or Path.cwd())
    out = run_git(cwd, "rev-parse", "--show-toplevel")
    if out.returncode != 0:
        raise NotARepoError(
            f"not inside a git repository: {cwd}",
            hint="run this inside a git repo, or create one with `git init`",
        )
    return Path(out.stdout.strip())


def git_common_dir(root: Path) -> Path:
    """The git common dir of the repository holding `root` (shared by all its worktrees): where squad keeps
    locks and worktrees, never in a work tree.

    Raises:
        NotARepoError: `root` is not inside a git repository.
    """
    out = run_git(root, "rev-parse", "--path-format=absolute", "--git-common-dir")
    if out.returncode != 0:
        raise NotARepoError(f"{root} is not inside a git repository", hint="run `git init` or cd into your repo")
    return Path(out.stdout.strip()).resolve()


def user_name(root: Path) -> str:
    """Who is at the keyboard: git's `user.name` for `root`, else $USER, else "someone"."""
    import os

    out = run_git(root, "config", "user.name")
    name = out.stdout.strip() if out.returncode == 0 else ""
    return name or os.environ.get("USER", "").strip() or "someone"
