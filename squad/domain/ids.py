"""Identifiers and the names derived from them: run ids, task ids, and the branches squad creates.

Pure rules, no I/O. Every module that names a run, a task or a squad branch uses these, so a task id
can never name a file outside the run folder and a `squad/<run>--*` branch pattern can only match tasks
of that run.
"""

from __future__ import annotations

import re
import secrets
import string
from datetime import UTC, datetime

from squad.errors import UsageError

#: Run ids are `YYYYMMDD-HHMMSS-xxxx`; any lowercase dash-separated id is accepted, but never `--`, which
#: separates run and task in task branch names (so `squad/<run>--*` can only match tasks of that run).
RUN_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
#: Worktree/lease ids: a plan task id, or `<task>-r<n>` for revision round n.
TASK_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
#: Plan task ids. Shorter than TASK_RE's 40 characters so revision leases (`<id>-r<n>`) fit.
PLAN_TASK_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,35}$")
#: The exact shape `new_run_id` makes. gc without explicit runs only considers runs of this shape, so a
#: user's own `squad/notes` or `squad/wip--x` branch is never mistaken for an abandoned run.
RUN_ID_RE = re.compile(r"\d{8}-\d{6}-[a-z0-9]{4}")
TASK_BRANCH_RE = re.compile(rf"squad/(?P<run>{RUN_RE.pattern})--(?P<task>{TASK_RE.pattern})")
RUN_BRANCH_RE = re.compile(rf"squad/(?P<run>{RUN_RE.pattern})")


def new_run_id(now: datetime | None = None) -> str:
    """A fresh run id `YYYYMMDD-HHMMSS-xxxx` (UTC time, 4 random lowercase letters/digits)."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%d-%H%M%S")
    alphabet = string.ascii_lowercase + string.digits
    return f"{stamp}-{''.join(secrets.choice(alphabet) for _ in range(4))}"


def task_branch(run: str, task: str) -> str:
    """Branch name of a task: `squad/<run>--<task>`."""
    return f"squad/{run}--{task}"


def run_branch(run: str) -> str:
    """Branch name of a run: `squad/<run>`."""
    return f"squad/{run}"


def lease_id(task: str, round_: int) -> str:
    """The worktree of a task's round: the task id for round 0, `<task>-r<n>` after."""
    return task if round_ == 0 else f"{task}-r{round_}"


def check_run(run: str) -> None:
    """Raise UsageError unless `run` is a valid run id."""
    if not RUN_RE.fullmatch(run) or len(run) > 64:
        raise UsageError(f"invalid run id {run!r}", hint="run ids look like 20261122-063107-a1b2 (no '--')")


def check_task(task: str) -> None:
    """Raise UsageError unless `task` is a valid task (lease) id."""
    if not TASK_RE.fullmatch(task):
        raise UsageError(f"invalid task id {task!r}", hint="task ids match [a-z0-9][a-z0-9-]{0,39}")


def slugify(text: str, limit: int = 36) -> str:
    """A task id from free text: lowercase words joined by dashes, within `limit` characters."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].rstrip("-")
    return slug or "task"
