"""End to end: `squad run` with a scripted team on a real git repo, through the real CLI in a child process.

Real worktrees, real commits and merges, real tools, the real agent loop; only the model is scripted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import git

FIXTURES = Path(__file__).parent / "fixtures"

CHARTERS = {
    "lead": "name: lead\nrole: tech lead\ntools: [read, team]\n",
    "backend": "name: backend\nrole: backend engineer\ntools: [read, write, team]\nowns: ['*.py']\n",
    "tester": "name: tester\nrole: test engineer\ntools: [read, write, team]\nowns: [check.py, NOTES.md]\n",
    "reviewer": "name: reviewer\nrole: code reviewer\ntools: [read]\nreviewer: true\n",
}


def _setup(repo: Path, agents: list[str], settings: str = "") -> None:
    agents_dir = repo / ".squad" / "agents"
    agents_dir.mkdir(parents=True)
    for name in agents:
        (agents_dir / f"{name}.md").write_text(f"---\n{CHARTERS[name]}---\nYou are the {name}.\n")
    test = f"{sys.executable} -m compileall -q ."
    (repo / ".squad" / "squad.toml").write_text(f'[commands]\ntest = "{test}"\n{settings}')
    (repo / ".gitignore").write_text(".squad/runs/\n__pycache__/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "squad setup")


def _squad(repo: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "squad", *args], cwd=repo, capture_output=True, text=True, timeout=timeout
    )


def _events(repo: Path, run: str) -> list[dict[str, Any]]:
    path = repo / ".squad" / "runs" / run / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.timeout(120)
def test_team_run_plans_works_reviews_revises_and_integrates(repo: Path) -> None:
    _setup(repo, ["lead", "backend", "tester", "reviewer"])
    head = git(repo, "rev-parse", "HEAD").strip()
    out = _squad(repo, "run", "add a health check", "--json", "--model", f"scripted:{FIXTURES / 'run_team.yaml'}")
    assert out.returncode == 0, out.stderr + out.stdout
    report = json.loads(out.stdout)  # exactly one JSON document on stdout
    run = report["run"]
    assert report["status"] == "done" and report["branch"] == f"squad/{run}"
    tasks = {t["id"]: t for t in report["tasks"]}
    assert {t: v["status"] for t, v in tasks.items()} == {"api": "approved", "notes": "approved", "check": "approved"}
    # the rejected task was revised by a different agent, and the lockout is in the journal
    assert tasks["notes"]["agents"] == ["tester", "backend"] and tasks["notes"]["rounds"] == 2
    assert [v["verdict"] for v in tasks["notes"]["verdicts"]] == ["reject", "approve"]
    events = _events(repo, run)
    assert {"type": "lockout", "task": "notes", "agent": "tester"}.items() <= next(
        e for e in events if e["type"] == "lockout"
    ).items()
    # integrated: every task's work is on the run branch, the user's branch is untouched
    assert git(repo, "show", f"squad/{run}:app.py") == 'def health() -> str:\n    return "ok"\n'
    assert "health() returns 'ok'" in git(repo, "show", f"squad/{run}:NOTES.md")
    assert "import app" in git(repo, "show", f"squad/{run}:check.py")
    assert git(repo, "rev-parse", "HEAD").strip() == head and not (repo / "app.py").exists()
    # the dependent task started from its dependency's approved work
    check_started = next(e for e in events if e["type"] == "task_started" and e["task"] == "check")
    api_approved = next(e for e in events if e["type"] == "task_approved" and e["task"] == "api")
    assert check_started["ts"] >= api_approved["ts"]
    assert check_started["base_commit"] == api_approved["commit"]
    # the run's decision is committed under decisions/ on the run branch, by squad
    assert [d["title"] for d in report["decisions"]] == ["Health check is a plain function"]
    files = git(repo, "ls-tree", "-r", "--name-only", f"squad/{run}", "decisions").split()
    assert len(files) == 1 and files[0].endswith(f"-{run}.md")
    assert git(repo, "log", "-1", "--format=%an", f"squad/{run}") == "squad\n"
    merges = git(repo, "log", "--merges", "--reverse", "--format=%s", f"squad/{run}").splitlines()
    # each merge names the author of the approved work: notes' revision was backend's, not the planned tester's
    assert merges == [
        "squad: merge task api (backend)",
        "squad: merge task notes (backend)",
        "squad: merge task check (tester)",
    ]
    assert report["tests"]["passed"] is True
    # usage roll-up is in the report and in `squad cost`
    assert report["usage"]["by_agent"]["backend"]["calls"] == 5  # 3 turns on api + 2 on notes-r1
    cost = json.loads(_squad(repo, "cost", run, "--json").stdout)
    assert cost["by_agent"]["reviewer"]["calls"] == 4 and cost["total"] == report["usage"]["total"]
    runs = json.loads(_squad(repo, "runs", "--json").stdout)
    assert [(r["run"], r["status"]) for r in runs] == [(run, "done")]
    log = _squad(repo, "log")
    assert (
        log.returncode == 0
        and "lockout reviewer" not in log.stdout
        and "lockout tester may not revise notes" in log.stdout
    )
    assert "verdict reviewer notes REJECT" in log.stdout
    # worktrees of a finished run are released
    assert not list(
        (Path(git(repo, "rev-parse", "--git-common-dir").strip()).resolve() / "squad").glob(f"worktrees/{run}/*")
    )


@pytest.mark.timeout(60)
def test_rejected_with_everyone_locked_out_needs_a_human(repo: Path) -> None:
    _setup(repo, ["backend", "reviewer"])
    out = _squad(
        repo,
        "run",
        "make it faster",
        "--agent",
        "backend",
        "--json",
        "--model",
        f"scripted:{FIXTURES / 'run_lockout.yaml'}",
    )
    assert out.returncode == 1, out.stderr
    report = json.loads(out.stdout)
    assert report["status"] == "needs_human"
    (task,) = report["tasks"]
    assert task["id"] == "make-it-faster" and task["status"] == "needs_human"
    assert "Show a benchmark." in report["needs_human"][0]
    events = _events(repo, report["run"])
    assert [e["agent"] for e in events if e["type"] == "lockout"] == ["backend"]
    status = next(e for e in events if e["type"] == "task_status")
    assert "every eligible agent is locked out" in status["reason"]
    # a failed run keeps its worktree for inspection / resume
    common = Path(git(repo, "rev-parse", "--git-common-dir").strip()).resolve()
    assert (common / "squad" / "worktrees" / report["run"] / "make-it-faster").is_dir()


NO_VERDICT_SCRIPT = """version: 1
scripts:
  - agent: backend
    task: make-it-faster
    turns:
      - tool_calls: [{name: write_file, input: {path: fast.py, content: "FAST = True\\n"}}]
      - tool_calls: [{name: finish, input: {summary: Made it fast}}]
  - agent: reviewer
    task: make-it-faster
    turns:
      - text: Looks good to me, ship it.
"""


@pytest.mark.timeout(60)
def test_a_reviewer_that_submits_no_verdict_rejects_the_work(repo: Path, tmp_path: Path) -> None:
    """The gate through `squad run`: a review that ends without `submit_verdict` (here: praise in plain text)
    is a rejection, never an approval; nothing is merged."""
    _setup(repo, ["backend", "reviewer"])
    script = tmp_path / "no_verdict.yaml"
    script.write_text(NO_VERDICT_SCRIPT)
    out = _squad(repo, "run", "make it faster", "--agent", "backend", "--json", "--model", f"scripted:{script}")
    assert out.returncode == 1, out.stderr
    report = json.loads(out.stdout)
    (task,) = report["tasks"]
    assert task["status"] != "approved" and report["status"] == "needs_human"
    (verdict,) = task["verdicts"]
    assert verdict["verdict"] == "reject" and verdict["complete"] is False
    (finding,) = verdict["findings"]
    assert finding["severity"] == "blocking"
    assert "did not submit a verdict (stopped: end_turn)" in finding["message"]
    events = _events(repo, report["run"])
    assert not [e for e in events if e["type"] in ("task_approved", "merged")]
    integrated = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", f"squad/{report['run']}"], cwd=repo, capture_output=True, text=True
    ).stdout
    assert "fast.py" not in integrated  # nothing was integrated (the run branch may not even exist)


@pytest.mark.timeout(60)
def test_usage_errors_exit_2(repo: Path) -> None:
    _setup(repo, ["backend", "reviewer"])
    assert _squad(repo, "run").returncode == 2
    out = _squad(repo, "run", "x", "--agent", "reviewer")
    assert out.returncode == 2 and "reviewer" in out.stderr
    assert _squad(repo, "run", "x", "--agent", "nobody").returncode == 2
    assert _squad(repo, "log").returncode == 2  # no runs yet
    assert _squad(repo, "run", "--resume", "20990101-000000-zzzz").returncode == 2


@pytest.mark.timeout(60)
def test_plan_json_is_the_validated_plan(repo: Path) -> None:
    _setup(repo, ["lead", "backend", "tester", "reviewer"])
    out = _squad(repo, "plan", "add a health check", "--json", "--model", f"scripted:{FIXTURES / 'run_team.yaml'}")
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert [(t["id"], t["agent"], t["depends_on"]) for t in plan["tasks"]] == [
        ("api", "backend", []),
        ("notes", "tester", []),
        ("check", "tester", ["api"]),
    ]
    assert not (repo / ".squad" / "runs").exists()  # planning alone records no run


SLOW_SCRIPT = """
version: 1
scripts:
  - agent: lead
    task: plan
    turns:
      - tool_calls:
          - name: submit_plan
            input:
              tasks:
                - {id: quick, agent: backend, goal: "quick.py", files: [quick.py]}
                - {id: slow, agent: tester, goal: "slow.py", files: [slow.py]}
  - agent: backend
    task: quick
    turns:
      - tool_calls: [{name: write_file, input: {path: quick.py, content: "Q = 1\\n"}}]
      - tool_calls: [{name: finish, input: {summary: quick}}]
  - agent: tester
    task: slow
    turns:
      - latency_ms: SLOW
        tool_calls: [{name: write_file, input: {path: slow.py, content: "S = 1\\n"}}]
      - tool_calls: [{name: finish, input: {summary: slow}}]
  - agent: reviewer
    turns:
      - tool_calls: [{name: submit_verdict, input: {verdict: approve, summary: ok, findings: []}}]
  - agent: reviewer
    turns:
      - tool_calls: [{name: submit_verdict, input: {verdict: approve, summary: ok, findings: []}}]
"""


@pytest.mark.timeout(90)
def test_ctrl_c_keeps_state_and_resume_finishes_without_redoing_approved_work(repo: Path, tmp_path: Path) -> None:
    _setup(repo, ["lead", "backend", "tester", "reviewer"])
    script = tmp_path / "slow.yaml"
    script.write_text(SLOW_SCRIPT.replace("SLOW", "20000"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "squad", "run", "two files", "--model", f"scripted:{script}"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    runs_dir = repo / ".squad" / "runs"
    run = None
    while run is None:  # until the quick task is approved (the test's timeout is the failsafe)
        assert proc.poll() is None, proc.communicate()
        found = list(runs_dir.glob("*/events.jsonl")) if runs_dir.exists() else []
        if found and '"task_approved"' in found[0].read_text():
            run = found[0].parent.name
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert f"squad run --resume {run}" in stderr
    events = _events(repo, run)
    assert events[-1]["type"] == "interrupted"
    common = Path(git(repo, "rev-parse", "--git-common-dir").strip()).resolve()
    assert (common / "squad" / "worktrees" / run / "slow").is_dir()  # kept for resume

    script.write_text(SLOW_SCRIPT.replace("SLOW", "10"))
    out = _squad(repo, "run", "--resume", run, "--json", "--model", f"scripted:{script}")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["status"] == "done" and report["run"] == run
    events = _events(repo, run)
    cut = next(i for i, e in enumerate(events) if e["type"] == "interrupted")
    before = sorted(e["task"] for e in events[:cut] if e["type"] == "task_started")
    after = [e["task"] for e in events[cut:] if e["type"] == "task_started"]
    assert before == ["quick", "slow"] and after == ["slow"]  # the approved task is not redone
    assert sum(1 for e in events if e["type"] == "plan") == 1  # not re-planned
    assert git(repo, "show", f"squad/{run}:quick.py") == "Q = 1\n"
    assert git(repo, "show", f"squad/{run}:slow.py") == "S = 1\n"


@pytest.mark.timeout(60)
def test_apply_refuses_a_dirty_tree_and_merges_a_clean_one(repo: Path) -> None:
    _setup(repo, ["backend", "reviewer"])
    script = FIXTURES / "run_apply.yaml"
    (repo / "README.md").write_text("# demo\nlocal edit\n")
    out = _squad(repo, "run", "add fast", "--agent", "backend", "--apply", "--json", "--model", f"scripted:{script}")
    assert out.returncode == 2 and "uncommitted changes" in out.stderr
    git(repo, "checkout", "--", "README.md")
    out = _squad(repo, "run", "add fast", "--agent", "backend", "--apply", "--json", "--model", f"scripted:{script}")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["applied"] is True
    assert (repo / "fast.py").read_text() == "FAST = True\n"
    assert os.path.exists(repo / ".squad" / "runs")


PARALLEL_SCRIPT = {
    "version": 1,
    "scripts": [
        {
            "agent": "lead",
            "task": "plan",
            "turns": [
                {
                    "tool_calls": [
                        {
                            "name": "submit_plan",
                            "input": {
                                # plan order puts `last` second: it must wait for t0, not for a wave
                                "tasks": [
                                    {"id": "t0", "agent": "backend", "goal": "file t0"},
                                    {"id": "last", "agent": "backend", "goal": "after t0", "depends_on": ["t0"]},
                                ]
                                + [{"id": f"t{i}", "agent": "backend", "goal": f"file t{i}"} for i in (1, 2, 3)]
                            },
                        }
                    ]
                }
            ],
        },
        *[
            {
                "agent": "backend",
                "task": tid,
                "turns": [
                    {
                        "latency_ms": 800 if tid != "t0" else 50,
                        "tool_calls": [{"name": "write_file", "input": {"path": f"{tid}.py", "content": "X = 1\n"}}],
                    },
                    {"tool_calls": [{"name": "finish", "input": {"summary": tid}}]},
                ],
            }
            for tid in ("t0", "t1", "t2", "t3", "last")
        ],
        *[
            {
                "agent": "reviewer",
                "task": tid,
                "turns": [
                    {"tool_calls": [{"name": "submit_verdict", "input": {"verdict": "approve", "summary": "ok"}}]}
                ],
            }
            for tid in ("t0", "t1", "t2", "t3", "last")
        ],
    ],
}


@pytest.mark.timeout(60)
def test_library_run_respects_the_cap_and_starts_dependents_early(repo: Path, tmp_path: Path) -> None:
    import asyncio

    import yaml

    from squad.config import load_settings, load_team
    from squad.orchestration import Coordinator, RunConfig

    _setup(repo, ["lead", "backend", "reviewer"], "[concurrency]\nmax_agents = 2\n")
    script = tmp_path / "parallel.yaml"
    script.write_text(yaml.safe_dump(PARALLEL_SCRIPT))
    from squad.models import create_model
    from squad.models.base import ModelRequest

    seen: list[Any] = []
    requests: list[ModelRequest] = []
    settings = load_settings(repo)

    class Observed:
        """The real model, with every request kept so the shared prompt prefix can be compared."""

        def __init__(self, name: str, runtime: Any) -> None:
            self.inner = create_model(name, settings=settings, runtime=runtime)
            self.name = self.inner.name

        async def complete(self, request: ModelRequest, on_event: Any = None) -> Any:
            requests.append(request)
            return await self.inner.complete(request, on_event)

    config = RunConfig.build(repo, settings, load_team(repo), model=f"scripted:{script}")
    coord = Coordinator(config, model_factory=Observed, on_event=seen.append)
    report = asyncio.run(coord.run("five files"))
    assert report.status == "done", report.error
    # every specialist (workers and reviewer) sends a byte-identical prefix: tools, then the shared blocks
    agents = [r for r in requests if r.task != "plan"]
    assert {r.agent for r in agents} == {"backend", "reviewer"}
    breakpoint_at = [b.cache for b in agents[0].system].index(True)
    for r in agents:
        assert r.tools == agents[0].tools and [t.name for t in r.tools] == sorted(t.name for t in r.tools)
        assert r.system[: breakpoint_at + 1] == agents[0].system[: breakpoint_at + 1]
        assert [b.cache for b in r.system].count(True) == 1 and len(r.system) == breakpoint_at + 2  # + charter
    events = _events(repo, report.run)
    assert [e.type for e in seen] == [e["type"] for e in events]  # the live view sees every event
    # replay the start/end of each task: never more than 2 at once, and 2 did run together
    running, peak = set(), 0
    for e in events:
        if e["type"] == "task_started":
            running.add(e["task"])
            peak = max(peak, len(running))
        elif e["type"] in ("task_approved", "task_status"):
            running.discard(e["task"])
    assert peak == 2
    # t0 is fast, t1 slow: `last` starts as soon as t0 is approved, while t1 still runs (no waves)
    order = [e["task"] for e in events if e["type"] == "task_started"]
    assert set(order[:2]) == {"t0", "t1"} and order[2:] == ["last", "t2", "t3"]
    # (journal order, not timestamps: the journal is appended in the order things happen)
    last_start = next(i for i, e in enumerate(events) if e["type"] == "task_started" and e["task"] == "last")
    t1_done = next(i for i, e in enumerate(events) if e["type"] == "task_approved" and e["task"] == "t1")
    assert last_start < t1_done
    assert git(repo, "show", f"squad/{report.run}:last.py") == "X = 1\n"


@pytest.mark.timeout(60)
def test_plain_output_prints_one_line_per_event_then_the_report(repo: Path) -> None:
    _setup(repo, ["backend", "reviewer"])
    out = _squad(repo, "run", "add fast", "--agent", "backend", "--model", f"scripted:{FIXTURES / 'run_apply.yaml'}")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(" task_started backend add-fast round 0" in line for line in lines)
    assert any(" verdict reviewer add-fast APPROVE" in line for line in lines)
    assert any(line.startswith("next: git merge squad/") for line in lines)


def _two_writers(content_a: str, content_b: str, verdict: str = "approve") -> dict[str, Any]:
    """A plan of two independent tasks that both write same.txt."""

    def worker(agent: str, tid: str, content: str) -> dict[str, Any]:
        return {
            "agent": agent,
            "task": tid,
            "turns": [
                {"tool_calls": [{"name": "write_file", "input": {"path": "same.txt", "content": content}}]},
                {"tool_calls": [{"name": "finish", "input": {"summary": tid}}]},
            ],
        }

    approve = {"tool_calls": [{"name": "submit_verdict", "input": {"verdict": verdict, "summary": "ok"}}]}
    plan = [
        {"id": "one", "agent": "backend", "goal": "write same.txt"},
        {"id": "two", "agent": "tester", "goal": "write same.txt too"},
    ]
    return {
        "version": 1,
        "scripts": [
            {
                "agent": "lead",
                "task": "plan",
                "turns": [{"tool_calls": [{"name": "submit_plan", "input": {"tasks": plan}}]}],
            },
            worker("backend", "one", content_a),
            worker("tester", "two", content_b),
            {"agent": "reviewer", "turns": [approve]},
            {"agent": "reviewer", "turns": [approve]},
        ],
    }


@pytest.mark.timeout(60)
def test_all_or_nothing_without_conflict_rounds_stops_with_the_conflicted_files(repo: Path, tmp_path: Path) -> None:
    """`[review] integrate = "all"` and no conflict rounds: the former behaviour, the conflict is the status."""
    import yaml

    _setup(repo, ["lead", "backend", "tester", "reviewer"], '[review]\nintegrate = "all"\nmax_rounds = 0\n')
    script = tmp_path / "conflict.yaml"
    script.write_text(yaml.safe_dump(_two_writers("A\n", "B\n")))
    out = _squad(repo, "run", "write it twice", "--json", "--model", f"scripted:{script}")
    assert out.returncode == 1, out.stderr
    report = json.loads(out.stdout)
    assert report["status"] == "conflict" and report["conflicts"] == ["same.txt"]
    assert {t["id"]: t["status"] for t in report["tasks"]} == {"one": "approved", "two": "conflict"}
    assert git(repo, "show", f"squad/{report['run']}:same.txt") == "A\n"  # first in plan order merged


@pytest.mark.timeout(60)
def test_failing_tests_turn_an_approval_into_a_rejection(repo: Path, tmp_path: Path) -> None:
    import yaml

    _setup(repo, ["backend", "reviewer"])
    # the project's test: fails when a file named BROKEN exists
    (repo / "check.py").write_text("import os, sys\nsys.exit(1 if os.path.exists('BROKEN') else 0)\n")
    settings = (repo / ".squad" / "squad.toml").read_text()
    settings = settings.replace("-m compileall -q .", "check.py")
    (repo / ".squad" / "squad.toml").write_text(settings)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "check")
    approve = {"tool_calls": [{"name": "submit_verdict", "input": {"verdict": "approve", "summary": "ok"}}]}
    script = {
        "version": 1,
        "scripts": [
            {
                "agent": "backend",
                "turns": [
                    {"tool_calls": [{"name": "write_file", "input": {"path": "BROKEN", "content": "x\n"}}]},
                    {"tool_calls": [{"name": "finish", "input": {"summary": "broke it"}}]},
                ],
            },
            {
                "agent": "reviewer",
                "turns": [approve],
            },
        ],
    }
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(script))
    out = _squad(repo, "run", "break it", "--agent", "backend", "--json", "--model", f"scripted:{path}")
    assert out.returncode == 1, out.stderr
    report = json.loads(out.stdout)
    (verdict,) = report["tasks"][0]["verdicts"]
    assert verdict["verdict"] == "reject"
    assert "review.require_tests" in verdict["findings"][-1]["message"]
    tests = next(e for e in _events(repo, report["run"]) if e["type"] == "tests" and e["where"] != "baseline")
    assert tests["passed"] is False and tests["exit_code"] == 1
