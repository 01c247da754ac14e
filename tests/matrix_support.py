"""Simulated CI runners for a run spread over jobs: a bare remote, one fresh clone per job, artifacts as folders.

Shared by tests/test_matrix_e2e.py and benchmarks/bench_matrix.py. Every job is a real `squad` process in its
own clone; branches travel through the bare remote (git push/fetch over the local transport), fragments
through plain folders, as `actions/upload-artifact` and `download-artifact` would carry them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

PY = sys.executable

CHARTERS = {
    "lead": "name: lead\nrole: tech lead\ntools: [read, team]\n",
    "backend": "name: backend\nrole: backend engineer\ntools: [read, write, run, team]\nowns: ['*.py']\n",
    "tester": "name: tester\nrole: test engineer\ntools: [read, write, team]\nowns: ['*.md']\n",
    "reviewer": "name: reviewer\nrole: code reviewer\ntools: [read]\nreviewer: true\n",
}


def sh_git(cwd: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if out.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed in {cwd}: {out.stderr}")
    return out.stdout


def make_remote(root: Path, *, settings: str = "", test: str = f"{PY} -c pass") -> Path:
    """A bare repository whose `main` holds a squad team (lead, backend, tester, reviewer) and its settings."""
    remote = root / "remote.git"
    sh_git(root, "init", "-q", "--bare", "-b", "main", str(remote))
    seed = root / "seed"
    sh_git(root, "clone", "-q", str(remote), str(seed))
    agents = seed / ".squad" / "agents"
    agents.mkdir(parents=True)
    for name, front in CHARTERS.items():
        (agents / f"{name}.md").write_text(f"---\n{front}---\nYou are the {name}.\n")
    (seed / ".squad" / "squad.toml").write_text(f'[commands]\ntest = "{test}"\n' + settings)
    (seed / ".gitignore").write_text(".squad/runs/\n__pycache__/\n")
    (seed / "README.md").write_text("# demo\n")
    sh_git(seed, "add", "-A")
    sh_git(seed, "commit", "-qm", "squad setup")
    sh_git(seed, "push", "-q", "origin", "HEAD:main")
    return remote


def runner(remote: Path, root: Path, name: str) -> Path:
    """A fresh runner: a new clone of the remote (what actions/checkout gives a job)."""
    path = root / "runners" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    sh_git(path.parent, "clone", "-q", str(remote), str(path))
    return path


def squad(
    cwd: Path, *args: str, timeout: float = 180, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "squad", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or dict(os.environ),
    )


def popen(cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PY, "-m", "squad", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(proc: subprocess.Popen[str], timeout: float = 180) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def read_events(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file, skipping a torn line."""
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def wait_for(
    path: Path, proc: subprocess.Popen[str], match: Callable[[dict[str, Any]], bool], timeout: float = 90
) -> None:
    """Poll a journal until an event matches (never a guessed sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(match(e) for e in read_events(path)):
            return
        if proc.poll() is not None:
            raise AssertionError(f"squad exited ({proc.returncode}) before the event: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"no matching event in {path} within {timeout}s")


def tool(name: str, **args: Any) -> dict[str, Any]:
    return {"name": name, "input": args}


APPROVE = tool("submit_verdict", verdict="approve", summary="Looks right.", findings=[])


def write_script(path: Path, script: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump(script))
    return f"scripted:{path}"
