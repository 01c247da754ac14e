"""The run journal: typed events appended whole, torn-line tolerance, recorded responses, runs, the run lock."""

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

from squad.domain.events import (
    Event,
    Interrupted,
    ModelCalled,
    PlanMade,
    RunFinished,
    RunStarted,
    ToolCalled,
    UnknownEvent,
)
from squad.domain.usage import Usage
from squad.infra.journal import Journal, latest_run, list_runs
from squad.infra.jsonl import JournalWarning, read_jsonl
from squad.infra.locks import RunLockedError
from squad.models.base import ModelResponse, TextBlock


def _journal(tmp_path: Path, run: str = "20261122-063107-abcd") -> Journal:
    return Journal(tmp_path, run).create()


def test_emit_appends_lines_with_ts_and_notifies_listeners(tmp_path: Path) -> None:
    j = _journal(tmp_path)
    seen: list[Event] = []
    j.listeners.append(seen.append)
    j.emit(RunStarted(run=j.run, task_text="t"))
    j.emit(PlanMade(tasks=[]))
    lines = [json.loads(line) for line in j.events_path.read_text().splitlines()]
    assert [line["type"] for line in lines] == ["run_started", "plan"]
    assert all(isinstance(line["ts"], float) and line["v"] == 2 for line in lines)
    assert [e.type for e in seen] == ["run_started", "plan"] and all(e.ts for e in seen)
    assert j.dir == tmp_path / ".squad" / "runs" / "20261122-063107-abcd"


def test_torn_last_line_is_skipped_with_a_warning(tmp_path: Path) -> None:
    j = _journal(tmp_path)
    j.emit(RunStarted(run=j.run, task_text="x"))
    with j.events_path.open("ab") as fh:
        fh.write(b'{"ts": 1.0, "type": "task_sta')  # what a kill -9 mid-write leaves
    with pytest.warns(JournalWarning, match=r"events.jsonl:2"):
        events = j.read_events()
    assert [e.type for e in events] == ["run_started"]
    # a resumed run (create() again) ends the torn line, so the next event is not glued to it
    j = Journal(tmp_path, j.run).create()
    j.emit(Interrupted())
    with pytest.warns(JournalWarning):
        assert [e.type for e in j.read_events()] == ["run_started", "interrupted"]


def test_a_hand_mangled_event_is_skipped_with_its_line_and_the_rest_loads(tmp_path: Path) -> None:
    j = _journal(tmp_path)
    j.emit(RunStarted(run=j.run, task_text="x"))
    with j.events_path.open("a") as fh:
        fh.write(json.dumps({"ts": 2.0, "type": "task_started", "round": "two"}) + "\n")  # no task, bad round
        fh.write(json.dumps({"ts": 3.0, "type": "from_the_future", "x": 1}) + "\n")
    j.emit(Interrupted())
    with pytest.warns(JournalWarning, match=r"events.jsonl:2: skipped: invalid task_started event"):
        events = j.read_events()
    assert [e.type for e in events] == ["run_started", "from_the_future", "interrupted"]
    assert isinstance(events[1], UnknownEvent) and "from_the_future" in events[1].describe()


def test_lone_surrogates_in_an_event_are_written_and_read_back(tmp_path: Path) -> None:
    j = _journal(tmp_path)
    j.emit(ToolCalled(agent="a", task="t", name="write_file", args={"content": "bad \udc80 text"}))
    [event] = j.read_events()
    assert isinstance(event, ToolCalled) and event.args == {"content": "bad \udc80 text"}


_WRITER = """
import sys
from pathlib import Path
from squad.domain.events import UnknownEvent
from squad.infra.journal import Journal
j = Journal(Path(sys.argv[1]), "20261122-000000-kill")
i = 0
while True:
    j.emit(UnknownEvent(type="tick", i=i, pad="x" * 5000))
    i += 1
"""


def test_killed_writer_never_breaks_the_reader(tmp_path: Path) -> None:
    Journal(tmp_path, "20261122-000000-kill").create()
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)])
    events_path = Journal(tmp_path, "20261122-000000-kill").events_path
    while not events_path.exists() or events_path.stat().st_size < 200_000:  # the writer is well under way
        assert proc.poll() is None, "the writer died on its own"
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
        j.emit(UnknownEvent(type="tick", worker=worker, i=i, pad="y" * 3000))


def test_concurrent_processes_never_interleave_lines(tmp_path: Path) -> None:
    Journal(tmp_path, "20261122-000000-conc").create()
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.map(_emit_many, [(str(tmp_path), w) for w in range(4)])
    events = read_jsonl(Journal(tmp_path, "20261122-000000-conc").events_path)
    assert len(events) == 800
    for w in range(4):
        assert [e["i"] for e in events if e["worker"] == w] == list(range(200))


def _response(model: str, usage: Usage, cost: float) -> dict[str, object]:
    return ModelResponse(
        content=(TextBlock("ok"),), stop_reason="end_turn", usage=usage, model=model, cost_usd=cost
    ).to_dict()


def test_record_response_indexes_per_agent_task(tmp_path: Path) -> None:
    j = _journal(tmp_path)
    j.record_response("backend", "api", _response("claude-a", Usage(100, 10, 1000, 0), 0.5))
    j.record_response("backend", "api", _response("claude-a", Usage(50, 20, 0, 1000), 0.25))
    j.record_response("tester", "api", _response("claude-b", Usage(10, 5, 0, 2000), 0.125))
    recs = read_jsonl(j.responses_path)
    assert [(r["agent"], r["task"], r["index"]) for r in recs] == [
        ("backend", "api", 0),
        ("backend", "api", 1),
        ("tester", "api", 0),
    ]
    assert ModelResponse.from_dict(recs[0]["response"]).usage.cache_creation_input_tokens == 1000
    # a new Journal object (a resumed run) continues the per-pair index
    j2 = Journal(tmp_path, j.run)
    j2.record_response("backend", "api", _response("claude-a", Usage(1, 1, 0, 0), 0.0))
    assert read_jsonl(j.responses_path)[-1]["index"] == 2


def test_model_calls_of_a_task_go_to_its_transcript_too(tmp_path: Path) -> None:
    j = _journal(tmp_path)
    j.emit(ModelCalled(agent="backend", task="api", lease="api", model="m", usage=Usage(1, 2)))
    j.emit(ToolCalled(agent="backend", task="api", name="read_file"))
    j.emit(ModelCalled(agent="lead", task="plan", model="m"))  # the planner's call has no task transcript
    lines = read_jsonl(j.transcripts_dir / "api.jsonl")
    assert [line["type"] for line in lines] == ["model_call", "agent.tool_call"]


def test_list_runs_and_latest(tmp_path: Path) -> None:
    assert list_runs(tmp_path) == [] and latest_run(tmp_path) is None
    old = Journal(tmp_path, "20261122-010000-aaaa").create()
    old.emit(RunStarted(run=old.run, task_text="first"))
    old.emit(ModelCalled(agent="a", model="m", cost_usd=0.25))
    old.emit(RunFinished(status="done"))
    new = Journal(tmp_path, "20261122-020000-bbbb").create()
    new.emit(RunStarted(run=new.run, task_text="second"))
    new.emit(Interrupted())
    runs = list_runs(tmp_path)
    assert [(r.run, r.status, r.task_text, r.cost_usd) for r in runs] == [
        ("20261122-010000-aaaa", "done", "first", 0.25),
        ("20261122-020000-bbbb", "interrupted", "second", 0.0),
    ]
    assert latest_run(tmp_path) == "20261122-020000-bbbb"


def test_report_round_trip(tmp_path: Path) -> None:
    j = _journal(tmp_path)
    assert j.read_report() is None
    j.write_report({"status": "done", "tasks": []})
    assert j.read_report() == {"status": "done", "tasks": []}


def test_one_process_at_a_time_per_run(repo: Path) -> None:
    j = Journal(repo, "20261122-030000-cccc").create()
    other = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom pathlib import Path\nfrom squad.infra.journal import Journal\n"
            "lock = Journal(Path(sys.argv[1]), '20261122-030000-cccc').lock().acquire()\n"
            "print('held', flush=True)\ntime.sleep(60)\n",
            str(repo),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "held"
        with pytest.raises(RunLockedError, match=f"in use by process {other.pid}") as info:
            j.lock().acquire()
        assert info.value.exit_code == 2
    finally:
        other.kill()
        other.wait()
    with j.lock():  # free again the moment the holder dies (SIGKILL included)
        pass
