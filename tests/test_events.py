"""Typed journal events, the one fold, and the task state machine (squad.domain)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from squad.config import Charter, Team
from squad.domain import events as ev
from squad.domain.review import Finding, Verdict
from squad.domain.state import TaskState, fold
from squad.domain.task import Done, IllegalTransition, Phase, Review, Settle, Work, advance, next_step
from squad.domain.usage import Usage
from squad.errors import SquadError
from squad.infra.journal import Journal, JournalError, list_runs

FIXTURES = Path(__file__).parent / "fixtures" / "journal-v1"


def _v1_journal(root: Path, name: str, run: str = "20261129-183551-gxy9") -> Journal:
    journal = Journal(root, run).create()
    shutil.copy(FIXTURES / f"{name}.events.jsonl", journal.events_path)
    return journal


def test_a_schema_1_journal_of_a_finished_run_folds_to_the_same_facts(tmp_path: Path) -> None:
    journal = _v1_journal(tmp_path, "done")
    raw = [json.loads(line) for line in journal.events_path.read_text().splitlines()]
    assert all("v" not in r for r in raw)  # written by the previous release
    state = journal.state()
    assert state.status == "done" and state.problems == []
    assert set(state.tasks) == {"loans", "docs", "edge-tests", "loan-tests"}
    assert all(ts.phase is Phase.MERGED for ts in state.tasks.values())
    docs = state.tasks["docs"]
    assert docs.authors == ["docs", "backend"] and docs.locked_out == ["docs"] and docs.rounds == 2
    assert [v.verdict for v in docs.verdicts] == ["reject", "approve"]
    calls = [r for r in raw if r["type"] == "model_call"]
    assert state.spend.turns == len(calls) == 28
    assert state.spend.output_tokens == sum(r["usage"]["output_tokens"] for r in calls)
    assert sum(s.turns for s in state.spend_by_agent.values()) == 28
    assert state.ledger_commit and state.integration_tests is not None and state.integration_tests.passed
    assert list_runs(tmp_path)[0].status == "done"


def test_a_schema_1_journal_cut_mid_run_resumes_where_it_stopped(tmp_path: Path) -> None:
    state = _v1_journal(tmp_path, "interrupted").state()
    assert state.status is None and state.display_status == "unfinished" and state.problems == []
    phases = {t: ts.phase for t, ts in state.tasks.items()}
    assert phases == {
        "loans": Phase.REVIEWING,
        "docs": Phase.WORKING,
        "edge-tests": Phase.APPROVED,
        "loan-tests": Phase.PENDING,
    }
    team = Team(
        agents={
            name: Charter(name=name, role=name, tools=["read", "write", "team"], reviewer=name == "reviewer")
            for name in ("backend", "tester", "docs", "reviewer")
        }
    )
    steps = {t: next_step(ts, team, 2) for t, ts in state.tasks.items()}
    # approved work is never redone; a task mid-attempt starts that attempt over (the same reviser, who was not
    # locked out); a task in review is reviewed again; a task not started starts
    assert steps == {
        "edge-tests": Done(Phase.APPROVED),
        "docs": Work(round=1, author="backend", restart=True),
        "loans": Review(round=0),
        "loan-tests": Work(round=0, author="tester"),
    }


def test_a_journal_from_a_newer_schema_fails_with_both_versions(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "20261129-000000-aaaa").create()
    journal.emit(ev.RunStarted(run=journal.run, task_text="x"))
    with journal.events_path.open("a") as fh:
        fh.write(json.dumps({"ts": 2.0, "type": "plan", "v": 7, "tasks": []}) + "\n")
    with pytest.raises(JournalError) as info:
        journal.state()
    message = str(info.value)
    assert "events.jsonl:2" in message and "schema 7" in message and "schemas 1 to 2" in message
    assert isinstance(info.value, SquadError) and info.value.exit_code == 2 and "upgrade squad" in str(info.value.hint)


def _plan(*tasks: tuple[str, str]) -> ev.PlanMade:
    return ev.PlanMade(tasks=[{"id": t, "agent": a, "goal": t} for t, a in tasks])


def test_an_impossible_event_is_a_problem_with_its_position_and_is_not_applied() -> None:
    state = fold(
        "r",
        [
            ev.RunStarted(run="r", task_text="x"),
            _plan(("a", "backend")),
            ev.TaskApproved(task="a", commit="c"),  # approved before anyone worked on it
            ev.Merged(task="nope"),  # not a task of the plan
        ],
    )
    assert state.tasks["a"].phase is Phase.PENDING
    assert [str(p) for p in state.problems] == [
        "event 3: task_approved: task_approved cannot happen to a task that is pending",
        "event 4: merged: no task 'nope' in the plan",
    ]


def test_a_rejection_locks_out_every_author_even_without_lockout_events() -> None:
    verdict = Verdict(reviewer="rev", verdict="reject", findings=(Finding(file="", severity="blocking", message="x"),))
    state = fold(
        "r",
        [
            _plan(("a", "backend")),
            ev.TaskStarted(task="a", agent="backend", round=0),
            ev.TaskCommitted(task="a", agent="backend", commit="c1"),
            ev.ReviewStarted(task="a", reviewer="rev"),
            ev.VerdictGiven.of("a", 0, verdict),
            # killed here: the lockout events were never written
        ],
    )
    ts = state.tasks["a"]
    assert ts.phase is Phase.REJECTED and ts.locked_out == ["backend"]
    team = Team(
        agents={
            "backend": Charter(name="backend", role="b", tools=["read", "write", "team"]),
            "tester": Charter(name="tester", role="t", tools=["read", "write", "team"]),
        }
    )
    assert next_step(ts, team, 2) == Work(round=1, author="tester", kind="revision")
    assert next_step(ts, team, 0) == Settle(
        Phase.NEEDS_HUMAN, "rejected after 1 review round(s); review.max_rounds is 0"
    )


def test_spend_is_folded_per_run_agent_and_model() -> None:
    state = fold(
        "r",
        [
            ev.ModelCalled(agent="lead", task="plan", model="m1", usage=Usage(100, 10, 1000, 0), cost_usd=0.5),
            ev.ModelCalled(agent="backend", task="a", model="m1", usage=Usage(50, 20, 0, 1000), cost_usd=0.25),
            ev.ModelCalled(agent="backend", task="a", model="m2", usage=Usage(10, 5, 0, 2000), cost_usd=0.125),
        ],
    )
    assert state.spend.usd == pytest.approx(0.875) and state.spend.turns == 3
    assert state.spend_by_agent["backend"].turns == 2 and state.spend_by_agent["backend"].plain_input_tokens == 60
    assert state.spend_by_model["m2"].cache_read_tokens == 2000
    report = state.usage_report()
    assert report["total"]["input_tokens"] == 160 and report["total"]["cache_write_tokens"] == 1000
    assert report["total"]["cache_hit_rate"] == pytest.approx(3000 / (160 + 1000 + 3000), abs=1e-4)


@pytest.mark.parametrize(
    ("phase", "kind", "payload", "after"),
    [
        (Phase.PENDING, "task_started", {}, Phase.WORKING),
        (Phase.WORKING, "task_committed", {}, Phase.COMMITTED),
        (Phase.COMMITTED, "review_started", {}, Phase.REVIEWING),
        (Phase.REVIEWING, "verdict", {"verdict": "approve"}, Phase.APPROVED),
        (Phase.REVIEWING, "verdict", {"verdict": "reject"}, Phase.REJECTED),
        (Phase.REJECTED, "task_started", {}, Phase.WORKING),
        (Phase.APPROVED, "merged", {}, Phase.MERGED),
        (Phase.REJECTED, "task_status", {"status": "needs_human"}, Phase.NEEDS_HUMAN),
        (Phase.WORKING, "task_status", {"status": "running"}, Phase.WORKING),  # schema 1 spelling
        (Phase.MERGED, "lockout", {}, Phase.MERGED),  # events that do not move a task
    ],
)
def test_transitions(phase: Phase, kind: str, payload: dict[str, Any], after: Phase) -> None:
    assert advance(phase, kind, **payload) is after


@pytest.mark.parametrize(
    ("phase", "kind"),
    [(Phase.PENDING, "task_committed"), (Phase.MERGED, "task_started"), (Phase.FAILED, "verdict")],
)
def test_impossible_transitions(phase: Phase, kind: str) -> None:
    with pytest.raises(IllegalTransition):
        advance(phase, kind, verdict="approve")


def test_a_commit_that_did_not_finish_fails_the_task_with_its_reason() -> None:
    ts = TaskState(id="a", agent="backend", phase=Phase.COMMITTED, authors=["backend"])
    ts.stop_reason, ts.error = "budget", "budget run_usd would be exceeded"
    step = next_step(ts, Team(agents={}), 2)
    assert step == Settle(Phase.FAILED, "backend stopped: budget (budget run_usd would be exceeded)")


def test_every_event_round_trips_through_its_record_and_describes_itself() -> None:
    samples: list[ev.Event] = [
        ev.RunStarted(run="r", task_text="t [/] x", base_commit="abc"),
        ev.RunResumed(run="r", task_text="t"),
        ev.ContextBuilt(commit="c", blocks=4),
        ev.PlanInvalid(attempt=1, errors=["e"]),
        _plan(("a", "backend")),
        ev.Interrupted(),
        ev.RunFinished(status="done"),
        ev.Released(worktrees=2),
        ev.ApplyRefused(reason="dirty"),
        ev.Applied(branch="main"),
        ev.LedgerCommitted(path="decisions/x.md", commit="c"),
        ev.ModelCalled(agent="a", task="t", model="m", usage=Usage(1, 2, 3, 4), cost_usd=0.1),
        ev.TestsRan(task="a", where="a", command="pytest", exit_code=0, passed=True),
        ev.TaskStarted(task="a", agent="b", round=1, branch="squad/r--a"),
        ev.TaskCommitted(task="a", agent="b", commit="c"),
        ev.ReviewStarted(task="a", reviewer="rev"),
        ev.VerdictGiven(
            task="a", reviewer="rev", verdict="reject", findings=[Finding(file="x", message="m", severity="minor")]
        ),
        ev.LockedOut(task="a", agent="b"),
        ev.TaskApproved(task="a", commit="c"),
        ev.TaskStatus(task="a", status="failed", reason="why"),
        ev.MergeConflict(task="a", files=["x"]),
        ev.Merged(task="a", commit="c"),
        ev.TurnStarted(agent="a", task="t", turn=1),
        ev.ToolCalled(agent="a", task="t", name="read_file", args={"path": "x"}),
        ev.AgentStopped(agent="a", task="t", stop_reason="finished", usage=Usage(1, 1)),
        ev.ModelRetried(agent="a", task="t", model="m", attempt=1, wait_s=0.5, error="529"),
        ev.ModelFellBack(agent="a", task="t", model="m2", after="m", reason="down"),
        ev.AgentWarning(agent="a", task="t", message="no price"),
    ]
    assert {type(e) for e in samples} == {type(ev.parse_event(e.to_record())) for e in samples}
    for event in samples:
        record = event.to_record()
        assert record["v"] == ev.SCHEMA and record["type"] == event.type
        assert ev.parse_event(json.loads(json.dumps(record))) == event
        assert event.describe().startswith(event.type)


def test_a_tests_line_names_the_task_once() -> None:
    def line(task: str | None, where: str) -> str:
        return ev.TestsRan(task=task, where=where, command="pytest", exit_code=0, passed=True).describe()

    assert line("helper", "helper") == "tests helper: `pytest` -> pass"
    assert line("helper", "helper-r1") == "tests helper-r1: `pytest` -> pass"  # the round's lease
    assert line(None, "integration") == "tests integration: `pytest` -> pass"
    assert line(None, "baseline") == "tests baseline: `pytest` -> pass"
    assert line("api", "elsewhere") == "tests api (elsewhere): `pytest` -> pass"


def test_the_fold_knows_who_wrote_the_approved_work() -> None:
    reject = Verdict(reviewer="rev", verdict="reject", findings=(Finding(file="", severity="blocking", message="x"),))
    approve = Verdict(reviewer="rev", verdict="approve")
    events: list[ev.Event] = [
        _plan(("a", "tester")),
        ev.TaskStarted(task="a", agent="tester", round=0),
        ev.TaskCommitted(task="a", agent="tester", commit="c1"),
        ev.ReviewStarted(task="a", reviewer="rev"),
        ev.VerdictGiven.of("a", 0, reject),
        ev.TaskStarted(task="a", agent="backend", round=1, kind="revision"),
        ev.TaskCommitted(task="a", agent="backend", round=1, commit="c2"),
    ]
    assert fold("r", events[:3]).tasks["a"].author == "tester"
    revised = fold("r", [*events, ev.ReviewStarted(task="a", reviewer="rev"), ev.VerdictGiven.of("a", 1, approve)])
    ts = revised.tasks["a"]
    assert (ts.agent, ts.author, ts.commit, ts.phase) == ("tester", "backend", "c2", Phase.APPROVED)
    # a round that changed nothing hands on the work of the one before it, and its author
    idle = [*events[:5], ev.TaskStarted(task="a", agent="backend", round=1, kind="revision")]
    idle.append(ev.TaskCommitted(task="a", agent="backend", round=1, commit="c1", changed=False))
    assert fold("r", idle).tasks["a"].author == "tester"
