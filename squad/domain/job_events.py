"""Events of a run spread over CI jobs (`squad plan --out`, `squad task`, `squad integrate`).

Each job writes its own journal on its own machine; `squad integrate` merges them into the run's journal.
These events say where one job's part begins, how the plan split the run's budget among the jobs, and which
fragments the merged journal was built from.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from squad.domain.event_base import Event, _line


class JobStarted(Event):
    """A job of a distributed run started on a fresh checkout: `plan`, `task` (with its task) or `integrate`.

    Worktrees made ready by an earlier job were on another machine, so none is ready here (the fold forgets them).
    """

    type: Literal["job_started"] = "job_started"
    job: Literal["plan", "task", "integrate"]
    task: str | None = None

    def describe(self) -> str:
        return _line(self.type, self.job, self.task or "")


class BudgetSplit(Event):
    """The plan's split of the run's budget: each task job gets `task` limits and `rates` per minute.

    `run` is the run's limits (what `squad integrate` reports the total against), `spent_usd` what planning cost,
    `shares` how many equal slices what was left was cut into, `max_parallel` how many jobs run at once (the
    account's per-minute rate limits are divided among them).
    """

    type: Literal["budget_split"] = "budget_split"
    shares: int = 1
    max_parallel: int = 1
    run: dict[str, Any] = Field(default_factory=dict)
    task: dict[str, Any] = Field(default_factory=dict)
    rates: dict[str, int] = Field(default_factory=dict)
    spent_usd: float = 0.0

    def describe(self) -> str:
        usd = self.task.get("run_usd")
        each = f"${usd:.4f}" if isinstance(usd, int | float) else "no dollar cap"
        tokens = self.task.get("run_input_tokens")
        if isinstance(tokens, int):
            each += f", {tokens:,} input tokens"
        rpm = self.rates.get("requests_per_minute")
        rate = f"; {rpm} requests/min each, {self.max_parallel} at once" if rpm else f"; {self.max_parallel} at once"
        return _line(self.type, "", f"{self.shares} task jobs, each {each}{rate}")


class FragmentsMerged(Event):
    """`squad integrate` built the run's journal from these job fragments (kind, task, events, digest)."""

    type: Literal["fragments_merged"] = "fragments_merged"
    fragments: list[dict[str, Any]] = Field(default_factory=list)

    def describe(self) -> str:
        tasks = sum(1 for f in self.fragments if f.get("kind") == "task")
        events = sum(int(f.get("events") or 0) for f in self.fragments)
        return _line(self.type, "", f"{len(self.fragments)} fragments ({tasks} task jobs, {events} events)")


class RunBranchRebuilt(Event):
    """`squad integrate` built `branch` again from the run's `base` commit instead of continuing it at `tip`: it
    held merges of work the fragments no longer approve (`dropped`, each "<sha> <subject>"), e.g. a task job
    rerun since at a new commit. The merges that follow are the fragments' approved work, each merged once."""

    type: Literal["run_branch_rebuilt"] = "run_branch_rebuilt"
    branch: str = ""
    tip: str = ""
    base: str = ""
    dropped: list[str] = Field(default_factory=list)

    def describe(self) -> str:
        return _line(self.type, "", f"{self.branch} from {self.base[:12]}, dropping {len(self.dropped)} stale merge(s)")
