"""The ledger under real concurrent processes, and a writer killed with SIGKILL in the middle of an append."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from filelock import FileLock, Timeout

from squad.infra.ledger import Ledger

RUN = "20261122-063107-ab12"
WRITERS = 8
APPENDS = 100

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from squad.infra.ledger import Ledger

    root, file, writer, count, run = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
    ledger = Ledger(root, lock_timeout=60)
    for i in range(count):
        ledger.append(file, title=f"{writer}-{i}", decision=f"decision {i} of {writer}\\nsecond line",
                      context="contention test", agent=writer, run=run)
    """
)

# Holds the lock in the middle of a real append: os.replace (the last step, after the temp file is written
# and fsynced) announces itself and sleeps, so the parent can SIGKILL the child at a known point.
KILLED_WRITER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from squad.infra.ledger import Ledger

    def stuck_replace(src, dst):
        print("writing", src, flush=True)
        time.sleep(120)

    os.replace = stuck_replace
    Ledger(Path(sys.argv[1])).append(Path(sys.argv[2]), title="never lands", decision="killed mid-append")
    """
)


@pytest.mark.timeout(120)
def test_eight_processes_append_800_intact_entries(repo: Path) -> None:
    ledger = Ledger(repo)
    file = ledger.run_file(RUN)
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(repo), str(file), f"w{n}", str(APPENDS), RUN])
        for n in range(WRITERS)
    ]
    assert [p.wait(timeout=110) for p in procs] == [0] * WRITERS

    parsed = ledger.parse()
    assert parsed.problems == []
    assert len(parsed.entries) == WRITERS * APPENDS
    assert len({e.id for e in parsed.entries}) == WRITERS * APPENDS
    assert {e.title for e in parsed.entries} == {f"w{n}-{i}" for n in range(WRITERS) for i in range(APPENDS)}
    for entry in parsed.entries:  # every entry intact, not interleaved with another writer's text
        n, i = entry.title.split("-")
        assert entry.decision == f"decision {i} of {n}\nsecond line" and entry.agent == n and entry.run == RUN
    for n in range(WRITERS):  # each writer's own entries stay in its order
        mine = [int(e.title.split("-")[1]) for e in parsed.entries if e.agent == f"w{n}"]
        assert mine == list(range(APPENDS))
    assert file.read_text().count("\n## ") == WRITERS * APPENDS
    assert ledger.check() == []
    assert list(file.parent.glob("*.tmp")) == []


@pytest.mark.timeout(60)
def test_writer_killed_mid_append_leaves_ledger_intact_and_unlocked(repo: Path) -> None:
    ledger = Ledger(repo, lock_timeout=5)
    file = ledger.run_file(RUN)
    for i in range(3):
        ledger.append(file, title=f"before-{i}", decision="d")
    before = file.read_bytes()

    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(repo), str(file)], stdout=subprocess.PIPE, text=True
    )
    try:
        line = child.stdout.readline() if child.stdout else ""
        assert line.startswith("writing "), f"child did not reach the write: {line!r}"
        temp = Path(line.split(" ", 1)[1].strip())
        assert temp.exists() and "never lands" in temp.read_text()  # the new content is half-way to its place
        with pytest.raises(Timeout):  # and the child really holds the lock
            FileLock(str(ledger.lock_path(file)), timeout=0).acquire()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        if child.stdout:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL

    assert file.read_bytes() == before
    parsed = ledger.parse()
    assert parsed.problems == [] and [e.title for e in parsed.entries] == ["before-0", "before-1", "before-2"]

    # The kernel dropped the dead writer's flock: the lock is free at once (timeout 0 would raise otherwise).
    with FileLock(str(ledger.lock_path(file)), timeout=0):
        pass
    after = Ledger(repo, lock_timeout=0.5).append(file, title="after", decision="d")
    assert [e.id for e in ledger.parse().entries][-1] == after.id
    assert not temp.exists()  # the dead writer's temp file was cleaned up under the lock
    assert ledger.check() == []


@pytest.mark.timeout(60)
def test_threads_in_one_process_do_not_interleave(repo: Path) -> None:
    # Each append opens its own lock file descriptor, and flock excludes other descriptors of the same process.
    from concurrent.futures import ThreadPoolExecutor

    ledger = Ledger(repo)
    file = ledger.run_file(RUN)

    def write(n: int) -> None:
        for i in range(25):
            ledger.append(file, title=f"t{n}-{i}", decision="d")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(4)))
    parsed = ledger.parse()
    assert parsed.problems == [] and len({e.id for e in parsed.entries}) == 100
