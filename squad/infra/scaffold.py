"""The library side of `squad init`: put the default settings, team, AGENTS.md and ledger README in a repo.

Templates are real files under `squad/templates/` (package data, read with importlib.resources) so they
can be read, diffed and linted like any other file. Scaffolding is idempotent and never destroys work:
a file equal to its template is left alone ("unchanged"), a missing one is written ("created"), and a
file the user changed is kept ("kept") unless its path is named in `force` ("restored").

squad.toml gets commented `[workspace]` suggestions for what this checkout holds and worktrees will not
(`squad.infra.layout`): a `# link = [".venv"]  # squad init: ...` line under `link = []`. They are comments,
so the settings stay the defaults; a file that differs from the template only by such lines is "unchanged".
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from squad.errors import UsageError
from squad.infra.git import run_git
from squad.infra.layout import detect, suggestions

Status = Literal["created", "unchanged", "kept", "restored", "updated"]

#: Repo-relative path (as printed to the user) -> template name under squad/templates/.
FILES: dict[str, str] = {
    ".squad/squad.toml": "squad.toml",
    ".squad/agents/lead.md": "agents/lead.md",
    ".squad/agents/backend.md": "agents/backend.md",
    ".squad/agents/tester.md": "agents/tester.md",
    ".squad/agents/reviewer.md": "agents/reviewer.md",
    "AGENTS.md": "AGENTS.md",
    "decisions/README.md": "decisions/README.md",
}

#: Written only when missing: it holds the repo's own norms, which the user owns from then on.
AGENTS_MD = "AGENTS.md"
GITIGNORE = ".gitignore"
#: What must be ignored: the run folders (journals, transcripts, recorded responses).
RUNS_PATTERN = ".squad/runs/"
_GITIGNORE_BLOCK = "# squad: run folders (journals, transcripts, recorded model responses)\n" + RUNS_PATTERN + "\n"
SETTINGS = ".squad/squad.toml"
#: Marks a suggestion line squad init wrote; such lines are ignored when comparing squad.toml to its template.
SUGGESTION_MARK = "  # squad init: "


@dataclass(frozen=True)
class Outcome:
    """What scaffolding did to one file; `path` is relative to the repo root, with `/` separators."""

    path: str
    status: Status
    note: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def template_bytes(name: str) -> bytes:
    """The bytes of the template `name` (e.g. "agents/lead.md") shipped in squad/templates/."""
    return resources.files("squad").joinpath("templates", *name.split("/")).read_bytes()


def scaffold(root: Path, *, force: Iterable[str] = ()) -> list[Outcome]:
    """Create the squad files in the work tree at `root`; return one Outcome per file, in a stable order.

    Args:
        root: top of the git work tree.
        force: repo-relative paths (as printed) whose default content must be restored even if edited.

    Raises:
        UsageError: a path in `force` is not one of the scaffolded files.
    """
    forced = {_normalize(p) for p in force}
    unknown = sorted(forced - FILES.keys())
    if unknown:
        raise UsageError(
            f"--force: not a file squad init manages: {', '.join(unknown)}",
            hint=f"choose from: {', '.join(FILES)}",
        )
    for rel in [*FILES, GITIGNORE]:
        _check_in_the_way(root, rel)
    outcomes = []
    for rel, name in FILES.items():
        content = template_bytes(name)
        if rel == SETTINGS:
            content = with_suggestions(content, suggestions(detect(root)))
        outcomes.append(_place(root, rel, content, rel in forced))
    outcomes.append(_ignore_runs(root))
    return outcomes


def _normalize(path: str) -> str:
    """Accept `./AGENTS.md` or `.squad\\agents\\lead.md` for the printed form."""
    return Path(path.replace("\\", "/")).as_posix().removeprefix("./")


def _check_in_the_way(root: Path, rel: str) -> None:
    """Refuse, before anything is written, a directory where a file belongs or a file where a directory belongs."""
    target = root / rel
    if target.is_dir():
        raise UsageError(f"{rel} is a directory; squad init needs a file there", path=target, hint="move it away")
    parts = Path(rel).parts
    for i in range(1, len(parts)):
        parent = root.joinpath(*parts[:i])
        if parent.exists() and not parent.is_dir():
            raise UsageError(
                f"{Path(*parts[:i]).as_posix()} is a file; squad init needs a directory there for {rel}",
                path=parent,
                hint="move it away",
            )


def _place(root: Path, rel: str, content: bytes, force: bool) -> Outcome:
    target = root / rel
    if not target.exists():
        _write_atomic(target, content)
        return Outcome(rel, "created")
    current = target.read_bytes()
    same = rel == SETTINGS and without_suggestions(current) == without_suggestions(content)
    if current == content or (same and not force):
        return Outcome(rel, "unchanged")
    if force:
        _write_atomic(target, content)
        return Outcome(rel, "restored")
    if rel == AGENTS_MD:
        return Outcome(rel, "kept", "the repo's own norms; never replaced")
    return Outcome(rel, "kept", f"differs from the default; restore it with --force {rel}")


def with_suggestions(template: bytes, found: dict[str, tuple[list[str], str]]) -> bytes:
    """The squad.toml template with a commented suggestion under each `[workspace]` key `found` has one for."""
    out: list[str] = []
    section = ""
    for line in template.decode().splitlines(keepends=True):
        out.append(line)
        if line.startswith("["):
            section = line.strip()
        key = line.split("=", 1)[0].strip()
        if section == "[workspace]" and key in found and not line.startswith("#"):
            values, why = found[key]
            value = "[" + ", ".join(json.dumps(v) for v in values) + "]"
            out.append(f"# {key} = {value}{SUGGESTION_MARK}{why}; replaces the line above\n")
    return "".join(out).encode()


def without_suggestions(content: bytes) -> bytes:
    """`content` without the suggestion lines `with_suggestions` adds."""
    lines = content.decode("utf-8", "replace").splitlines(keepends=True)
    return "".join(ln for ln in lines if not (ln.startswith("# ") and SUGGESTION_MARK in ln)).encode()


def _write_atomic(target: Path, content: bytes) -> None:
    """Write via a temp file + rename so an interrupted init never leaves a half-written file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
        # mkstemp creates 0600 files; give them the usual umask-derived mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _ignore_runs(root: Path) -> Outcome:
    """Make git ignore `.squad/runs/`, appending to .gitignore only when git does not ignore it already.

    `git check-ignore --no-index` asks git itself, so patterns like `.squad/`, `runs/` or a global
    excludes file count, and we never add a redundant line.
    """
    check = run_git(root, "check-ignore", "-q", "--no-index", RUNS_PATTERN)
    if check.returncode == 0:
        return Outcome(GITIGNORE, "unchanged", f"{RUNS_PATTERN} is already ignored")
    path = root / GITIGNORE
    if not path.exists():
        _write_atomic(path, _GITIGNORE_BLOCK.encode())
        return Outcome(GITIGNORE, "created", f"ignores {RUNS_PATTERN}")
    old = path.read_bytes()
    sep = b"" if not old or old.endswith(b"\n") else b"\n"
    with path.open("ab") as fh:
        fh.write(sep + _GITIGNORE_BLOCK.encode())
    return Outcome(GITIGNORE, "updated", f"added {RUNS_PATTERN}")
