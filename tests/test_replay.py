"""Replay: `--model replay:<run>` re-runs a recorded run offline from its responses.jsonl.

The end-to-end test records a run of the scripted team through the real CLI, then replays it in a fresh
clone at the same base commit, and checks that the plan, the verdicts and the resulting tree are the same.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import git
from messages_server import MessagesServer
from test_coordinator_e2e import FIXTURES, _events, _setup, _squad

from squad.config import Settings
from squad.errors import ConfigError
from squad.infra.jsonl import JournalWarning
from squad.models import ModelRequest, ModelResponse, ModelRuntime, ScriptedModel, TextBlock, Usage, create_model
from squad.models.base import Message
from squad.models.registry import replay_dir


def _request(agent: str, task: str) -> ModelRequest:
    return ModelRequest(
        system=(), messages=(Message(role="user", content=(TextBlock(text="go"),)),), agent=agent, task=task
    )


def _row(agent: str, task: str, index: int, text: str) -> str:
    response = ModelResponse(content=(TextBlock(text=text),), stop_reason="end_turn", usage=Usage(1, 1), model="m")
    return json.dumps({"agent": agent, "task": task, "index": index, "response": response.to_dict()})


def test_a_torn_last_line_is_skipped_with_a_warning(tmp_path: Path) -> None:
    good = _row("backend", "api", 0, "hello") + "\n"
    torn = _row("backend", "api", 1, "never finished")[:40]
    (tmp_path / "responses.jsonl").write_text(good + torn)
    with pytest.warns(JournalWarning, match=r"responses\.jsonl:2: skipped an unreadable recorded response"):
        model = ScriptedModel.from_journal(tmp_path)
    first = asyncio.run(model.complete(_request("backend", "api")))
    assert first.content == (TextBlock(text="hello"),)
    with pytest.raises(Exception, match="call #1"):  # the torn call was never recorded
        asyncio.run(model.complete(_request("backend", "api")))


def test_replay_names_resolve_a_run_id_or_a_folder(repo: Path) -> None:
    run = "20261122-063107-a1b2"
    folder = repo / ".squad" / "runs" / run
    folder.mkdir(parents=True)
    (folder / "responses.jsonl").write_text(_row("lead", "plan", 0, "planned") + "\n")
    assert replay_dir(run) == folder.resolve()  # a run id, looked up in this repo's run folders
    assert replay_dir(str(folder)) == folder.resolve()  # or a path to the run folder
    settings = Settings()
    runtime = ModelRuntime.from_settings(settings)
    model = create_model(f"replay:{run}", settings=settings, runtime=runtime)
    response = asyncio.run(model.complete(_request("lead", "plan")))
    assert response.content == (TextBlock(text="planned"),) and response.cost_usd == 0.0
    with pytest.raises(ConfigError, match="no recorded run to replay") as info:
        create_model("replay:20990101-000000-zzzz", settings=settings, runtime=runtime)
    assert "squad runs" in (info.value.hint or "")
    with pytest.raises(ConfigError, match="needs a run id"):
        replay_dir("")


def test_a_recorded_refusal_and_its_fallback_answer_replay_offline(
    tmp_path: Path, messages_server: MessagesServer
) -> None:
    """The run refused on the primary and the fallback answered; both calls are in responses.jsonl. The replay
    plays them in order from the journal: it never asks the live fallback model (the server sees nothing)."""
    refusal = ModelResponse(
        content=(TextBlock(text="No."),), stop_reason="refusal", usage=Usage(1, 1), model="claude-sonnet-5-5"
    )
    rows = [
        {"agent": "backend", "task": "api", "index": 0, "response": refusal.to_dict()},
        json.loads(_row("backend", "api", 1, "from the fallback")),
    ]
    (tmp_path / "responses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    settings = Settings.model_validate({"models": {"fallback": ["claude-haiku-5-5"]}})
    recorded: list[str] = []
    runtime = ModelRuntime.from_settings(settings, recorder=lambda req, resp: recorded.append(resp.stop_reason))
    model = create_model(f"replay:{tmp_path}", settings=settings, runtime=runtime)
    response = asyncio.run(model.complete(_request("backend", "api")))
    assert response.content == (TextBlock(text="from the fallback"),)
    assert recorded == ["refusal", "end_turn"] and messages_server.requests == []


def _report(out: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert out.returncode == 0, out.stderr + out.stdout
    return json.loads(out.stdout)


@pytest.mark.timeout(180)
def test_a_recorded_run_replays_offline_to_the_same_result(repo: Path, tmp_path: Path) -> None:
    _setup(repo, ["lead", "backend", "tester", "reviewer"])
    task = "add a health check"
    first = _report(_squad(repo, "run", task, "--json", "--model", f"scripted:{FIXTURES / 'run_team.yaml'}"))
    recorded = first["run"]

    # a fresh copy of the repo at the same base commit; the recorded run folder is all it gets from the first
    copy = tmp_path / "copy"
    subprocess.run(["git", "clone", "-q", str(repo), str(copy)], check=True)
    assert git(copy, "rev-parse", "HEAD") == git(repo, "rev-parse", "HEAD")
    shutil.copytree(repo / ".squad" / "runs" / recorded, copy / ".squad" / "runs" / recorded)
    second = _report(_squad(copy, "run", "--json", "--model", f"replay:{recorded}"))  # the recorded task
    replayed = second["run"]
    assert replayed != recorded and second["status"] == first["status"] == "done"
    assert second["task"] == first["task"] == task

    def plan(root: Path, run: str) -> list[dict[str, Any]]:
        return next(e["tasks"] for e in _events(root, run) if e["type"] == "plan")

    def verdicts(report: dict[str, Any]) -> dict[str, list[tuple[str, str]]]:
        return {t["id"]: [(v["verdict"], v["summary"]) for v in t["verdicts"]] for t in report["tasks"]}

    assert plan(copy, replayed) == plan(repo, recorded)
    assert verdicts(second) == verdicts(first)
    assert verdicts(first)["notes"][0][0] == "reject"  # the replay went through the revision round too
    # the same tree: bring the replayed branch next to the recorded one and diff them. The ledger file is
    # named after its run and its entries carry the run id, their own ids and dates, so it is compared by content.
    git(repo, "fetch", "-q", str(copy), f"squad/{replayed}:refs/heads/replayed")
    assert git(repo, "diff", "--stat", f"squad/{recorded}", "replayed", "--", ".", ":!decisions") == ""
    assert git(repo, "ls-tree", "-r", "--name-only", "replayed", "--", "app.py", "NOTES.md", "check.py").split() == [
        "NOTES.md",
        "app.py",
        "check.py",
    ]
    assert [d["title"] for d in second["decisions"]] == [d["title"] for d in first["decisions"]]
    # every task has a transcript in the run folder: the author's and reviewer's turns, tool and model calls
    transcripts = repo / ".squad" / "runs" / recorded / "transcripts"
    assert sorted(p.name for p in transcripts.iterdir()) == ["api.jsonl", "check.jsonl", "notes.jsonl", "plan.jsonl"]
    lead = [json.loads(line) for line in (transcripts / "plan.jsonl").read_text().splitlines()]
    assert {r["agent"] for r in lead} == {"lead"} and "agent.agent_stop" in {r["type"] for r in lead}
    notes = [json.loads(line) for line in (transcripts / "notes.jsonl").read_text().splitlines()]
    assert {r["agent"] for r in notes} == {"tester", "backend", "reviewer"}  # both rounds, both reviews
    calls = [r for r in notes if r["type"] == "agent.tool_call"]
    assert {"name", "args", "result_chars", "is_error", "duration_s"} <= calls[0].keys()
    model_calls = [r for r in notes if r["type"] == "model_call"]
    assert model_calls and {"usage", "cost_usd", "latency_s", "lease"} <= model_calls[0].keys()
    # replayed calls cost nothing and send nothing: the model name says where the responses came from
    assert second["cost_usd"] == 0.0
    assert second["usage"]["total"]["calls"] == first["usage"]["total"]["calls"]


@pytest.mark.timeout(120)
def test_replaying_for_another_task_warns(repo: Path) -> None:
    _setup(repo, ["backend", "reviewer"])
    script = f"scripted:{FIXTURES / 'run_apply.yaml'}"
    first = _report(_squad(repo, "run", "add fast", "--agent", "backend", "--json", "--model", script))
    again = _report(_squad(repo, "run", "--json", "--model", f"replay:{first['run']}"))
    # the task and --agent backend both came from the recording: no plan was asked for
    assert again["status"] == "done" and [t["id"] for t in again["tasks"]] == ["add-fast"]
    out = _squad(repo, "run", "add slow", "--json", "--model", f"replay:{first['run']}")
    assert f"warning: run {first['run']} was recorded for 'add fast'" in out.stderr
    # with --agent the task id comes from the task text, so the recording has nothing for it: a clear stop
    assert out.returncode == 1 and json.loads(out.stdout)["status"] == "failed"
    events = json.dumps(_events(repo, json.loads(out.stdout)["run"]))
    assert "no recorded response for agent 'backend' on task 'add-slow'" in events


def test_replay_of_a_missing_run_is_a_usage_error(repo: Path) -> None:
    _setup(repo, ["lead", "backend", "reviewer"])
    out = _squad(repo, "run", "anything", "--model", "replay:20990101-000000-zzzz")
    assert out.returncode == 2, out.stderr
    assert "no recorded run to replay" in out.stderr
