"""Reading a run folder for the report page: typed events, bounded text and numbers (no interpretation here)."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

from squad.domain.events import Event, parse_event
from squad.infra.jsonl import JournalWarning, read_jsonl

MAX_TEXT = 4000


def _num(value: Any, digits: int = 3) -> float | None:
    """A finite number rounded to `digits`, or None (JSON has no NaN, and the page must parse)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return round(number, digits) if math.isfinite(number) else None


def _text(value: Any, limit: int = MAX_TEXT, *, tail: bool = False) -> str:
    """`value` as text, cut to `limit` characters (from the end when `tail`), saying how much was cut."""
    text = value if isinstance(value, str) else "" if value is None else json.dumps(value, default=str)
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    return f"[{cut} chars cut] …{text[-limit:]}" if tail else f"{text[:limit]}… [{cut} more chars]"


def _tokens(usage: Any) -> list[int]:
    """[input, output, cache write, cache read] of a usage dict."""
    usage = usage if isinstance(usage, dict) else {}
    keys = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    out = []
    for key in keys:
        try:
            out.append(int(usage.get(key) or 0))
        except (TypeError, ValueError):
            out.append(0)
    return out


def _describe(record: dict[str, Any]) -> str:
    """The one-line description of a journal record (the typed event's own)."""
    try:
        return parse_event(record).describe()
    except ValueError:
        return str(record.get("type", "?"))


def _read_events(path: Path, caught: list[str]) -> list[Event]:
    """The journal's typed events; unreadable or invalid lines become warnings naming the file and line."""
    events: list[Event] = []
    for number, record in enumerate(_read(path, caught), start=1):
        try:
            events.append(parse_event(record))
        except ValueError as exc:
            caught.append(f"{path.name}: record {number} skipped: {exc}")
    return events


def _read(path: Path, caught: list[str]) -> list[dict[str, Any]]:
    """Records of a JSON-lines file; unreadable lines become warnings naming the file by its own name."""
    with warnings.catch_warnings(record=True) as found:
        warnings.simplefilter("always", JournalWarning)
        records = read_jsonl(path)
    caught.extend(str(w.message).replace(str(path), path.name) for w in found)
    return records
