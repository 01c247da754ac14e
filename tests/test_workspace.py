"""Workspace on real git: leases, commits, releases, merges and gc, and that the user's tree is never touched."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import filelock
import pytest
from conftest import git

from squad.domain.ids import RUN_ID_RE, new_run_id
from squad.errors import UsageError, WorkspaceError
from squad.infra.gc import gc
from squad.infra.workspace import Workspace

RUN = "20261122-063107-a1b2"


def squad_branches(root: Path) -> list[str]:
    return git(root, "for-each-ref", "--format=%(refname:short)", "refs/heads/squad/").split()


def worktree_paths(root: Path) -> list[str]:
    return [
        line[9:] for line in git(root, "worktree", "list", "--porcelain").splitlines() if line.startswith("worktree ")
    ]


def user_state(root: Path) -> dict[str, str]:
    """Everything about the user's side of the repo that squad must leave alone."""
    return {
        "head": git(root, "rev-parse", "HEAD"),
        "branch": git(root, "symbolic-ref", "HEAD"),
        "status": git(root, "status", "--porcelain=v1", "--untracked-files=all"),
        "diff": git(root, "diff"),
        "cached": git(root, "diff", "--cached"),
        "readme": (root / "README.md").read_text(),
        "main": git(root, "rev-parse", "refs/heads/main"),
    }


def test_new_run_id_shape() -> None:
    ids = {new_run_id() for _ in range(50)}
    assert all(RUN_ID_RE.fullmatch(i) for i in ids)
    assert len(ids) > 1


def test_lease_commit_release(repo: Path) -> None:
    ws = Workspace(repo)
    base = git(repo, "rev-parse", "HEAD").strip()
    lease = ws.lease(RUN, "add-api")
    assert lease.branch == f"squad/{RUN}--add-api"
    assert lease.base_commit == base
    assert lease.path == Path(
        git(repo, "rev-parse", "--path-format=absolute", "--git-common-dir").strip()
    ).resolve() / (f"squad/worktrees/{RUN}/add-api")
    assert (lease.path / "README.md").read_text() == "# demo\n"

    (lease.path / "api.py").write_text("def health():\n    return 'ok'\n")
    (lease.path / "README.md").unlink()
    sha = ws.commit(lease, agent="backend", message="Add /health\n\nA small endpoint.")
    assert sha == git(repo, "rev-parse", lease.branch).strip()
    assert git(repo, "log", "-1", "--format=%an|%ae|%cn", sha).strip() == (
        "backend (squad)|backend@squad.invalid|backend (squad)"
    )
    assert git(repo, "log", "-1", "--format=%P", sha).strip() == base
    body = git(repo, "log", "-1", "--format=%B", sha)
    assert body.startswith("Add /health\n\nA small endpoint.\n")
    trailers = git(repo, "log", "-1", "--format=%(trailers:only,unfold)", sha)
    assert f"Squad-Run: {RUN}" in trailers and "Squad-Agent: backend" in trailers
    assert git(repo, "show", "--name-status", "--format=", sha).split() == ["D", "README.md", "A", "api.py"]

    ws.release(lease, delete_branch=True)
    assert not lease.path.exists()
    assert worktree_paths(repo) == [str(repo.resolve())]
    assert squad_branches(repo) == []


def test_commit_without_changes_returns_none(repo: Path) -> None:
    ws = Workspace(repo)
    lease = ws.lease(RUN, "noop")
    assert ws.commit(lease, agent="backend", message="nothing") is None
    assert git(repo, "rev-parse", lease.branch).strip() == lease.base_commit
    ws.release(lease, delete_branch=True)


def test_commits_in_parallel_worktrees_keep_their_own_messages(repo: Path) -> None:
    ws = Workspace(repo)
    leases = [ws.lease(RUN, f"t{i}") for i in range(3)]
    for i, lease in enumerate(leases):
        (lease.path / f"f{i}.txt").write_text(str(i))
    shas = [ws.commit(lease, agent=f"agent{i}", message=f"message {i}") for i, lease in enumerate(leases)]
    for i, sha in enumerate(shas):
        assert sha is not None
        assert git(repo, "log", "-1", "--format=%s|%an", sha).strip() == f"message {i}|agent{i} (squad)"
    for lease in leases:
        ws.release(lease, delete_branch=True)


def test_user_branch_head_and_tree_untouched(repo: Path) -> None:
    (repo / "README.md").write_text("# demo\nuncommitted edit\n")
    (repo / "notes.txt").write_text("untracked\n")
    (repo / "staged.txt").write_text("staged\n")
    git(repo, "add", "staged.txt")
    before = user_state(repo)

    ws = Workspace(repo)
    lease = ws.lease(RUN, "edit")
    # The uncommitted edit stays in the user's tree; the worktree starts from the commit.
    assert (lease.path / "README.md").read_text() == "# demo\n"
    assert not (lease.path / "notes.txt").exists()
    (lease.path / "README.md").write_text("# changed by agent\n")
    assert ws.commit(lease, agent="backend", message="edit readme") is not None
    assert ws.merge(f"squad/{RUN}", lease.branch).ok
    ws.release(lease)
    gc(ws, runs=[RUN], run_branches=True)

    assert user_state(repo) == before
    assert (repo / "notes.txt").read_text() == "untracked\n"
    assert squad_branches(repo) == []


def test_lease_is_idempotent_and_resumes(repo: Path) -> None:
    ws = Workspace(repo)
    first = ws.lease(RUN, "resume", base="main")
    (first.path / "wip.txt").write_text("half done\n")
    assert ws.lease(RUN, "resume") == first
    assert (first.path / "wip.txt").exists(), "reusing a lease must not reset its files"

    sha = ws.commit(first, agent="backend", message="wip")
    # main moves on; the task keeps the base it started from.
    (repo / "later.txt").write_text("x")
    git(repo, "add", "later.txt")
    git(repo, "commit", "-q", "-m", "later")
    ws.release(first)  # keep the branch
    again = ws.lease(RUN, "resume")
    assert again.base_commit == first.base_commit
    assert git(again.path, "rev-parse", "HEAD").strip() == sha
    assert (again.path / "wip.txt").read_text() == "half done\n"
    assert not (again.path / "later.txt").exists()
    ws.release(again, delete_branch=True)
    assert squad_branches(repo) == []


def test_failed_add_leaves_no_branch(repo: Path) -> None:
    ws = Workspace(repo)
    blocker = ws.worktree_path(RUN, "blocked")
    blocker.mkdir(parents=True)
    (blocker / "precious.txt").write_text("not squad's\n")
    with pytest.raises(WorkspaceError, match="could not create worktree"):
        ws.lease(RUN, "blocked")
    assert squad_branches(repo) == []
    assert (blocker / "precious.txt").read_text() == "not squad's\n", "a folder squad did not make is left alone"
    assert worktree_paths(repo) == [str(repo.resolve())]


def test_bad_ids_and_bad_base_are_clear_errors(repo: Path) -> None:
    ws = Workspace(repo)
    with pytest.raises(UsageError, match="invalid task id"):
        ws.lease(RUN, "../escape")
    with pytest.raises(UsageError, match="invalid run id"):
        ws.lease("a--b", "t")
    with pytest.raises(WorkspaceError, match="cannot resolve 'nope'"):
        ws.lease(RUN, "t", base="nope")
    assert squad_branches(repo) == []


def test_not_a_repo(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not inside a git work tree"):
        Workspace(tmp_path)


def test_lock_timeout_is_a_clear_error(repo: Path) -> None:
    ws = Workspace(repo, lock_timeout=0.2)
    ws.locks_dir.mkdir(parents=True, exist_ok=True)
    holder = filelock.FileLock(ws.locks_dir / "worktrees.lock")
    with holder, pytest.raises(WorkspaceError, match=r"timed out after 0.2s waiting for the lock"):
        ws.lease(RUN, "t")
    assert squad_branches(repo) == []


def test_threads_queue_on_the_lock_and_time_out_clearly(repo: Path) -> None:
    import threading

    ws = Workspace(repo, lock_timeout=0.2)
    other = Workspace(repo, lock_timeout=0.2)  # a second Workspace on the same repo shares the lock
    inside, leave = threading.Event(), threading.Event()
    order: list[str] = []

    def holder() -> None:
        with ws._lock("worktrees"):
            order.append("holder in")
            inside.set()
            leave.wait(5)
            order.append("holder out")

    thread = threading.Thread(target=holder)
    thread.start()
    assert inside.wait(5)
    with pytest.raises(WorkspaceError, match=r"timed out after 0.2s waiting for the lock"):
        other.lease(RUN, "t")  # waits in-process, then gives up with the same clear error
    assert squad_branches(repo) == []
    waiter = threading.Thread(target=lambda: other.lease(RUN, "t") and order.append("lease"))
    waiter.start()
    leave.set()
    thread.join(5)
    waiter.join(10)
    assert order == ["holder in", "holder out", "lease"]
    assert squad_branches(repo) == [f"squad/{RUN}--t"]


def _two_conflicting_tasks(ws: Workspace) -> tuple[str, str]:
    a, b = ws.lease(RUN, "a"), ws.lease(RUN, "b")
    (a.path / "README.md").write_text("# from a\n")
    (a.path / "a.txt").write_text("a\n")
    (b.path / "README.md").write_text("# from b\n")
    (b.path / "b.txt").write_text("b\n")
    ws.commit(a, agent="backend", message="a")
    ws.commit(b, agent="frontend", message="b")
    return a.branch, b.branch


def test_merge_clean_then_conflict(repo: Path) -> None:
    ws = Workspace(repo)
    before = user_state(repo)
    a, b = _two_conflicting_tasks(ws)
    target = f"squad/{RUN}"

    first = ws.merge(target, a)
    assert first.ok and first.conflicts == []
    assert first.sha == git(repo, "rev-parse", target).strip()
    assert git(repo, "show", f"{target}:README.md") == "# from a\n"

    second = ws.merge(target, b)
    assert not second.ok
    assert second.conflicts == ["README.md"]
    assert second.sha is None
    assert git(repo, "rev-parse", target).strip() == first.sha, "target unchanged after the aborted merge"
    integration = ws.integration(RUN)
    assert git(integration.path, "status", "--porcelain") == "", "merge aborted cleanly"
    assert user_state(repo) == before

    gc(ws, runs=[RUN], run_branches=True)
    assert squad_branches(repo) == []


def test_merge_into_one_integration_lease(repo: Path) -> None:
    """merge_into merges into an integration worktree leased once, with merge's outcomes."""
    ws = Workspace(repo)
    before = user_state(repo)
    a, b = _two_conflicting_tasks(ws)
    integration = ws.integration(RUN)

    first = ws.merge_into(integration, a, message="merge a")
    assert first.ok and first.sha == git(repo, "rev-parse", f"squad/{RUN}").strip()
    assert git(repo, "log", "-1", "--format=%s", f"squad/{RUN}").strip() == "merge a"
    second = ws.merge_into(integration, b)
    assert not second.ok and second.conflicts == ["README.md"] and second.sha is None
    assert git(repo, "rev-parse", f"squad/{RUN}").strip() == first.sha, "target unchanged after the aborted merge"
    assert git(integration.path, "status", "--porcelain") == "", "merge aborted cleanly"
    assert ws.integration(RUN) == integration, "the same worktree, still leased"
    assert user_state(repo) == before

    task = ws.lease(RUN, "a")
    with pytest.raises(WorkspaceError, match="not a run's integration worktree"):
        ws.merge_into(task, b)
    git(integration.path, "switch", "-q", "--detach")
    with pytest.raises(WorkspaceError, match="detached HEAD"):
        ws.merge_into(integration, a)
    assert git(repo, "rev-parse", f"squad/{RUN}").strip() == first.sha
    gc(ws, runs=[RUN], run_branches=True)
    assert squad_branches(repo) == []


def test_merge_refuses_non_squad_target(repo: Path) -> None:
    ws = Workspace(repo)
    with pytest.raises(WorkspaceError, match="squad merges only into squad/<run>"):
        ws.merge("main", "main")


def _finish(repo: Path, run: str) -> None:
    folder = repo / ".squad" / "runs" / run
    folder.mkdir(parents=True)
    (folder / "report.json").write_text("{}")


def test_gc_removes_only_squad_runs(repo: Path) -> None:
    finished, abandoned, active, via_event = (
        "20261122-000001-aaaa",
        "20261122-000002-bbbb",
        "20261122-000003-cccc",
        "20261122-000004-dddd",
    )
    ws = Workspace(repo)
    for run in (finished, abandoned, active, via_event):
        lease = ws.lease(run, "task")
        (lease.path / "x.txt").write_text(run)
        ws.commit(lease, agent="backend", message="x")
        assert ws.merge(f"squad/{run}", lease.branch).ok
    _finish(repo, finished)
    (repo / ".squad" / "runs" / active).mkdir(parents=True)
    (repo / ".squad" / "runs" / via_event).mkdir(parents=True)
    events = [
        {"ts": 1.0, "type": "run_started", "run": via_event},
        {"ts": 2.0, "type": "run_finished", "status": "done"},
    ]
    (repo / ".squad" / "runs" / via_event / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    user = ["squad-notes", "feature/squad", "squad/notes", "squad/wip--x", "squad/20261122-000001-aaaa-x"]
    for name in user:
        git(repo, "branch", name)
    # The user's current branch looks like a squad task branch of a finished run: still never deleted.
    git(repo, "switch", "-q", "-c", f"squad/{finished}--mine")
    git(repo, "rev-parse", "--verify", "main")  # sanity: main still exists

    branches_before, worktrees_before = squad_branches(repo), worktree_paths(repo)
    dry = gc(ws, run_branches=True, dry_run=True)
    assert sorted(dry.runs) == sorted([finished, abandoned, via_event])
    assert (squad_branches(repo), worktree_paths(repo)) == (branches_before, worktrees_before)
    report = gc(ws, run_branches=True)
    assert report.branches == dry.branches and report.worktrees == dry.worktrees
    assert any(f"squad/{finished}--mine" in s for s in report.skipped)
    assert any(active in s for s in report.skipped)

    left = set(git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/").split())
    assert left == {"main", *user, f"squad/{finished}--mine", f"squad/{active}", f"squad/{active}--task"}
    assert git(repo, "symbolic-ref", "--short", "HEAD").strip() == f"squad/{finished}--mine"
    assert all(active in p or p == str(repo.resolve()) for p in worktree_paths(repo))
    assert not (ws.worktrees_dir / finished).exists() and not (ws.worktrees_dir / abandoned).exists()

    # Naming the active run removes it; keep_branches keeps its branches.
    kept = gc(ws, runs=[active], keep_branches=True)
    assert kept.branches == [] and len(kept.worktrees) == 2
    assert worktree_paths(repo) == [str(repo.resolve())]
    assert f"squad/{active}--task" in squad_branches(repo)


def test_gc_prunes_stale_metadata(repo: Path) -> None:
    ws = Workspace(repo)
    lease = ws.lease(RUN, "gone")
    subprocess.run(["rm", "-rf", str(lease.path)], check=True)  # the folder vanished behind git's back
    gc(ws, runs=[RUN])
    assert worktree_paths(repo) == [str(repo.resolve())]
    assert squad_branches(repo) == []


def squad_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "squad", *args], cwd=cwd, capture_output=True, text=True)


def test_gc_cli(repo: Path) -> None:
    ws = Workspace(repo)
    lease = ws.lease(RUN, "cli")
    git(repo, "branch", "squad-notes")

    usage = squad_cli(repo, "gc")
    assert usage.returncode == 2 and "--run RUN" in usage.stderr

    dry = squad_cli(repo, "gc", "--all", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    data = json.loads(dry.stdout)
    assert data["dry_run"] is True
    assert data["branches"] == [lease.branch]
    assert data["worktrees"] == [str(lease.path)]
    assert lease.path.exists()

    done = squad_cli(repo, "gc", "--run", RUN)
    assert done.returncode == 0, done.stderr
    assert f"removed branch {lease.branch}" in done.stdout
    assert f"removed worktree {lease.path}" in done.stdout
    assert not lease.path.exists()
    assert squad_branches(repo) == []
    assert "squad-notes" in git(repo, "branch")

    bad = squad_cli(repo, "gc", "--run", "Not/A/Run")
    assert bad.returncode == 2 and "invalid run id" in bad.stderr


def test_lease_finishes_an_interrupted_checkout(repo: Path) -> None:
    """A lease killed between the add and the checkout leaves a worktree with no index: reuse fills it."""
    ws = Workspace(repo)
    path = ws.worktree_path(RUN, "crashed")
    path.parent.mkdir(parents=True)
    git(repo, "worktree", "add", "-q", "--no-checkout", "-b", f"squad/{RUN}--crashed", str(path), "HEAD")
    assert not (path / "README.md").exists()
    lease = ws.lease(RUN, "crashed")
    assert lease.path == path
    assert (path / "README.md").read_text() == "# demo\n"
    assert git(path, "status", "--porcelain") == ""
    assert ws.commit(lease, agent="backend", message="nothing") is None, "a half-made lease must not commit deletions"
    ws.release(lease, delete_branch=True)


def test_lease_repairs_a_worktree_folder_deleted_by_hand(repo: Path) -> None:
    """Stale metadata (folder gone, worktree still registered) is pruned on the retry path; the work is kept."""
    import shutil

    ws = Workspace(repo)
    first = ws.lease(RUN, "gone")
    (first.path / "done.txt").write_text("done\n")
    sha = ws.commit(first, agent="backend", message="done")
    shutil.rmtree(first.path)
    assert str(first.path) in git(repo, "worktree", "list", "--porcelain"), "still registered"
    again = ws.lease(RUN, "gone")
    assert again == first
    assert git(again.path, "rev-parse", "HEAD").strip() == sha
    assert (again.path / "done.txt").read_text() == "done\n"
    assert git(again.path, "status", "--porcelain") == ""
    ws.release(again, delete_branch=True)
    assert squad_branches(repo) == []
    assert worktree_paths(repo) == [str(repo.resolve())]


def test_commit_refuses_a_worktree_moved_off_its_branch(repo: Path) -> None:
    ws = Workspace(repo)
    lease = ws.lease(RUN, "moved")
    git(lease.path, "switch", "-q", "--detach")
    (lease.path / "x.txt").write_text("x")
    with pytest.raises(WorkspaceError, match="not squad/"):
        ws.commit(lease, agent="backend", message="x")
    ws.release(lease, delete_branch=True)
    with pytest.raises(WorkspaceError, match="not a squad worktree"):
        ws.commit(lease, agent="backend", message="x")


def test_lease_refuses_a_branch_checked_out_elsewhere(repo: Path) -> None:
    git(repo, "switch", "-q", "-c", f"squad/{RUN}--mine")
    ws = Workspace(repo)
    with pytest.raises(WorkspaceError, match="already checked out"):
        ws.lease(RUN, "mine")
    assert git(repo, "symbolic-ref", "--short", "HEAD").strip() == f"squad/{RUN}--mine"


def test_view_is_a_detached_worktree_of_the_commit_reused_and_released(repo: Path) -> None:
    ws = Workspace(repo)
    first = git(repo, "rev-parse", "HEAD").strip()
    (repo / "later.txt").write_text("later\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "later")
    run = new_run_id()
    view = ws.view(run, first)
    assert view.base_commit == first and view.branch == "" and not (view.path / "later.txt").exists()
    assert git(view.path, "rev-parse", "HEAD").strip() == first
    assert "squad/" not in git(repo, "branch", "--list")  # a view writes no branch
    (view.path / "marker").write_text("x")
    assert ws.view(run, first).path == view.path and (view.path / "marker").exists()  # reused as is
    moved = ws.view(run, "HEAD")  # another commit: made anew
    assert (moved.path / "later.txt").exists() and not (moved.path / "marker").exists()
    with pytest.raises(WorkspaceError):
        ws.commit(moved, agent="lead", message="no")
    ws.release(moved)
    assert not moved.path.exists() and git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
