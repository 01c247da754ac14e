"""Reading and writing files inside a directory an agent controls, without ever following a link.

An allowed command can run agent code, and agent code can plant symlinks and hard links anywhere in its
worktree, or swap a directory for a symlink at any moment (between a check and an open, say). So:

- every component is opened relative to its parent's descriptor with `O_NOFOLLOW` (openat style): no
  path leads out of the root, however it changes under us, and a swapped-in link makes the call fail;
- a regular file with more than one hard link is refused: its data may be an outside file's (agent
  code can `ln ~/.ssh/id_rsa notes.txt`), and git would commit that data;
- writes are atomic: a temp file in the same directory, fsync, rename over the target (keeping the
  target's permission bits). A writer killed half way leaves the old file, never a truncated one, and
  the rename replaces a name, so it can never write into another file through a link.

`write_file` is the one function for every file squad writes into a worktree (agent tools, the run's
ledger during integration); `multi_link_files` is the check to run before committing a worktree.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

from squad.errors import SquadError
from squad.infra import faults

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_TEMP_PREFIX = ".squad-write-"


class UnsafePathError(SquadError):
    """A path inside the root was refused: a link, not a regular file, or it changed while being opened."""


def split(rel: str | Sequence[str]) -> list[str]:
    """Components of a root-relative POSIX path; UnsafePathError for empty, absolute, `.`/`..` or NUL."""
    parts = rel.split("/") if isinstance(rel, str) else list(rel)
    if isinstance(rel, str) and rel.startswith("/"):
        raise UnsafePathError(f"{rel!r} is absolute; a path relative to the root is required")
    if not parts or any(p in ("", ".", "..") or "\x00" in p for p in parts):
        raise UnsafePathError(f"{'/'.join(parts)!r} is not a plain relative path")
    return parts


@contextlib.contextmanager
def open_dir(root: str | os.PathLike[str], parts: Sequence[str], *, create: bool = False) -> Iterator[int]:
    """A descriptor of directory `root/parts...`, every component opened with O_NOFOLLOW.

    Missing directories are made when `create` is set. A component that is a symlink (or not a
    directory) raises UnsafePathError. The descriptor is closed on leaving the block.
    """
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for i, part in enumerate(parts):
            try:
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):  # made meanwhile: open it, no-follow as always
                    os.mkdir(part, 0o777, dir_fd=fd)
                nfd = _open_dir_component(part, fd, parts[: i + 1])
            except OSError as exc:
                raise _not_a_dir(parts[: i + 1], exc) from None
            os.close(fd)
            fd = nfd
        yield fd
    finally:
        os.close(fd)


def _open_dir_component(part: str, fd: int, where: Sequence[str]) -> int:
    try:
        return os.open(part, _DIR_FLAGS, dir_fd=fd)
    except OSError as exc:
        raise _not_a_dir(where, exc) from None


def _not_a_dir(where: Sequence[str], exc: OSError) -> UnsafePathError:
    name = "/".join(where)
    return UnsafePathError(
        f"{name!r} is a symlink or not a directory ({exc.strerror}); squad does not follow links inside the "
        "worktree while opening a file"
    )


def open_file(root: str | os.PathLike[str], rel: str | Sequence[str]) -> int:
    """Open `root/rel` for reading without following any link; refuse a file with several hard links.

    Returns a descriptor of a regular file. Raises FileNotFoundError when it does not exist,
    IsADirectoryError for a directory, UnsafePathError for a symlink, a special file or a hard link.
    """
    parts = split(rel)
    with open_dir(root, parts[:-1]) as dir_fd:
        try:
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafePathError(f"{'/'.join(parts)!r} is a symlink; it is not followed") from None
            raise
    try:
        check_single(os.fstat(fd), "/".join(parts))
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_single(st: os.stat_result, name: str) -> None:
    """UnsafePathError unless `st` is a regular file with exactly one link (or a directory)."""
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(21, "Is a directory", name)
    if not stat.S_ISREG(st.st_mode):
        raise UnsafePathError(f"{name!r} is not a regular file (device, FIFO, socket or link)")
    if st.st_nlink > 1:
        raise UnsafePathError(
            f"{name!r} has {st.st_nlink} hard links: its data may belong to a file outside the worktree, so "
            "squad neither reads, writes nor commits it",
            hint="delete it and write the file anew",
        )


def write_file(
    root: str | os.PathLike[str],
    rel: str | Sequence[str],
    data: bytes,
    *,
    make_parents: bool = True,
    replace_symlink: bool = False,
) -> bool:
    """Write `data` to `root/rel` atomically, following no link on the way. Returns True if it was created.

    The parent directories are opened (and with `make_parents` created) with O_NOFOLLOW; the data goes to
    a temp file in the same directory, is fsynced, and renamed over the target, which keeps its permission
    bits. An existing target must be a regular file with one link; a symlink there is refused, or with
    `replace_symlink` replaced by the new file (the link's target is never touched either way).

    Raises:
        UnsafePathError: a link or special file on the way or at the target, or a hard-linked target.
        IsADirectoryError: the target is a directory.
        OSError: anything else the file system says (no space, permissions).
    """
    parts = split(rel)
    name = parts[-1]
    with open_dir(root, parts[:-1], create=make_parents) as dir_fd:
        mode: int | None = None
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if st is not None:
            if stat.S_ISLNK(st.st_mode):
                if not replace_symlink:
                    raise UnsafePathError(f"{'/'.join(parts)!r} is a symlink; refusing to write through it")
            else:
                check_single(st, "/".join(parts))
                mode = stat.S_IMODE(st.st_mode) & 0o777
        tmp = f"{_TEMP_PREFIX}{secrets.token_hex(6)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666, dir_fd=dir_fd)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if mode is not None:
                    os.fchmod(fd, mode)
                os.fsync(fd)
                faults.point("tool_write")  # test-only: killed with the new data written but not in place
            finally:
                os.close(fd)
            # rename() replaces the name itself: a link swapped in at the target since the check is replaced,
            # never followed.
            os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
        with contextlib.suppress(OSError):  # durability of the rename; not every file system allows it
            os.fsync(dir_fd)
    return st is None or stat.S_ISLNK(st.st_mode)


def multi_link_files(root: Path) -> list[str]:
    """Regular files git would commit from worktree `root` (tracked or untracked, not ignored) that have
    more than one hard link, as sorted root-relative paths.

    Call it before committing a worktree an agent worked in: such a file's data may be an outside
    file's, and `git add` would copy it into the repository. Removing the name from the worktree
    (`os.unlink`) never touches the other link.
    """
    from squad.infra.git import run_git

    out = run_git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard", text=False)
    if out.returncode != 0:
        raise SquadError(f"git ls-files failed in {root}: {out.stderr.decode('utf-8', 'replace').strip()}")
    found = []
    for raw in sorted(set(out.stdout.split(b"\0"))):
        if not raw:
            continue
        rel = os.fsdecode(raw)
        try:
            st = os.lstat(os.path.join(root, rel))
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            found.append(rel)
    return found
