"""`squad approve` and `squad reject`: a person's verdict on a task's latest work, journaled with their name."""

from __future__ import annotations

import click


def _verdict(run: str, task: str, verdict: str, note: str | None) -> None:
    from squad.infra.git import find_repo_root
    from squad.orchestration.people import human_verdict

    nxt = human_verdict(find_repo_root(), run, task, verdict, note)
    word = "approved" if verdict == "approve" else "sent back"
    click.echo(f"task {task} of run {run}: {word}. Next: {nxt}")


@click.command("approve")
@click.argument("run")
@click.argument("task")
@click.option("--note", metavar="TEXT", help="Why, for the record (and the reviewers of later rounds).")
def approve(run: str, task: str, note: str | None) -> None:
    """Accept TASK's latest rejected work in RUN as a person's verdict; `--resume` then merges it.

    The verdict is journaled with your git user.name, as a person's, never a reviewer's.
    Exit codes: 0 recorded, 2 no such run or task, or the task is not waiting for a person.
    """
    _verdict(run, task, "approve", note)


@click.command("reject")
@click.argument("run")
@click.argument("task")
@click.option("--note", metavar="TEXT", required=True, help="What is wrong: the next author gets it as a finding.")
def reject(run: str, task: str, note: str) -> None:
    """Send TASK's approved (not yet merged) work in RUN back; `--resume` has another specialist revise it.

    Exit codes: 0 recorded, 2 no such run or task, or the task has no approved, unmerged work.
    """
    _verdict(run, task, "reject", note)
