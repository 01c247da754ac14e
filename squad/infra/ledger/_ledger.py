"""The decisions ledger: append under a cross-process lock with atomic replace, parse, check, digest."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path

from filelock import FileLock, Timeout

from squad.errors import LedgerError, UsageError
from squad.infra import safefs
from squad.infra.ledger._compare import compare, superseded_by
from squad.infra.ledger._format import (
    _DATED_NAME_RE,
    _RUN_ID_RE,
    HEADER_PREFIX,
    Entry,
    ParseResult,
    Problem,
    body_line_problem,
    is_ulid,
    normalize_newlines,
    parse_text,
    render_entry,
)
from squad.infra.ledger._git import common_dir, read_tree, slugify
from squad.infra.safefs import UnsafePathError

LEDGER_DIR = "decisions"
_SAFE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Ledger:
    """The decisions ledger of one work tree: markdown files under `<root>/decisions/`.

    Args:
        root: the repository / worktree root.
        lock_timeout: seconds `append` waits for the file lock before raising LedgerError.
    """

    def __init__(self, root: Path, *, lock_timeout: float = 30.0) -> None:
        self.root = Path(root).resolve()
        self.dir = self.root / LEDGER_DIR
        self.lock_timeout = lock_timeout
        self._locks_dir: Path | None = None

    # -- paths ----------------------------------------------------------------------------------------

    def run_file(self, run: str, date: date | None = None) -> Path:
        """`decisions/YYYY/MM/YYYY-MM-DD-<run>.md`; the date defaults to the run id's date (else today, UTC)."""
        _check_name(run, "run id")
        if date is None:
            m = _RUN_ID_RE.fullmatch(run)
            date = datetime(int(m[1]), int(m[2]), int(m[3])).date() if m else _utc_now().date()
        return self._dated(date, run)

    def personal_file(self, person: str, date: date | None = None) -> Path:
        """`decisions/YYYY/MM/YYYY-MM-DD-<person-slug>.md` for a person's manual entries."""
        slug = slugify(person)
        if not slug:
            raise UsageError(f"person {person!r} has no letters or digits to name a ledger file with")
        return self._dated(date or _utc_now().date(), slug)

    def _dated(self, day: date, name: str) -> Path:
        return self.dir / f"{day:%Y}" / f"{day:%m}" / f"{day:%Y-%m-%d}-{name}.md"

    def relative(self, path: Path) -> Path:
        """`path` relative to the root when it is inside it (how entries and problems name files)."""
        path = Path(path)
        if not path.is_absolute():
            return path
        try:
            return path.relative_to(self.root)
        except ValueError:
            return path

    def files(self) -> list[Path]:
        """Every ledger file: `decisions/**/*.md` except README.md, sorted; never one outside the root."""
        return self._scan()[0]

    def _scan(self) -> tuple[list[Path], list[Problem]]:
        """Ledger files, and a Problem for each symlink that leads outside the root (skipped, not read).

        The root may be an agent's worktree holding untrusted content (a PR, files an agent's command
        made): a link like `decisions/x.md -> ~/.aws/credentials` must not put that file in a prompt.
        Symlinked directories are not descended into (no cycles); a symlinked `decisions/` must stay inside.
        """
        if not self.dir.is_dir():
            return [], []
        if not self._inside(self.dir):
            return [], [
                Problem(Path(LEDGER_DIR), 1, "skipped: decisions/ is a symlink that points outside the repository")
            ]
        files: list[Path] = []
        problems: list[Problem] = []
        for top, dirs, names in os.walk(self.dir):  # followlinks=False: linked directories are listed, not entered
            for name in sorted(dirs):
                link = Path(top) / name
                if link.is_symlink() and not self._inside(link):
                    problems.append(
                        Problem(self.relative(link), 1, "skipped: symlink that points outside the repository")
                    )
            for name in names:
                path = Path(top) / name
                if not name.endswith(".md") or name == "README.md" or not path.is_file():
                    continue
                if not self._inside(path):
                    problems.append(
                        Problem(self.relative(path), 1, "skipped: symlink that points outside the repository")
                    )
                    continue
                files.append(path)
        return sorted(files), problems

    def _inside(self, path: Path) -> bool:
        real = os.path.realpath(path)
        return real == str(self.root) or real.startswith(str(self.root) + os.sep)

    def lock_path(self, file: Path) -> Path:
        """The lock file guarding appends to `file`: `<git common dir>/squad/locks/ledger-<name>-<hash>.lock`."""
        if self._locks_dir is None:
            self._locks_dir = common_dir(self.root) / "squad" / "locks"
        target = self._absolute(file)
        digest = hashlib.sha1(str(target).encode()).hexdigest()[:12]
        return self._locks_dir / f"ledger-{target.stem}-{digest}.lock"

    def _absolute(self, file: Path) -> Path:
        file = Path(file)
        return (file if file.is_absolute() else self.root / file).resolve()

    # -- reading --------------------------------------------------------------------------------------

    def parse(self) -> ParseResult:
        """Parse the whole `decisions/` tree; unreadable files and entries become Problems."""
        files, problems = self._scan()
        result = ParseResult(problems=problems)
        for path in files:
            result.extend(self.parse_file(path))
        return result

    def parse_file(self, path: Path) -> ParseResult:
        """Parse one ledger file (inside or outside `decisions/`); a missing file has no entries."""
        path = self._absolute(path)
        rel = self.relative(path)
        try:
            text = self._read(path)
        except FileNotFoundError:
            return ParseResult()
        except UnsafePathError as exc:
            return ParseResult(problems=[Problem(rel, 1, f"skipped: {exc.message}")])
        except UnicodeDecodeError as exc:
            return ParseResult(problems=[Problem(rel, 1, f"not UTF-8 text ({exc.reason} at byte {exc.start})")])
        except OSError as exc:
            return ParseResult(problems=[Problem(rel, 1, f"cannot read: {exc.strerror}")])
        return parse_text(text, rel)

    def _read(self, path: Path) -> str:
        """The text of a (resolved) ledger file. Inside the root it is opened through safefs: the root may
        be a worktree agent code ran in, which can swap a directory for a symlink between our check and
        the read, or hard-link an outside file in (its data is refused, not parsed into a prompt)."""
        try:
            rel = path.relative_to(self.root)
        except ValueError:  # the run's own ledger, in the run folder
            return path.read_text(encoding="utf-8")
        with os.fdopen(safefs.open_file(self.root, rel.parts), "rb") as fh:
            return fh.read().decode("utf-8")

    def status(self, entries: Iterable[Entry]) -> dict[str, str]:
        """id -> "superseded" when some entry lists it in `supersedes`, else "active"."""
        entries = list(entries)
        replaced = superseded_by(entries)
        return {e.id: "superseded" if e.id in replaced else "active" for e in entries}

    def digest(self, max_tokens: int, extra: Sequence[Entry] = ()) -> str:
        """A bounded summary for prompts: active entries first, newest first, within ~max_tokens (chars/4).

        Args:
            max_tokens: the budget; the text stays within about `4 * max_tokens` characters.
            extra: entries not yet under `decisions/` (e.g. the current run's ledger); they win on id clashes.
        """
        by_id = {e.id: e for e in self.parse().entries}
        by_id.update({e.id: e for e in extra})
        entries = list(by_id.values())
        status = self.status(entries)
        replaced = superseded_by(entries)
        entries.sort(key=lambda e: (e.date, e.id), reverse=True)
        entries.sort(key=lambda e: status[e.id] != "active")  # stable: active first, each group newest first
        n_active = sum(1 for s in status.values() if s == "active")
        head = f"Decisions ({n_active} active, {len(entries) - n_active} superseded), active first, newest first:"
        budget = max_tokens * 4
        lines = [head]
        used = len(head) + 1
        reserve = 80  # room for the "omitted" line
        for i, entry in enumerate(entries):
            line = _digest_line(entry, replaced.get(entry.id, []))
            if used + len(line) + 1 + reserve > budget:
                lines.append(f"({len(entries) - i} more decisions omitted; read the ledger for all of them)")
                break
            lines.append(line)
            used += len(line) + 1
        else:
            if not entries:
                lines.append("(none recorded yet)")
        return "\n".join(lines)

    def check(self, base: str | None = None, *, parsed: ParseResult | None = None) -> list[Problem]:
        """Everything wrong with the ledger: unreadable entries, duplicate ids, dangling supersedes, and
        with `base` (a git ref) every entry that existed at `base` and was modified or deleted since.

        Args:
            base: a git ref whose landed entries must be unchanged in the work tree.
            parsed: this ledger's `parse()` result, when the caller already has it.
        """
        parsed = parsed if parsed is not None else self.parse()
        problems = list(parsed.problems)
        problems.extend(_duplicate_problems(parsed.entries))
        known = {e.id for e in parsed.entries}
        for entry in parsed.entries:
            for old in entry.supersedes:
                if old not in known:
                    problems.append(Problem(entry.file, entry.line, f"{entry.id} supersedes unknown id {old}"))
        if base is not None:
            problems.extend(self.landed_problems(base, parsed.entries))
        return problems

    def entries_at(self, ref: str) -> ParseResult:
        """The entries of the `decisions/` tree at git `ref` (read without touching the work tree)."""
        result = ParseResult()
        for path, text in sorted(read_tree(self.root, ref, LEDGER_DIR).items()):
            if path.endswith(".md") and Path(path).name != "README.md":
                result.extend(parse_text(text, Path(path)))
        return result

    def landed_problems(self, base: str, head: list[Entry]) -> list[Problem]:
        """One Problem per entry that existed at `base` and is now modified (at its current place) or
        deleted (at its place in `base`)."""
        diff = compare(self.entries_at(base).entries, head)
        problems = [
            Problem(
                e.file,
                e.line,
                f"landed entry {e.id} ({e.title!r}) was modified since {base} "
                f"(was at {diff.previous[e.id].location}); entries are append-only: add a new one that supersedes it",
            )
            for e in diff.modified
        ]
        problems.extend(
            Problem(
                e.file,
                e.line,
                f"landed entry {e.id} ({e.title!r}) was deleted since {base}; entries are append-only: "
                "restore it, and supersede it with a new entry instead",
            )
            for e in diff.deleted
        )
        return problems

    # -- writing --------------------------------------------------------------------------------------

    def append(
        self,
        file: Path,
        *,
        title: str,
        decision: str,
        context: str = "",
        consequences: str = "",
        agent: str | None = None,
        run: str | None = None,
        supersedes: Sequence[str] = (),
        tags: Sequence[str] = (),
        check: bool = True,
    ) -> Entry:
        """Append one entry to `file` (created with its header if new) and return it.

        Holds a `FileLock` under the git common dir, so concurrent writers (threads, processes,
        worktrees) never interleave, and replaces the file atomically, so a writer killed mid-append
        leaves the old file intact; the kernel drops its flock, so no lock is left behind.

        Args:
            file: the ledger file (relative to the root, or absolute, e.g. a run folder's ledger.md).
            check: verify that every id in `supersedes` exists in the ledger tree or in `file`.

        Raises:
            UsageError: invalid input (e.g. a multi-line title) or a dangling `supersedes`: the caller's mistake.
            LedgerError: the file cannot be read, or the lock could not be taken in time.
        """
        title = title.strip()
        context, decision, consequences = (normalize_newlines(s) for s in (context, decision, consequences))
        supersedes = tuple(supersedes)
        tags = tuple(tags)
        _validate(
            title=title,
            decision=decision,
            context=context,
            consequences=consequences,
            agent=agent,
            run=run,
            supersedes=supersedes,
            tags=tags,
        )
        target = self._absolute(file)
        known: set[str] = set()
        if check and supersedes:
            known = {e.id for e in self.parse().entries}  # landed entries never disappear: safe to read unlocked
        lock_file = self.lock_path(target)
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(lock_file), timeout=self.lock_timeout)
        try:
            lock.acquire()
        except Timeout:
            raise LedgerError(
                f"timed out after {self.lock_timeout:g}s waiting for the ledger lock {lock_file} "
                f"(guarding {self.relative(target)})",
                hint="another squad process is appending to this ledger; let it finish and retry. The lock is "
                f"freed when its holder exits (find it with `fuser {lock_file}`)",
            ) from None
        try:
            return self._append_locked(
                target,
                known,
                check=check,
                title=title,
                decision=decision,
                context=context,
                consequences=consequences,
                agent=agent or None,
                run=run or None,
                supersedes=supersedes,
                tags=tags,
            )
        finally:
            lock.release()

    def _append_locked(
        self,
        target: Path,
        known: set[str],
        *,
        check: bool,
        run: str | None,
        supersedes: tuple[str, ...],
        tags: tuple[str, ...],
        agent: str | None,
        **fields: str,
    ) -> Entry:
        from ulid import ULID  # only writers pay for it

        try:
            existing = target.read_text(encoding="utf-8")
        except FileNotFoundError:
            existing = ""
        except (OSError, UnicodeDecodeError) as exc:
            raise LedgerError(f"cannot read ledger file: {exc}", path=self.relative(target)) from None
        rel = self.relative(target)
        if check and supersedes:
            known |= {e.id for e in parse_text(existing, rel).entries}
            missing = [s for s in supersedes if s not in known]
            if missing:
                raise UsageError(
                    f"supersedes unknown id(s): {', '.join(missing)}",
                    hint="cite ids of existing entries (`squad decisions list`); an unlanded run entry must be in "
                    "the same run ledger",
                    path=rel,
                )
        now = _utc_now()
        entry_id = str(ULID.from_datetime(now))
        text = render_entry(
            id=entry_id,
            date=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            run=run,
            supersedes=supersedes,
            tags=tags,
            agent=agent,
            title=fields["title"],
            decision=fields["decision"],
            context=fields.get("context", ""),
            consequences=fields.get("consequences", ""),
        )
        if not existing.strip():
            existing = _header(target, run, now.date()) + "\n"
        elif not existing.endswith("\n"):
            existing += "\n"
        new = existing + "\n" + text
        line = existing.count("\n") + 2
        _atomic_write(target, new)
        return dataclasses.replace(parse_text(text, rel).entries[0], line=line)


def _digest_line(entry: Entry, replaced_by: list[str], limit: int = 400) -> str:
    """One compact line per entry: id, date, who, title, and the decision (collapsed, capped)."""
    who = ", ".join(x for x in (entry.agent and f"agent {entry.agent}", entry.run and f"run {entry.run}") if x)
    meta = f"{entry.date[:10]}{', ' + who if who else ''}"
    if entry.supersedes:
        meta += f"; supersedes {', '.join(entry.supersedes)}"
    if replaced_by:
        return f"- [{entry.id}] {entry.title} ({meta}; SUPERSEDED by {', '.join(replaced_by)})"
    text = " ".join(entry.decision.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"- [{entry.id}] {entry.title} ({meta}): {text}"


def _duplicate_problems(entries: list[Entry]) -> list[Problem]:
    seen: dict[str, list[Entry]] = {}
    for entry in entries:
        seen.setdefault(entry.id, []).append(entry)
    problems = []
    for entry_id, group in seen.items():
        if len(group) < 2:
            continue
        for entry in group:
            others = ", ".join(o.location for o in group if o is not entry)
            problems.append(Problem(entry.file, entry.line, f"duplicate id {entry_id} (also at {others})"))
    return problems


def _check_name(name: str, what: str) -> None:
    if not _SAFE_NAME_RE.fullmatch(name):
        raise UsageError(f"{what} {name!r} cannot name a ledger file (use letters, digits, '.', '_', '-')")


def _validate(
    *,
    title: str,
    decision: str,
    context: str,
    consequences: str,
    agent: str | None,
    run: str | None,
    supersedes: tuple[str, ...],
    tags: tuple[str, ...],
) -> None:
    if not title:
        raise UsageError("a decision needs a title", hint="give a short one-line title")
    if "\n" in title or "\r" in title:
        raise UsageError(f"the title must be one line: {title!r}")
    if not decision.strip():
        raise UsageError("a decision needs decision text", hint="say what was decided")
    for name, text in (("context", context), ("decision", decision), ("consequences", consequences)):
        if why := body_line_problem(text):
            raise UsageError(f"{name} text cannot be stored: {why}")
    for name, value in (("agent", agent), ("run", run)):
        if value is not None and ("\n" in value or value != value.strip()):
            raise UsageError(f"{name} must be one line without surrounding spaces: {value!r}")
    for tag in tags:
        if not tag.strip() or "\n" in tag:
            raise UsageError(f"tags must be non-empty single-line strings: {tag!r}")
    for old in supersedes:
        if not is_ulid(old):
            raise UsageError(f"supersedes {old!r} is not an entry id (a 26-character ULID)")


def _header(target: Path, run: str | None, today: date) -> str:
    """The one-line file header: run files name the run, personal files the person, both with the date."""
    m = _DATED_NAME_RE.fullmatch(target.name)
    day, name = (m[1], m[2]) if m else (f"{today:%Y-%m-%d}", run or target.stem)
    kind = "run " if (name == run or _RUN_ID_RE.fullmatch(name)) else ""
    return f"{HEADER_PREFIX}{kind}{name}, {day}"


def _atomic_write(target: Path, text: str) -> None:
    """Write `text` to `target` via temp file + fsync + os.replace: readers see the old or new file, never half."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # Temp files of writers that were killed mid-append; we hold the lock, so none is in use.
    for stale in target.parent.glob(f".{target.name}.*.tmp"):
        with contextlib.suppress(OSError):
            stale.unlink()
    try:
        mode = target.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)
