"""People in the loop: reopening a task with guidance, and a person's verdict on a task's latest work.

`squad run --resume RUN --retry TASK [--note ...]` reopens a task that needs a person, failed or conflicts;
`squad approve RUN TASK` accepts its latest rejected work; `squad reject RUN TASK --note ...` sends approved
work back. Each is a journal event with the person's name (git `user.name`), never confused with a
reviewer's verdict (`source="human"`); the next `--resume` carries on from there.
"""

from __future__ import annotations

from pathlib import Path

from squad.domain.events import TaskApproved, VerdictGiven
from squad.domain.review import Finding, Verdict
from squad.domain.state import RunState, TaskState
from squad.domain.task import REOPENABLE, Phase
from squad.errors import UsageError
from squad.infra.git import user_name
from squad.infra.journal import Journal


def person_name(root: Path) -> str:
    """The name a person's actions are journaled under."""
    return user_name(root)


def _task(state: RunState, task: str) -> TaskState:
    ts = state.tasks.get(task)
    if ts is None:
        known = ", ".join(state.tasks) or "(the run has no plan yet)"
        raise UsageError(f"run {state.run} has no task {task!r}", hint=f"its tasks: {known}")
    return ts


def reopen(state: RunState, task: str) -> None:
    """Check that `task` may be reopened (`--retry`); the caller journals it."""
    ts = _task(state, task)
    if ts.phase not in REOPENABLE:
        allowed = ", ".join(sorted(p.value for p in REOPENABLE))
        raise UsageError(
            f"task {task} is {ts.phase.value}: only a task that is {allowed} can be retried",
            hint=f"`squad log {state.run}` shows where each task stands",
        )


def human_verdict(root: Path, run: str, task: str, verdict: str, note: str | None) -> str:
    """Journal a person's verdict on `task`'s latest work; returns what to run next.

    Raises:
        UsageError: no such run or task, the run is in use, or the task is not in a state this verdict fits.
    """
    journal = Journal(root, run)
    if not journal.exists:
        raise UsageError(f"no run {run!r} in .squad/runs/", hint="`squad runs` lists the runs")
    person = person_name(root)
    with journal.lock():
        state = journal.state()
        ts = _task(state, task)
        if ts.commit is None:
            raise UsageError(f"task {task} has no work to judge yet ({ts.phase.value})")
        if verdict == "approve":
            if ts.phase not in (Phase.NEEDS_HUMAN, Phase.REJECTED):
                raise UsageError(
                    f"task {task} is {ts.phase.value}: `squad approve` accepts rejected work that needs a person",
                    hint=f"to try again with guidance: squad run --resume {run} --retry {task} --note '...'",
                )
            given = Verdict(reviewer=person, verdict="approve", summary=note or f"accepted by {person}", source="human")
        else:
            if ts.phase is Phase.MERGED:
                raise UsageError(
                    f"task {task} is already merged into squad/{run}",
                    hint=f"revert it on squad/{run} yourself (git revert), or start a new run",
                )
            if ts.phase is not Phase.APPROVED:
                raise UsageError(f"task {task} is {ts.phase.value}: `squad reject` sends back approved work only")
            finding = Finding(reviewer=person, file="", severity="blocking", message=note or "rejected by a person")
            given = Verdict(reviewer=person, verdict="reject", summary=note or "", findings=(finding,), source="human")
        journal.emit(VerdictGiven.of(task, ts.round, given))
        if given.approved:
            journal.emit(TaskApproved(task=task, commit=ts.commit, branch=ts.branch, round=ts.round))
    return f"squad run --resume {run}"
