"""`squad gc`: remove the worktrees and branches squad runs leave behind."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("gc")
@click.option("--run", "runs", multiple=True, metavar="RUN", help="Clean up this run (repeatable), finished or not.")
@click.option("--all", "all_runs", is_flag=True, help="Clean up every finished or abandoned run.")
@click.option("--run-branches", is_flag=True, help="Also delete the run branches squad/<run> (merged results).")
@click.option("--keep-branches", is_flag=True, help="Remove worktrees only; keep every branch.")
@click.option("--dry-run", is_flag=True, help="Show what would be removed; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def gc(
    runs: tuple[str, ...], all_runs: bool, run_branches: bool, keep_branches: bool, dry_run: bool, as_json: bool
) -> None:
    """Remove worktrees and task branches (squad/<run>--<task>) of finished runs.

    A run is finished when its folder .squad/runs/<run>/ holds a report.json, and abandoned when it has
    no folder at all; --all cleans up both kinds and leaves active runs alone. --run cleans up the named
    runs whatever their state. Only branches squad created are ever deleted; run branches squad/<run>
    hold the merged result and go only with --run-branches.

    \b
    Examples:
      squad gc --all --dry-run
      squad gc --run 20261122-063107-a1b2 --run-branches
    """
    from squad.errors import UsageError
    from squad.infra.gc import gc as collect
    from squad.infra.workspace import Workspace

    if bool(runs) == all_runs:
        raise UsageError("say which runs to clean up: --run RUN (repeatable) or --all", hint="see `squad gc --help`")
    if keep_branches and run_branches:
        raise UsageError("--keep-branches and --run-branches contradict each other")
    report = collect(
        Workspace(Path.cwd()),
        runs=list(runs) or None,
        keep_branches=keep_branches,
        run_branches=run_branches,
        dry_run=dry_run,
    )
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    verb = "would remove" if dry_run else "removed"
    for path in report.worktrees:
        click.echo(f"{verb} worktree {path}")
    for branch in report.branches:
        click.echo(f"{verb} branch {branch}")
    for reason in report.skipped:
        click.echo(f"skipped: {reason}")
    if not report.worktrees and not report.branches:
        click.echo("nothing to remove")
