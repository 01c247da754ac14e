"""Comparing ledgers by entry id, and the supersede graph: pure functions over parsed entries."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from squad.infra.ledger._format import Entry


@dataclass
class Comparison:
    """How the entries at a base differ from the entries now, by id.

    `modified` holds the current versions; `previous` maps each modified id to its base version.
    """

    added: list[Entry] = field(default_factory=list)
    modified: list[Entry] = field(default_factory=list)
    deleted: list[Entry] = field(default_factory=list)
    previous: dict[str, Entry] = field(default_factory=dict)


def compare(base: list[Entry], head: list[Entry]) -> Comparison:
    """Compare two sets of entries by id: added, modified (raw text differs) and deleted.

    The shared engine of `squad decisions check --base` and the GitHub Action's ledger gate.
    """
    before = {e.id: e for e in base}
    after = {e.id: e for e in head}
    result = Comparison()
    for entry in head:
        old = before.get(entry.id)
        if old is None:
            result.added.append(entry)
        elif old.raw != entry.raw and entry.id not in result.previous:
            result.modified.append(entry)
            result.previous[entry.id] = old
    result.deleted = [e for e in base if e.id not in after]
    return result


def superseded_by(entries: Iterable[Entry]) -> dict[str, list[str]]:
    """id -> ids of the entries that supersede it (computed, never written)."""
    out: dict[str, list[str]] = {}
    for entry in entries:
        for old in entry.supersedes:
            out.setdefault(old, []).append(entry.id)
    return out
