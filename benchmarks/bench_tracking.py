"""What recording a run's processes costs (squad.infra.processes): git commands and test commands, with and without.

During a run every git command and every command of `run_command` gets a record file in the run folder while it
runs (pid, start time), so a resume can end what a killed squad left. Measured side by side, interleaved:

- `run_git("rev-parse", "HEAD")` — the cheapest git command squad runs, hundreds of times per run;
- `run_command([python, "-c", "pass"])` — the cheapest test command;
- the record alone (write it, remove it) for a live process, which is all tracking adds to each process.

Run: `python benchmarks/run.py tracking`.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import git

from squad.infra import processes
from squad.infra.git import run_git
from squad.infra.process import run_command

ROUNDS = 9
GIT_CALLS = 100
RECORDS = 2000
COMMANDS = 20


def _timed(fn: Callable[[], None], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        (repo / "a.txt").write_text("a\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "one")
        registry = processes.ProcessRegistry(Path(tmp) / "procs")

        def git_call() -> None:
            run_git(repo, "rev-parse", "HEAD")

        def command() -> None:
            asyncio.run(run_command([sys.executable, "-c", "pass"], cwd=tmp, timeout_s=30, max_output_bytes=1024))

        results: dict[str, list[float]] = {k: [] for k in ("git", "git tracked", "cmd", "cmd tracked")}
        for _ in range(ROUNDS):  # interleaved, so drift on a shared machine hits both sides alike
            results["git"].append(_timed(git_call, GIT_CALLS))
            with processes.tracking(registry):
                results["git tracked"].append(_timed(git_call, GIT_CALLS))
            results["cmd"].append(_timed(command, COMMANDS))
            with processes.tracking(registry):
                results["cmd tracked"].append(_timed(command, COMMANDS))
        med = {k: statistics.median(v) * 1000 for k, v in results.items()}
        live = subprocess.Popen(["sleep", "30"])
        try:

            def record() -> None:
                registry.remove(registry.add(live.pid, ["git", "x"], session=False))

            per_record = min(_timed(record, RECORDS) for _ in range(3)) * 1e6
        finally:
            live.kill()
            live.wait()
        print(f"record + remove: {per_record:.0f} us per process")
        for plain, tracked in (("git", "git tracked"), ("cmd", "cmd tracked")):
            print(
                f"{plain:>4}: {med[plain]:.2f} ms untracked, {med[tracked]:.2f} ms tracked "
                f"(+{med[tracked] - med[plain]:.2f} ms, x{med[tracked] / med[plain]:.2f})"
            )
