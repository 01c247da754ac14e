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
