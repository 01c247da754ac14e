"""The run report (report.json, the end of `squad run`): built from the run state, never kept beside it."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from squad.domain.ids import run_branch
from squad.domain.state import RunState
from squad.domain.task import Phase


@dataclass
class TaskReport:
    """One task in the final report."""

    id: str
    agent: str
    goal: str
    status: str
    rounds: int = 0
    agents: list[str] = field(default_factory=list)
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    branch: str | None = None
    commit: str | None = None
    summary: str = ""
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RunReport:
    """What a run did and what happens next; written to report.json and printed by `squad run`."""

    run: str
    status: str  # done | partial | needs_human | failed | conflict | tests_failed | baseline_failed | interrupted
    task: str
    branch: str | None  # squad/<run>, when work was merged into it
    base_commit: str | None = None
    tasks: list[TaskReport] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    tests: dict[str, Any] | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    cost_usd: float = 0.0
    cache_hit_rate: float = 0.0
    needs_human: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)
    not_merged: dict[str, str] = field(default_factory=dict)  # task -> why it was not merged
    applied: bool = False
    error: str | None = None
    next_command: str = ""
    budget: dict[str, Any] = field(default_factory=dict)  # a run spread over CI jobs: its spend against its limits

    @property
    def ok(self) -> bool:
        return self.status == "done"

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["tasks"] = [t.to_dict() for t in self.tasks]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunReport:
        """A report read back from report.json (unknown keys ignored)."""
        known = {f.name for f in fields(cls)}
        task_keys = {f.name for f in fields(TaskReport)}
        values = {k: v for k, v in data.items() if k in known}
        values["tasks"] = [
            TaskReport(**{k: v for k, v in t.items() if k in task_keys}) for t in data.get("tasks") or []
        ]
        return cls(**values)


def run_decisions(ledger: Path) -> list[dict[str, Any]]:
    """The decisions a run recorded (its ledger file), as {id, title, agent}."""
    from squad.infra.ledger import parse_text

    if not ledger.exists():
        return []
    parsed = parse_text(ledger.read_text(encoding="utf-8"), ledger)
    return [{"id": e.id, "title": e.title, "agent": e.agent} for e in parsed.entries]


def build_report(
    state: RunState,
    status: str,
    *,
    error: str | None = None,
    conflicts: list[str] | None = None,
    decisions: list[dict[str, Any]] | None = None,
    not_merged: dict[str, str] | None = None,
) -> RunReport:
    """The report of a run in `status`, from its folded state."""
    tasks: list[TaskReport] = []
    needs_human: list[str] = []
    failed: list[str] = []
    for pt in state.plan.tasks if state.plan else ():
        ts = state.tasks[pt.id]
        shown = Phase.APPROVED if ts.phase is Phase.MERGED else ts.phase
        if shown is Phase.APPROVED and ts.conflicts:  # approved, but its merge into the run branch conflicted
            shown = Phase.CONFLICT
        tasks.append(
            TaskReport(
                id=pt.id,
                agent=pt.agent,
                goal=pt.goal,
                status=shown.value,
                rounds=ts.rounds,
                agents=list(ts.authors),
                verdicts=[v.to_dict() for v in ts.verdicts],
                branch=ts.branch,
                commit=ts.commit,
                summary=ts.summary,
                reason=ts.reason,
            )
        )
        if ts.phase is Phase.NEEDS_HUMAN:
            last = ts.verdicts[-1].findings if ts.verdicts else ()
            found = "; ".join(f.line_text().lstrip("- ") for f in last)
            needs_human.append(f"task {pt.id}: rejected {len(ts.verdicts)} time(s); last findings: {found or '-'}")
        if ts.phase is Phase.FAILED and ts.reason:
            failed.append(f"task {pt.id}: {ts.reason}")
    if status == "failed" and error is None:  # say why, e.g. which budget stopped an agent and the key to raise
        error = "; ".join(failed) or None
    merged = [t for t, ts in state.tasks.items() if ts.merged]
    branch = run_branch(state.run) if merged else None
    retry = next((t for t, ts in state.tasks.items() if ts.phase.value in ("needs_human", "failed", "conflict")), None)
    if status == "done":
        nxt = "(merged into your branch)" if state.applied else f"git merge {branch}"
    elif status == "partial":
        nxt = f"git merge {branch} (the merged part), or: squad run --resume {state.run} --retry {retry} --note '...'"
    elif status == "baseline_failed":
        nxt = f"fix the failing tests on your branch, or: squad run --resume {state.run} --allow-failing-baseline"
    elif status in ("interrupted", "failed"):
        nxt = f"squad run --resume {state.run}"
    else:
        nxt = f"squad log {state.run}"
    tests = state.integration_tests
    return RunReport(
        run=state.run,
        status=status,
        task=state.task_text,
        branch=branch,
        base_commit=state.base_commit,
        tasks=tasks,
        decisions=decisions or [],
        tests=tests.model_dump(exclude={"ts", "type", "task"}) if tests else None,
        usage=state.usage_report(),
        cost_usd=round(state.spend.usd, 6),
        cache_hit_rate=round(state.spend.cache_hit_rate, 4),
        needs_human=needs_human,
        conflicts=conflicts or [],
        merged=merged,
        not_merged=dict(not_merged or {}),
        applied=state.applied,
        error=error,
        next_command=nxt,
    )


def run_status(phases: list[Phase]) -> str:
    """The run's status when not every task was approved: the most telling settled phase."""
    for phase in (Phase.CONFLICT, Phase.NEEDS_HUMAN, Phase.FAILED):
        if phase in phases:
            return phase.value
    return "failed"
