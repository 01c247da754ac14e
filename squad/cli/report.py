"""`squad report`: one self-contained HTML page for a run (timeline, cost, tasks, tests, decisions)."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("report")
@click.argument("run", required=False)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Where to write the page (default: .squad/runs/<run>/report.html).",
)
@click.option("--open", "open_it", is_flag=True, help="Open the page in the default web browser.")
@click.option("--json", "as_json", is_flag=True, help="Print where the page went as JSON.")
def report(run: str | None, out: Path | None, open_it: bool, as_json: bool) -> None:
    """Write an HTML report of RUN (default: the newest run) and print its path.

    \b
    One file, no server, no network: a timeline with a lane per agent (planning, setup, work rounds,
    reviews, tests, every model call with its time to first token, every tool call), cost and tokens
    per agent and per model (the numbers of `squad cost`), the tasks with their verdicts and findings,
    each task's transcript, the tests and the decisions of the run.
    """
    from squad.cli.journal import _pick_run, _root
    from squad.infra.journal import Journal
    from squad.orchestration.report_html import write_report_page

    root = _root()
    run = _pick_run(root, run)
    path = write_report_page(Journal(root, run).dir, out)
    if as_json:
        click.echo(json.dumps({"run": run, "path": str(path), "bytes": path.stat().st_size}))
    else:
        click.echo(str(path))
    if open_it:
        import webbrowser

        if not webbrowser.open(path.resolve().as_uri()):
            click.echo("warning: no web browser could be started; open the file yourself", err=True)
