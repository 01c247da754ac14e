"""`squad run --pr` (issue 16, 4): push squad/<run> to the remote and open one pull request, updated on a rerun.

The real CLI in a child process, a scripted team, a local bare remote, and the loopback GitHub server. Every git
process goes through a spy that logs its argv and environment, to show where the token went.
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
pytestmark = pytest.mark.timeout(120)
TOKEN = "ghp_runprtoken_0123456789abcdef"


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


def test_pr_without_a_token_fails_before_any_model_call(tmp_path: Path, gh_repo: dict[str, Any]) -> None:
    root = gh_repo["root"]
    _commit_config(root, ["lead", "backend", "critic"], "")
    model = _run_script(tmp_path)
    out = _squad(root, "run", "add a ping endpoint", "--model", model, "--pr")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "--pr needs a GitHub token in GITHUB_TOKEN or GH_TOKEN" in out.stderr and "Traceback" not in out.stderr
    assert not (root / ".squad" / "runs").exists() or not any((root / ".squad" / "runs").iterdir())


def test_pr_pushes_the_run_branch_opens_one_pr_and_a_rerun_updates_it(tmp_path: Path, gh_repo: dict[str, Any]) -> None:
    root, bare = gh_repo["root"], gh_repo["bare"]
    _commit_config(root, ["lead", "backend", "critic"], f'[commands]\ntest = "{sys.executable} -m compileall -q ."\n')
    git(root, "push", "-q", "origin", "main")
    model = _run_script(tmp_path)
    spybin, spylog = _git_spy(tmp_path)
    with GitHubServer(REPO) as gh:
        env = {
            "GITHUB_TOKEN": TOKEN,
            "GITHUB_API_URL": gh.url,
            "GITHUB_REPOSITORY": REPO,
            "PATH": f"{spybin}{os.pathsep}{os.environ['PATH']}",
        }
        out = _squad(root, "run", "add a ping endpoint", "--model", model, "--pr", **env)
        assert out.returncode == 0, out.stdout + out.stderr
        [created] = gh.created_pulls
        run_id = created["head"].removeprefix("squad/")
        sha = git(bare, "rev-parse", f"refs/heads/squad/{run_id}").strip()
        pull = gh.pulls[created["number"]]
        assert (
            created["base"] == "main" and created["draft"] is False and sha in git(root, "rev-parse", created["head"])
        )
        body = pull["body"]
        assert f"from run `{run_id}` (status done)" in body
        assert "| `ping` | backend | critic | approve | approved |" in body
        assert "**Ping is a plain function** — `" in body and "by backend" in body
        assert f"(https://github.com/{REPO}/blob/{sha}/decisions/" in body  # the ledger file on the branch
        [state] = gh.comments[created["number"]]
        assert f"branch `squad/{run_id}` at `{sha[:12]}`" in state["body"]

        # a rerun of the finished run (no --model: a model call would fail): the branch pushed again, the SAME PR
        # updated
        again = _squad(root, "run", "--resume", run_id, "--pr", **env)
        assert again.returncode == 0, again.stdout + again.stderr
        assert len(gh.created_pulls) == 1 and len(gh.requests("PATCH", rf"/pulls/{created['number']}$")) == 1
        assert len(gh.comments[created["number"]]) == 1  # squad's state comment updated, not repeated
    assert git(bare, "rev-parse", f"refs/heads/squad/{run_id}").strip() == sha
    assert "def ping():" in git(bare, "show", f"{sha}:app.py")
    # the token: never on a git command line, never in .git/config, in one push's environment (as a header) only
    log = spylog.read_text()
    assert TOKEN not in log and TOKEN not in (root / ".git" / "config").read_text()
    header = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    chunks = log.split("--- git ")  # each call's environment comes before its "--- git <args>" line
    argv = [c.split("\n", 1)[0] for c in chunks[1:]]
    carrying = [argv[i] for i in range(len(argv)) if header in chunks[i].split("\n", 1)[-1]]
    assert carrying and all(" push " in f" {a} " for a in carrying), carrying
