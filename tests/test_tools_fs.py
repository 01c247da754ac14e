"""list_files, read_file, search, write_file, edit_file and diff on real files in a real git repo."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import git
from tools_support import call, make_ctx

from squad.agents.tools.fs import READ_MAX_CHARS, READ_MAX_LINES, glob_regex


@pytest.fixture
def ctx(repo: Path):  # type: ignore[no-untyped-def]
    (repo / "src" / "pkg").mkdir(parents=True)
    (repo / "src" / "app.py").write_text("import os\n\n\ndef main():\n    return os.getcwd()\n")
    (repo / "src" / "pkg" / "util.py").write_text("def helper():\n    return 42  # TODO tidy\n")
    (repo / "docs.md").write_text("# Docs\nTODO write docs\n")
    (repo / ".gitignore").write_text("build/\n*.log\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "files")
    return make_ctx(repo)


# --- list_files -------------------------------------------------------------------------------------------


def test_list_files_shows_tracked_and_new_files_but_not_ignored_ones(ctx) -> None:  # type: ignore[no-untyped-def]
    root = ctx.worktree
    (root / "new.py").write_text("x = 1\n")
    (root / "build").mkdir()
    (root / "build" / "out.py").write_text("ignored\n")
    (root / "debug.log").write_text("ignored\n")
    listed = call(ctx, "list_files", {}).content.splitlines()
    assert listed == [".gitignore", "README.md", "docs.md", "new.py", "src/app.py", "src/pkg/util.py"]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("*.py", ["src/app.py", "src/pkg/util.py"]),
        ("src/*.py", ["src/app.py"]),
        ("src/**/*.py", ["src/app.py", "src/pkg/util.py"]),
        ("src/", ["src/app.py", "src/pkg/util.py"]),
        ("src/pkg", ["src/pkg/util.py"]),
        ("*.[mM][dD]", ["README.md", "docs.md"]),
        ("doc?.md", ["docs.md"]),
    ],
)
def test_list_files_patterns(ctx, pattern: str, expected: list[str]) -> None:  # type: ignore[no-untyped-def]
    assert call(ctx, "list_files", {"pattern": pattern}).content.splitlines() == expected


def test_list_files_no_match_and_cap(ctx) -> None:  # type: ignore[no-untyped-def]
    assert call(ctx, "list_files", {"pattern": "*.rs"}).content == "no files matching '*.rs'"
    many = ctx.worktree / "many"
    many.mkdir()
    for i in range(1010):
        (many / f"f{i:04}.txt").write_text("")
    result = call(ctx, "list_files", {"pattern": "many/"})
    lines = result.content.splitlines()
    assert len(lines) == 1001 and lines[0] == "many/f0000.txt"
    assert "10 more files not shown (1010 in total)" in lines[-1]
    assert result.data == {"count": 1010}


def test_glob_brackets_that_do_not_close_are_literal() -> None:
    assert glob_regex("a[b.txt").match("a[b.txt")
    assert glob_regex("[!a]*.py").match("b.py") and not glob_regex("[!a]*.py").match("a.py")


# --- read_file --------------------------------------------------------------------------------------------


def test_read_file_numbers_lines_and_reads_ranges(ctx) -> None:  # type: ignore[no-untyped-def]
    whole = call(ctx, "read_file", {"path": "src/app.py"})
    assert whole.content.splitlines() == [
        "src/app.py (lines 1-5 of 5)",
        "     1\timport os",
        "     2\t",
        "     3\t",
        "     4\tdef main():",
        "     5\t    return os.getcwd()",
    ]
    part = call(ctx, "read_file", {"path": "src/app.py", "start_line": 4, "end_line": 4})
    assert part.content == "src/app.py (lines 4-4 of 5)\n     4\tdef main():"
    assert part.data == {"path": "src/app.py", "start_line": 4, "end_line": 4}


def test_read_file_range_errors(ctx) -> None:  # type: ignore[no-untyped-def]
    past = call(ctx, "read_file", {"path": "src/app.py", "start_line": 50})
    assert past.is_error and "past the end" in past.content and "5 lines" in past.content
    backwards = call(ctx, "read_file", {"path": "src/app.py", "start_line": 4, "end_line": 2})
    assert backwards.is_error and "before start_line" in backwards.content
    zero = call(ctx, "read_file", {"path": "src/app.py", "start_line": 0})
    assert zero.is_error and "start_line" in zero.content
    missing = call(ctx, "read_file", {"path": "nope.py"})
    assert missing.is_error and "does not exist" in missing.content and "list_files" in missing.content
    directory = call(ctx, "read_file", {"path": "src"})
    assert directory.is_error and "directory" in directory.content


def test_long_files_are_read_in_ranges_with_a_notice(ctx) -> None:  # type: ignore[no-untyped-def]
    (ctx.worktree / "short.txt").write_text("x\n" * 5000)
    first = call(ctx, "read_file", {"path": "short.txt"})
    assert first.content.startswith(f"short.txt (lines 1-{READ_MAX_LINES} of 5000)")
    assert first.content.endswith(f"call read_file with start_line={READ_MAX_LINES + 1} to read more]")
    # Longer lines: the character budget ends the window before the line count does.
    (ctx.worktree / "big.txt").write_text("".join(f"line {i}\n" for i in range(1, 5001)))
    window = call(ctx, "read_file", {"path": "big.txt"})
    assert window.content.startswith("big.txt (lines 1-1535 of 5000)")
    assert len(window.content) <= READ_MAX_CHARS + 200
    assert window.content.endswith("call read_file with start_line=1536 to read more]")
    last = call(ctx, "read_file", {"path": "big.txt", "start_line": 4999})
    assert last.content == "big.txt (lines 4999-5000 of 5000)\n  4999\tline 4999\n  5000\tline 5000"


def test_huge_single_line_is_cut_not_loaded(ctx) -> None:  # type: ignore[no-untyped-def]
    (ctx.worktree / "min.js").write_bytes(b"var a=1;" * 1_000_000 + b"\nsecond\n")
    result = call(ctx, "read_file", {"path": "min.js"})
    assert "[... line cut: 8,000,000 bytes]" in result.content
    assert "     2\tsecond" in result.content
    assert len(result.content) < 5000


def test_binary_and_invalid_utf8_files(ctx) -> None:  # type: ignore[no-untyped-def]
    root = ctx.worktree
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 10)
    binary = call(ctx, "read_file", {"path": "logo.png"})
    assert not binary.is_error and binary.content == "logo.png is a binary file (2,576 bytes); not shown"
    (root / "latin1.txt").write_bytes("café\r\nnaïve\n".encode("latin-1"))
    text = call(ctx, "read_file", {"path": "latin1.txt"})
    assert not text.is_error
    assert text.content.splitlines()[1:] == ["     1\tcaf\ufffd", "     2\tna\ufffdve"]
    (root / "empty.txt").write_bytes(b"")
    assert call(ctx, "read_file", {"path": "empty.txt"}).content == "empty.txt is empty (0 lines)"


# --- search -----------------------------------------------------------------------------------------------


def test_search_prints_file_line_text(ctx) -> None:  # type: ignore[no-untyped-def]
    result = call(ctx, "search", {"pattern": r"TODO \w+"})
    assert result.content.splitlines() == ["docs.md:2: TODO write docs", "src/pkg/util.py:2: return 42  # TODO tidy"]
    assert result.data == {"matches": 2, "files": 2}
    only_py = call(ctx, "search", {"pattern": "todo", "glob": "*.py", "ignore_case": True})
    assert only_py.content == "src/pkg/util.py:2: return 42  # TODO tidy"
    none = call(ctx, "search", {"pattern": "nothing-like-this"})
    assert not none.is_error and none.content == "no matches for 'nothing-like-this'"


def test_search_skips_ignored_and_binary_files_and_caps_matches(ctx) -> None:  # type: ignore[no-untyped-def]
    root = ctx.worktree
    (root / "app.log").write_text("TODO in an ignored file\n")
    (root / "blob.bin").write_bytes(b"\x00TODO binary\n")
    (root / "lots.txt").write_text("needle\n" * 500)
    assert "app.log" not in call(ctx, "search", {"pattern": "TODO"}).content
    assert "blob.bin" not in call(ctx, "search", {"pattern": "TODO"}).content
    capped = call(ctx, "search", {"pattern": "^needle$"})
    lines = capped.content.splitlines()
    assert len(lines) == 201 and lines[199] == "lots.txt:200: needle"
    assert "stopped at 200 matches" in lines[-1]


def test_search_with_an_invalid_regex_is_a_tool_error(ctx) -> None:  # type: ignore[no-untyped-def]
    result = call(ctx, "search", {"pattern": "foo("})
    assert result.is_error
    assert "invalid regular expression 'foo('" in result.content and "backslash" in result.content


# --- write_file / edit_file -------------------------------------------------------------------------------


def test_write_file_creates_parents_and_overwrites(ctx) -> None:  # type: ignore[no-untyped-def]
    root = ctx.worktree
    created = call(ctx, "write_file", {"path": "new/deep/mod.py", "content": "a = 1\nb = 2\n"})
    assert created.content == "created new/deep/mod.py (12 bytes, 2 lines)"
    assert (root / "new" / "deep" / "mod.py").read_text() == "a = 1\nb = 2\n"
    again = call(ctx, "write_file", {"path": "new/deep/mod.py", "content": "ü"})
    assert again.content == "overwrote new/deep/mod.py (2 bytes, 1 lines)"
    assert (root / "new" / "deep" / "mod.py").read_text(encoding="utf-8") == "ü"
    onto_dir = call(ctx, "write_file", {"path": "src", "content": "x"})
    assert onto_dir.is_error and "directory" in onto_dir.content
    under_file = call(ctx, "write_file", {"path": "docs.md/x.txt", "content": "x"})
    assert under_file.is_error and "not a directory" in under_file.content.lower()


def test_edit_file_replaces_exactly_one_occurrence(ctx) -> None:  # type: ignore[no-untyped-def]
    result = call(ctx, "edit_file", {"path": "src/app.py", "old": "os.getcwd()", "new": "os.getpid()"})
    assert not result.is_error and result.content == "edited src/app.py: replaced 1 line(s) at line 5 with 1 line(s)"
    assert (ctx.worktree / "src" / "app.py").read_text().endswith("return os.getpid()\n")


def test_edit_file_counts_the_lines_it_replaced_and_wrote(ctx) -> None:  # type: ignore[no-untyped-def]
    # whole lines, each ending in its newline: one line became two (a trailing newline starts no line)
    grow = {"path": "docs.md", "old": "TODO write docs\n", "new": "Read me.\nThen run it.\n"}
    result = call(ctx, "edit_file", grow)
    assert result.content == "edited docs.md: replaced 1 line(s) at line 2 with 2 line(s)"
    assert (ctx.worktree / "docs.md").read_text() == "# Docs\nRead me.\nThen run it.\n"
    both = call(ctx, "edit_file", {"path": "docs.md", "old": "# Docs\nRead me.", "new": "# Guide"})
    assert both.content == "edited docs.md: replaced 2 line(s) at line 1 with 1 line(s)"
    gone = call(ctx, "edit_file", {"path": "docs.md", "old": "Then run it.\n", "new": ""})
    assert gone.content == "edited docs.md: replaced 1 line(s) at line 2 with 0 line(s)"
    assert (ctx.worktree / "docs.md").read_text() == "# Guide\n"


def test_edit_file_with_many_matches_names_count_and_lines(ctx) -> None:  # type: ignore[no-untyped-def]
    (ctx.worktree / "dup.py").write_text("x = 1\ny = 2\nx = 1\nz = 3\nx = 1\n")
    result = call(ctx, "edit_file", {"path": "dup.py", "old": "x = 1", "new": "x = 9"})
    assert result.is_error
    assert "occurs 3 times" in result.content and "lines 1, 3, 5" in result.content
    assert "more surrounding lines" in result.content
    assert (ctx.worktree / "dup.py").read_text() == "x = 1\ny = 2\nx = 1\nz = 3\nx = 1\n"
    unique = call(ctx, "edit_file", {"path": "dup.py", "old": "x = 1\nz = 3", "new": "x = 9\nz = 3"})
    assert not unique.is_error
    assert (ctx.worktree / "dup.py").read_text() == "x = 1\ny = 2\nx = 9\nz = 3\nx = 1\n"


def test_edit_file_with_no_match_hints_at_near_matches(ctx) -> None:  # type: ignore[no-untyped-def]
    similar = call(ctx, "edit_file", {"path": "src/app.py", "old": "return os.getcwdb()", "new": "x"})
    assert similar.is_error and "not found" in similar.content
    assert "line 5: return os.getcwd()" in similar.content
    spacing = call(ctx, "edit_file", {"path": "src/app.py", "old": "def main():\n  return os.getcwd()", "new": "x"})
    assert spacing.is_error and "different whitespace" in spacing.content and "line 4" in spacing.content
    assert (ctx.worktree / "src" / "app.py").read_text().endswith("return os.getcwd()\n")


def test_edit_file_keeps_invalid_utf8_bytes_around_the_edit(ctx) -> None:  # type: ignore[no-untyped-def]
    path = ctx.worktree / "mixed.txt"
    path.write_bytes(b"caf\xe9 one\ntarget\nna\xefve\n")
    result = call(ctx, "edit_file", {"path": "mixed.txt", "old": "target", "new": "done"})
    assert not result.is_error
    assert path.read_bytes() == b"caf\xe9 one\ndone\nna\xefve\n"
    binary = ctx.worktree / "b.bin"
    binary.write_bytes(b"\x00\x01target")
    refused = call(ctx, "edit_file", {"path": "b.bin", "old": "target", "new": "x"})
    assert refused.is_error and "binary" in refused.content


# --- diff -------------------------------------------------------------------------------------------------


def test_diff_shows_changes_and_new_files_without_touching_the_index(ctx) -> None:  # type: ignore[no-untyped-def]
    root = ctx.worktree
    assert call(ctx, "diff", {}).content == f"no changes since {ctx.base_commit[:12]}"
    call(ctx, "edit_file", {"path": "docs.md", "old": "TODO write docs", "new": "Written."})
    call(ctx, "write_file", {"path": "src/new_mod.py", "content": "NEW = True\n"})
    (root / "ignored.log").write_text("nope\n")
    (root / ":(exclude)odd[1].txt").write_text("odd name\n")
    diff = call(ctx, "diff", {}).content
    assert "+++ b/:(exclude)odd[1].txt" in diff
    assert "-TODO write docs\n+Written." in diff
    assert "+++ b/src/new_mod.py" in diff and "+NEW = True" in diff
    assert "ignored.log" not in diff
    # The worktree's real index is untouched: the new file is still untracked, nothing is staged.
    assert git(root, "status", "--porcelain") == " M docs.md\n?? :(exclude)odd[1].txt\n?? src/new_mod.py\n"
    assert git(root, "diff", "--cached", "--name-only") == ""
    only_src = call(ctx, "diff", {"path": "src"}).content
    assert "src/new_mod.py" in only_src and "docs.md" not in only_src
    stat = call(ctx, "diff", {"stat": True}).content
    assert "docs.md" in stat and "3 files changed" in stat


def test_diff_is_relative_to_the_base_commit_even_after_commits(ctx) -> None:  # type: ignore[no-untyped-def]
    root = ctx.worktree
    (root / "docs.md").write_text("# Docs\ncommitted change\n")
    git(root, "commit", "-qam", "agent work")
    diff = call(ctx, "diff", {}).content
    assert "+committed change" in diff
    fresh = make_ctx(root)
    assert call(fresh, "diff", {}).content.startswith("no changes since")


def test_squad_settings_and_ledger_files_are_not_writable(ctx) -> None:  # type: ignore[no-untyped-def]
    root = ctx.worktree
    (root / ".squad").mkdir()
    (root / ".squad" / "squad.toml").write_text("[commands]\nallowed = ['pytest']\n")
    (root / "decisions" / "2026" / "11").mkdir(parents=True)
    ledger = root / "decisions" / "2026" / "11" / "2026-11-22-alice.md"
    ledger.write_text("## Old\n")
    widen = call(ctx, "edit_file", {"path": ".squad/squad.toml", "old": "'pytest'", "new": "'sh'"})
    assert widen.is_error and "squad settings" in widen.content
    assert call(ctx, "write_file", {"path": ".squad/agents/evil.md", "content": "x"}).is_error
    rewrite = call(ctx, "write_file", {"path": "decisions/2026/11/2026-11-22-alice.md", "content": "## New\n"})
    assert rewrite.is_error and "append-only" in rewrite.content and "record_decision" in rewrite.content
    assert (root / ".squad" / "squad.toml").read_text() == "[commands]\nallowed = ['pytest']\n"
    assert ledger.read_text() == "## Old\n" and not (root / ".squad" / "agents").exists()
    assert not call(ctx, "write_file", {"path": "decisions/README.md", "content": "# How to read\n"}).is_error
    assert "[commands]" in call(ctx, "read_file", {"path": ".squad/squad.toml"}).content
