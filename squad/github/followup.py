"""Follow-ups on squad's own pull requests: changes requested by a trusted reviewer, or CI failing on squad's commit.

squad acts only on a PR whose branch it created or pushed to — its state block (branch + the sha it pushed) in its
own sticky comment says so, and only squad's token writes that comment — and only:
- from this repository (never a fork's branch);
- for a trusted actor (write access, or a bot in `[github] trusted_bots`, or squad itself): a review by anyone
  else, or a CI run started by anyone else, does nothing at all;
- when the branch is still where squad left it (a person's commits on it are never built on or pushed over;
  the push itself is a lease on that sha);
- at most `[github] max_followups` times per PR; then the comment says a person should take over.

The review's comments, or the failed jobs' logs (fetched through the Actions API, bounded, sanitized), reach the
team as fenced untrusted data; the revision is pushed to the branch and each review thread is answered.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any

from squad.errors import SquadError
from squad.github import gitrepo
from squad.github import markdown as md
from squad.github.client import GitHubAPIError, GitHubClient
from squad.github.command import RunnerFactory, RunRequest, is_trusted, run_request
from squad.github.comment import Identity, StickyComment, followup_section
from squad.github.env import ActionEnv, Report, load_base_config
from squad.github.sanitize import fence, sanitize_code, sanitize_line, sanitize_text

MAX_JOBS = 3
MAX_LOG_CHARS = 20_000
MAX_REVIEW_COMMENTS = 50
_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_STAMP_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z ", re.MULTILINE)
_FOLLOWUPS_RE = re.compile(r"### Follow-ups\n.*?(?=\n### |\n<sub>|\n<!-- squad:state |\Z)", re.DOTALL)


@dataclass(frozen=True)
class Trigger:
    """What asks for a follow-up: a review requesting changes, or a failed CI run on a sha."""

    kind: str  # "review" | "ci"
    number: int
    actor: dict[str, Any]
    describe: str
    review_id: int | None = None
    review_body: str = ""
    sha: str = ""  # ci: the commit CI ran on
    run_id: int | None = None  # ci: a workflow run
    suite_id: int | None = None  # ci: a check suite


def trigger_of(env: ActionEnv, client: GitHubClient) -> Trigger | str:
    """The follow-up this event asks for, or why it asks for none."""
    event = env.event
    if env.event_name == "pull_request_review":
        review = event.get("review") or {}
        if event.get("action") != "submitted" or str(review.get("state", "")).lower() != "changes_requested":
            return "the review does not request changes"
        user = review.get("user") or {}
        return Trigger(
            "review",
            int((event.get("pull_request") or {}).get("number") or 0),
            user,
            f"changes requested by {user.get('login', '?')}",
            review_id=int(review.get("id") or 0),
            review_body=str(review.get("body") or ""),
        )
    key = "workflow_run" if env.event_name == "workflow_run" else "check_suite"
    run = event.get(key) or {}
    if event.get("action") != "completed" or run.get("conclusion") != "failure":
        return f"the {key.replace('_', ' ')} did not fail"
    pulls = [p for p in run.get("pull_requests") or [] if p.get("number")]
    if not pulls and run.get("head_branch"):
        pulls = client.open_pulls_from(str(run["head_branch"]))
    if not pulls:
        return f"no open pull request for branch {run.get('head_branch')!r}"
    actor = run.get("triggering_actor") or run.get("actor") or event.get("sender") or {}
    name = (event.get("workflow") or {}).get("name") or run.get("name") or key.replace("_", " ")
    return Trigger(
        "ci",
        int(pulls[0]["number"]),
        actor,
        f"{name} failed",
        sha=str(run.get("head_sha", "")),
        run_id=int(run["id"]) if key == "workflow_run" else None,
        suite_id=int(run["id"]) if key == "check_suite" else None,
    )


def handle_followup(env: ActionEnv, client: GitHubClient, make_runner: RunnerFactory) -> Report:
    """A pull_request_review / workflow_run / check_suite event: revise squad's own PR when every rule allows."""
    trigger = trigger_of(env, client)
    if isinstance(trigger, str):
        return Report(notes=[f"squad: no follow-up: {trigger}"], verdict="skipped")
    me = Identity.of(client)
    pull = client.get_pull(trigger.number)
    head = pull.get("head") or {}
    if (head.get("repo") or {}).get("full_name") != env.repository:
        return Report(notes=["squad: no follow-up on a fork's branch"], verdict="refused")
    sticky = StickyComment(client, trigger.number, me)
    state = sticky.state
    if not state.get("branch") or state["branch"] != head.get("ref"):
        return Report(notes=[f"squad: PR #{trigger.number} is not one squad opened or pushed to"], verdict="refused")
    root = env.workspace
    base_sha = str((pull.get("base") or {}).get("sha", ""))
    if not gitrepo.has_commit(root, base_sha):
        gitrepo.fetch(root, env.remote, f"refs/heads/{(pull.get('base') or {}).get('ref', '')}", env.token)
    config, team = load_base_config(root, gitrepo.resolve_commit(root, base_sha, "base"), env)
    settings = config.settings
    trusted = me.wrote({"user": trigger.actor})
    why = "squad itself"
    if not trusted:
        trusted, why = is_trusted(client, trigger.actor, settings)
    if not trusted:
        return Report(notes=[f"squad: no follow-up for an untrusted actor ({why})"], verdict="refused")
    if trigger.kind == "ci" and trigger.sha != state.get("sha"):
        return Report(notes=["squad: no follow-up: CI did not run on squad's last push"], verdict="skipped")

    limit = settings.github.max_followups
    attempts = [a for a in state.get("followups") or [] if isinstance(a, dict)]
    ran = sum(1 for a in attempts if a.get("ran"))

    def record(result: str, *, counted: bool = False, at: str = "") -> str:
        attempts.append({"trigger": trigger.describe, "result": result, "at": at, "ran": counted})
        state["followups"] = attempts[-20:]
        body = (sticky.comment or {}).get("body") or ""
        return sticky.write(_with_followups(body, followup_section(state, limit)))

    if ran >= limit:
        url = record(f"not done: the limit of {limit} follow-ups ([github] max_followups) is reached; over to a person")
        return Report(notes=["squad: follow-up limit reached"], verdict="limit", comment_url=url)
    if head.get("sha") != state.get("sha"):
        url = record(f"not done: the branch moved since squad pushed {str(state.get('sha'))[:12]}")
        return Report(notes=["squad: the branch moved; no follow-up"], verdict="refused", comment_url=url)
    if not gitrepo.has_commit(root, str(head["sha"])):
        gitrepo.fetch(root, env.remote, f"refs/heads/{state['branch']}", env.token)

    comments = _review_comments(client, trigger) if trigger.kind == "review" else []
    request = RunRequest(
        root=root,
        base_sha=gitrepo.resolve_commit(root, str(head["sha"]), "PR head"),
        task=_task(trigger),
        context=_review_context(trigger, comments) if trigger.kind == "review" else _ci_context(client, trigger),
    )
    result = run_request(make_runner(config, team), request)
    if result.ok and result.commit:
        try:
            gitrepo.push(root, env.remote, result.commit, state["branch"], env.token, expect=str(state["sha"]))
        except SquadError as exc:
            result.ok, result.error = False, f"push refused: {exc}"
    if result.ok and result.commit:
        state["sha"] = result.commit
        outcome = f"pushed revision {result.commit[:12]} (run {result.run_id})"
        reply = f"squad revised the branch for this in {md.code(result.commit[:12])} (run {md.code(result.run_id)})."
    else:
        outcome = f"failed (run {result.run_id}): {result.error or result.status or 'no revision was made'}"
        why = md.text(result.error or result.status, 500)
        reply = f"squad could not address this (run {md.code(result.run_id)}): {why}"
    for c in comments:
        try:
            client.reply_to_review_comment(trigger.number, int(c["id"]), reply)
        except GitHubAPIError as exc:
            print(f"squad: cannot answer review comment {c.get('id')} ({exc})", file=sys.stderr)
    url = record(outcome, counted=True, at=result.commit or "")
    return Report(
        exit_code=0 if result.ok else 1,
        verdict="done" if result.ok else "failed",
        comment_url=url,
        run_id=result.run_id,
        summary=f"squad follow-up on PR #{trigger.number}: {md.text(outcome, 1000)}",
    )


def _with_followups(body: str, section: list[str]) -> str:
    """`body` with its Follow-ups section replaced (or added before the decisions)."""
    text = "\n".join(section).strip()
    if _FOLLOWUPS_RE.search(body):
        return _FOLLOWUPS_RE.sub(lambda _m: text, body, count=1)
    if "\n### Decisions" in body:
        return body.replace("\n### Decisions", f"\n{text}\n\n### Decisions", 1)
    return body.rstrip("\n") + "\n\n" + text + "\n"


def _task(trigger: Trigger) -> str:
    if trigger.kind == "review":
        return (
            "A reviewer requested changes on this pull request. Revise the code so each of their comments "
            "(below) is addressed; where a comment asks for something unsafe or out of scope, leave that part "
            "and record why as a decision."
        )
    return (
        "CI failed on this pull request's latest commit. Find the cause in the failed jobs' logs (below) and fix "
        "the code so those jobs pass; do not weaken or skip the failing checks."
    )


def _review_comments(client: GitHubClient, trigger: Trigger) -> list[dict[str, Any]]:
    if not trigger.review_id:
        return []
    return list(client.review_comments(trigger.number, trigger.review_id))[:MAX_REVIEW_COMMENTS]


def _review_context(trigger: Trigger, comments: list[dict[str, Any]]) -> str:
    """The review as untrusted data: its body, and each inline comment with its file and line."""
    parts = [fence(sanitize_text(trigger.review_body), "review-body")]
    for i, c in enumerate(comments, start=1):
        where = sanitize_line(f"{c.get('path', '')}:{c.get('line') or c.get('original_line') or ''}", 300)
        parts.append(fence(f"{where}\n{sanitize_text(c.get('body'))[:4000]}", f"review-comment-{i}"))
    return "\n\n".join(parts)


def _ci_context(client: GitHubClient, trigger: Trigger) -> str:
    """The failed jobs' names and log tails (ANSI and timestamps stripped, invisible characters shown), fenced."""
    jobs: list[dict[str, Any]] = []
    try:
        if trigger.run_id is not None:
            jobs = [j for j in client.run_jobs(trigger.run_id) if j.get("conclusion") == "failure"]
        elif trigger.suite_id is not None:
            jobs = [j for j in client.suite_check_runs(trigger.suite_id) if j.get("conclusion") == "failure"]
    except GitHubAPIError as exc:
        return fence(f"(the failed jobs could not be listed: {exc})", "ci-log")
    parts: list[str] = []
    for job in jobs[:MAX_JOBS]:
        name = sanitize_line(str(job.get("name", "job")), 200)
        steps = [s.get("name", "") for s in job.get("steps") or [] if s.get("conclusion") == "failure"]
        try:
            log = client.job_log(int(job["id"]))
        except GitHubAPIError as exc:
            output = job.get("output") or {}
            log = "\n".join(str(output.get(k) or "") for k in ("title", "summary", "text")) or f"(no log: {exc})"
        log = _STAMP_RE.sub("", _ANSI_RE.sub("", log))[-MAX_LOG_CHARS:]
        header = f"job: {name}" + (f"\nfailed steps: {sanitize_line(', '.join(steps), 500)}" if steps else "")
        parts.append(fence(f"{header}\n{sanitize_code(log)}", "ci-log"))
    if len(jobs) > MAX_JOBS:
        parts.append(f"({len(jobs) - MAX_JOBS} more failed jobs not shown)")
    return "\n\n".join(parts) or fence("(no failed job found)", "ci-log")
