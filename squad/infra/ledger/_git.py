"""The few git facts the ledger needs, via the git CLI (light, no GitPython import)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from squad.errors import LedgerError, UsageError


def _git(root: Path, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    from squad.infra.git import run_git

    return run_git(root, *args, text=False, input=input)


def common_dir(root: Path) -> Path:
    """The git common dir of the repository holding `root` (shared by all its worktrees).

    Raises:
        LedgerError: `root` is not inside a git repository.
    """
    out = _git(root, "rev-parse", "--git-common-dir")
    if out.returncode != 0:
        raise LedgerError(
            f"{root} is not inside a git repository, so there is nowhere to keep the ledger lock",
            hint="run this inside a git repository (`git init`); ledger locks live under its git common dir",
        )
    return (root / out.stdout.decode().strip()).resolve()


def read_tree(root: Path, ref: str, under: str) -> dict[str, str]:
    """Every file under `under` at git `ref`, as {repo-relative path: text}.

    One `git ls-tree` and one `git cat-file --batch` process, however many files there are.

    Raises:
        UsageError: `ref` does not name a commit.
    """
    verify = _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if verify.returncode != 0:
        raise UsageError(f"unknown git ref {ref!r}", hint="pass a branch, tag or commit, e.g. --base origin/main")
    listing = _git(root, "ls-tree", "-r", "-z", "--full-tree", verify.stdout.decode().strip(), "--", under)
    if listing.returncode != 0:
        raise LedgerError(f"git ls-tree {ref} failed: {listing.stderr.decode().strip()}")
    blobs: list[tuple[str, str]] = []
    for record in listing.stdout.decode().split("\0"):
        if not record:
            continue
        info, path = record.split("\t", 1)
        _mode, kind, sha = info.split()
        if kind == "blob":
            blobs.append((path, sha))
    if not blobs:
        return {}
    batch = _git(root, "cat-file", "--batch", input="".join(f"{sha}\n" for _, sha in blobs).encode())
    if batch.returncode != 0:
        raise LedgerError(f"git cat-file failed: {batch.stderr.decode().strip()}")
    data = batch.stdout
    files: dict[str, str] = {}
    pos = 0
    for path, _sha in blobs:
        header_end = data.index(b"\n", pos)
        size = int(data[pos:header_end].split()[2])
        body = data[header_end + 1 : header_end + 1 + size]
        pos = header_end + 1 + size + 1  # content is followed by one newline
        files[path] = body.decode("utf-8", errors="replace")
    return files


def slugify(text: str) -> str:
    """Lower-case `text` and keep [a-z0-9-] runs, e.g. "Ada Lovelace" -> "ada-lovelace"."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def person_slug(root: Path) -> str:
    """Who is recording: the local part of `git config user.email`, else user.name, else $USER.

    Raises:
        UsageError: none of them is set.
    """
    for key, pick in (("user.email", lambda v: v.split("@", 1)[0]), ("user.name", lambda v: v)):
        out = _git(root, "config", key)
        if out.returncode == 0 and (slug := slugify(pick(out.stdout.decode().strip()))):
            return slug
    if slug := slugify(os.environ.get("USER", "")):
        return slug
    raise UsageError(
        "cannot tell who you are: git user.email, user.name and $USER are all unset",
        hint="pass --person NAME or set `git config user.email`",
    )
