"""Every stop reason of the Messages API, through the real SDK against the loopback server, into the real
agent loop with the real tools in a real git worktree.

A reply is never taken as "done" just because it has no tool call: a reply cut at max_tokens runs none of its
tool calls (the last one holds half its arguments) and is continued, a pause is continued, a refusal and a
full context window end the session, and a model that keeps being cut stops the session as "cut".
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import git
from messages_server import MessagesServer, Reply
from model_fakes import ManualClock

from squad.agents.context import ContextPack
from squad.agents.loop import MAX_CONTINUATIONS, AgentLimits, AgentResult, run_agent
from squad.agents.tools import ToolContext, default_toolbox
from squad.config import Charter, RateLimitSettings, RetrySettings, Settings, Team
from squad.domain.events import AgentEvent, Event
from squad.errors import RunError
from squad.infra.workspace import Workspace
from squad.models import ModelRuntime, SystemBlock, create_model
from squad.orchestration import RunConfig
from squad.orchestration.planner import make_plan

pytestmark = pytest.mark.timeout(60)

SETTINGS = Settings(
    retry=RetrySettings(max_attempts=2, base_delay_s=0.01, max_wait_s=0.5),
    rate_limits=RateLimitSettings(requests_per_minute=0, input_tokens_per_minute=0, output_tokens_per_minute=0),
)
FINISH = {"name": "finish", "input": {"summary": "done"}}
BIG_WRITE = {"name": "write_file", "input": {"path": "big.py", "content": "x = 1\n" * 200}}


def _run(repo: Path, server: MessagesServer, *replies: Reply) -> tuple[AgentResult, list[AgentEvent], Path]:
    """Script `replies` for backend/work and run the backend's loop on a fresh worktree of `repo`."""
    server.script("backend/work", *replies)
    ws = Workspace(repo)
    lease = ws.lease("20261122-063107-a1b2", "work")
    events: list[AgentEvent] = []
    runtime = ModelRuntime.from_settings(SETTINGS, clock=ManualClock(autojump=True))
    ctx = ToolContext(
        worktree=lease.path,
        run_id="20261122-063107-a1b2",
        agent="backend",
        task="work",
        settings=SETTINGS,
        base_commit=lease.base_commit,
        ledger_file=None,
        allowed=frozenset({"read_file", "write_file", "finish"}),
    )

    async def main() -> AgentResult:
        try:
            return await run_agent(
                model=create_model("claude-sonnet-5-5", settings=SETTINGS, runtime=runtime),
                toolbox=default_toolbox(),
                ctx=ctx,
                system=(SystemBlock("You are backend.", cache=True),),
                prompt="Write big.py.",
                limits=AgentLimits(max_turns=10, timeout_s=30, max_tokens=512),
                emit=events.append,
            )
        finally:
            await runtime.aclose()

    return asyncio.run(main()), events, lease.path


def _last_user(server: MessagesServer, call: int) -> list[dict[str, Any]]:
    """The content blocks of the last message of the `call`-th request (0-based)."""
    message = server.requests_for("backend")[call].body["messages"][-1]
    assert message["role"] == "user", message
    return list(message["content"])


def test_a_reply_cut_at_max_tokens_runs_none_of_its_calls_and_is_continued(
    repo: Path, messages_server: MessagesServer
) -> None:
    result, events, worktree = _run(
        repo,
        messages_server,
        Reply(
            text="Writing it.", tool_calls=[{"name": "read_file", "input": {"path": "README.md"}}, BIG_WRITE], cut=True
        ),
        Reply(tool_calls=[FINISH]),
    )
    assert result.stop_reason == "finished", result.error
    assert not (worktree / "big.py").exists()  # the half-sent write_file never ran
    assert not [e for e in events if e.type == "agent.tool_call" and e.name != "finish"]  # type: ignore[attr-defined]
    answer = _last_user(messages_server, 1)  # every cut call answered (the API needs it), then the note
    assert [b["type"] for b in answer] == ["tool_result", "tool_result", "text"]
    assert all(b["is_error"] and "cut at the output limit" in b["content"] for b in answer[:2])
    assert "512 tokens" in answer[2]["text"] and "smaller steps" in answer[2]["text"]
    warning = next(e for e in events if e.type == "agent.warning")
    assert "max_tokens" in warning.message and "2 tool call(s) were not run" in warning.message  # type: ignore[attr-defined]


def test_a_model_that_keeps_being_cut_stops_the_session_as_cut(repo: Path, messages_server: MessagesServer) -> None:
    cut = [Reply(tool_calls=[BIG_WRITE], cut=True) for _ in range(MAX_CONTINUATIONS + 1)]
    result, _, worktree = _run(repo, messages_server, *cut, Reply(tool_calls=[FINISH]))
    assert result.stop_reason == "cut"
    assert f"cut at max_tokens (512) {MAX_CONTINUATIONS + 1} times in a row" in (result.error or "")
    assert "[models] max_tokens" in (result.error or "")
    assert len(messages_server.requests_for("backend")) == MAX_CONTINUATIONS + 1
    assert not (worktree / "big.py").exists()


def test_a_text_reply_cut_at_max_tokens_is_not_taken_as_finished(repo: Path, messages_server: MessagesServer) -> None:
    result, _, _ = _run(
        repo, messages_server, Reply(text="Here is my long plan: first", cut=True), Reply(tool_calls=[FINISH])
    )
    assert result.stop_reason == "finished"
    assert [b["type"] for b in _last_user(messages_server, 1)] == ["text"]


def test_a_refusal_ends_the_session_with_what_the_api_said(repo: Path, messages_server: MessagesServer) -> None:
    details = {"type": "refusal", "category": "cyber", "explanation": "looks like exploit development"}
    result, _, _ = _run(
        repo, messages_server, Reply(text="I can't", stop_reason="refusal", stop_details=details), Reply()
    )
    assert result.stop_reason == "refused"
    assert result.error == "claude-sonnet-5-5 refused to continue (cyber: looks like exploit development)"
    assert len(messages_server.requests_for("backend")) == 1


def test_a_paused_turn_is_sent_back_as_it_is(repo: Path, messages_server: MessagesServer) -> None:
    result, _, _ = _run(
        repo, messages_server, Reply(text="Still searching", stop_reason="pause_turn"), Reply(tool_calls=[FINISH])
    )
    assert result.stop_reason == "finished"
    resumed = messages_server.requests_for("backend")[1].body["messages"][-1]
    assert resumed == {"role": "assistant", "content": [{"type": "text", "text": "Still searching"}]}


def test_a_full_context_window_ends_the_session(repo: Path, messages_server: MessagesServer) -> None:
    result, _, worktree = _run(
        repo, messages_server, Reply(tool_calls=[BIG_WRITE], stop_reason="model_context_window_exceeded"), Reply()
    )
    assert result.stop_reason == "context_full"
    assert "filled claude-sonnet-5-5's context window" in (result.error or "")
    assert not (worktree / "big.py").exists()


def test_tool_use_without_a_tool_call_is_nudged_then_given_up(repo: Path, messages_server: MessagesServer) -> None:
    result, _, _ = _run(
        repo, messages_server, Reply(text="Let me call", stop_reason="tool_use"), Reply(tool_calls=[FINISH])
    )
    assert result.stop_reason == "finished"
    assert "held no tool call" in _last_user(messages_server, 1)[-1]["text"]

    empty = [Reply(text="Let me call", stop_reason="tool_use") for _ in range(MAX_CONTINUATIONS + 1)]
    result, _, _ = _run(repo, messages_server, *empty)
    assert result.stop_reason == "model_error"
    assert "tool_use without a tool call" in (result.error or "")


@pytest.mark.parametrize("why", ["end_turn", "stop_sequence"])
def test_end_turn_and_stop_sequence_end_the_session(repo: Path, messages_server: MessagesServer, why: str) -> None:
    result, _, _ = _run(repo, messages_server, Reply(text="All done.", stop_reason=why))
    assert (result.stop_reason, result.summary) == ("end_turn", "All done.")


def test_tool_calls_run_whatever_completed_stop_reason_came_with_them(
    repo: Path, messages_server: MessagesServer
) -> None:
    result, _, worktree = _run(
        repo,
        messages_server,
        Reply(
            tool_calls=[{"name": "write_file", "input": {"path": "a.py", "content": "a = 1\n"}}], stop_reason="end_turn"
        ),
        Reply(tool_calls=[FINISH]),
    )
    assert result.stop_reason == "finished"
    assert (worktree / "a.py").read_text() == "a = 1\n"


def test_an_unknown_stop_reason_fails_closed(repo: Path, messages_server: MessagesServer) -> None:
    result, _, worktree = _run(repo, messages_server, Reply(tool_calls=[BIG_WRITE], stop_reason="pause_run"))
    assert result.stop_reason == "model_error"
    assert "'pause_run'" in (result.error or "")
    assert not (worktree / "big.py").exists()


def _plan(repo: Path, server: MessagesServer, *replies: Reply) -> tuple[Any, list[Event]]:
    server.script("lead/plan", *replies)
    team = Team(
        agents={
            "lead": Charter(name="lead", role="tech lead"),
            "backend": Charter(name="backend", role="backend engineer"),
            "reviewer": Charter(name="reviewer", role="code reviewer", reviewer=True),
        }
    )
    settings = SETTINGS.model_copy(update={"models": SETTINGS.models.model_copy(update={"max_tokens": 512})})
    runtime = ModelRuntime.from_settings(settings, clock=ManualClock(autojump=True))
    events: list[Event] = []

    async def main() -> Any:
        try:
            return await make_plan(
                RunConfig.build(repo, settings, team),
                task_text="two things",
                model=create_model("claude-sonnet-5-5", settings=settings, runtime=runtime),
                pack=ContextPack.build(repo, settings, "HEAD"),
                workspace=Workspace(repo),
                run_id="20261129-000000-plan",
                ledger_file=None,
                emit=events.append,
            )
        finally:
            await runtime.aclose()

    return asyncio.run(main()), events


PLAN = {
    "tasks": [
        {"id": "one", "agent": "backend", "goal": "first thing"},
        {"id": "two", "agent": "backend", "goal": "second thing", "files": [f"src/m{i}.py" for i in range(12)]},
    ]
}


def test_a_plan_cut_at_max_tokens_is_sent_back_not_run_with_its_first_tasks(
    repo: Path, messages_server: MessagesServer
) -> None:
    plan, _ = _plan(
        repo,
        messages_server,
        Reply(tool_calls=[{"name": "submit_plan", "input": PLAN}], cut=True),
        Reply(tool_calls=[{"name": "submit_plan", "input": PLAN}]),
    )
    # Cut halfway, the call would still parse as a valid plan whose second task lost 11 of its files: it is
    # never run, the lead is told, and its next, whole submission is the plan.
    assert [(t.id, len(t.files)) for t in plan.tasks] == [("one", 0), ("two", 12)]
    second = messages_server.requests[1].body["messages"][-1]["content"]
    assert any("cut at the output limit" in str(block) for block in second)


def test_a_refused_plan_stops_the_run_with_the_reason(repo: Path, messages_server: MessagesServer) -> None:
    details = {"type": "refusal", "category": None, "explanation": "not something I can help with"}
    with pytest.raises(RunError, match=r"stopped planning \(refused\).*\(not something I can help with\)"):
        _plan(repo, messages_server, Reply(text="No.", stop_reason="refusal", stop_details=details))


@pytest.mark.timeout(120)
def test_a_task_cut_at_max_tokens_fails_with_the_reason_in_squad_log(repo: Path) -> None:
    """Through `squad run` in a child process: the cut task is not reviewed, the run fails (exit 1), and
    `squad log` says why in words a person can act on."""
    agents = repo / ".squad" / "agents"
    agents.mkdir(parents=True)
    (agents / "backend.md").write_text(
        "---\nname: backend\nrole: backend\ntools: [read, write]\n---\nYou are backend.\n"
    )
    (agents / "reviewer.md").write_text("---\nname: reviewer\nrole: reviewer\ntools: [read]\nreviewer: true\n---\nR.\n")
    (repo / ".squad" / "squad.toml").write_text(
        '[commands]\ntest = ""\n[models]\ndefault = "claude-sonnet-5-5"\nmax_tokens = 700\n'
    )
    (repo / ".gitignore").write_text(".squad/runs/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "squad setup")
    with MessagesServer() as server:
        server.script("backend/big", *[Reply(tool_calls=[BIG_WRITE], cut=True)] * (MAX_CONTINUATIONS + 1))
        env = {**os.environ, "ANTHROPIC_BASE_URL": server.url}
        run = subprocess.run(
            [sys.executable, "-m", "squad", "run", "big", "--agent", "backend", "--json"],
            cwd=repo, capture_output=True, text=True, env=env, timeout=100,
        )  # fmt: skip
        reviewed = server.requests_for("reviewer")
    assert run.returncode == 1, run.stderr
    report = json.loads(run.stdout)
    assert [t["status"] for t in report["tasks"]] == ["failed"], report
    assert not reviewed  # a cut task never goes to review
    log = subprocess.run([sys.executable, "-m", "squad", "log"], cwd=repo, capture_output=True, text=True, env=env)
    assert "task_status big failed: backend stopped: cut (the model's reply was cut at max_tokens (700) 3 times" in (
        log.stdout
    ), log.stdout
    assert "raise [models] max_tokens" in log.stdout
