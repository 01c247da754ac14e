"""Malformed tool input from the API or a gateway (issue 10, item 5) never kills a run with a traceback.

A tool input that is an array, a string or a number becomes a tool error the model reads (and the run goes
on); JSON the SDK cannot parse (lone surrogate escapes) is a model error that is retried, and fails the
task cleanly when it persists; text nothing can encode as UTF-8 (a file name that is not UTF-8, a lone
surrogate in the model's text) never reaches the SDK's encoder or the journal raw. Real SDK over real HTTP
to the loopback Messages server, the real agent loop and tools, a real run journal.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import git
from messages_server import MessagesServer, Reply
from tools_support import EVERY_TOOL, call, make_ctx

from squad.agents.loop import AgentLimits, AgentResult, run_agent
from squad.agents.tools import default_toolbox
from squad.config import Settings
from squad.infra.journal import Journal
from squad.models.base import SystemBlock
from squad.models.registry import ModelRuntime, create_model
from squad.models.scripted import ScriptedModel

pytestmark = pytest.mark.timeout(60)
FAST = {
    "retry": {"max_attempts": 3, "base_delay_s": 0.0, "max_wait_s": 0.1},
    "rate_limits": {"requests_per_minute": 0, "input_tokens_per_minute": 0, "output_tokens_per_minute": 0},
}
FINISH = Reply(tool_calls=[{"name": "finish", "input": {"summary": "done"}}])


def _run(repo: Path, model_name: str = "claude-sonnet-5-5", model: Any = None) -> tuple[AgentResult, Journal]:
    """One agent (`backend`, task `t1`) through the managed model policy, journaled like a real run."""
    settings = Settings.model_validate(FAST)
    journal = Journal(repo, "20261122-063000-abcd").create()
    runtime = ModelRuntime.from_settings(
        settings, recorder=lambda req, resp: journal.record_response(req.agent, req.task, resp.to_dict())
    )
    ctx = make_ctx(repo, settings=settings)
    result = asyncio.run(
        run_agent(
            model=model or create_model(model_name, settings=settings, runtime=runtime),
            toolbox=default_toolbox(),
            ctx=ctx,
            system=(SystemBlock("You are backend.", cache=True),),
            prompt="Do the task.",
            limits=AgentLimits(max_turns=6, timeout_s=30, max_tokens=512),
            emit=journal.emit,
        )
    )
    return result, journal


def _tool_results(server: MessagesServer) -> list[dict[str, Any]]:
    """Every tool_result block the model was sent, in order (the last request holds the whole history)."""
    last = server.requests[-1].body["messages"]
    return [b for m in last for b in m["content"] if isinstance(b, dict) and b.get("type") == "tool_result"]


@pytest.mark.parametrize(
    ("call_spec", "said"),
    [
        ({"name": "read_file", "input": [["path", "README.md"]]}, "was an array"),
        ({"name": "read_file", "input": [1, 2]}, "was an array"),
        ({"name": "read_file", "input_json": '"README.md"'}, "was a string"),
        ({"name": "read_file", "input_json": "42"}, "was a number"),
        ({"name": "write_file", "input_json": "true"}, "was a boolean"),
    ],
)
def test_tool_input_that_is_not_an_object_is_a_tool_error_the_model_reads(
    repo: Path, messages_server: MessagesServer, call_spec: dict[str, Any], said: str
) -> None:
    messages_server.script("backend/t1", Reply(tool_calls=[call_spec]), FINISH)
    result, journal = _run(repo)
    assert result.stop_reason == "finished", result.error
    (answer,) = _tool_results(messages_server)
    assert answer.get("is_error") is True and said in answer["content"] and "JSON object" in answer["content"]
    echoed = [b for m in messages_server.requests[-1].body["messages"] for b in m["content"] if b["type"] == "tool_use"]
    assert echoed[0]["input"] == {}  # what the API accepts back in the history
    assert any(e.type == "agent.tool_call" and getattr(e, "is_error", False) for e in journal.read_events())


def test_tool_json_the_sdk_cannot_parse_is_retried_then_fails_the_task_cleanly(
    repo: Path, messages_server: MessagesServer
) -> None:
    surrogate = Reply(tool_calls=[{"name": "read_file", "input_json": '{"path": "a\\ud800.py"}'}])
    messages_server.script("backend/t1", surrogate, FINISH)
    result, journal = _run(repo)
    assert result.stop_reason == "finished", result.error  # the second attempt was fine
    assert any(e.type == "agent.model_retry" for e in journal.read_events())

    messages_server.script("backend/t1", surrogate, surrogate, surrogate)  # a gateway that always mangles it
    failed, journal = _run(repo)
    assert failed.stop_reason == "model_error" and failed.error and "cannot parse" in failed.error, failed.error


def test_text_that_is_not_valid_unicode_never_reaches_the_encoder(repo: Path, messages_server: MessagesServer) -> None:
    """A file name that is not UTF-8 (made by agent code) listed by list_files, and a lone surrogate in the
    model's own text, are sent on (and journaled) in a form UTF-8 can hold."""
    name = os.fsencode(repo) + b"/caf\xe9.py"
    with open(name, "wb") as fh:
        fh.write(b"x = 1\n")
    messages_server.script(
        "backend/t1",
        Reply(text="Looking \ud83d around", tool_calls=[{"name": "list_files", "input": {}}]),
        Reply(tool_calls=[{"name": "search", "input": {"pattern": "x = 1"}}]),
        FINISH,
    )
    result, journal = _run(repo)
    assert result.stop_reason == "finished", result.error
    listed, searched = _tool_results(messages_server)
    assert "caf\\xe9.py" in listed["content"] and "caf\\xe9.py:1: x = 1" in searched["content"]
    texts = [b["text"] for m in messages_server.requests[-1].body["messages"] for b in m["content"] if "text" in b]
    assert "Looking \ufffd around" in texts
    raw = journal.events_path.read_bytes()
    raw.decode("utf-8")  # the journal is valid UTF-8 ...
    assert [json.loads(line) for line in raw.splitlines()]  # ... and valid JSON lines


def test_scripted_and_direct_tool_input_with_lone_surrogates_is_refused(repo: Path) -> None:
    script = {
        "version": 1,
        "scripts": [
            {
                "agent": "backend",
                "turns": [
                    {"tool_calls": [{"name": "write_file", "input": {"path": "a.py", "content": "x = '\ud800'\n"}}]},
                    {"tool_calls": [{"name": "finish", "input": {"summary": "done"}}]},
                ],
            }
        ],
    }
    result, journal = _run(repo, model=ScriptedModel(script))
    assert result.stop_reason == "finished", result.error
    assert not (repo / "a.py").exists()
    answer = next(e.model_dump() for e in journal.read_events() if e.type == "agent.tool_call")
    assert answer["is_error"] and answer["name"] == "write_file"

    ctx = make_ctx(repo, allowed=EVERY_TOOL)
    direct = call(ctx, "write_file", {"path": "b\udcff.py", "content": "x"})
    assert direct.is_error and "not valid Unicode" in direct.content and "path" in direct.content
    assert sorted(p.name for p in repo.iterdir()) == [".git", ".squad", "README.md"]
    assert git(repo, "status", "--porcelain", "--untracked-files=no") == ""
