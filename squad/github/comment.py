"""The sticky review comment: its marker, finding it (only ours), writing it, and rendering the report."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from squad.github.client import GitHubClient
from squad.github.gitrepo import SkippedFile
from squad.github.sanitize import inline, sanitize_text

if TYPE_CHECKING:
    from squad.github.review import LedgerReport, ReviewOutcome

MARKER = "<!-- squad:review -->"
_ICON = {"approve": "✅", "reject": "❌", "error": "⚠️"}


def find_sticky(client: GitHubClient, number: int) -> dict[str, Any] | None:
    """Our review comment on `number`: the first one carrying the marker AND written by a bot.

    The author check keeps anyone from planting the marker in their own comment and having the
    Action overwrite (or be stuck failing to edit) it.
    """
    for comment in client.list_issue_comments(number):
        user = comment.get("user") or {}
        is_bot = user.get("type") == "Bot" or str(user.get("login", "")).endswith("[bot]")
        if is_bot and MARKER in (comment.get("body") or ""):
            return comment
    return None


class StickyComment:
    """The one review comment of a PR: found once, then created or edited in place."""

    def __init__(self, client: GitHubClient, number: int) -> None:
        self.client = client
        self.number = number
        self.comment: dict[str, Any] | None = find_sticky(client, number)

    def write(self, body: str) -> str:
        if self.comment is None:
            self.comment = self.client.create_issue_comment(self.number, body)
        else:
            self.comment = self.client.update_issue_comment(int(self.comment["id"]), body)
        return str(self.comment.get("html_url", ""))


def _md(text: str) -> str:
    """Model- or PR-derived text inside our comment: sanitized, our marker cannot be forged, no mentions."""
    return sanitize_text(text).replace("@", "&#64;").replace("<", "&lt;")


def _entry_line(e: Any) -> str:
    return f"**{inline(e.title)}** — `{e.id}` by {inline(e.agent or 'unknown')} (`{e.file}:{e.line}`)"


def report_line(artifact: str, run_url: str | None) -> str:
    """The line that points a reader at the run's report page: an artifact of this workflow run, by name."""
    where = f"[this workflow run]({run_url})" if run_url else "this workflow run"
    return f"📊 The run's report (one HTML page: timeline, cost, transcripts) is the artifact `{artifact}` of {where}."


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
