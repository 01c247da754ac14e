"""`squad log --task T --verbose`: one task's transcript from a real `squad run` (child process, scripted
model, real tools in real worktrees), and what the journal keeps of tool results: bounded, secrets redacted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import git

pytestmark = pytest.mark.timeout(120)

DEPLOY_TOKEN = "tok-9f8e7d6c5b4a-deploy"  # a secret by its variable's name only
API_KEY = "sk-ant-api03-" + "Q" * 40  # a secret by its shape
DB_URL = "postgres://app:hunter2-pw@db.internal/prod"  # a URL with a password

SCRIPT = """version: 1
scripts:
  - agent: backend
    task: api
    turns:
      - tool_calls: [{name: edit_file, input: {path: app.py, old: "no such text", new: "x"}}]
      - tool_calls: [{name: read_file, input: {path: settings.txt}}]
      - tool_calls: [{name: write_file, input: {path: app.py, content: "def health():\\n    return 'ok'\\n"}}]
      - tool_calls: [{name: finish, input: {summary: "health() added"}}]
  - agent: reviewer
    task: api
    turns:
      - tool_calls: [{name: read_file, input: {path: app.py}}]
      - tool_calls: [{name: submit_verdict, input: {verdict: approve, summary: "fine", findings: []}}]
"""


def _squad(repo: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "squad", *args], cwd=repo, capture_output=True, text=True, timeout=90, env=env
    )


def test_a_tasks_verbose_log_is_its_whole_transcript_with_secrets_redacted(repo: Path, tmp_path: Path) -> None:
    agents = repo / ".squad" / "agents"
    agents.mkdir(parents=True)
    (agents / "backend.md").write_text("---\nname: backend\nrole: backend\ntools: [read, write]\n---\nB.\n")
    (agents / "reviewer.md").write_text("---\nname: reviewer\nrole: reviewer\ntools: [read]\nreviewer: true\n---\nR.\n")
    (repo / ".squad" / "squad.toml").write_text('[commands]\ntest = ""\n')
    (repo / ".gitignore").write_text(".squad/runs/\n")
    (repo / "app.py").write_text("")
    (repo / "settings.txt").write_text(f"deploy = {DEPLOY_TOKEN}\nkey = {API_KEY}\ndb = {DB_URL}\nport = 8080\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "setup")
    script = tmp_path / "script.yaml"
    script.write_text(SCRIPT)
    env = {**os.environ, "DEPLOY_TOKEN": DEPLOY_TOKEN}
    out = _squad(repo, "run", "api", "--agent", "backend", "--json", "--model", f"scripted:{script}", env=env)
    assert out.returncode == 0, out.stderr + out.stdout
    run = json.loads(out.stdout)["run"]

    log = _squad(repo, "log", "--task", "api", "--verbose", env=env)
    assert log.returncode == 0, log.stderr
    text = log.stdout
    lines = text.splitlines()
    assert lines[0] == f"run {run}, task api"
    # both sessions, each introduced by who worked where, in order: the author's round, then the review
    author = text.index("── backend in worktree api ──")
    review = text.index("── reviewer in worktree api ──")
    assert author < text.index("task_committed") < review < text.index("verdict reviewer api APPROVE")
    # the failed edit: its arguments, ERROR, and the tool's error message right under it
    failed = next(i for i, line in enumerate(lines) if "tool edit_file" in line)
    assert '{"path": "app.py", "old": "no such text", "new": "x"} -> ERROR' in lines[failed]
    assert lines[failed + 1].strip().startswith("| `old` was not found in app.py.")
    # model calls, turns, each session's stop
    assert text.count("model_call backend api scripted") == 4 and text.count("model_call reviewer api") == 2
    assert "  turn 4" in text and "stopped: finished after 4 turn(s)" in text
    assert "tool write_file" in text and "tool submit_verdict" in text
    # what the read_file returned, with every secret redacted (by the variable's value and by shape)
    assert "| " in text and "port = 8080" in text and text.count("[redacted]") >= 3
    folder = repo / ".squad" / "runs" / run
    journaled = "".join(p.read_text() for p in folder.rglob("*.jsonl"))
    assert "port = 8080" in journaled  # the result is in the journal ...
    for secret in (DEPLOY_TOKEN, API_KEY, "hunter2-pw"):
        assert secret not in journaled and secret not in text  # ... without its secrets

    # without --verbose, the task's own steps only; --json is the task's events
    short = _squad(repo, "log", "--task", "api").stdout
    assert "task_started" in short and "tool edit_file" not in short
    events = json.loads(_squad(repo, "log", "--task", "api", "--json").stdout)
    assert events and {e.get("task") for e in events} == {"api"}
    unknown = _squad(repo, "log", "--task", "nope")
    assert unknown.returncode == 2 and "has no task 'nope'" in unknown.stderr and "its tasks: api" in unknown.stderr
