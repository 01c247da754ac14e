"""The processes a run started, recorded while they run, so a resumed run can end what a killed squad left.

A run installs a `ProcessRegistry` (its run folder's `procs/`) with `tracking()` for as long as it works on
the run; every process squad starts meanwhile gets a record file `<pid>.json` for as long as it runs: the
git commands of `squad.infra.git.run_git`, and the commands of `squad.infra.process.run_command` (the test
command, the `run` tool, `[workspace] setup`), which run in their own session. Outside a run (a context
variable holds the registry) nothing is recorded, and both runners work as before.

SIGKILL gives squad no chance to stop its children: a command in its own session keeps running in the
worktree the resumed attempt is about to reset, and a git command finishes on its own. What was running when
squad died is exactly the records left in `procs/`. `reap()`, called on resume under the run lock before
any work, ends them:

- a command in its own session is killed with its whole process group (the command may have exited and
  left children behind: the group is what is killed);
- a git command (in squad's own process group, so it outlived squad) is waited for, briefly, then killed:
  git commands are short, and one allowed to finish leaves its lock files released.

A record names a process by pid AND start time: a pid the system has since given to another process is
never signalled. After `reap()`, no process squad started for the run is alive, and the run lock keeps other
squad processes away — which is what lets the resume treat git's lock files in the run's worktrees as stale.
A command squad starts also carries a mark in its environment (`SQUAD_RUN_PROCESS=<token>`), which every
process it starts inherits, and the mark is recorded BEFORE the command starts: `reap()` also kills every live
process carrying the mark of a record it finds, so neither a kill between starting a command and learning its
pid, nor a grandchild that moved to a session of its own, escapes. (A process that clears its own
environment still can; finding it would need an OS sandbox.)
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

#: How long `reap` waits for a git command the killed squad left running before it kills it.
GIT_GRACE_S = 10.0
#: The environment variable that marks a command squad started, and everything that command starts.
MARK = "SQUAD_RUN_PROCESS"

_ACTIVE: contextvars.ContextVar[ProcessRegistry | None] = contextvars.ContextVar("squad_processes", default=None)


@dataclass(frozen=True)
class Reaped:
    """A recorded process found alive on resume, and what was done: `killed`, or `exited` (waited for)."""

    pid: int
    command: str
    action: Literal["killed", "exited"]


def _start_time(pid: int) -> float | None:
    """When the live (not zombie) process `pid` started, as an identity: None when there is no such process.

    On Linux read from /proc (clock ticks since boot: one small read, as every git command of a run pays it),
    elsewhere through psutil. Only ever compared with values of the same function on the same machine.
    """
    if sys.platform.startswith("linux"):
        try:
            stat = Path(f"/proc/{pid}/stat").read_bytes()
        except OSError:
            return None
        fields = stat[stat.rindex(b")") + 2 :].split()  # the name before ")" may hold spaces
        return None if fields[0] == b"Z" else float(fields[19])  # state (field 3), starttime (field 22)
    import psutil

    try:
        proc = psutil.Process(pid)
        return None if proc.status() == psutil.STATUS_ZOMBIE else float(proc.create_time())
    except psutil.Error:
        return None


_own: tuple[int, float | None] | None = None


def _me() -> tuple[int, float | None]:
    """This process as a record's owner: pid and start time (a pid alone may be a reuse of a dead squad's)."""
    global _own
    if _own is None or _own[0] != os.getpid():
        _own = (os.getpid(), _start_time(os.getpid()))
    return _own


def _same(pid: int, started: float) -> bool:
    """True when `pid` is still the process that started at `started` (not a reuse of its pid)."""
    now = _start_time(pid)
    return now is not None and now == started


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_or_kill(pid: int, started: float, grace_s: float) -> Literal["killed", "exited"]:
    """Wait up to `grace_s` for the process to end (it is not our child: poll), then kill it."""
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not _same(pid, started):
            return "exited"
        time.sleep(0.02)
    if _same(pid, started):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return "killed"


@dataclass(frozen=True)
class Mark:
    """A command about to start: its token (in its environment) and its record file."""

    token: str
    path: Path


def _marked(token: str) -> list[int]:
    """Live processes whose environment carries `MARK=token`."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error, OSError):
            if proc.environ().get(MARK) == token and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
    return found


class ProcessRegistry:
    """The record files of one run's running processes (`<run folder>/procs/`)."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self._made = False

    def _write(self, path: Path, record: dict[str, object]) -> None:
        if not self._made:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._made = True
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, json.dumps(record).encode())
        finally:
            os.close(fd)

    def expect(self, argv: Sequence[str]) -> Mark:
        """Record a command about to start, before its pid exists: its mark finds it (and its children)."""
        token = os.urandom(8).hex()
        path = self.dir / f"mark-{token}.json"
        command = " ".join(str(a) for a in argv)[:300]
        self._write(path, {"mark": token, "owner": list(_me()), "command": command})
        return Mark(token, path)

    def add(self, pid: int, argv: Sequence[str], *, session: bool, mark: Mark | None = None) -> Path | None:
        """Record the running process `pid` (`session`: it leads its own session and process group); the record
        of its `mark` becomes this one."""
        started = _start_time(pid)
        if started is None:  # already gone: nothing to end later (its mark's record stays until it ends)
            return mark.path if mark else None
        record: dict[str, object] = {
            "pid": pid,
            "started": started,
            "session": session,
            "owner": list(_me()),
            "command": " ".join(str(a) for a in argv)[:300],
        }
        if mark is not None:
            record["mark"] = mark.token
        path = self.dir / f"{pid}.json"
        self._write(path, record)
        self.remove(mark.path if mark else None)
        return path

    @staticmethod
    def remove(path: Path | None) -> None:
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def reap(self, *, git_grace_s: float = GIT_GRACE_S) -> list[Reaped]:
        """End every recorded process of an earlier squad process of this run that is still alive.

        Records of this process (its own running children) are left alone. Every other record is removed.
        """
        reaped: list[Reaped] = []
        if not self.dir.is_dir():
            return reaped
        for path in sorted(self.dir.glob("*.json")):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
                owner, command = tuple(record.get("owner") or ()), str(record.get("command", ""))
                token = str(record.get("mark") or "")
                if "pid" not in record and token:  # killed before the command's pid was known
                    if owner != tuple(_me()):
                        reaped += self._kill_marked(token, command)
                        self.remove(path)
                    continue
                pid, started, session = int(record["pid"]), float(record["started"]), bool(record["session"])
            except (OSError, ValueError, KeyError, TypeError):  # torn by the kill: nothing to identify it by
                self.remove(path)
                continue
            if owner == tuple(_me()):
                continue
            if token:  # children that left the group but kept the mark (a new session of their own)
                reaped += self._kill_marked(token, command)
            if session:
                # The group is ours unless its leader's pid now belongs to another process: a pid is not given
                # out again while a process group of that id has members.
                leader_is_other = _start_time(pid) is not None and not _same(pid, started)
                if not leader_is_other and _group_alive(pid):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(pid, signal.SIGKILL)
                    if all(r.pid != pid for r in reaped):
                        reaped.append(Reaped(pid, command, "killed"))
            elif _same(pid, started):
                reaped.append(Reaped(pid, command, _wait_or_kill(pid, started, git_grace_s)))
            self.remove(path)
        return reaped

    @staticmethod
    def _kill_marked(token: str, command: str) -> list[Reaped]:
        killed = []
        for pid in _marked(token):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed.append(Reaped(pid, command, "killed"))
        return killed


@contextlib.contextmanager
def tracking(registry: ProcessRegistry) -> Iterator[ProcessRegistry]:
    """Record the processes started in this context (and the tasks and threads it hands its context to)."""
    token = _ACTIVE.set(registry)
    try:
        yield registry
    finally:
        _ACTIVE.reset(token)


def current() -> ProcessRegistry | None:
    """The registry of the run this code works for, or None outside a run."""
    return _ACTIVE.get()


@contextlib.contextmanager
def tracked(pid: int, argv: Sequence[str], *, session: bool) -> Iterator[None]:
    """Keep a record of process `pid` while the block runs (nothing outside a run)."""
    registry = _ACTIVE.get()
    path = registry.add(pid, argv, session=session) if registry is not None else None
    try:
        yield
    finally:
        ProcessRegistry.remove(path)
