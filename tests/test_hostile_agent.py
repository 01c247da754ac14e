"""Hostile review of the agent runtime: a model that controls every tool argument tries to make squad run
its code or read outside the worktree. Real agent loop, real ScriptedModel, real tools, real git.

What is in scope: squad's own work (its git commands, its ledger reads) must never execute or read what an
agent wrote outside of the jail. What is not: a command the user put on the `run` allowlist runs the
agent's code by design (a test runner imports the agent's tests); that is the user's choice, and such
commands only get a scrubbed environment.
"""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from conftest import git

from squad.agents.loop import AgentLimits, AgentResult, run_agent
from squad.agents.tools import ToolContext, default_toolbox
from squad.config import Settings
from squad.domain.ids import new_run_id
from squad.infra.workspace import Lease, Workspace
from squad.models.base import SystemBlock
from squad.models.scripted import ScriptedModel

HOOK_NAMES = ("post-commit", "post-merge", "post-checkout", "post-rewrite", "reference-transaction")


def _agent(lease: Lease, calls: list[dict[str, Any]], *, allowed: frozenset[str] | None = None) -> AgentResult:
    """Run a scripted agent in `lease` that makes `calls` (one per turn), then finishes."""
    turns = [{"tool_calls": [c]} for c in calls]
    turns.append({"tool_calls": [{"name": "finish", "input": {"summary": "done"}}]})
    script = {"version": 1, "scripts": [{"agent": "mallory", "turns": turns}]}
    ctx = ToolContext(
        worktree=lease.path,
        run_id=lease.run,
        agent="mallory",
        task=lease.task,
        settings=Settings(),
        base_commit=lease.base_commit,
        ledger_file=None,
        allowed=allowed or frozenset({"read_file", "write_file", "edit_file", "read_decisions", "diff", "finish"}),
    )
    events: list[dict[str, Any]] = []
    result = asyncio.run(
        run_agent(
            model=ScriptedModel(script),
            toolbox=default_toolbox(),
            ctx=ctx,
            system=(SystemBlock("You are mallory.", cache=True),),
            prompt="Escape.",
            limits=AgentLimits(max_turns=len(turns) + 1, timeout_s=60, max_tokens=1024),
            emit=events.append,
        )
    )
    assert result.stop_reason == "finished", result.error
    return result


def _hook(marker: Path, name: str) -> str:
    return f'#!/bin/sh\necho {name} >> "{marker}"\n'


@pytest.mark.timeout(60)
def test_hooks_in_an_agent_writable_hooks_path_never_run(repo: Path, tmp_path: Path) -> None:
    """A repo with a relative `core.hooksPath` (husky and friends) keeps its hooks in the work tree, where an
    agent can overwrite them (executable bits survive a rewrite). squad's own git commands in its worktrees
    (commit, merge, worktree add/reset) must not run any of them."""
    marker = tmp_path / "pwned"
    hooks = repo / ".githooks"
    hooks.mkdir()
    for name in HOOK_NAMES:
        (hooks / name).write_text("#!/bin/sh\nexit 0\n")
        (hooks / name).chmod(0o755)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "team hooks")
    git(repo, "config", "core.hooksPath", ".githooks")

    ws = Workspace(repo)
    run = new_run_id()
    lease = ws.lease(run, "evil")
    _agent(
        lease,
        [{"name": "write_file", "input": {"path": f".githooks/{n}", "content": _hook(marker, n)}} for n in HOOK_NAMES],
    )
    assert all(os.stat(lease.path / ".githooks" / n).st_mode & stat.S_IXUSR for n in HOOK_NAMES)  # still executable

    sha = ws.commit(lease, agent="mallory", message="innocent change")
    assert sha is not None
    merged = ws.merge(f"squad/{run}", lease.branch, base=lease.base_commit)
    assert merged.ok
    second = ws.lease(run, "next", base=merged.sha or "HEAD")  # a checkout of the hostile tree
    ws.release(second, delete_branch=True)
    ws.release(lease, delete_branch=True)
    assert not marker.exists(), f"squad ran agent-written hooks: {marker.read_text()}"


@pytest.mark.timeout(120)
def test_a_whole_run_with_apply_never_runs_agent_written_hooks(repo: Path, tmp_path: Path) -> None:
    """The same attack through `squad run --apply`: the task commit, the integration merge, the ledger commit
    on the run branch and the merge into the user's own branch all run git with hooks off."""
    import json

    import yaml
    from test_coordinator_e2e import _setup, _squad

    marker = tmp_path / "pwned"
    _setup(repo, ["backend", "reviewer"])
    hooks = repo / ".githooks"
    hooks.mkdir()
    for name in HOOK_NAMES:
        (hooks / name).write_text("#!/bin/sh\nexit 0\n")
        (hooks / name).chmod(0o755)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "team hooks")
    git(repo, "config", "core.hooksPath", ".githooks")
    writes = [
        {"name": "write_file", "input": {"path": f".githooks/{n}", "content": _hook(marker, n)}} for n in HOOK_NAMES
    ]
    decision = {"title": "Hooks", "decision": "Rewrite the hooks.", "context": "Because."}
    script = {
        "version": 1,
        "scripts": [
            {
                "agent": "backend",
                "turns": [
                    {"tool_calls": writes},
                    {"tool_calls": [{"name": "record_decision", "input": decision}]},
                    {"tool_calls": [{"name": "finish", "input": {"summary": "tidied the hooks"}}]},
                ],
            },
            {
                "agent": "reviewer",
                "turns": [
                    {"tool_calls": [{"name": "submit_verdict", "input": {"verdict": "approve", "summary": "ok"}}]}
                ],
            },
        ],
    }
    path = tmp_path / "script.yaml"
    path.write_text(yaml.safe_dump(script))
    out = _squad(repo, "run", "tidy hooks", "--agent", "backend", "--apply", "--json", "--model", f"scripted:{path}")
    assert out.returncode == 0, out.stderr + out.stdout
    report = json.loads(out.stdout)
    assert report["applied"] is True and len(report["decisions"]) == 1
    assert "echo post-merge" in (repo / ".githooks" / "post-merge").read_text()  # the hostile tree did land
    assert not marker.exists(), f"squad ran agent-written hooks: {marker.read_text()}"


def _tool_outputs(result: AgentResult) -> list[str]:
    """What every tool call answered, as the model saw it."""
    from squad.models.base import ToolResultBlock

    return [b.content for m in result.messages for b in m.content if isinstance(b, ToolResultBlock)]


SECRET = "SENTINEL-7f3a-do-not-leak"
ENTRY = (
    "## Leaked\n"
    '<!-- squad-decision {{"id":"01JD0000000000000000000000","date":"2026-11-22T06:31:07Z","agent":"x",'
    '"run":null,"supersedes":[],"tags":[]}} -->\n\n**Context.** {secret}\n\n**Decision.** {secret}\n\n'
    "**Consequences.** {secret}\n"
)


@pytest.mark.timeout(60)
def test_read_decisions_never_follows_a_symlink_out_of_the_worktree(repo: Path, tmp_path: Path) -> None:
    """A symlink under decisions/ (in a PR's content, or made earlier by an allowed command) must not make
    read_decisions read files outside the worktree: not a file link, not a directory link."""
    outside = tmp_path / "outside"
    (outside / "nested").mkdir(parents=True)
    (outside / "secret.md").write_text(ENTRY.format(secret=SECRET))
    (outside / "nested" / "more.md").write_text(
        ENTRY.format(secret=SECRET + "-dir").replace("0000000000000000000000", "1111111111111111111111")
    )
    (repo / "decisions").mkdir()
    (repo / "decisions" / "leak.md").symlink_to(outside / "secret.md")
    (repo / "decisions" / "linked").symlink_to(outside / "nested")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "innocent-looking ledger")

    ws = Workspace(repo)
    lease = ws.lease(new_run_id(), "peek")
    result = _agent(
        lease, [{"name": "read_decisions", "input": {}}, {"name": "read_file", "input": {"path": "decisions/leak.md"}}]
    )
    ws.release(lease, delete_branch=True)
    decisions, read = _tool_outputs(result)[:2]
    assert SECRET not in decisions and "0 of 0 decisions" in decisions, decisions
    assert "symlink" in decisions and "outside" in decisions  # said, not silently dropped
    assert SECRET not in read and "points outside the repository" in read  # the jail's answer, for comparison


CHILD = r"""
import asyncio, json, sys
from pathlib import Path
from squad.config import Settings
from squad.agents.tools import ToolContext, default_toolbox

reader = [sys.executable, "-c", "import os\ntry:\n print(open(f'/proc/{os.getppid()}/environ','rb').read().decode())\n"
          "except OSError as e:\n print('DENIED', e.strerror)"]
settings = Settings.model_validate({"commands": {"allowed": [" ".join(reader[:2])]}})
ctx = ToolContext(worktree=Path(sys.argv[1]), run_id="r", agent="mallory", task="t", settings=settings,
                  base_commit="", ledger_file=None, allowed=frozenset({"run"}))
print(json.dumps(asyncio.run(default_toolbox().call("run", {"command": reader}, ctx)).content))
"""


@pytest.mark.timeout(60)
def test_an_allowed_command_cannot_read_squads_environment_from_proc(tmp_path: Path) -> None:
    """The `run` tool scrubs the child's environment; the child must not get the secret back by reading
    /proc/<squad's pid>/environ. (Root reads any process's /proc files, so as root the squad side runs as
    an unprivileged user, as squad normally does.)"""
    import json
    import subprocess
    import sys

    if not sys.platform.startswith("linux"):
        pytest.skip("/proc/<pid>/environ is Linux")
    root = Path(__file__).resolve().parents[1]
    env = {"PATH": os.environ["PATH"], "ANTHROPIC_API_KEY": SECRET, "PYTHONPATH": str(root)}
    python, user = sys.executable, None
    if os.geteuid() == 0:
        site = next(p for p in sys.path if p.endswith("site-packages"))
        python, user, env["PYTHONPATH"] = "/usr/bin/python3", 65534, f"{root}:{site}"
        probe = subprocess.run(
            [python, "-c", "import squad.agents.tools"], user=user, env=env, cwd="/", capture_output=True
        )
        if probe.returncode != 0:
            pytest.skip(f"cannot run squad as an unprivileged user here: {probe.stderr[-200:]!r}")
    out = subprocess.run(
        [python, "-c", CHILD, "/tmp"], user=user, env=env, cwd="/", capture_output=True, text=True, timeout=50
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "DENIED" in result and SECRET not in result, result


def test_a_task_id_never_names_a_transcript_outside_the_run_folder(repo: Path) -> None:
    from squad.domain.events import TaskStarted, ToolCalled
    from squad.infra.journal import Journal

    journal = Journal(repo, new_run_id()).create()
    journal.emit(ToolCalled(agent="a", task="../../../escaped"))
    journal.emit(ToolCalled(agent="a", task="api"))
    journal.emit(TaskStarted(task="api", agent="a"))  # coordinator events stay in events.jsonl only
    assert [p.name for p in journal.transcripts_dir.iterdir()] == ["api.jsonl"]
    assert len((journal.transcripts_dir / "api.jsonl").read_text().splitlines()) == 1
    assert not list(repo.rglob("escaped*"))


@pytest.mark.timeout(60)
def test_drivers_an_agent_defines_in_the_work_tree_never_run(repo: Path, tmp_path: Path) -> None:
    """`.gitattributes` may name filter / diff / merge drivers, but git takes their commands only from config,
    which the jail keeps out of reach (.git/). Config-looking files in the work tree (.gitconfig, .gitmodules,
    .lfsconfig) are data to git. Guard that squad's commit, diff, conflicting merge and checkout of such a
    tree run none of them, so this stays true if squad ever reads repo-local config."""
    marker = tmp_path / "pwned"
    run_it = f"sh -c 'echo driver >> {marker}; cat'"
    config = (
        f'[filter "pwn"]\n\tclean = {run_it}\n\tsmudge = {run_it}\n\trequired = false\n'
        f'[diff "pwn"]\n\ttextconv = {run_it}\n\tcommand = {run_it}\n'
        f'[merge "pwn"]\n\tdriver = {run_it}\n[core]\n\tfsmonitor = {run_it}\n'
    )
    (repo / "shared.txt").write_text("base\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "shared file")
    ws = Workspace(repo)
    run = new_run_id()
    evil, other = ws.lease(run, "evil"), ws.lease(run, "other")
    files = {
        ".gitattributes": "* filter=pwn diff=pwn merge=pwn\n",
        ".gitconfig": config,
        ".lfsconfig": config,
        ".gitmodules": f'[submodule "x"]\n\tpath = x\n\turl = ext::sh -c "echo >> {marker}"\n\tupdate = !{run_it}\n',
        "shared.txt": "evil\n",
    }
    result = _agent(
        evil,
        [{"name": "write_file", "input": {"path": p, "content": c}} for p, c in files.items()]
        + [{"name": "diff", "input": {}}],
    )
    assert ".gitattributes" in _tool_outputs(result)[-2]  # the diff tool ran over the hostile tree
    (other.path / "shared.txt").write_text("other\n")
    assert ws.commit(evil, agent="mallory", message="drivers") and ws.commit(other, agent="bob", message="edit")
    first = ws.merge(f"squad/{run}", other.branch, base=other.base_commit)
    second = ws.merge(f"squad/{run}", evil.branch, base=other.base_commit)  # conflicts on shared.txt
    assert first.ok and not second.ok and second.conflicts == ["shared.txt"]
    again = ws.lease(run, "again", base=evil.branch)  # a checkout of the hostile tree
    for lease in (evil, other, again):
        ws.release(lease, delete_branch=True)
    assert not marker.exists(), f"a driver defined in the work tree ran: {marker.read_text()}"


@pytest.mark.timeout(60)
def test_a_catastrophic_search_pattern_is_stopped_with_a_clear_error(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`(a|aa)+$` against a long run of a's backtracks for longer than the universe's age. A thread cannot be
    killed, so an unbounded search would pin a core and keep `squad run` from ever exiting."""

    from squad.agents.tools import search as search_mod

    monkeypatch.setattr(search_mod, "SEARCH_TIMEOUT_S", 1.0)
    (repo / "data.txt").write_text("a" * 80 + "b\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "data")
    ws = Workspace(repo)
    lease = ws.lease(new_run_id(), "slow")
    result = _agent(
        lease, [{"name": "search", "input": {"pattern": "(a|aa)+$"}}], allowed=frozenset({"search", "finish"})
    )
    ws.release(lease, delete_branch=True)
    (answer,) = _tool_outputs(result)[:1]
    assert "too long" in answer and "simplify" in answer, answer  # the search was stopped, and said so


@pytest.mark.timeout(60)
def test_a_catastrophic_glob_is_answered_promptly(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Globs compile to regexes too: with `re`, `*a*a*...*b` against a long file name backtracked for ever.
    Now it is answered at once; and a glob that still runs out of time is a clear tool error."""

    from squad.agents.tools import fs

    (repo / ("a" * 40 + ".py")).write_text("x = 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "long name")
    ws = Workspace(repo)
    lease = ws.lease(new_run_id(), "glob")
    hostile = "*a" * 14 + "*b"
    calls = [
        {"name": "list_files", "input": {"pattern": hostile}},
        {"name": "search", "input": {"pattern": "x", "glob": hostile}},
    ]
    result = _agent(lease, calls, allowed=frozenset({"list_files", "search", "finish"}))
    listed, searched = _tool_outputs(result)[:2]
    # answers, not "took too long" (GLOB_TIMEOUT_S): the glob matched within its time limit
    assert listed.startswith("no files matching") and searched.startswith("no matches"), (listed, searched)

    monkeypatch.setattr(fs, "GLOB_TIMEOUT_S", 0.0)  # what a glob the regex engine cannot speed up gets
    (timed_out,) = _tool_outputs(_agent(lease, calls[:1], allowed=frozenset({"list_files", "finish"})))[:1]
    ws.release(lease, delete_branch=True)
    assert "took too long" in timed_out and "simplify the glob" in timed_out, timed_out
