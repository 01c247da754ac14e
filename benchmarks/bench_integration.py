"""Integration benchmark: merging 8 approved task branches into a run branch, two ways, side by side.

`Workspace.merge` leases the run's integration worktree for every merge (under the worktrees lock);
`Workspace.merge_into` merges into one integration lease, as the coordinator does since it merges a
whole run. Both merge the same 8 one-file commits on a fresh run each round; ratios are medians.
Run: `python benchmarks/run.py integration` (or this file directly).
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import git  # noqa: E402

from squad.domain.ids import run_branch  # noqa: E402
from squad.infra.workspace import Workspace  # noqa: E402

TASKS = 8
ROUNDS = 5


def make_repo(parent: Path) -> Path:
    """A repo of 8 small packages, like the one bench_run uses."""
    root = parent / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    for i in range(TASKS):
        (root / f"pkg{i}").mkdir()
        (root / f"pkg{i}" / "mod.py").write_text(f"VALUE = {i}\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "project")
    return root


def task_commits(ws: Workspace, run: str) -> list[str]:
    """8 task branches of `run`, each with one commit touching its own file."""
    shas = []
    for i in range(TASKS):
        lease = ws.lease(run, f"t{i}")
        (lease.path / f"pkg{i}" / "mod.py").write_text(f"VALUE = {i + 100}\n")
        sha = ws.commit(lease, agent=f"w{i}", message=f"task {i}")
        assert sha is not None
        shas.append(sha)
    return shas


def timed(ws: Workspace, run: str, one_lease: bool) -> float:
    shas = task_commits(ws, run)
    t0 = time.perf_counter()
    if one_lease:
        lease = ws.integration(run)
        results = [ws.merge_into(lease, sha) for sha in shas]
    else:
        results = [ws.merge(run_branch(run), sha) for sha in shas]
    elapsed = time.perf_counter() - t0
    assert all(r.ok for r in results)
    return elapsed


def main() -> None:
    parent = Path(tempfile.mkdtemp(prefix="squad-bench-integration-"))
    try:
        ws = Workspace(make_repo(parent))
        per_merge: list[float] = []
        once: list[float] = []
        for r in range(ROUNDS):  # alternate, so drift on a shared machine hits both alike
            per_merge.append(timed(ws, f"20260101-00000{r}-aaaa", one_lease=False))
            once.append(timed(ws, f"20260101-00000{r}-bbbb", one_lease=True))
        a, b = statistics.median(per_merge), statistics.median(once)
        print(f"merge {TASKS} task branches into the run branch (median of {ROUNDS} alternating rounds)")
        print(f"   merge (leases the integration worktree per merge)   {a * 1000:6.0f} ms")
        print(f"   merge_into (one integration lease)                  {b * 1000:6.0f} ms   ratio {b / a:.2f}")
    finally:
        shutil.rmtree(parent, ignore_errors=True)


if __name__ == "__main__":
    main()
