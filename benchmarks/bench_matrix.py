"""A run spread over simulated CI runners vs one local run, side by side: `python benchmarks/run.py matrix`.

16 tasks (12 independent, then 4 that each build on one of them), 3 worker turns and 1 review turn per task,
every model turn sleeping LATENCY_MS (a scripted model), a test command that sleeps TEST_S (the project's tests,
run by the review gate in each task's worktree and once more on the integrated result).

- local: `squad run` with `max_agents = 4`, in one clone.
- matrix: `squad plan --matrix`, then one `squad task` process per task in its own fresh clone of a bare remote
  (a runner), all of a wave at once (max-parallel 16), artifacts as folders; then `squad integrate` in another
  clone. Also with max-parallel 4, the local run's parallelism, to show what a job costs on its own.

Prints the wall times, the ratio, and where the matrix's time went (clone, process start to its first event,
the task's work and review, the push and fragment after approval), per phase. This machine has 2 cores shared
with other work: 12 processes starting at once compete for them, which real runners (one machine each) do not.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from _common import GIT_IDENTITY  # noqa: E402
from matrix_support import PY, make_remote, read_events, runner, squad, write_script  # noqa: E402

WAVE1, WAVE2 = 12, 4
WORK_TURNS = 3
LATENCY_MS = 1500
TEST_S = 1.0
#: No rate limits and no per-agent caps (one `backend` does all 16 tasks: 64 turns in the local run, more than
#: budgets.agent_turns allows a run, while each job would get the cap anew): we compare where time goes.
SETTINGS = (
    "[concurrency]\nmax_agents = 4\nmax_jobs = 16\n"
    "[budgets]\nagent_turns = 0\nagent_input_tokens = 0\nagent_output_tokens = 0\nagent_usd = 0\n"
    "[rate_limits]\nrequests_per_minute = 0\ninput_tokens_per_minute = 0\noutput_tokens_per_minute = 0\n"
)


def tasks() -> list[dict[str, Any]]:
    first = [{"id": f"t{i}", "agent": "backend", "goal": f"m{i}.py", "files": [f"m{i}.py"]} for i in range(WAVE1)]
    second = [
        {"id": f"u{i}", "agent": "backend", "goal": f"n{i}.py", "files": [f"n{i}.py"], "depends_on": [f"t{i}"]}
        for i in range(WAVE2)
    ]
    return first + second


def script() -> dict[str, Any]:
    lat = {"latency_ms": LATENCY_MS}
    entries: list[dict[str, Any]] = [
        {"agent": "lead", "task": "plan", "turns": [{**lat, "tool_calls": [_call("submit_plan", tasks=tasks())]}]}
    ]
    for t in tasks():
        path = t["files"][0]
        calls = [
            _call("read_file", path="README.md"),
            _call("write_file", path=path, content=f"NAME = {t['id']!r}\n"),
            _call("finish", summary=f"wrote {path}"),
        ][-WORK_TURNS:]
        entries.append({"agent": "backend", "task": t["id"], "turns": [{**lat, "tool_calls": [c]} for c in calls]})
        verdict = _call("submit_verdict", verdict="approve", summary="Fine.", findings=[])
        entries.append({"agent": "reviewer", "task": t["id"], "turns": [{**lat, "tool_calls": [verdict]}]})
    return {"version": 1, "scripts": entries}


def _call(name: str, **args: Any) -> dict[str, Any]:
    return {"name": name, "input": args}


def local_run(base: Path, remote: Path, model: str) -> tuple[float, list[dict[str, Any]]]:
    clone = runner(remote, base, "local")
    t0 = time.perf_counter()
    out = squad(clone, "run", "sixteen modules", "--model", model, "--json", timeout=900)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"local run failed: {out.stderr[-2000:]}")
    run = json.loads(out.stdout)["run"]
    return wall, read_events(clone / ".squad" / "runs" / run / "events.jsonl")


def matrix_run(base: Path, remote: Path, model: str, parallel: int) -> dict[str, Any]:
    """The whole matrix: plan, waves (at most `parallel` jobs at once), integrate. Timings per job."""
    art = base / f"artifacts-{parallel}"
    t0 = time.perf_counter()
    clone_s: list[float] = []

    def fresh(name: str) -> Path:
        c0 = time.perf_counter()
        path = runner(remote, base, f"{name}-{parallel}")
        clone_s.append(time.perf_counter() - c0)
        return path

    p0 = time.perf_counter()
    plan = squad(fresh("plan"), "plan", "sixteen modules", "--out", str(art / "plan"), "--matrix", "--model", model)
    if plan.returncode != 0:
        raise RuntimeError(f"plan failed: {plan.stderr[-2000:]}")
    plan_s = time.perf_counter() - p0
    matrix = json.loads(plan.stdout)
    run = matrix["run"]
    jobs: list[dict[str, Any]] = []
    wave_s = []
    for wave in matrix["waves"]:
        w0 = time.perf_counter()
        pending, running = list(wave), {}
        while pending or running:
            while pending and len(running) < parallel:
                task = pending.pop(0)
                clone = fresh(task)
                args = ["task", run, task, "--from", str(art), "--out", str(art / task), "--model", model]
                proc = subprocess.Popen([PY, "-m", "squad", *args], cwd=clone, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)  # fmt: skip
                running[task] = (proc, time.time())
            for task, (proc, started) in list(running.items()):
                if proc.poll() is not None:
                    ended = time.time()
                    if proc.returncode != 0:
                        raise RuntimeError(f"task {task} failed: {proc.stderr.read() if proc.stderr else ''}")
                    jobs.append({"task": task, "start": started, "end": ended, **_phases(art / task, started, ended)})
                    del running[task]
            time.sleep(0.02)
        wave_s.append(time.perf_counter() - w0)
    i0 = time.perf_counter()
    done = squad(fresh("integrate"), "integrate", run, "--from", str(art), "--model", model, "--json", timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"integrate failed: {done.stderr[-2000:]}")
    integrate_s = time.perf_counter() - i0
    return {
        "run": run,
        "art": art,
        "wall": time.perf_counter() - t0,
        "plan": plan_s,
        "waves": wave_s,
        "integrate": integrate_s,
        "jobs": jobs,
        "clone": clone_s,
    }


def solo_job(base: Path, remote: Path, model: str, run: str, art: Path) -> dict[str, float]:
    """One task job alone on this machine (a wave-2 task again, in a fresh clone, not pushed): its own overhead."""
    clone = runner(remote, base, "solo")
    started = time.time()
    out = squad(
        clone, "task", run, "u0", "--from", str(art), "--out", str(base / "solo"), "--model", model, "--no-push"
    )
    if out.returncode != 0:
        raise RuntimeError(f"solo job failed: {out.stderr[-2000:]}")
    return _phases(base / "solo", started, time.time())


def _phases(fragment: Path, started: float, ended: float) -> dict[str, float]:
    """Where one job's time went, from its fragment's event stamps and the process's start and end."""
    events = read_events(fragment / "events.jsonl")

    def ts(kind: str) -> float:
        return min(e["ts"] for e in events if e["type"] == kind)

    approved = max(e["ts"] for e in events if e["type"] == "task_approved")
    return {
        "startup": ts("job_started") - started,  # interpreter, imports, fragments read, journal seeded
        "to_work": ts("task_started") - ts("job_started"),  # fetch, context pack, worktree, setup
        "work": ts("task_committed") - ts("task_started"),
        "review": approved - ts("task_committed"),  # test command + reviewer turn
        "tail": ended - approved,  # push, fragment, exit
    }


def _local_breakdown(events: list[dict[str, Any]]) -> dict[str, float]:
    def ts(kind: str, pick: Any = min) -> float:
        return float(pick(e["ts"] for e in events if e["type"] == kind))

    return {
        "to plan": ts("plan") - ts("run_started"),
        "tasks (plan -> last approval)": ts("task_approved", max) - ts("plan"),
        "integrate": ts("run_finished") - ts("task_approved", max),
    }


def main() -> None:
    env_backup = dict(os.environ)
    os.environ.update(GIT_IDENTITY)
    base = Path(tempfile.mkdtemp(prefix="squad-bench-matrix-"))
    try:
        test = f'{PY} -c \\"import time; time.sleep({TEST_S})\\"'
        remote = make_remote(base, settings=SETTINGS, test=test)
        model = write_script(base / "team.yaml", script())
        per_task = (WORK_TURNS + 1) * LATENCY_MS / 1000 + TEST_S
        print(f"16 tasks ({WAVE1} independent, then {WAVE2} dependent), {WORK_TURNS} work + 1 review turn per task,")
        print(f"{LATENCY_MS} ms per model turn, tests {TEST_S:.1f} s: a task's own critical path ~{per_task:.1f} s")
        local_wall, local_events = local_run(base, remote, model)
        wide = matrix_run(base, remote, model, parallel=16)
        narrow = matrix_run(base, remote, model, parallel=4)
        solo = solo_job(base, remote, model, wide["run"], wide["art"])
        ideal_local = (-(-WAVE1 // 4) + 1) * per_task
        print(f"local  squad run, max_agents 4      wall {local_wall:6.1f} s   (ideal {ideal_local:.1f} s: 4 rounds)")
        for label, m in (("matrix max-parallel 16", wide), ("matrix max-parallel 4", narrow)):
            print(f"{label:<35s}  wall {m['wall']:6.1f} s   local / matrix = {local_wall / m['wall']:.2f}x")
        print("where the time went")
        for label, secs in _local_breakdown(local_events).items():
            print(f"  local  {label:<34s} {secs:6.1f} s")
        for label, m in (("m16", wide), ("m4", narrow)):
            print(f"  {label:<5s}  plan job (clone to exit)           {m['plan']:6.1f} s")
            for n, secs in enumerate(m["waves"], start=1):
                print(f"  {label:<5s}  wave {n} (first start to last exit)  {secs:6.1f} s")
            print(f"  {label:<5s}  integrate job (16 merges, tests)    {m['integrate']:6.1f} s")
            jobs = m["jobs"]
            print(f"  {label:<5s}  per task job, median (max):")
            clone = m["clone"]
            print(f"           {'clone':<32s} {statistics.median(clone):6.2f} s ({max(clone):.2f})")
            for key in ("startup", "to_work", "work", "review", "tail"):
                values = [j[key] for j in jobs]
                print(f"           {key:<32s} {statistics.median(values):6.2f} s ({max(values):.2f})")
        print("  one task job alone on this machine (no other job starting beside it):")
        for key, secs in solo.items():
            print(f"           {key:<32s} {secs:6.2f} s")
        # Arithmetic, not a measurement: each job on its own machine, as on runners, costs what it costs alone.
        job = sum(solo.values()) + statistics.median(wide["clone"])
        projected = wide["plan"] + len(wide["waves"]) * job + wide["integrate"]
        waves = len(wide["waves"])
        print(f"projected, one machine per job (plan + {waves} waves x {job:.1f} s + integrate): {projected:.1f} s,")
        print(
            f"  local / matrix = {local_wall / projected:.2f}x, before the CI's own start of each job (runner, setup)"
        )
    finally:
        os.environ.clear()
        os.environ.update(env_backup)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
