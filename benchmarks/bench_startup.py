"""Startup time of the CLI: `squad --help` and `squad --version` against a bare `python -c pass`.

The CLI is used interactively and in CI steps, so its fixed cost matters; the lazy command registry
keeps anthropic, GitPython, pydantic, yaml and rich out of these paths. Prints the median of N runs of
each, measured interleaved in one session so machine load hits all of them alike, and the ratio to
bare Python. Target: `squad --help` <= 150 ms median.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

RUNS = 21
TARGET_MS = 150.0

CASES: dict[str, list[str]] = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "squad --help": [sys.executable, "-m", "squad", "--help"],
    "squad --version": [sys.executable, "-m", "squad", "--version"],
    "import squad.config": [sys.executable, "-c", "import squad.config"],
}


def _once(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - start) * 1000


def main() -> None:
    samples: dict[str, list[float]] = {name: [] for name in CASES}
    for argv in CASES.values():  # warm the OS file cache and .pyc files
        _once(argv)
    for _ in range(RUNS):
        for name, argv in CASES.items():
            samples[name].append(_once(argv))
    base = statistics.median(samples["python -c pass"])
    print(f"median of {RUNS} runs each (interleaved); 'import squad.config' shows what laziness saves")
    for name, values in samples.items():
        med = statistics.median(values)
        print(f"  {name:<22} {med:7.1f} ms   x{med / base:4.1f} vs bare python")
    help_ms = statistics.median(samples["squad --help"])
    verdict = "within" if help_ms <= TARGET_MS else "OVER"
    print(f"  squad --help is {verdict} the {TARGET_MS:.0f} ms target ({help_ms:.1f} ms)")


if __name__ == "__main__":
    main()
