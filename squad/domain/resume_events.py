"""Events of what a resumed run finds and repairs: processes and git locks a killed squad left, and what happens to
the decisions of an attempt (kept once its work is committed, dropped when it was killed before).

Registered for `parse_event` by `squad.domain.events`, which imports them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from squad.domain.event_base import Event, TaskEvent, _line, _short


class ProcessReaped(Event):
    """On resume: a process the killed squad had started was still running; it was killed, or (a git command)
    waited for until it exited, before any work went on."""

    type: Literal["process_reaped"] = "process_reaped"
    pid: int
    command: str = ""
    action: Literal["killed", "exited"] = "killed"

    def describe(self) -> str:
        return _line(self.type, "", f"{self.action} pid {self.pid} left by the killed run: {_short(self.command)}")


class StaleLockRemoved(Event):
    """On resume: a git lock file left in one of the run's worktrees or branches by a git process that died with
    the run, removed (no live process could hold it: see squad.infra.git_locks)."""

    type: Literal["stale_lock_removed"] = "stale_lock_removed"
    path: str  # relative to the git common dir

    def describe(self) -> str:
        return _line(self.type, "", self.path)


class AttemptDecisions(TaskEvent):
    """The decisions an attempt recorded: kept in the run ledger (its work was committed), or dropped (the attempt
    was killed before its work was committed, and is done again)."""

    type: Literal["attempt_decisions"] = "attempt_decisions"
    round: int = 0
    kept: bool = True
    titles: list[str] = Field(default_factory=list)

    def describe(self) -> str:
        what = "kept" if self.kept else "dropped (unfinished attempt)"
        return _line(self.type, self.task, f"round {self.round}: {what}: {_short('; '.join(self.titles), 200)}")
