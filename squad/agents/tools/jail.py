"""The path jail every path-taking tool goes through: a model-supplied path never leaves the worktree.

`resolve` is the one check (lexical, then on the real filesystem); `open_read` and `open_write` open
what it returned without following a symlink swapped in afterwards. Every refusal is a `JailError`
whose message tells the model what to do instead.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from squad.agents.tools.base import ToolError

MAX_PATH_BYTES = 4096
MAX_COMPONENT_BYTES = 255


class JailError(ToolError):
    """A path was refused because it is, or leads, outside the worktree (or into .git)."""


@dataclass(frozen=True)
class JailedPath:
    """A path checked to lie inside the worktree.

    Plain strings (not Path objects): search resolves every file of the repo through here.

    Attributes:
        root: the worktree's real path (symlinks resolved).
        rel: the real path relative to `root`, POSIX style ("." for the root itself).
        path: the real absolute path.
    """

    root: str
    rel: str
    path: str

    @property
    def parts(self) -> tuple[str, ...]:
        return () if self.rel == "." else tuple(self.rel.split("/"))


def resolve(root: Path, path: str, *, write: bool = False) -> JailedPath:
    """Resolve a model-supplied relative `path` inside `root`, or raise JailError.

    Refuses: empty paths, NUL bytes, over-long paths, absolute paths, `..` escapes, anything under
    `.git`, symlinks (at any depth) whose target is outside the worktree or under `.git`, and special
    files (devices, FIFOs, sockets). With `write=True`, also refuses a final component that is a
    symlink (even one pointing inside), so a write can never land somewhere the path does not say.
    """
    if not isinstance(path, str) or not path.strip():
        raise JailError("path is empty; give a path relative to the repository root, e.g. 'src/app.py'")
    if "\x00" in path:
        raise JailError("path contains a NUL byte; give a plain relative path")
    encoded = path.encode("utf-8", "surrogateescape")
    if len(encoded) > MAX_PATH_BYTES:
        raise JailError(f"path is too long ({len(encoded)} bytes; the limit is {MAX_PATH_BYTES})")
    real_root = os.path.realpath(root)
    if path.startswith("/"):
        hint = ""
        inside = _relative_to(os.path.realpath(path), real_root)
        if inside is not None:
            hint = f" (inside the repository that is {inside!r})"
        raise JailError(
            f"absolute path {path!r} refused: paths are relative to the repository root{hint}",
            hint="e.g. 'src/app.py', not '/home/.../src/app.py'",
        )

    parts: list[str] = []
    for part in path.split("/"):
        if len(part.encode("utf-8", "surrogateescape")) > MAX_COMPONENT_BYTES:
            raise JailError(f"path component {part[:40]!r}... is longer than {MAX_COMPONENT_BYTES} bytes")
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise JailError(f"path {path!r} refused: '..' leads outside the repository root")
            parts.pop()
            continue
        parts.append(part)
    _refuse_git(path, parts)

    lexical = os.path.join(real_root, *parts)
    real = os.path.realpath(lexical)
    rel = _relative_to(real, real_root)
    if rel is None:
        raise JailError(
            f"path {path!r} refused: {_symlink_culprit(real_root, parts)} points outside the repository",
            hint="only files inside the repository can be read or written",
        )
    rel_parts = [] if rel == "." else rel.split("/")
    _refuse_git(path, rel_parts, via_link=True)

    try:
        st = os.stat(real)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise JailError(f"cannot access {path!r}: {exc.strerror}") from None
    if st is not None and not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        raise JailError(f"path {path!r} refused: not a regular file or directory (device, FIFO or socket)")
    if write and parts and os.path.islink(lexical):
        raise JailError(
            f"refusing to write through symlink {'/'.join(parts)!r}",
            hint=f"write to its target {rel!r} instead" if rel != "." else None,
        )
    return JailedPath(root=real_root, rel=rel, path=real)


def open_read(jp: JailedPath) -> int:
    """Open a jailed regular file for reading: no symlink follow, no blocking on a FIFO swapped in."""
    try:
        fd = os.open(jp.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise JailError(f"file {jp.rel!r} does not exist", hint="use list_files to see the files") from None
    except IsADirectoryError:
        raise JailError(f"{jp.rel!r} is a directory", hint="use list_files to see what is in it") from None
    except OSError as exc:
        raise JailError(f"cannot open {jp.rel!r}: {exc.strerror}") from None
    mode = os.fstat(fd).st_mode
    if stat.S_ISDIR(mode):
        os.close(fd)
        raise JailError(f"{jp.rel!r} is a directory", hint="use list_files to see what is in it")
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise JailError(f"path {jp.rel!r} refused: not a regular file")
    return fd


def open_write(jp: JailedPath) -> tuple[int, bool]:
    """Open a jailed path for writing (create or truncate), creating parent directories.

    Walks from the worktree root one directory at a time with `O_NOFOLLOW`, so a directory replaced by
    a symlink between `resolve` and now makes the write fail instead of escaping. Returns the fd and
    whether the file was created.
    """
    parts = jp.parts
    if not parts:
        raise JailError("cannot write to the repository root; give a file path")
    dir_flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(jp.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for i, part in enumerate(parts[:-1]):
            try:
                nfd = os.open(part, dir_flags, dir_fd=fd)
            except FileNotFoundError:
                os.mkdir(part, 0o777, dir_fd=fd)
                nfd = os.open(part, dir_flags, dir_fd=fd)
            except (NotADirectoryError, OSError) as exc:
                where = "/".join(parts[: i + 1])
                raise JailError(f"cannot create {jp.rel!r}: {where!r} is not a directory ({exc.strerror})") from None
            os.close(fd)
            fd = nfd
        created = True
        try:
            st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
            created = False
            if stat.S_ISDIR(st.st_mode):
                raise JailError(f"{jp.rel!r} is a directory; give a file path")
            if not stat.S_ISREG(st.st_mode):
                raise JailError(f"refusing to write {jp.rel!r}: not a regular file")
        except FileNotFoundError:
            pass
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            return os.open(parts[-1], flags, 0o666, dir_fd=fd), created
        except OSError as exc:
            raise JailError(f"cannot write {jp.rel!r}: {exc.strerror}") from None
    finally:
        os.close(fd)


def _relative_to(path: str, root: str) -> str | None:
    """Real `path` relative to real `root`, or None when it is not inside (string prefix on a separator)."""
    if path == root:
        return "."
    prefix = root if root.endswith("/") else root + "/"
    return path[len(prefix) :] if path.startswith(prefix) else None


def _refuse_git(path: str, parts: list[str], *, via_link: bool = False) -> None:
    # Case-insensitive: on a case-insensitive filesystem `.GIT/config` is the real thing.
    if any(part.lower() == ".git" for part in parts):
        how = " (through a symlink)" if via_link else ""
        raise JailError(
            f"path {path!r} refused: it is inside .git{how}; git metadata is off limits",
            hint="use the diff tool to see your changes; the workspace commits for you",
        )


def _symlink_culprit(root: str, parts: list[str]) -> str:
    """Name the first symlink on the way to `parts`, for an error the model can understand."""
    current = root
    for i, part in enumerate(parts):
        current = os.path.join(current, part)
        if os.path.islink(current):
            return f"symlink {'/'.join(parts[: i + 1])!r}"
    return "the path"
