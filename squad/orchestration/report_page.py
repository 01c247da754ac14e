"""The page model of `squad report`: one run folder turned into plain, JSON-ready data.

`page_data` is the only place that interprets a run's events for the report: lanes (one per agent) of
timed spans (planning, setup, work, review, tests, model calls with their time to first token, tool calls)
packed into tracks where an agent works on several things at once, marks (lockouts, retries, merges),
the tasks with their rounds, verdicts and findings, the tests, the decisions of the run's ledger, the
per-task transcripts, and the cost roll-up of `squad cost` (the very same numbers). The renderer
(`report_html`) takes only this model, so moving the builder to typed events touches nothing else.

Times are seconds since the run's first event. Text is bounded (a transcript shows the start of a tool
result, not every file an agent read) and is kept as data: the renderer never parses it as HTML.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict, deque
from pathlib import Path
from typing import Any

from squad.domain.ids import TASK_RE
from squad.domain.state import fold
from squad.domain.task import Phase
from squad.infra.journal import EVENTS, LEDGER, REPORT, RESPONSES
from squad.orchestration.report_layout import Session, pack_lanes
from squad.orchestration.report_read import _describe, _num, _read, _read_events, _text, _tokens

#: Version of the page model (the renderer checks it).
PAGE_VERSION = 1
#: Bounds of the text the page keeps, in characters.
MAX_ARGS = 600
MAX_RESULT = 1200
MAX_MODEL_TEXT = 2000
MAX_OUTPUT = 4000
#: Agent stop reasons that count as a completed piece of work (the coordinator's COMPLETED).
COMPLETED = frozenset({"finished", "end_turn"})
#: Events that end whatever was still open in the process that wrote them.
BOUNDARIES = frozenset({"interrupted", "run_resumed", "run_finished"})
#: Events shown as marks on the run's own lane.
RUN_MARKS = frozenset(
    {"run_resumed", "interrupted", "plan_invalid", "merged", "conflict", "ledger_committed", "applied"}
    | {"apply_refused", "run_finished", "released", "run_branch_rebuilt"}
)
#: Events of an agent's loop that become marks on its lane (besides entries in the transcript).
AGENT_MARKS = frozenset({"agent.model_retry", "agent.model_fallback", "agent.warning"})


class _Builder:
    """One pass over the events, then the layout. Everything the page knows about events lives here."""

    def __init__(self, events: list[dict[str, Any]], responses: list[dict[str, Any]]) -> None:
        self.events = events
        stamps = [t for t in (_num(e.get("ts"), 6) for e in events) if t is not None]
        self.origin = min(stamps) if stamps else 0.0
        self.end = max(stamps) - self.origin if stamps else 0.0
        self.responses: dict[tuple[str, str], dict[int, dict[str, Any]]] = defaultdict(dict)
        for r in responses:
            if isinstance(r.get("index"), int) and isinstance(r.get("response"), dict):
                self.responses[(str(r.get("agent")), str(r.get("task")))][r["index"]] = r["response"]
        self.sessions: list[Session] = []
        self.by_lease: dict[tuple[str, str], list[Session]] = defaultdict(list)
        self.work: dict[tuple[str, int], Session] = {}
        self.reviews: dict[tuple[str, int], Session] = {}
        self.review_of_lease: dict[tuple[str, str], Session] = {}
        self.depends: dict[str, list[str]] = {}
        self.plan_tasks: list[dict[str, Any]] = []
        self.rounds: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
        self.lease_task: dict[str, str] = {}
        self.approved_at: dict[str, float] = {}
        self.verdict_at: dict[tuple[str, int], float] = {}
        self.pending_calls: dict[tuple[str, str], deque[dict[str, Any]]] = defaultdict(deque)
        self.call_counts: Counter[tuple[str, str]] = Counter()
        self.transcripts: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.run_spans: list[dict[str, Any]] = []
        self.marks: list[dict[str, Any]] = []
        self.tests: list[dict[str, Any]] = []
        self.decision_calls: list[dict[str, Any]] = []
        self.plan_info: dict[str, Any] = {}
        self.boundaries: list[float] = []
        self.t_context: float | None = None
        self.t_plan: float | None = None
        self.t_last_approved: float | None = None
        self.t_last_task_end: float | None = None
        self.t_last_merge: float | None = None
        self.last_call: dict[str, Any] = {"span": {}, "text": ""}  # paired in _on_agent_model_call
        #: event type -> its `_on_<type>` method (dots as underscores), looked up once
        self.handlers = {
            re.sub(r"^agent_", "agent.", name.removeprefix("_on_")): getattr(self, name)
            for name in dir(self)
            if name.startswith("_on_")
        }

    def t(self, event: dict[str, Any]) -> float:
        ts = _num(event.get("ts"), 6)
        return round(ts - self.origin, 3) if ts is not None else self.end

    # ------------------------------------------------------------------ the pass

    def feed(self, ev: dict[str, Any]) -> None:
        kind = str(ev.get("type", ""))
        t = self.t(ev)
        task = ev.get("task") if isinstance(ev.get("task"), str) else None
        if kind in BOUNDARIES:
            self.boundaries.append(t)
        if kind in RUN_MARKS:
            self.marks.append({"lane": "", "kind": kind, "t": t, "task": task, "text": _text(_describe(ev), 300)})
        if task and task in self.rounds and not kind.startswith("agent.") and kind != "model_call":
            self.transcripts[task].append({"kind": "step", "t": t, "text": _text(_describe(ev), 600)})
        handler = self.handlers.get(kind)
        if handler is not None:
            handler(ev, t, task)
        if kind.startswith("agent.") and task and TASK_RE.fullmatch(task):
            self._transcript(ev, kind, t, task)

    def _on_context(self, ev: dict[str, Any], t: float, task: str | None) -> None:
        self.t_context = t
        self.run_spans.append({"kind": "context", "t0": 0.0, "t1": t, "label": "context pack"})

    def _on_plan(self, ev: dict[str, Any], t: float, task: str | None) -> None:
        self.t_plan = t
        for item in ev.get("tasks") or []:
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                self.plan_tasks.append(item)
                deps = item.get("depends_on")
                self.depends[item["id"]] = [d for d in deps if isinstance(d, str)] if isinstance(deps, list) else []
                self.rounds[item["id"]] = {}
        planning = [s for s in self.sessions if s.kind == "plan" and s.t1 is None]
        for s in planning:
            s.t1, s.state = t, "done"

    def _on_task_started(self, ev: dict[str, Any], t: float, task: str | None) -> None:
        if task is None:
            return
        rnd = int(ev.get("round") or 0)
        lease = str(ev.get("lease") or (task if rnd == 0 else f"{task}-r{rnd}"))
        self.lease_task[lease] = task
        ready = self.verdict_at.get((task, rnd - 1)) if rnd else self._ready(task)
        s = self._session("work", str(ev.get("agent") or "?"), lease, task, rnd, t)
        s.setup_t0 = ready if ready is not None and ready < t else None
        s.label = f"{task} round {rnd}"
        self.work[(task, rnd)] = s
        self.rounds[task][rnd] = {"round": rnd, "author": s.agent, "lease": lease, "t0": t, "branch": ev.get("branch")}

    def _ready(self, task: str) -> float | None:
        """When a first round got its slot: after the plan, its dependencies' approval and the last task to end.

        The scheduler starts a task when a slot frees up, so the last task that ended before this one started
        bounds the wait for a slot; the estimate never makes setup look longer than it was.
        """
        deps = (self.approved_at.get(d) for d in self.depends.get(task, []))
        times = [self.t_plan, self.t_last_task_end, *deps]
        known = [x for x in times if x is not None]
        return max(known) if known else None

    def _on_task_committed(self, ev: dict[str, Any], t: float, task: str | None) -> None:
        rnd = int(ev.get("round") or 0)
        s = self.work.get((task or "", rnd))
        stop = str(ev.get("stop_reason") or "")
        if s is not None:
            s.t1, s.state = t, ("done" if stop in COMPLETED else "failed")
        info = self.rounds[task or ""].setdefault(rnd, {"round": rnd})
        info.update(
            t1=t,
            commit=str(ev.get("commit") or "")[:40],
            changed=bool(ev.get("changed", True)),
            summary=_text(ev.get("summary")),
            stop_reason=stop,
            turns=ev.get("turns"),
            cost_usd=_num(ev.get("cost_usd"), 6),
            error=_text(ev.get("error"), 600) if ev.get("error") else None,
        )

    def _on_review_started(self, ev: dict[str, Any], t: float, task: str | None) -> None:
        if task is None:
            return
        rnd = int(ev.get("round") or 0)
        work = self.work.get((task, rnd))
        lease = work.lease if work else (task if rnd == 0 else f"{task}-r{rnd}")
        s = self._session("review", str(ev.get("reviewer") or "?"), lease, task, rnd, t)
        s.label = f"review {task} round {rnd}"
        self.reviews[(task, rnd)] = s
        self.review_of_lease[(task, lease)] = s
        self.rounds[task].setdefault(rnd, {"round": rnd})["review"] = {"reviewer": s.agent, "t0": t}

    def _on_tests(self, ev: dict[str, Any], t: float, task: str | None) -> None:
        where = str(ev.get("where") or "")
        passed = bool(ev.get("passed"))
        record = {
            "t": t,
            "task": task,
            "where": where,
            "command": _text(ev.get("command"), 500),
            "passed": passed,
            "exit_code": ev.get("exit_code"),
            "timed_out": bool(ev.get("timed_out")),
            "output": _text(ev.get("output_tail"), MAX_OUTPUT, tail=True),
        }
        self.tests.append(record)
        state = "pass" if passed else "fail"
        if task is None:
            start = self.t_last_merge if self.t_last_merge is not None else self.t_last_approved
            span = {"kind": "tests", "state": state, "t0": start if start is not None else t, "t1": t}
            self.run_spans.append({**span, "label": f"integration tests: {state}"})
            return
        review = self.review_of_lease.get((task, where))
        if review is not None:
            label = f"tests {state}: {record['command']}"
            review.spans.append({"kind": "tests", "state": state, "t0": review.t0, "t1": t, "label": label})
            if (rnd := review.round) is not None:
                self.rounds[task].setdefault(rnd, {"round": rnd}).setdefault("review", {})["tests"] = record

    def _on_verdict(self, ev: dict[str, Any], t: float, task: str | None) -> None:
        rnd = int(ev.get("round") or 0)
        verdict = str(ev.get("verdict") or "")
        self.verdict_at[(task or "", rnd)] = t
        findings = []
        for f in ev.get("findings") or []:
            if isinstance(f, dict):
                findings.append(
                    {
                        "severity": _text(f.get("severity") or "major", 40),
                        "file": _text(f.get("file") or "", 300),
                        "line": f.get("line") if isinstance(f.get("line"), int) else None,
                        "message": _text(f.get("message"), 2000),
                    }
                )
        review = self.rounds[task or ""].setdefault(rnd, {"round": rnd}).setdefault("review", {})
        review.update(
            reviewer=ev.get("reviewer"), t1=t, verdict=verdict, summary=_text(ev.get("summary")), findings=findings
        )
        if (s := self.reviews.get((task or "", rnd))) is not None:
            s.t1, s.state = t, ("approve" if verdict == "approve" else "reject")
        if (w := self.work.get((task or "", rnd))) is not None and verdict != "approve" and w.state == "done":
            w.state = "rejected"

    def _on_task_approved(self, ev: dict[str, Any], t: float, task: str | None) -> None:
        self.approved_at[task or ""] = t
        self.t_last_approved = self.t_last_task_end = t

    def _on_lockout(self, ev: dict[str, Any], t: float, task: str | None) -> None:
        agent = str(ev.get("agent") or "?")
        self.marks.append({"lane": agent, "kind": "lockout", "t": t, "task": task, "text": f"{agent} locked out"})

    def _on_task_status(self, ev: dict[str, Any], t: float, task: str | None) -> None:
        status = str(ev.get("status") or "")
        if status in ("failed", "conflict", "needs_human", "blocked"):
            self.t_last_task_end = t
        work = [s for (k, _), s in self.work.items() if k == task]
        lane = work[-1].agent if work else ""
        if work and work[-1].t1 is None and status in ("failed", "conflict", "needs_human"):
            work[-1].t1, work[-1].state = t, "failed"
        self.marks.append({"lane": lane, "kind": "status", "t": t, "task": task, "text": _text(_describe(ev), 300)})

    def _on_merged(self, ev: dict[str, Any], t: float, task: str | None) -> None:
        self.t_last_merge = t

    def _on_ledger_committed(self, ev: dict[str, Any], t: float, task: str | None) -> None:
        self.t_last_merge = t

    def _on_run_finished(self, ev: dict[str, Any], t: float, task: str | None) -> None:
        if self.t_last_approved is not None and (self.t_last_merge is not None or ev.get("status") == "done"):
            label = f"integration: {ev.get('status')}"
            self.run_spans.append({"kind": "integration", "t0": self.t_last_approved, "t1": t, "label": label})

    def _on_model_call(self, ev: dict[str, Any], t: float, task: str | None) -> None:
        """A priced model call (what `squad cost` sums): one bar. Schema 2 records carry the worktree (`lease`)
        and the TTFT themselves; schema 1 named the lease in `task` and sent the TTFT with `agent.model_call`."""
        agent, lease = str(ev.get("agent") or "?"), str(ev.get("lease") or task or "?")
        latency = _num(ev.get("latency_s")) or 0.0
        tokens = _tokens(ev.get("usage"))
        span = {
            "kind": "model",
            "t0": round(max(0.0, t - latency), 3),
            "t1": t,
            "model": _text(ev.get("model"), 100),
            "tokens": tokens,
            "cost": _num(ev.get("cost_usd"), 6) or 0.0,
            "stop": _text(ev.get("stop_reason"), 40),
            "ttft": _num(ev.get("ttft_s")),
        }
        if lease == "plan" and not any(s.kind == "plan" for s in self.sessions):
            s = self._session("plan", agent, "plan", None, None, self.t_context or 0.0)
            s.label = "plan"
        self._attach(agent, lease, span)
        index = self.call_counts[(agent, lease)]
        self.call_counts[(agent, lease)] += 1
        response = self.responses.get((agent, lease), {}).get(index) or {}
        texts = [b.get("text", "") for b in response.get("content") or [] if isinstance(b, dict) and b.get("text")]
        record = {"kind": "model", "t": t, "agent": agent, "lease": lease, "span": span}
        record["text"] = _text("\n".join(str(x) for x in texts), MAX_MODEL_TEXT)
        self.pending_calls[(agent, lease)].append(record)
        if lease == "plan":
            self.plan_info = {"agent": agent, "text": record["text"]}
        if ev.get("lease") and task and TASK_RE.fullmatch(task):  # schema 2: the call itself is the transcript entry
            self.last_call = self.pending_calls[(agent, lease)].pop()
            self._transcript(ev, "agent.model_call", t, task)

    def _on_agent_model_call(self, ev: dict[str, Any], t: float, task: str | None) -> None:
        key = (str(ev.get("agent") or "?"), str(ev.get("lease") or task or "?"))
        queue = self.pending_calls.get(key)
        self.last_call = queue.popleft() if queue else {"span": {}, "text": ""}
        self.last_call["span"]["ttft"] = _num(ev.get("ttft_s"))

    def _on_agent_tool_call(self, ev: dict[str, Any], t: float, task: str | None) -> None:
        agent, lease = str(ev.get("agent") or "?"), str(ev.get("lease") or task or "?")
        duration = _num(ev.get("duration_s")) or 0.0
        name = _text(ev.get("name"), 80)
        span = {"kind": "tool", "t0": round(max(0.0, t - duration), 3), "t1": t, "name": name}
        span["error"] = bool(ev.get("is_error"))
        self._attach(agent, lease, span)
        if name == "record_decision" and isinstance(ev.get("args"), dict) and not span["error"]:
            self.decision_calls.append({"agent": agent, "task": task, "t": t, "title": ev["args"].get("title")})

    def _on_agent_model_retry(self, ev: dict[str, Any], t: float, task: str | None) -> None:
        self._agent_mark(ev, t, task, "retry")

    def _on_agent_model_fallback(self, ev: dict[str, Any], t: float, task: str | None) -> None:
        self._agent_mark(ev, t, task, "fallback")

    def _on_agent_warning(self, ev: dict[str, Any], t: float, task: str | None) -> None:
        self._agent_mark(ev, t, task, "warning")

    def _agent_mark(self, ev: dict[str, Any], t: float, task: str | None, kind: str) -> None:
        agent = str(ev.get("agent") or "?")
        self.marks.append({"lane": agent, "kind": kind, "t": t, "task": task, "text": _text(_describe(ev), 300)})

    def _transcript(self, ev: dict[str, Any], kind: str, t: float, task: str) -> None:
        """One entry of a task's transcript (every round, author and reviewer) from an agent event."""
        agent, lease = str(ev.get("agent") or "?"), str(ev.get("lease") or task)
        entry: dict[str, Any] = {"kind": kind.removeprefix("agent."), "t": t, "agent": agent, "lease": lease}
        if kind == "agent.model_call":
            record = self.last_call
            span = record["span"]
            entry.update(turn=ev.get("turn"), text=record["text"], ttft=_num(ev.get("ttft_s")))
            entry.update(latency=_num(ev.get("latency_s")), tokens=_tokens(ev.get("usage")))
            entry.update(cost=_num(ev.get("cost_usd"), 6), stop=_text(ev.get("stop_reason"), 40))
            entry["model"] = span.get("model") or _text(ev.get("model"), 100)
        elif kind == "agent.tool_call":
            args = ev.get("args")
            entry.update(turn=ev.get("turn"), name=_text(ev.get("name"), 80), error=bool(ev.get("is_error")))
            entry.update(args=_text(args if isinstance(args, str) else json.dumps(args, default=str), MAX_ARGS))
            entry.update(result=_text(ev.get("result"), MAX_RESULT) if "result" in ev else None)
            entry.update(chars=ev.get("result_chars"), duration=_num(ev.get("duration_s")))
        elif kind == "agent.agent_stop":
            entry.update(reason=_text(ev.get("stop_reason"), 40), summary=_text(ev.get("summary")))
            entry.update(error=_text(ev.get("error"), 600) if ev.get("error") else None, turns=ev.get("turns"))
        elif kind == "agent.turn_start":
            entry["turn"] = ev.get("turn")
        else:
            entry["text"] = _text(_describe(ev), 600)
        self.transcripts[task].append(entry)

    # ------------------------------------------------------------------ sessions and layout

    def _session(self, kind: str, agent: str, lease: str, task: str | None, rnd: int | None, t0: float) -> Session:
        s = Session(kind=kind, agent=agent, lease=lease, task=task, round=rnd, t0=t0)
        self.sessions.append(s)
        self.by_lease[(agent, lease)].append(s)
        return s

    def _attach(self, agent: str, lease: str, span: dict[str, Any]) -> None:
        """Put a call in the session it belongs to: the agent's latest one on that lease started before it."""
        found = [s for s in self.by_lease.get((agent, lease), []) if s.start <= span["t1"] + 1e-3]
        if not found:
            task = self.lease_task.get(lease) or re.sub(r"-r\d+$", "", lease)
            found = [self._session("loose", agent, lease, task if task in self.rounds else None, None, span["t0"])]
        found[-1].spans.append(span)

    def layout(self) -> list[dict[str, Any]]:
        """Close what never closed, pack each agent's sessions into tracks, and return the lanes."""
        lanes: dict[str, list[Session]] = {}
        for s in self.sessions:
            if s.t1 is None:
                later = [b for b in self.boundaries if b >= s.t0]
                s.t1 = min(later) if later and s.kind != "loose" else max([s.t0, *(x["t1"] for x in s.spans)])
                if s.kind != "loose":
                    s.state = "open"
            lanes.setdefault(s.agent, []).append(s)
        return pack_lanes(lanes)


def page_data(run_dir: Path) -> dict[str, Any]:
    """Turn a run folder (`.squad/runs/<run>/`) into the report's page model (plain, JSON-serialisable).

    Raises:
        FileNotFoundError: the folder has no events.jsonl.
    """
    from squad.infra.ledger import parse_text

    run_dir = Path(run_dir)
    if not (run_dir / EVENTS).is_file():
        raise FileNotFoundError(run_dir / EVENTS)
    notes: list[str] = []
    typed = _read_events(run_dir / EVENTS, notes)
    events = [e.to_record() for e in typed]  # one normalised shape for schema 1 and 2 journals
    b = _Builder(events, _read(run_dir / RESPONSES, notes))
    for ev in events:
        b.feed(ev)
    lanes = b.layout()
    lanes.append({"id": "", "kind": "run", "tracks": 1, "spans": [{**s, "track": 0} for s in b.run_spans]})

    state = fold(run_dir.name, typed)
    report: dict[str, Any] = {}
    try:
        loaded = json.loads((run_dir / REPORT).read_text(encoding="utf-8"))
        report = loaded if isinstance(loaded, dict) else {}
    except (OSError, ValueError):
        pass
    status = state.display_status

    tasks = []
    for p in b.plan_tasks:
        ts = state.tasks.get(p["id"])
        tasks.append(
            {
                "id": p["id"],
                "agent": _text(p.get("agent"), 80),
                "goal": _text(p.get("goal")),
                "files": [_text(f, 300) for f in p.get("files") or []][:50],
                "depends_on": [_text(d, 80) for d in p.get("depends_on") or []],
                "status": (Phase.APPROVED if ts.phase is Phase.MERGED else ts.phase).value if ts else "pending",
                "merged": bool(ts and ts.merged),
                "rounds": [b.rounds[p["id"]][r] for r in sorted(b.rounds[p["id"]])],
                "transcript": f"transcripts/{p['id']}.jsonl" if TASK_RE.fullmatch(p["id"]) else None,
            }
        )

    decisions, problems = [], []
    ledger = run_dir / LEDGER
    if ledger.is_file():
        parsed = parse_text(ledger.read_text(encoding="utf-8", errors="replace"), Path(LEDGER))
        problems = [str(p) for p in parsed.problems]
        for e in parsed.entries:
            call = next((c for c in b.decision_calls if c["title"] == e.title and c["agent"] == e.agent), None)
            d = {k: v for k, v in e.to_dict().items() if k not in ("file", "run")}
            decisions.append({**d, "task": call["task"] if call else None, "t": call["t"] if call else None})

    costs = state.usage_report()
    kinds = Counter(str(e.get("type", "")) for e in events)
    return {
        "version": PAGE_VERSION,
        "run": {
            "id": run_dir.name,
            "task": _text(state.task_text),
            "status": status,
            "base_commit": state.base_commit,
            "branch": f"squad/{run_dir.name}",
            "started": _num(b.origin, 3) if events else None,
            "duration_s": round(b.end, 3),
            "error": _text(report.get("error"), 2000) if report.get("error") else None,
            "next": _text(report.get("next_command"), 300) if report.get("next_command") else None,
            "needs_human": [_text(x, 2000) for x in report.get("needs_human") or []],
        },
        "plan": b.plan_info,
        "lanes": lanes,
        "marks": b.marks,
        "costs": costs,
        "tasks": tasks,
        "tests": b.tests,
        "decisions": decisions,
        "ledger_problems": problems,
        "transcripts": {k: v for k, v in b.transcripts.items() if k in b.rounds},
        "counts": {"events": len(events), "by_type": dict(sorted(kinds.items()))},
        "warnings": notes,
    }
