"""Whether a commit holds the `.squad/` config a checkout uses.

A run spread over CI jobs is planned on one checkout, and every later job checks out the plan's base commit on a
fresh runner: it gets only what is committed there. Settings and charters that are untracked, ignored or changed
in the plan's work tree would be missing (or different) in those jobs, so `squad plan --out` asks this first.
"""

from __future__ import annotations

from pathlib import Path

from squad.config import AGENTS_DIR, SETTINGS_FILE, SQUAD_DIR, agents_dir, settings_path
from squad.infra.git import run_git

SETTINGS = f"{SQUAD_DIR}/{SETTINGS_FILE}"
AGENTS = f"{SQUAD_DIR}/{AGENTS_DIR}"


def _config_file(path: str) -> bool:
    """A path the config loader reads: the settings file or a charter (`.squad/agents/<name>.md`)."""
    if path == SETTINGS:
        return True
    folder, _, name = path.rpartition("/")
    return folder == AGENTS and name.endswith(".md")


def config_not_at(root: Path, commit: str = "HEAD") -> list[str]:
    """The config files of `root`'s work tree that `commit` does not hold as they are, each with why
    (`not committed`, `changed`, `not here`); empty when the commit holds the config as it is (or git cannot tell)."""
    here = {SETTINGS} if settings_path(root).is_file() else set()
    here |= {f"{AGENTS}/{p.name}" for p in agents_dir(root).glob("*.md")}
    tree = run_git(root, "ls-tree", "-r", "-z", "--name-only", commit, "--", SETTINGS, AGENTS)
    diff = run_git(root, "diff", "-z", "--name-only", "--no-renames", commit, "--", SETTINGS, AGENTS)
    if tree.returncode != 0 or diff.returncode != 0:
        return []
    committed = {p for p in tree.stdout.split("\0") if _config_file(p)}
    changed = {p for p in diff.stdout.split("\0") if _config_file(p)}
    out = [f"{p} (not committed)" for p in sorted(here - committed)]
    out += [f"{p} (changed)" for p in sorted(here & committed & changed)]
    out += [f"{p} (not here)" for p in sorted(committed - here)]
    return out


def has_team_at(root: Path, commit: str = "HEAD") -> bool:
    """Whether `commit` holds at least one charter (`.squad/agents/*.md`)."""
    tree = run_git(root, "ls-tree", "-r", "-z", "--name-only", commit, "--", AGENTS)
    return tree.returncode == 0 and any(_config_file(p) and p != SETTINGS for p in tree.stdout.split("\0"))
