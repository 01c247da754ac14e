"""What a checkout holds that its worktrees will not: untracked environments, packages, `.env` files, submodules.

Read by `squad init` (to suggest `[workspace]` settings) and `squad doctor` (to warn about what worktrees will
lack). Only untracked paths count: a tracked file is in every worktree already.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from squad.infra.git import run_git

#: Untracked things worth bringing into a worktree: path -> (key, why).
CANDIDATES: dict[str, tuple[str, str]] = {
    ".venv": ("link", "a virtualenv"),
    "venv": ("link", "a virtualenv"),
    "node_modules": ("link", "installed Node packages"),
    ".env": ("copy", "local settings"),
}
#: Lock file -> the install command that reproduces node_modules exactly from it.
NODE_INSTALL: dict[str, str] = {
    "package-lock.json": "npm ci",
    "npm-shrinkwrap.json": "npm ci",
    "pnpm-lock.yaml": "pnpm install --frozen-lockfile",
    "yarn.lock": "yarn install --frozen-lockfile",
    "bun.lockb": "bun install --frozen-lockfile",
}


@dataclass(frozen=True)
class Layout:
    """Untracked paths of `CANDIDATES` present in the checkout, a Node install command, and submodule paths."""

    untracked: dict[str, str] = field(default_factory=dict)  # path -> "link" / "copy"
    node_install: str | None = None
    submodules: tuple[str, ...] = ()


def detect(root: Path) -> Layout:
    """Look at the checkout at `root` (its top folder only; nothing is run but `git ls-files`)."""
    untracked: dict[str, str] = {}
    present = [p for p in CANDIDATES if (root / p).exists() and not (root / p).is_symlink()]
    if present:
        tracked = set(run_git(root, "ls-files", "-z", "--", *present).stdout.split("\0"))
        for path in present:
            if not any(t == path or t.startswith(path + "/") for t in tracked):
                if path == "venv" and not (root / path / "pyvenv.cfg").is_file():
                    continue  # a folder called venv that is not a virtualenv
                untracked[path] = CANDIDATES[path][0]
    node = None
    if (root / "package.json").is_file():
        node = next((cmd for lock, cmd in NODE_INSTALL.items() if (root / lock).is_file()), "npm install")
    submodules: tuple[str, ...] = ()
    if (root / ".gitmodules").is_file():
        proc = run_git(root, "config", "-z", "-f", ".gitmodules", "--get-regexp", r"^submodule\..*\.path$")
        submodules = tuple(r.partition("\n")[2] for r in proc.stdout.split("\0") if "\n" in r)
    return Layout(untracked, node, submodules)


def suggestions(layout: Layout) -> dict[str, tuple[list[str], str]]:
    """`[workspace]` key -> (suggested value, why) for what `detect` found."""
    out: dict[str, tuple[list[str], str]] = {}
    links = [p for p, key in layout.untracked.items() if key == "link"]
    copies = [p for p, key in layout.untracked.items() if key == "copy"]
    if links:
        out["link"] = (links, "untracked here")
    if copies:
        out["copy"] = (copies, "untracked here")
    if layout.node_install:
        linked = "node_modules" in links
        out["setup"] = ([layout.node_install], "package.json here" + ("; or link node_modules" if linked else ""))
    return out
