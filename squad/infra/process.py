"""Running a command squad or an agent starts: no stdin, bounded output, its own process group, no secrets.

One runner for the `run` tool, the test command, and setup commands: the child gets `scrubbed_env()`
(plus, in a squad worktree, what `squad.infra.command_env` adds so it exercises the worktree's code), its own
session (so a timeout or a cancelled run kills the whole group, grandchildren included; during a run
the group is recorded, so a resume after a kill ends it too: squad.infra.processes), and
output is read as it comes and bounded (head and tail kept), so a chatty child never blocks on a full
pipe and memory stays bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shlex
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from squad.errors import SquadError
from squad.infra import faults, processes
from squad.infra.command_env import command_env
from squad.infra.env import scrubbed_env

READ_CHUNK = 64 * 1024
#: After the command exits, how long to wait for a background grandchild still holding its output open.
DRAIN_GRACE_S = 1.0


class CommandError(SquadError):
    """A command could not be started (not found, not executable)."""


@dataclass
class Captured:
    """Output of a command, bounded: the first and last `cap // 2` bytes, and the total size seen."""

    head: bytearray
    tail: bytearray
    total: int = 0

    @property
    def truncated(self) -> bool:
        return self.total > len(self.head) + len(self.tail)

    def text(self, max_chars: int) -> str:
        """The output as text within `max_chars`: mostly its end (where failures and summaries are)."""
        if not self.truncated:
            text = (bytes(self.head) + bytes(self.tail)).decode("utf-8", "replace")
            if len(text) <= max_chars:
                return text
            head, tail = text[: max_chars // 3], text[-(max_chars - max_chars // 3) :]
        else:
            head = bytes(self.head).decode("utf-8", "replace")[: max_chars // 3]
            tail = bytes(self.tail).decode("utf-8", "replace")[-(max_chars - max_chars // 3) :]
        return f"{head}\n[... output omitted: {self.total:,} bytes in total, showing the start and the end ...]\n{tail}"


@dataclass
class Outcome:
    """How a command ended; `notes` are caveats about its environment worth showing with its output."""

    exit_code: int | None
    timed_out: bool
    output: Captured
    duration_s: float
    notes: tuple[str, ...] = ()


def split_command(command: str | list[str]) -> list[str]:
    """argv from a list or a shell-like string (shlex rules, no shell): the one parsing every command gets.

    Raises:
        CommandError: empty, unbalanced quotes, or a NUL byte.
    """
    if isinstance(command, str):
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise CommandError(f"cannot parse command {command!r}: {exc}", hint="check quotes") from None
    else:
        argv = list(command)
    if not argv or not argv[0]:
        raise CommandError("command is empty")
    if any("\x00" in arg for arg in argv):
        raise CommandError("command contains a NUL byte")
    return argv


async def run_command(
    argv: list[str],
    *,
    cwd: os.PathLike[str] | str,
    timeout_s: float,
    max_output_bytes: int,
    max_file_bytes: int = 0,
) -> Outcome:
    """Run argv with stdin closed, stdout+stderr merged and bounded, in its own process group.

    Output beyond `max_output_bytes` is read and dropped (keeping the first and last halves), so the
    child never blocks on a full pipe and memory stays bounded. On timeout or cancellation the whole
    process group gets SIGKILL. `max_file_bytes` (0: no limit) caps the size of any file the command
    and its children write (RLIMIT_FSIZE: a write beyond it fails, or the process gets SIGXFSZ), so one
    runaway command cannot fill the disk with one file. In a squad worktree the environment also gets
    `command_env`'s variables.
    """
    env = scrubbed_env()
    extra = await asyncio.to_thread(command_env, Path(cwd), argv, env)
    env.update(extra.env)
    # A resumed run kills what a killed squad left running (squad.infra.processes); nothing is kept outside a run.
    # The command and everything it starts carry its mark, recorded before it starts: a kill at any instant
    # (even before its pid is known) leaves a record that finds them.
    registry = processes.current()
    mark = registry.expect(argv) if registry is not None else None
    if mark is not None:
        env[processes.MARK] = mark.token
    started = time.monotonic()
    half = max_output_bytes // 2
    captured = Captured(bytearray(), bytearray())
    loop = asyncio.get_running_loop()
    # Our own pipe rather than stdout=PIPE: asyncio's Process.wait() would otherwise also wait for the pipe
    # to close, i.e. hang on any background grandchild that inherited it.
    read_fd, write_fd = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=write_fd,
            stderr=write_fd,
            env=env,
            start_new_session=True,
            preexec_fn=_file_size_limit(max_file_bytes),
        )
    except FileNotFoundError:
        os.close(read_fd)
        processes.ProcessRegistry.remove(mark.path if mark else None)
        raise CommandError(f"command not found: {argv[0]!r}") from None
    except PermissionError:
        os.close(read_fd)
        processes.ProcessRegistry.remove(mark.path if mark else None)
        raise CommandError(f"permission denied running {argv[0]!r}") from None
    finally:
        os.close(write_fd)
    record = registry.add(proc.pid, argv, session=True, mark=mark) if registry is not None else None
    stream = asyncio.StreamReader(limit=READ_CHUNK)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(stream), os.fdopen(read_fd, "rb", buffering=0)
    )

    async def pump() -> None:
        started_output = False
        while chunk := await stream.read(READ_CHUNK):
            if not started_output:  # test-only kill point: the command is running and has said so
                started_output = True
                faults.point("command_output")
            captured.total += len(chunk)
            room = half - len(captured.head)
            if room > 0:
                captured.head += chunk[:room]
                chunk = chunk[room:]
            if chunk:
                captured.tail += chunk
                if len(captured.tail) > half:
                    del captured.tail[: len(captured.tail) - half]

    reader = asyncio.create_task(pump())
    timed_out = False
    try:
        try:
            await asyncio.wait_for(proc.wait(), timeout_s)
        except TimeoutError:
            timed_out = True
        if not timed_out:
            # Output still in the pipe; but a background grandchild may hold it open forever, so bounded.
            remaining = max(0.0, timeout_s - (time.monotonic() - started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(reader), min(DRAIN_GRACE_S, remaining + 0.1))
    finally:
        _kill_group(proc.pid)
        # Reap the child and stop reading, even when this coroutine is being cancelled.
        await asyncio.shield(proc.wait())
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(reader), 0.5)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        transport.close()
        processes.ProcessRegistry.remove(record)
    return Outcome(None if timed_out else proc.returncode, timed_out, captured, time.monotonic() - started, extra.notes)


def _file_size_limit(max_bytes: int) -> Callable[[], None] | None:
    """A preexec function setting RLIMIT_FSIZE in the child (only a syscall: safe between fork and exec)."""
    if max_bytes <= 0:
        return None
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    if hard != resource.RLIM_INFINITY:
        max_bytes = min(max_bytes, hard)  # an unprivileged process cannot raise its hard limit

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return limit


def _kill_group(pgid: int) -> None:
    # start_new_session made the child a session and group leader, so its pid is the group id.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
