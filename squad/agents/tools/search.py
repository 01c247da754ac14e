"""The `search` tool: a Python regex over the worktree's files (the ones list_files shows), jailed.

Patterns come from the model, so matching is bounded in time: the `regex` module (re-compatible syntax)
takes a timeout, where `re` would backtrack on `(a|aa)+$` for ever in a thread nobody can stop, pinning a
core and keeping the process from exiting.
"""

from __future__ import annotations

import os
import time

import regex
from pydantic import Field

from squad.agents.tools.base import Args, BaseTool, ToolContext, ToolError, ToolResult
from squad.agents.tools.fs import decode, is_binary, match_glob, worktree_files
from squad.agents.tools.jail import JailError, open_read, resolve
from squad.agents.tools.patterns import compile_regex

MAX_MATCHES = 200
MAX_MATCH_LINE_CHARS = 300
#: Larger files are skipped (and counted in the result): they are data, not code to search.
SEARCH_MAX_FILE_BYTES = 4 * 1024 * 1024
#: Wall-clock limit of one search (all files); a normal search of thousands of files takes well under 1 s.
SEARCH_TIMEOUT_S = 10.0


class SearchArgs(Args):
    pattern: str = Field(min_length=1, description="Python regular expression, matched against each line.")
    glob: str | None = Field(None, description="Only search files matching this glob, e.g. '*.py' or 'src/**'.")
    ignore_case: bool = Field(False, description="Match case-insensitively.")


class Search(BaseTool):
    name = "search"
    description = (
        "Search the repository's files (those list_files shows) for a Python regular expression, line by line. "
        f"Prints `file:line: text`, at most {MAX_MATCHES} matches; narrow with glob or a more specific pattern."
    )
    Args = SearchArgs
    blocking = True

    def run(self, args: SearchArgs, ctx: ToolContext) -> ToolResult:
        compiled = compile_regex(args.pattern, regex.IGNORECASE if args.ignore_case else 0)
        matches: list[str] = []
        files_hit = 0
        skipped_big = 0
        truncated = False
        deadline = time.monotonic() + SEARCH_TIMEOUT_S
        for name in worktree_files(ctx.worktree):
            if not match_glob(args.glob, name):
                continue
            try:
                fd = open_read(resolve(ctx.worktree, name))
            except JailError:
                continue  # symlinks out of the worktree, directories (submodules), vanished files
            with os.fdopen(fd, "rb") as fh:
                if os.fstat(fh.fileno()).st_size > SEARCH_MAX_FILE_BYTES:
                    skipped_big += 1
                    continue
                data = fh.read()
            if is_binary(data):
                continue
            hit = False
            for lineno, line in enumerate(decode(data).splitlines(), 1):
                if _search(compiled, line, deadline, f"{name}:{lineno}"):
                    if len(matches) >= MAX_MATCHES:
                        truncated = True
                        break
                    hit = True
                    text = line.strip()
                    if len(text) > MAX_MATCH_LINE_CHARS:
                        text = text[:MAX_MATCH_LINE_CHARS] + " [...]"
                    matches.append(f"{name}:{lineno}: {text}")
            files_hit += hit
            if truncated:
                break
        notes = []
        if truncated:
            notes.append(f"[stopped at {MAX_MATCHES} matches; narrow the search with glob or a more specific pattern]")
        if skipped_big:
            notes.append(f"[{skipped_big} file(s) over {SEARCH_MAX_FILE_BYTES // (1024 * 1024)} MB not searched]")
        if not matches:
            where = f" in files matching {args.glob!r}" if args.glob else ""
            return ToolResult("\n".join([f"no matches for {args.pattern!r}{where}", *notes]))
        return ToolResult("\n".join([*matches, *notes]), data={"matches": len(matches), "files": files_hit})


def _search(compiled: regex.Pattern[str], line: str, deadline: float, where: str) -> bool:
    """Whether `line` matches, within what is left of the search's time; ToolError when time runs out."""
    try:
        return compiled.search(line, timeout=max(deadline - time.monotonic(), 0.001)) is not None
    except TimeoutError:
        raise ToolError(
            f"the search took too long (over {SEARCH_TIMEOUT_S:g} s; stopped at {where})",
            hint="simplify the pattern (nested repetition such as (a+)+ or (a|aa)+ backtracks exponentially) "
            "or narrow the files with glob",
        ) from None
