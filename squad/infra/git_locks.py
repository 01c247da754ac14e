"""Git lock files a killed run left behind in its own worktrees and branches, found and removed on resume.

git guards each file it rewrites with a `<file>.lock` it creates exclusively and renames over the file when
done; a git process that dies in between (killed with squad's process group, the machine losing power)
leaves the lock, and every later git command that needs the file fails with "Unable to create
'.../index.lock': File exists" — a run that could never be resumed.

A lock is stale when no live process can be holding it. For the files this module looks at that is decided,
not guessed: they belong to one run only (the private git folders of the run's worktrees, under
`<git common dir>/worktrees/<name>/`, and the refs of the run's branches `squad/<run>` and
`squad/<run>--<task>`), the run lock keeps every other squad process away from the run, and the resume calls
this after `squad.infra.processes` ended every process the killed squad had started (its git commands and
the commands run in the worktrees). Nobody else is left who could hold them. Repository-wide locks
(`config.lock`, `packed-refs.lock`, the main work tree's `index.lock`) are never touched: another process
may hold those.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from squad.domain.ids import check_run


def run_lock_files(common_dir: Path, worktrees_dir: Path, run: str) -> list[Path]:
    """Every git `*.lock` file in the run's worktrees' git folders and in its branches' refs."""
    check_run(run)
    mine = (worktrees_dir / run).resolve()
    found: list[Path] = []
    admin = common_dir / "worktrees"
    for gitdir_file in sorted(admin.glob("*/gitdir")) if admin.is_dir() else ():
        with contextlib.suppress(OSError):
            worktree = Path(gitdir_file.read_text(encoding="utf-8").strip()).parent
            if worktree.resolve().is_relative_to(mine):
                found.extend(sorted(p for p in gitdir_file.parent.rglob("*.lock") if p.is_file()))
    refs = common_dir / "refs" / "heads" / "squad"
    if refs.is_dir():
        # squad/<run> and its task branches squad/<run>--<task>, not another run whose id starts the same
        ours = (p for p in refs.glob(f"{run}*.lock") if p.name == f"{run}.lock" or p.name.startswith(f"{run}--"))
        found.extend(sorted(p for p in ours if p.is_file()))
    return found


def remove_stale_locks(common_dir: Path, worktrees_dir: Path, run: str) -> list[str]:
    """Remove the run's git lock files (call only once the run's processes are gone, see the module docstring).

    Returns the removed files, relative to the git common dir.
    """
    removed = []
    for path in run_lock_files(common_dir, worktrees_dir, run):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path.relative_to(common_dir).as_posix())
    return removed
