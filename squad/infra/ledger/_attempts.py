"""An attempt's own decisions file, and how its entries join the run ledger once the attempt's work is committed.

A task attempt that is killed is done again from the start, so what it recorded must not count: its
`record_decision` calls append to the attempt's own file (same format, same lock), and `keep_attempt` copies the
entries into the run ledger only when the attempt's work is committed. `keep_attempt` is idempotent — an entry whose
id the run ledger already has is not copied again — so a resume that repeats it (a kill between the copy and
the removal of the attempt file) adds nothing twice. Entries are copied byte for byte, ids and dates as they
were recorded.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from filelock import FileLock, Timeout

from squad.errors import LedgerError
from squad.infra import faults
from squad.infra.ledger._format import Entry, parse_text
from squad.infra.ledger._ledger import Ledger, _atomic_write


def attempt_entries(attempt: Path) -> list[Entry]:
    """The entries of an attempt file (none when it does not exist)."""
    try:
        text = attempt.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return parse_text(text, Path(attempt.name)).entries


def remove_temp_files(attempts_dir: Path) -> None:
    """Remove the temp files of appends to attempt files that a kill interrupted (the attempts are dropped or kept
    on resume; a temp file is never one of their entries)."""
    for stale in attempts_dir.glob(".*.tmp") if attempts_dir.is_dir() else ():
        with contextlib.suppress(OSError):
            stale.unlink()


def drop_attempt(attempt: Path) -> list[Entry]:
    """Delete an unfinished attempt's file; returns the entries it held (for the journal)."""
    entries = attempt_entries(attempt)
    with contextlib.suppress(FileNotFoundError):
        attempt.unlink()
    return entries


def keep_attempt(root: Path, attempt: Path, run_ledger: Path, *, lock_timeout: float = 30.0) -> list[Entry]:
    """Append to `run_ledger` every entry of `attempt` it does not have yet, then delete `attempt`.

    Holds the run ledger's append lock (the same `Ledger.lock_path` every appender takes). Returns the entries
    that were added.

    Raises:
        LedgerError: the lock could not be taken in time, or a file cannot be read.
    """
    ledger = Ledger(root)
    lock_file = ledger.lock_path(run_ledger)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_file), timeout=lock_timeout)
    try:
        lock.acquire()
    except Timeout:
        raise LedgerError(f"timed out after {lock_timeout:g}s waiting for the ledger lock {lock_file}") from None
    try:
        try:
            source = attempt.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        try:
            existing = run_ledger.read_text(encoding="utf-8")
        except FileNotFoundError:
            existing = ""
        except (OSError, UnicodeDecodeError) as exc:
            raise LedgerError(f"cannot read the run ledger {run_ledger}: {exc}") from None
        have = {e.id for e in parse_text(existing, Path(run_ledger.name)).entries}
        entries = parse_text(source, Path(attempt.name)).entries
        new = [e for e in entries if e.id not in have]
        if new:
            if not existing.strip():
                # The attempt file's header is the one the run ledger would get ("# Decisions — run <run>, <day>").
                existing = "\n".join(source.split("\n")[: entries[0].line - 1]).strip("\n") + "\n"
            elif not existing.endswith("\n"):
                existing += "\n"
            _atomic_write(run_ledger, existing + "".join("\n" + e.raw for e in new))
            faults.point("decisions_kept")  # test-only: killed before the attempt file is gone
        with contextlib.suppress(FileNotFoundError):
            attempt.unlink()
        return new
    finally:
        lock.release()
