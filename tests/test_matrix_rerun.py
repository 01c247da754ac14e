"""GitHub's "Re-run failed jobs" reruns every job that needs a failed one: approved tasks reuse their fragment.

Simulated runners as in tests/test_matrix_e2e.py (a bare remote, one fresh clone per job, artifacts as folders,
every job a real `squad` process). Each rerun gets every fragment so far in --from, its own earlier one included,
as the workflow's download-artifact step gives it. A rerun's scripted team has no entry for a task that must not
be done again: had the job called a model for it, the task would have failed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from matrix_support import APPROVE, finish, make_remote, popen, read_events, runner, sh_git, squad, tool, write_script

PLAN = [
    {"id": "api", "agent": "backend", "goal": "Add app.py with health().", "files": ["app.py"]},
    {"id": "flaky", "agent": "tester", "goal": "Write NOTES.md.", "files": ["NOTES.md"]},
    {"id": "check", "agent": "tester", "goal": "check.py uses health().", "files": ["check.py"], "depends_on": ["api"]},
]


def _entry(agent: str, task: str, *turns: list[dict[str, Any]]) -> dict[str, Any]:
    return {"agent": agent, "task": task, "turns": [{"tool_calls": calls} for calls in turns]}


def _work(agent: str, task: str, path: str, content: str) -> list[dict[str, Any]]:
    """A specialist writing one file, then its reviewer approving."""
    done = [tool("finish", summary=f"wrote {path}")]
    return [
        _entry(agent, task, [tool("write_file", path=path, content=content)], done),
        _entry("reviewer", task, [APPROVE]),
    ]


def _team(tmp: Path, name: str, *entries: dict[str, Any]) -> str:
    plan = _entry("lead", "plan", [tool("submit_plan", tasks=PLAN)])
    return write_script(tmp / f"{name}.yaml", {"version": 1, "scripts": [plan, *entries]})


def _records(fragment: Path) -> list[dict[str, Any]]:
    return read_events(fragment / "events.jsonl")


def _approved(fragment: Path, task: str) -> str:
    return next(r["commit"] for r in _records(fragment) if r["type"] == "task_approved" and r["task"] == task)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.timeout(300)
def test_a_rerun_reuses_an_approved_fragment_until_what_it_was_built_on_changes(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    art = tmp_path / "artifacts"  # what download-artifact gives each job: every fragment so far, one folder each
    first = _team(
        tmp_path,
        "first",
        *_work("backend", "api", "app.py", "def health() -> str:\n    return 'ok'\n"),
        {
            "agent": "tester",
            "task": "flaky",
            "turns": [  # its model fails after one turn: the task fails
                {"tool_calls": [tool("write_file", path="NOTES.md", content="notes\n")]},
                {"error": "invalid_request_error"},
            ],
        },
        *_work("tester", "check", "check.py", "import app\n\nassert app.health() == 'ok'\n"),
    )
    plan = squad(runner(remote, tmp_path, "plan"), "plan", "health", "--out", str(art / "plan"), "--model", first)
    assert plan.returncode == 0, plan.stderr
    run = next(r for r in _records(art / "plan") if r["type"] == "run_started")["run"]

    def job(name: str, task: str, model: str, *sources: Path) -> tuple[int, dict[str, Any], Path]:
        """`squad task` on a fresh runner, its fragment to the runner's own out/<task> (as the workflow does)."""
        where = runner(remote, tmp_path, name)
        out = where / "out" / task
        done = squad(where, "task", run, task, "--from", *map(str, sources or [art]), "--out", str(out),
                     "--model", model, "--json")  # fmt: skip
        assert done.returncode in (0, 1), done.stderr + done.stdout
        return done.returncode, json.loads(done.stdout), out

    def upload(out: Path, task: str) -> None:
        """upload-artifact with `overwrite: true`: the job's fragment replaces its earlier one."""
        shutil.rmtree(art / task, ignore_errors=True)
        shutil.copytree(out, art / task)

    # -- the first attempt: wave 1 (api approved, flaky failed), then wave 2 (check, on api's commit)
    procs = {t: popen(runner(remote, tmp_path, t), "task", run, t, "--from", str(art / "plan"), "--out",
                      str(art / t), "--model", first) for t in ("api", "flaky")}  # fmt: skip
    assert {t: finish(p)[0] for t, p in procs.items()} == {"api": 0, "flaky": 1}
    code, _, out = job("check", "check", first)
    assert code == 0
    upload(out, "check")
    api_commit = _approved(art / "api", "api")
    check_commit = sh_git(remote, "rev-parse", f"squad/{run}--check").strip()
    manifest = json.loads((art / "check" / "fragment.json").read_text())
    assert manifest["built_on"] == {"base": sh_git(remote, "rev-parse", "main").strip(), "deps": {"api": api_commit}}
    integ = runner(remote, tmp_path, "integrate")
    before = squad(integ, "integrate", run, "--from", str(art), "--model", first, "--json")
    assert before.returncode == 1 and json.loads(before.stdout)["merged"] == ["api", "check"]
    head = sh_git(remote, "rev-parse", f"squad/{run}").strip()

    # -- "Re-run failed jobs": flaky's job fails again or not, and check's job runs again, its fragment in --from.
    # Its team has no entry for check: the job hands on its earlier fragment without calling a model.
    second = _team(tmp_path, "second", *_work("tester", "flaky", "NOTES.md", "health() says ok.\n"))
    code, outcome, out = job("check-rerun", "check", second)
    assert code == 0 and outcome["reused"] is True and outcome["status"] == "approved"
    assert outcome["commit"] == check_commit and outcome["spend"]["calls"] == 0
    assert _files(out) == _files(art / "check")  # byte for byte: the upload replaces it with itself
    assert sh_git(remote, "rev-parse", f"squad/{run}--check").strip() == check_commit
    assert not (out.parent.parent / ".squad" / "runs").exists()  # no journal, no worktree on that runner
    # --out the very folder it reuses: nothing to write; without --json it says so in a line
    plain = squad(
        out.parent.parent, "task", run, "check", "--from", str(art), "--out", str(art / "check"), "--model", second
    )
    assert plain.returncode == 0 and "reused" in plain.stdout and "no model called" in plain.stdout, plain.stdout
    assert _files(out) == _files(art / "check")

    # the remote's branch moved since (someone pushed to it): not reused, the task is done again (and fails here,
    # its team having no entry for it); then the branch is put back
    sh_git(remote, "branch", "-f", f"squad/{run}--check", "main")
    code, outcome, _ = job("check-moved", "check", second)
    assert code == 1 and outcome["reused"] is False and outcome["status"] == "failed", outcome
    assert "no script entry" in outcome["reason"], outcome["reason"]
    sh_git(remote, "branch", "-f", f"squad/{run}--check", check_commit)

    # a not-approved earlier fragment is not reused: flaky's rerun does its task again, and is approved this time
    assert json.loads((art / "flaky" / "fragment.json").read_text())["status"] == "failed"
    code, outcome, out = job("flaky-rerun", "flaky", second)
    assert code == 0 and outcome["reused"] is False
    assert any(r["type"] == "model_call" for r in _records(out))
    upload(out, "flaky")

    # integrate afterwards merges what is new (flaky) on top of the same api and check
    after = squad(runner(remote, tmp_path, "integrate-again"), "integrate", run, "--from", str(art), "--json",
                  "--model", second)  # fmt: skip
    assert after.returncode == 0, after.stderr + after.stdout
    assert json.loads(after.stdout)["merged"] == ["api", "flaky", "check"]
    sh_git(remote, "merge-base", "--is-ancestor", head, f"squad/{run}")  # continued, not redone
    assert sh_git(remote, "show", f"squad/{run}:check.py") == "import app\n\nassert app.health() == 'ok'\n"

    # -- api is done again (its artifact lost) at another commit: check's fragment no longer holds, so its rerun
    # does the task again, from api's new commit, and replaces its branch
    shutil.rmtree(art / "api")
    third = _team(
        tmp_path,
        "third",
        *_work("backend", "api", "app.py", "def health() -> str:\n    return 'fine'\n"),
        *_work("tester", "check", "check.py", "import app\n\nassert app.health() == 'fine'\n"),
    )
    code, outcome, out = job("api-again", "api", third, art / "plan")
    assert code == 0 and outcome["reused"] is False and outcome["commit"] != api_commit
    upload(out, "api")
    code, outcome, out = job("check-again", "check", third)
    assert code == 0 and outcome["reused"] is False
    start = next(r for r in _records(out) if r["type"] == "task_started")
    assert start["base_commit"] == _approved(art / "api", "api")
    assert sh_git(remote, "rev-parse", f"squad/{run}--check").strip() == outcome["commit"] != check_commit
    assert json.loads((out / "fragment.json").read_text())["built_on"]["deps"] == {"api": start["base_commit"]}
