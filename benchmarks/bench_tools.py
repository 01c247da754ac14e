"""Tool-call overhead: Toolbox.call versus the bare operation, side by side in one run.

- read_file of a small file through Toolbox.call (validation, jail, line numbering, cap) vs open+read.
- search over a few hundred files through Toolbox.call (git ls-files, jail per file, thread hop) vs
  `re` over the same files with a precomputed file list.
- compiling the largest patterns `search` accepts (weight at the limit) vs a plain one, and refusing a
  compile bomb (the check alone) vs the same plain compile: the bound on compile time.
Ratios are what to compare; absolute times drift on a shared machine.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import regex
from _common import GIT_IDENTITY

from squad.agents.tools import ToolContext, default_toolbox, patterns
from squad.config import ALL_TOOLS, Settings

N_FILES = 300
#: Patterns at (or just under) the weight limit: the slowest compiles `search` lets through.
WORST_ACCEPTED = [
    r"(?:a{100}){195}",
    r"[\w\W]{10000}x{9999}",
    r"(?i)(?:\p{L}{10}){1800}",
    "(?:" + "|".join(f"w{i:04d}" for i in range(330)) + ")",
]


def make_repo(root: Path) -> str:
    env = {**os.environ, **GIT_IDENTITY}
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    for i in range(N_FILES):
        pkg = root / "src" / f"pkg{i % 10}"
        pkg.mkdir(parents=True, exist_ok=True)
        lines = [f"def function_{i}_{j}(x):\n    return x + {j}  # value {i * j}\n" for j in range(40)]
        if i % 50 == 0:
            lines.append("# NEEDLE: a rare marker\n")
        (pkg / f"mod{i}.py").write_text("".join(lines))
    (root / "small.py").write_text("".join(f"line {i}\n" for i in range(60)))
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "bench"], cwd=root, check=True, env=env)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Best-of-3 mean seconds per call."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeat):
            fn()
        best = min(best, (time.perf_counter() - start) / repeat)
    return best


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "repo"
        base = make_repo(root)
        ctx = ToolContext(root, "bench", "bench", "bench", Settings(), base, None, frozenset(ALL_TOOLS))
        toolbox = default_toolbox()
        loop = asyncio.new_event_loop()
        files = sorted(str(p.relative_to(root)) for p in root.rglob("*.py"))
        needle = re.compile(r"NEEDLE")

        def tool_read() -> None:
            result = loop.run_until_complete(toolbox.call("read_file", {"path": "small.py"}, ctx))
            assert not result.is_error

        def bare_read() -> None:
            with open(root / "small.py", encoding="utf-8") as fh:
                fh.read()

        def tool_search() -> None:
            result = loop.run_until_complete(toolbox.call("search", {"pattern": "NEEDLE"}, ctx))
            assert result.data and result.data["matches"] == N_FILES // 50

        def bare_search() -> None:
            hits = 0
            for name in files:
                with open(root / name, encoding="utf-8") as fh:
                    for line in fh.read().splitlines():
                        hits += bool(needle.search(line))
            assert hits == N_FILES // 50

        def compile_plain() -> None:
            regex.purge()  # the module caches compiled patterns; measure the compile itself
            regex.compile(r"def \w+\(", regex.IGNORECASE)

        def compile_worst() -> None:
            for pattern in WORST_ACCEPTED:
                regex.purge()
                patterns.check(pattern)
                regex.compile(pattern)

        def refuse_bomb() -> None:
            try:
                patterns.check(r"((a{100}){100}){100}")
            except patterns.PatternError:
                return
            raise AssertionError("the bomb was accepted")

        try:
            rows = [
                ("read_file (60-line file)", timed(tool_read, 300), timed(bare_read, 300)),
                (f"search ({len(files)} files)", timed(tool_search, 10), timed(bare_search, 10)),
                (f"compile worst accepted x{len(WORST_ACCEPTED)}", timed(compile_worst, 3), timed(compile_plain, 3)),
                ("refuse a compile bomb", timed(refuse_bomb, 300), timed(compile_plain, 300)),
            ]
        finally:
            loop.close()
    print(f"{'operation':<28}{'Toolbox.call':>14}{'bare':>12}{'ratio':>9}")
    for name, tool_s, bare_s in rows:
        print(f"{name:<28}{tool_s * 1e3:>11.3f} ms{bare_s * 1e3:>9.3f} ms{tool_s / bare_s:>8.1f}x")


if __name__ == "__main__":
    main()
