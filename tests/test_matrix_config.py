"""A run spread over CI jobs needs its `.squad/` config committed at the base commit: every job after the plan checks
that commit out on a fresh runner. `squad plan --out` refuses (exit 2) a work tree whose config the base commit does
not hold, and a task or integrate job without a team says to commit `.squad/` (not "run `squad init`").
"""

from __future__ import annotations

from pathlib import Path

from matrix_support import APPROVE, make_remote, runner, sh_git, squad, tool, write_script

PLAN = [{"id": "api", "agent": "backend", "goal": "Add app.py.", "files": ["app.py"]}]


def _plan(cwd: Path, out: Path, model: str) -> tuple[int, str]:
    done = squad(cwd, "plan", "add app.py", "--out", str(out), "--model", model)
    return done.returncode, done.stdout + done.stderr


def test_plan_out_refuses_config_the_base_commit_does_not_hold(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    model = write_script(tmp_path / "team.yaml", {"version": 1, "scripts": [
        {"agent": "lead", "task": "plan", "turns": [{"tool_calls": [tool("submit_plan", tasks=PLAN)]}]},
        {"agent": "reviewer", "task": "api", "turns": [{"tool_calls": [APPROVE]}]},
    ]})  # fmt: skip
    work = runner(remote, tmp_path, "plan")
    agents = work / ".squad" / "agents"
    cases = {
        "new charter": lambda: (agents / "docs.md").write_text("---\nname: docs\nrole: writer\ntools: [read]\n---\n"),
        "changed charter": lambda: (agents / "backend.md").write_text(
            (agents / "backend.md").read_text().replace("backend engineer", "engineer")
        ),
        "deleted charter": lambda: (agents / "tester.md").unlink(),
    }
    expected = {
        "new charter": ".squad/agents/docs.md (not committed)",
        "changed charter": ".squad/agents/backend.md (changed)",
        "deleted charter": ".squad/agents/tester.md (not here)",
    }
    for name, change in cases.items():
        change()
        code, out = _plan(work, tmp_path / "plan", model)
        assert code == 2, f"{name}: {out}"
        assert expected[name] in out and "commit .squad/" in out, f"{name}: {out}"
        assert "Traceback" not in out and not (tmp_path / "plan").exists() and not (work / ".squad" / "runs").exists()
        sh_git(work, "checkout", "-q", "--", ".squad")
        sh_git(work, "clean", "-qfd", ".squad")

    # the whole folder ignored by git (never committed): the same refusal, naming every file
    bare = runner(remote, tmp_path, "ignored")
    sh_git(bare, "rm", "-rq", "--cached", ".squad")
    (bare / ".gitignore").write_text(".squad/\n")
    sh_git(bare, "commit", "-qam", "keep .squad/ local")
    code, out = _plan(bare, tmp_path / "plan", model)
    assert code == 2 and ".squad/squad.toml (not committed)" in out and ".squad/agents/lead.md (not committed)" in out

    # committed: planned
    code, out = _plan(work, tmp_path / "plan", model)
    assert code == 0, out


def test_a_job_on_a_checkout_without_the_team_says_to_commit_it(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    job = runner(remote, tmp_path, "task")
    sh_git(job, "rm", "-rq", ".squad")
    sh_git(job, "commit", "-qm", "no team")  # what a runner checks out when .squad/ was never committed
    (job / "plan").mkdir()
    run = "20261122-063107-a1b2"
    for argv in (["task", run, "api", "--from", "plan", "--out", "out"], ["integrate", run, "--from", "plan"]):
        done = squad(job, *argv)
        out = done.stdout + done.stderr
        assert done.returncode == 2, out
        assert "commit .squad/ (the plan's checkout had it but the base commit does not)" in out, out
        assert "squad init" not in out and "Traceback" not in out
