"""Locks under the git common dir: one helper for threads and processes alike, and the per-run lock.

FileLock alone makes waiting threads poll every 50 ms, so concurrent leases formed a convoy (the last
one waited ~300 ms for ~80 ms of git work, benchmarks/bench_run.py). Threads therefore first queue on
an in-process lock for the same file, which hands over the moment its holder releases; then they take
the FileLock, which only other processes contend for. A process killed with SIGKILL releases its
FileLocks at once (the kernel drops its fcntl locks).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import filelock

from squad.errors import SquadError

_THREAD_LOCKS: dict[Path, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


class LockTimeoutError(SquadError):
    """A lock was not free within its timeout."""


class RunLockedError(SquadError):
    """Another live squad process works on this run."""

    exit_code = 2


def _thread_lock(path: Path) -> threading.Lock:
    with _THREAD_LOCKS_GUARD:
        return _THREAD_LOCKS.setdefault(path.absolute(), threading.Lock())


@contextlib.contextmanager
def hold(path: Path, timeout: float) -> Iterator[None]:
    """Hold the lock file `path` against other threads of this process and other processes.

    Raises:
        LockTimeoutError: not free within `timeout` seconds (negative: wait for ever).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    local = _thread_lock(path)
    if not local.acquire(timeout=-1 if timeout < 0 else timeout):
        raise _timeout(path, timeout)
    try:
        left = -1.0 if timeout < 0 else max(0.0, deadline - time.monotonic())
        lock = filelock.FileLock(path, timeout=left)
        try:
            lock.acquire()
        except filelock.Timeout as exc:
            raise _timeout(path, timeout) from exc
        try:
            yield
        finally:
            lock.release()
    finally:
        local.release()


def _timeout(path: Path, timeout: float) -> LockTimeoutError:
    return LockTimeoutError(
        f"timed out after {timeout:g}s waiting for the lock {path}",
        hint="another squad process holds it; wait for it to finish, or stop it and retry",
    )


class RunLock:
    """Exclusive use of one run by one process: `squad run`, `--resume`, `gc --run` and `squad integrate`.

    The lock is `<common dir>/squad/locks/run-<run>.lock`; beside it `run-<run>.pid` names the holder, so
    the second process can say who has the run. Not re-entrant.
    """

    def __init__(self, locks_dir: Path, run: str) -> None:
        self.path = locks_dir / f"run-{run}.lock"
        self.pid_path = locks_dir / f"run-{run}.pid"
        self.run = run
        self._lock = filelock.FileLock(self.path, timeout=0)

    def acquire(self) -> RunLock:
        """Take the lock or raise RunLockedError naming the holder's pid."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except filelock.Timeout:
            holder = self.holder()
            who = f"process {holder}" if holder else "another process"
            raise RunLockedError(
                f"run {self.run} is in use by {who}",
                hint="wait for it to finish (or stop it), then try again; two processes on one run would "
                "race on its worktrees and spend twice",
            ) from None
        self.pid_path.write_text(f"{os.getpid()}\n", encoding="ascii")
        return self

    def release(self) -> None:
        with contextlib.suppress(OSError):
            self.pid_path.unlink()
        self._lock.release()

    def holder(self) -> int | None:
        """The pid written by the process holding the lock, if readable."""
        try:
            return int(self.pid_path.read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            return None

    @property
    def held_elsewhere(self) -> bool:
        """True when some process holds the lock now (checked without keeping it)."""
        try:
            self._lock.acquire()
        except filelock.Timeout:
            return True
        self._lock.release()
        return False

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
