"""JSON-lines files that survive a killed writer: one `write()` per line on an O_APPEND descriptor.

Concurrent writers never interleave within a line, and a crash can tear at most the last line, which
readers skip with a JournalWarning (`squad log` and resume must never stop on it).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any


class JournalWarning(UserWarning):
    """A journal line could not be read (typically the last line, torn by a killed process)."""


def append_line(path: Path, record: dict[str, Any]) -> None:
    """Append `record` as one JSON line. Never fails on text: a lone surrogate (which UTF-8 cannot hold)
    makes the line ASCII-escaped (`\\udc80`), which JSON readers take back as the same string."""
    try:
        line = json.dumps(record, ensure_ascii=False, default=str, separators=(",", ":")) + "\n"
        data = line.encode("utf-8")
    except UnicodeEncodeError:
        data = (json.dumps(record, default=str, separators=(",", ":")) + "\n").encode("ascii")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)  # one write per line: O_APPEND keeps concurrent lines whole
    finally:
        os.close(fd)


def end_torn_line(path: Path) -> None:
    """Terminate a last line left without its newline by a killed writer (else the next event joins it)."""
    try:
        with path.open("rb") as fh:
            fh.seek(-1, os.SEEK_END)
            torn = fh.read(1) != b"\n"
    except OSError:  # missing or empty file: nothing to repair
        return
    if torn:
        with path.open("ab") as fh:
            fh.write(b"\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file, skipping (with a JournalWarning) lines that do not parse.

    A process killed mid-write leaves a torn last line; that must never stop `squad log` or a resume.
    """
    if not path.exists():
        return []
    records: list[dict[str, Any]] = []
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                warnings.warn(f"{path}:{number}: skipped an unreadable journal line (torn write?)", JournalWarning, 2)
                continue
            if isinstance(record, dict):
                records.append(record)
    return records
