"""ContextPack: the context every specialist of a run shares, built once per run at one commit.

The pack becomes the system prompt prefix that all specialists send byte for byte identically, so
they share one prompt-cache entry: N agents pay for the context once (cache write) and read it N-1
times. That only works if the text is a pure function of the commit and the settings — sorted
listings, no timestamps, no run ids, no agent names. Anything agent-specific (the charter) goes in a
block after the cache breakpoint (`agent_system`).
"""

from __future__ import annotations

import subprocess
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from squad.agents import prompts
from squad.config import Charter, Settings
from squad.errors import WorkspaceError
from squad.infra.git import run_git
from squad.models.base import SystemBlock
from squad.models.tokens import CHARS_PER_TOKEN
from squad.models.tokens import estimate_text_tokens as estimate_tokens


def truncate_to_tokens(text: str, max_tokens: int, what: str) -> str:
    """Cut `text` at a line boundary to fit `max_tokens`, ending with a notice of what was left out."""
    limit = max_tokens * CHARS_PER_TOKEN
    if len(text) <= limit:
        return text
    lines = text.splitlines(keepends=True)
    kept: list[str] = []
    size = 0
    for line in lines:
        if size + len(line) > limit - 120:  # leave room for the notice
            break
        kept.append(line)
        size += len(line)
    dropped = len(lines) - len(kept)
    return "".join(kept).rstrip("\n") + f"\n… ({what} truncated: {dropped} more lines not shown)\n"


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_git(root, *args)


def resolve_commit(root: Path, rev: str = "HEAD") -> str:
    """The full sha of `rev`; WorkspaceError if it does not name a commit (e.g. a repo with no commits)."""
    out = _git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if out.returncode != 0:
        raise WorkspaceError(f"{rev!r} is not a commit in {root}", hint="make a first commit before running squad")
    return out.stdout.strip()


def tracked_files(root: Path, commit: str) -> list[str]:
    """Every file path in `commit`'s tree (what `git ls-files` shows for a clean checkout), sorted."""
    out = run_git(root, "ls-tree", "-r", "-z", "--name-only", commit, text=False)
    if out.returncode != 0:
        raise WorkspaceError(f"cannot list files of {commit}: {out.stderr.decode(errors='replace').strip()}")
    return sorted(p for p in out.stdout.decode("utf-8", errors="replace").split("\0") if p)


def repo_map(files: Iterable[str], max_tokens: int) -> str:
    """A deterministic listing of the repository's files that fits `max_tokens` (the repo map's file part;
    `squad.agents.repomap` puts the definitions of the most referenced files before it).

    Small repos get the full sorted file list. Bigger ones are summarised per directory (file count
    and a sample of names, shrinking the sample until it fits), then per directory prefix at
    decreasing depth; as a last resort the listing is cut with a notice. Same input, same text.
    """
    paths = sorted(set(files))
    if not paths:
        return "(the repository has no tracked files)"
    header = f"{len(paths)} tracked files.\n"
    full = header + "\n".join(paths)
    if estimate_tokens(full) <= max_tokens:
        return full

    by_dir: dict[str, list[str]] = defaultdict(list)
    for p in paths:
        parent = str(PurePosixPath(p).parent)
        by_dir["." if parent == "." else parent].append(PurePosixPath(p).name)
    for sample in (8, 4, 2, 1, 0):
        lines = []
        for d in sorted(by_dir):
            names = by_dir[d]
            line = f"{d}/ ({len(names)} files)"
            if sample:
                shown = ", ".join(names[:sample])
                line += f": {shown}" + (", …" if len(names) > sample else "")
            lines.append(line)
        text = header + "Directories (files directly inside, sample of names):\n" + "\n".join(lines)
        if estimate_tokens(text) <= max_tokens:
            return text

    depth = max(len(PurePosixPath(p).parts) for p in paths) - 1
    text = full
    for level in range(depth, 0, -1):
        counts: dict[str, int] = defaultdict(int)
        for p in paths:
            parts = PurePosixPath(p).parts[:-1][:level]
            counts["/".join(parts) + "/" if parts else "./"] += 1
        text = (
            header
            + f"Directories to depth {level} (files anywhere below):\n"
            + "\n".join(f"{d} ({n} files)" for d, n in sorted(counts.items()))
        )
        if estimate_tokens(text) <= max_tokens:
            return text
    return truncate_to_tokens(text, max_tokens, "repo map")


@dataclass(frozen=True)
class ContextPack:
    """The shared context of one run: AGENTS.md, repo map and decisions digest at `commit`."""

    commit: str
    agents_md: str
    repo_map: str
    decisions: str

    @classmethod
    def build(cls, root: Path, settings: Settings, commit: str = "HEAD") -> ContextPack:
        """Build the pack for `commit` of the repo at `root` (AGENTS.md and the repo map come from the commit).

        The decisions digest comes from the ledger in `root`'s work tree, bounded by
        `settings.context.decisions_tokens` (active decisions first, newest first).
        """
        sha = resolve_commit(root, commit)
        shown = _git(root, "show", f"{sha}:AGENTS.md")
        agents_md = shown.stdout if shown.returncode == 0 else ""
        agents_md = truncate_to_tokens(agents_md, settings.context.agents_md_tokens, "AGENTS.md")
        from squad.agents.repomap import analyze_commit, render  # lazy: ast and the cache are only for a build

        analysis = analyze_commit(root, sha)
        digest = ""
        if settings.context.decisions_tokens:
            from squad.infra.ledger import Ledger  # lazy: the ledger pulls in more than this module needs

            digest = Ledger(root).digest(settings.context.decisions_tokens)
        return cls(
            commit=sha,
            agents_md=agents_md,
            repo_map=render(analysis, settings.context.repo_map_tokens, repo_map),
            decisions=digest,
        )

    def system_blocks(self) -> tuple[SystemBlock, ...]:
        """The shared system prefix; the cache breakpoint sits on the last block."""
        agents = self.agents_md.strip() or "(this repository has no AGENTS.md)"
        decisions = self.decisions.strip() or "(no decisions recorded yet)"
        return (
            SystemBlock(prompts.template("preamble")),
            SystemBlock(f"# Repository norms (AGENTS.md)\n\n{agents}"),
            SystemBlock(f"# Repository map\n\n{self.repo_map.strip()}"),
            SystemBlock(f"# Active decisions of the team\n\n{decisions}", cache=True),
        )


def charter_text(charter: Charter, allowed_tools: Iterable[str]) -> str:
    """The agent-specific system text: who this specialist is, what it owns, which tools it may call."""
    text = prompts.render(
        "charter",
        name=charter.name,
        role=charter.role,
        owns=", ".join(charter.owns) if charter.owns else "(no specific files)",
        tools=", ".join(sorted(allowed_tools)),
    )
    if charter.reviewer:
        text += "\n" + prompts.template("charter_reviewer")
    body = charter.body.strip()
    return text + (f"\n\n{body}" if body else "")


def agent_system(pack: ContextPack, charter: Charter, allowed_tools: Iterable[str]) -> tuple[SystemBlock, ...]:
    """Shared blocks (ending at the cache breakpoint) followed by this agent's charter block."""
    return (*pack.system_blocks(), SystemBlock(charter_text(charter, allowed_tools)))
