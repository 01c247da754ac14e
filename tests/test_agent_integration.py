"""One specialist end to end, with no test doubles: the real ScriptedModel drives the real agent loop,
real jailed tools edit files in a real git worktree, run an allowed test command, record a decision in
the run's ledger, and finish; the worktree commit carries the squad trailers."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from conftest import git

from squad.agents.loop import AgentLimits, run_agent
from squad.agents.tools import ToolContext, default_toolbox
from squad.config import Settings
from squad.domain.ids import new_run_id
from squad.infra.ledger import Ledger
from squad.infra.workspace import Workspace
from squad.models.base import SystemBlock
from squad.models.scripted import ScriptedModel

SCRIPT: dict[str, Any] = {
    "version": 1,
    "scripts": [
        {
            "agent": "backend",
            "task": "greet",
            "turns": [
                {"text": "Reading first.", "tool_calls": [{"name": "read_file", "input": {"path": "greet.py"}}]},
                {
                    "tool_calls": [
                        {
                            "name": "edit_file",
                            "input": {"path": "greet.py", "old": "Hello", "new": "Hello, world"},
                        },
                        {
                            "name": "write_file",
                            "input": {
                                "path": "test_greet.py",
                                "content": "import greet\n\n\ndef test_greet():\n"
                                "    assert greet.greet() == 'Hello, world'\n",
                            },
                        },
                    ]
                },
                {"tool_calls": [{"name": "run", "input": {"command": f"{sys.executable} -m pytest -q"}}]},
                {"tool_calls": [{"name": "run", "input": {"command": "curl http://example.com"}}]},
                {
                    "tool_calls": [
                        {
                            "name": "record_decision",
                            "input": {
                                "title": "Greeting includes the audience",
                                "decision": "greet() returns 'Hello, world'.",
                                "context": "Users asked who is greeted.",
                            },
                        }
                    ]
                },
                {"tool_calls": [{"name": "finish", "input": {"summary": "greet() now says Hello, world"}}]},
            ],
        }
    ],
}


def test_scripted_agent_edits_tests_records_and_commits(repo: Path) -> None:
    (repo / "greet.py").write_text("def greet():\n    return 'Hello'\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "greet")
    user_head = git(repo, "rev-parse", "HEAD").strip()

    settings = Settings.model_validate({"commands": {"allowed": [f"{sys.executable} -m pytest"]}})
    run = new_run_id()
    workspace = Workspace(repo)
    lease = workspace.lease(run, "greet")
    ledger_file = repo / ".squad" / "runs" / run / "ledger.md"
    ledger_file.parent.mkdir(parents=True)
    events: list[Any] = []
    ctx = ToolContext(
        worktree=lease.path,
        run_id=run,
        agent="backend",
        task="greet",
        settings=settings,
        base_commit=lease.base_commit,
        ledger_file=ledger_file,
        allowed=frozenset({"read_file", "edit_file", "write_file", "run", "record_decision", "finish"}),
    )
    result = asyncio.run(
        run_agent(
            model=ScriptedModel(SCRIPT),
            toolbox=default_toolbox(),
            ctx=ctx,
            system=(SystemBlock("You are backend.", cache=True),),
            prompt="Make greet() say hello to the world.",
            limits=AgentLimits(max_turns=10, timeout_s=120, max_tokens=1024),
            emit=events.append,
        )
    )

    assert result.stop_reason == "finished", result.error
    assert result.summary == "greet() now says Hello, world"
    assert result.turns == 6
    tool_events = [e.model_dump() for e in events if e.type == "agent.tool_call"]
    assert [e["name"] for e in tool_events] == [
        "read_file", "edit_file", "write_file", "run", "run", "record_decision", "finish",
    ]  # fmt: skip
    pytest_run, curl_run = tool_events[3], tool_events[4]
    assert not pytest_run["is_error"]
    assert curl_run["is_error"]  # not on the allowlist: refused, and the loop went on

    sha = workspace.commit(lease, agent="backend", message="greet the world")
    assert sha is not None
    body = git(lease.path, "log", "-1", "--format=%an%n%B", sha)
    assert body.startswith("backend (squad)\n")
    assert f"Squad-Run: {run}" in body and "Squad-Agent: backend" in body
    assert "Hello, world" in git(repo, "show", f"{sha}:greet.py")

    entries = Ledger(repo).parse_file(ledger_file).entries
    assert [(e.title, e.agent, e.run) for e in entries] == [("Greeting includes the audience", "backend", run)]

    # The user's branch never moved; nothing leaks into their work tree.
    assert git(repo, "rev-parse", "HEAD").strip() == user_head
    assert (repo / "greet.py").read_text() == "def greet():\n    return 'Hello'\n"
    workspace.release(lease, delete_branch=True)
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
