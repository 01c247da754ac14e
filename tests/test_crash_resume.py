"""kill -9 anywhere, resume, and get the same result with nothing lost: the crash-consistency harness.

A scripted three-task run (two independent tasks, then one that depends on both; a rejection and a revision by
another agent; five decisions, one the lead's while planning; a test command and a setup command that run in every
worktree, the test command leaving a child process behind as real test runners do) is killed with SIGKILL at more
than 40 points, and resumed until it is done. Each point is deterministic — squad's test-only seam
(`squad.infra.faults`, switched on by SQUAD_TEST_FAULTS=1) kills the process right after the journal writes the nth
event of a type, or at a named point inside a tool's file write, a git commit (also with git's index.lock left
behind, as a git killed along with squad leaves it), a merge, the decisions' promotion into the run ledger, the
ledger commit, or while the test command runs — so a failure reproduces.

To keep this within CI time, one trial kills one run several times in a row: each invocation (the first run,
then each resume) is given the next kill point of the trial's chain, and the last resume runs to the end. Every
kill point is asserted to have fired (the process died of SIGKILL), and after each trial:

- the run is `done`, and the run branch's tree is byte-identical to the uninterrupted reference run's (the
  ledger file aside, whose name holds the run id and whose entries hold ids and dates);
- every decision is on the branch exactly once (by title and agent), with unique ids;
- every task has exactly one verdict per round and exactly one approving verdict;
- no stale lock file, worktree, process record or attempt file is left, and no process the run started is alive;
- the spend stays within the run's budget.

The reference run is computed once per module.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from conftest import git

PY = sys.executable
RUN_OUTPUT_TOKEN_BUDGET = 1500

CHARTERS = {
    "lead": "name: lead\nrole: tech lead\ntools: [read, team]\n",
    "backend": "name: backend\nrole: backend engineer\ntools: [read, write, run, team]\nowns: ['*.py']\n",
    "tester": "name: tester\nrole: test engineer\ntools: [read, write, team]\nowns: ['*.md']\n",
    "reviewer": "name: reviewer\nrole: code reviewer\ntools: [read]\nreviewer: true\n",
}

# The test command: starts a helper that outlives it in its process group (as test runners' servers and workers
# do), says so, then checks the code. run_command kills the group when the command ends; a killed squad cannot.
CHECK = """import os, subprocess, sys
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "squad-crash-helper", os.getcwd()],
                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print("checks started", flush=True)
if os.path.exists("api.py"):
    sys.path.insert(0, os.getcwd())
    import api
    assert api.total([1, 2, 3]) == 6
print("checks passed")
"""
SETUP = "import pathlib; pathlib.Path('.setup-done').write_text('ready')\n"


def _tool(name: str, **args: Any) -> dict[str, Any]:
    return {"name": name, "input": args}


def _verdict(verdict: str, *findings: dict[str, Any]) -> dict[str, Any]:
    return _tool("submit_verdict", verdict=verdict, summary=f"{verdict}d", findings=list(findings))


def _script() -> dict[str, Any]:
    plan = [
        {"id": "core", "agent": "backend", "goal": "core.py with add()", "files": ["core.py"]},
        {"id": "docs", "agent": "tester", "goal": "DOCS.md", "files": ["DOCS.md"]},
        {
            "id": "api",
            "agent": "backend",
            "goal": "api.py with total()",
            "files": ["api.py"],
            "depends_on": ["core", "docs"],
        },
    ]
    api_v1 = "from core import add\n\n\ndef total(xs):\n    return sum(xs)\n"
    finding = {"severity": "major", "file": "api.py", "line": 5, "message": "fold with core.add"}
    scripts = [
        {
            "agent": "lead",
            "task": "plan",
            "turns": [
                {"tool_calls": [_tool("record_decision", title="api waits for core and docs", decision="Last.")]},
                {"tool_calls": [_tool("submit_plan", tasks=plan)]},
            ],
        },
        {
            "agent": "backend",
            "task": "core",
            "turns": [
                {
                    "tool_calls": [
                        _tool("write_file", path="core.py", content="def add(a, b):\n    return a + b\n"),
                        _tool("record_decision", title="Core is plain functions", decision="No classes in core."),
                    ]
                },
                {"tool_calls": [_tool("run", command=f"{PY} check.py")]},
                {"tool_calls": [_tool("finish", summary="core.add")]},
            ],
        },
        {
            "agent": "tester",
            "task": "docs",
            "turns": [
                {
                    "tool_calls": [
                        _tool("write_file", path="DOCS.md", content="# Docs\n\n`add(a, b)` adds.\n"),
                        _tool("record_decision", title="Docs live in DOCS.md", decision="One file of docs."),
                    ]
                },
                {"tool_calls": [_tool("finish", summary="docs")]},
            ],
        },
        {
            "agent": "backend",
            "task": "api",
            "turns": [
                {
                    "tool_calls": [
                        _tool("write_file", path="api.py", content=api_v1),
                        _tool("record_decision", title="total() uses sum()", decision="Use the builtin."),
                    ]
                },
                {"tool_calls": [_tool("finish", summary="api.total")]},
            ],
        },
        {
            "agent": "tester",
            "task": "api-r1",
            "turns": [
                {
                    "tool_calls": [
                        _tool(
                            "edit_file",
                            path="api.py",
                            old="    return sum(xs)\n",
                            new="    out = 0\n    for x in xs:\n        out = add(out, x)\n    return out\n",
                        ),
                        _tool("record_decision", title="total() folds with core.add", decision="One adder."),
                    ]
                },
                {"tool_calls": [_tool("edit_file", path="DOCS.md", old="adds.\n", new="adds; `total` uses it.\n")]},
                {"tool_calls": [_tool("finish", summary="api.total folds with add")]},
            ],
        },
    ]
    for lease, verdict in (("core", "approve"), ("docs", "approve"), ("api", "reject"), ("api-r1", "approve")):
        reply = _verdict(verdict, finding) if verdict == "reject" else _verdict(verdict)
        scripts.append({"agent": "reviewer", "task": lease, "turns": [{"tool_calls": [reply]}]})
    return {"version": 1, "scripts": scripts}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository ready for the run (copied for every trial, so all share one base commit) and its script."""
    root = tmp_path_factory.mktemp("crash")
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("# demo\n")
    (repo / "check.py").write_text(CHECK)
    (repo / "setup_env.py").write_text(SETUP)
    (repo / ".gitignore").write_text(".squad/runs/\n__pycache__/\n.setup-done\n")
    agents = repo / ".squad" / "agents"
    agents.mkdir(parents=True)
    for name, charter in CHARTERS.items():
        (agents / f"{name}.md").write_text(f"---\n{charter}---\nYou are the {name}.\n")
    (repo / ".squad" / "squad.toml").write_text(
        f'[commands]\ntest = "{PY} check.py"\nallowed = ["{PY} check.py"]\n'
        f'[workspace]\nsetup = ["{PY} setup_env.py"]\n'
        "[concurrency]\nmax_agents = 2\n"
        f"[budgets]\nrun_output_tokens = {RUN_OUTPUT_TOKEN_BUDGET}\n"
        "[retry]\nbase_delay_s = 0.01\n"
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "project")
    (root / "script.yaml").write_text(yaml.safe_dump(_script()))
    return repo


def _squad(repo: Path, *args: str, kill_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SQUAD_TEST_FAULTS": "1"}
    env.pop("SQUAD_TEST_KILL_AT", None)
    if kill_at:
        env["SQUAD_TEST_KILL_AT"] = kill_at
    model = f"scripted:{repo.parent / 'script.yaml'}"
    return subprocess.run(
        [PY, "-m", "squad", *args, "--json", "--model", model],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
    )


def _copy(template: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(template.parent / "script.yaml", dest / "script.yaml")
    repo = dest / "repo"
    shutil.copytree(template, repo, symlinks=True)
    return repo


def _events(repo: Path, run: str) -> list[dict[str, Any]]:
    out = []
    for line in (repo / ".squad" / "runs" / run / "events.jsonl").read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # a kill may tear the last line; the journal skips it too
            out.append(json.loads(line))
    return out


def _outcome(repo: Path, run: str) -> dict[str, Any]:
    """What must be the same after any kill: the branch's tree (but the ledger file) and its decisions."""
    branch = f"squad/{run}"
    tree = []
    ledger_files = []
    for line in git(repo, "ls-tree", "-r", "--full-tree", branch).splitlines():
        _, path = line.split("\t", 1)
        if path.startswith("decisions/") and path.endswith(f"-{run}.md"):
            ledger_files.append(path)
            continue
        tree.append(line)
    assert len(ledger_files) == 1, ledger_files
    from squad.infra.ledger import parse_text

    text = git(repo, "show", f"{branch}:{ledger_files[0]}")
    parsed = parse_text(text, Path(ledger_files[0]))
    assert not parsed.problems, parsed.problems
    ids = [e.id for e in parsed.entries]
    assert len(ids) == len(set(ids)), f"an entry id twice: {ids}"
    decisions = sorted((e.title, e.agent or "", e.run or "") for e in parsed.entries)
    return {"tree": tree, "decisions": [(t, a) for t, a, _ in decisions], "runs": {r for _, _, r in decisions}}


@pytest.fixture(scope="module")
def reference(template: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The uninterrupted run's outcome."""
    repo = _copy(template, tmp_path_factory.mktemp("reference"))
    out = _squad(repo, "run", "build the adder")
    assert out.returncode == 0, out.stderr + out.stdout
    report = json.loads(out.stdout)
    assert report["status"] == "done"
    outcome = _outcome(repo, report["run"])
    assert len(outcome["decisions"]) == 5
    events = _events(repo, report["run"])
    assert [e["verdict"] for e in events if e["type"] == "verdict"].count("reject") == 1
    return outcome


# Each trial is one run killed at each of its points in turn (one point per invocation), then resumed to the end.
CHAINS: dict[str, list[str]] = {
    "start": [
        "event:run_started:1",
        "event:context:1",
        "event:setup:1",
        "event:setup_done:1",
        "point:command_output:1",  # the baseline test command, its helper left running
        "event:process_reaped:1",  # the resume killed them, and is killed in turn
        "event:tests:1",
        "event:agent.tool_call:1",  # the lead recorded a decision while planning: dropped, planned again
        "event:plan:1",
    ],
    "work": [
        "event:task_started:1",
        "event:agent.turn_start:2",
        "point:tool_write:1",
        "event:agent.tool_call:3",
        "event:model_call:2",
        "point:command_output:1",  # the `run` tool, or a review's tests
        "event:agent.agent_stop:1",
    ],
    "commit": [
        "event:task_started:2",
        "point:git_commit:1",
        "point:git_commit_locked:1",  # git's index.lock left behind
        "event:stale_lock_removed:1",
        "event:task_committed:1",
        "point:decisions_kept:1",
        "event:attempt_decisions:1",
    ],
    "review": [
        "event:review_started:1",
        "point:command_output:2",
        "event:tests:2",
        "event:verdict:1",
        "event:task_approved:1",
        "event:ledger_committed:1",
    ],
    "revision": [
        "event:lockout:1",  # right after the rejection (a kill between the two: the fold locks the author out)
        "event:run_resumed:1",
        "event:task_started:1",
        "point:tool_write:2",
        "point:git_commit_locked:1",
        "event:task_committed:1",
        "event:review_started:1",
    ],
    "integration": [
        "event:task_approved:3",
        "event:merged:1",
        "point:merged:1",
        "point:ledger_commit:1",
        "point:ledger_committed:1",
        "point:command_output:1",  # the integration tests
        "event:run_finished:1",
    ],
}


def _left_processes(repo: Path) -> list[str]:
    """Live processes started for this repository's run (their command line or working folder is inside it)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd", "status"]):
        with contextlib.suppress(psutil.Error):
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            where = " ".join(proc.info["cmdline"] or []) + " " + (proc.info["cwd"] or "")
            if str(repo) in where:
                found.append(f"{proc.pid}: {where}")
    return found


@pytest.mark.timeout(300)
@pytest.mark.parametrize("chain", list(CHAINS), ids=list(CHAINS))
def test_killed_anywhere_resumes_to_the_same_result(
    chain: str, template: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    repo = _copy(template, tmp_path)
    run = None
    for n, point in enumerate(CHAINS[chain]):
        args = ("run", "--resume", run) if run else ("run", "build the adder")
        out = _squad(repo, *args, kill_at=point)
        assert out.returncode == -signal.SIGKILL, f"kill point {n + 1} ({point}) never fired: {out.stderr[-3000:]}"
        run = run or next((repo / ".squad" / "runs").iterdir()).name
    assert run is not None
    out = _squad(repo, "run", "--resume", run)
    assert out.returncode == 0, f"after kills at {CHAINS[chain]}:\n{out.stderr[-4000:]}{out.stdout[-2000:]}"
    report = json.loads(out.stdout)
    assert report["status"] == "done", report
    assert json.loads((repo / ".squad" / "runs" / run / "report.json").read_text())["status"] == "done"

    if "event:run_finished:1" in CHAINS[chain]:  # finished on the resume: report written, worktrees released
        again = _squad(repo, "run", "--resume", run)
        assert again.returncode == 2 and "already finished" in again.stderr

    # the same tree and the same decisions, each exactly once
    outcome = _outcome(repo, run)
    assert outcome["tree"] == reference["tree"]
    assert outcome["decisions"] == reference["decisions"]
    assert outcome["runs"] == {run}

    # every task: one verdict per round, one approval
    events = _events(repo, run)
    verdicts = Counter((e["task"], e["round"]) for e in events if e["type"] == "verdict")
    assert verdicts == {("core", 0): 1, ("docs", 0): 1, ("api", 0): 1, ("api", 1): 1}, verdicts
    approvals = Counter(e["task"] for e in events if e["type"] == "verdict" and e["verdict"] == "approve")
    assert approvals == {"core": 1, "docs": 1, "api": 1}
    assert max(Counter(e["task"] for e in events if e["type"] == "task_approved").values()) == 1
    assert [e["status"] for e in events if e["type"] == "run_finished"][-1] == "done"

    # nothing left behind: locks, worktrees, records, processes
    common = Path(git(repo, "rev-parse", "--git-common-dir").strip()).resolve()
    locks = [p for p in common.rglob("*.lock") if not p.is_relative_to(common / "squad" / "locks")]
    assert locks == []
    assert not (common / "squad" / "worktrees" / run).exists()
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert list((repo / ".squad" / "runs" / run / "procs").iterdir()) == []
    assert list((repo / ".squad" / "runs" / run / "attempts").iterdir()) == []
    assert _left_processes(repo) == []

    # the spend came back from the journal and stayed within the budget
    from squad.infra.journal import Journal

    state = Journal(repo, run).state()
    assert 0 < state.spend.output_tokens <= RUN_OUTPUT_TOKEN_BUDGET


def test_the_harness_covers_every_kind_of_kill_point() -> None:
    points = [p for chain in CHAINS.values() for p in chain]
    assert len(points) >= 30
    assert {p.split(":")[1] for p in points if p.startswith("point:")} == {
        "tool_write",
        "git_commit",
        "git_commit_locked",
        "merged",
        "decisions_kept",
        "ledger_commit",
        "ledger_committed",
        "command_output",
    }
