"""Helpers shared by the benchmarks (not a benchmark itself: run.py only runs bench_*.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

#: A fixed identity, so benchmark repos commit on machines with no git user configured.
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@squad.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@squad.invalid",
}


def git(cwd: Path, *args: str) -> str:
    """Run git in `cwd` with the benchmark identity; raise on failure; return stdout."""
    env = {**os.environ, **GIT_IDENTITY}
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env).stdout
