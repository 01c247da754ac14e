"""Test-only kill points: make squad SIGKILL itself at a chosen, reproducible moment (off unless a test asks).

The crash-consistency harness (tests/test_crash_resume.py) must kill a run at exact places — right after the
journal writes the Nth event of a type, inside a tool's file write, inside a git commit, inside the ledger
commit — and then prove that `squad run --resume` ends with the same result. Random sleeps would make a
failure impossible to reproduce, so squad calls `point(name)` at those places and the journal calls
`after_event(type)` after writing each event; both do nothing unless BOTH variables are set:

- `SQUAD_TEST_FAULTS=1` — the switch. It is only ever set by squad's own test suite; nothing else reads it.
- `SQUAD_TEST_KILL_AT=<kind>:<name>:<n>` — where: `event:<event type>:<n>` (after the nth event of that
  type this process writes) or `point:<point name>:<n>` (the nth time this process passes that point).

Counts are per process, so each invocation of a resumed run can be given its own kill point. A kill point may
first `leave` a file, standing for what a process killed along with squad leaves there (git's `index.lock`
when the whole process group dies or the machine loses power).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path

ENABLE = "SQUAD_TEST_FAULTS"
KILL_AT = "SQUAD_TEST_KILL_AT"

_lock = threading.Lock()
_counts: dict[tuple[str, str], int] = {}
_target: tuple[str, str, int] | bool | None = False  # False: not read yet; None: off


def _wanted() -> tuple[str, str, int] | None:
    global _target
    if _target is False:
        _target = None
        spec = os.environ.get(KILL_AT, "")
        if os.environ.get(ENABLE) == "1" and spec:
            kind, _, rest = spec.partition(":")
            name, _, count = rest.rpartition(":")
            if kind in ("event", "point") and name and count.isdigit():
                _target = (kind, name, int(count))
    return _target  # type: ignore[return-value]


def _hit(kind: str, name: str, leave: Callable[[], Path] | None) -> None:
    target = _wanted()
    if target is None or target[:2] != (kind, name):
        return
    with _lock:
        n = _counts[kind, name] = _counts.get((kind, name), 0) + 1
    if n != target[2]:
        return
    if leave is not None:
        # O_EXCL, as git's lockfile.c creates its locks: a half-written lock is what a killed git leaves.
        fd = os.open(leave(), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, b"DIRC")
        os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)


def point(name: str, *, leave: Callable[[], Path] | None = None) -> None:
    """A kill point (see the module docstring); returns at once unless the test switch is on. `leave` gives the
    file to create first (called only when the point fires)."""
    if _target is not None:
        _hit("point", name, leave)


def after_event(kind: str) -> None:
    """Called by the journal after it wrote an event of type `kind`."""
    if _target is not None:
        _hit("event", kind, None)
