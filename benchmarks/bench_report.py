"""`squad report` benchmark: a 1,000-event and a 20,000-event journal, side by side.

The journals are synthetic but shaped like real runs (the event types and fields the coordinator and the
agent loop write): a plan, tasks worked by 7 specialists in up to 6 parallel slots, turns of a priced
model call (+ its `agent.model_call` with TTFT) and 1-3 tool calls with bounded results, a review with
the test command per round, about one rejection in four (findings, lockout, a revision by another agent),
decisions in the run's ledger, merges, the integration tests. The clock is simulated: the large run
spans a few hours.

Measured per journal: building the page model (`page_data`), rendering the HTML, the file size; and, when
Chromium is installed, the page in headless Chromium: navigation to drawn, the page script's own render
time, one timeline redraw after zooming, and opening the largest transcript.
Run: `python benchmarks/run.py report` (or this file directly).
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the DevTools client lives with the tests
sys.path.insert(0, str(ROOT))

from squad.infra.ledger import render_entry  # noqa: E402
from squad.orchestration.report_html import render_html  # noqa: E402
from squad.orchestration.report_page import page_data  # noqa: E402

WORKERS = ["backend", "frontend", "tester", "docs", "infra", "data"]
MODELS = ["claude-sonnet-5-5", "claude-haiku-5-5"]
PRICE = {"claude-sonnet-5-5": (2, 10, 2.5, 0.1), "claude-haiku-5-5": (0.1, 0.5, 0.125, 0.01)}  # $/Mtok
TOOLS = ["read_file", "search", "list_files", "edit_file", "write_file", "run", "diff"]
SLOTS = 6
SIZES = (1_000, 20_000)


class _Sim:
    """Writes one synthetic run: events on per-slot clocks, merged in time order at the end."""

    def __init__(self, run: str, seed: int) -> None:
        self.rng = random.Random(seed)
        self.run = run
        self.events: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []
        self.calls: dict[tuple[str, str], int] = {}
        self.decisions: list[str] = []

    def ev(self, ts: float, **fields: Any) -> None:
        self.events.append({"ts": round(ts, 6), **fields})

    def model_call(self, ts: float, agent: str, task: str, lease: str, turn: int) -> float:
        rng = self.rng
        model = MODELS[0] if agent in ("reviewer", "backend", "lead") else rng.choice(MODELS)
        latency = rng.uniform(2, 25)
        ttft = latency * rng.uniform(0.1, 0.5)
        usage = {
            "input_tokens": rng.randint(200, 4000),
            "output_tokens": rng.randint(50, 1500),
            "cache_creation_input_tokens": 0 if turn > 1 else rng.randint(0, 9000),
            "cache_read_input_tokens": rng.randint(5000, 40000),
        }
        p = PRICE[model]
        cost = (
            usage["input_tokens"] * p[0]
            + usage["output_tokens"] * p[1]
            + usage["cache_creation_input_tokens"] * p[2]
            + usage["cache_read_input_tokens"] * p[3]
        ) / 1e6
        end = ts + latency
        common = {"agent": agent, "model": model, "usage": usage, "cost_usd": cost, "latency_s": latency}
        self.ev(end, type="model_call", task=lease, stop_reason="tool_use", **common)
        index = self.calls.get((agent, lease), 0)
        self.calls[(agent, lease)] = index + 1
        text = f"Turn {turn}: " + " ".join(rng.choice(["looking", "the", "file", "test", "fix"]) for _ in range(40))
        self.responses.append(
            {
                "agent": agent,
                "task": lease,
                "index": index,
                "response": {
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": "tool_use",
                    "usage": usage,
                    "model": model,
                },
            }
        )
        self.ev(
            end,
            type="agent.model_call",
            task=task,
            lease=lease,
            turn=turn,
            ttft_s=ttft,
            stop_reason="tool_use",
            request_id=f"req_{len(self.events)}",
            **common,
        )
        return end

    def session(self, ts: float, agent: str, task: str, lease: str, turns: int, finish: str) -> float:
        rng = self.rng
        for turn in range(1, turns + 1):
            self.ev(ts, type="agent.turn_start", agent=agent, task=task, lease=lease, turn=turn)
            ts = self.model_call(ts, agent, task, lease, turn)
            names = [finish] if turn == turns else [rng.choice(TOOLS) for _ in range(rng.randint(1, 3))]
            for name in names:
                duration = rng.uniform(0.001, 4 if name == "run" else 0.2)
                ts += duration
                result = "".join(rng.choice("abcdefghij \n") for _ in range(rng.randint(20, 1200)))
                self.ev(
                    ts,
                    type="agent.tool_call",
                    agent=agent,
                    task=task,
                    lease=lease,
                    turn=turn,
                    name=name,
                    args={"path": f"src/{task}/mod.py"},
                    result_chars=len(result) * 3,
                    result=result,
                    is_error=rng.random() < 0.03,
                    duration_s=duration,
                )
        usage = {"input_tokens": 0, "output_tokens": 0}
        self.ev(
            ts,
            type="agent.agent_stop",
            agent=agent,
            task=task,
            lease=lease,
            stop_reason="finished",
            turns=turns,
            usage=usage,
            cost_usd=0.0,
            summary=f"{task}: done",
            error=None,
        )
        return ts

    def task(self, ts: float, tid: str, agent: str) -> float:
        rng = self.rng
        authors = [agent]
        for rnd in range(3):
            lease = tid if rnd == 0 else f"{tid}-r{rnd}"
            ts += rng.uniform(0.05, 0.4)  # worktree lease
            branch = f"squad/{self.run}--{lease}"
            self.ev(
                ts,
                type="task_started",
                task=tid,
                agent=authors[-1],
                round=rnd,
                lease=lease,
                branch=branch,
                base_commit="0" * 40,
            )
            ts = self.session(ts, authors[-1], tid, lease, rng.randint(3, 9), "finish")
            if rng.random() < 0.3:
                ts += 0.01
                title = f"{tid}: keep the {rng.choice(['api', 'schema', 'layout'])} stable"
                self.decisions.append(title)
                self.ev(
                    ts,
                    type="agent.tool_call",
                    agent=authors[-1],
                    task=tid,
                    lease=lease,
                    turn=1,
                    name="record_decision",
                    args={"title": title, "decision": "d"},
                    result_chars=40,
                    result="recorded",
                    is_error=False,
                    duration_s=0.01,
                )
            ts += 0.1
            self.ev(
                ts,
                type="task_committed",
                task=tid,
                agent=authors[-1],
                round=rnd,
                commit="1" * 40,
                changed=True,
                summary=f"{tid} round {rnd}",
                stop_reason="finished",
                turns=5,
                cost_usd=0.1,
                error=None,
            )
            self.ev(ts, type="review_started", task=tid, reviewer="reviewer", round=rnd)
            ts += rng.uniform(3, 30)
            self.ev(
                ts,
                type="tests",
                task=tid,
                where=lease,
                command="pytest -q",
                exit_code=0,
                passed=True,
                timed_out=False,
                output_tail="....\n42 passed in 3.1s\n",
            )
            ts = self.session(ts, "reviewer", tid, lease, rng.randint(1, 3), "submit_verdict")
            reject = rnd < 2 and rng.random() < 0.25
            findings = [{"file": f"src/{tid}/mod.py", "line": 3, "severity": "blocking", "message": "wrong edge"}]
            self.ev(
                ts,
                type="verdict",
                task=tid,
                round=rnd,
                reviewer="reviewer",
                verdict="reject" if reject else "approve",
                summary="s",
                findings=findings if reject else [],
            )
            if not reject:
                self.ev(ts, type="task_approved", task=tid, commit="1" * 40, branch=branch, round=rnd)
                return ts
            self.ev(ts, type="lockout", task=tid, agent=authors[-1])
            authors.append(rng.choice([w for w in WORKERS if w not in authors]))
        return ts

    def write(self, target: int, folder: Path) -> int:
        rng = self.rng
        t0 = 1_790_000_000.0
        self.ev(
            t0, type="run_started", run=self.run, task_text="Synthetic benchmark run", base_commit="0" * 40, agent=None
        )
        self.ev(t0 + 0.4, type="context", commit="0" * 40, blocks=4)
        plan_end = self.model_call(t0 + 0.4, "lead", "plan", "plan", 1)
        slots = [plan_end] * SLOTS
        tasks: list[dict[str, Any]] = []
        body: list[dict[str, Any]] = []
        while len(self.events) + len(body) < target - 10:
            tid = f"task-{len(tasks) + 1}"
            tasks.append({"id": tid, "agent": rng.choice(WORKERS), "goal": f"do {tid}", "files": [], "depends_on": []})
            slot = min(range(SLOTS), key=lambda i: slots[i])
            before = len(self.events)
            slots[slot] = self.task(slots[slot], tid, tasks[-1]["agent"])
            body.extend(self.events[before:])
            del self.events[before:]
        self.ev(plan_end, type="plan", tasks=tasks)
        end = max(slots)
        self.events.extend(body)
        for i, t in enumerate(tasks):
            self.ev(end + 0.05 * i, type="merged", task=t["id"], commit="2" * 40, branch=f"squad/{self.run}")
        end += 0.05 * len(tasks)
        self.ev(end, type="ledger_committed", path="decisions/x.md", commit="3" * 40)
        self.ev(
            end + 20,
            type="tests",
            task=None,
            where="integration",
            command="pytest -q",
            exit_code=0,
            passed=True,
            timed_out=False,
            output_tail="420 passed\n",
        )
        self.ev(end + 20.1, type="run_finished", status="done", cost_usd=1.0)
        self.events.sort(key=lambda e: e["ts"])  # the journal is appended in time order
        folder.mkdir(parents=True)
        (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in self.events))
        (folder / "responses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in self.responses))
        ledger = "".join(
            "\n" + render_entry(id=f"01JZ{i:022d}", title=t, date="2026-11-29T00:00:00Z", decision="d", run=self.run)
            for i, t in enumerate(self.decisions)
        )
        (folder / "ledger.md").write_text(f"# Decisions — run {self.run}\n{ledger}")
        return len(self.events)


def _best(fn: Any, repeat: int = 3) -> tuple[float, Any]:
    best, value = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - t)
    return best, value


def _browser(path: Path, largest_task: str) -> dict[str, float] | None:
    try:
        from browser import Browser, chromium_path
    except ImportError:  # websockets missing: the test extras are not installed
        return None
    if chromium_path() is None:
        return None
    best: dict[str, float] = {}
    with Browser(width=1400, height=900) as b:
        for _ in range(3):  # best of three fresh loads: the machine is shared
            b.events.clear()
            got = {"load_s": b.open(path.as_uri(), ready="window.squadReport && window.squadReport.ready", timeout=120)}
            got["render_ms"] = float(b.evaluate("window.squadReport.renderMs"))
            b.evaluate("document.querySelector('#tl-tools button:nth-child(3)').click()")  # zoom in: one redraw
            b.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
            got["redraw_ms"] = float(b.evaluate("window.squadReport.lastRedrawMs"))
            got["transcript_ms"] = float(
                b.evaluate(
                    f"(() => {{ const t = performance.now(); "
                    f"document.querySelector('[data-open-transcript={json.dumps(largest_task)}]').click(); "
                    f"return performance.now() - t; }})()"
                )
            )
            if b.errors():
                raise RuntimeError(f"page errors: {b.errors()}")
            best = {k: min(v, best.get(k, v)) for k, v in got.items()}
    return best


def main() -> None:
    rows: dict[int, dict[str, Any]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="squad-bench-report-"))
    try:
        for size in SIZES:
            folder = tmp / f"20261129-000000-n{size}"
            events = _Sim(folder.name, seed=size).write(size, folder)
            build_s, page = _best(lambda folder=folder: page_data(folder))
            render_s, html = _best(lambda page=page: render_html(page))
            path = tmp / f"report-{size}.html"
            path.write_text(html, encoding="utf-8")
            largest = max(page["transcripts"], key=lambda k: len(page["transcripts"][k]))
            spans = sum(len(lane["spans"]) for lane in page["lanes"])
            rows[size] = {
                "events": events,
                "journal_mb": (folder / "events.jsonl").stat().st_size / 1e6,
                "spans": spans,
                "hours": page["run"]["duration_s"] / 3600,
                "build_ms": build_s * 1000,
                "build_us_per_event": build_s * 1e6 / events,
                "render_ms": render_s * 1000,
                "html_mb": len(html.encode()) / 1e6,
                "browser": _browser(path, largest),
            }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    small, large = rows[SIZES[0]], rows[SIZES[1]]
    lines = [
        ("events", "{:,}", "events"),
        ("journal (events.jsonl), MB", "{:.2f}", "journal_mb"),
        ("run length, hours", "{:.2f}", "hours"),
        ("timeline bars", "{:,}", "spans"),
        ("page_data, ms", "{:.0f}", "build_ms"),
        ("page_data per event, µs", "{:.0f}", "build_us_per_event"),
        ("render_html, ms", "{:.0f}", "render_ms"),
        ("report.html, MB", "{:.2f}", "html_mb"),
    ]
    print(f"{'':34}{SIZES[0]:>12,}{SIZES[1]:>12,}{'ratio':>9}")
    for label, fmt, key in lines:
        a, b = small[key], large[key]
        print(f"{label:34}{fmt.format(a):>12}{fmt.format(b):>12}{b / a if a else 0:>8.1f}x")
    if small["browser"] and large["browser"]:
        for label, key in (
            ("chromium: open to drawn, s", "load_s"),
            ("chromium: page script render, ms", "render_ms"),
            ("chromium: timeline redraw (zoom), ms", "redraw_ms"),
            ("chromium: open largest transcript, ms", "transcript_ms"),
        ):
            a, b = small["browser"][key], large["browser"][key]
            print(f"{label:34}{a:>12.2f}{b:>12.2f}{b / a if a else 0:>8.1f}x")
    else:
        print("(no chromium or websockets: the in-browser numbers are left out)")


if __name__ == "__main__":
    main()
