"""Inline review: findings on changed lines become comments on those lines, in ONE pull-request review.

Each inline comment carries a hidden fingerprint of its finding (file + message, whitespace- and case-folded),
so a later push never posts the same finding twice, and the threads of findings that are gone are resolved
(GraphQL `resolveReviewThread`; a reply saying so when that is not allowed). A finding with a `suggestion`
gets a ```suggestion block the author can commit. At most `[github] max_inline_comments` new comments per
review; what is not posted inline stays in the sticky comment. The review is COMMENT, or REQUEST_CHANGES when
a finding's severity is in `[github] request_changes_on` (never on squad's own PR: GitHub refuses that); a
squad review that requested changes is dismissed once nothing warrants it any more.

Posting inline is best effort: whatever GitHub refuses goes back to the sticky comment, said so.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from squad.config import GitHubSettings
from squad.domain.review import Finding
from squad.github import markdown as md
from squad.github.client import GitHubAPIError, GitHubClient
from squad.github.comment import Identity
from squad.github.sanitize import sanitize_code

FINGERPRINT_RE = re.compile(r"<!-- squad:finding ([0-9a-f]{16}) -->")
_UNSAFE_SUGGESTION_RE = re.compile(r"<U\+[0-9A-F]{4,6}>")


def fingerprint(f: Finding) -> str:
    """A finding's identity across pushes: its file and message (line numbers move when code above changes)."""
    key = f"{f.file}\0{' '.join(f.message.split()).casefold()}"
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]


@dataclass
class InlineResult:
    """What the inline review did. `rest` are the findings the sticky comment must still show."""

    posted: list[Finding] = field(default_factory=list)
    already: list[Finding] = field(default_factory=list)
    rest: list[Finding] = field(default_factory=list)
    resolved: int = 0
    event: str = ""
    review_url: str = ""
    dismissed: int = 0
    errors: list[str] = field(default_factory=list)

    def section(self) -> list[str]:
        """The sticky comment's summary of the inline review (markdown lines; empty when nothing is inline)."""
        if not (self.posted or self.already or self.resolved or self.errors):
            return []
        lines = ["### Inline review", ""]
        if self.posted:
            counts = ", ".join(
                f"{n} {sev}"
                for sev in ("blocking", "major", "minor")
                if (n := sum(f.severity == sev for f in self.posted))
            )
            where = md.link("this review", self.review_url) if self.review_url else "a review"
            verb = "requesting changes" if self.event == "REQUEST_CHANGES" else "commenting"
            what = f"{len(self.posted)} new findings ({counts})"
            lines.append(f"- {what} are inline comments on the changed lines, in {where} ({verb}).")
        if self.already:
            lines.append(f"- {len(self.already)} findings were posted inline on an earlier push and are not repeated.")
        if self.resolved:
            lines.append(f"- {self.resolved} inline threads of findings that are gone were resolved.")
        if self.dismissed:
            lines.append("- squad's earlier request for changes was dismissed: nothing warrants it now.")
        lines += [f"- ⚠️ {md.text(e, 500)}" for e in self.errors]
        return [*lines, ""]


def comment_body(f: Finding) -> str:
    """An inline comment: the fingerprint, severity, reviewer, message, and the suggestion when it is safe."""
    parts = [f"<!-- squad:finding {fingerprint(f)} -->", f"**{f.severity}** · {md.text(f.reviewer, 100)}", ""]
    parts.append(md.model(f.message, limit=4000))
    suggestion = f.suggestion
    if suggestion is not None and _UNSAFE_SUGGESTION_RE.search(sanitize_code(suggestion)) is None:
        parts += ["", md.fence(suggestion.rstrip("\n"), "suggestion")]
    return "\n".join(parts)


def post_inline_review(
    client: GitHubClient,
    number: int,
    *,
    head_sha: str,
    findings: Sequence[Finding],
    lines: dict[str, frozenset[int]],
    me: Identity,
    settings: GitHubSettings,
    own_pr: bool,
    complete: bool = True,
) -> InlineResult:
    """Post the findings that sit on diff lines as one review (see the module docstring). An incomplete review
    (a reviewer failed) resolves no thread and dismisses nothing: a missing finding may just be unreviewed."""
    result = InlineResult()
    on_diff = [f for f in findings if f.line is not None and f.line in lines.get(f.file, frozenset())]
    result.rest = [f for f in findings if f not in on_diff]
    try:
        ours = [c for c in client.list_review_comments(number) if me.wrote(c) and not c.get("in_reply_to_id")]
    except GitHubAPIError as exc:
        result.errors.append(f"inline comments were not posted: {exc}")
        result.rest = list(findings)
        return result
    posted_before: dict[str, dict[str, Any]] = {}
    for c in ours:
        if m := FINGERPRINT_RE.search(c.get("body") or ""):
            posted_before.setdefault(m.group(1), c)
    new: list[Finding] = []
    for f in on_diff:
        (result.already if fingerprint(f) in posted_before else new).append(f)
    cap = settings.max_inline_comments
    result.rest += new[cap:]
    new = new[:cap]
    wants_changes = any(f.severity in settings.request_changes_on for f in findings)
    result.event = "REQUEST_CHANGES" if wants_changes and not own_pr else "COMMENT"
    if new:
        comments = [{"path": f.file, "line": f.line, "side": "RIGHT", "body": comment_body(f)} for f in new]
        body = (
            f"squad found {len(new)} new issues on the changed lines of {md.code(head_sha[:12])}; "
            "the review comment on this PR has the full report."
        )
        try:
            review = client.create_review(number, commit_id=head_sha, event=result.event, body=body, comments=comments)
            result.posted = new
            result.review_url = str(review.get("html_url", ""))
        except GitHubAPIError as exc:
            result.errors.append(f"GitHub refused the inline review ({exc}); its findings are listed below")
            result.rest += new
    if not complete:
        return result
    current = {fingerprint(f) for f in findings}
    gone = {fp: c for fp, c in posted_before.items() if fp not in current}
    if gone:
        result.resolved = _resolve(client, number, gone, head_sha, result)
    if not wants_changes:
        result.dismissed = _dismiss_requests(client, number, me)
    return result


def _resolve(
    client: GitHubClient, number: int, gone: dict[str, dict[str, Any]], head_sha: str, result: InlineResult
) -> int:
    """Resolve the open threads of findings that are gone; reply "fixed" where resolving is refused."""
    try:
        threads = {t["comment"]: t for t in client.review_threads(number)}
    except GitHubAPIError as exc:
        print(f"squad: cannot list review threads ({exc})", file=sys.stderr)
        threads = {}
    resolved = 0
    for comment in gone.values():
        thread = threads.get(comment.get("id"))
        if thread is not None and thread["isResolved"]:
            continue
        try:
            if thread is None:
                raise GitHubAPIError("no thread found for the comment")
            client.resolve_thread(str(thread["id"]))
            resolved += 1
        except GitHubAPIError as exc:
            print(f"squad: cannot resolve the thread of comment {comment.get('id')} ({exc}); replying", file=sys.stderr)
            try:
                note = f"squad no longer finds this at {md.code(head_sha[:12])}: looks fixed."
                client.reply_to_review_comment(number, int(comment["id"]), note)
                resolved += 1
            except GitHubAPIError as again:
                result.errors.append(f"could not close the thread of a fixed finding: {again}")
    return resolved


def _dismiss_requests(client: GitHubClient, number: int, me: Identity) -> int:
    """Dismiss squad's own CHANGES_REQUESTED reviews on this PR (nothing warrants them any more)."""
    dismissed = 0
    try:
        for review in client.list_reviews(number):
            if review.get("state") == "CHANGES_REQUESTED" and me.wrote(review):
                client.dismiss_review(number, int(review["id"]), "squad: the findings that requested changes are gone.")
                dismissed += 1
    except GitHubAPIError as exc:
        print(f"squad: cannot dismiss squad's earlier review ({exc})", file=sys.stderr)
    return dismissed
