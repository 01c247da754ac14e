"""The run journal: `.squad/runs/<run>/` — events, transcripts, recorded model responses, the report.

Every step of a run appends one JSON line to `events.jsonl`. The journal is the single source of
truth for `squad log`, `squad cost` and `squad run --resume`: state is derived from events, never
kept elsewhere. Lines are written with one `write()` on an O_APPEND descriptor, so concurrent
writers never interleave within a line and a crash can tear at most the last line, which readers
skip with a warning.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from squad.config import runs_dir
from squad.domain.ids import TASK_RE  # a task id never names a file outside transcripts/
from squad.infra.jsonl import append_line, end_torn_line, read_jsonl
from squad.models.base import ModelRequest, ModelResponse

EVENTS = "events.jsonl"
RESPONSES = "responses.jsonl"
REPORT = "report.json"
LEDGER = "ledger.md"
TRANSCRIPTS = "transcripts"

Listener = Callable[[dict[str, Any]], None]


@dataclass
class TaskState:
    """What the journal says about one planned task (for resume and reports)."""

    id: str
    agent: str
    status: str = "pending"  # pending | running | review | approved | needs_human | failed | conflict | blocked
    round: int = 0
    authors: list[str] = field(default_factory=list)
    locked_out: list[str] = field(default_factory=list)
    branch: str | None = None
    commit: str | None = None
    base_commit: str | None = None
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    summary: str = ""
    merged: bool = False


@dataclass
class RunState:
    """A run as derived from its events."""

    run: str
    task_text: str = ""
    base_commit: str | None = None
    plan: list[dict[str, Any]] | None = None
    tasks: dict[str, TaskState] = field(default_factory=dict)
    status: str | None = None  # the run_finished status, None while unfinished
    started: float | None = None

    @property
    def approved(self) -> list[str]:
        return [t for t, s in self.tasks.items() if s.status == "approved"]


def derive_state(run: str, events: list[dict[str, Any]]) -> RunState:
    """Fold events into a RunState. Unknown event types are ignored (agents emit their own)."""
    state = RunState(run=run)
    for ev in events:
        kind = ev.get("type")
        task = ev.get("task")
        ts = state.tasks.get(task) if isinstance(task, str) else None
        if kind == "run_started":
            state.task_text = ev.get("task_text", "")
            state.base_commit = ev.get("base_commit")
            state.started = ev.get("ts")
        elif kind == "plan":
            state.plan = ev.get("tasks", [])
            state.tasks = {t["id"]: TaskState(id=t["id"], agent=t["agent"]) for t in state.plan or []}
        elif ts is None:
            if kind == "run_finished":
                state.status = ev.get("status")
            continue
        elif kind == "task_started":
            ts.status = "running"
            ts.round = ev.get("round", 0)
            ts.branch = ev.get("branch", ts.branch)
            ts.base_commit = ts.base_commit or ev.get("base_commit")
            if ev.get("agent") and ev["agent"] not in ts.authors:
                ts.authors.append(ev["agent"])
        elif kind == "task_committed":
            ts.status = "review"
            ts.commit = ev.get("commit") or ts.commit
            ts.summary = ev.get("summary", ts.summary)
        elif kind == "verdict":
            ts.verdicts.append({k: ev.get(k) for k in ("round", "reviewer", "verdict", "summary", "findings")})
        elif kind == "lockout":
            if ev.get("agent") not in ts.locked_out:
                ts.locked_out.append(ev["agent"])
        elif kind == "task_approved":
            ts.status = "approved"
            ts.commit = ev.get("commit") or ts.commit
            ts.branch = ev.get("branch", ts.branch)
        elif kind == "task_status":
            ts.status = ev.get("status", ts.status)
        elif kind == "merged":
            ts.merged = True
    return state


class Journal:
    """The run folder of one run.

    Args:
        root: the repository root (the run folder lives in `<root>/.squad/runs/<run>/`).
        run: the run id.
    """

    def __init__(self, root: Path, run: str) -> None:
        self.root = Path(root)
        self.run = run
        self.dir = runs_dir(self.root) / run
        self.events_path = self.dir / EVENTS
        self.responses_path = self.dir / RESPONSES
        self.report_path = self.dir / REPORT
        self.ledger_path = self.dir / LEDGER
        self.transcripts_dir = self.dir / TRANSCRIPTS
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

    def emit(self, event: dict[str, Any]) -> dict[str, Any]:
        """Append one event (a `ts` is added) and hand it to the listeners (the live view).

        An agent's event (`agent.*`: turns, tool calls, model calls) also goes to its task's transcript,
        so one task's whole story (every round, author and reviewer) reads in one file.
        """
        record = {"ts": round(time.time(), 6), **event}
        append_line(self.events_path, record)
        task = record.get("task")
        if str(record.get("type", "")).startswith("agent.") and isinstance(task, str) and TASK_RE.fullmatch(task):
            self.transcript(task, record)
        for listener in list(self.listeners):
            listener(record)
        return record

    def transcript(self, task: str, record: dict[str, Any]) -> None:
        """Append one record to `transcripts/<task>.jsonl` (its own `ts` wins over a new one)."""
        append_line(self.transcripts_dir / f"{task}.jsonl", {"ts": round(time.time(), 6), **record})

    def record_response(self, request: ModelRequest, response: ModelResponse) -> None:
        """ModelRuntime.recorder: keep the response for replay, its usage for `squad cost`.

        `index` counts calls per (agent, task), which is how ScriptedModel.from_journal replays them.
        """
        key = (request.agent, request.task)
        with self._lock:
            index = self._indices.get(key)
            if index is None:  # a resumed run continues counting where the recorded calls stopped
                index = sum(1 for r in read_jsonl(self.responses_path) if (r.get("agent"), r.get("task")) == key)
            self._indices[key] = index + 1
        append_line(
            self.responses_path,
            {"agent": request.agent, "task": request.task, "index": index, "response": response.to_dict()},
        )
        self.emit(
            {
                "type": "model_call",
                "agent": request.agent,
                "task": request.task,
                "model": response.model,
                "usage": response.usage.to_dict(),
                "cost_usd": response.cost_usd,
                "latency_s": response.latency_s,
                "stop_reason": response.stop_reason,
            }
        )

    def read_events(self) -> list[dict[str, Any]]:
        """All events, tolerating a torn last line."""
        return read_jsonl(self.events_path)

    def state(self) -> RunState:
        return derive_state(self.run, self.read_events())

    def write_report(self, report: dict[str, Any]) -> None:
        """Write report.json atomically (temp file + rename)."""
        tmp = self.report_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, self.report_path)

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
            if (path / EVENTS).exists():
                yield path.name


def list_runs(root: Path) -> list[RunSummary]:
    """Every recorded run, oldest first. An unfinished run without `interrupted` shows as `running?`."""
    out: list[RunSummary] = []
    for run in iter_run_ids(root):
        events = Journal(root, run).read_events()
        state = derive_state(run, events)
        status = state.status
        if status is None:
            status = "interrupted" if any(e.get("type") == "interrupted" for e in events) else "unfinished"
        out.append(
            RunSummary(
                run=run,
                started=state.started,
                task_text=state.task_text,
                status=status,
                cost_usd=cost_rollup(events).total.cost_usd,
                branch=f"squad/{run}",
            )
        )
    return out


def latest_run(root: Path) -> str | None:
    runs = list(iter_run_ids(root))
    return runs[-1] if runs else None


@dataclass
class CostLine:
    """Tokens and dollars of one agent, one model, or the total."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    cost_usd: float = 0.0

    def add(self, usage: dict[str, Any], cost: float) -> None:
        self.calls += 1
        self.input_tokens += int(usage.get("input_tokens", 0))
        self.output_tokens += int(usage.get("output_tokens", 0))
        self.cache_write_tokens += int(usage.get("cache_creation_input_tokens", 0))
        self.cache_read_tokens += int(usage.get("cache_read_input_tokens", 0))
        self.cost_usd += float(cost or 0.0)

    @property
    def cache_hit_rate(self) -> float:
        """cache_read / (input + cache_write + cache_read); 0 when nothing was sent."""
        total = self.input_tokens + self.cache_write_tokens + self.cache_read_tokens
        return self.cache_read_tokens / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cost_usd": round(self.cost_usd, 6),
            "cache_hit_rate": round(self.cache_hit_rate, 4),
        }


@dataclass
class CostRollup:
    """Per agent, per model and total usage of a run (from its `model_call` events)."""

    by_agent: dict[str, CostLine] = field(default_factory=dict)
    by_model: dict[str, CostLine] = field(default_factory=dict)
    total: CostLine = field(default_factory=CostLine)

    def to_dict(self) -> dict[str, Any]:
        return {
            "by_agent": {k: v.to_dict() for k, v in sorted(self.by_agent.items())},
            "by_model": {k: v.to_dict() for k, v in sorted(self.by_model.items())},
            "total": self.total.to_dict(),
        }


def cost_rollup(events: list[dict[str, Any]]) -> CostRollup:
    """Sum the `model_call` events of a run per agent, per model and in total."""
    rollup = CostRollup()
    for ev in events:
        if ev.get("type") != "model_call":
            continue
        usage = ev.get("usage") or {}
        cost = ev.get("cost_usd") or 0.0
        rollup.by_agent.setdefault(str(ev.get("agent") or "?"), CostLine()).add(usage, cost)
        rollup.by_model.setdefault(str(ev.get("model") or "?"), CostLine()).add(usage, cost)
        rollup.total.add(usage, cost)
    return rollup


def _short(text: Any, limit: int = 100) -> str:
    line = " ".join(str(text or "").split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def describe(event: dict[str, Any]) -> str:
    """One readable line for an event (the timeline of `squad log`, the plain output of `squad run`)."""
    kind = str(event.get("type", "?"))
    who = " ".join(str(event[k]) for k in ("agent", "task") if event.get(k))
    detail = ""
    if kind in ("run_started", "run_resumed"):
        base = str(event.get("base_commit") or "")[:12]
        detail = f"{event.get('run', '')} at {base}: {_short(event.get('task_text'))}"
        who = ""
    elif kind == "plan":
        detail = "; ".join(
            f"{t['id']}→{t['agent']}" + (f" after {','.join(t['depends_on'])}" if t.get("depends_on") else "")
            for t in event.get("tasks", [])
        )
    elif kind == "plan_invalid":
        detail = f"attempt {event.get('attempt')}: " + "; ".join(event.get("errors", []))
    elif kind == "task_started":
        detail = f"round {event.get('round', 0)} on {event.get('branch', '')}"
    elif kind == "task_committed":
        detail = f"{str(event.get('commit') or '')[:12]} ({event.get('stop_reason')}): {_short(event.get('summary'))}"
    elif kind == "verdict":
        findings = event.get("findings") or []
        who = f"{event.get('reviewer', '')} {event.get('task', '')}"
        detail = f"{str(event.get('verdict', '')).upper()} round {event.get('round', 0)}"
        detail += f" ({len(findings)} findings): {_short(event.get('summary'))}"
    elif kind == "tests":
        detail = f"{event.get('where', '')}: `{event.get('command')}` -> {'pass' if event.get('passed') else 'FAIL'}"
    elif kind == "model_call":
        u = event.get("usage") or {}
        detail = (
            f"{event.get('model')} in={u.get('input_tokens', 0)} out={u.get('output_tokens', 0)} "
            f"cache_w={u.get('cache_creation_input_tokens', 0)} cache_r={u.get('cache_read_input_tokens', 0)} "
            f"${float(event.get('cost_usd') or 0):.4f}"
        )
    elif kind in ("task_status", "run_finished"):
        detail = str(event.get("status", ""))
        for key in ("reason", "error", "files"):
            if event.get(key):
                detail += f": {_short(event[key], 200)}"
    elif kind in ("conflict", "merged", "ledger_committed", "applied", "apply_refused"):
        detail = _short(event.get("files") or event.get("path") or event.get("branch") or event.get("reason"), 200)
    else:
        rest = {k: v for k, v in event.items() if k not in ("ts", "type", "agent", "task", "lease")}
        detail = _short(json.dumps(rest, ensure_ascii=False, default=str), 160) if rest else ""
    return " ".join(p for p in (kind, who, detail) if p)
