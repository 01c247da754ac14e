"""`squad runs`, `squad log`, `squad cost`: read the run journals in `.squad/runs/`."""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import click

from squad.cli.markup import escape
from squad.cli.options import fragment_sources

if TYPE_CHECKING:
    from squad.domain.events import Event


def _root() -> Path:
    from squad.infra.git import find_repo_root

    return find_repo_root()


def _pick_run(root: Path, run: str | None) -> str:
    from squad.errors import UsageError
    from squad.infra.journal import Journal, latest_run

    if run is None:
        run = latest_run(root)
        if run is None:
            raise UsageError("no runs recorded yet in .squad/runs/", hint='start one with: squad run "<task>"')
        return run
    if not Journal(root, run).exists:
        raise UsageError(f"no run {run!r} in .squad/runs/", hint="`squad runs` lists the recorded runs")
    return run


def _events(root: Path, run: str) -> list[Event]:
    """The run's events; unreadable lines are reported on stderr (file:line), never fatal."""
    from squad.infra.journal import Journal
    from squad.infra.jsonl import JournalWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", JournalWarning)
        events = Journal(root, run).read_events()
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)
    return events


def _fragment_events(sources: tuple[Path, ...], run: str | None) -> tuple[str, list[Event]]:
    """RUN's events as `squad integrate` would merge them from the job fragments in `sources`, merging nothing:
    how to read a run spread over CI jobs from its artifacts (a failed task job's transcript, what it spent)."""
    from squad.domain.events import parse_event
    from squad.domain.ids import check_run
    from squad.errors import UsageError
    from squad.infra.fragments import find_fragments, merge_records
    from squad.orchestration.jobs import run_fragments

    if run is None:
        raise UsageError("--from needs the RUN whose fragments to read", hint="squad log RUN --from fragments/")
    check_run(run)
    plan, tasks = run_fragments(find_fragments(sources, run), run)
    return run, [parse_event(r) for r in merge_records(plan, tasks, [f.task or "" for f in tasks])]


def _read(run: str | None, sources: tuple[Path, ...], more: tuple[Path, ...]) -> tuple[str, list[Event]]:
    """The run (RUN, or the newest recorded here) and its events: from the fragments in `sources` (`--from A B`:
    the folders after the first are `more`) when given, else from its journal in .squad/runs/."""
    from squad.errors import UsageError

    if more and not sources:
        raise UsageError(f"unexpected argument {str(more[0])!r}", hint="fragment folders go after --from")
    if sources:
        return _fragment_events((*sources, *more), run)
    root = _root()
    run = _pick_run(root, run)
    return run, _events(root, run)


_FROM_HELP = (
    "Read RUN from these job fragments (CI artifacts of squad plan --out and squad task) instead of .squad/runs/, "
    "merged as squad integrate would merge them; nothing is written (--from A B, or --from A --from B)."
)


@click.command("runs")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as a JSON list.")
def runs(as_json: bool) -> None:
    """List the runs recorded in .squad/runs/, oldest first."""
    from rich.table import Table

    from squad.cli.markup import console as console_
    from squad.infra.journal import list_runs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = list_runs(_root())
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in found], indent=2))
        return
    if not found:
        click.echo('No runs yet. Start one with: squad run "<task>"')
        return
    rows = [
        (
            r.run,
            time.strftime("%Y-%m-%d %H:%M", time.localtime(r.started)) if r.started else "?",
            r.status,
            f"${r.cost_usd:.4f}",
            r.task_text,
        )
        for r in found
    ]
    if not sys.stdout.isatty():  # pipes get one tab-separated line per run, nothing cut
        for row in rows:
            click.echo("\t".join(row))
        return
    console = console_()
    widths = {"run": 20, "started": 16, "status": 11, "cost": 9}  # the run id is what people copy: never cut it
    task_width = console.width - sum(widths.values()) - 3 * (len(widths) + 1) - 1  # padding and borders
    table = Table()
    for col, width in widths.items():
        table.add_column(col, no_wrap=True, min_width=width)
    if task_width >= 8:  # on a narrow terminal the task goes; `squad runs | cat` prints it whole
        table.add_column("task", no_wrap=True, overflow="ellipsis", width=task_width)
    for row in rows:
        table.add_row(*(escape(v) for v in (row if task_width >= 8 else row[:-1])))
    console.print(table)


@click.command("log")
@click.argument("run", required=False)
@fragment_sources(_FROM_HELP)
@click.option("--task", "task", metavar="TASK", help="Only this plan task: its rounds, reviews and status.")
@click.option("--all", "show_all", is_flag=True, help="Include every agent event (turns, tool calls, model calls).")
@click.option(
    "--verbose",
    "-v",
    is_flag=True,
    help="Every agent event in full: tool calls with their arguments and (bounded) results, model calls, stops.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the raw events as a JSON list.")
def log(
    run: str | None,
    more: tuple[Path, ...],
    task: str | None,
    show_all: bool,
    verbose: bool,
    sources: tuple[Path, ...],
    as_json: bool,
) -> None:
    """Show what happened in RUN (default: the newest run) as a timeline.

    \b
    Examples:
      squad log                              the newest run, one line per step
      squad log --task api --verbose         task `api`'s transcript: every round, author and reviewer
      squad log RUN --from fragments/ --task api -v   the same from a run's CI artifacts
    """
    from squad.cli.transcript import render
    from squad.domain.events import AgentEvent, ModelCalled

    run, events = _read(run, sources, more)
    if task is not None:
        events = _task_events(run, events, task)
    if as_json:
        click.echo(json.dumps([e.to_record() for e in events], indent=2, default=str))
        return
    start = events[0].ts if events else 0.0
    click.echo(f"run {run}" + (f", task {task}" if task else ""))
    if verbose:
        for line in render(events, start):
            click.echo(line)
        return
    for ev in events:
        if not show_all and isinstance(ev, AgentEvent | ModelCalled):
            continue
        click.echo(f"{(ev.ts or start) - start:8.1f}s  {ev.describe()}")


def _task_events(run: str, events: list[Event], task: str) -> list[Event]:
    """The events of plan task `task` (its own, and its agents' sessions); UsageError for a task the run lacks."""
    from squad.domain.state import fold
    from squad.errors import UsageError

    known = fold(run, events).tasks
    if task not in known:
        listed = ", ".join(sorted(known)) or "none: the run has no plan"
        raise UsageError(f"run {run} has no task {task!r}", hint=f"its tasks: {listed}")
    return [e for e in events if getattr(e, "task", None) == task]


@click.command("cost")
@click.argument("run", required=False)
@fragment_sources(_FROM_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the roll-up as JSON.")
def cost(run: str | None, more: tuple[Path, ...], sources: tuple[Path, ...], as_json: bool) -> None:
    """Tokens and dollars of RUN (default: the newest run) per agent and per model, with the cache hit rate."""
    from rich.table import Table

    from squad.cli.markup import console as console_
    from squad.domain.state import fold

    run, events = _read(run, sources, more)
    state = fold(run, events)
    if as_json:
        click.echo(json.dumps({"run": run, **state.usage_report()}, indent=2))
        return
    console = console_()
    for title, lines in (("agent", state.spend_by_agent), ("model", state.spend_by_model)):
        table = Table(title=f"run {escape(run)}: per {title}")
        for col in (title, "calls", "input", "output", "cache write", "cache read", "hit rate", "cost"):
            table.add_column(col, justify="left" if col == title else "right")
        for name, line in [*sorted(lines.items()), ("total", state.spend)]:
            table.add_row(
                escape(name),
                str(line.turns),
                str(line.plain_input_tokens),
                str(line.output_tokens),
                str(line.cache_write_tokens),
                str(line.cache_read_tokens),
                f"{line.cache_hit_rate:.1%}",
                f"${line.usd:.4f}",
            )
        console.print(table)
