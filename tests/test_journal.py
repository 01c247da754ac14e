"""The run journal: append-only events, torn-line tolerance, derived state, cost roll-up."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from squad.infra.journal import Journal, cost_rollup, derive_state, latest_run, list_runs
from squad.infra.jsonl import JournalWarning, read_jsonl
from squad.models.base import Message, ModelRequest, ModelResponse, TextBlock, Usage


def _journal(tmp_path: Path, run: str = "20261122-063107-abcd") -> Journal:
    return Journal(tmp_path, run).create()


def test_emit_appends_lines_with_ts_and_notifies_listeners(tmp_path: Path) -> None:
    j = _journal(tmp_path)
    seen: list[dict] = []
    j.listeners.append(seen.append)
    j.emit({"type": "run_started", "task_text": "t"})
    j.emit({"type": "plan", "tasks": []})
    lines = j.events_path.read_text().splitlines()
    assert [json.loads(line)["type"] for line in lines] == ["run_started", "plan"]
    assert all(isinstance(json.loads(line)["ts"], float) for line in lines)
    assert [e["type"] for e in seen] == ["run_started", "plan"]
    assert j.dir == tmp_path / ".squad" / "runs" / "20261122-063107-abcd"


def test_torn_last_line_is_skipped_with_a_warning(tmp_path: Path) -> None:
    j = _journal(tmp_path)
    j.emit({"type": "run_started", "task_text": "x"})
    with j.events_path.open("ab") as fh:
        fh.write(b'{"ts": 1.0, "type": "task_sta')  # what a kill -9 mid-write leaves
    with pytest.warns(JournalWarning, match=r"events.jsonl:2"):
        events = j.read_events()
    assert [e["type"] for e in events] == ["run_started"]
    # a resumed run (create() again) ends the torn line, so the next event is not glued to it
    j = Journal(tmp_path, j.run).create()
    j.emit({"type": "interrupted"})
    with pytest.warns(JournalWarning):
        assert [e["type"] for e in j.read_events()] == ["run_started", "interrupted"]


_WRITER = """
import sys
from pathlib import Path
from squad.infra.journal import Journal
j = Journal(Path(sys.argv[1]), "20261122-000000-kill")
i = 0
while True:
    j.emit({"type": "tick", "i": i, "pad": "x" * 5000})
    i += 1
"""


def test_killed_writer_never_breaks_the_reader(tmp_path: Path) -> None:
    Journal(tmp_path, "20261122-000000-kill").create()
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)])
    events_path = Journal(tmp_path, "20261122-000000-kill").events_path
    deadline = time.monotonic() + 10
    while (not events_path.exists() or events_path.stat().st_size < 200_000) and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("ignore", JournalWarning)
        events = read_jsonl(events_path)
    assert len(events) > 10
    assert [e["i"] for e in events] == list(range(len(events)))  # whole lines, in order, none interleaved


def _emit_many(args: tuple[str, int]) -> None:
    root, worker = args
    j = Journal(Path(root), "20261122-000000-conc")
    for i in range(200):
        j.emit({"type": "tick", "worker": worker, "i": i, "pad": "y" * 3000})


def test_concurrent_processes_never_interleave_lines(tmp_path: Path) -> None:
    Journal(tmp_path, "20261122-000000-conc").create()
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.map(_emit_many, [(str(tmp_path), w) for w in range(4)])
    events = read_jsonl(Journal(tmp_path, "20261122-000000-conc").events_path)
    assert len(events) == 800
    for w in range(4):
        assert [e["i"] for e in events if e["worker"] == w] == list(range(200))


def _request(agent: str, task: str) -> ModelRequest:
    return ModelRequest(system=(), messages=(Message("user", (TextBlock("hi"),)),), agent=agent, task=task)


def _response(model: str, usage: Usage, cost: float) -> ModelResponse:
    return ModelResponse(content=(TextBlock("ok"),), stop_reason="end_turn", usage=usage, model=model, cost_usd=cost)


def test_record_response_indexes_per_agent_task_and_feeds_cost(tmp_path: Path) -> None:
    j = _journal(tmp_path)
    j.record_response(_request("backend", "api"), _response("claude-a", Usage(100, 10, 1000, 0), 0.5))
    j.record_response(_request("backend", "api"), _response("claude-a", Usage(50, 20, 0, 1000), 0.25))
    j.record_response(_request("tester", "api"), _response("claude-b", Usage(10, 5, 0, 2000), 0.125))
    recs = read_jsonl(j.responses_path)
    assert [(r["agent"], r["task"], r["index"]) for r in recs] == [
        ("backend", "api", 0),
        ("backend", "api", 1),
        ("tester", "api", 0),
    ]
    assert ModelResponse.from_dict(recs[0]["response"]).usage.cache_creation_input_tokens == 1000
    # a new Journal object (a resumed run) continues the per-pair index
    j2 = Journal(tmp_path, j.run)
    j2.record_response(_request("backend", "api"), _response("claude-a", Usage(1, 1, 0, 0), 0.0))
    assert read_jsonl(j.responses_path)[-1]["index"] == 2

    roll = cost_rollup(j.read_events())
    assert roll.by_agent["backend"].calls == 3
    assert roll.by_agent["backend"].input_tokens == 151
    assert roll.by_model["claude-b"].cache_read_tokens == 2000
    assert roll.total.cost_usd == pytest.approx(0.875)
    total_in = 161 + 1000 + 3000
    assert roll.total.cache_hit_rate == pytest.approx(3000 / total_in)
    assert roll.to_dict()["total"]["cache_write_tokens"] == 1000


def test_cost_rollup_of_no_calls_is_zero() -> None:
    roll = cost_rollup([{"type": "run_started"}])
    assert roll.total.calls == 0 and roll.total.cache_hit_rate == 0.0


def test_state_derives_approvals_lockouts_and_merges() -> None:
    events = [
        {"type": "run_started", "task_text": "do it", "base_commit": "abc", "ts": 1.0},
        {"type": "plan", "tasks": [{"id": "a", "agent": "backend"}, {"id": "b", "agent": "tester"}]},
        {"type": "task_started", "task": "a", "agent": "backend", "round": 0, "branch": "squad/r--a"},
        {"type": "task_committed", "task": "a", "agent": "backend", "commit": "c1", "summary": "did a"},
        {"type": "verdict", "task": "a", "reviewer": "rev", "round": 0, "verdict": "reject", "findings": []},
        {"type": "lockout", "task": "a", "agent": "backend"},
        {"type": "task_started", "task": "a", "agent": "tester", "round": 1, "branch": "squad/r--a-r1"},
        {"type": "task_committed", "task": "a", "agent": "tester", "commit": "c2"},
        {"type": "verdict", "task": "a", "reviewer": "rev", "round": 1, "verdict": "approve", "findings": []},
        {"type": "task_approved", "task": "a", "commit": "c2", "branch": "squad/r--a-r1"},
        {"type": "merged", "task": "a"},
        {"type": "task_started", "task": "b", "agent": "tester", "round": 0, "branch": "squad/r--b"},
        {"type": "turn", "task": "b", "agent": "tester"},  # agent events are ignored by the fold
    ]
    s = derive_state("r", events)
    assert s.task_text == "do it" and s.base_commit == "abc" and s.status is None
    a, b = s.tasks["a"], s.tasks["b"]
    assert (a.status, a.commit, a.branch, a.round, a.merged) == ("approved", "c2", "squad/r--a-r1", 1, True)
    assert a.authors == ["backend", "tester"] and a.locked_out == ["backend"]
    assert [v["verdict"] for v in a.verdicts] == ["reject", "approve"]
    assert b.status == "running" and s.approved == ["a"]


def test_list_runs_and_latest(tmp_path: Path) -> None:
    assert list_runs(tmp_path) == [] and latest_run(tmp_path) is None
    old = Journal(tmp_path, "20261122-010000-aaaa").create()
    old.emit({"type": "run_started", "task_text": "first"})
    old.emit({"type": "run_finished", "status": "done"})
    new = Journal(tmp_path, "20261122-020000-bbbb").create()
    new.emit({"type": "run_started", "task_text": "second"})
    new.emit({"type": "interrupted"})
    runs = list_runs(tmp_path)
    assert [(r.run, r.status, r.task_text) for r in runs] == [
        ("20261122-010000-aaaa", "done", "first"),
        ("20261122-020000-bbbb", "interrupted", "second"),
    ]
    assert latest_run(tmp_path) == "20261122-020000-bbbb"


def test_report_round_trip(tmp_path: Path) -> None:
    j = _journal(tmp_path)
    assert j.read_report() is None
    j.write_report({"status": "done", "tasks": []})
    assert j.read_report() == {"status": "done", "tasks": []}
