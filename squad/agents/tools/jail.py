"""The path jail every path-taking tool goes through: a model-supplied path never leaves the worktree.

`resolve` is the one check (lexical, then on the real filesystem); `open_read` and `write_bytes` then
open what it returned through `squad.infra.safefs`, component by component without following links, so
a directory swapped for a symlink after the check makes the call fail instead of escaping, and a file
with several hard links (its data may be an outside file's) is refused. `protected` is the one
comparison for the paths agents may not touch (`.git` anywhere, `.squad/`, ledger files under
`decisions/`): case-insensitive and Unicode-normalised, as macOS and Windows file systems compare names.
Every refusal is a `JailError` whose message tells the model what to do instead.
"""

from __future__ import annotations

import os
import re
import stat
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from squad.agents.tools.base import ToolError
from squad.infra import safefs

MAX_PATH_BYTES = 4096
MAX_COMPONENT_BYTES = 255

#: Code points HFS+ ignores in names (git's is_hfs_dotgit list): `.g\u200cit` is `.git` there.
_HFS_IGNORABLE = re.compile("[\u200c-\u200f\u202a-\u202e\u206a-\u206f\ufeff]")
#: A Windows 8.3 short name (`GIT~1`, `DECISI~1`): the first up to six characters, `~`, a number.
_SHORT_NAME = re.compile(r"([^~]{1,6})~[0-9]+")


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


# ---------------------------------------------------------------------------------------------------------
# Protected names


def fold(name: str) -> str:
    """A path component as a case-insensitive, normalising file system sees it, for comparisons only.

    Unicode canonical caseless form (NFD, casefold, NFD; `.ſquad` and `.SQUAD` are `.squad`), without the
    code points HFS+ ignores, without an NTFS stream suffix (`.git::$INDEX_ALLOCATION`) and without the
    trailing dots and spaces Windows drops (`.squad.`).
    """
    text = _HFS_IGNORABLE.sub("", unicodedata.normalize("NFD", name))
    text = unicodedata.normalize("NFD", text.casefold())
    text = text.split(":", 1)[0]
    return text.rstrip(". ") or text


def same_name(name: str, protected_name: str) -> bool:
    """Whether component `name` may name `protected_name` on some file system (also as an 8.3 short name)."""
    folded = fold(name)
    if folded == protected_name:
        return True
    short = _SHORT_NAME.fullmatch(folded)
    return short is not None and protected_name.lstrip(".")[:6] == short[1]


def protected(parts: Sequence[str] | str) -> str | None:
    """Why agents may not write this root-relative path, or None when they may.

    The one comparison used by every check (file tools, command arguments): `.git` at any depth (never
    readable either), `.squad/` (the user's settings and charters: an agent could widen its own
    allowlist), and ledger files under `decisions/` (append-only; record_decision writes them).
    """
    if isinstance(parts, str):
        parts = [p for p in parts.split("/") if p not in ("", ".")]
    if any(same_name(part, ".git") for part in parts):
        return "git"
    if not parts:
        return None
    if same_name(parts[0], ".squad"):
        return "squad"
    if same_name(parts[0], "decisions") and len(parts) > 1 and not (len(parts) == 2 and fold(parts[1]) == "readme.md"):
        return "ledger"
    return None


def refuse_protected(rel: str) -> None:
    """Refuse writes an agent must not make even inside its worktree (see `protected`)."""
    kind = protected(rel)
    if kind == "git":
        raise JailError(
            f"path {rel!r} refused: it is inside .git; git metadata is off limits",
            hint="use the diff tool to see your changes; the workspace commits for you",
        )
    if kind == "squad":
        raise JailError(
            f"refusing to write {rel!r}: .squad/ holds the user's squad settings and agent charters",
            hint="describe the change you would make in your finish summary instead",
        )
    if kind == "ledger":
        raise JailError(
            f"refusing to write {rel!r}: the decisions ledger is append-only",
            hint="use record_decision (with supersedes to replace an earlier decision)",
        )


# ---------------------------------------------------------------------------------------------------------
# Resolving


def resolve(root: Path, path: str, *, write: bool = False) -> JailedPath:
    """Resolve a model-supplied relative `path` inside `root`, or raise JailError.

    Refuses: empty paths, NUL bytes, over-long paths, absolute paths, `..` escapes, anything under
    `.git` (in any case or spelling a file system would take for it), symlinks (at any depth) whose target
    is outside the worktree or under `.git`, and special files (devices, FIFOs, sockets). With
    `write=True`, also refuses a final component that is a symlink (even one pointing inside), so a write
    can never land somewhere the path does not say.
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


# ---------------------------------------------------------------------------------------------------------
# Opening


def open_read(jp: JailedPath) -> int:
    """Open a jailed regular file for reading: no link followed on any component, no blocking on a FIFO
    swapped in, no file with several hard links."""
    if not jp.parts:
        raise JailError("'.' is the repository root, a directory", hint="use list_files to see what is in it")
    try:
        return safefs.open_file(jp.root, jp.parts)
    except FileNotFoundError:
        raise JailError(f"file {jp.rel!r} does not exist", hint="use list_files to see the files") from None
    except (IsADirectoryError, NotADirectoryError):
        raise JailError(f"{jp.rel!r} is a directory", hint="use list_files to see what is in it") from None
    except safefs.UnsafePathError as exc:
        raise JailError(f"refusing to read {jp.rel!r}: {exc.message}", hint=exc.hint) from None
    except OSError as exc:
        raise JailError(f"cannot open {jp.rel!r}: {exc.strerror}") from None


def write_bytes(jp: JailedPath, data: bytes) -> bool:
    """Write `data` to a jailed path atomically, creating parent directories, following no link.

    Returns whether the file was created. See `squad.infra.safefs.write_file`.
    """
    if not jp.parts:
        raise JailError("cannot write to the repository root; give a file path")
    try:
        return safefs.write_file(jp.root, jp.parts, data)
    except IsADirectoryError:
        raise JailError(f"{jp.rel!r} is a directory; give a file path") from None
    except safefs.UnsafePathError as exc:
        raise JailError(f"refusing to write {jp.rel!r}: {exc.message}", hint=exc.hint) from None
    except OSError as exc:
        raise JailError(f"cannot write {jp.rel!r}: {exc.strerror}") from None


def _relative_to(path: str, root: str) -> str | None:
    """Real `path` relative to real `root`, or None when it is not inside (string prefix on a separator)."""
    if path == root:
        return "."
    prefix = root if root.endswith("/") else root + "/"
    return path[len(prefix) :] if path.startswith(prefix) else None


def _refuse_git(path: str, parts: list[str], *, via_link: bool = False) -> None:
    # Folded: on a case-insensitive or normalising file system `.GIT/config` is the real thing.
    if any(same_name(part, ".git") for part in parts):
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
