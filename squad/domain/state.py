"""The run state: ONE fold of a run's events.

`fold(run, events)` (or `RunState.apply(event)`, one event at a time) is the only code that interprets
events. Resume, `squad log`, `squad runs`, `squad cost`, the live view, the report and `squad gc` all
read a `RunState`, so they cannot disagree. The state holds the plan, each task's phase (moved by
`squad.domain.task.advance`), rounds, authors, verdicts, what is merged, the run's status, each agent's
activity, and the spend per run, agent and model (which is what a resumed run's budgets start from).

A journal event that cannot happen in the task's current phase (a hand-edited journal) is not applied
and is recorded in `problems` with its position, never dropped silently.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from squad.domain import events as ev
from squad.domain.plan import Plan, PlanTask
from squad.domain.review import Verdict
from squad.domain.task import APPROVED, IllegalTransition, Phase, advance
from squad.domain.usage import Spend, SpendTotals


@dataclass
class TaskState:
    """One planned task as its events describe it."""

    id: str
    agent: str
    files: tuple[str, ...] = ()
    phase: Phase = Phase.PENDING
    round: int = 0
    authors: list[str] = field(default_factory=list)
    locked_out: list[str] = field(default_factory=list)
    branch: str | None = None
    commit: str | None = None
    #: Who wrote `commit`: the agent of the last round that changed the work (the approved work's author).
    author: str | None = None
    base_commit: str | None = None
    verdicts: list[Verdict] = field(default_factory=list)
    summary: str = ""
    stop_reason: str | None = None
    error: str | None = None
    reason: str | None = None
    conflicts: list[str] = field(default_factory=list)
    #: Rounds whose work was committed (their attempt's decisions count; an unfinished attempt's do not).
    committed_rounds: set[int] = field(default_factory=set)
    round_kind: str = "work"  # work | revision | conflict | retry: what the current round is
    round_base: str | None = None  # where the current round started
    conflict_rounds: int = 0  # times its merge into the run branch conflicted
    notes: list[str] = field(default_factory=list)  # guidance from people (`--retry --note`, `squad approve --note`)

    @property
    def approved(self) -> bool:
        return self.phase in APPROVED

    @property
    def merged(self) -> bool:
        return self.phase is Phase.MERGED

    @property
    def rounds(self) -> int:
        """Rounds worked so far (0 when no one started)."""
        return self.round + 1 if self.authors else 0


@dataclass
class AgentActivity:
    """What one agent is doing and has used (the live view's row)."""

    state: str = "idle"
    task: str = ""
    turns: int = 0
    last_tool: str = ""
    spend: Spend = field(default_factory=Spend)


@dataclass
class Problem:
    """An event the fold could not apply, with its position in the journal (1-based)."""

    index: int
    message: str

    def __str__(self) -> str:
        return f"event {self.index}: {self.message}"


@dataclass
class RunState:
    """A run as derived from its events."""

    run: str
    task_text: str = ""
    base_commit: str | None = None
    agent: str | None = None
    started: float | None = None
    plan: Plan | None = None
    tasks: dict[str, TaskState] = field(default_factory=dict)
    status: str | None = None  # the run_finished status; None while unfinished
    error: str | None = None
    interrupted: bool = False
    context_commit: str | None = None
    ledger_commit: str | None = None
    integration_tests: ev.TestsRan | None = None
    baseline: ev.TestsRan | None = None
    ready_leases: set[str] = field(default_factory=set)  # worktrees whose setup passed
    budget: ev.BudgetSplit | None = None  # a run spread over CI jobs: how the plan split its budget
    applied: bool = False
    released: bool = False  # the run's worktrees were removed after it finished
    spend: Spend = field(default_factory=Spend)
    spend_by_agent: dict[str, Spend] = field(default_factory=dict)
    spend_by_model: dict[str, Spend] = field(default_factory=dict)
    agents: dict[str, AgentActivity] = field(default_factory=dict)
    events: int = 0
    last_ts: float | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status is not None

    @property
    def display_status(self) -> str:
        """The run's status for listings: its final status (`not started` for a run that failed before it had
        a plan: no work was done), `in CI jobs` for a run planned by `squad plan --out` whose tasks run
        elsewhere (its journal here ends with the plan), else interrupted / unfinished."""
        if self.status == "failed" and self.plan is None:
            return "not started"
        if self.status is not None:
            return self.status
        if self.budget is not None and all(t.phase is Phase.PENDING for t in self.tasks.values()):
            return "in CI jobs"
        return "interrupted" if self.interrupted else "unfinished"

    def approved(self) -> list[str]:
        return [t for t, s in self.tasks.items() if s.approved]

    def spend_totals(self) -> SpendTotals:
        """What the folded events spent, as the models' spend book starts from it (a resumed run's or a job's
        budgets continue from there, never from a hidden zero)."""
        return SpendTotals(self.spend, dict(self.spend_by_agent), dict(self.spend_by_model))

    def usage_report(self) -> dict[str, Any]:
        """Tokens and dollars per agent, per model and in total (`squad cost --json`, report.json `usage`)."""
        return {
            "by_agent": {k: v.to_dict() for k, v in sorted(self.spend_by_agent.items())},
            "by_model": {k: v.to_dict() for k, v in sorted(self.spend_by_model.items())},
            "total": self.spend.to_dict(),
        }

    def activity(self, agent: str) -> AgentActivity:
        return self.agents.setdefault(agent, AgentActivity())

    # ------------------------------------------------------------------------------------------------

    def apply(self, event: ev.Event) -> None:
        """Fold one more event into the state."""
        self.events += 1
        self.last_ts = event.ts or self.last_ts
        try:
            self._apply(event)
        except IllegalTransition as exc:
            self.problems.append(Problem(self.events, f"{event.type}: {exc}"))

    def _apply(self, event: ev.Event) -> None:
        match event:
            case ev.RunStarted(task_text=text, base_commit=base, agent=agent):
                if not isinstance(event, ev.RunResumed) or not self.task_text:
                    self.task_text, self.base_commit, self.agent = text, base, agent
                if self.started is None:
                    self.started = event.ts
                self.status, self.interrupted, self.released = None, False, False
            case ev.ContextBuilt(commit=commit):
                self.context_commit = commit
            case ev.PlanMade():
                tasks = event.plan_tasks()
                self.plan = Plan(tasks)
                self.tasks = {t.id: TaskState(id=t.id, agent=t.agent, files=t.files) for t in tasks}
            case ev.Interrupted():
                self.interrupted = True
            case ev.RunFinished(status=status, error=error):
                self.status, self.error = status, error
            case ev.LedgerCommitted(commit=commit):
                self.ledger_commit = commit
            case ev.Applied():
                self.applied = True
            case ev.Released():
                self.released = True
            case ev.TestsRan(task=None, where="baseline"):
                self.baseline = event
            case ev.TestsRan(task=None):
                self.integration_tests = event
            case ev.JobStarted():
                self.ready_leases.clear()  # a new job runs on a fresh checkout: no worktree of it is ready yet
            case ev.BudgetSplit():
                self.budget = event
            case ev.SetupDone(lease=lease, ok=ok):
                if ok:
                    self.ready_leases.add(lease)
                else:
                    self.ready_leases.discard(lease)
            case ev.ModelCalled():
                self._spent(event)
            case ev.TurnStarted(agent=agent, task=task):
                act = self.activity(agent)
                act.task = task
            case ev.ToolCalled(agent=agent, name=name):
                self.activity(agent).last_tool = name
            case ev.ReviewStarted(reviewer=reviewer, task=task):
                self._task_event(event)
                self.activity(reviewer).state, self.activity(reviewer).task = "reviewing", task
            case ev.VerdictGiven(reviewer=reviewer, task=task, verdict=verdict):
                self._task_event(event)
                if event.source == "reviewer":
                    self.activity(reviewer).state = f"{verdict} {task}"
            case ev.TaskEvent():
                self._task_event(event)

    def _spent(self, call: ev.ModelCalled) -> None:
        self.spend = self.spend.plus(call.usage, call.cost_usd)
        agent = call.agent or "?"
        self.spend_by_agent[agent] = self.spend_by_agent.get(agent, Spend()).plus(call.usage, call.cost_usd)
        model = call.model or "?"
        self.spend_by_model[model] = self.spend_by_model.get(model, Spend()).plus(call.usage, call.cost_usd)
        act = self.activity(agent)
        act.spend = act.spend.plus(call.usage, call.cost_usd)
        act.turns += 1

    def _task_event(self, event: ev.TaskEvent) -> None:
        ts = self.tasks.get(event.task)
        if ts is None:
            raise IllegalTransition(f"no task {event.task!r} in the plan")
        verdict = event.verdict if isinstance(event, ev.VerdictGiven) else None
        human = isinstance(event, ev.VerdictGiven) and event.source == "human"
        status = event.status if isinstance(event, ev.TaskStatus) else None
        ts.phase = advance(ts.phase, event.type, verdict=verdict, status=status, human=human)
        match event:
            case ev.TaskStarted():
                ts.round = event.round
                ts.branch = event.branch or ts.branch
                ts.base_commit = ts.base_commit or event.base_commit
                ts.round_base, ts.round_kind = event.base_commit, event.kind
                ts.stop_reason = ts.error = None
                if event.agent not in ts.authors:
                    ts.authors.append(event.agent)
                act = self.activity(event.agent)
                act.state, act.task = f"working (round {event.round})", event.task
            case ev.TaskCommitted():
                ts.commit = event.commit or ts.commit
                if event.changed and event.commit:  # a round that changed nothing leaves the last author's work
                    ts.author = event.agent
                ts.summary = event.summary
                ts.stop_reason, ts.error = event.stop_reason, event.error
                ts.committed_rounds.add(event.round)
                self.activity(event.agent).state = "done, in review"
            case ev.VerdictGiven():
                ts.verdicts.append(event.to_verdict())
                if event.source == "human" and event.summary:
                    ts.notes.append(f"{event.reviewer}: {event.summary}")
                if event.verdict == "reject":
                    # Everyone who worked on the task so far is locked out: decided here, by the fold, so a
                    # resume after a crash between the verdict and its lockout events picks the same reviser.
                    ts.locked_out.extend(a for a in ts.authors if a not in ts.locked_out)
            case ev.LockedOut(agent=agent):
                if agent not in ts.locked_out:
                    ts.locked_out.append(agent)
            case ev.TaskApproved():
                ts.commit = event.commit or ts.commit
                ts.branch = event.branch or ts.branch
            case ev.TaskStatus():
                ts.reason = event.reason
                ts.conflicts = list(event.files or [])
            case ev.MergeConflict():
                ts.conflicts = list(event.files)
                ts.conflict_rounds += 1
            case ev.TaskReopened():
                ts.locked_out.clear()  # a person's retry: the team gets a fresh start on it
                ts.reason = None
                if event.note:
                    ts.notes.append(f"{event.person}: {event.note}")
        if ts.phase.settled:
            for act in self.agents.values():
                if act.task == ts.id and act.state.startswith(("working", "done")):
                    act.state = ts.phase.value

    def plan_task(self, task: str) -> PlanTask:
        assert self.plan is not None
        return self.plan.get(task)


def fold(run: str, events: Iterable[ev.Event]) -> RunState:
    """The state of run `run` after `events`."""
    state = RunState(run=run)
    for event in events:
        state.apply(event)
    return state
