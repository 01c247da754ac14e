"""A task redone after `squad integrate` pushed `squad/<run>`: integrating again merges each task once.

Simulated runners as in tests/test_matrix_e2e.py (a bare remote, one fresh clone per job, artifacts as folders,
every job a real `squad` process). The run branch had merged the tasks' first commits; the fragments now approve
new ones. Merging those on top would merge each task a second time, so `squad integrate` builds the branch again
from the run's base, unless someone added commits to it: then it refuses, naming them, and leaves it as it was.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import git
from matrix_support import APPROVE, make_remote, read_events, runner, sh_git, squad, tool, write_script

from squad.infra.git import identity, run_git
from squad.infra.merging import BranchSurvey, survey_run_branch

PLAN = [
    {"id": "api", "agent": "backend", "goal": "Add app.py with health().", "files": ["app.py"]},
    {"id": "check", "agent": "tester", "goal": "check.py uses health().", "files": ["check.py"], "depends_on": ["api"]},
]


def _work(agent: str, task: str, path: str, content: str, word: str) -> list[dict[str, Any]]:
    """A specialist writing one file and recording a decision, then its reviewer approving."""
    write, done = tool("write_file", path=path, content=content), tool("finish", summary=f"wrote {path}")
    decide = tool("record_decision", title=f"{task} says {word}", decision=f"health() returns {word}.")
    work = {"agent": agent, "task": task, "turns": [{"tool_calls": [write, decide]}, {"tool_calls": [done]}]}
    return [work, {"agent": "reviewer", "task": task, "turns": [{"tool_calls": [APPROVE]}]}]


def _team(tmp: Path, name: str, word: str) -> str:
    """A team whose api says `word` and whose check expects it."""
    plan = {"agent": "lead", "task": "plan", "turns": [{"tool_calls": [tool("submit_plan", tasks=PLAN)]}]}
    api = _work("backend", "api", "app.py", f"def health() -> str:\n    return {word!r}\n", word)
    check = _work("tester", "check", "check.py", f"import app\n\nassert app.health() == {word!r}\n", word)
    return write_script(tmp / f"{name}.yaml", {"version": 1, "scripts": [plan, *api, *check]})


def _approved(fragment: Path, task: str) -> str:
    records = read_events(fragment / "events.jsonl")
    return next(r["commit"] for r in records if r["type"] == "task_approved" and r["task"] == task)


def _line(remote: Path, branch: str, base: str) -> list[tuple[list[str], str]]:
    """The branch's first-parent commits past `base`, oldest first: (parents, subject)."""
    out = sh_git(remote, "log", "--first-parent", "--reverse", "--format=%P%x1f%s", f"{base}..{branch}")
    return [(parents.split(), subject) for parents, subject in (line.split("\x1f") for line in out.splitlines())]


@pytest.mark.timeout(300)
def test_a_task_built_on_a_dependencys_earlier_work_is_not_merged(tmp_path: Path) -> None:
    """check's job worked on api's first commit; api was done again since, check was not: merging check would
    put work that never met api's approved work on the run branch. It is blocked, with the reason."""
    remote = make_remote(tmp_path)
    art = tmp_path / "artifacts"
    first, second = _team(tmp_path, "first", "ok"), _team(tmp_path, "second", "fine")
    plan = squad(runner(remote, tmp_path, "plan"), "plan", "health", "--out", str(art / "plan"), "--model", first)
    assert plan.returncode == 0, plan.stderr
    run = next(r for r in read_events(art / "plan" / "events.jsonl") if r["type"] == "run_started")["run"]

    def job(task: str, model: str, name: str) -> None:
        shutil.rmtree(art / task, ignore_errors=True)
        done = squad(runner(remote, tmp_path, name), "task", run, task, "--from", str(art), "--out",
                     str(art / task), "--model", model, "--json")  # fmt: skip
        assert done.returncode == 0, done.stderr

    job("api", first, "api")
    earlier = _approved(art / "api", "api")
    job("check", first, "check")
    job("api", second, "api-again")  # api done again; check's job is not rerun
    now = _approved(art / "api", "api")
    done = squad(runner(remote, tmp_path, "integrate"), "integrate", run, "--from", str(art), "--json",
                 "--model", second)  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    check = next(t for t in report["tasks"] if t["id"] == "check")
    assert report["status"] == "partial" and report["merged"] == ["api"] and check["status"] == "blocked", report
    assert f"built on earlier work of api ({earlier[:12]}, now {now[:12]})" in check["reason"], check
    assert "check.py" not in sh_git(remote, "ls-tree", "--name-only", f"squad/{run}")


@pytest.mark.timeout(300)
def test_a_task_redone_after_integration_is_merged_once_at_its_new_commit(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    art = tmp_path / "artifacts"
    first = _team(tmp_path, "first", "ok")
    plan = squad(runner(remote, tmp_path, "plan"), "plan", "health", "--out", str(art / "plan"), "--model", first)
    assert plan.returncode == 0, plan.stderr
    run = next(r for r in read_events(art / "plan" / "events.jsonl") if r["type"] == "run_started")["run"]
    base, target = sh_git(remote, "rev-parse", "main").strip(), f"squad/{run}"

    def job(name: str, *args: str) -> subprocess.CompletedProcess[str]:
        """A job on a fresh runner (or again on one it ran on), every artifact so far in --from."""
        where = tmp_path / "runners" / name
        return squad(where if where.is_dir() else runner(remote, tmp_path, name), *args, "--from", str(art), "--json")

    for task in ("api", "check"):
        done = job(task, "task", run, task, "--out", str(art / task), "--model", first)
        assert done.returncode == 0, done.stderr
    done = job("integrate", "integrate", run, "--model", first)
    assert done.returncode == 0 and json.loads(done.stdout)["merged"] == ["api", "check"], done.stderr
    pushed = sh_git(remote, "rev-parse", target).strip()

    # someone follows up on the run branch (a person's commit on top of squad's merges)
    person = runner(remote, tmp_path, "person")
    sh_git(person, "checkout", "-q", target)
    (person / "NOTES.md").write_text("reviewed\n")
    sh_git(person, "add", "NOTES.md")
    sh_git(person, "-c", "user.name=Pat", "-c", "user.email=pat@example.com", "commit", "-qm", "notes from review")
    sh_git(person, "push", "-q", "origin", target)
    followed = sh_git(remote, "rev-parse", target).strip()

    # integrating the same fragments again where it was first (its own squad/<run> lacks that commit) continues
    # the remote's branch: the person's commit stays
    again = job("integrate", "integrate", run, "--model", first)
    assert again.returncode == 0, again.stdout + again.stderr
    assert sh_git(remote, "rev-parse", target).strip() == followed

    # ...and refuses, touching neither, when this clone's branch and the remote's have diverged
    clone = tmp_path / "runners" / "integrate"
    local = sh_git(clone, "commit-tree", "-p", followed, "-m", "a local commit", f"{followed}^{{tree}}").strip()
    sh_git(clone, "update-ref", f"refs/heads/{target}", local)
    sh_git(person, "commit", "-q", "--allow-empty", "-m", "more notes")
    sh_git(person, "push", "-q", "origin", target)
    further = sh_git(remote, "rev-parse", target).strip()
    diverged = job("integrate", "integrate", run, "--model", first)
    assert diverged.returncode == 1 and "have diverged" in diverged.stderr, diverged.stdout + diverged.stderr
    assert sh_git(remote, "rev-parse", target).strip() == further
    assert sh_git(clone, "rev-parse", target).strip() == local
    sh_git(clone, "update-ref", f"refs/heads/{target}", followed)  # back as it was, for what follows
    sh_git(person, "push", "-q", "origin", f"+{followed}:{target}")

    # api is redone on a fresh runner (its artifact gone), and check on api's new commit
    second = _team(tmp_path, "second", "fine")
    shutil.rmtree(art / "api")
    for task in ("api", "check"):
        old = sh_git(remote, "rev-parse", f"{target}--{task}").strip()
        done = job(f"{task}-again", "task", run, task, "--out", str(art / f"{task}-again"), "--model", second)
        assert done.returncode == 0 and json.loads(done.stdout)["reused"] is False, done.stderr
        shutil.rmtree(art / task, ignore_errors=True)
        shutil.move(art / f"{task}-again", art / task)
        assert _approved(art / task, task) != old
    new = {task: _approved(art / task, task) for task in ("api", "check")}

    # the branch must be built again, which would drop the person's commit: refused, the branch left as it is.
    # Integrated again where it was first (whose own squad/<run> lacks that commit): the remote's is checked too.
    refused = job("integrate", "integrate", run, "--model", second)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"{followed[:12]} notes from review" in refused.stderr, refused.stderr
    assert "squad: merge task api (backend)" in refused.stderr and f"back at {pushed[:12]}" in refused.stderr
    assert sh_git(remote, "rev-parse", target).strip() == followed

    # the person does as the hint says (keeps the commit elsewhere, puts the branch back)
    sh_git(person, "push", "-q", "origin", f"{followed}:refs/heads/notes", f"+{pushed}:{target}")

    # a task's artifact missing (expired) looks like a redone task: nothing is rebuilt, nothing dropped
    partial = squad(runner(remote, tmp_path, "integrate-partial"), "integrate", run, "--model", second, "--json",
                    "--from", str(art / "plan"), str(art / "api"))  # fmt: skip
    assert partial.returncode == 1 and "task(s) check have no fragment in --from" in partial.stderr, partial.stderr
    assert sh_git(remote, "rev-parse", target).strip() == pushed

    # with every fragment: built again, pushed
    done = job("integrate-again", "integrate", run, "--model", second)
    assert done.returncode == 0 and json.loads(done.stdout)["merged"] == ["api", "check"], done.stdout + done.stderr
    rebuilt = sh_git(remote, "rev-parse", target).strip()
    line = _line(remote, target, base)
    assert [subject for _, subject in line] == [
        "squad: merge task api (backend)",
        "squad: merge task check (tester)",
        f"squad: decisions of run {run}",
    ]
    assert [parents[1] for parents, _ in line[:2]] == [new["api"], new["check"]]
    assert line[0][0][0] == base  # from the run's base, not on top of the first merges
    assert sh_git(remote, "show", f"{target}:app.py") == "def health() -> str:\n    return 'fine'\n"
    assert sh_git(remote, "show", f"{target}:check.py") == "import app\n\nassert app.health() == 'fine'\n"
    files = sh_git(remote, "ls-tree", "-r", "--name-only", target).split()
    decisions = [p for p in files if p.startswith("decisions/")]
    assert len(decisions) == 1  # the fragments' decisions, the first attempts' gone with their fragments
    ledger = sh_git(remote, "show", f"{target}:{decisions[0]}")
    assert "api says fine" in ledger and "check says fine" in ledger and "says ok" not in ledger
    journal = read_events(tmp_path / "runners" / "integrate-again" / ".squad" / "runs" / run / "events.jsonl")
    event = next(e for e in journal if e["type"] == "run_branch_rebuilt")
    assert event["tip"] == pushed and event["base"] == base and len(event["dropped"]) == 2

    # integrating the same fragments again changes nothing
    done = job("integrate-rerun", "integrate", run, "--model", second)
    assert done.returncode == 0 and json.loads(done.stdout)["merged"] == ["api", "check"], done.stderr
    assert sh_git(remote, "rev-parse", target).strip() == rebuilt


def test_the_survey_tells_stale_merges_from_current_ones_and_squads_commits_from_others(repo: Path) -> None:
    """By structure: what each of squad's merges brought in, who made each commit, what a one-parent one changed."""

    def as_(who: str, *args: str) -> None:
        """git as `who` (the environment's identity beats -c user.*, as squad's own commits rely on)."""
        done = run_git(repo, *args, env=identity(who, f"{who}@squad.invalid"))
        assert done.returncode == 0, done.stderr

    def commit(who: str, path: str, text: str, *, on: str) -> str:
        git(repo, "checkout", "-q", "--detach", on)
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
        git(repo, "add", "-A")
        as_(who, "commit", "-qm", f"{who}: {path}")
        return git(repo, "rev-parse", "HEAD").strip()

    def merge(into: str, sha: str, task: str) -> str:
        git(repo, "checkout", "-q", "--detach", into)
        as_("squad", "merge", "-q", "--no-ff", "-m", f"squad: merge task {task} (x)", sha)
        return git(repo, "rev-parse", "HEAD").strip()

    base, ledger = git(repo, "rev-parse", "HEAD").strip(), "decisions/run.md"
    a1 = commit("backend", "a.txt", "1\n", on=base)
    b1 = commit("tester", "b.txt", "1\n", on=a1)  # built on a's approved commit, as a dependent task is
    b2 = commit("tester", "b.txt", "2\n", on=a1)
    tip = merge(merge(base, a1, "a"), b1, "b")
    tip = commit("squad", ledger, "decided\n", on=tip)

    assert survey_run_branch(repo, base, tip, {a1, b1}, ledger) == BranchSurvey()
    # b redone: its merge brought b1 (and a1, merged already): stale; a's merge still holds a1
    stale = survey_run_branch(repo, base, tip, {a1, b2}, ledger)
    assert [s.split(" ", 1)[1] for s in stale.stale] == ["squad: merge task b (x)"] and not stale.foreign
    # a conflict round's commit, built on the run branch and the task's approved commit, holds that commit
    c1 = commit("backend", "c.txt", "1\n", on=base)
    git(repo, "checkout", "-q", "--detach", tip)
    as_("backend", "merge", "-q", "--no-ff", "--no-edit", c1)
    resolved = git(repo, "rev-parse", "HEAD").strip()
    tip = merge(tip, resolved, "c")
    assert survey_run_branch(repo, base, tip, {a1, b1, c1}, ledger) == BranchSurvey()
    # a person's commit, and squad's identity on a one-parent commit that is not the decisions file: foreign
    before = tip
    tip = commit("pat", "NOTES.md", "n\n", on=tip)
    tip = commit("squad", "other.md", "x\n", on=tip)
    survey = survey_run_branch(repo, base, tip, {a1, b2, c1}, ledger)
    assert [s.split(" ", 1)[1] for s in survey.foreign] == ["pat: NOTES.md", "squad: other.md"]
    assert len(survey.stale) == 1 and survey.keep == before
