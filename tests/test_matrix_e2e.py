"""A run spread over simulated CI runners, end to end through the CLI.

A local bare remote, one fresh clone per job, `squad plan --matrix`, then `squad task` for each matrix entry as
separate processes (in parallel within a wave), artifacts as folders, then `squad integrate` in another clone.
One job is killed with SIGKILL mid-work and rerun on its runner; another is rerun on a fresh runner after it
pushed (as when its artifact was lost). Nothing of squad is mocked: real processes, git, worktrees, signals.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from matrix_support import (
    APPROVE,
    finish,
    make_remote,
    popen,
    read_events,
    runner,
    sh_git,
    squad,
    tool,
    wait_for,
    write_script,
)

PLAN = [
    {"id": "api", "agent": "backend", "goal": "Add app.py with health().", "files": ["app.py"]},
    {"id": "notes", "agent": "tester", "goal": "Write NOTES.md.", "files": ["NOTES.md"]},
    {"id": "check", "agent": "tester", "goal": "check.py uses health().", "files": ["check.py"], "depends_on": ["api"]},
    {"id": "cli", "agent": "backend", "goal": "cli.py.", "files": ["cli.py"], "depends_on": ["api", "notes"]},
]
REJECT = tool(
    "submit_verdict",
    verdict="reject",
    summary="The notes say nothing.",
    findings=[{"file": "NOTES.md", "line": 1, "severity": "blocking", "message": "Describe health()."}],
)


def _script(finish_latency_ms: int) -> dict[str, Any]:
    def entry(agent: str, task: str, *turns: dict[str, Any]) -> dict[str, Any]:
        return {"agent": agent, "task": task, "turns": list(turns)}

    def do(*calls: dict[str, Any], latency: int = 0) -> dict[str, Any]:
        return {"tool_calls": list(calls), **({"latency_ms": latency} if latency else {})}

    return {
        "version": 1,
        "scripts": [
            entry("lead", "plan", do(tool("submit_plan", tasks=PLAN))),
            entry(
                "backend",
                "api",
                do(tool("write_file", path="app.py", content="def health() -> str:\n    return 'ok'\n")),
                do(tool("record_decision", title="Health is a plain function", decision="health() returns ok.")),
                do(tool("finish", summary="Added app.health()"), latency=finish_latency_ms),
            ),
            entry("reviewer", "api", do(APPROVE)),
            entry(
                "tester",
                "notes",
                do(tool("write_file", path="NOTES.md", content="TODO\n")),
                do(tool("finish", summary="notes")),
            ),
            entry("reviewer", "notes", do(REJECT)),
            entry(
                "backend",
                "notes-r1",
                do(tool("write_file", path="NOTES.md", content="health() says ok.\n")),
                do(tool("finish", summary="Described health()")),
            ),
            entry("reviewer", "notes-r1", do(APPROVE)),
            entry(
                "tester",
                "check",
                do(tool("write_file", path="check.py", content="import app\n\nassert app.health() == 'ok'\n")),
                do(tool("finish", summary="check.py")),
            ),
            entry("reviewer", "check", do(APPROVE)),
            entry(
                "backend",
                "cli",
                do(tool("write_file", path="cli.py", content="import app\n\nprint(app.health())\n")),
                do(tool("record_decision", title="The CLI prints health", decision="cli.py prints health().")),
                do(tool("finish", summary="cli.py")),
            ),
            entry("reviewer", "cli", do(APPROVE)),
        ],
    }


def _records(fragment: Path) -> list[dict[str, Any]]:
    return read_events(fragment / "events.jsonl")


def _spend(records: list[dict[str, Any]]) -> dict[str, int]:
    """What the model calls in these records used (summed as `squad cost` sums them)."""
    total = {"calls": 0, "input_tokens": 0, "output_tokens": 0, "cache_write_tokens": 0, "cache_read_tokens": 0}
    for r in records:
        if r["type"] == "model_call":
            u = r.get("usage") or {}
            total["calls"] += 1
            total["input_tokens"] += u.get("input_tokens", 0)
            total["output_tokens"] += u.get("output_tokens", 0)
            total["cache_write_tokens"] += u.get("cache_creation_input_tokens", 0)
            total["cache_read_tokens"] += u.get("cache_read_input_tokens", 0)
    return total


def _approved(fragment: Path, task: str) -> str:
    return next(r["commit"] for r in _records(fragment) if r["type"] == "task_approved" and r["task"] == task)


@pytest.mark.timeout(300)
def test_a_run_spread_over_simulated_runners(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    model = write_script(tmp_path / "team.yaml", _script(finish_latency_ms=1500))
    art = tmp_path / "artifacts"
    base = sh_git(remote, "rev-parse", "main").strip()

    # -- the plan job: one JSON object on stdout, the same in $GITHUB_OUTPUT
    outputs = tmp_path / "github_output"
    env = {**os.environ, "GITHUB_OUTPUT": str(outputs)}
    plan = squad(runner(remote, tmp_path, "plan"), "plan", "health", "--out", str(art / "plan"), "--matrix",
                 "--model", model, env=env)  # fmt: skip
    assert plan.returncode == 0, plan.stderr
    matrix = json.loads(plan.stdout)  # nothing else on stdout
    run = matrix["run"]
    assert matrix["waves"] == [["api", "notes"], ["check", "cli"]]
    assert matrix["include"] == [
        {"task": "api", "wave": 1},
        {"task": "notes", "wave": 1},
        {"task": "check", "wave": 2},
        {"task": "cli", "wave": 2},
    ]
    assert matrix["base"] == base and matrix["max_parallel"] == 2
    written = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert json.loads(written["matrix"]) == matrix and written["run"] == run and written["waves"] == "2"
    listed = json.loads(squad(tmp_path / "runners" / "plan", "runs", "--json").stdout)
    assert [(r["run"], r["status"]) for r in listed] == [(run, "in CI jobs")]  # not "unfinished" for ever

    # -- wave 1, in parallel; `api` is killed with SIGKILL after its agent recorded a decision, before it finished
    api_runner, notes_runner = runner(remote, tmp_path, "api"), runner(remote, tmp_path, "notes")
    job = ["--from", str(art / "plan"), "--model", model]
    api = popen(api_runner, "task", run, "api", "--out", str(art / "api"), *job)
    notes = popen(notes_runner, "task", run, "notes", "--out", str(art / "notes"), *job)
    api_journal = api_runner / ".squad" / "runs" / run / "jobs" / "api" / "events.jsonl"
    wait_for(api_journal, api, lambda e: e["type"] == "agent.tool_call" and e.get("name") == "record_decision")
    api.kill()
    assert finish(api)[0] == -9 and not (art / "api").exists()
    assert finish(notes)[0] == 0
    rerun = squad(api_runner, "task", run, "api", "--out", str(art / "api"), *job)  # the same runner, rerun
    assert rerun.returncode == 0, rerun.stderr + rerun.stdout

    # the rerun started the interrupted attempt over: one commit on the branch, the decision recorded once
    api_records = _records(art / "api")
    assert [r["round"] for r in api_records if r["type"] == "task_started"] == [0, 0]
    assert sh_git(remote, "rev-list", "--count", f"main..squad/{run}--api").strip() == "1"
    api_ledger = (art / "api" / "ledger.md").read_text()
    assert api_ledger.count("## Health is a plain function") == 1
    assert sum(1 for r in api_records if r["type"] == "model_call" and r["agent"] == "backend") == 2 + 3

    # `notes` rerun on a FRESH runner after it had pushed (its artifact lost): the branch is replaced, not added to
    first_notes = _records(art / "notes")
    shutil.rmtree(art / "notes")
    again = squad(runner(remote, tmp_path, "notes-again"), "task", run, "notes", "--out", str(art / "notes"), *job)
    assert again.returncode == 0, again.stderr + again.stdout
    notes_commit = _approved(art / "notes", "notes")
    assert sh_git(remote, "rev-parse", f"squad/{run}--notes").strip() == notes_commit
    assert sh_git(remote, "rev-list", "--count", f"main..squad/{run}--notes").strip() == "2"  # round 0 + revision
    assert [r["agent"] for r in _records(art / "notes") if r["type"] == "lockout"] == ["tester"]

    # -- wave 2, in parallel, from every fragment so far (download-artifact puts each in its own folder)
    api_commit = _approved(art / "api", "api")
    procs = {
        t: popen(
            runner(remote, tmp_path, t), "task", run, t, "--from", str(art), "--out", str(art / t), "--model", model
        )
        for t in ("check", "cli")
    }
    for t, proc in procs.items():
        code, out, err = finish(proc)
        assert code == 0, f"{t}: {err}{out}"
    # a dependent task starts from its dependency's approved commit (and merges a second dependency's)
    check_start = next(r for r in _records(art / "check") if r["type"] == "task_started")
    assert check_start["base_commit"] == api_commit
    cli_commit = _approved(art / "cli", "cli")
    for dep in (api_commit, notes_commit):
        sh_git(remote, "merge-base", "--is-ancestor", dep, cli_commit)

    # -- the artifacts can be read before integrating (anywhere, merging nothing): a task's transcript, the spend
    read = squad(tmp_path, "log", run, "--from", str(art / "plan"), str(art / "api"), "--task", "api", "--verbose")
    assert read.returncode == 0, read.stderr
    assert "record_decision" in read.stdout and "Health is a plain function" in read.stdout
    before = json.loads(squad(tmp_path, "cost", run, "--from", str(art), "--json").stdout)["total"]

    # -- integrate in another fresh clone
    integ = runner(remote, tmp_path, "integrate")
    done = squad(integ, "integrate", run, "--from", str(art), "--model", model, "--json")
    assert done.returncode == 0, done.stderr + done.stdout
    report = json.loads(done.stdout)
    assert report["status"] == "done" and {t["status"] for t in report["tasks"]} == {"approved"}
    page = integ / ".squad" / "runs" / run / "report.html"  # the run's report page, as `squad run` writes it
    assert (
        Path(report["report_html"]).resolve() == page.resolve() and f"squad report · {run} · done" in page.read_text()
    )
    branch = f"squad/{run}"
    # each merge names who wrote the approved work: notes' approved revision was backend's (the plan said tester)
    assert sh_git(remote, "log", "--first-parent", "--merges", "--reverse", "--format=%s", branch).splitlines() == [
        "squad: merge task api (backend)",
        "squad: merge task notes (backend)",
        "squad: merge task check (tester)",
        "squad: merge task cli (backend)",
    ]
    for path, text in [
        ("app.py", "return 'ok'"),
        ("NOTES.md", "health() says ok."),
        ("check.py", "assert"),
        ("cli.py", "print"),
    ]:
        assert text in sh_git(remote, "show", f"{branch}:{path}")
    decisions = [
        p for p in sh_git(remote, "ls-tree", "-r", "--name-only", branch).split() if p.startswith("decisions/")
    ]
    assert decisions == [f"decisions/{run[:4]}/{run[4:6]}/{run[:4]}-{run[4:6]}-{run[6:8]}-{run}.md"]
    ledger = sh_git(remote, "show", f"{branch}:{decisions[0]}")
    ids = [line.split('"id":"')[1][:26] for line in ledger.splitlines() if line.startswith("<!-- squad-decision")]
    assert len(ids) == 2 and ids == sorted(ids)  # one entry per decision, in ULID order
    assert "## Health is a plain function" in ledger and "## The CLI prints health" in ledger

    # `squad cost` on the merged journal is the sum of what every job spent (the killed attempt's calls included)
    cost = json.loads(squad(integ, "cost", run, "--json").stdout)["total"]
    fragments = [art / name for name in ("plan", "api", "notes", "check", "cli")]
    parts = [_spend(_records(f)) for f in fragments]
    assert {k: cost[k] for k in parts[0]} == {k: sum(p[k] for p in parts) for k in parts[0]}
    assert cost["calls"] > 0 and _spend(first_notes)["calls"] > 0  # (the lost artifact's calls are not counted)
    assert before == cost  # `squad cost --from` read the same journal the integration wrote (it called no model)
    runs = squad(integ, "runs", "--json")
    assert [(r["run"], r["status"]) for r in json.loads(runs.stdout)] == [(run, "done")]
    log = squad(integ, "log", run)
    assert log.returncode == 0 and "job_started task check" in log.stdout and "fragments_merged" in log.stdout
    assert report["budget"]["jobs"] == 4 and report["budget"]["input_tokens"] > 0

    # rerunning integrate, on a fresh runner or the same one, changes nothing on the remote (nothing merged twice);
    # and the merged journal does not depend on where or how often it is built: same fragments, same lines
    head = sh_git(remote, "rev-parse", branch).strip()
    other = runner(remote, tmp_path, "integrate-again")
    again = squad(other, "integrate", run, "--from", *map(str, reversed(fragments)))
    assert again.returncode == 0, again.stderr + again.stdout
    other_page = other / ".squad" / "runs" / run / "report.html"
    assert f"report: {other_page.resolve()}" in again.stdout and other_page.is_file()
    assert sh_git(remote, "rev-parse", branch).strip() == head
    assert sh_git(other, "rev-parse", branch).strip() == head  # it continued the branch the first one pushed
    n = sum(len(_records(f)) for f in fragments)
    first = (integ / ".squad" / "runs" / run / "events.jsonl").read_bytes().splitlines()[:n]
    second = (other / ".squad" / "runs" / run / "events.jsonl").read_bytes().splitlines()[:n]
    assert first == second
    assert squad(integ, "integrate", run, "--from", str(art)).returncode == 0
    assert sh_git(remote, "rev-parse", branch).strip() == head


# ---------------------------------------------------------------------------------------------------------
# budgets across jobs: priced calls over real HTTP (the loopback Messages API), one slice per task job


@pytest.mark.timeout(300)
def test_each_job_spends_within_its_slice_and_integrate_reports_the_total(tmp_path: Path) -> None:
    from messages_server import MessagesServer, Reply

    settings = '[models]\ndefault = "claude-sonnet-5-5"\n[retry]\nbase_delay_s = 0.01\n'
    remote = make_remote(tmp_path, settings=settings)
    art = tmp_path / "artifacts"
    plan = [
        {"id": "small", "agent": "backend", "goal": "small.py", "files": ["small.py"]},
        {"id": "big", "agent": "tester", "goal": "Read a lot.", "files": ["BIG.md"]},
        {"id": "after", "agent": "backend", "goal": "after.py", "files": ["after.py"], "depends_on": ["big"]},
    ]
    reading = Reply(tool_calls=[tool("read_file", path="README.md")], usage={"output_tokens": 4000})  # $0.04 each
    with MessagesServer(api_key="sk-ant-matrix") as server:
        server.script("lead/plan", Reply(tool_calls=[tool("submit_plan", tasks=plan)]))
        server.script(
            "backend/small",
            Reply(tool_calls=[tool("write_file", path="small.py", content="S = 1\n")]),
            Reply(tool_calls=[tool("finish", summary="small")]),
        )
        server.script("reviewer/small", Reply(tool_calls=[APPROVE]))
        server.script("tester/big", *[reading] * 8)
        env = {**os.environ, "ANTHROPIC_BASE_URL": server.url, "ANTHROPIC_API_KEY": "sk-ant-matrix"}

        out = squad(runner(remote, tmp_path, "plan"), "plan", "two things", "--out", str(art / "plan"), "--matrix",
                    "--max-cost", "0.30", env=env)  # fmt: skip
        assert out.returncode == 0, out.stderr
        run = json.loads(out.stdout)["run"]
        for task, code in (("small", 0), ("big", 1)):
            job = squad(runner(remote, tmp_path, task), "task", run, task, "--from", str(art / "plan"),
                        "--out", str(art / task), env=env)  # fmt: skip
            assert job.returncode == code, job.stderr + job.stdout
        after = squad(runner(remote, tmp_path, "after"), "task", run, "after", "--from", str(art), "--out",
                      str(art / "after"), env=env)  # fmt: skip
        assert after.returncode == 1 and "blocked" in after.stdout
        after_records = _records(art / "after")
        shutil.rmtree(art / "after")  # its artifact lost: integrate must say so, and still merge what it can
        calls_before_integrate = len(server.requests)
        done = squad(runner(remote, tmp_path, "integrate"), "integrate", run, "--from", str(art), "--json", env=env)
        assert len(server.requests) == calls_before_integrate  # integration called no model

    split = next(r for r in _records(art / "plan") if r["type"] == "budget_split")
    assert split["shares"] == 3 and split["run"]["run_usd"] == 0.30
    planning = sum(r["cost_usd"] for r in _records(art / "plan") if r["type"] == "model_call")
    assert split["task"]["run_usd"] == pytest.approx((0.30 - planning) / 3)
    assert split["max_parallel"] == 2 and split["rates"]["requests_per_minute"] == 25  # 50/min over 2 jobs at once

    # `big` was stopped by its slice, not by the run's budget, and overshot it by less than one call
    big = _records(art / "big")
    costs = [r["cost_usd"] for r in big if r["type"] == "model_call"]
    assert 0 < len(costs) < 8 and sum(costs) > split["task"]["run_usd"]
    assert sum(costs) - max(costs) <= split["task"]["run_usd"]
    failed = next(r for r in big if r["type"] == "task_status")
    assert failed["status"] == "failed" and "run_usd" in failed["reason"]
    # its dependent never started: blocked, without a model call
    assert [r["status"] for r in after_records if r["type"] == "task_status"] == ["blocked"]
    assert not [r for r in after_records if r["type"] == "model_call"]

    # what was approved is merged; integrate reports the total of every job against the run's budget
    report = json.loads(done.stdout)
    assert done.returncode == 1 and report["status"] == "partial"
    assert sh_git(remote, "show", f"squad/{run}:small.py") == "S = 1\n"
    lost = next(t for t in report["tasks"] if t["id"] == "after")
    assert lost["status"] == "failed" and "left no fragment" in lost["reason"]
    per_job = [
        sum(r["cost_usd"] for r in _records(art / n) if r["type"] == "model_call") for n in ("plan", "small", "big")
    ]
    budget = report["budget"]
    assert budget["spent_usd"] == pytest.approx(sum(per_job), abs=1e-6) == pytest.approx(report["cost_usd"], abs=1e-6)
    assert budget["limit_usd"] == 0.30 and budget["spent_usd"] <= 0.30 and budget["jobs"] == 3


# ---------------------------------------------------------------------------------------------------------
# a run started locally (`squad run`) is integrated by the same `squad integrate`


def _run_journal(runs: Path, proc: subprocess.Popen[str], timeout: float = 60) -> Path:
    """The events.jsonl of the (only) run, once `squad run` has created it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(runs.glob("*/events.jsonl")) if runs.is_dir() else []
        if found:
            return found[0]
        if proc.poll() is not None:
            raise AssertionError(f"squad run exited ({proc.returncode}): {proc.communicate()}")
        time.sleep(0.05)
    raise AssertionError("no run folder appeared")


SLOW_TEST = """import os, sys, time
# The run's integration (in its _integration worktree, after the merges) waits while the flag file exists.
if os.path.basename(os.getcwd()) == "_integration" and os.path.exists("app.py"):
    while os.path.exists(sys.argv[1]):
        time.sleep(0.05)
"""


@pytest.mark.timeout(300)
def test_a_local_run_killed_while_integrating_is_finished_by_squad_integrate(repo: Path, tmp_path: Path) -> None:
    from matrix_support import CHARTERS, PY

    flag = tmp_path / "hold-integration"
    flag.touch()
    (repo / "slowtest.py").write_text(SLOW_TEST)
    agents = repo / ".squad" / "agents"
    agents.mkdir(parents=True)
    for name, front in CHARTERS.items():
        (agents / f"{name}.md").write_text(f"---\n{front}---\nYou are the {name}.\n")
    (repo / ".squad" / "squad.toml").write_text(f'[commands]\ntest = "{PY} slowtest.py {flag}"\n')
    (repo / ".gitignore").write_text(".squad/runs/\n__pycache__/\n")
    sh_git(repo, "add", "-A")
    sh_git(repo, "commit", "-qm", "team")
    plan = [PLAN[0], {"id": "docs", "agent": "tester", "goal": "DOCS.md", "files": ["DOCS.md"]}]
    script = {
        "version": 1,
        "scripts": [
            {"agent": "lead", "task": "plan", "turns": [{"tool_calls": [tool("submit_plan", tasks=plan)]}]},
            {"agent": "backend", "task": "api", "turns": [
                {"tool_calls": [tool("write_file", path="app.py", content="def health():\n    return 'ok'\n")]},
                {"tool_calls": [tool("record_decision", title="Plain health", decision="A function.")]},
                {"tool_calls": [tool("finish", summary="api")]},
            ]},
            {"agent": "tester", "task": "docs", "turns": [
                {"tool_calls": [tool("write_file", path="DOCS.md", content="docs\n")]},
                {"tool_calls": [tool("finish", summary="docs")]},
            ]},
            {"agent": "reviewer", "turns": [{"tool_calls": [APPROVE]}]},
            {"agent": "reviewer", "turns": [{"tool_calls": [APPROVE]}]},
        ],
    }  # fmt: skip
    model = write_script(tmp_path / "local.yaml", script)
    proc = popen(repo, "run", "health and docs", "--model", model)
    journal = _run_journal(repo / ".squad" / "runs", proc)
    wait_for(journal, proc, lambda e: e["type"] == "tests" and e.get("where") == "api")
    wait_for(journal, proc, lambda e: e["type"] == "ledger_committed")  # both merged; now the tests hold
    proc.kill()
    assert finish(proc)[0] == -9
    run = journal.parent.name
    merges = sh_git(repo, "rev-list", "--merges", "--count", f"squad/{run}").strip()
    flag.unlink()

    refused = squad(repo, "integrate", run)  # a local repository has no remote to push to: a clear error
    assert refused.returncode == 2 and "no git remote 'origin'" in refused.stderr and "--no-push" in refused.stderr
    done = squad(repo, "integrate", run, "--no-push", "--model", model)
    assert done.returncode == 0, done.stderr + done.stdout
    records = read_events(journal)
    assert [r["task"] for r in records if r["type"] == "merged"] == ["api", "docs"]  # not merged again
    assert sh_git(repo, "rev-list", "--merges", "--count", f"squad/{run}").strip() == merges
    assert records[-1]["type"] == "run_finished" and records[-1]["status"] == "done"
    assert sh_git(repo, "show", f"squad/{run}:DOCS.md") == "docs\n"
    assert json.loads(squad(repo, "runs", "--json").stdout)[0]["status"] == "done"


# ---------------------------------------------------------------------------------------------------------
# the integrate job merges with the local run's conflict rules: a conflict round, run in that job


@pytest.mark.timeout(300)
def test_a_merge_conflict_between_two_jobs_gets_its_conflict_round_in_the_integrate_job(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    art = tmp_path / "artifacts"

    def worker(agent: str, lease: str, content: str) -> dict[str, Any]:
        write = {"tool_calls": [tool("write_file", path="same.txt", content=content)]}
        return {"agent": agent, "task": lease, "turns": [write, {"tool_calls": [tool("finish", summary=lease)]}]}

    plan = [{"id": "one", "agent": "backend", "goal": "same.txt"}, {"id": "two", "agent": "tester", "goal": "same.txt"}]
    model = write_script(
        tmp_path / "conflict.yaml",
        {
            "version": 1,
            "scripts": [
                {"agent": "lead", "task": "plan", "turns": [{"tool_calls": [tool("submit_plan", tasks=plan)]}]},
                worker("backend", "one", "A\n"),
                worker("tester", "two", "B\n"),
                worker("tester", "two-r1", "A\nB\n"),  # the conflict round: two's author resolves the markers
                *(
                    {"agent": "reviewer", "task": t, "turns": [{"tool_calls": [APPROVE]}]}
                    for t in ("one", "two", "two-r1")
                ),
            ],
        },
    )
    out = squad(runner(remote, tmp_path, "plan"), "plan", "twice", "--out", str(art / "plan"), "--model", model)
    assert out.returncode == 0, out.stderr
    run = next(r for r in _records(art / "plan") if r["type"] == "run_started")["run"]
    jobs = {t: popen(runner(remote, tmp_path, t), "task", run, t, "--from", str(art / "plan"), "--out", str(art / t),
                     "--model", model) for t in ("one", "two")}  # fmt: skip
    assert all(finish(p)[0] == 0 for p in jobs.values())
    integ = runner(remote, tmp_path, "integrate")
    done = squad(integ, "integrate", run, "--from", str(art), "--model", model, "--json")
    assert done.returncode == 0, done.stderr + done.stdout
    report = json.loads(done.stdout)
    assert report["status"] == "done" and report["merged"] == ["one", "two"]
    assert sh_git(remote, "show", f"squad/{run}:same.txt") == "A\nB\n"
    events = read_events(integ / ".squad" / "runs" / run / "events.jsonl")
    job = next(i for i, e in enumerate(events) if e["type"] == "job_started" and e["job"] == "integrate")
    mine = events[job:]
    assert [e["files"] for e in mine if e["type"] == "conflict"] == [["same.txt"]]
    assert [(e["task"], e["round"], e["kind"]) for e in mine if e["type"] == "task_started"] == [("two", 1, "conflict")]
