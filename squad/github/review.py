"""Review mode: a pull request reviewed by the base branch's reviewer charters, one sticky comment.

The reviewing itself is one injectable async callable, `Reviewer`, so this flow (diff, ledger gate,
sticky comment, exit policy) is the same whether the reviewer is the real agent team
(`squad.github.reviewer.agent_reviewer`, through the orchestration's one review gate) or a test double.
Findings are `squad.domain.review.Finding`s, merged by `merge_findings`: one shape, one severity scale.
"""

from __future__ import annotations

import asyncio
import sys
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from squad.config import Settings, Team
from squad.domain.ids import new_run_id
from squad.domain.review import Finding, merge_findings
from squad.errors import ConfigError, SquadError, UsageError
from squad.github import gitrepo
from squad.github import markdown as md
from squad.github.artifact import publish_page, scratch_dir
from squad.github.client import GitHubClient
from squad.github.comment import (
    COMMENT_BUDGET,
    MARKER,
    SUMMARY_BUDGET,
    Identity,
    StickyComment,
    followup_section,
    render_report,
)
from squad.github.env import ActionEnv, Report, load_base_config
from squad.github.gitrepo import SkippedFile
from squad.github.inline import InlineResult, post_inline_review
from squad.github.prcontext import pr_context
from squad.github.sanitize import fence, sanitize_code
from squad.infra.journal import Journal
from squad.orchestration import RunConfig

REVIEW_ACTIONS = frozenset({"opened", "synchronize", "reopened", "ready_for_review"})
#: `labeled` with this label is a review too: how a maintainer asks for one (squad-review-forks.yml).
REVIEW_LABEL = "squad-review"
FORK_NOTE = """squad: PR #{number} comes from a fork, and this job has no ANTHROPIC_API_KEY: not reviewed.

GitHub gives a fork's `pull_request` run no secrets, so that the fork's code cannot read them. To review
pull requests from forks safely, use `examples/workflows/squad-review-forks.yml`: it runs on
`pull_request_target` only when a maintainer adds the `squad-review` label, and it never checks out or runs
the PR's code (squad reads the diff through git and reviews with read-only tools)."""


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
    journal_root: Path | None = None  # where the review's run folder goes (`.squad/runs/<run>` under it); None: none


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
ReviewerFactory = Callable[[RunConfig, "Team | None"], Reviewer]


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


def review_pull_request(env: ActionEnv, client: GitHubClient, make_reviewer: ReviewerFactory) -> Report:
    """Review mode for a pull_request event. Always leaves the sticky comment (unless skipped)."""
    action = env.event.get("action", "")
    pr = env.event.get("pull_request") or {}
    number = int(pr.get("number") or env.event.get("number") or 0)
    if not number:
        raise UsageError(
            "the pull_request event has no pull_request.number", hint="is GITHUB_EVENT_PATH the right file?"
        )
    labeled = action == "labeled" and (env.event.get("label") or {}).get("name") == REVIEW_LABEL
    if action not in REVIEW_ACTIONS and not labeled:
        return Report(notes=[f"squad: nothing to do for pull_request action {action!r}"], verdict="skipped")
    if pr.get("draft"):
        note = f"squad: PR #{number} is a draft; review skipped (it runs when the PR is marked ready for review)"
        return Report(notes=[note], verdict="skipped", summary=note)
    head_repo = ((pr.get("head") or {}).get("repo") or {}).get("full_name")
    if head_repo != env.repository and not env.model_key:
        note = FORK_NOTE.format(number=number)
        return Report(notes=[note.splitlines()[0]], verdict="skipped", summary=note)

    run_id = new_run_id()
    root = env.workspace
    journal_root = scratch_dir(env) / "squad-reviews"  # never the checkout: it is the pull request's
    base_sha = str((pr.get("base") or {}).get("sha", ""))
    head_sha = str((pr.get("head") or {}).get("sha", ""))
    me = Identity.of(client)
    sticky = StickyComment(client, number, me)
    what = f"commit {md.code(head_sha[:12])} · run {md.code(run_id)}"
    pending = f"{MARKER}\n## ⏳ squad review: running\n\nReviewing {what} …\n"
    comment_url = sticky.write(pending)  # appears even if the job is killed before finishing

    outcome = ReviewOutcome()
    ledger: LedgerReport | None = None
    ledger_error: str | None = None
    skipped: tuple[gitrepo.SkippedFile, ...] = ()
    inline: InlineResult | None = None
    max_followups = Settings().github.max_followups
    config_failed = False
    fail_on: list[str] = list(Settings().github.fail_on)
    try:
        base_sha = gitrepo.resolve_commit(root, base_sha, "base")
        if not gitrepo.has_commit(root, head_sha):
            # pull_request_target checks out the base: fetch the head's objects (never checked out or run).
            gitrepo.fetch(root, env.remote, f"refs/pull/{number}/head", env.token)
        head_sha = gitrepo.resolve_commit(root, head_sha, "head")
        try:
            config, team = load_base_config(root, base_sha, env)
        except (ConfigError, UsageError):  # broken base config, or an input that would loosen it
            config_failed = True
            raise
        settings = config.settings
        fail_on = list(settings.github.fail_on)
        max_followups = settings.github.max_followups
        diff = gitrepo.build_diff(root, base_sha, head_sha, settings.github.max_diff_bytes)
        skipped = diff.skipped
        try:
            ledger = check_ledger(root, base_sha, head_sha, diff.files + tuple(s.path for s in diff.skipped))
        except ImportError as exc:
            ledger_error = f"squad.infra.ledger is not available in this install ({exc})"
        except SquadError as exc:
            ledger_error = str(exc)
        review_input = ReviewInput(
            root=root,
            base_sha=base_sha,
            head_sha=head_sha,
            diff=fence(sanitize_code(diff.text), "diff"),
            changed_files=diff.files,
            skipped=diff.skipped,
            pr_number=number,
            pr_metadata=pr_context(
                pr,
                files=diff.files,
                skipped=diff.skipped,
                commits=gitrepo.commit_messages(root, base_sha, head_sha),
                decisions=ledger.added if ledger else (),
            ),
            run_id=run_id,
            journal_root=journal_root,
        )
        if not diff.files:
            outcome = ReviewOutcome(summary="Nothing reviewable in this diff.")
        else:
            reviewer = make_reviewer(config, team)
            timeout = config.limits.task_timeout_s
            outcome = asyncio.run(asyncio.wait_for(reviewer(review_input), timeout))
        outcome.findings = merge_findings(outcome.findings)
        if diff.files and (outcome.findings or not outcome.errors):
            inline = post_inline_review(
                client,
                number,
                head_sha=head_sha,
                findings=outcome.findings,
                lines=diff.lines,
                me=me,
                settings=settings.github,
                own_pr=me.wrote(pr),
                complete=not outcome.errors,
            )
    except TimeoutError:
        outcome = ReviewOutcome(errors=["the review timed out (budgets.task_timeout_s)"])
    except SquadError as exc:
        outcome = ReviewOutcome(errors=[exc.render().removeprefix("error: ")])
    except Exception as exc:  # any failure must still end up in the comment
        traceback.print_exc(file=sys.stderr)
        outcome = ReviewOutcome(errors=[f"internal error: {type(exc).__name__}: {exc}"])

    result = verdict(outcome, ledger)
    facts: dict[str, Any] = dict(
        head_sha=head_sha, run_id=run_id, outcome=outcome, ledger=ledger, ledger_error=ledger_error, skipped=skipped
    )
    more_at = f"the job summary of {md.link('this run', env.run_url)}" if env.run_url else "the job summary of this run"
    journal = Journal(journal_root, run_id)
    page = publish_page(env, journal.dir, run_id) if journal.exists else None
    facts["extra"] = [
        *(inline.section() if inline else []),
        *followup_section(sticky.state, max_followups),
        *([page.line] if page is not None else []),
    ]
    facts["shown"] = inline.rest if inline else None
    body = render_report(**facts, result=result, limit=COMMENT_BUDGET, more_at=more_at)
    summary = render_report(**facts, result=result, limit=SUMMARY_BUDGET)
    comment_url = sticky.write(body) or comment_url
    status = 2 if config_failed else exit_code(outcome, ledger, fail_on)
    report = Report(exit_code=status, verdict=result, comment_url=comment_url, run_id=run_id, summary=summary)
    return page.add_to(report) if page is not None else report
