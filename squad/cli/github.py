"""`squad github`: the GitHub Action's entry point (reads GITHUB_* and INPUT_* / SQUAD_* env)."""

from __future__ import annotations

import os
import sys

import click


@click.command("github")
def github() -> None:
    """Handle the current GitHub Actions event.

    \b
    pull_request (opened, synchronize, reopened, ready_for_review), pull_request_target (label squad-review):
        review the PR with the base branch's reviewer charters; one sticky comment, updated in place, and
        one inline review of the findings on changed lines.
    issue_comment "/squad <task>":
        from a collaborator with write access: run the team, push the result, reply in the thread.
    pull_request_review (changes requested), workflow_run / check_suite (failed), on squad's own PR:
        from a trusted actor: revise the branch (at most github.max_followups times).

    Reads GITHUB_EVENT_NAME, GITHUB_EVENT_PATH, GITHUB_REPOSITORY, GITHUB_API_URL, GITHUB_TOKEN,
    GITHUB_WORKSPACE, GITHUB_STEP_SUMMARY, GITHUB_OUTPUT, and the inputs SQUAD_MODE (auto|review|run),
    SQUAD_MODEL, SQUAD_MAX_COST (or INPUT_MODE, INPUT_MODEL, INPUT_MAX-COST). Writes comment-url,
    run-id and verdict to GITHUB_OUTPUT. Exit 1 when github.fail_on says so, 2 on bad env or config.
    """
    from squad.github.action import run_action
    from squad.github.env import ActionEnv, write_outputs

    env = ActionEnv.from_env(os.environ)
    # The client holds the token from here on; no subprocess (git, agent tools) inherits it.
    for name in ("GITHUB_TOKEN", "INPUT_GITHUB-TOKEN", "SQUAD_GITHUB_TOKEN"):
        os.environ.pop(name, None)
    report = run_action(env)
    for note in report.notes:
        click.echo(note)
    write_outputs(env, report)
    if report.verdict:
        click.echo(f"squad: verdict {report.verdict}" + (f" — {report.comment_url}" if report.comment_url else ""))
    sys.exit(report.exit_code)
