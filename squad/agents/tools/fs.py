"""File tools, all jailed to the worktree: list_files, read_file, write_file, edit_file, and diff."""

from __future__ import annotations

import difflib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import regex
from pydantic import Field

from squad.agents.tools.base import Args, BaseTool, ToolContext, ToolError, ToolResult
from squad.agents.tools.jail import JailError, open_read, refuse_protected, resolve, write_bytes
from squad.agents.tools.patterns import MAX_GLOB_CHARS, check, check_length
from squad.infra.git import run_git
from squad.infra.safefs import multi_link_files

MAX_LIST_FILES = 1000
#: read_file shows at most this many lines / characters per call; the rest is read with start_line.
READ_MAX_LINES = 2000
READ_MAX_CHARS = 25_000
READ_MAX_LINE_CHARS = 2000
#: Above this size read_file does not count the file's total lines (it streams the requested range).
COUNT_LINES_MAX_BYTES = 4 * 1024 * 1024
#: edit_file refuses files above this size (it rewrites the whole file).
EDIT_MAX_BYTES = 8 * 1024 * 1024
BINARY_SNIFF_BYTES = 8192
#: Bytes of a single line kept in memory; longer lines are cut (minified files).
RAW_LINE_BYTES = 64 * 1024
GIT_TIMEOUT_S = 60.0
#: A real glob matches a path in microseconds; one that takes this long is hostile.
GLOB_TIMEOUT_S = 1.0


# ---------------------------------------------------------------------------------------------------------
# Helpers shared with search


def git(root: Path, *args: str, env: dict[str, str] | None = None, stdin: bytes = b"", literal: bool = True) -> bytes:
    """Run git in `root` (squad.infra.git: no secrets, no hooks; `env` adds variables); stdout bytes, or
    ToolError with git's message.

    Pathspecs are literal: a file named `:(exclude)x` or `[ab].py` means that file, not a pattern. With
    `literal=False` the caller writes the magic itself (`:(literal)name`, `:(exclude,literal)name`).
    """
    try:
        out = run_git(
            root,
            *(("--literal-pathspecs",) if literal else ()),
            *("-c", "core.quotepath=off", *args),
            text=False,
            input=stdin,
            env=env,
            timeout=GIT_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise ToolError(f"git {args[0]} timed out after {GIT_TIMEOUT_S:.0f}s") from None
    if out.returncode != 0:
        raise ToolError(f"git {args[0]} failed: {out.stderr.decode('utf-8', 'replace').strip()}")
    return out.stdout


def worktree_files(root: Path) -> list[str]:
    """Tracked plus untracked-but-not-ignored files of the worktree, sorted, that exist on disk."""
    raw = git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    names = {name for name in raw.decode("utf-8", "surrogateescape").split("\0") if name}
    return sorted(name for name in names if os.path.lexists(os.path.join(root, name)))


def is_binary(head: bytes) -> bool:
    """Git's rule of thumb: a NUL byte near the start means binary."""
    return b"\0" in head[:BINARY_SNIFF_BYTES]


@lru_cache(maxsize=256)
def glob_regex(pattern: str) -> regex.Pattern[str]:
    """Compile a glob (`*`, `?`, `[...]`, `**` across directories) to a regex over POSIX paths.

    With the `regex` module (re-compatible syntax) so that matching can take a timeout: the glob comes
    from the model, and `*a*a*a...*b` backtracks exponentially.

    A pattern without `/` matches the file name anywhere (`*.py`); a plain directory name or a
    pattern ending in `/` matches everything below it (`src`, `src/`). A glob over MAX_GLOB_CHARS is a
    ToolError, before anything is compiled.
    """
    check_length(pattern, what="glob", max_chars=MAX_GLOB_CHARS)
    pat = pattern.strip().removeprefix("./")
    dir_prefix = ""
    if pat.endswith("/"):
        pat += "**"
    elif not any(ch in pat for ch in "*?["):
        dir_prefix = "|" + regex.escape(pat) + "/.*"
    anchored = "/" in pat
    out: list[str] = []
    i = 0
    while i < len(pat):
        ch = pat[i]
        if pat.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pat.startswith("**", i):
            out.append(".*")
            i += 2
        elif ch == "*":
            out.append("[^/]*")
            i += 1
        elif ch == "?":
            out.append("[^/]")
            i += 1
        elif ch == "[" and (end := _class_end(pat, i)) != -1:
            body = pat[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(regex.escape(ch))
            i += 1
    body = "".join(out)
    prefix = "" if anchored else "(?:.*/)?"
    compiled = f"(?:{prefix}{body}{dir_prefix})\\Z"
    check(compiled, what="glob", max_chars=MAX_GLOB_CHARS * 8)
    return regex.compile(compiled)


def _class_end(pat: str, start: int) -> int:
    """Index of the `]` closing the character class opened at `start`, or -1 (then `[` is literal)."""
    j = start + 1
    if j < len(pat) and pat[j] in "!^":
        j += 1
    if j < len(pat) and pat[j] == "]":
        j += 1
    return pat.find("]", j)


def match_glob(pattern: str | None, path: str) -> bool:
    """Whether `path` matches the glob; ToolError for a glob so slow to match that it must be hostile."""
    if not pattern:
        return True
    try:
        return glob_regex(pattern).match(path, timeout=GLOB_TIMEOUT_S) is not None
    except TimeoutError:
        raise ToolError(
            f"matching the glob {pattern!r} took too long (over {GLOB_TIMEOUT_S:g} s for {path!r})",
            hint="simplify the glob: many '*' in a row backtrack exponentially; e.g. 'src/**/*.py'",
        ) from None


def decode(data: bytes) -> str:
    """UTF-8 with replacement characters: a bad byte is shown as U+FFFD, never a crash."""
    return data.decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------------------------
# list_files


class ListFilesArgs(Args):
    pattern: str | None = Field(
        None,
        description="Glob filter, e.g. '*.py' (any directory), 'src/**/*.ts', 'tests/' (everything below). "
        "Omit to list every file.",
    )


class ListFiles(BaseTool):
    name = "list_files"
    description = (
        "List the repository's files (tracked, plus new files not ignored by .gitignore), sorted, one per line. "
        f"At most {MAX_LIST_FILES} are shown; use a pattern to narrow."
    )
    Args = ListFilesArgs
    blocking = True

    def run(self, args: ListFilesArgs, ctx: ToolContext) -> ToolResult:
        files = [f for f in worktree_files(ctx.worktree) if match_glob(args.pattern, f)]
        if not files:
            what = f"matching {args.pattern!r}" if args.pattern else "in the repository"
            return ToolResult(f"no files {what}")
        shown = files[:MAX_LIST_FILES]
        text = "\n".join(shown)
        if len(files) > len(shown):
            text += (
                f"\n[{len(files) - len(shown)} more files not shown ({len(files)} in total); "
                "pass a narrower pattern, e.g. 'src/**/*.py']"
            )
        return ToolResult(text, data={"count": len(files)})


# ---------------------------------------------------------------------------------------------------------
# read_file


class ReadFileArgs(Args):
    path: str = Field(description="File path relative to the repository root, e.g. 'src/app.py'.")
    start_line: int | None = Field(None, ge=1, description="First line to show (1-based). Default 1.")
    end_line: int | None = Field(None, ge=1, description="Last line to show (inclusive). Default: as much as fits.")


class ReadFile(BaseTool):
    name = "read_file"
    description = (
        "Read a text file, shown with line numbers (`number<TAB>text`). Long files are shown in ranges: "
        f"at most {READ_MAX_LINES} lines or about {READ_MAX_CHARS:,} characters per call; pass start_line/end_line "
        "to read further. Binary files are reported, not shown."
    )
    Args = ReadFileArgs

    def run(self, args: ReadFileArgs, ctx: ToolContext) -> ToolResult:
        start = args.start_line or 1
        if args.end_line is not None and args.end_line < start:
            raise ToolError(f"end_line ({args.end_line}) is before start_line ({start})")
        jp = resolve(ctx.worktree, args.path)
        fd = open_read(jp)
        with os.fdopen(fd, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(BINARY_SNIFF_BYTES)
            if is_binary(head):
                return ToolResult(f"{jp.rel} is a binary file ({size:,} bytes); not shown")
            if size == 0:
                return ToolResult(f"{jp.rel} is empty (0 lines)")
            fh.seek(0)
            shown: list[str] = []
            chars = 0
            lineno = 0  # lines consumed so far
            more = False  # the file has lines after the last one shown
            for raw, raw_len in _lines(fh):
                if lineno + 1 < start:
                    lineno += 1
                    continue
                if args.end_line is not None and lineno + 1 > args.end_line:
                    more = True
                    break
                text = decode(raw).removesuffix("\r")
                if len(text) > READ_MAX_LINE_CHARS or raw_len > len(raw):
                    text = text[:READ_MAX_LINE_CHARS] + f" [... line cut: {raw_len:,} bytes]"
                entry = f"{lineno + 1:>6}\t{text}"
                if shown and (len(shown) >= READ_MAX_LINES or chars + len(entry) + 1 > READ_MAX_CHARS):
                    more = True
                    break
                lineno += 1
                shown.append(entry)
                chars += len(entry) + 1
            total: int | None = lineno
            if more:
                total = None
                if size <= COUNT_LINES_MAX_BYTES:
                    fh.seek(0)
                    data = fh.read()
                    total = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
        if not shown:
            raise ToolError(f"start_line {start} is past the end of {jp.rel} ({lineno} lines)")
        of = f"of {total}" if total is not None else f"of a {size:,}-byte file"
        last = start + len(shown) - 1
        header = f"{jp.rel} (lines {start}-{last} {of})"
        body = "\n".join(shown)
        if more and (args.end_line is None or last < args.end_line):
            body += f"\n[file continues: call read_file with start_line={last + 1} to read more]"
        return ToolResult(f"{header}\n{body}", data={"path": jp.rel, "start_line": start, "end_line": last})


def _lines(fh: BinaryIO) -> Iterator[tuple[bytes, int]]:
    """Yield (line without newline, cut to RAW_LINE_BYTES; full length in bytes) with bounded memory.

    A minified bundle can be one 50 MB line; only its start is ever held.
    """
    while True:
        raw = fh.readline(RAW_LINE_BYTES)
        if not raw:
            return
        if raw.endswith(b"\n"):
            yield raw[:-1], len(raw) - 1
            continue
        length = len(raw)
        while length % RAW_LINE_BYTES == 0:  # the line goes on: skip the rest of it
            rest = fh.readline(RAW_LINE_BYTES)
            if not rest:
                break
            if rest.endswith(b"\n"):
                length += len(rest) - 1
                break
            length += len(rest)
        yield raw, length


# ---------------------------------------------------------------------------------------------------------
# write_file / edit_file


def charge_write(ctx: ToolContext, rel: str, size: int) -> None:
    """Count `size` bytes against the per-call and per-task write limits (`[tools]`), or refuse the write.

    Checked before anything is written, so a refused call changes nothing.
    """
    limits = ctx.settings.tools
    if limits.max_write_bytes and size > limits.max_write_bytes:
        raise ToolError(
            f"refusing to write {rel!r}: {size:,} bytes is over the limit of {limits.max_write_bytes:,} bytes "
            "per write ([tools] max_write_bytes)",
            hint="split the content over several smaller files",
        )
    total = ctx.written_bytes + size
    if limits.max_task_write_bytes and total > limits.max_task_write_bytes:
        raise ToolError(
            f"refusing to write {rel!r}: this task has written {ctx.written_bytes:,} bytes and this write would "
            f"bring it over the limit of {limits.max_task_write_bytes:,} bytes per task "
            "([tools] max_task_write_bytes)",
            hint="finish with what you have and say what is left in the summary",
        )
    ctx.written_bytes = total


def line_count(text: str) -> int:
    """How many lines `text` spans: a newline ends a line, it does not start one ("a\\n" is one line, "" none)."""
    return text.count("\n") + (0 if not text or text.endswith("\n") else 1)


class WriteFileArgs(Args):
    path: str = Field(description="File path relative to the repository root; parent directories are created.")
    content: str = Field(description="The complete new content of the file.")


class WriteFile(BaseTool):
    name = "write_file"
    description = "Create or overwrite a file with the given content (UTF-8). Prefer edit_file for changes."
    Args = WriteFileArgs

    def run(self, args: WriteFileArgs, ctx: ToolContext) -> ToolResult:
        jp = resolve(ctx.worktree, args.path, write=True)
        refuse_protected(jp.rel)
        data = args.content.encode("utf-8")
        charge_write(ctx, jp.rel, len(data))
        created = write_bytes(jp, data)
        verb = "created" if created else "overwrote"
        return ToolResult(
            f"{verb} {jp.rel} ({len(data):,} bytes, {line_count(args.content)} lines)", data={"path": jp.rel}
        )


class EditFileArgs(Args):
    path: str = Field(description="File path relative to the repository root.")
    old: str = Field(min_length=1, description="Exact text to replace; must occur exactly once in the file.")
    new: str = Field(description="Replacement text.")


class EditFile(BaseTool):
    name = "edit_file"
    description = (
        "Replace one exact occurrence of `old` with `new` in a file. `old` must match the file exactly "
        "(whitespace included) and occur once; include surrounding lines to make it unique."
    )
    Args = EditFileArgs

    def run(self, args: EditFileArgs, ctx: ToolContext) -> ToolResult:
        jp = resolve(ctx.worktree, args.path, write=True)
        refuse_protected(jp.rel)
        fd = open_read(jp)
        with os.fdopen(fd, "rb") as fh:
            if os.fstat(fh.fileno()).st_size > EDIT_MAX_BYTES:
                raise ToolError(f"{jp.rel} is larger than {EDIT_MAX_BYTES:,} bytes; edit_file refuses it")
            data = fh.read()
        if is_binary(data):
            raise ToolError(f"{jp.rel} is a binary file; edit_file works on text files only")
        # surrogateescape round-trips bytes that are not UTF-8, so an edit never corrupts the rest of the file.
        text = data.decode("utf-8", "surrogateescape")
        count = text.count(args.old)
        if count == 0:
            raise ToolError(f"`old` was not found in {jp.rel}.{_near_matches(text, args.old)}")
        if count > 1:
            lines = _occurrence_lines(text, args.old)
            shown = ", ".join(str(n) for n in lines[:20]) + (", ..." if len(lines) > 20 else "")
            raise ToolError(
                f"`old` occurs {count} times in {jp.rel} (at lines {shown}); it must occur exactly once. "
                "Include more surrounding lines in `old` to pick one."
            )
        at = text.index(args.old)
        line = text.count("\n", 0, at) + 1
        new_data = (text[:at] + args.new + text[at + len(args.old) :]).encode("utf-8", "surrogateescape")
        charge_write(ctx, jp.rel, len(new_data))
        write_bytes(jp, new_data)
        removed, added = line_count(args.old), line_count(args.new)
        return ToolResult(
            f"edited {jp.rel}: replaced {removed} line(s) at line {line} with {added} line(s)",
            data={"path": jp.rel, "line": line},
        )


def _occurrence_lines(text: str, needle: str) -> list[int]:
    lines, pos = [], text.find(needle)
    while pos != -1:
        lines.append(text.count("\n", 0, pos) + 1)
        pos = text.find(needle, pos + 1)
    return lines


def _near_matches(text: str, old: str) -> str:
    """A hint for a failed edit: same text with other whitespace, or the most similar lines."""
    squash = re.compile(r"\s+")
    if squash.sub(" ", old).strip() and squash.sub(" ", old).strip() in squash.sub(" ", text):
        first = old.strip().splitlines()[0].strip()
        where = [i + 1 for i, ln in enumerate(text.splitlines()) if first and first in ln][:5]
        at = f" near line {', '.join(map(str, where))}" if where else ""
        return (
            f" The same text exists with different whitespace or line breaks{at}: "
            "read_file that range and copy it exactly (tabs vs spaces, trailing spaces, indentation)."
        )
    wanted = next((ln.strip() for ln in old.splitlines() if ln.strip()), "")
    lines = text.splitlines()
    scored = []
    for i, line in enumerate(lines[:20_000]):
        if line.strip():
            ratio = difflib.SequenceMatcher(None, wanted, line.strip()).quick_ratio()
            if ratio >= 0.6:
                scored.append((difflib.SequenceMatcher(None, wanted, line.strip()).ratio(), i + 1, line))
    scored.sort(key=lambda item: (-item[0], item[1]))
    close = [item for item in scored if item[0] >= 0.6][:3]
    if not close:
        return " No similar line either: read_file the file first and copy `old` from it exactly."
    shown = "\n".join(f"  line {n}: {line.strip()[:200]}" for _, n, line in close)
    return f" Most similar lines:\n{shown}\nread_file around them and copy `old` exactly."


# ---------------------------------------------------------------------------------------------------------
# diff


class DiffArgs(Args):
    path: str | None = Field(None, description="Limit the diff to this file or directory.")
    stat: bool = Field(False, description="Show only a per-file summary of changed lines.")


class Diff(BaseTool):
    name = "diff"
    description = (
        "Show what you changed so far in this task: a unified diff from the task's starting commit to the "
        "files now, new (untracked) files included."
    )
    Args = DiffArgs
    blocking = True

    def run(self, args: DiffArgs, ctx: ToolContext) -> ToolResult:
        root = ctx.worktree
        where = ":(literal)."
        if args.path:
            where = ":(literal)" + resolve(root, args.path).rel
        # A file with several hard links may hold an outside file's data (agent code can `ln ~/.netrc x`):
        # git would read it into the diff. Such files are left out, and named.
        linked = multi_link_files(root)
        pathspec = ["--", where, *(f":(exclude,literal){name}" for name in linked)]
        # New files appear in `git diff <commit>` only once in the index. Mark them intent-to-add in a
        # throwaway copy of the index, so the worktree's real index (and the later commit) is untouched.
        index = Path(decode(git(root, "rev-parse", "--path-format=absolute", "--git-path", "index")).strip())
        with tempfile.TemporaryDirectory(prefix="squad-diff-") as tmp:
            tmp_index = Path(tmp) / "index"
            if index.exists():
                shutil.copyfile(index, tmp_index)
            env = {"GIT_INDEX_FILE": str(tmp_index)}
            untracked = git(root, "ls-files", "-z", "--others", "--exclude-standard", *pathspec, env=env, literal=False)
            if untracked.strip(b"\0"):
                # Names via stdin: no argv length limit, however many new files there are.
                git(
                    root,
                    "add",
                    "--intent-to-add",
                    "--pathspec-from-file=-",
                    "--pathspec-file-nul",
                    env=env,
                    stdin=untracked,
                )
            mode = ["--stat=120"] if args.stat else []
            diff_args = ["diff", "--no-color", "--no-ext-diff", "--no-textconv", *mode, ctx.base_commit, *pathspec]
            out = git(root, *diff_args, env=env, literal=False)
        text = decode(out)
        note = ""
        if linked:
            shown = ", ".join(linked[:20]) + (", ..." if len(linked) > 20 else "")
            note = (
                f"\n[not shown: {len(linked)} file(s) with several hard links, which squad never reads or commits: "
                f"{shown}]"
            )
        if not text.strip():
            what = f"no changes since {ctx.base_commit[:12]}" + (f" in {args.path}" if args.path else "")
            return ToolResult(what + note)
        return ToolResult(text + note)


__all__ = ["Diff", "EditFile", "JailError", "ListFiles", "ReadFile", "WriteFile"]
