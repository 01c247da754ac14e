"""A refusal (`stop_reason: "refusal"`) goes to the next model of the `[models] fallback` chain.

Through the real SDK over real HTTP against the loopback Messages server, into the real agent loop with the
real tools in a real git worktree; the last test runs `squad run` in a child process and reads its journal
back through `squad log` and `squad cost`. Each model of the chain is asked once; the refused calls are priced,
booked and recorded like any other; with no model left, the agent ends with the refusal as without a fallback.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import git
from messages_server import MessagesServer, Reply
from model_fakes import ManualClock

from squad.agents.loop import AgentLimits, AgentResult, run_agent
from squad.agents.tools import ToolContext, default_toolbox
from squad.config import ModelsSettings, RateLimitSettings, RetrySettings, Settings
from squad.domain.events import AgentEvent
from squad.infra.workspace import Workspace
from squad.models import ModelRequest, ModelResponse, ModelRuntime, SystemBlock, create_model

pytestmark = pytest.mark.timeout(60)

PRIMARY, SECOND, THIRD = "claude-sonnet-5-5", "claude-haiku-5-5", "claude-opus-5-5"
CYBER = {"type": "refusal", "category": "cyber", "explanation": "looks like exploit development"}
FINISH = {"name": "finish", "input": {"summary": "done by the fallback"}}


def _settings(*fallback: str) -> Settings:
    return Settings(
        retry=RetrySettings(max_attempts=2, base_delay_s=0.01, max_wait_s=0.5),
        rate_limits=RateLimitSettings(requests_per_minute=0, input_tokens_per_minute=0, output_tokens_per_minute=0),
        models=ModelsSettings(fallback=list(fallback)),
    )


def _run(
    repo: Path, server: MessagesServer, settings: Settings, *replies: Reply
) -> tuple[AgentResult, list[AgentEvent], list[ModelResponse], ModelRuntime]:
    """Script `replies` for backend/work (whichever model asks) and run the backend's loop on a fresh worktree."""
    server.script("backend/work", *replies)
    lease = Workspace(repo).lease("20261129-230000-a1b2", "work")
    events: list[AgentEvent] = []
    recorded: list[ModelResponse] = []

    def record(request: ModelRequest, response: ModelResponse) -> None:
        recorded.append(response)

    runtime = ModelRuntime.from_settings(settings, recorder=record, clock=ManualClock(autojump=True))
    ctx = ToolContext(
        worktree=lease.path,
        run_id="20261129-230000-a1b2",
        agent="backend",
        task="work",
        settings=settings,
        base_commit=lease.base_commit,
        ledger_file=None,
        allowed=frozenset({"read_file", "write_file", "finish"}),
    )

    async def main() -> AgentResult:
        try:
            return await run_agent(
                model=create_model(PRIMARY, settings=settings, runtime=runtime),
                toolbox=default_toolbox(),
                ctx=ctx,
                system=(SystemBlock("You are backend.", cache=True),),
                prompt="Write the exploit detector.",
                limits=AgentLimits(max_turns=10, timeout_s=30, max_tokens=512),
                emit=events.append,
            )
        finally:
            await runtime.aclose()

    return asyncio.run(main()), events, recorded, runtime


def _models_asked(server: MessagesServer) -> list[str]:
    return [r.body["model"] for r in server.requests_for("backend")]


def test_a_refusal_goes_to_the_fallback_whose_answer_the_agent_gets(
    repo: Path, messages_server: MessagesServer
) -> None:
    result, events, recorded, runtime = _run(
        repo,
        messages_server,
        _settings(SECOND),
        Reply(text="I can't help with that.", stop_reason="refusal", stop_details=CYBER),
        Reply(tool_calls=[FINISH]),
    )
    assert (result.stop_reason, result.summary) == ("finished", "done by the fallback"), result.error
    assert _models_asked(messages_server) == [PRIMARY, SECOND]
    first, second = messages_server.requests_for("backend")
    assert first.body["messages"] == second.body["messages"]  # the same request, not a continuation
    # Both calls are recorded (journal and replay) and priced, and both count in the run's spend.
    assert [(r.model, r.stop_reason) for r in recorded] == [(PRIMARY, "refusal"), (SECOND, "tool_use")]
    assert all(r.cost_usd > 0 for r in recorded)
    assert runtime.spend.model(PRIMARY).turns == 1 and runtime.spend.model(SECOND).turns == 1
    assert runtime.spend.run.usd == pytest.approx(sum(r.cost_usd for r in recorded))
    assert result.cost_usd == pytest.approx(runtime.spend.run.usd)  # the agent's own total counts the refusal
    (fell,) = [e for e in events if e.type == "agent.model_fallback"]
    assert (fell.after, fell.model) == (PRIMARY, SECOND)  # type: ignore[attr-defined]
    assert fell.reason == f"{PRIMARY} refused (cyber: looks like exploit development)"  # type: ignore[attr-defined]


def test_without_a_fallback_a_refusal_ends_the_agent_as_before(repo: Path, messages_server: MessagesServer) -> None:
    result, events, recorded, _ = _run(
        repo,
        messages_server,
        _settings(),
        Reply(text="I can't", stop_reason="refusal", stop_details=CYBER),
        Reply(tool_calls=[FINISH]),
    )
    assert result.stop_reason == "refused"
    assert result.error == f"{PRIMARY} refused to continue (cyber: looks like exploit development)"
    assert _models_asked(messages_server) == [PRIMARY]
    assert [r.stop_reason for r in recorded] == ["refusal"]
    assert not [e for e in events if e.type == "agent.model_fallback"]


def test_when_every_model_refuses_each_is_asked_once_and_the_agent_ends_refused(
    repo: Path, messages_server: MessagesServer
) -> None:
    last = {"type": "refusal", "category": None, "explanation": "not something I can help with"}
    result, events, recorded, runtime = _run(
        repo,
        messages_server,
        _settings(SECOND, THIRD, PRIMARY),  # the primary listed again is not asked twice
        Reply(text="No.", stop_reason="refusal", stop_details=CYBER),
        Reply(text="No.", stop_reason="refusal", stop_details=CYBER),
        Reply(text="No.", stop_reason="refusal", stop_details=last),
        Reply(tool_calls=[FINISH]),  # never asked for
    )
    assert result.stop_reason == "refused"
    assert result.error == f"{THIRD} refused to continue (not something I can help with)"
    assert _models_asked(messages_server) == [PRIMARY, SECOND, THIRD]
    assert [(r.model, r.stop_reason) for r in recorded] == [(m, "refusal") for m in (PRIMARY, SECOND, THIRD)]
    assert runtime.spend.run.turns == 3 and runtime.spend.run.usd == pytest.approx(result.cost_usd)
    fell = [(e.after, e.model) for e in events if e.type == "agent.model_fallback"]  # type: ignore[attr-defined]
    assert fell == [(PRIMARY, SECOND), (SECOND, THIRD)]


def test_a_refusal_later_in_a_session_falls_back_for_that_call_only(
    repo: Path, messages_server: MessagesServer
) -> None:
    """Each call starts at the primary: a refusal moves one request on, it does not demote the primary."""
    write = {"name": "write_file", "input": {"path": "a.py", "content": "a = 1\n"}}
    result, _, _, _ = _run(
        repo,
        messages_server,
        _settings(SECOND),
        Reply(tool_calls=[write]),
        Reply(text="No.", stop_reason="refusal", stop_details=CYBER),
        Reply(tool_calls=[FINISH]),
    )
    assert result.stop_reason == "finished", result.error
    assert _models_asked(messages_server) == [PRIMARY, PRIMARY, SECOND]


@pytest.mark.timeout(120)
def test_squad_log_and_cost_show_which_model_refused_and_which_answered(repo: Path) -> None:
    """Through `squad run` in a child process with `[models] fallback`: the task is done by the fallback, the
    journal holds both calls, and `squad log --all` / `squad cost` say who refused and who answered."""
    agents = repo / ".squad" / "agents"
    agents.mkdir(parents=True)
    (agents / "backend.md").write_text(
        "---\nname: backend\nrole: backend\ntools: [read, write]\n---\nYou are backend.\n"
    )
    (agents / "reviewer.md").write_text("---\nname: reviewer\nrole: reviewer\ntools: [read]\nreviewer: true\n---\nR.\n")
    (repo / ".squad" / "squad.toml").write_text(
        f'[commands]\ntest = ""\n[models]\ndefault = "{PRIMARY}"\nfallback = ["{SECOND}"]\n'
    )
    (repo / ".gitignore").write_text(".squad/runs/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "squad setup")
    write = {"name": "write_file", "input": {"path": "detector.py", "content": "SIGNS = []\n"}}
    approve = {"name": "submit_verdict", "input": {"verdict": "approve", "summary": "Fine.", "findings": []}}
    with MessagesServer() as server:
        server.script(
            "backend/detect",
            Reply(text="I can't help with that.", stop_reason="refusal", stop_details=CYBER),
            Reply(tool_calls=[write]),
            Reply(tool_calls=[FINISH]),
        )
        server.script("reviewer/detect", Reply(tool_calls=[approve]))
        env = {**os.environ, "ANTHROPIC_BASE_URL": server.url}
        run = subprocess.run(
            [sys.executable, "-m", "squad", "run", "detect", "--agent", "backend", "--json"],
            cwd=repo, capture_output=True, text=True, env=env, timeout=100,
        )  # fmt: skip
        asked = [r.body["model"] for r in server.requests_for("backend")]
    assert run.returncode == 0, run.stderr
    assert [t["status"] for t in json.loads(run.stdout)["tasks"]] == ["approved"], run.stdout
    assert asked == [PRIMARY, SECOND, PRIMARY]  # the next call starts at the primary again

    def squad(*args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "squad", *args], cwd=repo, capture_output=True, text=True, env=env)
        assert out.returncode == 0, out.stderr
        return out.stdout

    log = [line for line in squad("log", "--all").splitlines() if "backend" in line]
    calls = [line for line in log if "model_call" in line or "model_fallback" in line]
    assert f"model_call backend detect {PRIMARY} " in calls[0] and calls[0].endswith("stop=refusal"), calls
    assert f"{PRIMARY} -> {SECOND}: {PRIMARY} refused (cyber: looks like exploit development)" in calls[1], calls
    assert f"model_call backend detect {SECOND} " in calls[2] and "stop=" not in calls[2], calls
    cost = json.loads(squad("cost", "--json"))
    assert cost["by_agent"]["backend"]["calls"] == 3 and cost["by_model"][SECOND]["calls"] == 1
    assert cost["by_model"][PRIMARY]["calls"] == 3  # the refusal, the backend's next call, the reviewer's
    # The backend's own stop reports what its calls cost, the refused one included.
    events = [json.loads(line) for line in (repo / ".squad" / "runs" / cost["run"] / "events.jsonl").open()]
    (stop,) = [e for e in events if e["type"] == "agent.agent_stop" and e["agent"] == "backend"]
    assert stop["cost_usd"] == pytest.approx(cost["by_agent"]["backend"]["cost_usd"], abs=1e-6)
