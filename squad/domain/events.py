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

import json
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from squad.domain.plan import PlanTask
from squad.domain.review import Finding, Verdict
from squad.domain.usage import Usage

#: The journal schema this release writes. Schema 1 (squad 0.1) wrote the same records without `v`.
SCHEMA = 2
#: Oldest schema this release reads.
MIN_SCHEMA = 1


class JournalSchemaError(ValueError):
    """A record was written by a journal schema this release cannot read."""


class Event(BaseModel):
    """Base of every journal record. `ts` is set by the journal when the event is written."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    type: str
    ts: float = 0.0

    def to_record(self) -> dict[str, Any]:
        """The JSON object written to events.jsonl: `ts`, `type`, `v`, then the fields (None values omitted)."""
        data = self.model_dump(mode="json", exclude_none=True)
        head = {"ts": data.pop("ts"), "type": data.pop("type"), "v": SCHEMA}
        return {**head, **data}

    def describe(self) -> str:
        """One readable line (the timeline of `squad log`, the plain output of `squad run`)."""
        rest = {k: v for k, v in self.model_dump(mode="json", exclude_none=True).items() if k not in ("ts", "type")}
        detail = _short(json.dumps(rest, ensure_ascii=False, default=str), 160) if rest else ""
        return _line(self.type, self._who(), detail)

    def _who(self) -> str:
        return " ".join(str(v) for k in ("agent", "task") if (v := getattr(self, k, None)))


class TaskEvent(Event):
    """An event about one planned task."""

    task: str


class AgentEvent(Event):
    """An event of one agent's session (turns, tool calls, its stop). `task` is the plan task (or `plan`,
    `review`), `lease` the worktree it ran in."""

    agent: str = ""
    task: str = ""
    lease: str | None = None


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

    def describe(self) -> str:
        return _line(
            self.type, self.task or "", f"{self.where}: `{self.command}` -> {'pass' if self.passed else 'FAIL'}"
        )


# ---------------------------------------------------------------------------------------------------------
# Tasks


class TaskStarted(TaskEvent):
    type: Literal["task_started"] = "task_started"
    agent: str
    round: int = 0
    lease: str = ""
    branch: str = ""
    base_commit: str | None = None

    def describe(self) -> str:
        return _line(self.type, self._who(), f"round {self.round} on {self.branch}")


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


# ---------------------------------------------------------------------------------------------------------
# Agents' sessions (written as `agent.<kind>`, and to the task's transcript)


class TurnStarted(AgentEvent):
    type: Literal["agent.turn_start"] = "agent.turn_start"
    turn: int = 0


class ToolCalled(AgentEvent):
    type: Literal["agent.tool_call"] = "agent.tool_call"
    turn: int = 0
    name: str = ""
    args: Any = None
    result_chars: int = 0
    result: str | None = None  # the start of what the tool returned (bounded): what the agent saw
    is_error: bool = False
    duration_s: float = 0.0


class AgentModelCall(AgentEvent):
    """Schema 1 only: the agent loop's copy of a model call (schema 2 has the one `model_call`)."""

    type: Literal["agent.model_call"] = "agent.model_call"
    turn: int = 0
    model: str = ""


class AgentStopped(AgentEvent):
    type: Literal["agent.agent_stop"] = "agent.agent_stop"
    stop_reason: str
    turns: int = 0
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    summary: str = ""
    error: str | None = None

    @field_validator("usage", mode="before")
    @classmethod
    def _usage(cls, value: Any) -> Any:
        return Usage.from_dict(value) if isinstance(value, dict) or value is None else value


class ModelRetried(AgentEvent):
    type: Literal["agent.model_retry"] = "agent.model_retry"
    turn: int | None = None
    model: str = ""
    attempt: int = 0
    wait_s: float = 0.0
    error: str = ""


class ModelFellBack(AgentEvent):
    type: Literal["agent.model_fallback"] = "agent.model_fallback"
    turn: int | None = None
    model: str = ""
    after: str = ""
    reason: str = ""


class AgentWarning(AgentEvent):
    type: Literal["agent.warning"] = "agent.warning"
    turn: int | None = None
    message: str = ""
    hint: str | None = None


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
#: Model-layer events (`on_event` dicts of Model.complete) that an agent session journals, by kind.
MODEL_EVENTS: dict[str, type[AgentEvent]] = {
    "model_retry": ModelRetried,
    "model_fallback": ModelFellBack,
    "warning": AgentWarning,
}


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


def model_event(kind: str, fields: dict[str, Any]) -> AgentEvent | None:
    """The journal event for a model-layer `on_event` dict (`model_retry`, `model_fallback`, `warning`), or None."""
    cls = MODEL_EVENTS.get(kind)
    return cls.model_validate(fields) if cls is not None else None


def _short(text: Any, limit: int = 100) -> str:
    line = " ".join(str(text or "").split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _line(kind: str, who: str, detail: str) -> str:
    return " ".join(p for p in (kind, who, detail) if p)
