"""Ledger throughput: appends/s alone vs under 8-process contention, and parse time of a 10,000-entry tree.

Appends pay for a lock, a full read + rewrite, and two fsyncs (file and directory), so they are
measured on fresh files of the same final size. Contending writers are started first and released
together on a "go" line, so process start-up is not counted.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from squad.infra.ledger import Ledger, render_entry

WRITERS = 8
TOTAL_APPENDS = 400
TREE_FILES = 100
ENTRIES_PER_FILE = 100
PARSE_AIM_S = 0.5

_CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from squad.infra.ledger import Ledger

    ledger = Ledger(Path(sys.argv[1]), lock_timeout=300)
    file, count, name = Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    print("ready", flush=True)
    sys.stdin.readline()
    for i in range(count):
        ledger.append(file, title=f"{name}-{i}", decision="contended append " * 8, agent=name)
    """
)


def _git_repo(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    return path


def _single(root: Path, count: int) -> float:
    ledger = Ledger(root)
    file = root / "decisions" / "single.md"
    start = time.perf_counter()
    for i in range(count):
        ledger.append(file, title=f"single-{i}", decision="contended append " * 8, agent="solo")
    return time.perf_counter() - start


def _contended(root: Path, writers: int, count: int) -> float:
    file = root / "decisions" / "contended.md"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(root), str(file), str(count), f"w{n}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(writers)
    ]
    for proc in procs:
        assert proc.stdout and proc.stdout.readline().strip() == "ready"
    start = time.perf_counter()
    for proc in procs:
        assert proc.stdin
        proc.stdin.write("go\n")
        proc.stdin.close()
    codes = [proc.wait() for proc in procs]
    elapsed = time.perf_counter() - start
    for proc in procs:
        if proc.stdout:
            proc.stdout.close()
    if any(codes):
        raise SystemExit(f"a contending writer failed: exit codes {codes}")
    parsed = Ledger(root).parse_file(file)
    if len(parsed.entries) != writers * count or parsed.problems:
        raise SystemExit(f"contended ledger is wrong: {len(parsed.entries)} entries, {len(parsed.problems)} problems")
    return elapsed


def _tree(root: Path) -> int:
    """Write TREE_FILES run files of ENTRIES_PER_FILE entries each, directly (no lock: setup only)."""
    n = 0
    for f in range(TREE_FILES):
        run = f"20261122-{f:06d}-abcd"
        path = root / "decisions" / "2026" / "11" / f"2026-11-22-{run}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        parts = [f"# Decisions — run {run}, 2026-11-22\n"]
        for e in range(ENTRIES_PER_FILE):
            n += 1
            parts.append(
                "\n"
                + render_entry(
                    id=f"01JD{n:022d}",
                    title=f"Decision {n} about module {e % 17}",
                    date="2026-11-22T06:31:07Z",
                    agent=f"agent{e % 5}",
                    run=run,
                    context="Some context sentence explaining why. " * 3,
                    decision="What we chose and the main reason for it.\n\nA second paragraph. " * 2,
                    consequences="What follows; trade-offs accepted.",
                    tags=("perf", f"m{e % 17}"),
                )
            )
        path.write_text("".join(parts), encoding="utf-8")
    return n


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = _git_repo(Path(tmp) / "repo")
        per_writer = TOTAL_APPENDS // WRITERS
        single_s = _single(root, TOTAL_APPENDS)
        contended_s = _contended(root, WRITERS, per_writer)
        single_rate = TOTAL_APPENDS / single_s
        contended_rate = WRITERS * per_writer / contended_s
        print(f"append, 1 process:            {single_rate:8.0f} appends/s ({TOTAL_APPENDS} appends, {single_s:.2f}s)")
        print(
            f"append, {WRITERS} processes contending: {contended_rate:8.0f} appends/s "
            f"({WRITERS}x{per_writer} appends, {contended_s:.2f}s)"
        )
        print(f"ratio contended/single:       {contended_rate / single_rate:8.2f}x")

    with tempfile.TemporaryDirectory() as tmp:
        root = _git_repo(Path(tmp) / "repo")
        count = _tree(root)
        ledger = Ledger(root)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            parsed = ledger.parse()
            times.append(time.perf_counter() - start)
        if len(parsed.entries) != count or parsed.problems:
            raise SystemExit(
                f"parse is wrong: {len(parsed.entries)} of {count} entries, {len(parsed.problems)} problems"
            )
        best = min(times)
        verdict = "within" if best < PARSE_AIM_S else "OVER"
        print(
            f"parse {count} entries in {TREE_FILES} files: {best:.3f}s best of 3 "
            f"({count / best:,.0f} entries/s); aim {PARSE_AIM_S}s: {verdict} ({best / PARSE_AIM_S:.2f}x of aim)"
        )
        start = time.perf_counter()
        problems = ledger.check()
        check_s = time.perf_counter() - start
        start = time.perf_counter()
        digest = ledger.digest(4000)
        digest_s = time.perf_counter() - start
        print(
            f"check (no base): {check_s:.3f}s, {len(problems)} problems; digest(4000 tokens): {digest_s:.3f}s, "
            f"{len(digest)} chars"
        )


if __name__ == "__main__":
    main()
