"""Runs that keep their work: partial integration, conflict rounds, and people in the loop.

Through the CLI in child processes (and once in-process, to read the prompts the agents got) with the scripted
model, real git worktrees and a real test command.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import git

from squad.config import load_settings, load_team
from squad.models import create_model
from squad.models.base import ModelRequest
from squad.orchestration import Coordinator, RunConfig

PY = sys.executable
CHARTERS = {
    "lead": "name: lead\nrole: tech lead\ntools: [read, team]\n",
    "backend": "name: backend\nrole: backend engineer\ntools: [read, write, team]\n",
    "tester": "name: tester\nrole: test engineer\ntools: [read, write, team]\n",
    "docs": "name: docs\nrole: technical writer\ntools: [read, write, team]\n",
    "reviewer": "name: reviewer\nrole: code reviewer\ntools: [read]\nreviewer: true\n",
}

pytestmark = pytest.mark.timeout(120)


def _setup(repo: Path, settings: str = "") -> None:
    agents = repo / ".squad" / "agents"
    agents.mkdir(parents=True)
    for name, front in CHARTERS.items():
        (agents / f"{name}.md").write_text(f"---\n{front}---\nYou are the {name}.\n")
    (repo / ".squad" / "squad.toml").write_text(f'[commands]\ntest = "{PY} -m compileall -q ."\n{settings}')
    (repo / ".gitignore").write_text(".squad/runs/\n__pycache__/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "squad setup")


def _write(path: str, content: str) -> dict[str, Any]:
    return {"tool_calls": [{"name": "write_file", "input": {"path": path, "content": content}}]}


FINISH = {"tool_calls": [{"name": "finish", "input": {"summary": "done"}}]}


def _verdict(verdict: str, message: str = "") -> dict[str, Any]:
    findings = [{"file": "", "severity": "blocking", "message": message}] if message else []
    return {
        "tool_calls": [{"name": "submit_verdict", "input": {"verdict": verdict, "summary": "ok", "findings": findings}}]
    }


def _worker(agent: str, task: str, *turns: dict[str, Any]) -> dict[str, Any]:
    return {"agent": agent, "task": task, "turns": [*turns, FINISH]}


def _plan(*tasks: tuple[str, str]) -> dict[str, Any]:
    plan = [{"id": tid, "agent": agent, "goal": f"do {tid}"} for tid, agent in tasks]
    return {
        "agent": "lead",
        "task": "plan",
        "turns": [{"tool_calls": [{"name": "submit_plan", "input": {"tasks": plan}}]}],
    }


def _script(tmp_path: Path, *entries: dict[str, Any]) -> str:
    path = tmp_path / f"script-{len(list(tmp_path.glob('script-*')))}.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "scripts": list(entries)}))
    return f"scripted:{path}"


def _squad(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "squad", *args], cwd=repo, capture_output=True, text=True, timeout=100)


def _events(repo: Path, run: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (repo / ".squad" / "runs" / run / "events.jsonl").read_text().splitlines()]


def test_approved_tasks_are_merged_while_another_needs_a_person(repo: Path, tmp_path: Path) -> None:
    _setup(repo, "[review]\nmax_rounds = 0\n")
    model = _script(
        tmp_path,
        _plan(("api", "backend"), ("notes", "tester"), ("guide", "docs")),
        _worker("backend", "api", _write("api.py", "API = 1\n")),
        _worker("tester", "notes", _write("NOTES.md", "notes\n")),
        _worker("docs", "guide", _write("GUIDE.md", "guide\n")),
        {"agent": "reviewer", "task": "api", "turns": [_verdict("approve")]},
        {"agent": "reviewer", "task": "notes", "turns": [_verdict("approve")]},
        {"agent": "reviewer", "task": "guide", "turns": [_verdict("reject", "the guide is empty")]},
    )
    out = _squad(repo, "run", "three things", "--json", "--model", model)
    assert out.returncode == 1, out.stderr
    report = json.loads(out.stdout)
    run = report["run"]
    assert report["status"] == "partial"
    assert report["merged"] == ["api", "notes"] and report["branch"] == f"squad/{run}"
    assert list(report["not_merged"]) == ["guide"] and report["not_merged"]["guide"].startswith("needs_human")
    tree = git(repo, "ls-tree", "--name-only", f"squad/{run}").split()
    assert {"api.py", "NOTES.md"} <= set(tree) and "GUIDE.md" not in tree
    assert report["tests"]["passed"] is True  # the integrated result is still tested
    assert "--retry guide" in report["next_command"]


def test_a_task_whose_merge_conflicts_gets_a_conflict_round(repo: Path, tmp_path: Path) -> None:
    _setup(repo)
    model = _script(
        tmp_path,
        _plan(("one", "backend"), ("two", "tester")),
        _worker("backend", "one", _write("same.txt", "A\n")),
        _worker("tester", "two", _write("same.txt", "B\n")),
        # the conflict round: two's author gets the run branch with its change merged in, markers and all
        _worker("tester", "two-r1", _write("same.txt", "A\nB\n")),
        {"agent": "reviewer", "task": "one", "turns": [_verdict("approve")]},
        {"agent": "reviewer", "task": "two", "turns": [_verdict("approve")]},
        {"agent": "reviewer", "task": "two-r1", "turns": [_verdict("approve")]},
    )
    out = _squad(repo, "run", "write it twice", "--json", "--model", model)
    assert out.returncode == 0, out.stderr + out.stdout
    report = json.loads(out.stdout)
    run = report["run"]
    assert report["status"] == "done" and report["merged"] == ["one", "two"]
    assert git(repo, "show", f"squad/{run}:same.txt") == "A\nB\n"
    events = _events(repo, run)
    conflict = next(e for e in events if e["type"] == "conflict")
    assert conflict["task"] == "two" and conflict["files"] == ["same.txt"]
    started = [e for e in events if e["type"] == "task_started" and e["task"] == "two"]
    assert [(e["round"], e.get("kind", "work")) for e in started] == [(0, "work"), (1, "conflict")]
    log = _squad(repo, "log", run).stdout
    assert "conflict two" in log and "conflict round 1" in log


def _needs_human(repo: Path, tmp_path: Path) -> str:
    """A one-task run whose work the reviewer rejects with no round left: it needs a person."""
    _setup(repo, "[review]\nmax_rounds = 0\n")
    model = _script(
        tmp_path,
        _worker("backend", "fix", _write("fix.py", "import requests\n")),
        {"agent": "reviewer", "task": "fix", "turns": [_verdict("reject", "no third-party imports")]},
    )
    out = _squad(repo, "run", "fix", "--agent", "backend", "--json", "--model", model)
    report = json.loads(out.stdout)
    assert report["status"] == "needs_human" and report["branch"] is None, out.stderr
    return str(report["run"])


def test_retry_with_a_note_reaches_the_agent_and_the_reviewer(repo: Path, tmp_path: Path) -> None:
    run = _needs_human(repo, tmp_path)
    requests: list[ModelRequest] = []
    settings = load_settings(repo)
    model = _script(
        tmp_path,
        _worker("backend", "fix-r1", _write("fix.py", "import json\n")),
        {"agent": "reviewer", "task": "fix-r1", "turns": [_verdict("approve")]},
    )

    class Observed:
        def __init__(self, name: str, runtime: Any) -> None:
            self.inner = create_model(name, settings=settings, runtime=runtime)
            self.name = self.inner.name

        async def complete(self, request: ModelRequest, on_event: Any = None) -> Any:
            requests.append(request)
            return await self.inner.complete(request, on_event)

    config = RunConfig.build(repo, settings, load_team(repo), model=model)
    report = asyncio.run(
        Coordinator(config, model_factory=Observed).run(resume=run, retry="fix", note="use the standard library only")
    )
    assert report.status == "done", report.error
    prompts = {r.agent: r.messages[0].content[0].text for r in requests}  # type: ignore[union-attr]
    assert (
        "use the standard library only" in prompts["backend"] and "use the standard library only" in prompts["reviewer"]
    )
    reopened = next(e for e in _events(repo, run) if e["type"] == "task_reopened")
    assert reopened["task"] == "fix" and reopened["person"] and reopened["note"] == "use the standard library only"
    assert git(repo, "show", f"squad/{run}:fix.py") == "import json\n"


def test_a_person_approves_rejected_work_and_resume_merges_it(repo: Path, tmp_path: Path) -> None:
    run = _needs_human(repo, tmp_path)
    git(repo, "config", "user.name", "Ada Lovelace")  # the person, as git knows them
    assert _squad(repo, "approve", run, "nope").returncode == 2  # no such task
    assert _squad(repo, "reject", run, "fix", "--note", "x").returncode == 2  # not approved work
    out = _squad(repo, "approve", run, "fix", "--note", "requests is vendored here")
    assert out.returncode == 0, out.stderr
    assert f"squad run --resume {run}" in out.stdout
    out = _squad(repo, "run", "--resume", run, "--json")
    assert out.returncode == 0, out.stderr + out.stdout
    report = json.loads(out.stdout)
    assert report["status"] == "done" and report["merged"] == ["fix"]
    assert git(repo, "show", f"squad/{run}:fix.py") == "import requests\n"
    human = [e for e in _events(repo, run) if e["type"] == "verdict" and e.get("source") == "human"]
    assert len(human) == 1 and human[0]["verdict"] == "approve" and human[0]["reviewer"] == "Ada Lovelace"
    assert "verdict Ada Lovelace (person) fix APPROVE" in _squad(repo, "log", run).stdout
    again = _squad(repo, "reject", run, "fix", "--note", "x")
    assert again.returncode == 2 and "already merged" in again.stderr
