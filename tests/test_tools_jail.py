"""The path jail, attacked through the real tools on a real repo: nothing outside is read or written."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from conftest import git
from tools_support import SENTINEL_TEXT, call, make_ctx

from squad.agents.tools import JailError, resolve
from squad.agents.tools.jail import write_bytes


@pytest.fixture
def outside(repo: Path) -> Path:
    """A directory next to the repo holding a sentinel file no tool may read or change."""
    out = repo.parent / "outside"
    out.mkdir()
    (out / "secret.txt").write_text(SENTINEL_TEXT + "\n")
    return out


@pytest.fixture
def ctx(repo: Path, outside: Path):  # type: ignore[no-untyped-def]
    (repo / "src").mkdir()
    (repo / "src" / "app.py").write_text("print('hi')\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "src")
    return make_ctx(repo)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def assert_refused(ctx, name: str, args: dict, *words: str) -> str:  # type: ignore[no-untyped-def]
    result = call(ctx, name, args)
    assert result.is_error, f"{name}({args}) was not refused: {result.content}"
    assert SENTINEL_TEXT not in result.content
    for word in words:
        assert word in result.content, f"{word!r} not in {result.content!r}"
    return result.content


READ_TOOLS = [("read_file", "path"), ("edit_file", "path"), ("diff", "path")]


def args_for(tool: str, path: str) -> dict:
    if tool == "edit_file":
        return {"path": path, "old": "SENTINEL", "new": "pwned"}
    if tool == "write_file":
        return {"path": path, "content": "pwned\n"}
    return {"path": path}


@pytest.mark.parametrize("tool", ["read_file", "write_file", "edit_file", "diff"])
def test_absolute_and_dotdot_paths_are_refused(ctx, outside: Path, tool: str) -> None:  # type: ignore[no-untyped-def]
    before = snapshot(outside)
    assert_refused(ctx, tool, args_for(tool, str(outside / "secret.txt")), "absolute path")
    assert_refused(ctx, tool, args_for(tool, "/etc/passwd"), "absolute path")
    assert_refused(ctx, tool, args_for(tool, "/proc/self/environ"), "absolute path")
    assert_refused(ctx, tool, args_for(tool, "../outside/secret.txt"), "outside the repository")
    assert_refused(ctx, tool, args_for(tool, "src/../../outside/secret.txt"), "outside the repository")
    assert_refused(ctx, tool, args_for(tool, "./../outside/x.txt"), "outside the repository")
    assert snapshot(outside) == before
    assert not (ctx.worktree.parent / "x.txt").exists()


def test_absolute_path_inside_the_repo_gets_the_relative_hint(ctx) -> None:  # type: ignore[no-untyped-def]
    text = assert_refused(ctx, "read_file", {"path": str(ctx.worktree / "src" / "app.py")}, "absolute path")
    assert "'src/app.py'" in text


def test_dotdot_that_stays_inside_is_allowed(ctx) -> None:  # type: ignore[no-untyped-def]
    result = call(ctx, "read_file", {"path": "src/../src/app.py"})
    assert not result.is_error and "print('hi')" in result.content


@pytest.mark.parametrize("tool", ["read_file", "write_file", "edit_file"])
def test_symlinks_pointing_outside_are_refused(ctx, outside: Path, tool: str) -> None:  # type: ignore[no-untyped-def]
    root = ctx.worktree
    os.symlink(outside / "secret.txt", root / "link.txt")  # file symlink, absolute target
    os.symlink("../outside", root / "linkdir")  # directory symlink, relative target
    (root / "sub").mkdir()
    os.symlink("../../outside", root / "sub" / "deeper")  # symlink in an intermediate directory
    os.symlink(outside / "new-file.txt", root / "dangling")  # points outside at a file that does not exist yet
    before = snapshot(outside)
    for path in ["link.txt", "linkdir/secret.txt", "sub/deeper/secret.txt", "linkdir/new.txt", "dangling"]:
        text = assert_refused(ctx, tool, args_for(tool, path))
        assert "outside" in text or "does not exist" in text, text
    assert snapshot(outside) == before
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_git_metadata_is_refused(ctx) -> None:  # type: ignore[no-untyped-def]
    root = ctx.worktree
    config = (root / ".git" / "config").read_bytes()
    for path in [".git/config", ".git", "./.git/HEAD", "src/../.git/HEAD", ".GIT/config", ".git/hooks/pre-commit"]:
        assert_refused(ctx, "read_file", {"path": path}, ".git")
        assert_refused(ctx, "write_file", {"path": path, "content": "x"}, ".git")
    os.symlink(".git", root / "gitlink")
    assert_refused(ctx, "read_file", {"path": "gitlink/config"}, ".git")
    assert_refused(ctx, "write_file", {"path": "gitlink/hooks/post-checkout", "content": "#!/bin/sh\n"}, ".git")
    assert (root / ".git" / "config").read_bytes() == config
    assert not (root / ".git" / "hooks" / "post-checkout").exists()
    assert not (root / ".git" / "hooks" / "pre-commit").exists()


def test_the_git_file_of_a_worktree_is_refused(ctx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    wt = tmp_path / "wt"
    git(ctx.worktree, "worktree", "add", "-q", "-b", "side", str(wt))
    assert (wt / ".git").is_file()
    wctx = make_ctx(wt)
    assert_refused(wctx, "read_file", {"path": ".git"}, ".git")
    assert_refused(wctx, "write_file", {"path": ".git", "content": "gitdir: /tmp/evil\n"}, ".git")
    assert (wt / ".git").read_text().startswith("gitdir: ")
    assert not call(wctx, "read_file", {"path": "src/app.py"}).is_error


def test_nul_bytes_and_overlong_paths_are_refused(ctx) -> None:  # type: ignore[no-untyped-def]
    assert_refused(ctx, "read_file", {"path": "src/app.py\x00.txt"}, "NUL")
    assert_refused(ctx, "write_file", {"path": "a\x00b", "content": "x"}, "NUL")
    assert_refused(ctx, "read_file", {"path": "a/" * 2100 + "x"}, "too long")
    assert_refused(ctx, "write_file", {"path": "d" * 300 + ".txt", "content": "x"}, "longer than 255")
    assert_refused(ctx, "read_file", {"path": ""}, "empty")


@pytest.mark.timeout(10)
def test_fifos_sockets_and_devices_are_refused(ctx) -> None:  # type: ignore[no-untyped-def]
    root = ctx.worktree
    os.mkfifo(root / "pipe")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(root / "sock"))
        for tool in ["read_file", "write_file", "edit_file"]:
            assert_refused(ctx, tool, args_for(tool, "pipe"), "not a regular file")
            assert_refused(ctx, tool, args_for(tool, "sock"), "not a regular file")
    finally:
        sock.close()
    os.symlink("/dev/zero", root / "zero")
    os.symlink("/proc/self/environ", root / "environ")
    assert_refused(ctx, "read_file", {"path": "zero"}, "outside")
    assert_refused(ctx, "read_file", {"path": "environ"}, "outside")


def test_writes_never_go_through_a_symlink_even_one_inside(ctx) -> None:  # type: ignore[no-untyped-def]
    root = ctx.worktree
    os.symlink("src/app.py", root / "alias.py")
    assert call(ctx, "read_file", {"path": "alias.py"}).content.endswith("print('hi')")  # reads may follow it
    assert_refused(ctx, "write_file", {"path": "alias.py", "content": "x"}, "symlink", "src/app.py")
    assert_refused(ctx, "edit_file", {"path": "alias.py", "old": "hi", "new": "ho"}, "symlink")
    assert (root / "src" / "app.py").read_text() == "print('hi')\n"


def test_search_and_list_files_do_not_follow_symlinks_out(ctx, outside: Path) -> None:  # type: ignore[no-untyped-def]
    root = ctx.worktree
    os.symlink(outside / "secret.txt", root / "leak.txt")
    os.symlink("../outside", root / "leakdir")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "symlinks")
    found = call(ctx, "search", {"pattern": "SENTINEL"})
    assert not found.is_error and found.content.startswith("no matches")
    assert SENTINEL_TEXT not in call(ctx, "list_files", {}).content
    assert "leak.txt" in call(ctx, "list_files", {}).content


def test_write_refuses_a_directory_swapped_for_a_symlink(ctx, outside: Path) -> None:  # type: ignore[no-untyped-def]
    """TOCTOU: the path was checked, then a directory on it became a symlink out; the write must fail."""
    root = ctx.worktree
    (root / "d").mkdir()
    jp = resolve(root, "d/f.txt", write=True)
    (root / "d").rmdir()
    os.symlink(outside, root / "d")
    with pytest.raises(JailError):
        write_bytes(jp, b"pwned\n")
    assert not (outside / "f.txt").exists()


def test_write_refuses_a_file_swapped_for_a_symlink(ctx, outside: Path) -> None:  # type: ignore[no-untyped-def]
    root = ctx.worktree
    jp = resolve(root, "f.txt", write=True)
    os.symlink(outside / "secret.txt", root / "f.txt")
    with pytest.raises(JailError):
        write_bytes(jp, b"pwned\n")
    assert (outside / "secret.txt").read_text() == SENTINEL_TEXT + "\n"
