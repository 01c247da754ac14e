"""The executor seam: the orchestration asks an executor to carry one task to a settled phase.

What crosses the seam is plain data (`TaskSpec` in, `TaskOutcome` out), so an executor need not share
memory with the scheduler: today's `squad.orchestration.flow.LocalExecutor` runs the task in-process in
worktrees of this repository; an executor that runs tasks as CI jobs takes the same spec, runs the same task flow on
another machine, and reports the same outcome (its events arrive as a journal fragment).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from squad.domain.plan import PlanTask
from squad.domain.task import Phase

if TYPE_CHECKING:
    from squad.domain.state import RunState


@dataclass(frozen=True)
class Dependency:
    """Approved work a task builds on."""

    task: str
    agent: str
    commit: str
    summary: str = ""


@dataclass(frozen=True)
class TaskSpec:
    """Everything needed to carry one planned task through work, review and revision."""

    run: str
    task: PlanTask
    request: str  # the whole request, for context
    base_commit: str  # the run's base: where a task without dependencies starts
    dependencies: tuple[Dependency, ...] = ()


@dataclass(frozen=True)
class TaskOutcome:
    """Where the task settled, and its work when approved."""

    task: str
    phase: Phase
    commit: str | None = None
    branch: str | None = None
    reasons: list[str] = field(default_factory=list)


def task_spec(state: RunState, pt: PlanTask) -> TaskSpec:
    """The spec of `pt` in the run `state` folds: its request, base commit, and its dependencies' approved work."""
    deps = []
    for d in pt.depends_on:
        ts = state.tasks[d]
        deps.append(Dependency(task=d, agent=ts.agent, commit=ts.commit or "", summary=ts.summary))
    return TaskSpec(
        run=state.run,
        task=pt,
        request=state.task_text,
        base_commit=state.base_commit or "HEAD",
        dependencies=tuple(deps),
    )


class Executor(Protocol):
    """Carries tasks to a settled phase."""

    async def run_task(self, spec: TaskSpec) -> TaskOutcome:
        """Work, review and revise `spec.task` until it settles; the events go to the run's journal."""
        ...
