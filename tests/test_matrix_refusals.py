"""What the jobs of a run spread over CI jobs refuse before they start, writing nothing: an `--out` folder that holds
another job's fragment (writing there would lose it), a model they could not call, a run whose plan fragment is
not in `--from`.

Real `squad` processes in fresh clones of a bare remote (tests/matrix_support.py), the scripted model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from matrix_support import APPROVE, make_remote, runner, sh_git, squad, tool, write_script

pytestmark = pytest.mark.timeout(300)

PLAN = [
    {"id": "changes", "agent": "backend", "goal": "Add app.py.", "files": ["app.py"]},
    {"id": "docs", "agent": "tester", "goal": "Write DOCS.md.", "files": ["DOCS.md"]},
]
SCRIPT = {
    "version": 1,
    "scripts": [
        {"agent": "lead", "task": "plan", "turns": [{"tool_calls": [tool("submit_plan", tasks=PLAN)]}]},
        {
            "agent": "backend",
            "task": "changes",
            "turns": [
                {"tool_calls": [tool("write_file", path="app.py", content="X = 1\n")]},
                {"tool_calls": [tool("finish", summary="app.py")]},
            ],
        },
        {"agent": "reviewer", "task": "changes", "turns": [{"tool_calls": [APPROVE]}]},
    ],
}
OTHER_RUN = "20261122-063107-a1b2"  # well formed; no job made it


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A remote, the team's script, and the plan fragment of one run (`art/plan`), made once for this module."""
    root = tmp_path_factory.mktemp("matrix-refusals")
    remote = make_remote(root)
    model = write_script(root / "team.yaml", SCRIPT)
    art = root / "art"
    out = squad(runner(remote, root, "plan"), "plan", "two things", "--out", str(art / "plan"), "--model", model)
    assert out.returncode == 0, out.stderr
    run = json.loads((art / "plan" / "fragment.json").read_text())["run"]
    return {"root": root, "remote": remote, "model": model, "plan": art / "plan", "run": run}


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _worktrees(clone: Path) -> list[str]:
    """The clone's worktrees besides its own (squad's live under <git-common-dir>/squad/worktrees/)."""
    return [
        line for line in sh_git(clone, "worktree", "list", "--porcelain").splitlines() if line.startswith("worktree")
    ][1:]


def test_a_job_never_replaces_another_jobs_fragment(planned: dict[str, Any], tmp_path: Path) -> None:
    run, model, plan, remote = planned["run"], planned["model"], planned["plan"], planned["remote"]
    plan_before = _snapshot(plan)

    # another run's plan over this run's: refused before the run starts (no run folder, no model call)
    again = runner(remote, tmp_path, "plan-again")
    out = squad(again, "plan", "something else", "--out", str(plan), "--matrix", "--model", model)
    assert out.returncode == 2 and out.stdout == "", out.stderr
    assert f"--out {plan} holds the plan fragment of run {run}; writing the plan fragment of run " in out.stderr
    assert "would replace it" in out.stderr and "choose another --out folder" in out.stderr
    assert "Traceback" not in out.stderr
    assert _snapshot(plan) == plan_before and not (again / ".squad" / "runs").exists()

    # one task's fragment over another task's: refused before the task job starts
    job = ["--from", str(plan), "--model", model]
    first = runner(remote, tmp_path, "changes")
    done = squad(first, "task", run, "changes", "--out", str(tmp_path / "changes"), *job)
    assert done.returncode == 0, done.stderr + done.stdout
    changes = _snapshot(tmp_path / "changes")
    docs = runner(remote, tmp_path, "docs")
    for out_dir, there in (
        (tmp_path / "changes", f"the fragment of task 'changes' of run {run}"),
        (plan, f"the plan fragment of run {run}"),
    ):
        refused = squad(docs, "task", run, "docs", "--out", str(out_dir), *job)
        assert refused.returncode == 2, refused.stderr + refused.stdout
        assert f"--out {out_dir} holds {there}; writing the fragment of task 'docs' of run {run}" in refused.stderr
    assert _snapshot(tmp_path / "changes") == changes and _snapshot(plan) == plan_before
    assert not (docs / ".squad" / "runs").exists() and not _worktrees(docs)
    assert not sh_git(remote, "branch", "--list", f"squad/{run}--docs").strip()  # nothing pushed

    # the same job's fragment is replaced by its rerun
    rerun = squad(first, "task", run, "changes", "--out", str(tmp_path / "changes"), *job)
    assert rerun.returncode == 0, rerun.stderr + rerun.stdout
    assert (tmp_path / "changes" / "fragment.json").is_file()


NO_KEY = "no key"
NO_SCRIPT = "scripted:/nonexistent.yaml"


@pytest.mark.parametrize("case", [NO_KEY, NO_SCRIPT])
def test_jobs_check_their_models_before_they_write_anything(planned: dict[str, Any], tmp_path: Path, case: str) -> None:
    run, plan = planned["run"], planned["plan"]
    clone = runner(planned["remote"], tmp_path, "job")
    env = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")}
    model = [] if case == NO_KEY else ["--model", case]
    expected = (
        "ANTHROPIC_API_KEY is not set, so model 'claude-"
        if case == NO_KEY
        else "/nonexistent.yaml: cannot read model script: No such file or directory"
    )
    commands = {
        "plan": ["plan", "x", "--out", str(tmp_path / "plan"), "--matrix", *model],
        "task": ["task", run, "changes", "--from", str(plan), "--out", str(tmp_path / "changes"), *model],
        "integrate": ["integrate", run, "--from", str(plan), *model],
    }
    refs = sh_git(planned["remote"], "for-each-ref")
    for name, args in commands.items():
        out = squad(clone, *args, env=env if case == NO_KEY else None)
        assert out.returncode == 2, f"{name}: {out.stderr}{out.stdout}"
        assert expected in out.stderr and "Traceback" not in out.stderr, f"{name}: {out.stderr}"
        assert out.stdout == "", f"{name}: {out.stdout}"
    # nothing written: no run folder (so nothing in `squad runs`), no worktree, no fragment, nothing pushed
    assert not (clone / ".squad" / "runs").exists()
    assert not _worktrees(clone) and not (tmp_path / "plan").exists() and not (tmp_path / "changes").exists()
    assert sh_git(planned["remote"], "for-each-ref") == refs


def test_integrate_names_the_missing_plan_fragment_of_a_wrong_run(planned: dict[str, Any], tmp_path: Path) -> None:
    clone = runner(planned["remote"], tmp_path, "integrate")
    out = squad(clone, "integrate", OTHER_RUN, "--from", str(planned["plan"]), "--model", planned["model"])
    assert out.returncode == 2, out.stderr + out.stdout
    assert f"no plan fragment of run {OTHER_RUN} in --from" in out.stderr
    assert "pass its fragments with --from" not in out.stderr  # it was passed
    assert not (clone / ".squad" / "runs").exists()
