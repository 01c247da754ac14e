"""A planned task as a state machine: its phases, the events that move it, and the next step to take.

Pure rules, no I/O. The fold (`squad.domain.state`) moves a task's phase with `advance` for every
event; the orchestration asks `next_step` what to do with a task in its current phase and performs it,
which emits the events that move it on. Resume is therefore nothing special: a resumed run folds its
journal and asks `next_step` again.

    pending ──task_started──> working ──task_committed──> committed ──review_started──> reviewing
       ^                        ^                                                        │ verdict
       │                        ├──────────── task_started (next round) ── rejected <────┤ reject
    blocked / failed / needs_human / conflict (task_status)          approved <──────────┘ approve
       │ task_reopened (a person: --retry)  │ task_started          │ merged      │ conflict (integration)
       └──────────────> reopened ───────────┘   (conflict round) <── merge_conflict <─┘
                                                                       merged

A person's verdict (`squad approve` / `squad reject`) may also move a task that needs a person, or approved
work not yet merged.

To add a state (setup, baseline, a conflict round, a person's note): a `Phase`, its rows in
`_MOVES`, and a case in `next_step`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from squad.domain.review import COMPLETED_STOPS

if TYPE_CHECKING:
    from squad.config import Charter, Team
    from squad.domain.state import TaskState


class Phase(StrEnum):
    PENDING = "pending"
    WORKING = "working"
    COMMITTED = "committed"
    REVIEWING = "reviewing"
    REJECTED = "rejected"
    APPROVED = "approved"
    MERGED = "merged"
    NEEDS_HUMAN = "needs_human"
    FAILED = "failed"
    CONFLICT = "conflict"
    BLOCKED = "blocked"
    MERGE_CONFLICT = "merge_conflict"  # approved, but its merge into the run branch conflicted: a conflict round
    REOPENED = "reopened"  # a person reopened a settled task (`squad run --resume --retry`)

    @property
    def settled(self) -> bool:
        """No more work will happen on the task in this run (unless a person reopens it)."""
        return self in SETTLED


SETTLED = frozenset({Phase.APPROVED, Phase.MERGED, Phase.NEEDS_HUMAN, Phase.FAILED, Phase.CONFLICT, Phase.BLOCKED})
#: Phases whose work is approved (dependents may start from it).
APPROVED = frozenset({Phase.APPROVED, Phase.MERGED})
_OPEN = frozenset(Phase) - SETTLED
#: Status values schema-1 journals wrote in `task_status` and reports, as phases.
LEGACY: dict[str, Phase] = {"running": Phase.WORKING, "review": Phase.COMMITTED}

#: Phases a person may reopen (`--retry`).
REOPENABLE = frozenset({Phase.NEEDS_HUMAN, Phase.FAILED, Phase.CONFLICT})
#: Phases a person's verdict may judge besides those a reviewer's may: work that needs a person, and approved
#: work not merged yet (`squad reject` sends it back).
_HUMAN_VERDICT = frozenset({Phase.NEEDS_HUMAN, Phase.APPROVED, Phase.CONFLICT})

#: event type -> (phases it may move from, phase it moves to; None: decided by the event's payload).
_MOVES: dict[str, tuple[frozenset[Phase], Phase | None]] = {
    "task_started": (
        frozenset({Phase.PENDING, Phase.WORKING, Phase.REJECTED, Phase.MERGE_CONFLICT, Phase.REOPENED}),
        Phase.WORKING,
    ),
    "task_committed": (frozenset({Phase.WORKING}), Phase.COMMITTED),
    "review_started": (frozenset({Phase.COMMITTED, Phase.REVIEWING}), Phase.REVIEWING),
    "verdict": (frozenset({Phase.REVIEWING, Phase.COMMITTED, Phase.REJECTED}), None),
    "task_approved": (
        frozenset({Phase.REVIEWING, Phase.COMMITTED, Phase.APPROVED, Phase.REJECTED, Phase.NEEDS_HUMAN}),
        Phase.APPROVED,
    ),
    "task_status": (_OPEN | {Phase.APPROVED, Phase.CONFLICT}, None),
    "conflict": (frozenset({Phase.APPROVED, Phase.MERGE_CONFLICT}), Phase.MERGE_CONFLICT),
    "task_reopened": (REOPENABLE, Phase.REOPENED),
    "merged": (frozenset({Phase.APPROVED, Phase.MERGED}), Phase.MERGED),
}


class IllegalTransition(ValueError):
    """An event that cannot happen to a task in its phase (a hand-edited or corrupted journal)."""


def advance(
    phase: Phase, kind: str, *, verdict: str | None = None, status: str | None = None, human: bool = False
) -> Phase:
    """The phase after an event of type `kind`. Events that do not move tasks leave the phase as it is.

    Raises:
        IllegalTransition: the event cannot happen in `phase`.
    """
    move = _MOVES.get(kind)
    if move is None:
        return phase
    sources, target = move
    if kind == "verdict" and human:
        sources = sources | _HUMAN_VERDICT
    if phase not in sources:
        raise IllegalTransition(f"{kind} cannot happen to a task that is {phase.value}")
    if kind == "verdict":
        return Phase.APPROVED if verdict == "approve" else Phase.REJECTED
    if kind == "task_status":
        try:
            return LEGACY.get(status or "") or Phase(status or "")
        except ValueError:
            raise IllegalTransition(f"unknown task status {status!r}") from None
    assert target is not None
    return target


# ---------------------------------------------------------------------------------------------------------
# What to do next


@dataclass(frozen=True)
class Work:
    """Run `author` on round `round` (a new attempt, or an interrupted one started over).

    `kind`: work (round 0), revision (after a rejection), conflict (the approved change re-applied on top of
    the run branch, conflicts to resolve), retry (a person reopened the task).
    """

    round: int
    author: str
    restart: bool = False
    kind: str = "work"


@dataclass(frozen=True)
class Review:
    """Run the review gate on round `round`'s committed work."""

    round: int


@dataclass(frozen=True)
class Settle:
    """The task ends in `phase` for `reason` (emit it as a `task_status`)."""

    phase: Phase
    reason: str


@dataclass(frozen=True)
class Done:
    """Nothing to do: the task is settled."""

    phase: Phase


Step = Work | Review | Settle | Done


def next_step(ts: TaskState, team: Team, max_rounds: int) -> Step:
    """What to do with a task in its current phase (deterministic: the same state gives the same step)."""
    author = ts.authors[-1] if ts.authors else ts.agent
    match ts.phase:
        case Phase.PENDING:
            return Work(round=0, author=ts.agent)
        case Phase.WORKING:
            return Work(round=ts.round, author=author, restart=True, kind=ts.round_kind)
        case Phase.REOPENED:
            return Work(round=ts.round + 1, author=ts.agent, kind="retry")
        case Phase.MERGE_CONFLICT:
            if ts.conflict_rounds > max_rounds:
                files = ", ".join(ts.conflicts) or "?"
                return Settle(
                    Phase.CONFLICT,
                    f"merging into the run branch conflicts in {files}; {ts.conflict_rounds - 1} conflict round(s) "
                    f"did not resolve it (review.max_rounds is {max_rounds})",
                )
            resolver = _can_revise(team, author, ts.locked_out) or pick_reviser(team, ts.files, ts.locked_out)
            if resolver is None:
                return Settle(Phase.CONFLICT, "its merge conflicts and no specialist who can change files is left")
            return Work(round=ts.round + 1, author=resolver.name, kind="conflict")
        case Phase.COMMITTED if ts.stop_reason not in COMPLETED_STOPS:
            reason = f"{author} stopped: {ts.stop_reason}" + (f" ({ts.error})" if ts.error else "")
            return Settle(Phase.FAILED, reason)
        case Phase.COMMITTED | Phase.REVIEWING:
            return Review(round=ts.round)
        case Phase.REJECTED:
            if ts.round >= max_rounds:
                return Settle(
                    Phase.NEEDS_HUMAN,
                    f"rejected after {ts.round + 1} review round(s); review.max_rounds is {max_rounds}",
                )
            reviser = pick_reviser(team, ts.files, ts.locked_out)
            if reviser is None:
                return Settle(
                    Phase.NEEDS_HUMAN,
                    f"rejected, and every eligible agent is locked out ({', '.join(ts.locked_out)})",
                )
            return Work(round=ts.round + 1, author=reviser.name, kind="revision")
        case _:
            return Done(ts.phase)


def _can_revise(team: Team, name: str, locked_out: Iterable[str]) -> Charter | None:
    """`name`'s charter if it may still work on the task and can change files."""
    charter = team.agents.get(name)
    if charter is None or charter.reviewer or name in set(locked_out):
        return None
    return charter if {"write_file", "edit_file"} & set(charter.tool_names()) else None


def _owns(charter: Charter, files: Iterable[str]) -> bool:
    return any(PurePosixPath(f).match(glob) or f.startswith(glob.rstrip("*")) for f in files for glob in charter.owns)


def pick_reviser(team: Team, files: Iterable[str], locked_out: Iterable[str]) -> Charter | None:
    """The agent who revises rejected work: a specialist not locked out of the task who can change files.

    Prefers agents whose `owns` globs match the task's files, then name order (deterministic). An agent
    without write tools (a read-only lead) is never chosen: it could not do the work. None when nobody is
    left: the task needs a person.
    """
    locked = set(locked_out)
    files = list(files)
    writers = {"write_file", "edit_file"}
    eligible = [c for c in team.workers if c.name not in locked and writers & set(c.tool_names())]
    if not eligible:
        return None
    eligible.sort(key=lambda c: (not _owns(c, files), c.name))
    return eligible[0]
