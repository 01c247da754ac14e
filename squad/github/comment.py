"""The sticky review comment: its marker, finding it (only one squad's own token wrote), writing it (always, within
GitHub's size limit), and rendering the report.

Every value in the report goes through `squad.github.markdown`: untrusted strings as text, code spans or table
cells, model-written text re-emitted without images, links or HTML.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from squad.github import markdown as md
from squad.github.client import GitHubAPIError, GitHubClient
from squad.github.gitrepo import SkippedFile

if TYPE_CHECKING:
    from squad.github.review import LedgerReport, ReviewOutcome

MARKER = "<!-- squad:review -->"
#: squad's memory of a PR it opened or pushed to, kept in its own sticky comment (which only its token writes):
#: the branch, the sha squad last saw it at, and the follow-ups made so far.
STATE_RE = re.compile(r"<!-- squad:state (\{.*?\}) -->")
#: GitHub refuses (422) an issue comment body over 65,536 characters; the report aims below it.
COMMENT_LIMIT = 65_536
COMMENT_BUDGET = 60_000
#: A step's job summary may hold 1 MiB; what does not fit in the comment goes there.
SUMMARY_BUDGET = 900_000
_ICON = {"approve": "✅", "reject": "❌", "error": "⚠️"}
#: The job's GITHUB_TOKEN writes as this bot; used only when GitHub will not say who the token is.
ACTIONS_BOT = "github-actions[bot]"


@dataclass(frozen=True)
class Identity:
    """Who squad's token writes as: a login, and the account id when GitHub gave one."""

    login: str
    id: int | None = None

    @staticmethod
    def of(client: GitHubClient) -> Identity:
        viewer = client.viewer()
        if viewer is None:
            print(f"squad: GitHub does not say who the token is; assuming {ACTIONS_BOT}", file=sys.stderr)
            return Identity(ACTIONS_BOT)
        raw_id = viewer.get("id")
        return Identity(str(viewer["login"]), int(raw_id) if isinstance(raw_id, int) else None)

    def wrote(self, item: dict[str, Any]) -> bool:
        """Whether `item` (a comment, review or pull request) was written by this identity."""
        user = item.get("user") or {}
        if self.id is not None and isinstance(user.get("id"), int):
            return bool(user["id"] == self.id)
        # GraphQL names bots without the "[bot]" suffix REST uses.
        return _login_key(str(user.get("login", ""))) == _login_key(self.login)


def _login_key(login: str) -> str:
    return login.removesuffix("[bot]").casefold()


def find_sticky(client: GitHubClient, number: int, me: Identity) -> dict[str, Any] | None:
    """Our review comment on `number`: the first one carrying the marker AND written by our own token.

    Anyone can paste the marker into a comment, another bot included; editing theirs would fail (403) and
    leave the PR without a review, or overwrite what they wrote.
    """
    for comment in client.list_issue_comments(number):
        if MARKER in (comment.get("body") or "") and me.wrote(comment):
            return comment
    return None


class StickyComment:
    """The one review comment of a PR: found once, then created or edited in place — and always written."""

    def __init__(self, client: GitHubClient, number: int, me: Identity) -> None:
        self.client = client
        self.number = number
        self.comment: dict[str, Any] | None = find_sticky(client, number, me)
        self.state: dict[str, Any] = read_state((self.comment or {}).get("body") or "")

    def write(self, body: str) -> str:
        """Post `body` (capped to GitHub's limit) with the PR's state; an edit GitHub refuses falls back to a new
        comment, a body it refuses falls back to a short note. Returns the comment's URL."""
        body = cap(STATE_RE.sub("", body).rstrip("\n") + "\n", COMMENT_LIMIT - 2000)
        if self.state:
            body = body.rstrip("\n") + "\n\n" + state_marker(self.state) + "\n"
        try:
            self._post(body)
        except GitHubAPIError as exc:
            if exc.status != 422:
                raise
            print(f"squad: GitHub refused the review comment ({exc}); posting a short note", file=sys.stderr)
            self._post(refused_note(body, str(exc)))
        return str((self.comment or {}).get("html_url", ""))

    def save_state(self, fallback: str) -> str:
        """Write the state into the comment: its current body kept, or `fallback` when there is no comment yet."""
        return self.write((self.comment or {}).get("body") or fallback)

    def _post(self, body: str) -> None:
        if self.comment is not None:
            try:
                self.comment = self.client.update_issue_comment(int(self.comment["id"]), body)
                return
            except GitHubAPIError as exc:
                if exc.status not in (403, 404, 410):
                    raise
                print(f"squad: cannot edit comment {self.comment['id']} ({exc}); writing a new one", file=sys.stderr)
                self.comment = None
        self.comment = self.client.create_issue_comment(self.number, body)


def read_state(body: str) -> dict[str, Any]:
    """The state block of one of squad's own comments ({} when there is none or it is unreadable)."""
    m = STATE_RE.search(body)
    if not m:
        return {}
    try:
        state = json.loads(m.group(1))
    except json.JSONDecodeError:
        return {}
    return state if isinstance(state, dict) else {}


def state_marker(state: dict[str, Any]) -> str:
    """The state as a hidden comment: JSON with `<`, `>` and `&` escaped, so it can never close the comment."""
    payload = json.dumps(state, separators=(",", ":"), sort_keys=True)
    payload = payload.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f"<!-- squad:state {payload} -->"


def followup_section(state: dict[str, Any], limit: int) -> list[str]:
    """The follow-ups squad made on this PR (markdown lines; empty when there were none)."""
    attempts = [a for a in state.get("followups") or [] if isinstance(a, dict)]
    if not attempts and not state.get("branch"):
        return []
    lines = ["### Follow-ups", ""]
    if state.get("branch"):
        lines.append(
            f"squad works on branch {md.code(state['branch'])}, last seen at {md.code(str(state.get('sha', ''))[:12])};"
            f" {len(attempts)} of {limit} follow-ups used."
        )
    lines += [
        f"- {md.text(a.get('trigger'), 200)} → {md.text(a.get('result'), 500)}"
        + (f" ({md.code(a['at'][:12])})" if a.get("at") else "")
        for a in attempts
    ]
    return [*lines, ""]


def cap(body: str, limit: int) -> str:
    """`body` cut at a line boundary below `limit` characters, with a note, when it is longer."""
    if len(body) <= limit:
        return body
    note = "\n\n… (cut: the report is longer than a GitHub comment can hold; the job summary has all of it)\n"
    cut = body.rfind("\n", 0, limit - len(note))
    return body[: max(cut, 0)] + note


def refused_note(body: str, why: str) -> str:
    head = body.split("\n\n", 2)[:2]
    return "\n\n".join(
        [*head, f"GitHub refused the full report ({md.text(why, 300)}); it is in the job summary of this run."]
    )


def entry_line(entry: Any) -> str:
    """A decision entry in a comment: title, id, author, file:line — each escaped for where it goes."""
    from squad.infra.ledger import entry_author

    where = md.code(f"{entry.file}:{entry.line}")
    return f"**{md.text(entry.title)}** — {md.code(entry.id)} by {md.text(entry_author(entry) or 'unknown')} ({where})"


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
    limit: int = COMMENT_BUDGET,
    more_at: str = "",
    extra: Sequence[str] = (),
    shown: Sequence[Any] | None = None,
) -> str:
    """The sticky comment body (and job summary): marker, verdict, findings, decisions, what was not reviewed.

    Findings that do not fit in `limit` characters are counted and pointed to `more_at` (the job summary).
    `extra` are sections squad wrote itself (inline review, follow-ups), already markdown; `shown` the findings
    for the table (default: all; the inline review shows the others on the diff).
    """
    table = list(outcome.findings if shown is None else shown)
    head = [MARKER, f"## {_ICON.get(result, '')} squad review: {result}", ""]
    reviewers = ", ".join(md.text(r, 60) for r in outcome.reviewers)
    head.append(
        f"Reviewed commit {md.code(head_sha[:12])} · run {md.code(run_id)}"
        + (f" · reviewers: {reviewers}" if reviewers else "")
    )
    head.append("")
    if outcome.errors:
        head += ["### The review did not complete", ""]
        head += [f"- {md.text(err, 2000)}" for err in outcome.errors]
        head += [
            "",
            "What to do: check the job log of this run; fix the cause (API key secret, budget in "
            "`.squad/squad.toml` on the base branch, model availability) and re-run the job, or push a new commit.",
            "",
        ]
    if outcome.summary:
        head += [md.quote(md.model(outcome.summary, limit=8000)), ""]

    tail: list[str] = [*extra, "### Decisions", ""]
    if ledger_error:
        tail += [f"- ⚠️ the decisions ledger could not be checked: {md.text(ledger_error, 500)}"]
    elif ledger is not None:
        if ledger.added:
            tail.append("This PR adds:")
            tail += [f"- {entry_line(e)}" for e in ledger.added[:50]]
            if len(ledger.added) > 50:
                tail.append(f"- … and {len(ledger.added) - 50} more")
        else:
            tail.append("This PR adds no decisions.")
        for e in ledger.modified:
            tail.append(f"- ❌ **error:** modifies landed decision {entry_line(e)} — the ledger is append-only")
        for e in ledger.deleted:
            tail.append(f"- ❌ **error:** deletes landed decision {entry_line(e)} — the ledger is append-only")
        if ledger.violations:
            tail.append("  To change a decision, add a new entry whose `supersedes` lists the old id.")
        tail += [f"- ⚠️ {md.text(p, 500)}" for p in ledger.problems[:50]]
    tail.append("")
    not_reviewed = [f"{md.code(s.path)} — {md.text(s.reason)}" for s in skipped[:200]]
    if len(skipped) > 200:
        not_reviewed.append(f"… and {len(skipped) - 200} more files")
    not_reviewed += [md.text(n, 500) for n in outcome.not_reviewed]
    tail += ["### Not reviewed", ""]
    tail += [f"- {n}" for n in not_reviewed] if not_reviewed else ["Nothing was skipped."]
    tail.append("")
    if outcome.cost_usd or outcome.input_tokens:
        tail.append(
            f"<sub>{outcome.input_tokens:,} input / {outcome.output_tokens:,} output tokens · "
            f"${outcome.cost_usd:.4f}</sub>"
        )

    findings: list[str] = []
    if table:
        rows = [finding_row(f) for f in table]
        fixed = len("\n".join(head + tail)) + 600  # headings, table header, the "more" line
        room = limit - fixed
        fitted: list[str] = []
        for row in rows:
            if room - len(row) - 1 < 0:
                break
            fitted.append(row)
            room -= len(row) + 1
        findings = ["### Findings", "", "| severity | where | finding | by |", "| --- | --- | --- | --- |", *fitted]
        if len(fitted) < len(rows):
            where = f" — all of them are in {more_at}" if more_at else " — the job summary has all of them"
            findings += ["", f"… and {len(rows) - len(fitted)} more findings not shown here{where}."]
        findings.append("")
    elif not outcome.errors and not outcome.findings:
        findings = ["No findings.", ""]
    body = re.sub(r"\n{3,}", "\n\n", "\n".join(head + findings + tail)).strip() + "\n"
    return cap(body, limit)


def finding_row(f: Any) -> str:
    where = md.code(f"{f.file}:{f.line}" if f.line else f.file) if f.file else ""
    message = md.model(f.message, limit=2000, one_line=True)
    cells = [f.severity, where, message, md.text(f.reviewer, 100)]
    return "| " + " | ".join(md.cell(c) for c in cells) + " |"
