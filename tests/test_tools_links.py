"""Links planted by agent code (issue 10, item 3). An allowed command runs agent code, and agent code can make
symlinks and hard links in its worktree, or swap a directory for a symlink while a tool is working. Here
the test plays that code. Reads must be as race-free as writes, a hard link's data is never read, written
or committed, squad's own writes follow no link, and every file write is atomic (issue 13: a kill between
truncate and write left a source file empty)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import git
from tools_support import SENTINEL_TEXT, call, make_ctx, make_outside, snapshot

INSIDE_TEXT = "inside, harmless\n"
FLIPPER = """
import os, sys
root = sys.argv[1]
j = lambda name: os.path.join(root, name)
print("flipping", flush=True)
while True:
    os.rename(j("d"), j("d_real")); os.rename(j("d_link"), j("d"))
    os.rename(j("d"), j("d_link")); os.rename(j("d_real"), j("d"))
"""


@pytest.fixture
def outside(repo: Path) -> Path:
    return make_outside(repo)


@pytest.fixture
def ctx(repo: Path, outside: Path):  # type: ignore[no-untyped-def]
    (repo / "d").mkdir()
    (repo / "d" / "secret.txt").write_text(INSIDE_TEXT)
    (repo / "src.py").write_text("print('hi')\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "files")
    return make_ctx(repo)


@pytest.mark.timeout(120)
def test_a_directory_swapped_for_a_symlink_during_reads_never_leaks(ctx, outside: Path) -> None:  # type: ignore[no-untyped-def]
    """Agent code flips `d` between a real directory and a symlink to the outside directory (which holds a
    file of the same name) while the agent reads `d/secret.txt`. Without opening every component with
    O_NOFOLLOW, about one read in three returned the outside file."""
    root = ctx.worktree
    (root / "d_link").symlink_to(outside, target_is_directory=True)
    # A separate process, as agent code left running by a command would be: it flips in parallel with us.
    flipper = subprocess.Popen([sys.executable, "-c", FLIPPER, str(root)], stdout=subprocess.PIPE, text=True)
    assert flipper.stdout is not None and flipper.stdout.readline() == "flipping\n"
    leaks = reads = 0
    try:
        for i in range(200):
            if i % 10:
                result = call(ctx, "read_file", {"path": "d/secret.txt"})
            else:
                result = call(ctx, "search", {"pattern": "SENTINEL|harmless"})
            reads += not result.is_error
            leaks += SENTINEL_TEXT in result.content
    finally:
        flipper.kill()
        flipper.wait()
    assert leaks == 0, f"{leaks} of 200 reads returned the outside file"
    assert reads > 0  # the race really ran against successful reads


def test_a_hard_link_to_an_outside_file_is_never_read_written_or_shown(ctx, outside: Path) -> None:  # type: ignore[no-untyped-def]
    root = ctx.worktree
    os.link(outside / "secret.txt", root / "notes.txt")  # untracked
    os.unlink(root / "src.py")
    os.link(outside / "secret.txt", root / "src.py")  # a tracked path replaced by a link
    before = snapshot(outside)
    for path in ("notes.txt", "src.py"):
        read = call(ctx, "read_file", {"path": path})
        assert read.is_error and "hard links" in read.content and SENTINEL_TEXT not in read.content, read.content
        wrote = call(ctx, "write_file", {"path": path, "content": "pwned\n"})
        assert wrote.is_error and "hard links" in wrote.content, wrote.content
        edited = call(ctx, "edit_file", {"path": path, "old": "SENTINEL", "new": "pwned"})
        assert edited.is_error and SENTINEL_TEXT not in edited.content, edited.content
    searched = call(ctx, "search", {"pattern": "SENTINEL"})
    assert SENTINEL_TEXT not in searched.content and searched.content.startswith("no matches"), searched.content
    diffed = call(ctx, "diff", {})
    assert SENTINEL_TEXT not in diffed.content, diffed.content
    assert "notes.txt" in diffed.content and "hard link" in diffed.content  # said, not silently dropped
    assert snapshot(outside) == before
    from squad.infra import safefs

    assert safefs.multi_link_files(root) == ["notes.txt", "src.py"]  # what Workspace.commit must not add


def test_file_tools_write_atomically_and_keep_the_mode(ctx) -> None:  # type: ignore[no-untyped-def]
    """A write replaces the file (new inode, by rename) instead of truncating it in place: a writer killed
    half way leaves the old content, never an empty file. The mode of the replaced file is kept."""
    root = ctx.worktree
    script = root / "run.sh"
    script.write_text("#!/bin/sh\necho old\n")
    script.chmod(0o750)
    old_inode = script.stat().st_ino
    wrote = call(ctx, "write_file", {"path": "run.sh", "content": "#!/bin/sh\necho new\n"})
    assert not wrote.is_error, wrote.content
    assert script.stat().st_ino != old_inode and stat.S_IMODE(script.stat().st_mode) == 0o750
    edit_inode = script.stat().st_ino
    edited = call(ctx, "edit_file", {"path": "run.sh", "old": "echo new", "new": "echo edited"})
    assert not edited.is_error and script.read_text() == "#!/bin/sh\necho edited\n"
    assert script.stat().st_ino != edit_inode and stat.S_IMODE(script.stat().st_mode) == 0o750
    assert sorted(p.name for p in root.iterdir() if p.name.startswith(".squad-write")) == []  # no temp left


def test_squads_own_writes_follow_no_link(repo: Path, outside: Path) -> None:
    """During integration squad writes the run's ledger into a worktree holding whatever agents committed:
    `decisions/2026` may be a symlink out, or the ledger file itself a link. safefs.write_file is the one
    function for such writes; it never writes through either."""
    from squad.infra import safefs

    (repo / "decisions").mkdir()
    (repo / "decisions" / "2026").symlink_to(outside, target_is_directory=True)
    (repo / "decisions" / "run.md").symlink_to(outside / "secret.txt")
    before = snapshot(outside)
    with pytest.raises(safefs.UnsafePathError):
        safefs.write_file(repo, "decisions/2026/11/ledger.md", b"# ledger\n")
    with pytest.raises(safefs.UnsafePathError):
        safefs.write_file(repo, "decisions/run.md", b"# ledger\n")
    assert safefs.write_file(repo, "decisions/run.md", b"# ledger\n", replace_symlink=True)  # the link, not its target
    assert not (repo / "decisions" / "run.md").is_symlink()
    assert (repo / "decisions" / "run.md").read_bytes() == b"# ledger\n"
    assert snapshot(outside) == before
    with pytest.raises(safefs.UnsafePathError):
        safefs.write_file(repo, "../outside/secret.txt", b"x")
    with pytest.raises(safefs.UnsafePathError):
        safefs.write_file(repo, "/etc/passwd", b"x")
