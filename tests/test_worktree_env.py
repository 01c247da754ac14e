"""`[workspace]` copy / link / submodules / setup on real git worktrees, real files and real processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import git
from tools_support import call, make_ctx

from squad.config import Settings, WorkspaceSettings
from squad.domain.workspace import SetupStep
from squad.errors import ConfigError
from squad.infra.workspace import Workspace
from squad.infra.worktree_env import prepare, run_setup

RUN = "20261122-063107-a1b2"


def settings(**workspace: object) -> Settings:
    return Settings(workspace=WorkspaceSettings.model_validate(workspace))


@pytest.fixture
def project(repo: Path) -> Path:
    """The `repo` fixture with the usual untracked, ignored things a real project has in its checkout."""
    (repo / ".gitignore").write_text(".env\n.venv\nnode_modules/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "ignore")
    (repo / ".env").write_text("DATABASE_URL=sqlite:///dev.db\n")
    (repo / ".venv" / "bin").mkdir(parents=True)
    (repo / ".venv" / "bin" / "tool").write_text("#!/bin/sh\necho from-venv\n")
    (repo / "node_modules" / "left-pad").mkdir(parents=True)
    (repo / "node_modules" / "left-pad" / "index.js").write_text("module.exports = 1\n")
    return repo


def lease(repo: Path, task: str = "t") -> Path:
    return Workspace(repo).lease(RUN, task).path


def test_copy_and_link_bring_untracked_things_into_the_worktree(project: Path) -> None:
    wt = lease(project)
    status_before = git(project, "status", "--porcelain", "--ignored")
    report = prepare(wt, project, settings(copy=[".env"], link=[".venv", "node_modules"]))

    assert (wt / ".env").read_text() == "DATABASE_URL=sqlite:///dev.db\n"
    assert not (wt / ".env").is_symlink()
    assert os.readlink(wt / ".venv") == str(project.resolve() / ".venv")
    assert (wt / "node_modules" / "left-pad" / "index.js").read_text() == "module.exports = 1\n"
    assert [(s.action, s.path) for s in report.steps] == [
        ("copied", ".env"),
        ("linked", ".venv"),
        ("linked", "node_modules"),
        # `node_modules/` matches folders only, and a symlink is not one: squad excludes it locally.
        ("excluded", "node_modules"),
    ]
    # Nothing of it shows up as a change an agent's commit would pick up, and the user's side looks the same.
    assert git(wt, "status", "--porcelain") == ""
    assert git(project, "status", "--porcelain", "--ignored") == status_before
    common = Path(git(project, "rev-parse", "--path-format=absolute", "--git-common-dir").strip())
    assert "/node_modules\n" in (common / "info" / "exclude").read_text()

    # A resumed lease is prepared again without copying over what is there.
    (wt / ".env").write_text("changed in the worktree\n")
    again = prepare(wt, project, settings(copy=[".env"], link=[".venv", "node_modules"]))
    assert [s.action for s in again.steps] == ["kept", "kept", "kept"]
    assert (wt / ".env").read_text() == "changed in the worktree\n"
    assert (common / "info" / "exclude").read_text().count("/node_modules\n") == 1

    # The agent's commit holds none of it.
    ws = Workspace(project)
    (wt / "app.py").write_text("x = 1\n")
    sha = ws.commit(ws.lease(RUN, "t"), agent="backend", message="app")
    assert git(project, "show", "--name-only", "--format=", str(sha)).split() == ["app.py"]

    # Releasing the worktree removes the links, never what they point at.
    ws.release(ws.lease(RUN, "t"), delete_branch=True)
    assert not wt.exists()
    assert (project / "node_modules" / "left-pad" / "index.js").is_file()
    assert (project / ".venv" / "bin" / "tool").is_file()


def test_a_missing_source_names_the_key_and_the_path(project: Path) -> None:
    wt = lease(project)
    with pytest.raises(ConfigError) as err:
        prepare(wt, project, settings(copy=[".env", "config/local.yaml"]))
    assert "[workspace] copy" in err.value.message and "'config/local.yaml'" in err.value.message
    assert "does not exist in the main checkout" in err.value.message
    assert not (wt / ".env").exists()  # nothing half-done is left behind


def test_not_ignored_paths_are_refused_before_a_commit_could_take_them(project: Path) -> None:
    (project / "secrets.txt").write_text("hunter2\n")
    wt = lease(project)
    with pytest.raises(ConfigError) as err:
        prepare(wt, project, settings(copy=[".env", "secrets.txt"]))
    assert "secrets.txt not ignored by git" in err.value.message
    assert "/secrets.txt" in (err.value.hint or "")
    assert not (wt / "secrets.txt").exists() and not (wt / ".env").exists()


def test_tracked_and_bad_paths_are_config_errors(project: Path) -> None:
    wt = lease(project)
    with pytest.raises(ConfigError, match=r"'README\.md' is tracked by git"):
        prepare(wt, project, settings(copy=["README.md"]))
    for bad in ["../outside", "/etc/passwd", ".git/config", "a/./b", ""]:
        with pytest.raises(ConfigError):
            prepare(wt, project, WorkspaceSettings.model_construct(copy_=[bad], link=[], submodules=False))
    with pytest.raises(ConfigError, match="overlaps"):
        prepare(wt, project, WorkspaceSettings.model_construct(copy_=["node_modules/x"], link=["node_modules"]))
    with pytest.raises(ConfigError, match="not a folder"):
        prepare(wt, project, settings(link=[".env"]))


def test_linked_paths_are_closed_to_the_agents_file_tools(project: Path) -> None:
    """The jail refuses any path whose real location is outside the worktree, so agents can neither write into
    the main checkout's .venv through the link nor read it (reads are refused too; see the report)."""
    wt = lease(project)
    prepare(wt, project, settings(link=[".venv"]))
    ctx = make_ctx(wt)
    written = call(ctx, "write_file", {"path": ".venv/bin/tool", "content": "#!/bin/sh\necho pwned\n"})
    assert written.is_error and "outside the repository" in written.content
    assert (project / ".venv" / "bin" / "tool").read_text() == "#!/bin/sh\necho from-venv\n"
    read = call(ctx, "read_file", {"path": ".venv/bin/tool"})
    assert read.is_error and "outside the repository" in read.content


# ---------------------------------------------------------------------------------------------------------
# Submodules


def _make_submodule_repo(parent: Path, name: str, files: dict[str, str]) -> Path:
    sub = parent / name
    sub.mkdir()
    git(sub, "init", "-q", "-b", "main")
    for rel, text in files.items():
        (sub / rel).write_text(text)
    git(sub, "add", "-A")
    git(sub, "commit", "-q", "-m", f"{name}")
    return sub


def _add_submodule(repo: Path, source: Path, path: str) -> None:
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(source), path)


def test_submodules_come_from_the_main_checkouts_objects_without_the_network(repo: Path) -> None:
    libs = _make_submodule_repo(repo.parent, "inner", {"inner.txt": "inner\n"})
    outer = _make_submodule_repo(repo.parent, "outer", {"outer.txt": "outer\n"})
    _add_submodule(outer, libs, "vendor/inner")
    git(outer, "commit", "-q", "-m", "nested")
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(outer), "libs/outer")
    git(repo, "-c", "protocol.file.allow=always", "submodule", "update", "--init", "--recursive")
    # Point .gitmodules at a host that does not exist: a fetch from the network would fail.
    git(repo, "config", "-f", ".gitmodules", "submodule.libs/outer.url", "https://git.invalid/outer.git")
    git(repo, "commit", "-q", "-am", "add outer")
    git(repo, "config", "submodule.libs/outer.url", "https://git.invalid/outer.git")
    wt = lease(repo)
    config_before = (repo / ".git" / "config").read_text()
    assert not any((wt / "libs" / "outer").iterdir())  # what git gives a worktree: an empty folder
    report = prepare(wt, repo, settings())

    assert [(s.action, s.path) for s in report.steps] == [
        ("submodule", "libs/outer"),
        ("submodule", "libs/outer/vendor/inner"),
    ]
    assert (wt / "libs" / "outer" / "outer.txt").read_text() == "outer\n"
    assert (wt / "libs" / "outer" / "vendor" / "inner" / "inner.txt").read_text() == "inner\n"
    assert git(wt, "status", "--porcelain") == ""
    assert (repo / ".git" / "config").read_text() == config_before  # the user's config is untouched
    assert [s.action for s in prepare(wt, repo, settings()).steps] == ["kept", "kept"]
    # A worktree with submodules is still released completely.
    ws = Workspace(repo)
    ws.release(ws.lease(RUN, "t"), delete_branch=True)
    assert not wt.exists()


def test_submodules_off_or_missing_in_the_main_checkout(repo: Path) -> None:
    sub = _make_submodule_repo(repo.parent, "sub", {"s.txt": "s\n"})
    _add_submodule(repo, sub, "sub")
    git(repo, "commit", "-q", "-m", "sub")
    wt = lease(repo)
    assert prepare(wt, repo, settings(submodules=False)).steps == ()
    assert not (wt / "sub" / "s.txt").exists()

    git(repo, "submodule", "deinit", "-q", "--force", "sub")  # the main checkout no longer has it checked out
    report = prepare(wt, repo, settings())
    assert [(s.action, s.path) for s in report.steps] == [("skipped", "sub")]
    assert "git submodule update --init -- sub" in report.warnings[0]


# ---------------------------------------------------------------------------------------------------------
# Setup commands


def test_setup_runs_in_order_in_the_worktree_and_stops_at_the_first_failure(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPLOY_TOKEN", "tok-must-not-leak")
    wt = lease(project)
    seen: list[SetupStep] = []
    script = (
        "import os, pathlib; pathlib.Path('built.txt').write_text(os.getcwd()); "
        "print('token:', os.environ.get('DEPLOY_TOKEN', 'absent'))"
    )
    commands = [
        f'python -c "{script}"',
        "python -c \"import sys; print('compiling...'); sys.exit(3)\"",
        "python -c \"open('never.txt', 'w')\"",
    ]
    report = asyncio.run(run_setup(wt, settings(setup=commands), on_step=seen.append))

    assert (wt / "built.txt").read_text() == str(wt)
    assert "token: absent" in report.steps[0].output_tail  # the scrubbed environment
    assert [s.exit_code for s in report.steps] == [0, 3]
    assert seen == list(report.steps)
    assert report.skipped == (commands[2],)
    assert not (wt / "never.txt").exists()
    assert not report.ok and report.failed is report.steps[1]
    text = report.failure_text()
    assert commands[1] in text and "exit code 3" in text and "compiling..." in text
    data = report.to_dict()
    assert data["ok"] is False and data["steps"][1]["exit_code"] == 3 and data["skipped"] == [commands[2]]


def test_setup_timeout_kills_the_whole_process_group(project: Path) -> None:
    wt = lease(project)
    pid_file, woke = wt / "child.pid", wt / "child.woke"
    command = (
        "python -c \"import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', "
        f"'import time; time.sleep(60); open(\\'{woke}\\', \\'w\\')']); open('{pid_file}', 'w').write(str(p.pid)); "
        'time.sleep(60)"'
    )
    report = asyncio.run(run_setup(wt, settings(setup=[command, "true"], setup_timeout_s=2)))
    step = report.steps[0]
    assert step.timed_out and step.exit_code is None
    assert step.status().startswith("timed out")
    assert report.skipped == ("true",)
    child = int(pid_file.read_text())
    while _alive(child):  # SIGKILL is sent before run_setup returns; the kernel may take a moment
        time.sleep(0.05)
    assert not woke.exists(), f"grandchild {child} survived the setup timeout and finished its sleep"


def _alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (dead, waiting for init to reap it) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()
    return bool(state) and not state.startswith("Z")


def test_setup_command_that_cannot_start(project: Path) -> None:
    wt = lease(project)
    report = asyncio.run(run_setup(wt, settings(setup=["no-such-program-xyz --flag", "true"])))
    assert report.steps[0].error == "command not found: 'no-such-program-xyz'"
    assert report.steps[0].status() == "command not found: 'no-such-program-xyz'"
    assert report.skipped == ("true",)


def test_no_setup_is_an_empty_ok_report(project: Path) -> None:
    report = asyncio.run(run_setup(lease(project), settings()))
    assert report.ok and report.steps == () and report.failure_text() == ""
