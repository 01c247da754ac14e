"""`squad integrate --pr`: the run's pull request, opened as `squad run --pr` opens it (squad.github.publish).

All three commands in ONE checkout (jobs that share a repository), a local bare `origin`, the loopback GitHub
server, and a git spy that shows where the token went.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import git
from github_server import GitHubServer
from test_github_engine import REPO, _commit_config, _git_spy, _run_script, gh_repo

__all__ = ["gh_repo"]
TOKEN = "ghp_matrixprtoken_0123456789abcdef"


def _squad(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("GITHUB_TOKEN", "GH_TOKEN", "GITHUB_REPOSITORY")}
    return subprocess.run(
        [sys.executable, "-m", "squad", *args],
        cwd=root,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=100,
    )


@pytest.mark.timeout(180)
def test_integrate_opens_the_runs_pull_request(tmp_path: Path, gh_repo: dict[str, Any]) -> None:
    root, bare = gh_repo["root"], gh_repo["bare"]
    _commit_config(root, ["lead", "backend", "critic"], f'[commands]\ntest = "{sys.executable} -m compileall -q ."\n')
    git(root, "push", "-q", "origin", "main")
    model = _run_script(tmp_path)
    plan = _squad(root, "plan", "add a ping endpoint", "--out", str(tmp_path / "plan"), "--model", model)
    assert plan.returncode == 0, plan.stderr
    run = next(line.split()[1].rstrip(":") for line in plan.stdout.splitlines() if line.startswith("run "))
    task = _squad(root, "task", run, "ping", "--from", str(tmp_path / "plan"), "--out", str(tmp_path / "ping"),
                  "--model", model, GITHUB_TOKEN=TOKEN)  # fmt: skip
    assert task.returncode == 0, task.stderr + task.stdout
    refused = _squad(root, "integrate", run, "--from", str(tmp_path / "plan"), "--pr")  # no token: nothing done
    assert refused.returncode == 2 and "--pr needs a GitHub token" in refused.stderr
    assert not (root / ".squad" / "runs" / run / "events.jsonl").read_text().count("fragments_merged")

    spybin, spylog = _git_spy(tmp_path)
    with GitHubServer(REPO) as gh:
        env = {
            "GITHUB_TOKEN": TOKEN,
            "GITHUB_API_URL": gh.url,
            "GITHUB_REPOSITORY": REPO,
            "PATH": f"{spybin}{os.pathsep}{os.environ['PATH']}",
        }
        out = _squad(root, "integrate", run, "--from", str(tmp_path / "plan"), str(tmp_path / "ping"), "--pr", **env)
        assert out.returncode == 0, out.stdout + out.stderr
        [created] = gh.created_pulls
    assert created["head"] == f"squad/{run}" and created["base"] == "main" and created["draft"] is False
    body = gh.pulls[created["number"]]["body"]
    assert "| `ping` | backend | critic | approve | approved |" in body and "Ping is a plain function" in body
    assert body.startswith("Opened by squad (`--pr`) from run ") and "squad run" not in body  # any command's PR
    assert "def ping():" in git(bare, "show", f"squad/{run}:app.py")
    # the token: never on a git command line, never in .git/config; only pushes carried it (as a header)
    log = spylog.read_text()
    assert TOKEN not in log and TOKEN not in (root / ".git" / "config").read_text()
    header = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    chunks = log.split("--- git ")
    argv = [c.split("\n", 1)[0] for c in chunks[1:]]
    carrying = [argv[i] for i in range(len(argv)) if header in chunks[i].split("\n", 1)[-1]]
    commands = {a.removeprefix("-c core.hooksPath=/dev/null ").split()[0] for a in carrying}
    assert commands == {"ls-remote", "push"}, carrying  # what the branch was, then the push itself


def _two_task_script(tmp_path: Path) -> str:
    """`ping` is done and approved; `pong` has no script, so its job fails: a partial run. Its retry has one."""
    call = lambda name, **args: {"tool_calls": [{"name": name, "input": args}]}  # noqa: E731
    plan = [
        {"id": "ping", "agent": "backend", "goal": "Add ping() to app.py.", "files": ["app.py"]},
        {"id": "pong", "agent": "backend", "goal": "Add pong.py.", "files": ["pong.py"]},
    ]
    verdict = call("submit_verdict", verdict="approve", summary="Fine.", findings=[])
    scripts = [
        {"agent": "lead", "task": "plan", "turns": [call("submit_plan", tasks=plan)]},
        {
            "agent": "backend",
            "task": "ping",
            "turns": [
                call(
                    "edit_file",
                    path="app.py",
                    old="def health():\n",
                    new="def ping():\n    return 1\n\n\ndef health():\n",
                ),
                call("finish", summary="Added ping()"),
            ],
        },
        {"agent": "critic", "task": "ping", "turns": [verdict]},
        # `squad run --resume RUN --retry pong` works in lease pong-r1
        {
            "agent": "backend",
            "task": "pong-r1",
            "turns": [call("write_file", path="pong.py", content="P = 1\n"), call("finish", summary="Added pong.py")],
        },
        {"agent": "critic", "task": "pong-r1", "turns": [verdict]},
    ]
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "scripts": scripts}))
    return f"scripted:{path}"


@pytest.mark.timeout(240)
def test_a_partial_runs_draft_pr_from_a_detached_ci_checkout_updated_by_a_rerun_and_a_retry(
    tmp_path: Path, gh_repo: dict[str, Any]
) -> None:
    """What the matrix workflow's integrate job does: a fresh checkout detached at the base commit (no local branch),
    `squad integrate --pr --base BRANCH`. A partial run still gets its (draft) PR, then exits 1; a rerun of the job
    updates that PR instead of failing to open a second one; the failed task retried locally completes it.
    `squad task` and `squad integrate` write job summaries."""
    root, bare = gh_repo["root"], gh_repo["bare"]
    _commit_config(root, ["lead", "backend", "critic"], f'[commands]\ntest = "{sys.executable} -m compileall -q ."\n')
    git(root, "push", "-q", "origin", "main")
    base = git(root, "rev-parse", "HEAD").strip()
    model, summary = _two_task_script(tmp_path), tmp_path / "summary.md"
    plan = _squad(root, "plan", "ping and pong", "--out", str(tmp_path / "plan"), "--model", model)
    assert plan.returncode == 0, plan.stderr
    run = next(line.split()[1].rstrip(":") for line in plan.stdout.splitlines() if line.startswith("run "))
    for task, code in (("ping", 0), ("pong", 1)):
        out = _squad(root, "task", run, task, "--from", str(tmp_path / "plan"), "--out", str(tmp_path / task),
                     "--model", model, GITHUB_STEP_SUMMARY=str(summary))  # fmt: skip
        assert out.returncode == code, out.stderr + out.stdout
    jobs = summary.read_text()
    assert f"### squad task `ping` of run `{run}`: approved" in jobs and f"pushed to `squad/{run}--ping`" in jobs
    assert f"### squad task `pong` of run `{run}`: failed" in jobs and "no script entry" in jobs

    ci = tmp_path / "ci"
    git(tmp_path, "clone", "-q", str(bare), str(ci))
    git(ci, "checkout", "-q", "--detach", base)
    for branch in git(ci, "for-each-ref", "--format=%(refname:short)", "refs/heads").split():
        git(ci, "branch", "-q", "-D", branch)  # actions/checkout of a sha leaves no local branch
    frags = [str(tmp_path / name) for name in ("plan", "ping", "pong")]
    with GitHubServer(REPO) as gh:
        env = {"GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": gh.url, "GITHUB_REPOSITORY": REPO}
        no_base = _squad(ci, "integrate", run, "--from", *frags, "--pr", **env)
        assert no_base.returncode == 2 and "needs --base BRANCH" in no_base.stderr
        assert not (ci / ".squad" / "runs" / run).exists()  # refused before anything was done
        env["GITHUB_STEP_SUMMARY"] = str(summary)
        first = _squad(ci, "integrate", run, "--from", *frags, "--pr", "--base", "main", **env)
        assert first.returncode == 1, first.stdout + first.stderr  # partial: the job fails, after the PR
        [created] = gh.created_pulls
        first_body = gh.pulls[created["number"]]["body"]
        again = _squad(ci, "integrate", run, "--from", *frags, "--pr", "--base", "main", **env)
        assert again.returncode == 1, again.stdout + again.stderr
        assert len(gh.created_pulls) == 1 and gh.requests("PATCH", rf"/pulls/{created['number']}$")
        # the failed task, retried on a person's machine (README "Beyond one machine"): the jobs' fragments rebuild
        # the run's journal there, continuing the squad/<run> the job pushed; the retry merges and updates the PR
        local = tmp_path / "local"
        git(tmp_path, "clone", "-q", str(bare), str(local))
        git(local, "checkout", "-q", "-B", "main", base)
        rebuilt = _squad(local, "integrate", run, "--from", *frags)
        assert rebuilt.returncode == 1 and f"--resume {run} --retry pong" in rebuilt.stdout, rebuilt.stdout
        retried = _squad(local, "run", "--resume", run, "--retry", "pong", "--model", model, "--pr", **env)
        assert retried.returncode == 0, retried.stdout + retried.stderr
        assert len(gh.created_pulls) == 1 and len(gh.requests("PATCH", rf"/pulls/{created['number']}$")) == 2
    assert created["head"] == f"squad/{run}" and created["base"] == "main" and created["draft"] is True
    assert "| `ping` | backend | critic | approve | approved |" in first_body and "| `pong` |" in first_body
    assert "def ping():" in git(bare, "show", f"squad/{run}:app.py")
    assert git(bare, "show", f"squad/{run}:pong.py") == "P = 1\n"
    assert "| `pong` | backend | critic | approve | approved |" in gh.pulls[created["number"]]["body"]
    assert f"### squad run `{run}`: partial" in summary.read_text()
