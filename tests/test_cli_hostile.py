"""Text is data: task texts, roles, decision titles, model output, model and agent names that look like rich
markup (`[/]`, `[bold]`, `[link=...]`, `[models]`) are printed verbatim by every command, on a terminal too.

Each command runs as a child process on a pseudo-terminal (so the rich tables and the live view are what is
tested, not the plain pipe output) with a wide, colourless terminal; the output must hold the hostile text as
it was written, and nothing may crash.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import git

pytestmark = pytest.mark.timeout(300)

HOSTILE = "[/] [bold]b[/bold] [link=https://evil.invalid]l[/link] [models]"
H_YAML = json.dumps(HOSTILE)  # a JSON string is a YAML string

SCRIPT = f"""version: 1
scripts:
  - agent: lead
    task: plan
    turns:
      - tool_calls: [{{name: submit_plan, input: {{tasks: [{{id: api, agent: backend, goal: {H_YAML}}}]}}}}]
  - agent: backend
    task: api
    turns:
      - tool_calls: [{{name: record_decision, input: {{title: {H_YAML}, decision: {H_YAML}}}}}]
      - tool_calls: [{{name: write_file, input: {{path: api.py, content: {H_YAML}}}}}]
      - tool_calls: [{{name: finish, input: {{summary: {H_YAML}}}}}]
  - agent: reviewer
    task: api
    turns:
      - tool_calls: [{{name: submit_verdict, input: {{verdict: approve, summary: {H_YAML}, findings: []}}}}]
"""


def _tty(cwd: Path, *args: str) -> tuple[int, str]:
    """Run squad with stdout and stderr on a pseudo-terminal; its exit code and everything it printed."""
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "300", "LINES": "80", "TERM": "dumb"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "squad", *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    code = proc.wait(timeout=120)
    return code, b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")


def _check(cwd: Path, *args: str, code: int = 0, expect: str = HOSTILE) -> str:
    got, out = _tty(cwd, *args)
    assert "Traceback" not in out and "MarkupError" not in out, out
    assert got == code, f"squad {' '.join(args)} exited {got}:\n{out}"
    assert expect in out, f"squad {' '.join(args)} did not print {expect!r} verbatim:\n{out}"
    return out


def test_hostile_text_is_printed_verbatim_by_every_command(repo: Path, tmp_path: Path) -> None:
    agents = repo / ".squad" / "agents"
    agents.mkdir(parents=True)
    (agents / "lead.md").write_text("---\nname: lead\nrole: lead\ntools: [read]\n---\nL.\n")
    (agents / "backend.md").write_text(f"---\nname: backend\nrole: {H_YAML}\ntools: [read, write, team]\n---\nB.\n")
    (agents / "reviewer.md").write_text("---\nname: reviewer\nrole: reviewer\ntools: [read]\nreviewer: true\n---\nR.\n")
    (repo / ".squad" / "squad.toml").write_text('[commands]\ntest = ""\n')
    (repo / ".gitignore").write_text(".squad/runs/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "team")
    script = tmp_path / "script.yaml"
    script.write_text(SCRIPT)
    model = f"scripted:{script}"

    _check(repo, "plan", HOSTILE, "--model", model)  # the plan table: the goal the lead wrote
    out = _check(repo, "run", HOSTILE, "--model", model)  # the live view, then the report
    assert out.count(HOSTILE) >= 2  # the task text and the decision title the model wrote
    run = json.loads(subprocess.run([sys.executable, "-m", "squad", "runs", "--json"], cwd=repo, capture_output=True,
                                    text=True, check=True).stdout)[0]["run"]  # fmt: skip
    _check(repo, "runs")
    _check(repo, "log")
    _check(repo, "log", "--all")
    _check(repo, "log", "--task", "api", "--verbose")
    _check(repo, "report", run, expect="report.html")

    # a journal is a file: a hand-edited (or newer) line with markup in its names is shown as it is
    events = repo / ".squad" / "runs" / run / "events.jsonl"
    record = {"ts": 1.0, "type": "model_call", "v": 2, "agent": "[bold]eve", "task": "api", "model": HOSTILE}
    events.write_text(events.read_text() + json.dumps(record) + "\n")
    out = _check(repo, "cost", run)
    assert "[bold]eve" in out

    added = subprocess.run(
        [sys.executable, "-m", "squad", "decisions", "add", "--title", HOSTILE, "--decision", HOSTILE],
        cwd=repo, capture_output=True, text=True, check=True,
    )  # fmt: skip
    _check(repo, "decisions", "list")
    _check(repo, "decisions", "search", "models")
    _check(repo, "decisions", "show", added.stdout.strip())
    _check(repo, "team")

    # errors and their hints: square brackets in hints name settings sections
    out = _check(repo, "run", "x", "--model", "[bold]m", code=2, expect="unknown model name '[bold]m'")
    assert "hint: check [models] in .squad/squad.toml" in out
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    (other / ".squad").mkdir()
    (other / ".squad" / "squad.toml").write_text(f"[models]\ndefault = {json.dumps(HOSTILE)}\n")
    _check(other, "doctor", code=1)
