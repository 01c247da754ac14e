"""Run ledgers written on several machines, merged into one: the decisions of a run spread over CI jobs.

Each job of such a run records its agents' decisions in its own copy of the run's ledger file; `squad integrate`
joins them. Entry ids are ULIDs (time first, then random), so ordering by id gives the same file from the same
fragments wherever and however often it is merged; an entry in several fragments (a dependency's decisions
handed on to the jobs that build on it) is written once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from filelock import FileLock, Timeout

from squad.errors import LedgerError
from squad.infra.ledger._format import HEADER_PREFIX, Entry, Problem, parse_text
from squad.infra.ledger._ledger import Ledger, _atomic_write


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
