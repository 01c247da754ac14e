"""`squad demo` end to end in a real subprocess: the offline pipeline does everything the README promises."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import git

from squad.infra.ledger import parse_text


def test_demo_runs_the_whole_pipeline_offline(tmp_path: Path) -> None:
    target = tmp_path / "demo"
    out = subprocess.run(
        [sys.executable, "-m", "squad", "demo", "--keep", str(target), "--json"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["status"] == "done"
    run, branch = report["run"], report["branch"]
    events = [json.loads(line) for line in (target / ".squad" / "runs" / run / "events.jsonl").read_text().splitlines()]

    # The lead read the code before planning: its read_file ran in its read-only view, before the plan.
    kinds = [e["type"] for e in events]
    lead_calls = [e for e in events[: kinds.index("plan")] if e["type"] == "agent.tool_call" and e["task"] == "plan"]
    assert [(e["agent"], e["name"], e["is_error"]) for e in lead_calls] == [
        ("lead", "read_file", False),
        ("lead", "submit_plan", False),
    ]
    assert "class Shelf" in lead_calls[0]["result"]

    # At least three specialists worked in parallel: three tasks started before the first one was committed.
    kinds = [e["type"] for e in events]
    first_commit = kinds.index("task_committed")
    started = {e["agent"] for e in events[:first_commit] if e["type"] == "task_started"}
    assert len(started) >= 3, started

    # A rejected task was revised by a different agent, and the lockout is in the journal.
    docs = next(t for t in report["tasks"] if t["id"] == "docs")
    assert [v["verdict"] for v in docs["verdicts"]] == ["reject", "approve"]
    assert docs["agents"][0] != docs["agents"][1]
    assert {"type": "lockout", "task": "docs", "agent": docs["agents"][0]}.items() <= next(
        e for e in events if e["type"] == "lockout"
    ).items()

    # The tester ran the example's real unittest suite through the jailed `run` tool, and it passed.
    tester_runs = [
        e for e in events if e["type"] == "agent.tool_call" and e["agent"] == "tester" and e["name"] == "run"
    ]
    assert tester_runs and not any(e["is_error"] for e in tester_runs)
    assert report["tests"]["passed"] is True
    # Every specialist sent the same cached prefix: after the first write, the context pack is read from cache.
    assert report["cache_hit_rate"] > 0.5

    # Decisions by at least two agents landed in the run's ledger file on the run branch.
    files = git(target, "ls-tree", "-r", "--name-only", branch, "decisions/").split()
    ledger_file = next(f for f in files if f.endswith(f"-{run}.md"))
    parsed = parse_text(git(target, "show", f"{branch}:{ledger_file}"), Path(ledger_file))
    assert not parsed.problems
    assert len({e.agent for e in parsed.entries}) >= 2

    # All approved work is on the run branch, and the integrated tests pass there.
    assert "def overdue" in git(target, "show", f"{branch}:bookshelf/core.py")
    assert "due=date(2026, 12, 1)" in git(target, "show", f"{branch}:README.md")
    assert "test_loans.py" in git(target, "ls-tree", "--name-only", branch, "tests/")
    # No worktree left behind, and the user's branch never moved.
    assert git(target, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert git(target, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
    assert "def overdue" not in (target / "bookshelf" / "core.py").read_text()


def test_demo_refuses_a_non_empty_keep_dir(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("mine\n")
    out = subprocess.run(
        [sys.executable, "-m", "squad", "demo", "--keep", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2
    assert "is not empty" in out.stderr
    assert (tmp_path / "x").read_text() == "mine\n"


def test_demo_without_keep_cleans_up_and_does_not_suggest_merging_into_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}  # as in a CI log: no size given
    out = subprocess.run(
        [sys.executable, "-m", "squad", "demo"], capture_output=True, text=True, timeout=180, cwd=tmp_path, env=env
    )
    assert out.returncode == 0, out.stderr
    demo_repo = Path(next(line for line in out.stderr.splitlines() if line.startswith("demo repo: ")).split(": ", 1)[1])
    assert not demo_repo.exists()
    assert "done" in out.stdout and "next: git merge" not in out.stdout
    assert "use --keep DIR" in out.stderr
    # Output to a pipe or a CI log is not cut at rich's 80 columns: the run's title line is whole.
    title = next(line for line in out.stdout.splitlines() if line.startswith("run ") and ": done" in line)
    assert title.endswith("list overdue loans; test and document it.") and len(title) > 80
