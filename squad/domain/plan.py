"""The plan: a DAG of tasks, one wire schema for `submit_plan`, one validator, and its dependency waves.

Pure rules, no I/O. The lead submits `PlannedTask`s through the `submit_plan` tool (whose argument
schema is this module's `PlannedTask`); `validate_plan` checks them in code and returns either a `Plan`
or errors worded for the model to act on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from squad.domain.ids import PLAN_TASK_RE

if TYPE_CHECKING:
    from squad.config import Team


# The `submit_plan` schema, validated again in code by `validate_plan`; the docstring is what the model reads.
class PlannedTask(BaseModel):
    """One task of the plan."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Short slug: lowercase letters, digits, dashes.")
    agent: str = Field(description="Name of the specialist who does it.")
    goal: str = Field(description="What done looks like, in a few sentences.")
    files: list[str] = Field(default_factory=list, description="Repo-relative paths the task will likely touch.")
    interfaces: list[str] = Field(
        default_factory=list,
        description="What this task must define or use exactly as written, so tasks running in parallel fit "
        "together: signatures with their file (`def lend(isbn: str, due: date) -> Loan` in shelf/core.py), "
        "endpoints, formats.",
    )
    depends_on: list[str] = Field(
        default_factory=list, description="Ids of tasks whose approved work this one builds on."
    )


_TASK_KEYS = frozenset(PlannedTask.model_fields)


@dataclass(frozen=True)
class PlanTask:
    """One unit of work for one specialist."""

    id: str
    agent: str
    goal: str
    files: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    interfaces: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "agent": self.agent,
            "goal": self.goal,
            "files": list(self.files),
            "interfaces": list(self.interfaces),
            "depends_on": list(self.depends_on),
        }

    @staticmethod
    def from_dict(data: dict[str, Any]) -> PlanTask:
        return PlanTask(
            id=str(data["id"]),
            agent=str(data["agent"]),
            goal=str(data.get("goal", "")),
            files=tuple(data.get("files") or ()),
            depends_on=tuple(data.get("depends_on") or ()),
            interfaces=tuple(data.get("interfaces") or ()),
        )


@dataclass(frozen=True)
class Plan:
    """A validated DAG of tasks, in the planner's order (which is also the merge order)."""

    tasks: tuple[PlanTask, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"tasks": [t.to_dict() for t in self.tasks]}

    def get(self, task_id: str) -> PlanTask:
        return next(t for t in self.tasks if t.id == task_id)

    @property
    def ids(self) -> list[str]:
        return [t.id for t in self.tasks]

    def waves(self) -> list[list[str]]:
        """Dependency levels: wave 1 holds tasks without dependencies, wave n tasks whose dependencies are all
        in earlier waves. Plan order within a wave. (A validated plan has no cycles.)"""
        level: dict[str, int] = {}
        pending = list(self.tasks)
        while pending:
            ready = [t for t in pending if all(d in level for d in t.depends_on)]
            if not ready:  # a cycle: only possible for an unvalidated plan
                raise ValueError("the plan has a dependency cycle")
            for t in ready:
                level[t.id] = 1 + max((level[d] for d in t.depends_on), default=0)
                pending.remove(t)
        out: list[list[str]] = [[] for _ in range(max(level.values(), default=0))]
        for t in self.tasks:
            out[level[t.id] - 1].append(t.id)
        return out


def find_cycle(edges: dict[str, Sequence[str]]) -> list[str] | None:
    """A dependency cycle as a path `[a, b, ..., a]`, or None. Deterministic: visits ids in sorted order."""
    color: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        color[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in edges:
                continue
            if color.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in color and (found := visit(nxt)):
                return found
        stack.pop()
        color[node] = 2
        return None

    for node in sorted(edges):
        if node not in color and (found := visit(node)):
            return found
    return None


def bad_path(path: str) -> str | None:
    """Why `path` is not a repo-relative path a task may name, or None."""
    if not path or "\\" in path or "\0" in path:
        return "is not a repo-relative path"
    p = PurePosixPath(path)
    if p.is_absolute() or re.match(r"^[A-Za-z]:", path):
        return "is absolute; use a path relative to the repository root"
    if ".." in p.parts:
        return "leaves the repository (..)"
    if p.parts and p.parts[0] == ".git":
        return "is inside .git"
    return None


def validate_plan(data: Any, team: Team) -> tuple[Plan | None, list[str]]:
    """Check a submitted plan in code. Returns (plan, []) or (None, errors a model can act on)."""
    raw = data.get("tasks") if isinstance(data, dict) else None
    if not isinstance(raw, list) or not raw:
        return None, ["the plan has no tasks: submit at least one task"]
    errors: list[str] = []
    workers = {c.name for c in team.workers}
    reviewers = {c.name for c in team.reviewers}
    seen: set[str] = set()
    tasks: list[PlanTask] = []
    for n, item in enumerate(raw, start=1):
        if not isinstance(item, dict):
            errors.append(f"task #{n}: must be an object with id, agent, goal, files, interfaces, depends_on")
            continue
        tid = item.get("id")
        label = f"task {tid!r}" if isinstance(tid, str) and tid else f"task #{n}"
        if not isinstance(tid, str) or not PLAN_TASK_RE.match(tid):
            errors.append(f"{label}: id must match [a-z0-9][a-z0-9-]{{0,35}} (lowercase slug, at most 36 chars)")
        elif tid in seen:
            errors.append(f"{label}: duplicate id; every task needs its own id")
        else:
            seen.add(tid)
        agent = item.get("agent")
        if agent in reviewers:
            errors.append(f"{label}: {agent!r} is a reviewer (reviewers judge work); use one of {sorted(workers)}")
        elif agent not in workers:
            errors.append(f"{label}: unknown agent {agent!r}; choose one of {sorted(workers)}")
        goal = item.get("goal")
        if not isinstance(goal, str) or not goal.strip():
            errors.append(f"{label}: goal is missing; say what done looks like")
        files = item.get("files") or []
        deps = item.get("depends_on") or []
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            errors.append(f"{label}: files must be a list of paths")
            files = []
        for f in files:
            if problem := bad_path(f):
                errors.append(f"{label}: file {f!r} {problem}")
        interfaces = item.get("interfaces") or []
        if not isinstance(interfaces, list) or not all(isinstance(i, str) and i.strip() for i in interfaces):
            errors.append(f"{label}: interfaces must be a list of non-empty strings (signatures, names, formats)")
            interfaces = []
        if unknown := sorted(set(item) - _TASK_KEYS):
            errors.append(f"{label}: unknown field(s) {', '.join(unknown)}; a task has {', '.join(sorted(_TASK_KEYS))}")
        if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
            errors.append(f"{label}: depends_on must be a list of task ids")
            deps = []
        tasks.append(
            PlanTask(
                id=str(tid),
                agent=str(agent),
                goal=str(goal or ""),
                files=tuple(files),
                depends_on=tuple(dict.fromkeys(deps)),
                interfaces=tuple(i.strip() for i in interfaces),
            )
        )
    ids = {t.id for t in tasks}
    for t in tasks:
        for dep in t.depends_on:
            if dep == t.id:
                errors.append(f"task {t.id!r}: depends on itself")
            elif dep not in ids:
                errors.append(f"task {t.id!r}: depends_on {dep!r}, which is not a task id in this plan")
    cycle = find_cycle({t.id: [d for d in t.depends_on if d != t.id] for t in tasks})
    if cycle:
        errors.append(f"dependency cycle: {' -> '.join(cycle)}; remove one of these dependencies")
    return (None, errors) if errors else (Plan(tuple(tasks)), [])
