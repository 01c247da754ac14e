"""Lease + release of a worktree on a 5,000-file repo: three checkout strategies, side by side in one run.

- lock-held add: plain `git worktree add -b` (checks out every file) with the worktree lock held throughout,
  which is what a naive serialized design does; concurrent leases queue behind each other's checkout.
- squad (default): `Workspace.lease` — `git worktree add --no-checkout` under the lock, then
  `git reset --hard` outside it, so the checkouts of concurrent leases overlap. Same files as above.
- sparse: `--no-checkout` add, then a sparse pattern naming only the task's folder (100 files) and
  `git -c core.sparseCheckout=true reset --hard`: the other 4,900 files stay in the index, marked
  skip-worktree, so commits keep them; nothing is written to the repo's config.

Set SQUAD_BENCH_DIR to choose the file system (default: the temp dir; /dev/shm for tmpfs).
Run: `python benchmarks/run.py workspace`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import filelock
from _common import git

from squad.infra.workspace import Lease, Workspace

N_DIRS, PER_DIR = 50, 100
ROUNDS = 4
CONCURRENT = 8


def make_repo(parent: Path) -> Path:
    root = parent / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    for d in range(N_DIRS):
        folder = root / f"pkg{d:02d}"
        folder.mkdir()
        for f in range(PER_DIR):
            (folder / f"mod{f:03d}.py").write_text(f"VALUE = {d * 1000 + f}\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "5000 files")
    return root


class Raw:
    """The two comparison strategies, in plain git under the same lock file as Workspace."""

    def __init__(self, ws: Workspace, sparse: bool) -> None:
        self.ws, self.sparse = ws, sparse

    def _lock(self) -> filelock.FileLock:
        self.ws.locks_dir.mkdir(parents=True, exist_ok=True)
        return filelock.FileLock(self.ws.locks_dir / "worktrees.lock", timeout=300)

    def lease(self, run: str, task: str, index: int) -> Path:
        path = self.ws.worktree_path(run, task)
        path.parent.mkdir(parents=True, exist_ok=True)
        branch = f"squad/{run}--{task}"
        if not self.sparse:
            with self._lock():
                git(self.ws.root, "worktree", "add", "-q", "-b", branch, str(path), "HEAD")
            return path
        with self._lock():
            git(self.ws.root, "worktree", "add", "-q", "--no-checkout", "-b", branch, str(path), "HEAD")
        git_dir = Path(git(path, "rev-parse", "--absolute-git-dir").strip())
        (git_dir / "info").mkdir(exist_ok=True)
        (git_dir / "info" / "sparse-checkout").write_text(f"/pkg{index % N_DIRS:02d}/\n")
        git(path, "-c", "core.sparseCheckout=true", "reset", "--hard", "-q")
        return path

    def release(self, run: str, task: str) -> None:
        with self._lock():
            git(self.ws.root, "worktree", "remove", "--force", str(self.ws.worktree_path(run, task)))
            git(self.ws.root, "branch", "-D", "-q", f"squad/{run}--{task}")


def strategies(ws: Workspace) -> dict[str, tuple[Callable[[str, str, int], object], Callable[[str, str], None]]]:
    leases: dict[tuple[str, str], Lease] = {}

    def squad_lease(run: str, task: str, index: int) -> object:
        leases[run, task] = ws.lease(run, task)
        return leases[run, task]

    def squad_release(run: str, task: str) -> None:
        ws.release(leases.pop((run, task)), delete_branch=True)

    full, sparse = Raw(ws, sparse=False), Raw(ws, sparse=True)
    return {
        "lock-held add": (full.lease, full.release),
        "squad (default)": (squad_lease, squad_release),
        "sparse (1 dir)": (sparse.lease, sparse.release),
    }


def sequential(
    lease: Callable[[str, str, int], object], release: Callable[[str, str], None], n: int
) -> tuple[float, float]:
    run = f"20261122-000000-s{n:03d}"[:20]
    t0 = time.perf_counter()
    lease(run, "t", n)
    t1 = time.perf_counter()
    release(run, "t")
    return (t1 - t0) * 1000, (time.perf_counter() - t1) * 1000


def concurrent(lease: Callable[[str, str, int], object], release: Callable[[str, str], None], tag: str) -> float:
    run = f"20261122-000000-{tag}"
    barrier = threading.Barrier(CONCURRENT)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            barrier.wait()
            lease(run, f"t{i}", i)
            release(run, f"t{i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(CONCURRENT)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return (time.perf_counter() - t0) * 1000


def main() -> None:
    parent = Path(tempfile.mkdtemp(prefix="squad-bench-", dir=os.environ.get("SQUAD_BENCH_DIR")))
    try:
        root = make_repo(parent)
        ws = Workspace(root)
        strats = strategies(ws)
        lease_ms: dict[str, list[float]] = {name: [] for name in strats}
        release_ms: dict[str, list[float]] = {name: [] for name in strats}
        n = 0
        for _ in range(ROUNDS):  # interleaved, so machine load drifts evenly over the strategies
            for name, (lease, release) in strats.items():
                a, b = sequential(lease, release, n)
                lease_ms[name].append(a)
                release_ms[name].append(b)
                n += 1
        wall = {
            name: concurrent(lease, release, f"c{i:03d}") for i, (name, (lease, release)) in enumerate(strats.items())
        }

        def med(xs: list[float]) -> float:
            return sorted(xs)[len(xs) // 2]

        base_seq = med(lease_ms["lock-held add"]) + med(release_ms["lock-held add"])
        base_wall = wall["lock-held add"]
        print(f"repo: {N_DIRS * PER_DIR} files in {parent} (median of {ROUNDS} sequential rounds)")
        print(
            f"{'strategy':<18}{'lease ms':>10}{'release ms':>12}{'ratio':>8}   {CONCURRENT} concurrent wall ms  ratio"
        )
        for name in strats:
            seq = med(lease_ms[name]) + med(release_ms[name])
            print(
                f"{name:<18}{med(lease_ms[name]):>10.0f}{med(release_ms[name]):>12.0f}{seq / base_seq:>8.2f}"
                f"   {wall[name]:>23.0f}  {wall[name] / base_wall:.2f}"
            )
        print("ratio = time / lock-held add (lower is faster)")
    finally:
        shutil.rmtree(parent, ignore_errors=True)


if __name__ == "__main__":
    main()
