"""`squad github`: dispatch one Actions event to review mode or run mode.

Pull request events -> review mode (`squad.github.review`, one sticky comment, one inline review). `/squad <task>`
issue comments -> run mode (`squad.github.command`, trusted actors only). A review requesting changes, or failed CI,
on squad's own PR -> a follow-up revision (`squad.github.followup`). Reviewing and running are injected
callables so tests drive the whole flow with real git, real payloads and a loopback GitHub server.
"""

from __future__ import annotations

from squad.config import Team
from squad.errors import ConfigError
from squad.github.client import GitHubClient
from squad.github.command import RunnerFactory, default_runner_factory, handle_comment
from squad.github.env import ActionEnv, Report
from squad.github.followup import handle_followup
from squad.github.review import Reviewer, ReviewerFactory, review_pull_request
from squad.github.reviewer import agent_reviewer
from squad.orchestration import RunConfig

#: Events that may revise squad's own PR (squad.github.followup).
FOLLOWUP_EVENTS = frozenset({"pull_request_review", "workflow_run", "check_suite"})


def default_reviewer_factory(config: RunConfig, team: Team | None) -> Reviewer:
    """The real reviewer: the team's reviewer charters as agents (squad.github.reviewer)."""
    if team is None or not team.reviewers:
        raise ConfigError(
            "the base branch has no reviewer charters in .squad/agents/",
            hint="run `squad init` and merge the result, or add a charter with `reviewer: true`",
        )
    return agent_reviewer(config)


def run_action(
    env: ActionEnv,
    *,
    make_reviewer: ReviewerFactory = default_reviewer_factory,
    make_runner: RunnerFactory = default_runner_factory,
) -> Report:
    """Dispatch one event; returns the Report (outputs are written by the caller)."""
    with GitHubClient(env.api_url, env.token, env.repository, graphql_url=env.graphql_url or None) as client:
        if env.event_name in ("pull_request", "pull_request_target"):
            if env.mode == "run":
                return Report(notes=["squad: mode is 'run' but this is a pull_request event; nothing to do"])
            return review_pull_request(env, client, make_reviewer)
        if env.event_name == "issue_comment":
            if env.mode == "review":
                return Report(notes=["squad: mode is 'review'; /squad commands are not run"])
            return handle_comment(env, client, make_runner)
        if env.event_name in FOLLOWUP_EVENTS:
            if env.mode == "review":
                return Report(notes=["squad: mode is 'review'; follow-ups are not made"])
            return handle_followup(env, client, make_runner)
    handled = "pull_request, pull_request_target, issue_comment, " + ", ".join(sorted(FOLLOWUP_EVENTS))
    return Report(notes=[f"squad: event {env.event_name!r} is not handled ({handled})"])
