"""`squad run --pr`: push a run's branch and open (or update) its pull request through the GitHub API.

Where things come from, decided BEFORE the run so a missing piece fails before any model call:
- the token: GITHUB_TOKEN, else GH_TOKEN (from the environment only: never an argument, never .git/config;
  it is removed from squad's environment once read, and git gets it for the one push through GIT_CONFIG_*);
- the repository: GITHUB_REPOSITORY, else the remote's URL (`git@host:owner/name.git`, `https://host/owner/name`);
- the API: GITHUB_API_URL, else the remote's host (github.com -> https://api.github.com, any other host ->
  https://<host>/api/v3, GitHub Enterprise Server's).

The PR body lists the tasks (who did each, who reviewed it, the verdicts), the cost, and the decisions the run
adds with links to the ledger file on the branch. A rerun (`squad run --resume RUN --pr`) updates the same PR.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from squad.errors import SquadError, UsageError
from squad.github import gitrepo
from squad.github import markdown as md
from squad.github.client import GitHubClient
from squad.github.comment import MARKER, Identity, StickyComment

if TYPE_CHECKING:
    from squad.orchestration import RunReport

_SCP_RE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>[^/].*)$")  # git@github.com:owner/name.git
#: Statuses whose run branch holds work worth a pull request (the rest ended with nothing merged).
PUBLISHABLE = frozenset({"done", "partial", "needs_human", "tests_failed", "conflict", "failed"})


@dataclass(frozen=True)
class Target:
    """Where `--pr` publishes: the remote to push to, the repository and API to open the PR with."""

    remote: str
    repository: str
    api_url: str
    server_url: str
    token: str

    def __repr__(self) -> str:  # never show the token
        return f"Target({self.remote!r}, {self.repository!r}, {self.api_url!r})"


def resolve_target(root: Path, remote: str, env: Mapping[str, str] | None = None) -> Target:
    """Everything `--pr` needs, or a UsageError (exit 2) saying what is missing — checked before the run."""
    env = os.environ if env is None else env
    token = (env.get("GITHUB_TOKEN") or env.get("GH_TOKEN") or "").strip()
    if not token:
        raise UsageError(
            "--pr needs a GitHub token in GITHUB_TOKEN or GH_TOKEN",
            hint="export GH_TOKEN=$(gh auth token), or a fine-grained token with contents and pull-requests write",
        )
    url = gitrepo.git(root, "remote", "get-url", remote, check=False).strip()
    if not url:
        raise UsageError(f"no git remote {remote!r} to push to", hint="pass --remote NAME (see `git remote -v`)")
    host, path = _host_and_path(url)
    repository = (env.get("GITHUB_REPOSITORY") or "").strip() or path
    if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repository):
        raise UsageError(
            f"cannot tell the GitHub repository of remote {remote!r} ({url})",
            hint="set GITHUB_REPOSITORY=owner/name",
        )
    api_url = (env.get("GITHUB_API_URL") or "").strip().rstrip("/")
    if not api_url:
        if not host:
            raise UsageError(f"remote {remote!r} ({url}) is not on a GitHub host", hint="set GITHUB_API_URL")
        api_url = "https://api.github.com" if host == "github.com" else f"https://{host}/api/v3"
    if not api_url.startswith(("https://", "http://127.", "http://localhost")):
        raise UsageError(f"GITHUB_API_URL must be an https URL, got {api_url!r}")
    server_url = (env.get("GITHUB_SERVER_URL") or "").strip().rstrip("/") or (
        "https://github.com" if not host or host == "github.com" else f"https://{host}"
    )
    return Target(remote, repository, api_url, server_url, token)


def _host_and_path(url: str) -> tuple[str, str]:
    """(host, owner/name) of a remote URL; ("", "") for a local path."""
    if "://" in url:
        parts = urlsplit(url)
        if parts.scheme == "file":
            return "", ""
        host, path = parts.hostname or "", parts.path
    elif m := _SCP_RE.match(url):
        host, path = m["host"], m["path"]
    else:
        return "", ""
    return host, path.strip("/").removesuffix(".git")


def publish(root: Path, report: RunReport, target: Target, *, base: str) -> dict[str, Any]:
    """Push `squad/<run>` and open its PR (a draft unless the run is done: a partial run's PR says what is in it),
    or update the open one."""
    branch = report.branch or f"squad/{report.run}"
    sha = gitrepo.git(root, "rev-parse", "--verify", f"refs/heads/{branch}^{{commit}}").strip()
    gitrepo.push(root, target.remote, sha, branch, target.token)
    title = f"squad: {(report.task.strip().splitlines() or ['run ' + report.run])[0][:72]}"
    body = pr_body(root, report, target, sha)
    with GitHubClient(target.api_url, target.token, target.repository) as client:
        existing = client.open_pulls_from(branch)
        if existing:
            pull = client.update_pull(int(existing[0]["number"]), title=title, body=body)
        else:
            pull = client.create_pull(title=title, head=branch, base=base, body=body, draft=not report.ok)
        number = int(pull["number"])
        # squad's memory of the PR (branch, sha it pushed), for follow-ups by the same identity
        sticky = StickyComment(client, number, Identity.of(client))
        sticky.state = {**sticky.state, "branch": branch, "sha": sha, "run": report.run}
        what = f"branch {md.code(branch)} at {md.code(sha[:12])}"
        sticky.save_state(f"{MARKER}\n## squad opened this pull request\n\nRun {md.code(report.run)}: {what}.\n")
    return pull


def pr_body(root: Path, report: RunReport, target: Target, sha: str) -> str:
    """The PR description: status, tasks (author, reviewers, verdicts), cost, decisions with ledger links."""
    lines = [
        f"Opened by squad (`--pr`) from run {md.code(report.run)} (status {md.text(report.status)}).",
        "",
        md.quote(md.model(report.task, limit=2000)),
        "",
        "### Tasks",
        "",
        "| task | done by | reviewed by | verdicts | status |",
        "| --- | --- | --- | --- | --- |",
    ]
    for task in report.tasks[:100]:
        reviewers = sorted({str(v.get("reviewer", "")) for v in task.verdicts} - {""})
        verdicts = ", ".join(str(v.get("verdict", "?")) for v in task.verdicts) or "—"
        cells = [
            md.code(task.id),
            md.text(", ".join(task.agents) or task.agent),
            md.text(", ".join(reviewers) or "—"),
            md.text(verdicts),
            md.text(task.status),
        ]
        lines.append("| " + " | ".join(md.cell(c) for c in cells) + " |")
    lines += ["", f"Cost: ${report.cost_usd:.4f} · cache hit rate {report.cache_hit_rate:.0%}", ""]
    if report.decisions:
        from squad.infra.ledger import Ledger

        ledger = Ledger(root)
        path = ledger.relative(ledger.run_file(report.run)).as_posix()
        url = f"{target.server_url}/{target.repository}/blob/{sha}/{path}"
        lines += ["### Decisions this run adds", "", f"In {md.link(path, url)}:", ""]
        lines += [
            f"- **{md.text(d.get('title'))}** — {md.code(d.get('id'))} by {md.text(d.get('agent') or 'unknown')}"
            for d in report.decisions[:100]
        ]
        lines.append("")
    if report.error:
        lines += [f"Error: {md.text(report.error, 2000)}", ""]
    return "\n".join(lines)


def publish_step(root: Path, target: Target, base: str | None = None) -> Callable[[RunReport], int | None]:
    """What `squad run --pr` does after the run: publish when the run branch holds work; the exit code on failure.

    The PR's base is `base`, else the branch the run started from (the current branch, decided now). Work is what
    the run branch has beyond the run's base commit: a CI checkout is detached and has no local `base` branch."""
    base = base or gitrepo.git(root, "symbolic-ref", "--quiet", "--short", "HEAD", check=False).strip() or "main"

    def then(report: RunReport) -> int | None:
        branch = report.branch  # named only when work reached it
        since = report.base_commit or base
        ahead = gitrepo.git(root, "rev-list", "--count", f"{since}..{branch}", check=False).strip() if branch else ""
        if report.status not in PUBLISHABLE or not ahead or ahead == "0":
            print(f"squad: --pr: run {report.run} ended {report.status}, nothing on {branch}: no PR", file=sys.stderr)
            return None
        try:
            pull = publish(root, report, target, base=base)
        except SquadError as exc:
            print(exc.render(), file=sys.stderr)
            return 1
        print(f"squad: pull request {pull.get('html_url', '')} ({branch} -> {base})", file=sys.stderr)
        return None

    return then
