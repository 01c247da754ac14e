"""Review mode: the types a reviewer sees and returns, merging findings, the ledger gate, the report.

The reviewing itself is one injectable async callable, `Reviewer`, so the orchestration (diff,
sticky comment, exit policy) is the same whether the reviewer is the real agent team
(`squad.github.agents.agent_reviewer`) or a test double.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from squad.github import gitrepo
from squad.github.gitrepo import SkippedFile
from squad.github.sanitize import inline, sanitize_text

Severity = Literal["blocking", "major", "minor"]
SEVERITY_RANK: dict[str, int] = {"blocking": 0, "major": 1, "minor": 2}
MARKER = "<!-- squad:review -->"


@dataclass(frozen=True)
class Finding:
    reviewer: str
    file: str
    line: int | None
    severity: Severity
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "reviewer": self.reviewer,
            "file": self.file,
            "line": self.line,
            "severity": self.severity,
            "message": self.message,
        }


@dataclass(frozen=True)
class ReviewInput:
    """What a reviewer gets. `diff` and `pr_metadata` are already sanitized and fenced as untrusted."""

    root: Path
    base_sha: str
    head_sha: str
    diff: str
    changed_files: tuple[str, ...]
    skipped: tuple[SkippedFile, ...]
    pr_number: int
    pr_metadata: str
    run_id: str


@dataclass
class ReviewOutcome:
    """What a reviewer returns: findings (possibly from several reviewers), a summary, what went wrong."""

    findings: list[Finding] = field(default_factory=list)
    summary: str = ""
    errors: list[str] = field(default_factory=list)
    not_reviewed: list[str] = field(default_factory=list)
    reviewers: list[str] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


Reviewer = Callable[[ReviewInput], Awaitable[ReviewOutcome]]


def merge_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Deduplicate by (file, line, message) — whitespace/case-insensitive — the highest severity wins and
    the reviewers are joined; ordered by severity, file, line, message so reruns compare cleanly."""
    merged: dict[tuple[str, int | None, str], Finding] = {}
    for f in findings:
        key = (f.file, f.line, " ".join(f.message.split()).casefold())
        old = merged.get(key)
        if old is None:
            merged[key] = f
            continue
        severity = min(old.severity, f.severity, key=SEVERITY_RANK.__getitem__)
        names = sorted({*old.reviewer.split(", "), f.reviewer})
        merged[key] = Finding(", ".join(names), old.file, old.line, severity, old.message)  # type: ignore[arg-type]
    return sorted(merged.values(), key=lambda f: (SEVERITY_RANK[f.severity], f.file, f.line or 0, f.message))


# ---------------------------------------------------------------------------------------------------------
# The decisions ledger gate


@dataclass
class LedgerReport:
    added: list[Any] = field(default_factory=list)  # squad.infra.ledger.Entry
    modified: list[Any] = field(default_factory=list)
    deleted: list[Any] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # parse problems in files the PR touches

    @property
    def violations(self) -> bool:
        return bool(self.modified or self.deleted)


def ledger_entries(root: Path, sha: str) -> tuple[list[Any], list[Any]]:
    """All decision entries (and parse problems) in `decisions/**.md` at commit `sha`."""
    from squad.infra.ledger import parse_text

    entries: list[Any] = []
    problems: list[Any] = []
    for path in gitrepo.ls_tree(root, sha, "decisions"):
        if not path.endswith(".md") or Path(path).name == "README.md":
            continue
        text = gitrepo.show(root, sha, path) or ""
        result = parse_text(text, Path(path))
        entries.extend(result.entries)
        problems.extend(result.problems)
    return entries, problems


def check_ledger(root: Path, base: str, head: str, changed: Sequence[str]) -> LedgerReport:
    """Decisions the PR adds, and landed entries it modifies or deletes (the ledger is append-only)."""
    from squad.infra.ledger import compare

    base_entries, _ = ledger_entries(root, base)
    head_entries, head_problems = ledger_entries(root, head)
    cmp = compare(base_entries, head_entries)
    touched = set(changed)
    return LedgerReport(
        added=list(cmp.added),
        modified=list(cmp.modified),
        deleted=list(cmp.deleted),
        problems=[str(p) for p in head_problems if str(p.file) in touched],
    )


# ---------------------------------------------------------------------------------------------------------
# Verdict, exit policy, report


def verdict(outcome: ReviewOutcome, ledger: LedgerReport | None) -> str:
    """approve | reject | error: blocking findings or an append-only violation reject; a failed review errs."""
    if any(f.severity == "blocking" for f in outcome.findings) or (ledger and ledger.violations):
        return "reject"
    if outcome.errors or ledger is None:
        return "error"
    return "approve"


def exit_code(outcome: ReviewOutcome, ledger: LedgerReport | None, fail_on: Sequence[str]) -> int:
    """1 when a condition listed in `settings.github.fail_on` holds, else 0."""
    if "blocking" in fail_on and any(f.severity == "blocking" for f in outcome.findings):
        return 1
    if "append_only" in fail_on and ledger is not None and ledger.violations:
        return 1
    if "error" in fail_on and (outcome.errors or ledger is None):
        return 1
    return 0


_ICON = {"approve": "✅", "reject": "❌", "error": "⚠️"}


def _md(text: str) -> str:
    """Model- or PR-derived text inside our comment: sanitized, our marker cannot be forged, no mentions."""
    return sanitize_text(text).replace("@", "&#64;").replace("<", "&lt;")


def _entry_line(e: Any) -> str:
    return f"**{inline(e.title)}** — `{e.id}` by {inline(e.agent or 'unknown')} (`{e.file}:{e.line}`)"


def render_report(
    *,
    head_sha: str,
    run_id: str,
    outcome: ReviewOutcome,
    ledger: LedgerReport | None,
    ledger_error: str | None,
    skipped: Sequence[SkippedFile],
    result: str,
) -> str:
    """The sticky comment body (and job summary): marker, verdict, findings, decisions, what was not reviewed."""
    lines = [MARKER, f"## {_ICON.get(result, '')} squad review: {result}", ""]
    lines.append(
        f"Reviewed commit `{head_sha[:12]}` · run `{run_id}`"
        + (f" · reviewers: {', '.join(outcome.reviewers)}" if outcome.reviewers else "")
    )
    lines.append("")
    if outcome.errors:
        lines += ["### The review did not complete", ""]
        lines += [f"- {_md(err)}" for err in outcome.errors]
        lines += [
            "",
            "What to do: check the job log of this run; fix the cause (API key secret, budget in "
            "`.squad/squad.toml` on the base branch, model availability) and re-run the job, or push a new commit.",
            "",
        ]
    if outcome.summary:
        lines += [_md(outcome.summary), ""]
    if outcome.findings:
        lines += ["### Findings", "", "| severity | where | finding | by |", "| --- | --- | --- | --- |"]
        for f in outcome.findings:
            where = f"`{inline(f.file, 120)}{f':{f.line}' if f.line else ''}`"
            msg = " ".join(_md(f.message).split()).replace("|", "\\|")
            lines.append(f"| {f.severity} | {where} | {msg} | {inline(f.reviewer)} |")
        lines.append("")
    elif not outcome.errors:
        lines += ["No findings.", ""]
    lines += ["### Decisions", ""]
    if ledger_error:
        lines += [f"- ⚠️ the decisions ledger could not be checked: {_md(ledger_error)}"]
    elif ledger is not None:
        if ledger.added:
            lines.append("This PR adds:")
            lines += [f"- {_entry_line(e)}" for e in ledger.added]
        else:
            lines.append("This PR adds no decisions.")
        for e in ledger.modified:
            lines.append(f"- ❌ **error:** modifies landed decision {_entry_line(e)} — the ledger is append-only")
        for e in ledger.deleted:
            lines.append(f"- ❌ **error:** deletes landed decision {_entry_line(e)} — the ledger is append-only")
        if ledger.violations:
            lines.append("  To change a decision, add a new entry whose `supersedes` lists the old id.")
        lines += [f"- ⚠️ {_md(p)}" for p in ledger.problems]
    lines.append("")
    not_reviewed = [f"`{inline(s.path, 120)}` — {s.reason}" for s in skipped] + [_md(n) for n in outcome.not_reviewed]
    lines += ["### Not reviewed", ""]
    lines += [f"- {n}" for n in not_reviewed] if not_reviewed else ["Nothing was skipped."]
    lines.append("")
    if outcome.cost_usd or outcome.input_tokens:
        lines.append(
            f"<sub>{outcome.input_tokens:,} input / {outcome.output_tokens:,} output tokens · "
            f"${outcome.cost_usd:.4f}</sub>"
        )
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"
