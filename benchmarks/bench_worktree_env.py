"""A task worktree with `[workspace] link` of a 20,000-file node_modules vs without it, side by side.

The repo has 500 tracked files and an untracked, ignored `node_modules` of 1,000 packages x 20 files, as an
installed JavaScript project has. Measured: lease, then prepare, of one fresh worktree (released afterwards,
unmeasured), the first two variants in interleaved rounds:

- no workspace: `Workspace.lease` alone; the worktree lacks node_modules.
- link: lease, then `prepare` with link = ["node_modules"] (one symlink, one git call; expected ratio <= 1.1).
- copy: lease, then `prepare` with copy = ["node_modules"] (for contrast: what copying would cost).

Setup commands are measured separately (they are the project's own cost): `run_setup` with one trivial
command, vs the same command started bare with asyncio, i.e. what squad's runner adds per command (process
group, output capture, the worktree's environment).

Set SQUAD_BENCH_DIR to choose the file system (default: the temp dir; /dev/shm for tmpfs).
Run: `python benchmarks/run.py worktree_env`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import git

from squad.config import Settings, WorkspaceSettings
from squad.infra.workspace import Workspace
from squad.infra.worktree_env import prepare, run_setup

PACKAGES, PER_PACKAGE = 1000, 20
TRACKED = 500
ROUNDS = 9
COPY_ROUNDS = 2
SETUP_ROUNDS = 10


def make_repo(parent: Path) -> Path:
    root = parent / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    for i in range(TRACKED):
        folder = root / "src" / f"m{i // 50:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:03d}.js").write_text(f"export const v = {i};\n")
    (root / ".gitignore").write_text("node_modules/\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "tracked files")
    for p in range(PACKAGES):
        pkg = root / "node_modules" / f"pkg{p:04d}"
        (pkg / "lib").mkdir(parents=True)
        (pkg / "package.json").write_text(f'{{"name": "pkg{p:04d}", "version": "1.0.0"}}\n')
        for f in range(PER_PACKAGE - 1):
            (pkg / "lib" / f"f{f:02d}.js").write_text(f"module.exports = {f};\n")
    return root


def measure(ws: Workspace, settings: WorkspaceSettings | None, n: int) -> tuple[float, float]:
    """ms for the lease of a fresh worktree and for `prepare` after it; released afterwards, unmeasured."""
    run = f"20261122-000000-{n:04d}"
    t0 = time.perf_counter()
    lease = ws.lease(run, "t")
    t1 = time.perf_counter()
    if settings is not None:
        prepare(lease.path, ws.root, settings)
    t2 = time.perf_counter()
    ws.release(lease, delete_branch=True)
    return (t1 - t0) * 1000, (t2 - t1) * 1000


def med(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 2]


async def setup_overhead(path: Path) -> tuple[float, float]:
    """Median ms of `python -c pass` through run_setup, and started bare with asyncio."""
    settings = Settings(workspace=WorkspaceSettings(setup=[f"{sys.executable} -c pass"]))
    squad_ms, bare_ms = [], []
    for _ in range(SETUP_ROUNDS):
        t0 = time.perf_counter()
        report = await run_setup(path, settings)
        squad_ms.append((time.perf_counter() - t0) * 1000)
        assert report.ok, report.failure_text()
        t0 = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass", cwd=path)
        await proc.wait()
        bare_ms.append((time.perf_counter() - t0) * 1000)
    return med(squad_ms), med(bare_ms)


def main() -> None:
    parent = Path(tempfile.mkdtemp(prefix="squad-bench-", dir=os.environ.get("SQUAD_BENCH_DIR")))
    try:
        root = make_repo(parent)
        ws = Workspace(root)
        variants: dict[str, WorkspaceSettings | None] = {
            "no workspace": None,
            "link node_modules": WorkspaceSettings(link=["node_modules"]),
            "copy node_modules": WorkspaceSettings.model_validate({"copy": ["node_modules"]}),
        }
        lease_ms: dict[str, list[float]] = {name: [] for name in variants}
        total_ms: dict[str, list[float]] = {name: [] for name in variants}
        prepare_ms: dict[str, list[float]] = {name: [] for name in variants}
        n = 0
        measure(ws, WorkspaceSettings(link=["node_modules"]), 9999)  # warm caches; the first link adds an exclude
        names = [name for name in variants if name != "copy node_modules"]
        # Interleaved, so machine load drifts evenly, and rotated, so neither variant always follows the other:
        # a lease's time varied with what the release before it had removed. The copy contrast runs last.
        order = [names[r % 2 :] + names[: r % 2] for r in range(ROUNDS)] + [["copy node_modules"]] * COPY_ROUNDS
        for round_names in order:
            for name in round_names:
                a, b = measure(ws, variants[name], n)
                lease_ms[name].append(a)
                prepare_ms[name].append(b)
                total_ms[name].append(a + b)
                n += 1
        base = med(total_ms["no workspace"])
        print(f"repo: {TRACKED} tracked files, node_modules of {PACKAGES * PER_PACKAGE:,} files, in {parent}")
        print(f"median of {ROUNDS} rounds (copy: {COPY_ROUNDS}), ms")
        print(f"{'variant':<20}{'lease':>9}{'prepare':>9}{'total':>9}{'ratio':>8}")
        for name in variants:
            total = med(total_ms[name])
            print(
                f"{name:<20}{med(lease_ms[name]):>9.1f}{med(prepare_ms[name]):>9.1f}{total:>9.1f}{total / base:>8.2f}"
            )
        print("ratio = total / no workspace's total (lower is faster)")

        lease = ws.lease("20261122-000000-setup", "t")
        try:
            squad_ms, bare_ms = asyncio.run(setup_overhead(lease.path))
        finally:
            ws.release(lease, delete_branch=True)
        print(
            f"setup, one `python -c pass` (median of {SETUP_ROUNDS}): run_setup {squad_ms:.1f} ms, "
            f"bare asyncio {bare_ms:.1f} ms, ratio {squad_ms / bare_ms:.2f}"
        )
    finally:
        shutil.rmtree(parent, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
