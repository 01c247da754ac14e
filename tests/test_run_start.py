"""Starting a run, through the CLI in child processes: what it refuses before it writes anything (exit 2, no run
folder), how a run that failed before its plan is listed, and what it warns about on stderr (another run of the
repository still at work, uncommitted changes the team will not see) without touching --json stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import git
from messages_server import MessagesServer

pytestmark = pytest.mark.timeout(120)

SCRIPT = """version: 1
scripts:
  - agent: backend
    turns:
      - latency_ms: LATENCY
        tool_calls: [{name: write_file, input: {path: a.py, content: "A = 1\\n"}}]
      - tool_calls: [{name: finish, input: {summary: wrote a.py}}]
  - agent: reviewer
    turns:
      - tool_calls: [{name: submit_verdict, input: {verdict: approve, summary: ok, findings: []}}]
"""


NO_TESTS = '[commands]\ntest = ""\n'


def _setup(repo: Path, settings: str = "", *, commit: bool = True) -> None:
    agents = repo / ".squad" / "agents"
    agents.mkdir(parents=True)
    (agents / "lead.md").write_text("---\nname: lead\nrole: lead\ntools: [read]\n---\nLead.\n")
    (agents / "backend.md").write_text("---\nname: backend\nrole: backend\ntools: [read, write]\n---\nBackend.\n")
    (agents / "reviewer.md").write_text("---\nname: reviewer\nrole: reviewer\ntools: [read]\nreviewer: true\n---\nR.\n")
    (repo / ".squad" / "squad.toml").write_text(NO_TESTS + settings)
    (repo / ".gitignore").write_text(".squad/runs/\n")
    if commit:
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "squad setup")


def _squad(repo: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "squad", *args], cwd=repo, capture_output=True, text=True, timeout=90, env=env
    )


def _runs(repo: Path) -> list[str]:
    folder = repo / ".squad" / "runs"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_a_run_that_cannot_start_exits_2_and_writes_no_run(repo: Path, tmp_path: Path) -> None:
    _setup(repo, '[models]\ndefault = "claude-sonnet-5-5"\n')
    no_key = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")}
    cases = [
        (["run", "add a thing"], no_key, "ANTHROPIC_API_KEY is not set, so model 'claude-sonnet-5-5' cannot be called"),
        (["plan", "add a thing"], no_key, "ANTHROPIC_API_KEY is not set"),
        (["run", "add a thing", "--model", "nonsense"], None, "unknown model name 'nonsense'"),
        (["plan", "add a thing", "--model", "nonsense"], None, "unknown model name 'nonsense'"),
        (["run", "x", "--model", "claude-typo", "--max-cost", "1"], None, "no price is known for model 'claude-typo'"),
        (["run", "x", "--model", f"scripted:{tmp_path / 'none.yaml'}"], None, "cannot read model script"),
        (["plan", ""], None, "the task is empty"),
        (["plan", "   "], None, "the task is empty"),
        (["run", "  "], None, "give a task"),
    ]
    for args, env, message in cases:
        out = _squad(repo, *args, env=env)
        assert (out.returncode, out.stdout) == (2, ""), (args, out.stderr)
        assert message in out.stderr and "Traceback" not in out.stderr, (args, out.stderr)
    assert _runs(repo) == []  # nothing to clean up, nothing in `squad runs`


def test_a_repository_without_commits_is_refused(tmp_path: Path) -> None:
    repo = tmp_path / "fresh"
    repo.mkdir()
    git(repo, "init", "-q")
    _setup(repo, commit=False)
    script = tmp_path / "s.yaml"
    script.write_text(SCRIPT.replace("LATENCY", "0"))
    for args in (["run", "x", "--agent", "backend"], ["plan", "x"]):
        out = _squad(repo, *args, "--model", f"scripted:{script}")
        assert out.returncode == 2, out.stderr
        assert "has no commit for the team to work from" in out.stderr and "make a first commit" in out.stderr
    assert _runs(repo) == []


def test_a_model_the_api_does_not_know_exits_2_and_is_listed_as_not_started(repo: Path) -> None:
    _setup(repo, '[models]\ndefault = "claude-sonnet-5-typo"\n')  # priced by its prefix; the API says 404
    with MessagesServer(models={"claude-sonnet-5-5"}) as server:
        env = {**os.environ, "ANTHROPIC_BASE_URL": server.url}
        out = _squad(repo, "run", "add a thing", env=env)
    assert out.returncode == 2, out.stderr
    assert "unknown model name 'claude-sonnet-5-typo' (404" in out.stderr
    listed = _squad(repo, "runs").stdout.split("\t")
    assert listed[2] == "not started" and listed[4].strip() == "add a thing"


def test_warnings_on_stderr_for_a_second_run_and_uncommitted_changes(repo: Path, tmp_path: Path) -> None:
    _setup(repo)
    slow, quick = tmp_path / "slow.yaml", tmp_path / "quick.yaml"
    slow.write_text(SCRIPT.replace("LATENCY", "60000"))
    quick.write_text(SCRIPT.replace("LATENCY", "0"))
    first = subprocess.Popen(
        [sys.executable, "-m", "squad", "run", "first", "--agent", "backend", "--model", f"scripted:{slow}"],
        cwd=repo,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while not any((repo / ".squad" / "runs").glob("*/transcripts/*")):  # the first run is at work
            assert first.poll() is None, "the first run ended before it started work"
            time.sleep(0.05)
        running = _runs(repo)[0]
        (repo / "README.md").write_text("# changed, not committed\n")
        (repo / "new.txt").write_text("untracked\n")
        (repo / ".squad" / "squad.toml").write_text(NO_TESTS + "# read from the work tree\n")
        second = _squad(repo, "run", "second", "--agent", "backend", "--json", "--model", f"scripted:{quick}")
    finally:
        first.kill()
        first.wait()
    assert second.returncode == 0, second.stderr + second.stdout
    assert json.loads(second.stdout)["status"] == "done"  # stdout holds the report and nothing else
    assert f"warning: run {running} is still running in this repository by process {first.pid}" in second.stderr
    assert "warning: uncommitted changes (README.md, new.txt): the team works from HEAD" in second.stderr

    # once the first run is gone, and with a clean tree, nothing is said
    git(repo, "checkout", "--", "README.md", ".squad/squad.toml")
    (repo / "new.txt").unlink()
    third = _squad(repo, "run", "third", "--agent", "backend", "--json", "--model", f"scripted:{quick}")
    assert third.returncode == 0 and "warning" not in third.stderr, third.stderr
