"""The run journal's records: typed, versioned events, and the one-line description of each.

Every step of a run is one event appended to `events.jsonl`. Each event type is a frozen pydantic model
whose `type` field names it on disk; `to_record` writes it with the journal schema version (`v`), and
`parse_event` reads a record back (tolerating missing optional fields of hand-edited lines, refusing
a newer schema with a message that names both versions). `squad.domain.state.fold` turns a list of
events into the run state; nothing else interprets events.

To add an event: a class here (with `describe`), a branch in the fold if it changes state. Records of
unknown types (a newer squad's, a hand edit) load as `UnknownEvent` and are shown, never dropped.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator

# Agent-session events live in their own module; importing them here registers their types for parse_event.
from squad.domain.agent_events import (
    MODEL_EVENTS,
    AgentModelCall,
    AgentStopped,
    AgentWarning,
    ModelFellBack,
    ModelRetried,
    ToolCalled,
    TurnStarted,
    model_event,
)
from squad.domain.event_base import (
    MIN_SCHEMA,
    SCHEMA,
    AgentEvent,
    Event,
    JournalSchemaError,
    TaskEvent,
    _line,
    _short,
)
from squad.domain.job_events import BudgetSplit, FragmentsMerged, JobStarted, RunBranchRebuilt
from squad.domain.plan import PlanTask
from squad.domain.resume_events import AttemptDecisions, ProcessReaped, StaleLockRemoved
from squad.domain.review import Finding, Verdict
from squad.domain.usage import Usage

# ---------------------------------------------------------------------------------------------------------
# The run


class RunStarted(Event):
    type: Literal["run_started"] = "run_started"
    run: str
    task_text: str = ""
    base_commit: str | None = None
    agent: str | None = None

    def describe(self) -> str:
        return _line(self.type, "", f"{self.run} at {(self.base_commit or '')[:12]}: {_short(self.task_text)}")


class RunResumed(RunStarted):
    type: Literal["run_resumed"] = "run_resumed"  # type: ignore[assignment]


class ContextBuilt(Event):
    type: Literal["context"] = "context"
    commit: str = ""
    blocks: int = 0

    def describe(self) -> str:
        return _line(self.type, "", f"at {self.commit[:12]}, {self.blocks} shared prompt blocks")


class PlanInvalid(Event):
    type: Literal["plan_invalid"] = "plan_invalid"
    attempt: int = 0
    errors: list[str] = Field(default_factory=list)

    def describe(self) -> str:
        return _line(self.type, "", f"attempt {self.attempt}: " + "; ".join(self.errors))


class PlanMade(Event):
    type: Literal["plan"] = "plan"
    tasks: list[dict[str, Any]]

    @field_validator("tasks")
    @classmethod
    def _tasks(cls, tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [PlanTask.from_dict(t).to_dict() for t in tasks]  # KeyError/TypeError -> a clear parse error

    def plan_tasks(self) -> tuple[PlanTask, ...]:
        return tuple(PlanTask.from_dict(t) for t in self.tasks)

    def describe(self) -> str:
        parts = [
            f"{t.id}→{t.agent}" + (f" after {','.join(t.depends_on)}" if t.depends_on else "")
            for t in self.plan_tasks()
        ]
        return _line(self.type, "", "; ".join(parts))


class Interrupted(Event):
    type: Literal["interrupted"] = "interrupted"


class RunFinished(Event):
    type: Literal["run_finished"] = "run_finished"
    status: str
    error: str | None = None
    cost_usd: float | None = None

    def describe(self) -> str:
        return _line(self.type, "", self.status + (f": {_short(self.error, 200)}" if self.error else ""))


class Released(Event):
    type: Literal["released"] = "released"
    worktrees: int = 0

    def describe(self) -> str:
        return _line(self.type, "", f"{self.worktrees} worktree(s) removed")


class ApplyRefused(Event):
    type: Literal["apply_refused"] = "apply_refused"
    reason: str = ""

    def describe(self) -> str:
        return _line(self.type, "", _short(self.reason, 200))


class Applied(Event):
    type: Literal["applied"] = "applied"
    branch: str = ""

    def describe(self) -> str:
        return _line(self.type, "", self.branch)


class LedgerCommitted(Event):
    type: Literal["ledger_committed"] = "ledger_committed"
    path: str = ""
    commit: str = ""

    def describe(self) -> str:
        return _line(self.type, "", self.path)


class ModelCalled(Event):
    """One completed model call, priced: the only source of `squad cost` and of resumed budgets."""

    type: Literal["model_call"] = "model_call"
    agent: str = ""
    task: str = ""
    lease: str | None = None
    model: str = ""
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    latency_s: float | None = None
    ttft_s: float | None = None
    stop_reason: str | None = None
    request_id: str | None = None

    @field_validator("usage", mode="before")
    @classmethod
    def _usage(cls, value: Any) -> Any:
        return Usage.from_dict(value) if isinstance(value, dict) or value is None else value

    @field_validator("cost_usd", mode="before")
    @classmethod
    def _cost(cls, value: Any) -> Any:
        return value or 0.0

    def describe(self) -> str:
        u = self.usage
        detail = (
            f"{self.model} in={u.input_tokens} out={u.output_tokens} cache_w={u.cache_creation_input_tokens} "
            f"cache_r={u.cache_read_input_tokens} ${self.cost_usd:.4f}"
        )
        if self.stop_reason not in (None, "end_turn", "tool_use", "stop_sequence"):  # refused, cut, paused, full
            detail += f" stop={self.stop_reason}"
        return _line(self.type, self._who(), detail)


class TestsRan(Event):
    """The test command ran in a task's worktree (`task` set) or on the integrated result (`task` None)."""

    type: Literal["tests"] = "tests"
    __test__: ClassVar[bool] = False
    task: str | None = None
    where: str = ""
    command: str = ""
    exit_code: int | None = None
    passed: bool = False
    timed_out: bool = False
    output_tail: str = ""
    failures: list[str] | None = None  # failing test ids, when the runner reports them (pytest's junit XML)

    def describe(self) -> str:
        # `where` names the place once: a task's lease (`api`, `api-r1`: the task and its round), `baseline` or
        # `integration`; the task is named only when `where` does not say it.
        where = self.where or self.task or ""
        if self.task and not (where == self.task or where.startswith(f"{self.task}-")):
            where = f"{self.task} ({where})"
        return _line(self.type, "", f"{where}: `{self.command}` -> {'pass' if self.passed else 'FAIL'}")


class WorkspacePrepared(Event):
    """A worktree got its `[workspace]` copies, links and submodules (`task` None: the integration worktree)."""

    type: Literal["workspace_prepared"] = "workspace_prepared"
    task: str | None = None
    lease: str = ""
    steps: list[dict[str, Any]] = Field(default_factory=list)
    duration_s: float = 0.0

    def describe(self) -> str:
        done = ", ".join(f"{s.get('action')} {s.get('path')}" for s in self.steps) or "nothing to do"
        return _line(self.type, self.lease, f"{_short(done, 200)} ({self.duration_s:.1f}s)")


class SetupRan(Event):
    """One `[workspace] setup` command ran in a worktree."""

    type: Literal["setup"] = "setup"
    task: str | None = None
    lease: str = ""
    command: str = ""
    exit_code: int | None = None
    duration_s: float = 0.0
    output_tail: str = ""
    timed_out: bool = False
    error: str = ""

    def describe(self) -> str:
        ended = self.error or ("timed out" if self.timed_out else f"exit {self.exit_code}")
        return _line(self.type, self.lease, f"`{self.command}` -> {ended} in {self.duration_s:.1f}s")


class SetupDone(Event):
    """A worktree's setup finished: all commands passed (`ok`), or `failure` says which did not."""

    type: Literal["setup_done"] = "setup_done"
    task: str | None = None
    lease: str = ""
    ok: bool = True
    duration_s: float = 0.0
    failure: str | None = None

    def describe(self) -> str:
        detail = f"ok in {self.duration_s:.1f}s" if self.ok else f"FAILED: {_short(self.failure, 200)}"
        return _line(self.type, self.lease, detail)


# ---------------------------------------------------------------------------------------------------------
# Tasks


class TaskStarted(TaskEvent):
    """A round of work began. `kind`: work, revision, conflict (a conflict round), retry (a person reopened it).
    `base_commit` is where the round started (a conflict round: the run branch)."""

    type: Literal["task_started"] = "task_started"
    agent: str
    round: int = 0
    lease: str = ""
    branch: str = ""
    base_commit: str | None = None
    kind: str = "work"

    def describe(self) -> str:
        what = "" if self.kind in ("work", "revision") else f"{self.kind} "
        return _line(self.type, self._who(), f"{what}round {self.round} on {self.branch}")


class TaskReopened(TaskEvent):
    """A person reopened a settled task (`squad run --resume RUN --retry TASK [--note ...]`)."""

    type: Literal["task_reopened"] = "task_reopened"
    person: str = ""
    note: str | None = None

    def describe(self) -> str:
        return _line(self.type, f"{self.task} by {self.person} (person)", _short(self.note or "", 200))


class TaskCommitted(TaskEvent):
    type: Literal["task_committed"] = "task_committed"
    agent: str
    round: int = 0
    commit: str | None = None
    changed: bool = True
    summary: str = ""
    stop_reason: str = "finished"
    turns: int = 0
    cost_usd: float = 0.0
    error: str | None = None

    def describe(self) -> str:
        detail = f"{(self.commit or '')[:12]} ({self.stop_reason}): {_short(self.summary)}"
        return _line(self.type, self._who(), detail)


class ReviewStarted(TaskEvent):
    type: Literal["review_started"] = "review_started"
    reviewer: str
    round: int = 0

    def describe(self) -> str:
        return _line(self.type, f"{self.reviewer} {self.task}", f"round {self.round}")


class VerdictGiven(TaskEvent):
    """A verdict on a task's round: a reviewer's, a person's (`source` human) or the gate's."""

    type: Literal["verdict"] = "verdict"
    round: int = 0
    reviewer: str
    verdict: Literal["approve", "reject"]
    summary: str = ""
    findings: list[Finding] = Field(default_factory=list)
    source: Literal["reviewer", "human", "gate"] = "reviewer"
    complete: bool = True

    def to_verdict(self) -> Verdict:
        return Verdict(
            reviewer=self.reviewer,
            verdict=self.verdict,
            summary=self.summary,
            findings=tuple(self.findings),
            source=self.source,
            complete=self.complete,
        )

    @staticmethod
    def of(task: str, round_: int, verdict: Verdict) -> VerdictGiven:
        return VerdictGiven(task=task, round=round_, **verdict.model_dump())

    def describe(self) -> str:
        by = f"{self.reviewer} (person)" if self.source == "human" else self.reviewer
        detail = f"{self.verdict.upper()} round {self.round} ({len(self.findings)} findings): {_short(self.summary)}"
        return _line(self.type, f"{by} {self.task}", detail)


class LockedOut(TaskEvent):
    type: Literal["lockout"] = "lockout"
    agent: str

    def describe(self) -> str:
        return _line(self.type, "", f"{self.agent} may not revise {self.task} again")


class TaskApproved(TaskEvent):
    type: Literal["task_approved"] = "task_approved"
    commit: str | None = None
    branch: str | None = None
    round: int = 0

    def describe(self) -> str:
        return _line(self.type, self.task, f"round {self.round} at {(self.commit or '')[:12]}")


class TaskStatus(TaskEvent):
    """A task reached a status the flow decided: failed, needs_human, conflict, blocked."""

    type: Literal["task_status"] = "task_status"
    status: str
    reason: str | None = None
    files: list[str] | None = None

    def describe(self) -> str:
        detail = self.status
        for value in (self.reason, self.files):
            if value:
                detail += f": {_short(value, 200)}"
        return _line(self.type, self._who(), detail)


class MergeConflict(TaskEvent):
    type: Literal["conflict"] = "conflict"
    files: list[str] = Field(default_factory=list)

    def describe(self) -> str:
        return _line(self.type, self._who(), _short(self.files, 200))


class Merged(TaskEvent):
    type: Literal["merged"] = "merged"
    commit: str | None = None
    branch: str = ""

    def describe(self) -> str:
        return _line(self.type, self._who(), self.branch)


class UnknownEvent(Event):
    """A record of a type this release does not know (kept whole in `data`, shown by `squad log`)."""

    model_config = ConfigDict(frozen=True, extra="allow")


def _concrete(cls: type[Event]) -> list[type[Event]]:
    """Every event class with its own on-disk type name (the default of its `type` field)."""
    found = []
    for sub in cls.__subclasses__():
        if sub is not UnknownEvent and isinstance(sub.model_fields["type"].default, str):
            found.append(sub)
        found.extend(_concrete(sub))
    return found


_TYPES: dict[str, type[Event]] = {cls.model_fields["type"].default: cls for cls in _concrete(Event)}


def parse_event(record: dict[str, Any]) -> Event:
    """A journal record as a typed event.

    Raises:
        JournalSchemaError: the record was written by a newer (or unknown) journal schema.
        ValueError: the record is not a valid event of its type (the message says which field).
    """
    version = record.get("v", 1)
    if not isinstance(version, int) or not MIN_SCHEMA <= version <= SCHEMA:
        raise JournalSchemaError(
            f"written by journal schema {version!r}; this release of squad reads schemas {MIN_SCHEMA} to {SCHEMA}"
        )
    kind = record.get("type")
    cls = _TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        return UnknownEvent.model_validate({**record, "type": str(kind)})
    try:
        return cls.model_validate(record)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'record'}: {err['msg']}" for err in exc.errors()[:3]
        )
        raise ValueError(f"invalid {kind} event: {problems}") from None


__all__ = [
    "MIN_SCHEMA",
    "MODEL_EVENTS",
    "SCHEMA",
    "AgentEvent",
    "AgentModelCall",
    "AgentStopped",
    "AgentWarning",
    "Applied",
    "ApplyRefused",
    "AttemptDecisions",
    "BudgetSplit",
    "ContextBuilt",
    "Event",
    "FragmentsMerged",
    "Interrupted",
    "JobStarted",
    "JournalSchemaError",
    "LedgerCommitted",
    "LockedOut",
    "MergeConflict",
    "Merged",
    "ModelCalled",
    "ModelFellBack",
    "ModelRetried",
    "PlanInvalid",
    "PlanMade",
    "ProcessReaped",
    "Released",
    "ReviewStarted",
    "RunBranchRebuilt",
    "RunFinished",
    "RunResumed",
    "RunStarted",
    "SetupDone",
    "SetupRan",
    "StaleLockRemoved",
    "TaskApproved",
    "TaskCommitted",
    "TaskEvent",
    "TaskStarted",
    "TaskStatus",
    "TestsRan",
    "ToolCalled",
    "TurnStarted",
    "UnknownEvent",
    "VerdictGiven",
    "WorkspacePrepared",
    "model_event",
    "parse_event",
]
