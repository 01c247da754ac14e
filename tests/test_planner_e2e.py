"""The lead reads the code, then plans: `squad run` through the CLI, the real AnthropicModel over real HTTP
against the loopback Messages API, real worktrees and tools. What the server received is what is checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import git
from messages_server import MessagesServer, RecordedRequest, Reply

API_KEY = "sk-ant-planner-0123456789"
PY = sys.executable
CHARTERS = {
    "lead": "name: lead\nrole: tech lead\ntools: [read, team]\n",
    "backend": "name: backend\nrole: backend engineer\ntools: [read, write, team]\nowns: ['*.py']\n",
    "reviewer": "name: reviewer\nrole: code reviewer\ntools: [read]\nreviewer: true\n",
}
INTERFACE = "def health() -> str in app.py, returns 'ok'"


def _tool(name: str, **args: Any) -> dict[str, Any]:
    return {"name": name, "input": args}


def _setup(repo: Path, settings: str) -> None:
    agents = repo / ".squad" / "agents"
    agents.mkdir(parents=True)
    for name, front in CHARTERS.items():
        (agents / f"{name}.md").write_text(f"---\n{front}---\nYou are the {name}.\n")
    (repo / ".squad" / "squad.toml").write_text(f'[commands]\ntest = "{PY} -c pass"\n{settings}')
    (repo / ".gitignore").write_text(".squad/runs/\n__pycache__/\n")
    (repo / "app.py").write_text("def status() -> str:\n    return 'up'\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "setup")


def _shared_prefix(req: RecordedRequest) -> str:
    """The bytes every agent of a run must send alike: the tools, then the system blocks to the breakpoint."""
    system = req.body["system"]
    marks = [i for i, b in enumerate(system) if b.get("cache_control")]
    assert len(marks) == 1, marks
    return json.dumps([req.body["tools"], system[: marks[0] + 1]])


def _tool_results(req: RecordedRequest) -> list[dict[str, Any]]:
    return [
        block
        for m in req.body["messages"]
        if m["role"] == "user" and isinstance(m["content"], list)
        for block in m["content"]
        if block.get("type") == "tool_result"
    ]


@pytest.mark.timeout(120)
def test_the_lead_reads_records_and_plans_on_its_forced_last_turn(repo: Path) -> None:
    _setup(repo, "[budgets]\nplan_turns = 4\n")
    (repo / "app.py").write_text("UNCOMMITTED = True\n")  # the lead reads the run's base commit, not this
    plan = [{"id": "api", "agent": "backend", "goal": "Add health().", "files": ["app.py"], "interfaces": [INTERFACE]}]
    decision = _tool("record_decision", title="Health is a function", decision="health() in app.py returns 'ok'.")
    with MessagesServer(api_key=API_KEY) as server:
        server.script(
            "lead/plan",
            Reply(text="Reading app.py first.", tool_calls=[_tool("read_file", path="app.py")]),
            Reply(tool_calls=[_tool("search", pattern="def status"), _tool("list_files")]),
            Reply(tool_calls=[decision]),
            Reply(tool_calls=[_tool("submit_plan", tasks=plan)]),
        )
        server.script(
            "backend/api",
            Reply(
                tool_calls=[
                    _tool(
                        "edit_file",
                        path="app.py",
                        old="def status",
                        new="def health() -> str:\n    return 'ok'\n\n\ndef status",
                    )
                ]
            ),
            Reply(tool_calls=[_tool("finish", summary="Added health()")]),
        )
        server.script("reviewer/api", Reply(tool_calls=[_tool("submit_verdict", verdict="approve", summary="ok")]))
        env = {**os.environ, "ANTHROPIC_BASE_URL": server.url, "ANTHROPIC_API_KEY": API_KEY}
        out = subprocess.run(
            [PY, "-m", "squad", "run", "add a health check", "--json"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=90,
            env=env,
        )
        requests = [r for r in server.requests if r.status == 200]
    assert out.returncode == 0, out.stderr + out.stdout
    report = json.loads(out.stdout)
    run = report["run"]
    assert report["status"] == "done"

    lead = [r for r in requests if r.agent == "lead"]
    assert len(lead) == 4
    # free to read on its first turns, made to submit the plan on its last allowed one
    assert [r.body.get("tool_choice") for r in lead] == [None, None, None, {"type": "tool", "name": "submit_plan"}]
    # read-only tools ran before submit_plan, in a view of the base commit
    read, found, listed = (b["content"] for b in _tool_results(lead[2])[:3])
    assert "def status" in read and "UNCOMMITTED" not in read
    assert "app.py:1" in found and "app.py" in listed
    assert "recorded decision" in _tool_results(lead[3])[-1]["content"]
    # the lead's first request sends the specialists' shared prefix byte for byte: one cache entry for all
    specialists = {r.agent: r for r in reversed(requests) if r.agent != "lead"}  # each one's first request
    assert set(specialists) == {"backend", "reviewer"}
    for first in specialists.values():
        assert _shared_prefix(first) == _shared_prefix(lead[0])
    # the plan's interfaces reach the specialist's prompt
    backend_prompt = specialists["backend"].body["messages"][0]["content"]
    assert INTERFACE in json.dumps(backend_prompt)

    events = [json.loads(line) for line in (repo / ".squad" / "runs" / run / "events.jsonl").read_text().splitlines()]
    kinds = [e["type"] for e in events]
    before_plan = [e for e in events[: kinds.index("plan")] if e.get("task") == "plan"]
    assert [e["name"] for e in before_plan if e["type"] == "agent.tool_call"] == [
        "read_file",
        "search",
        "list_files",
        "record_decision",
        "submit_plan",
    ]
    assert [e["turn"] for e in before_plan if e["type"] == "agent.turn_start"] == [1, 2, 3, 4]
    assert next(e for e in before_plan if e["type"] == "agent.agent_stop")["stop_reason"] == "finished"
    assert next(e for e in events if e["type"] == "plan")["tasks"][0]["interfaces"] == [INTERFACE]
    # the lead's decision is in the run's ledger, like anyone's, and committed on the run branch
    assert [(d["title"], d["agent"]) for d in report["decisions"]] == [("Health is a function", "lead")]
    log = subprocess.run([PY, "-m", "squad", "log", run, "--all"], cwd=repo, capture_output=True, text=True, timeout=60)
    assert log.returncode == 0 and "read_file" in log.stdout and "submit_plan" in log.stdout
    # the lead's view is removed, and it never made a branch
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert "--plan" not in git(repo, "branch", "--list")


@pytest.mark.timeout(60)
def test_squad_plan_lets_the_lead_read_and_leaves_nothing_behind(repo: Path) -> None:
    _setup(repo, "[budgets]\nplan_turns = 2\n")
    bad = [{"id": "api", "agent": "frontend", "goal": "x"}]
    good = [{"id": "api", "agent": "backend", "goal": "x", "interfaces": [INTERFACE]}]
    with MessagesServer(api_key=API_KEY) as server:
        server.script(
            "lead/plan",
            Reply(tool_calls=[_tool("read_file", path="app.py")]),
            Reply(tool_calls=[_tool("submit_plan", tasks=bad)]),  # invalid on the forced last turn...
            Reply(tool_calls=[_tool("submit_plan", tasks=good)]),  # ...so one more forced turn to fix it
        )
        env = {**os.environ, "ANTHROPIC_BASE_URL": server.url, "ANTHROPIC_API_KEY": API_KEY}
        out = subprocess.run(
            [PY, "-m", "squad", "plan", "add health", "--json"], cwd=repo, capture_output=True, text=True, env=env
        )
        requests = list(server.requests)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["tasks"][0]["interfaces"] == [INTERFACE]
    assert [r.body.get("tool_choice", {}).get("name") for r in requests] == [None, "submit_plan", "submit_plan"]
    assert "unknown agent 'frontend'" in _tool_results(requests[2])[-1]["content"]
    assert not (repo / ".squad" / "runs").exists()
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert git(repo, "branch", "--list").strip() == "* main"
