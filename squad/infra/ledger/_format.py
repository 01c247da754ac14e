"""The ledger's entry format: data types, rendering, and a tolerant one-pass parser.

An entry is a level-2 heading, a one-line metadata comment, then Context / Decision / Consequences:

    ## <title>
    <!-- squad-decision {"id":"01J…","date":"2026-11-22T06:31:07Z","agent":null,"run":null,...} -->

    **Context.** <text>

    **Decision.** <text>

    **Consequences.** <text>

The parser is line-based and uses no regex on the hot path, so a 10,000-entry tree parses in a
fraction of a second. It tolerates hand edits (blank lines, CRLF, unknown metadata keys, missing
optional sections) and reports everything it cannot read as a `Problem` with file:line; an entry
whose metadata is unreadable is reported at its heading and the rest of the file still parses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

METADATA_PREFIX = "<!-- squad-decision"
METADATA_SUFFIX = "-->"
HEADER_PREFIX = "# Decisions — "
SECTIONS: tuple[tuple[str, str], ...] = (
    ("**Context.**", "context"),
    ("**Decision.**", "decision"),
    ("**Consequences.**", "consequences"),
)
#: A run id (`squad.domain.ids`), and a dated ledger file name (`<date>-<run or person>.md`).
_RUN_ID_RE = re.compile(r"(\d{4})(\d{2})(\d{2})-\d{6}-[a-z0-9]{4}")
_DATED_NAME_RE = re.compile(r"(\d{4}-\d{2}-\d{2})-(.+)\.md")
#: Crockford base32, 26 chars, first char <= 7 (128-bit ULIDs), as python-ulid writes them.
ULID_RE = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")


@dataclass(frozen=True)
class Entry:
    """One decision as it appears in a ledger file. `raw` is the exact entry text (for landed-entry checks)."""

    id: str
    title: str
    date: str
    agent: str | None
    run: str | None
    supersedes: tuple[str, ...]
    tags: tuple[str, ...]
    context: str
    decision: str
    consequences: str
    file: Path
    line: int
    raw: str

    @property
    def location(self) -> str:
        """`file:line` of the entry's heading."""
        return f"{self.file}:{self.line}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (without `raw`)."""
        return {
            "id": self.id,
            "title": self.title,
            "date": self.date,
            "agent": self.agent,
            "run": self.run,
            "supersedes": list(self.supersedes),
            "tags": list(self.tags),
            "context": self.context,
            "decision": self.decision,
            "consequences": self.consequences,
            "file": str(self.file),
            "line": self.line,
        }


@dataclass(frozen=True)
class Problem:
    """Something in a ledger file that cannot be read or breaks a ledger rule; `str(p)` is `file:line: message`."""

    file: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": str(self.file), "line": self.line, "message": self.message}


@dataclass
class ParseResult:
    """Entries that could be read, and problems with file:line for everything that could not."""

    entries: list[Entry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def extend(self, other: ParseResult) -> None:
        self.entries.extend(other.entries)
        self.problems.extend(other.problems)


def is_ulid(value: str) -> bool:
    """True for a canonical (upper-case, 26-char) ULID string."""
    return ULID_RE.fullmatch(value) is not None


def render_entry(
    *,
    id: str,
    title: str,
    date: str,
    decision: str,
    context: str = "",
    consequences: str = "",
    agent: str | None = None,
    run: str | None = None,
    supersedes: tuple[str, ...] = (),
    tags: tuple[str, ...] = (),
) -> str:
    """The markdown text of one entry, ending in a newline. Empty optional sections are left out."""
    meta = {
        "id": id,
        "date": date,
        "agent": agent,
        "run": run,
        "supersedes": list(supersedes),
        "tags": list(tags),
    }
    # "-->" can only occur inside a JSON string; escaping ">" there keeps the HTML comment closed.
    payload = json.dumps(meta, ensure_ascii=False, separators=(",", ":")).replace("-->", "--\\u003e")
    parts = [f"## {title}\n{METADATA_PREFIX} {payload} {METADATA_SUFFIX}\n"]
    for marker, text in (("**Context.**", context), ("**Decision.**", decision), ("**Consequences.**", consequences)):
        if text.strip():
            parts.append(f"\n{marker} {text.strip()}\n")
    return "".join(parts)


def entry_author(entry: Entry) -> str | None:
    """Who recorded `entry`: its agent, else the person whose personal file holds it (`<date>-<person>.md`;
    a person's entries carry no agent), else None."""
    if entry.agent:
        return entry.agent
    m = _DATED_NAME_RE.fullmatch(Path(entry.file).name)
    if m and not _RUN_ID_RE.fullmatch(m[2]) and m[2] != entry.run:
        return m[2]
    return None


def normalize_newlines(text: str) -> str:
    """CRLF and bare CR to LF. Work-tree files are read with universal newlines (a bare CR ends a line) and git
    blobs as is; normalizing both the same way keeps their entries comparable and a CR from starting a heading."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def body_line_problem(text: str) -> str | None:
    """Why `text` cannot go into an entry's body as is (it would start a new entry or section), else None."""
    for line in text.split("\n"):
        stripped = line.rstrip()
        if stripped == "##" or line.startswith("## "):
            return f"a line starting with '## ' would start a new entry: {line!r} (use '###' or deeper)"
        if line.lstrip().startswith(METADATA_PREFIX):
            return f"a line starting with {METADATA_PREFIX!r} is reserved for entry metadata"
        for marker, _ in SECTIONS:
            if line.startswith(marker):
                return f"a line starting with {marker!r} would start a new section: {line!r}"
    return None


def parse_text(text: str, file: Path) -> ParseResult:
    """Parse one ledger file's text. Never drops an entry silently: what it cannot read becomes a Problem.

    Args:
        text: the file's content.
        file: the path reported in entries and problems (relative to the repo root when known).
    """
    lines = normalize_newlines(text).split("\n")
    result = ParseResult()
    starts = [
        i for i, line in enumerate(lines) if line.startswith("##") and (line[2:3] == " " or line.rstrip() == "##")
    ]

    # Before the first entry: the one-line "# Decisions — ..." header and blank lines only.
    seen_header = False
    for i in range(starts[0] if starts else len(lines)):
        line = lines[i]
        if not line.strip():
            continue
        if not seen_header and line.startswith("# "):
            seen_header = True
            continue
        result.problems.append(
            Problem(file, i + 1, f"text before the first entry (expected only the '# Decisions — …' header): {line!r}")
        )
        break  # one problem per preamble is enough; the rest is the same mistake

    bounds = [*starts, len(lines)]
    for k in range(len(starts)):
        _parse_entry(lines, bounds[k], bounds[k + 1], file, result)
    return result


def _parse_entry(lines: list[str], start: int, end: int, file: Path, result: ParseResult) -> None:
    """Parse lines[start:end] (a heading and its body) and add an Entry and/or Problems to `result`."""
    heading_no = start + 1
    title = lines[start][2:].strip()
    label = f"entry {title!r}" if title else "entry"
    # Trailing blank lines belong to no entry: appending after an entry must not change its raw text.
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    raw = "\n".join(lines[start:end]) + "\n"

    meta_at = -1
    for i in range(start + 1, end):
        if lines[i].lstrip().startswith(METADATA_PREFIX):
            meta_at = i
            break
    if meta_at < 0:
        result.problems.append(
            Problem(file, heading_no, f"{label} has no '{METADATA_PREFIX} {{…}} -->' metadata line; it is skipped")
        )
        return
    meta_line = lines[meta_at].strip()
    if not meta_line.endswith(METADATA_SUFFIX):
        result.problems.append(
            Problem(file, heading_no, f"{label}: metadata comment on line {meta_at + 1} is not closed with '-->'")
        )
        return
    payload = meta_line[len(METADATA_PREFIX) : -len(METADATA_SUFFIX)].strip()
    try:
        meta = json.loads(payload)
    except json.JSONDecodeError as exc:
        result.problems.append(
            Problem(file, heading_no, f"{label}: bad JSON in metadata comment on line {meta_at + 1}: {exc.msg}")
        )
        return
    if not isinstance(meta, dict):
        result.problems.append(
            Problem(file, heading_no, f"{label}: metadata on line {meta_at + 1} is not a JSON object")
        )
        return
    entry_id = meta.get("id")
    if not isinstance(entry_id, str) or not entry_id:
        result.problems.append(Problem(file, heading_no, f"{label}: metadata on line {meta_at + 1} has no 'id'"))
        return

    def problem(message: str) -> None:
        result.problems.append(Problem(file, heading_no, f"{label} ({entry_id}): {message}"))

    if not is_ulid(entry_id):
        problem(f"id {entry_id!r} is not a ULID")
    if not title:
        problem("empty title")
    date = meta.get("date")
    if not isinstance(date, str) or not date:
        problem("metadata has no 'date'")
        date = ""
    agent = _opt_str(meta.get("agent"), "agent", problem)
    run = _opt_str(meta.get("run"), "run", problem)
    supersedes = _str_list(meta.get("supersedes", []), "supersedes", problem)
    tags = _str_list(meta.get("tags", []), "tags", problem)

    sections: dict[str, list[str]] = {"context": [], "decision": [], "consequences": []}
    current: list[str] | None = None
    stray = 0
    for i in range(start + 1, end):
        line = lines[i]
        if i == meta_at:
            continue
        if line.startswith("**"):
            for marker, name in SECTIONS:
                if line.startswith(marker):
                    current = sections[name]
                    if current:
                        problem(f"second {marker} section on line {i + 1}")
                    current.append(line[len(marker) :])
                    break
            else:
                if current is not None:
                    current.append(line)
                elif not stray:
                    stray = i + 1
            continue
        if current is not None:
            current.append(line)
        elif line.strip() and not stray:
            stray = i + 1
    if stray:
        problem(f"text outside the Context/Decision/Consequences sections on line {stray}")
    decision = "\n".join(sections["decision"]).strip()
    if not decision:
        problem("no **Decision.** text")
    result.entries.append(
        Entry(
            id=entry_id,
            title=title,
            date=date,
            agent=agent,
            run=run,
            supersedes=supersedes,
            tags=tags,
            context="\n".join(sections["context"]).strip(),
            decision=decision,
            consequences="\n".join(sections["consequences"]).strip(),
            file=file,
            line=heading_no,
            raw=raw,
        )
    )


def _opt_str(value: Any, key: str, problem: Callable[[str], None]) -> str | None:
    if value is None or isinstance(value, str):
        return value or None
    problem(f"metadata '{key}' must be a string or null, got {type(value).__name__}")
    return None


def _str_list(value: Any, key: str, problem: Callable[[str], None]) -> tuple[str, ...]:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    problem(f"metadata '{key}' must be a list of strings")
    return ()
