"""The parts of a run spread over CI jobs: budget slices, fragments, their merge order, merged ledgers, the
job events and their fold, the matrix, the remote's push lease.

End to end through simulated runners: tests/test_matrix_e2e.py.
"""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import git

from squad.domain import events as ev
from squad.domain.plan import Plan, PlanTask
from squad.domain.state import fold
from squad.domain.usage import Limits, Spend, rate_share
from squad.errors import UsageError, WorkspaceError
from squad.infra.fragments import (
    FragmentError,
    built_on,
    check_out,
    copy_fragment,
    find_fragments,
    merge_records,
    read_fragment,
    write_fragment,
)
from squad.infra.ledger import Ledger, merge_entries, render_run_ledger
from squad.infra.remote import Remote, fetch_commit, push_branch, remote_tip
from squad.orchestration.plan_job import PlanOutcome

RUN = "20261129-120000-abcd"


# ---------------------------------------------------------------------------------------------------------
# budgets


def test_a_share_is_an_equal_slice_of_what_is_left_and_the_slices_never_pass_the_run_limit() -> None:
    run = Limits(run_usd=5.0, agent_usd=2.0, run_input_tokens=3_000_000, run_output_tokens=300_000, agent_turns=40)
    planning = Spend(input_tokens=10_000, output_tokens=1_000, usd=0.5)
    share = run.share(16, planning)
    assert share.run_usd == pytest.approx(4.5 / 16)
    assert share.run_input_tokens == (3_000_000 - 10_000) // 16 and share.run_output_tokens == 299_000 // 16
    assert (share.agent_usd, share.agent_turns) == (2.0, 40)  # per-agent limits hold within each job as they are
    assert planning.usd + 16 * share.run_usd <= run.run_usd + 1e-12
    assert planning.input_tokens + 16 * share.run_input_tokens <= 3_000_000
    assert Limits().share(3) == Limits()  # unlimited stays unlimited
    assert Limits(run_usd=1.0).share(2, Spend(usd=3.0)).run_usd == 0.0  # overspent planning: nothing left
    with pytest.raises(ValueError, match="at least one job"):
        run.share(0)


def test_limits_round_trip_through_the_plan_and_ignore_junk() -> None:
    limits = Limits(run_usd=0.25, run_input_tokens=1000, agent_turns=5, task_timeout_s=60.0)
    assert Limits.from_dict(limits.to_dict()) == limits
    assert Limits.from_dict(json.loads(json.dumps(limits.to_dict()))) == limits
    assert Limits.from_dict({"run_usd": "5", "agent_turns": True, "nope": 3}) == Limits()


def test_rate_share_divides_among_the_jobs_at_once() -> None:
    assert rate_share(50, 4) == 12 and rate_share(400_000, 3) == 133_333
    assert rate_share(3, 8) == 1  # never 0 (0 means unlimited)
    assert rate_share(0, 8) == 0


# ---------------------------------------------------------------------------------------------------------
# the matrix


def test_the_matrix_lists_waves_and_one_entry_per_task() -> None:
    plan = Plan(
        (
            PlanTask("a", "backend", "A"),
            PlanTask("b", "backend", "B"),
            PlanTask("c", "tester", "C", depends_on=("a",)),
            PlanTask("d", "tester", "D", depends_on=("c", "b")),
        )
    )
    outcome = PlanOutcome(RUN, "planned", Path("x"), plan, plan.waves(), max_parallel=2, base_commit="f" * 40)
    assert outcome.matrix() == {
        "run": RUN,
        "waves": [["a", "b"], ["c"], ["d"]],
        "include": [
            {"task": "a", "wave": 1},
            {"task": "b", "wave": 1},
            {"task": "c", "wave": 2},
            {"task": "d", "wave": 3},
        ],
        "max_parallel": 2,
        "base": "f" * 40,
    }


# ---------------------------------------------------------------------------------------------------------
# job events and the fold


def _record(event: ev.Event, ts: float) -> dict[str, Any]:
    return event.model_copy(update={"ts": ts}).to_record()


def test_a_new_job_forgets_the_worktrees_earlier_jobs_made_ready() -> None:
    events = [
        ev.RunStarted(run=RUN, task_text="t"),
        ev.SetupDone(lease="_integration", ok=True),
        ev.JobStarted(job="integrate"),
    ]
    state = fold(RUN, events[:2])
    assert state.ready_leases == {"_integration"}
    assert fold(RUN, events).ready_leases == set()  # that worktree was on the plan job's machine


def test_the_budget_split_is_folded_and_described() -> None:
    split = ev.BudgetSplit(
        shares=4,
        max_parallel=2,
        run=Limits(run_usd=1.0).to_dict(),
        task=Limits(run_usd=0.25, run_input_tokens=1000).to_dict(),
        rates={"requests_per_minute": 25},
    )
    record = split.to_record()
    parsed = ev.parse_event(record)
    assert parsed == split and fold(RUN, [parsed]).budget == split
    assert (
        split.describe()
        == "budget_split 4 task jobs, each $0.2500, 1,000 input tokens; 25 requests/min each, 2 at once"
    )
    merged = ev.FragmentsMerged(fragments=[{"kind": "plan", "events": 5}, {"kind": "task", "events": 7}])
    assert merged.describe() == "fragments_merged 2 fragments (1 task jobs, 12 events)"


# ---------------------------------------------------------------------------------------------------------
# fragments


def _task_records(task: str, stamps: list[float]) -> list[dict[str, Any]]:
    return [_record(ev.TaskStatus(task=task, status="failed", reason=f"#{i}"), ts) for i, ts in enumerate(stamps)]


def _fragment(
    tmp: Path, name: str, kind: str, task: str | None, records: list[dict[str, Any]], ledger: str = ""
) -> Path:
    return write_fragment(tmp / name, kind=kind, run=RUN, task=task, records=records, ledger=ledger)


def test_a_fragment_round_trips_and_a_torn_or_edited_one_is_refused(tmp_path: Path) -> None:
    records = _task_records("api", [1.0, 2.0])
    path = _fragment(tmp_path, "api", "task", "api", records)
    fragment = read_fragment(path)
    assert (fragment.kind, fragment.task, fragment.records) == ("task", "api", records)
    events = path / "events.jsonl"
    events.write_bytes(events.read_bytes()[:-5])  # torn in the upload
    with pytest.raises(FragmentError, match=r"does not match fragment\.json"):
        read_fragment(path)
    manifest = json.loads((path / "fragment.json").read_text())
    (path / "fragment.json").write_text(json.dumps({**manifest, "format": 99}))
    with pytest.raises(FragmentError, match="format 99"):
        read_fragment(path)


def test_an_unreadable_event_in_a_fragment_names_its_line(tmp_path: Path) -> None:
    bad = [_task_records("api", [1.0])[0], {"ts": 2.0, "type": "task_status", "v": 2}]  # no task, no status
    path = _fragment(tmp_path, "api", "task", "api", bad)
    with pytest.raises(FragmentError, match=r"events\.jsonl:2: invalid task_status event"):
        read_fragment(path)


def test_writing_a_fragment_replaces_one_but_never_a_folder_of_other_things(tmp_path: Path) -> None:
    path = _fragment(tmp_path, "out", "task", "api", _task_records("api", [1.0]))
    _fragment(tmp_path, "out", "task", "api", _task_records("api", [1.0, 2.0]))
    assert len(read_fragment(path).records) == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left behind
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "precious.txt").write_text("keep me")
    with pytest.raises(UsageError, match="holds no squad fragment"):
        _fragment(tmp_path, "busy", "task", "api", [])
    assert (busy / "precious.txt").read_text() == "keep me"


def test_a_fragment_never_replaces_another_jobs(tmp_path: Path) -> None:
    api = _fragment(tmp_path, "api", "task", "api", _task_records("api", [1.0]))
    plan = _fragment(tmp_path, "plan", "plan", None, [])
    before = {p: (p / "events.jsonl").read_bytes() for p in (api, plan)}
    other_run = "20261129-120000-zzzz"
    refusals = [
        (api, "task", RUN, "docs", f"holds the fragment of task 'api' of run {RUN}; writing the fragment of task"),
        (api, "task", other_run, "api", f"holds the fragment of task 'api' of run {RUN}"),
        (api, "plan", RUN, None, f"holds the fragment of task 'api' of run {RUN}; writing the plan fragment"),
        (plan, "plan", other_run, None, f"holds the plan fragment of run {RUN}; writing the plan fragment of run"),
        (plan, "task", RUN, "api", f"holds the plan fragment of run {RUN}"),
    ]
    for out, kind, run, task, message in refusals:
        with pytest.raises(UsageError, match=re.escape(message)) as refused:
            check_out(out, kind=kind, run=run, task=task)
        assert "choose another --out folder" in str(refused.value.hint)
        with pytest.raises(UsageError, match=re.escape(message)):  # and when the job writes, too
            write_fragment(out, kind=kind, run=run, task=task, records=[])
    assert {p: (p / "events.jsonl").read_bytes() for p in (api, plan)} == before
    (tmp_path / "torn").mkdir()
    (tmp_path / "torn" / "fragment.json").write_text("{not json")
    with pytest.raises(UsageError, match=r"holds a fragment\.json that cannot be read"):
        check_out(tmp_path / "torn", kind="task", run=RUN, task="api")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="is not a folder"):
        check_out(tmp_path / "file", kind="task", run=RUN, task="api")
    check_out(api, kind="task", run=RUN, task="api")  # the same job's: its rerun replaces it
    check_out(tmp_path / "new", kind="plan", run=RUN, task=None)
    assert not (tmp_path / "new").exists()


def test_a_reused_fragment_is_copied_byte_for_byte_and_says_what_it_was_built_on(tmp_path: Path) -> None:
    built = {"base": "a" * 40, "deps": {"api": "b" * 40, "notes": None}}
    transcript = {"check": [{"role": "user", "content": "x"}]}
    records = _task_records("check", [1.0])
    meta = {"status": "approved", "built_on": built}
    path = write_fragment(
        tmp_path / "check",
        kind="task",
        run=RUN,
        task="check",
        records=records,
        ledger="# d\n",
        transcripts=transcript,
        meta=meta,
    )
    fragment = read_fragment(path)
    assert built_on(fragment) == ("a" * 40, {"api": "b" * 40, "notes": None})
    copied = copy_fragment(fragment, tmp_path / "out" / "check")
    files = {p.relative_to(path): p.read_bytes() for p in path.rglob("*") if p.is_file()}
    assert {p.relative_to(copied): p.read_bytes() for p in copied.rglob("*") if p.is_file()} == files
    assert len(files) == 5 and not [p for p in copied.parent.iterdir() if p.name.startswith(".")]
    with pytest.raises(UsageError, match="holds the fragment of task 'api'"):  # never over another job's
        copy_fragment(fragment, _fragment(tmp_path, "api", "task", "api", []))
    # a fragment from before squad recorded it, or one that says it in another shape, was built on nothing known
    for meta in (
        {},
        {"built_on": "main"},
        {"built_on": {"base": 1, "deps": {}}},
        {"built_on": {"base": "a", "deps": {"x": 2}}},
    ):
        old = write_fragment(tmp_path / "old", kind="task", run=RUN, task="check", records=[], meta=meta)
        assert built_on(read_fragment(old)) is None


def test_fragments_are_found_in_a_folder_or_one_level_down_and_other_runs_are_left_out(tmp_path: Path) -> None:
    _fragment(tmp_path / "all", "plan", "plan", None, [])
    _fragment(tmp_path / "all", "api", "task", "api", _task_records("api", [1.0]))
    write_fragment(tmp_path / "all" / "other", kind="plan", run="20261129-120000-zzzz", task=None, records=[])
    _fragment(tmp_path, "single", "task", "docs", _task_records("docs", [1.0]))
    found = find_fragments([tmp_path / "all", tmp_path / "single"], RUN)
    assert sorted((f.kind, f.task or "") for f in found) == [("plan", ""), ("task", "api"), ("task", "docs")]
    _fragment(tmp_path / "again", "api", "task", "api", _task_records("api", [9.0]))  # another attempt's
    with pytest.raises(FragmentError, match="two different fragments of task api"):
        find_fragments([tmp_path / "all", tmp_path / "again"], RUN)
    with pytest.raises(FragmentError, match="no squad fragment"):
        find_fragments([tmp_path / "all" / "api" / "transcripts"], RUN)


def test_the_merged_journal_is_the_same_whatever_the_order_and_keeps_each_jobs_own_order(tmp_path: Path) -> None:
    plan = read_fragment(_fragment(tmp_path, "plan", "plan", None, [_record(ev.RunStarted(run=RUN), 5.0)]))
    # b's runner clock went backwards mid-job: its own order must survive the merge
    a = read_fragment(_fragment(tmp_path, "a", "task", "a", _task_records("a", [10.0, 12.0, 14.0])))
    b = read_fragment(_fragment(tmp_path, "b", "task", "b", _task_records("b", [11.0, 9.0, 13.0])))
    c = read_fragment(_fragment(tmp_path, "c", "task", "c", _task_records("c", [12.0])))
    order = ["a", "b", "c"]
    merged = merge_records(plan, [a, b, c], order)
    for shuffled in ([c, b, a], [b, c, a], [c, a, b]):
        assert merge_records(plan, shuffled, order) == merged
    assert merged[0]["type"] == "run_started"  # the plan's events start the run, whatever the clocks say
    assert [r["reason"] for r in merged if r.get("task") == "b"] == ["#0", "#1", "#2"]
    # a tie (12.0 in a and c) is broken by plan order
    assert [(r["task"], r["ts"]) for r in merged[1:]] == [
        ("a", 10.0),
        ("b", 11.0),
        ("b", 9.0),
        ("a", 12.0),
        ("c", 12.0),
        ("b", 13.0),
        ("a", 14.0),
    ]


# ---------------------------------------------------------------------------------------------------------
# ledgers


def _entries(repo: Path, name: str, titles: list[str]) -> str:
    path = repo / f"{name}.md"
    for title in titles:
        Ledger(repo).append(path, title=title, decision=f"{title}.", agent="backend", run=RUN)
    return path.read_text()


def test_run_ledgers_from_several_jobs_merge_once_each_in_ulid_order(repo: Path) -> None:
    first = _entries(repo, "wave1", ["One", "Two"])
    second = first + _entries(repo, "wave2", ["Three"]).split("\n", 1)[1]  # wave 2 was handed wave 1's entries
    sources = [(Path("b/ledger.md"), second), (Path("a/ledger.md"), first)]
    entries, problems = merge_entries(sources)
    assert problems == [] and [e.title for e in entries] == ["One", "Two", "Three"]
    assert [e.id for e in entries] == sorted(e.id for e in entries)
    text = render_run_ledger(RUN, entries)
    assert text.startswith(f"# Decisions — run {RUN}, ") and text.count("## ") == 3
    assert render_run_ledger(RUN, merge_entries(reversed(sources))[0]) == text  # whichever job's copy is read
    assert render_run_ledger(RUN, []) == ""
    reparsed, _ = merge_entries([(Path("x.md"), text)])
    assert [e.raw for e in reparsed] == [e.raw for e in entries]  # entries are copied byte for byte
    edited = first.replace("One.", "One, edited.")
    _, problems = merge_entries([(Path("a.md"), first), (Path("b.md"), edited)])
    assert len(problems) == 1 and "differs from the one in a.md" in problems[0].message


# ---------------------------------------------------------------------------------------------------------
# the remote


def test_a_push_replaces_a_killed_attempts_branch_but_not_someone_elses_newer_push(repo: Path, tmp_path: Path) -> None:
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    remote = Remote(str(bare))
    first = git(repo, "rev-parse", "HEAD").strip()
    branch = f"squad/{RUN}--api"
    assert remote_tip(repo, remote, branch) is None
    push_branch(repo, remote, first, branch, expect=None)
    (repo / "x.txt").write_text("attempt 2\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "attempt 2")
    second = git(repo, "rev-parse", "HEAD").strip()
    push_branch(repo, remote, second, branch, expect=first)  # what this job saw when it started: replaced
    assert remote_tip(repo, remote, branch) == second
    with pytest.raises(WorkspaceError, match="failed to push") as refused:
        push_branch(repo, remote, first, branch, expect=first)  # stale view: refused
    assert "another job may have pushed" in str(refused.value.hint)
    assert remote_tip(repo, remote, branch) == second
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare), str(clone))  # has no squad branch locally
    fetch_commit(clone, remote, second, branch)
    assert git(clone, "cat-file", "-t", second).strip() == "commit"
    assert "squad/" not in git(clone, "branch", "--list")  # only objects arrive: no local branch written
    with pytest.raises(WorkspaceError, match="cannot fetch"):
        fetch_commit(clone, remote, "1" * 40, f"squad/{RUN}--nope")


def test_a_token_reaches_git_only_through_its_environment() -> None:
    env = Remote("origin", token="ghs_secret123").env()
    assert env["GIT_CONFIG_KEY_0"] == "http.extraheader" and "ghs_secret123" not in env["GIT_CONFIG_VALUE_0"]
    assert Remote("origin").env() == {}


def test_random_fragment_sets_merge_deterministically(tmp_path: Path) -> None:
    rng = random.Random(7)
    plan = read_fragment(_fragment(tmp_path, "plan", "plan", None, []))
    tasks = [
        read_fragment(_fragment(tmp_path, t, "task", t, _task_records(t, [rng.uniform(0, 5) for _ in range(6)])))
        for t in "abcdef"
    ]
    expected = merge_records(plan, tasks, list("abcdef"))
    for _ in range(5):
        rng.shuffle(tasks)
        assert merge_records(plan, tasks, list("abcdef")) == expected
    assert len(expected) == 36 and os.path.isdir(tmp_path / "a")


def test_integrate_leaves_a_local_run_with_work_in_progress_to_its_resume(repo: Path) -> None:
    import subprocess
    import sys

    from matrix_support import CHARTERS

    from squad.infra.journal import Journal

    agents = repo / ".squad" / "agents"
    agents.mkdir(parents=True)
    for name, front in CHARTERS.items():
        (agents / f"{name}.md").write_text(f"---\n{front}---\nYou are the {name}.\n")
    journal = Journal(repo, RUN).create()
    for event in (
        ev.RunStarted(run=RUN, task_text="t", base_commit=git(repo, "rev-parse", "HEAD").strip()),
        ev.PlanMade(tasks=[PlanTask("api", "backend", "A").to_dict(), PlanTask("docs", "tester", "D").to_dict()]),
        ev.TaskStarted(task="api", agent="backend", lease="api", branch=f"squad/{RUN}--api"),
    ):
        journal.emit(event)
    before = journal.events_path.read_bytes()
    out = subprocess.run(
        [sys.executable, "-m", "squad", "integrate", RUN, "--no-push"], cwd=repo, capture_output=True, text=True
    )
    assert out.returncode == 2, out.stderr
    assert "api (working), docs (pending)" in out.stderr and f"squad run --resume {RUN}" in out.stderr
    assert journal.events_path.read_bytes() == before  # nothing written: not even that it failed
