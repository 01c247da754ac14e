"""The decisions ledger: append-only markdown files under `decisions/`, one per run or person.

Entries carry ULID ids and a one-line JSON metadata comment; status ("active" / "superseded") is
derived from later entries' `supersedes`, never written. See `_format` for the entry format and
`Ledger` for appending under a lock, parsing, checking and the prompt digest.
"""

from squad.infra.ledger._attempts import attempt_entries, drop_attempt, keep_attempt, remove_temp_files
from squad.infra.ledger._compare import Comparison, compare, superseded_by
from squad.infra.ledger._format import Entry, ParseResult, Problem, entry_author, is_ulid, parse_text, render_entry
from squad.infra.ledger._git import person_slug
from squad.infra.ledger._ledger import LEDGER_DIR, Ledger
from squad.infra.ledger._merge import merge_entries, render_run_ledger, write_run_ledger

__all__ = [
    "LEDGER_DIR",
    "Comparison",
    "Entry",
    "Ledger",
    "ParseResult",
    "Problem",
    "attempt_entries",
    "compare",
    "drop_attempt",
    "entry_author",
    "is_ulid",
    "keep_attempt",
    "merge_entries",
    "parse_text",
    "person_slug",
    "remove_temp_files",
    "render_entry",
    "render_run_ledger",
    "superseded_by",
    "write_run_ledger",
]
