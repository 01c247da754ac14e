"""`squad github`: read the Actions environment, dispatch the event, report, and decide the exit status.

Pull request events -> review mode (one sticky comment). `/squad <task>` issue comments -> run mode
(trusted actors only). Reviewing and running are injected callables so tests drive the whole flow
with real git, real payloads and a loopback GitHub server.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from squad.config import Settings, Team, load_settings, load_team
from squad.domain.ids import new_run_id
from squad.errors import ConfigError, SquadError, UsageError
from squad.github import gitrepo
from squad.github.client import GitHubClient
from squad.github.review import (
    MARKER,
    LedgerReport,
    Reviewer,
    ReviewInput,
    ReviewOutcome,
    check_ledger,
    exit_code,
    merge_findings,
    render_report,
    verdict,
)
from squad.github.sanitize import fence, sanitize_code, sanitize_text

REVIEW_ACTIONS = frozenset({"opened", "synchronize", "reopened", "ready_for_review"})
MODES = ("auto", "review", "run")


@dataclass
class ActionEnv:
    """The parts of the Actions environment squad uses (validated)."""

    event_name: str
    event: dict[str, Any]
    repository: str
    api_url: str
    token: str
    workspace: Path
    step_summary: Path | None
    output: Path | None
    mode: str = "auto"
    model: str = ""
    max_cost: float | None = None
    remote: str = "origin"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ActionEnv:
        """Validate `env`; every problem is a UsageError (exit 2) naming the variable and the fix."""

        def need(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                raise UsageError(
                    f"{name} is not set", hint="`squad github` runs inside GitHub Actions (see action.yml)"
                )
            return value

        def inp(name: str) -> str:
            # Composite actions pass inputs as env; both spellings are accepted.
            return (
                env.get(f"SQUAD_{name.upper().replace('-', '_')}") or env.get(f"INPUT_{name.upper()}") or ""
            ).strip()

        event_path = Path(need("GITHUB_EVENT_PATH"))
        try:
            event = json.loads(event_path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise UsageError(f"cannot read GITHUB_EVENT_PATH {event_path}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise UsageError(f"GITHUB_EVENT_PATH is not JSON: {exc.msg}", path=event_path, line=exc.lineno) from None
        if not isinstance(event, dict):
            raise UsageError("the event payload is not a JSON object", path=event_path)
        repository = need("GITHUB_REPOSITORY")
        if repository.count("/") != 1:
            raise UsageError(f"GITHUB_REPOSITORY must be owner/name, got {repository!r}")
        api_url = env.get("GITHUB_API_URL", "").strip() or "https://api.github.com"
        if not api_url.startswith(("https://", "http://127.", "http://localhost")):
            raise UsageError(f"GITHUB_API_URL must be an https URL, got {api_url!r}")
        token = (env.get("GITHUB_TOKEN") or inp("github-token")).strip()
        if not token:
            raise UsageError("GITHUB_TOKEN is not set", hint="pass `github-token: ${{ secrets.GITHUB_TOKEN }}`")
        workspace = Path(env.get("GITHUB_WORKSPACE", "").strip() or os.getcwd())
        if not workspace.is_dir():
            raise UsageError(f"GITHUB_WORKSPACE {workspace} is not a directory")
        mode = inp("mode") or "auto"
        if mode not in MODES:
            raise UsageError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        max_cost: float | None = None
        if raw := inp("max-cost"):
            try:
                max_cost = float(raw)
            except ValueError:
                raise UsageError(f"max-cost must be a number of US dollars, got {raw!r}") from None
            if max_cost < 0:
                raise UsageError(f"max-cost must be >= 0, got {raw!r}")
        summary = env.get("GITHUB_STEP_SUMMARY", "").strip()
        output = env.get("GITHUB_OUTPUT", "").strip()
        return cls(
            event_name=need("GITHUB_EVENT_NAME"),
            event=event,
            repository=repository,
            api_url=api_url,
            token=token,
            workspace=workspace,
            step_summary=Path(summary) if summary else None,
            output=Path(output) if output else None,
            mode=mode,
            model=inp("model"),
            max_cost=max_cost,
            remote=env.get("SQUAD_GIT_REMOTE", "").strip() or "origin",
        )

    def __repr__(self) -> str:  # never show the token
        return f"ActionEnv(event={self.event_name!r}, repository={self.repository!r})"


@dataclass
class Report:
    """What one invocation did, for GITHUB_OUTPUT, the job summary and the exit status."""

    exit_code: int = 0
    verdict: str = ""
    comment_url: str = ""
    run_id: str = ""
    summary: str = ""
    notes: list[str] = field(default_factory=list)


def load_base_config(
    root: Path, sha: str, settings_overrides: Callable[[Settings], None] | None = None
) -> tuple[Settings, Team | None]:
    """Settings and team as of commit `sha` (the base), read with git into a temp dir — never the PR head."""
    with tempfile.TemporaryDirectory(prefix="squad-base-config-") as tmp:
        dest = gitrepo.materialize_squad_config(root, sha, Path(tmp))
        settings = load_settings(dest)
        try:
            team: Team | None = load_team(dest)
        except ConfigError:
            if (dest / ".squad" / "agents").is_dir():
                raise  # charters exist but are broken: say so
            team = None
    if settings_overrides:
        settings_overrides(settings)
    return settings, team


def write_outputs(env: ActionEnv, report: Report) -> None:
    """Append the report to the job summary and the step outputs (files the runner provides)."""
    if env.step_summary and report.summary:
        with env.step_summary.open("a", encoding="utf-8") as fh:
            fh.write(report.summary.rstrip() + "\n")
    if env.output:
        with env.output.open("a", encoding="utf-8") as fh:
            for key, value in (
                ("comment-url", report.comment_url),
                ("run-id", report.run_id),
                ("verdict", report.verdict),
            ):
                fh.write(f"{key}={' '.join(value.split())}\n")


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


def _pr_metadata(pr: dict[str, Any]) -> str:
    """PR title, body, author and refs, each sanitized and fenced as untrusted data."""
    author = (pr.get("user") or {}).get("login", "")
    head = (pr.get("head") or {}).get("ref", "")
    base = (pr.get("base") or {}).get("ref", "")
    facts = f"number: {pr.get('number')}\nauthor: {author}\nhead branch: {head}\nbase branch: {base}"
    return "\n\n".join(
        [
            fence(sanitize_text(facts), "pr-facts"),
            fence(sanitize_text(pr.get("title")), "pr-title"),
            fence(sanitize_text(pr.get("body")), "pr-body"),
        ]
    )


def review_pull_request(env: ActionEnv, client: GitHubClient, make_reviewer: ReviewerFactory) -> Report:
    """Review mode for a pull_request event. Always leaves the sticky comment (unless skipped)."""
    action = env.event.get("action", "")
    pr = env.event.get("pull_request") or {}
    number = int(pr.get("number") or env.event.get("number") or 0)
    if not number:
        raise UsageError(
            "the pull_request event has no pull_request.number", hint="is GITHUB_EVENT_PATH the right file?"
        )
    if action not in REVIEW_ACTIONS:
        return Report(notes=[f"squad: nothing to do for pull_request action {action!r}"], verdict="skipped")
    if pr.get("draft"):
        note = f"squad: PR #{number} is a draft; review skipped (it runs when the PR is marked ready for review)"
        return Report(notes=[note], verdict="skipped", summary=note)

    run_id = new_run_id()
    root = env.workspace
    base_sha = str((pr.get("base") or {}).get("sha", ""))
    head_sha = str((pr.get("head") or {}).get("sha", ""))
    sticky = StickyComment(client, number)
    pending = f"{MARKER}\n## ⏳ squad review: running\n\nReviewing commit `{head_sha[:12]}` · run `{run_id}` …\n"
    comment_url = sticky.write(pending)  # appears even if the job is killed before finishing

    outcome = ReviewOutcome()
    ledger: LedgerReport | None = None
    ledger_error: str | None = None
    skipped: tuple[gitrepo.SkippedFile, ...] = ()
    config_failed = False
    fail_on: list[str] = list(Settings().github.fail_on)
    try:
        base_sha = gitrepo.resolve_commit(root, base_sha, "base")
        head_sha = gitrepo.resolve_commit(root, head_sha, "head")
        try:
            settings, team = load_base_config(root, base_sha, _overrides(env))
        except ConfigError:
            config_failed = True
            raise
        fail_on = list(settings.github.fail_on)
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
            pr_metadata=_pr_metadata(pr),
            run_id=run_id,
        )
        if not diff.files:
            outcome = ReviewOutcome(summary="Nothing reviewable in this diff.")
        else:
            reviewer = make_reviewer(settings, team)
            timeout = settings.budgets.task_timeout_s or None
            outcome = asyncio.run(asyncio.wait_for(reviewer(review_input), timeout))
        outcome.findings = merge_findings(outcome.findings)
    except TimeoutError:
        outcome = ReviewOutcome(errors=["the review timed out (budgets.task_timeout_s)"])
    except SquadError as exc:
        outcome = ReviewOutcome(errors=[exc.render().removeprefix("error: ")])
    except Exception as exc:  # any failure must still end up in the comment
        traceback.print_exc(file=sys.stderr)
        outcome = ReviewOutcome(errors=[f"internal error: {type(exc).__name__}: {exc}"])

    result = verdict(outcome, ledger)
    body = render_report(
        head_sha=head_sha,
        run_id=run_id,
        outcome=outcome,
        ledger=ledger,
        ledger_error=ledger_error,
        skipped=skipped,
        result=result,
    )
    comment_url = sticky.write(body) or comment_url
    code = 2 if config_failed else exit_code(outcome, ledger, fail_on)
    return Report(exit_code=code, verdict=result, comment_url=comment_url, run_id=run_id, summary=body)


def _overrides(env: ActionEnv) -> Callable[[Settings], None]:
    """Action inputs that tighten base settings: `model` (all agents) and `max-cost` (run budget)."""

    def apply(settings: Settings) -> None:
        if env.model:
            settings.models.default = env.model
            settings.models.reviewer = env.model
            settings.models.coordinator = env.model
        if env.max_cost is not None:
            settings.budgets.run_usd = env.max_cost

    return apply


ReviewerFactory = Callable[[Settings, "Team | None"], Reviewer]


def default_reviewer_factory(settings: Settings, team: Team | None) -> Reviewer:
    """The real reviewer: the team's reviewer charters as agents (squad.github.agents)."""
    from squad.github.agents import agent_reviewer

    if team is None or not team.reviewers:
        raise ConfigError(
            "the base branch has no reviewer charters in .squad/agents/",
            hint="run `squad init` and merge the result, or add a charter with `reviewer: true`",
        )
    return agent_reviewer(settings, team)


def run_action(
    env: ActionEnv,
    *,
    make_reviewer: ReviewerFactory = default_reviewer_factory,
    make_runner: Any = None,
) -> Report:
    """Dispatch one event; returns the Report (outputs are written by the caller)."""
    from squad.github.command import default_runner_factory, handle_comment

    with GitHubClient(env.api_url, env.token, env.repository) as client:
        if env.event_name in ("pull_request", "pull_request_target"):
            if env.mode == "run":
                return Report(notes=["squad: mode is 'run' but this is a pull_request event; nothing to do"])
            return review_pull_request(env, client, make_reviewer)
        if env.event_name == "issue_comment":
            if env.mode == "review":
                return Report(notes=["squad: mode is 'review'; /squad commands are not run"])
            return handle_comment(env, client, make_runner or default_runner_factory)
    return Report(notes=[f"squad: event {env.event_name!r} is not handled (pull_request, issue_comment)"])
