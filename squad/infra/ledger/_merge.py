"""Run ledgers written on several machines, merged into one: the decisions of a run spread over CI jobs.

Each job of such a run records its agents' decisions in its own copy of the run's ledger file; `squad integrate`
joins them. Entry ids are ULIDs (time first, then random), so ordering by id gives the same file from the same
fragments wherever and however often it is merged; an entry in several fragments (a dependency's decisions
handed on to the jobs that build on it) is written once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from filelock import FileLock, Timeout

from squad.errors import LedgerError
from squad.infra.ledger._format import HEADER_PREFIX, Entry, Problem, is_ulid, parse_text
from squad.infra.ledger._ledger import Ledger, _atomic_write

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid_ms(entry_id: str) -> int | None:
    """When an entry was recorded, in Unix milliseconds (a ULID's first 48 bits), or None for a non-ULID id."""
    if not is_ulid(entry_id):
        return None
    value = 0
    for char in entry_id[:10]:
        value = value * 32 + _CROCKFORD.index(char)
    return value


def merge_entries(sources: Iterable[tuple[Path, str]]) -> tuple[list[Entry], list[Problem]]:
    """Every entry of the ledger texts `sources` ((where it came from, text)), once each, in id (ULID) order.

    The same id with different text in two sources is a Problem (the first one read is kept): a landed entry is
    never edited, so two versions mean one of the fragments was changed by hand.
    """
    by_id: dict[str, Entry] = {}
    problems: list[Problem] = []
    for path, text in sources:
        parsed = parse_text(text, path)
        problems.extend(parsed.problems)
        for entry in parsed.entries:
            seen = by_id.get(entry.id)
            if seen is None:
                by_id[entry.id] = entry
            elif seen.raw != entry.raw:
                where = f"entry {entry.id} differs from the one in {seen.location}; kept that one"
                problems.append(Problem(path, entry.line, where))
    return [by_id[k] for k in sorted(by_id)], problems


def render_run_ledger(run: str, entries: Sequence[Entry]) -> str:
    """A run's ledger file holding `entries` in this order, laid out as `Ledger.append` writes it ("" if none)."""
    if not entries:
        return ""
    day = entries[0].date[:10] or "unknown date"
    return f"{HEADER_PREFIX}run {run}, {day}\n" + "".join("\n" + e.raw for e in entries)


def write_run_ledger(root: Path, file: Path, text: str, *, lock_timeout: float = 30.0) -> None:
    """Replace the run ledger `file` with `text`, atomically, under the lock `Ledger.append` takes for it.

    Raises:
        LedgerError: the lock could not be taken in time.
    """
    ledger = Ledger(root, lock_timeout=lock_timeout)
    lock_file = ledger.lock_path(file)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(lock_file), timeout=lock_timeout):
            _atomic_write(Path(file), text)
    except Timeout:
        raise LedgerError(f"timed out after {lock_timeout:g}s waiting for the ledger lock {lock_file}") from None


def drop_entries(root: Path, file: Path, run: str, drop: Callable[[Entry], bool]) -> list[Entry]:
    """Remove the entries `drop` selects from the run ledger `file` (not yet landed anywhere); return them.

    How the decisions of an attempt that was killed are discarded with the rest of its work, so the attempt
    that starts over does not record them a second time.
    """
    path = Path(file)
    if not path.is_file():
        return []
    entries, problems = merge_entries([(path, path.read_text(encoding="utf-8"))])
    if problems:  # rewriting would lose what cannot be read: leave the file to a person
        raise LedgerError(f"cannot rewrite {path}: {problems[0]}", hint="fix or remove that entry by hand")
    dropped = [e for e in entries if drop(e)]
    if dropped:
        write_run_ledger(root, path, render_run_ledger(run, [e for e in entries if not drop(e)]))
    return dropped
