"""What a resumed run repairs before it goes on, and the git steps that must be safe to repeat.

Real processes killed with real signals, real git repositories and worktrees: the process registry (a killed squad's
commands are killed, its git commands waited for, a reused pid never signalled), stale git locks (only the run's
own are removed), the test-only kill seam (off unless switched on), and merge/commit steps repeated after a kill.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import git

from squad.infra import processes
from squad.infra.git import run_git
from squad.infra.git_locks import remove_stale_locks
from squad.infra.process import run_command
from squad.infra.processes import ProcessRegistry
from squad.infra.workspace import Workspace

PY = sys.executable


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(pid: int) -> bool:
    for _ in range(200):  # killed with SIGKILL: gone as soon as the kernel has delivered it
        if _gone(pid):
            return True
        time.sleep(0.01)
    return False


# A squad stand-in: records what it runs in a registry, like a run does, and is killed by the test-only seam once
# the command has printed (so the command and the helper it started are running when it dies).
SQUAD_STANDIN = """
import asyncio, sys
from pathlib import Path
from squad.infra import processes
from squad.infra.process import run_command

async def main():
    with processes.tracking(processes.ProcessRegistry(Path(sys.argv[1]))):
        await run_command(sys.argv[2:], cwd=".", timeout_s=60, max_output_bytes=10_000)

asyncio.run(main())
"""
COMMAND = """import subprocess, sys, time
helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(helper.pid, flush=True)
time.sleep(60)
"""


def test_a_killed_squads_command_and_its_children_are_killed_on_resume(tmp_path: Path) -> None:
    procs = tmp_path / "procs"
    env = {**os.environ, "SQUAD_TEST_FAULTS": "1", "SQUAD_TEST_KILL_AT": "point:command_output:1"}
    standin = subprocess.run(
        [PY, "-c", SQUAD_STANDIN, str(procs), PY, "-c", COMMAND], cwd=tmp_path, env=env, timeout=60
    )
    assert standin.returncode == -signal.SIGKILL  # killed at the seam, its command running
    (record,) = procs.glob("*.json")
    command_pid = json.loads(record.read_text())["pid"]
    group = [p.pid for p in psutil.process_iter() if _pgid(p.pid) == command_pid]
    assert command_pid in group and len(group) == 2  # the command and its helper outlived squad

    reaped = ProcessRegistry(procs).reap()

    # both found by the command's mark (and the group killed too): each reported once
    assert sorted((r.pid, r.action) for r in reaped) == sorted((pid, "killed") for pid in group)
    assert all(_wait_gone(pid) for pid in group)
    assert list(procs.iterdir()) == []


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _record(procs: Path, proc: subprocess.Popen[bytes], *, session: bool, older: bool = False) -> None:
    """Record `proc` as a killed squad process would have (`older`: as a process that had the same pid before)."""
    path = ProcessRegistry(procs).add(proc.pid, ["git", "something"], session=session)
    assert path is not None
    record = json.loads(path.read_text())
    record["owner"] = [1, 0.0]  # a squad process that is gone
    if older:
        record["started"] -= 100
    path.write_text(json.dumps(record))


def test_a_reused_pid_is_never_signalled(tmp_path: Path) -> None:
    procs = tmp_path / "procs"
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        _record(procs, stranger, session=True, older=True)  # the record of an older process with the same pid
        assert ProcessRegistry(procs).reap() == []
        assert stranger.poll() is None  # alive
        assert list(procs.iterdir()) == []
    finally:
        stranger.kill()
        stranger.wait()


def test_a_mark_finds_a_command_killed_before_its_pid_was_recorded_and_children_in_new_sessions(
    tmp_path: Path,
) -> None:
    """The record written BEFORE a command starts (its mark in the command's environment) is enough to end it
    and everything it started, even a child that moved to a session of its own (out of reach of the group kill)."""
    procs = tmp_path / "procs"
    mark = ProcessRegistry(procs).expect(["python", "-c", "..."])
    env = {**os.environ, processes.MARK: mark.token}
    # a command whose squad died before writing its pid record; it started a grandchild in a new session
    code = "import subprocess, sys, time; subprocess.Popen(['sleep', '60'], start_new_session=True); time.sleep(60)"
    leader = subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True)
    other = subprocess.Popen(["sleep", "60"], start_new_session=True)  # not marked: never touched
    try:
        deadline = time.monotonic() + 10
        while len(processes._marked(mark.token)) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        marked = processes._marked(mark.token)
        assert leader.pid in marked and len(marked) == 2
        record = json.loads(mark.path.read_text())
        record["owner"] = [1, 0.0]  # written by a squad process that is gone
        mark.path.write_text(json.dumps(record))
        reaped = ProcessRegistry(procs).reap()
        assert sorted(r.pid for r in reaped) == sorted(marked)
        assert leader.wait(timeout=10) == -signal.SIGKILL
        assert processes._marked(mark.token) == [] and list(procs.iterdir()) == []
        assert other.poll() is None
    finally:
        for proc in (leader, other):
            proc.kill()
            proc.wait()


def test_a_left_git_command_is_waited_for_then_killed(tmp_path: Path) -> None:
    procs = tmp_path / "procs"
    short = subprocess.Popen([PY, "-c", "import time; time.sleep(0.3)"])
    long = subprocess.Popen(["sleep", "60"])
    try:
        _record(procs, short, session=False)
        _record(procs, long, session=False)
        reaped = ProcessRegistry(procs).reap(git_grace_s=1.0)
        assert sorted((r.pid, r.action) for r in reaped) == sorted([(short.pid, "exited"), (long.pid, "killed")])
        assert long.wait(timeout=10) == -signal.SIGKILL
    finally:
        for proc in (short, long):
            proc.kill()
            proc.wait()


def test_records_exist_while_a_run_has_processes_running_and_only_then(tmp_path: Path, repo: Path) -> None:
    procs = tmp_path / "procs"
    lister = [PY, "-c", f"import os; print(sorted(os.listdir({str(procs)!r})), os.getpid())"]

    async def inside() -> str:
        with processes.tracking(ProcessRegistry(procs)):
            assert run_git(repo, "status", "--short").returncode == 0
            out = await run_command(lister, cwd=tmp_path, timeout_s=30, max_output_bytes=10_000)
            return out.output.text(1000)

    names, pid = asyncio.run(inside()).rsplit(" ", 1)
    assert f"'{pid.strip()}.json'" in names  # the command saw its own record
    assert list(procs.iterdir()) == []  # and every record went with its process
    assert processes.current() is None
    assert ProcessRegistry(procs).reap() == []
    # outside a run nothing is recorded anywhere
    asyncio.run(run_command([*lister[:2], "print(1)"], cwd=tmp_path, timeout_s=30, max_output_bytes=1000))
    assert list(procs.iterdir()) == []


def test_only_the_runs_own_git_locks_are_removed(repo: Path) -> None:
    ws = Workspace(repo)
    mine = "20261122-063000-abcd"
    other = "20261122-063000-abce"
    leases = [ws.lease(mine, "t1"), ws.integration(mine), ws.lease(other, "t1")]
    admin = {w.task + w.run: Path(git(w.path, "rev-parse", "--absolute-git-dir").strip()) for w in leases}
    planted = [
        admin["t1" + mine] / "index.lock",
        admin["t1" + mine] / "HEAD.lock",
        admin["_integration" + mine] / "index.lock",
        ws.common_dir / "refs" / "heads" / "squad" / f"{mine}--t1.lock",
        ws.common_dir / "refs" / "heads" / "squad" / f"{mine}.lock",
    ]
    kept = [
        admin["t1" + other] / "index.lock",  # another run's
        ws.common_dir / "refs" / "heads" / "squad" / f"{other}--t1.lock",
        ws.common_dir / "config.lock",  # the repository's: someone else may hold it
        ws.common_dir / "index.lock",
    ]
    for path in planted + kept:
        path.write_bytes(b"DIRC")
    with pytest.raises(AssertionError, match=r"index\.lock': File exists"):
        git(leases[0].path, "add", "-A")  # what every resume met

    removed = remove_stale_locks(ws.common_dir, ws.worktrees_dir, mine)

    assert sorted(removed) == sorted(p.relative_to(ws.common_dir).as_posix() for p in planted)
    assert all(not p.exists() for p in planted) and all(p.exists() for p in kept)
    for path in kept:
        path.unlink()
    (leases[0].path / "new.txt").write_text("x\n")
    assert ws.commit(leases[0], agent="backend", message="works again")


def test_the_kill_seam_is_off_unless_switched_on(tmp_path: Path) -> None:
    code = "from squad.infra import faults\nfor _ in range(3): faults.point('here')\nprint('survived')"
    base = {k: v for k, v in os.environ.items() if not k.startswith("SQUAD_TEST_")}
    for extra, rc in (
        ({"SQUAD_TEST_KILL_AT": "point:here:2"}, 0),  # the where, without the test switch: nothing
        ({"SQUAD_TEST_FAULTS": "1"}, 0),
        ({"SQUAD_TEST_FAULTS": "1", "SQUAD_TEST_KILL_AT": "point:here:4"}, 0),
        ({"SQUAD_TEST_FAULTS": "1", "SQUAD_TEST_KILL_AT": "point:here:2"}, -signal.SIGKILL),
    ):
        out = subprocess.run([PY, "-c", code], env={**base, **extra}, capture_output=True, text=True, timeout=60)
        assert out.returncode == rc, (extra, out.stderr)


# ---------------------------------------------------------------------------------------------------------
# git steps repeated after a kill


def test_merging_an_already_merged_commit_again_changes_nothing(repo: Path) -> None:
    ws = Workspace(repo)
    run = "20261122-063000-abcd"
    task = ws.lease(run, "t1")
    (task.path / "a.txt").write_text("a\n")
    sha = ws.commit(task, agent="backend", message="a")
    assert sha is not None
    lease = ws.integration(run)
    first = ws.merge_into(lease, sha, message="merge t1")
    again = ws.merge_into(lease, sha, message="merge t1")  # a resume after a kill before `merged` was journaled
    assert first.ok and again.ok and again.sha == first.sha


def test_a_half_done_merge_and_stray_changes_do_not_stop_the_next_merge(repo: Path) -> None:
    ws = Workspace(repo)
    run = "20261122-063000-abcd"
    commits = []
    for name in ("t1", "t2"):
        task = ws.lease(run, name)
        (task.path / f"{name}.txt").write_text(f"{name}\n")
        commits.append(ws.commit(task, agent="backend", message=name))
    lease = ws.integration(run)
    # a merge killed before it committed: MERGE_HEAD and a staged change left behind, and a stray edit
    git(lease.path, "merge", "--no-ff", "--no-commit", str(commits[0]))
    (lease.path / "README.md").write_text("half-written\n")
    result = ws.merge_into(lease, str(commits[1]), message="merge t2")
    assert result.ok
    assert git(lease.path, "status", "--porcelain").strip() == ""
    assert sorted(git(repo, "ls-tree", "--name-only", f"squad/{run}").split()) == [
        "README.md",
        "t2.txt",
    ]
    assert git(repo, "show", f"squad/{run}:README.md") == "# demo\n"

    # a task's dependencies: a leftover merge in its worktree is abandoned, then each is merged once
    dependent = ws.lease(run, "t3", str(commits[0]))
    git(dependent.path, "merge", "--no-ff", "--no-commit", str(commits[1]))
    assert ws.merge_commits(dependent, [str(commits[1])]) == []
    assert ws.merge_commits(dependent, [str(commits[1])]) == []  # again: already in it
    assert sorted(git(dependent.path, "ls-files").split()) == ["README.md", "t1.txt", "t2.txt"]


def test_a_ledger_commit_killed_before_the_work_tree_followed_is_completed(repo: Path) -> None:
    ws = Workspace(repo)
    run = "20261122-063000-abcd"
    lease = ws.integration(run)
    path = "decisions/2026/11/2026-11-22-run.md"
    data = b"# Decisions\n"
    sha = ws.commit_file(lease, path, data, message="decisions")
    assert sha is not None
    # what a kill between the commit and the work tree's reset leaves: committed, the work tree behind
    (lease.path / path).unlink()
    assert git(lease.path, "status", "--porcelain").strip() == f"D {path}"

    assert ws.commit_file(lease, path, data, message="decisions") is None  # decided by the branch: nothing to do
    assert (lease.path / path).read_bytes() == data  # and the work tree follows the branch again
    assert ws.head(lease.path) == sha
