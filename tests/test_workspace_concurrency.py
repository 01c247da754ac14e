"""8 concurrent leases on a 5,000-file repo, from threads and from separate processes (real filelock).

The repo lives on tmpfs (/dev/shm) when there is one: creating 40,000 files on this CI VM's disk costs
~0.7 ms each in the kernel, which would time the disk, not squad. The git operations are the same.

The worktree lock is checked directly, not by whether the leases happen to succeed (`Workspace._add` retries
a failed `git worktree add`, which hides most races): git's own trace (GIT_TRACE2_EVENT, one file per git
process with its start and exit) shows every `git worktree add/remove/prune` of the test, and no two may
overlap. Without the lock they do, every time.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from conftest import git

from squad.infra.workspace import Workspace

N_FILES = 5000
N_TASKS = 8


@pytest.fixture(scope="module")
def big_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A repo of 5,000 small files in 50 folders, one commit (one `git add`, so it is quick to build)."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        holder = Path(tempfile.mkdtemp(prefix="squad-test-", dir=shm))
    else:
        holder = tmp_path_factory.mktemp("big")
    root = holder / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    for d in range(50):
        folder = root / f"pkg{d:02d}"
        folder.mkdir()
        for f in range(N_FILES // 50):
            (folder / f"mod{f:03d}.py").write_text(f"VALUE = {d * 1000 + f}\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "5000 files")
    try:
        yield root
    finally:
        shutil.rmtree(holder, ignore_errors=True)


@pytest.fixture
def git_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder where every git process (of this test, and of its child processes) writes its trace2 events."""
    folder = tmp_path / "trace2"
    folder.mkdir()
    monkeypatch.setenv("GIT_TRACE2_EVENT", str(folder))
    return folder


def worktree_changes(trace: Path) -> list[tuple[datetime, datetime, str]]:
    """(start, exit, argv) of every `git worktree add/remove/prune` process in the trace, by start."""
    found = []
    for path in trace.iterdir():
        events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        start = next((e for e in events if e["event"] == "start"), None)
        end = next((e for e in events if e["event"] in ("atexit", "exit")), None)
        if start is None or end is None:
            continue
        argv = [a for a in start["argv"][1:] if a not in ("-c", "core.hooksPath=/dev/null")]
        if argv[:1] == ["worktree"] and argv[1:2] in (["add"], ["remove"], ["prune"]):
            found.append((_when(start["time"]), _when(end["time"]), " ".join(argv[:2])))
    return sorted(found)


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def assert_one_at_a_time(trace: Path, adds: int) -> None:
    """Every worktree change ran alone: each one started after the one before it had exited."""
    changes = worktree_changes(trace)
    assert sum(1 for c in changes if c[2] == "worktree add") >= adds
    overlaps = [(a, b) for a, b in itertools.pairwise(changes) if b[0] < a[1]]
    assert not overlaps, f"{len(overlaps)} worktree changes overlapped, e.g. {overlaps[0]}"


def assert_clean(root: Path) -> None:
    assert git(root, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert git(root, "for-each-ref", "refs/heads/squad/") == ""
    assert git(root, "status", "--porcelain") == ""


@pytest.mark.timeout(120)
def test_eight_threads_lease_commit_release(big_repo: Path, git_trace: Path) -> None:
    ws = Workspace(big_repo)
    run = "20261122-070000-thrd"
    barrier = threading.Barrier(N_TASKS)
    shas: dict[str, str | None] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            barrier.wait()  # all leases start at once
            lease = ws.lease(run, f"task-{i}")
            assert (lease.path / "pkg07" / "mod042.py").read_text() == "VALUE = 7042\n"
            (lease.path / f"pkg{i:02d}" / "mod000.py").write_text(f"VALUE = 'task {i}'\n")
            shas[lease.branch] = ws.commit(lease, agent=f"agent{i}", message=f"task {i}")
            changed = git(big_repo, "show", "--name-only", "--format=", lease.branch).split()
            assert changed == [f"pkg{i:02d}/mod000.py"]
            ws.release(lease, delete_branch=True)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(N_TASKS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(shas) == N_TASKS and all(shas.values())
    assert_clean(big_repo)
    assert_one_at_a_time(git_trace, adds=N_TASKS)


WORKER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from squad.infra.workspace import Workspace

    root, run, task = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    ws = Workspace(root)
    lease = ws.lease(run, task)
    (lease.path / "pkg00" / "mod000.py").write_text(task + "\\n")
    sha = ws.commit(lease, agent=task, message=task)
    print(lease.branch, sha)
    ws.release(lease, delete_branch=True)
    """
)


@pytest.mark.timeout(120)
def test_eight_processes_lease_commit_release(big_repo: Path, git_trace: Path) -> None:
    run = "20261122-070000-proc"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(big_repo), run, f"task-{i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(N_TASKS)
    ]
    outputs = [p.communicate(timeout=110) for p in procs]
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
        branch, sha = out.split()
        assert branch.startswith(f"squad/{run}--task-") and len(sha) == 40
        # The commit object outlives its deleted branch: check it carries this process's own message.
        assert git(big_repo, "log", "-1", "--format=%s", sha).strip() == branch.split("--")[1]
    assert_clean(big_repo)
    assert_one_at_a_time(git_trace, adds=N_TASKS)
