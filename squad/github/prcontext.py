"""What a reviewer is shown of a pull request: every PR-controlled string, sanitized and fenced as untrusted.

One place builds it, so nothing a PR author controls reaches a prompt another way: title and body (prose:
hidden markup removed), the facts (author, refs, head repository), the changed and skipped file names, the
commit messages and the decisions the PR adds (one-line values: invisible characters and newlines shown as
`<U+XXXX>`, so a file name cannot put a line of its own into the prompt).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from squad.github.gitrepo import SkippedFile
from squad.github.sanitize import fence, sanitize_text, untrusted_lines

#: Bounds on what one PR can put into every reviewer's prompt.
MAX_FILES = 500
MAX_COMMITS = 50
MAX_COMMIT_CHARS = 2000
MAX_DECISIONS = 50


def pr_context(
    pr: dict[str, Any],
    *,
    files: Sequence[str],
    skipped: Sequence[SkippedFile] = (),
    commits: Sequence[str] = (),
    decisions: Sequence[Any] = (),  # squad.infra.ledger.Entry
) -> str:
    """The PR's metadata as fenced UNTRUSTED blocks (see the module docstring)."""
    head = pr.get("head") or {}
    base = pr.get("base") or {}
    facts = [
        f"number: {pr.get('number')}",
        f"author: {(pr.get('user') or {}).get('login', '')}",
        f"head branch: {head.get('ref', '')}",
        f"head repository: {(head.get('repo') or {}).get('full_name', '')}",
        f"base branch: {base.get('ref', '')}",
    ]
    blocks = [
        untrusted_lines(facts, "pr-facts"),
        fence(sanitize_text(pr.get("title")), "pr-title"),
        fence(sanitize_text(pr.get("body")), "pr-body"),
        untrusted_lines(_bounded(files, MAX_FILES, "files"), "changed-files"),
    ]
    if skipped:
        lines = [f"{s.path} ({s.reason})" for s in skipped]
        blocks.append(untrusted_lines(_bounded(lines, MAX_FILES, "files"), "skipped-files"))
    if commits:
        messages = [sanitize_text(c)[:MAX_COMMIT_CHARS] for c in commits[:MAX_COMMITS]]
        if len(commits) > MAX_COMMITS:
            messages.append(f"(and {len(commits) - MAX_COMMITS} more commits)")
        blocks.append(fence("\n\n".join(f"commit {i + 1}:\n{m}" for i, m in enumerate(messages)), "pr-commits"))
    if decisions:
        from squad.infra.ledger import entry_author

        lines = [
            f"{e.id}: {e.title} (by {entry_author(e) or 'unknown'}, {e.file}:{e.line})"
            for e in decisions[:MAX_DECISIONS]
        ]
        blocks.append(untrusted_lines(_bounded(lines, MAX_DECISIONS, "decisions"), "decisions-added"))
    return "\n\n".join(blocks)


def _bounded(items: Sequence[str], limit: int, what: str) -> list[str]:
    out = list(items[:limit])
    if len(items) > limit:
        out.append(f"(and {len(items) - limit} more {what})")
    return out
