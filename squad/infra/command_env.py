"""The extra environment of a command run in a squad worktree, so it exercises the worktree's code.

`squad.infra.process.run_command` asks `command_env` for every command it starts, so the `run` tool, the
test command and `[workspace] setup` commands all get the same treatment. Outside a squad worktree (the
user's own checkout, a temp dir) it changes nothing.

Why this is needed: a worktree is a second checkout of the repository, but what is *installed* still points
at the main checkout (an editable Python install maps the main checkout's `src/`), so without help tests in a
worktree would import the main checkout's code and pass or fail regardless of the agent's change. See
`squad.infra.python_env` for the Python mechanism and its limits.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from squad.infra.git import run_git
from squad.infra.python_env import python_env

#: Where squad's worktrees live, under the git common dir (see squad.infra.workspace).
WORKTREES_SUBDIR = ("squad", "worktrees")


@dataclass(frozen=True, slots=True)
class CommandEnv:
    """Variables to set for one command (complete values, not appends) and notes for whoever reads its output."""

    env: dict[str, str]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SquadWorktree:
    """A squad worktree's top folder and the repository's main work tree (None for a bare repository)."""

    path: Path
    main_root: Path | None


def squad_worktree(cwd: Path) -> SquadWorktree | None:
    """The squad worktree containing `cwd`, or None when `cwd` is not inside one."""
    return _squad_worktree(str(Path(cwd).absolute()))


@functools.lru_cache(maxsize=256)
def _squad_worktree(cwd: str) -> SquadWorktree | None:
    # Cached: a worktree's place and its repository's main work tree do not change while squad runs in it.
    proc = run_git(Path(cwd), "rev-parse", "--path-format=absolute", "--show-toplevel", "--git-common-dir")
    if proc.returncode != 0:
        return None
    lines = proc.stdout.splitlines()
    if len(lines) < 2:
        return None
    top, common = Path(lines[0]).resolve(), Path(lines[1]).resolve()
    if not top.is_relative_to(common.joinpath(*WORKTREES_SUBDIR)):
        return None
    listing = run_git(top, "worktree", "list", "--porcelain")
    first = listing.stdout.split("\n\n", 1)[0].splitlines() if listing.returncode == 0 else []
    main: Path | None = None
    if first and first[0].startswith("worktree ") and "bare" not in first[1:]:
        main = Path(first[0].removeprefix("worktree ")).resolve()
    return SquadWorktree(top, main)


def worktree_env(
    worktree: Path, main_root: Path, argv: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> CommandEnv:
    """What a command `argv` run in `worktree` needs so that it tests the worktree's code, given its `env`.

    Today: Python (worktree import roots first on PYTHONPATH; for `python -I -m pytest`, pytest's own
    `pythonpath` through PYTEST_ADDOPTS). Node needs nothing here: it finds packages by walking up from the
    worktree, which lives inside the main checkout's `.git/`, so it reaches the main checkout's node_modules
    by accident; `[workspace] link = ["node_modules"]` makes that explicit (see squad.infra.worktree_env).
    """
    py = python_env(Path(worktree), Path(main_root), list(argv), env or {})
    return CommandEnv(py.env, py.notes)


def command_env(cwd: Path, argv: Sequence[str], env: Mapping[str, str]) -> CommandEnv:
    """`worktree_env` for a command about to run in `cwd`, when `cwd` is in a squad worktree; else nothing."""
    where = squad_worktree(cwd)
    if where is None or where.main_root is None:
        return CommandEnv({})
    return worktree_env(where.path, where.main_root, argv, env)
