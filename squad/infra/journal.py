"""The run folder `.squad/runs/<run>/`: events, transcripts, recorded model responses, the report, the lock.

The journal owns the run folder's layout (events, responses, transcripts, the run ledger, attempts' decisions,
records of running processes, the report). Every step of a run is one typed event
(`squad.domain.events`) appended to `events.jsonl` as one JSON line with one `write()` on an O_APPEND
descriptor, so concurrent writers never interleave within a line and a crash can tear at most the last
line, which readers skip with a warning. State is never kept anywhere else: `state()` folds the events
(`squad.domain.state.fold`), and that is what resume, `squad log/runs/cost`, the live view and gc read.

One process at a time works on a run: `lock()` takes `<git common dir>/squad/locks/run-<run>.lock`.
"""

from __future__ import annotations

import json
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from squad.config import runs_dir
from squad.domain.events import AgentEvent, Event, JournalSchemaError, ModelCalled, parse_event
from squad.domain.ids import RUN_RE, TASK_RE, check_run, check_task
from squad.domain.state import RunState, fold
from squad.errors import SquadError
from squad.infra import faults
from squad.infra.git import git_common_dir
from squad.infra.jsonl import JournalWarning, append_line, end_torn_line, iter_jsonl, read_jsonl
from squad.infra.locks import RunLock

EVENTS = "events.jsonl"
RESPONSES = "responses.jsonl"
REPORT = "report.json"
LEDGER = "ledger.md"
TRANSCRIPTS = "transcripts"
#: Decisions of a task attempt in progress (`<task>.r<round>.md`), kept in the run ledger once its work is committed.
ATTEMPTS = "attempts"
#: Records of the processes the run has running (squad.infra.processes).
PROCS = "procs"
#: The attempt name of the lead's planning session (not a valid task id, so never a task's).
PLAN_ATTEMPT = "_plan"
JOBS = "jobs"

Listener = Callable[[Event], None]


class JournalError(SquadError):
    """A journal this release cannot read (written by a newer squad)."""

    exit_code = 2


class Journal:
    """The run folder of one run.

    Args:
        root: the repository root (the run folder lives in `<root>/.squad/runs/<run>/`).
        run: the run id.
        job: a job of a run spread over CI jobs (`squad task`): its own journal, in `<run folder>/jobs/<job>/`,
            with its own lock, so jobs of one run can share a checkout.
    """

    def __init__(self, root: Path, run: str, *, job: str | None = None) -> None:
        check_run(run)  # a run id names a folder under .squad/runs/: `..` or `/` would reach outside it
        self.root = Path(root)
        self.run = run
        self.job = job
        self.dir = runs_dir(self.root) / run
        if job is not None:
            check_task(job)  # a job is a task id: it names a folder, and must not reach outside the run's
            self.dir = self.dir / JOBS / job
        self.events_path = self.dir / EVENTS
        self.responses_path = self.dir / RESPONSES
        self.report_path = self.dir / REPORT
        self.ledger_path = self.dir / LEDGER
        self.transcripts_dir = self.dir / TRANSCRIPTS
        self.attempts_dir = self.dir / ATTEMPTS
        self.procs_dir = self.dir / PROCS
        self.listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._indices: dict[tuple[str, str], int] = {}

    def create(self) -> Journal:
        """Make the run folder (idempotent) and end any torn last line, so new lines start clean."""
        self.transcripts_dir.mkdir(parents=True, exist_ok=True)
        for path in (self.events_path, self.responses_path):
            end_torn_line(path)
        return self

    @property
    def exists(self) -> bool:
        return self.events_path.exists()

    def lock(self) -> RunLock:
        """The run's lock (use as a context manager); RunLockedError names the process holding it."""
        name = self.run if self.job is None else f"{self.run}--{self.job}"
        return RunLock(git_common_dir(self.root) / "squad" / "locks", name)

    # ------------------------------------------------------------------------------------------ writing

    def emit(self, event: Event) -> Event:
        """Append one event (stamped with the time unless it has one) and hand it to the listeners.

        An agent's session event (turns, tool calls, model calls made in a task's worktree) also goes to its
        task's transcript, so one task's whole story (every round, author and reviewer) reads in one file.
        """
        if not event.ts:
            event = event.model_copy(update={"ts": round(time.time(), 6)})
        append_line(self.events_path, event.to_record())
        task = getattr(event, "task", None)
        in_task = isinstance(event, AgentEvent) or (isinstance(event, ModelCalled) and event.lease is not None)
        if in_task and isinstance(task, str) and TASK_RE.fullmatch(task):
            append_line(self.transcripts_dir / f"{task}.jsonl", event.to_record())
        faults.after_event(event.type)  # test-only kill point (off unless the crash tests switch it on)
        for listener in list(self.listeners):
            listener(event)
        return event

    def read_transcripts(self) -> dict[str, list[dict[str, Any]]]:
        """Every task's transcript (task id -> its records), in task order: what a job hands on in its fragment."""
        return {p.stem: read_jsonl(p) for p in sorted(self.transcripts_dir.glob("*.jsonl"))}

    def attempt_ledger(self, task: str, round_: int) -> Path:
        """Where the decisions of task `task`'s attempt at round `round_` wait until its work is committed."""
        return self.attempts_dir / f"{task}.r{round_}.md"

    def attempt_ledgers(self) -> Iterator[tuple[str, int, Path]]:
        """(task, round, file) of every attempt file in the run folder (task `PLAN_ATTEMPT`: the planning's)."""
        if self.attempts_dir.is_dir():
            for path in sorted(self.attempts_dir.glob("*.r*.md")):
                task, _, round_ = path.name[: -len(".md")].rpartition(".r")
                if (TASK_RE.fullmatch(task) or task == PLAN_ATTEMPT) and round_.isdigit():
                    yield task, int(round_), path

    def record_response(self, agent: str, task: str, response: dict[str, Any]) -> None:
        """Keep a model response for replay. `index` counts calls per (agent, task), which is how
        ScriptedModel.from_journal replays them; a resumed run continues where the recorded calls stopped."""
        key = (agent, task)
        with self._lock:
            index = self._indices.get(key)
            if index is None:
                index = sum(1 for r in read_jsonl(self.responses_path) if (r.get("agent"), r.get("task")) == key)
            self._indices[key] = index + 1
        append_line(self.responses_path, {"agent": agent, "task": task, "index": index, "response": response})

    def write_report(self, report: dict[str, Any]) -> None:
        """Write report.json atomically (temp file + fsync + rename)."""
        tmp = self.report_path.with_suffix(".json.tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.report_path)

    # ------------------------------------------------------------------------------------------ reading

    def read_events(self) -> list[Event]:
        """All events, typed. Unreadable lines (a torn last line, a hand edit) are skipped with a
        JournalWarning naming file:line.

        Raises:
            JournalError: a line was written by a newer journal schema than this release reads.
        """
        return list(self.iter_events())

    def iter_events(self) -> Iterator[Event]:
        for number, record in iter_jsonl(self.events_path):
            try:
                yield parse_event(record)
            except JournalSchemaError as exc:
                raise JournalError(
                    f"{self.events_path}:{number}: {exc}",
                    hint="upgrade squad (pip install -U ...) to read this run, or use the squad that wrote it",
                ) from None
            except ValueError as exc:
                warnings.warn(f"{self.events_path}:{number}: skipped: {exc}", JournalWarning, 2)

    def state(self) -> RunState:
        """The run as its events describe it (the one fold)."""
        return fold(self.run, self.iter_events())

    def read_report(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.report_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class RunSummary:
    """One line of `squad runs`."""

    run: str
    started: float | None
    task_text: str
    status: str
    cost_usd: float
    branch: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "started": self.started,
            "task": self.task_text,
            "status": self.status,
            "cost_usd": round(self.cost_usd, 6),
            "branch": self.branch,
        }


def iter_run_ids(root: Path) -> Iterator[str]:
    """Run ids with a journal, oldest first (run ids sort by time)."""
    directory = runs_dir(root)
    if directory.is_dir():
        for path in sorted(directory.iterdir()):
            if RUN_RE.fullmatch(path.name) and (path / EVENTS).exists():  # other folders are not squad's runs
                yield path.name


def active_runs(root: Path) -> list[tuple[str, int | None]]:
    """(run, holder pid) of every run some live process holds the run lock of, oldest first.

    A run lock's pid file exists only while it is held (a killed holder leaves it behind, but its lock is free),
    so only those locks are probed.
    """
    locks = git_common_dir(root) / "squad" / "locks"
    found = []
    for pid_file in sorted(locks.glob("run-*.pid")) if locks.is_dir() else ():
        lock = RunLock(locks, pid_file.stem.removeprefix("run-"))
        if lock.held_elsewhere:
            found.append((lock.run, lock.holder()))
    return found


def list_runs(root: Path) -> list[RunSummary]:
    """Every recorded run, oldest first (status `interrupted` or `unfinished` while not finished)."""
    out: list[RunSummary] = []
    for run in iter_run_ids(root):
        state = Journal(root, run).state()
        out.append(
            RunSummary(
                run=run,
                started=state.started,
                task_text=state.task_text,
                status=state.display_status,
                cost_usd=state.spend.usd,
                branch=f"squad/{run}",
            )
        )
    return out


def latest_run(root: Path) -> str | None:
    runs = list(iter_run_ids(root))
    return runs[-1] if runs else None
