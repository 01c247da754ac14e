"""The baseline: the test command runs once on the base commit before anyone is paid to work.

Through the CLI in a child process with the scripted model and a real pytest suite: a failing baseline stops
the run before any model call; with --allow-failing-baseline an unchanged failure does not veto an approval
and a new failure does (pytest's junit XML names the failing tests).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import git

PY = sys.executable
CHARTERS = {
    "backend": "name: backend\nrole: backend engineer\ntools: [read, write, team]\n",
    "reviewer": "name: reviewer\nrole: code reviewer\ntools: [read]\nreviewer: true\n",
}
APPROVE = {"name": "submit_verdict", "input": {"verdict": "approve", "summary": "Fine.", "findings": []}}

pytestmark = pytest.mark.timeout(120)


def _setup(repo: Path, settings: str = "") -> None:
    agents = repo / ".squad" / "agents"
    agents.mkdir(parents=True)
    for name, front in CHARTERS.items():
        (agents / f"{name}.md").write_text(f"---\n{front}---\nYou are the {name}.\n")
    (repo / ".squad" / "squad.toml").write_text(
        f'[commands]\ntest = "{PY} -m pytest -q -p no:cacheprovider"\n[review]\nmax_rounds = 0\n' + settings
    )
    (repo / "tests").mkdir()
    (repo / "tests" / "test_old.py").write_text("def test_ok():\n    pass\n\n\ndef test_broken():\n    assert False\n")
    (repo / ".gitignore").write_text(".squad/runs/\n__pycache__/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a suite with one failing test")


def _run(
    repo: Path, tmp_path: Path, writes: dict[str, str], *flags: str
) -> tuple[subprocess.CompletedProcess[str], Any]:
    calls = [{"tool_calls": [{"name": "write_file", "input": {"path": p, "content": c}}]} for p, c in writes.items()]
    script = {
        "version": 1,
        "scripts": [
            {"agent": "backend", "turns": [*calls, {"tool_calls": [{"name": "finish", "input": {"summary": "did"}}]}]},
            {"agent": "reviewer", "turns": [{"tool_calls": [APPROVE]}]},
        ],
    }
    path = tmp_path / f"script-{len(list(tmp_path.glob('script-*')))}.yaml"
    path.write_text(yaml.safe_dump(script))
    out = subprocess.run(
        [PY, "-m", "squad", "run", "change it", "--agent", "backend", "--json", "--model", f"scripted:{path}", *flags],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=100,
    )
    return out, json.loads(out.stdout) if out.stdout.startswith("{") else None


def _events(repo: Path, run: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (repo / ".squad" / "runs" / run / "events.jsonl").read_text().splitlines()]


def test_a_failing_baseline_stops_the_run_before_any_model_call(repo: Path, tmp_path: Path) -> None:
    _setup(repo)
    out, report = _run(repo, tmp_path, {"a.py": "A = 1\n"})
    assert out.returncode == 1, out.stderr
    assert report["status"] == "baseline_failed"
    assert "the tests fail on the base commit" in report["error"] and "no specialist was started" in report["error"]
    assert "--allow-failing-baseline" in report["next_command"]
    events = _events(repo, report["run"])
    assert [e for e in events if e["type"] == "model_call"] == []  # nobody was paid
    baseline = next(e for e in events if e["type"] == "tests")
    assert baseline["where"] == "baseline" and baseline["failures"] == ["tests.test_old::test_broken"]
    log = subprocess.run([PY, "-m", "squad", "log", report["run"]], cwd=repo, capture_output=True, text=True)
    assert "tests baseline: " in log.stdout and "FAIL" in log.stdout


def test_allowed_failing_baseline_vetoes_only_new_failures(repo: Path, tmp_path: Path) -> None:
    _setup(repo)
    # An unchanged failure does not veto the approval, and the integrated result fails only as before: done.
    out, report = _run(repo, tmp_path, {"a.py": "A = 1\n"}, "--allow-failing-baseline")
    assert out.returncode == 0, out.stderr + out.stdout
    assert report["status"] == "done" and report["tasks"][0]["status"] == "approved"
    # A new failing test does veto it, and the finding names it.
    out, report = _run(
        repo, tmp_path, {"tests/test_new.py": "def test_fresh():\n    assert 1 == 2\n"}, "--allow-failing-baseline"
    )
    assert out.returncode == 1, out.stderr + out.stdout
    (task,) = report["tasks"]
    assert task["status"] == "needs_human"
    (verdict,) = task["verdicts"]
    assert verdict["verdict"] == "reject"
    assert "tests.test_new::test_fresh" in verdict["findings"][-1]["message"]
    assert "test_broken" not in verdict["findings"][-1]["message"]


def test_the_baseline_can_be_turned_off(repo: Path, tmp_path: Path) -> None:
    _setup(repo, "")
    (repo / ".squad" / "squad.toml").write_text(
        (repo / ".squad" / "squad.toml").read_text().replace("[commands]\n", "[commands]\nbaseline = false\n")
    )
    git(repo, "commit", "-qam", "no baseline")
    out, report = _run(repo, tmp_path, {"a.py": "A = 1\n"})
    assert report["status"] == "needs_human", out.stderr  # the old failure vetoes: nothing to compare with
    assert not [e for e in _events(repo, report["run"]) if e.get("where") == "baseline"]
