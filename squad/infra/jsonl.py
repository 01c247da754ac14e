"""JSON-lines files that survive a killed writer: one `write()` per line on an O_APPEND descriptor.

Concurrent writers never interleave within a line, and a crash can tear at most the last line, which
readers skip with a JournalWarning (`squad log` and resume must never stop on it).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class JournalWarning(UserWarning):
    """A journal line could not be read (typically the last line, torn by a killed process)."""


def encode_line(record: dict[str, Any]) -> bytes:
    """One JSON line. Readable UTF-8, except for a record holding a lone surrogate (model output can): that one
    is written with \\u escapes, which read back to the same string instead of failing to encode."""
    try:
        return (json.dumps(record, ensure_ascii=False, default=str, separators=(",", ":")) + "\n").encode("utf-8")
    except UnicodeEncodeError:
        return (json.dumps(record, ensure_ascii=True, default=str, separators=(",", ":")) + "\n").encode("ascii")


def append_line(path: Path, record: dict[str, Any]) -> None:
    """Append one record as one line with one write (O_APPEND keeps concurrent lines whole)."""
    data = encode_line(record)
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


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) of a JSON-lines file, skipping with a JournalWarning (file:line) lines that do not
    parse as a JSON object. A process killed mid-write leaves a torn last line; that must never stop
    `squad log` or a resume."""
    if not path.exists():
        return
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
                yield number, record
            else:
                warnings.warn(f"{path}:{number}: skipped a journal line that is not a JSON object", JournalWarning, 2)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every record of a JSON-lines file (see `iter_jsonl`)."""
    return [record for _, record in iter_jsonl(path)]
