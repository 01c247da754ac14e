"""`squad decisions`: add, list, show, search and check entries of the decisions ledger."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import click

from squad.errors import SquadError, UsageError
from squad.infra.ledger import Entry, Ledger, ParseResult, person_slug, superseded_by


class _Group(click.Group):
    """Renders SquadError as `error: ...` with its exit code, also when invoked directly (tests, other CLIs)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SquadError as exc:
            click.echo(exc.render(), err=True)
            ctx.exit(exc.exit_code)


def _ledger() -> Ledger:
    from squad.infra.git import find_repo_root

    return Ledger(find_repo_root())


def _warn(parsed: ParseResult) -> None:
    for problem in parsed.problems:
        click.echo(f"warning: {problem}", err=True)


def _rows(entries: list[Entry]) -> list[dict[str, Any]]:
    replaced = superseded_by(entries)
    rows = []
    for entry in entries:
        row = entry.to_dict()
        row["status"] = "superseded" if entry.id in replaced else "active"
        row["superseded_by"] = replaced.get(entry.id, [])
        rows.append(row)
    return rows


def _print_rows(rows: list[dict[str, Any]], as_json: bool) -> None:
    """JSON list, a rich table on a terminal, or tab-separated lines when piped."""
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not sys.stdout.isatty():
        for r in rows:
            click.echo("\t".join([r["id"], r["date"], r["status"], r["agent"] or "-", r["run"] or "-", r["title"]]))
        return
    from rich.table import Table

    from squad.cli.markup import console, escape

    table = Table(box=None, header_style="bold")
    for col in ("id", "date", "status", "agent", "run", "title"):
        table.add_column(col, no_wrap=col != "title")
    for r in rows:
        style = "dim" if r["status"] == "superseded" else None
        cells = (r["id"], r["date"][:10], r["status"], r["agent"] or "", r["run"] or "", r["title"])
        table.add_row(*(escape(c) for c in cells), style=style)  # titles are text, not rich markup
    console().print(table)


def _sorted(entries: list[Entry]) -> list[Entry]:
    return sorted(entries, key=lambda e: (e.date, e.id))


@click.group(cls=_Group)
def decisions() -> None:
    """The decisions ledger: append-only markdown under decisions/, one file per run or person.

    \b
    Examples:
      squad decisions add --title "Use SQLite" --decision "One file, no server."
      squad decisions list --status active
      squad decisions show 01JD4        (a unique id prefix is enough)
      squad decisions check --base origin/main
    """


@decisions.command()
@click.option("--title", required=True, help="One-line title.")
@click.option("--decision", required=True, help="What was decided.")
@click.option("--context", default="", help="Why the question came up.")
@click.option("--consequences", default="", help="What follows from it.")
@click.option("--agent", default=None, help="The agent that decided (leave empty for a person's decision).")
@click.option("--run", "run_id", default=None, help="Record in this run's ledger file instead of your own.")
@click.option("--supersedes", multiple=True, metavar="ID", help="Id of an entry this one replaces (repeatable).")
@click.option("--tag", "tags", multiple=True, help="A tag (repeatable).")
@click.option("--person", default=None, help="Whose file to write (default: from git user.email / user.name / $USER).")
def add(
    title: str,
    decision: str,
    context: str,
    consequences: str,
    agent: str | None,
    run_id: str | None,
    supersedes: tuple[str, ...],
    tags: tuple[str, ...],
    person: str | None,
) -> None:
    """Append a decision; prints the new id only.

    Without --run the entry goes to your own dated file decisions/YYYY/MM/YYYY-MM-DD-<you>.md;
    with --run to the run's file. Superseded ids must exist (a unique prefix is accepted).
    """
    ledger = _ledger()
    if supersedes:
        entries = ledger.parse().entries
        supersedes = tuple(_resolve(entries, s).id for s in supersedes)
    file = ledger.run_file(run_id) if run_id else ledger.personal_file(person or person_slug(ledger.root))
    entry = ledger.append(
        file,
        title=title,
        decision=decision,
        context=context,
        consequences=consequences,
        agent=agent,
        run=run_id,
        supersedes=supersedes,
        tags=tags,
    )
    click.echo(entry.id)


@decisions.command(name="list")
@click.option("--run", "run_id", default=None, help="Only entries of this run.")
@click.option("--agent", default=None, help="Only entries by this agent.")
@click.option("--status", type=click.Choice(["active", "superseded"]), default=None, help="Only this status.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def list_(run_id: str | None, agent: str | None, status: str | None, as_json: bool) -> None:
    """List entries, oldest first. Unreadable entries are reported on stderr as file:line warnings."""
    parsed = _ledger().parse()
    _warn(parsed)
    rows = _rows(_sorted(parsed.entries))
    rows = [
        r
        for r in rows
        if (run_id is None or r["run"] == run_id)
        and (agent is None or r["agent"] == agent)
        and (status is None or r["status"] == status)
    ]
    _print_rows(rows, as_json)


def _resolve(entries: list[Entry], prefix: str) -> Entry:
    """The entry whose id starts with `prefix` (case-insensitive); UsageError if none or several."""
    wanted = prefix.strip().upper()
    matches = {e.id: e for e in entries if wanted and e.id.startswith(wanted)}
    if not matches:
        raise UsageError(f"no decision with id {prefix!r}", hint="see `squad decisions list`")
    if len(matches) > 1:
        listing = "\n".join(f"    {e.id}  {e.title}  ({e.location})" for e in matches.values())
        raise UsageError(
            f"id prefix {prefix!r} is ambiguous; it matches {len(matches)} entries:\n{listing}",
            hint="give more characters of the id",
        )
    return next(iter(matches.values()))


@decisions.command()
@click.argument("entry_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the entry as JSON.")
def show(entry_id: str, as_json: bool) -> None:
    """Show one entry in full (a unique id prefix is enough)."""
    parsed = _ledger().parse()
    _warn(parsed)
    entry = _resolve(parsed.entries, entry_id)
    row = next(r for r in _rows(parsed.entries) if r["id"] == entry.id)
    if as_json:
        click.echo(json.dumps(row, indent=2, ensure_ascii=False))
        return
    click.echo(entry.raw.rstrip("\n"))
    click.echo()
    status = row["status"] + (f" (by {', '.join(row['superseded_by'])})" if row["superseded_by"] else "")
    click.echo(f"status: {status}\nfile: {entry.location}")


@decisions.command()
@click.argument("pattern", metavar="REGEX")
@click.option("-i", "--ignore-case", is_flag=True, help="Match case-insensitively.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def search(pattern: str, ignore_case: bool, as_json: bool) -> None:
    """Entries whose title or text (context, decision, consequences) matches REGEX (Python syntax)."""
    try:
        regex = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except re.error as exc:
        raise UsageError(f"bad regular expression {pattern!r}: {exc}") from None
    parsed = _ledger().parse()
    _warn(parsed)
    hits = [
        e
        for e in _sorted(parsed.entries)
        if any(regex.search(t) for t in (e.title, e.context, e.decision, e.consequences))
    ]
    hit_ids = {e.id for e in hits}
    _print_rows([r for r in _rows(_sorted(parsed.entries)) if r["id"] in hit_ids], as_json)


@decisions.command()
@click.option("--base", default=None, metavar="REF", help="Also fail on entries at REF that were modified or deleted.")
@click.option("--json", "as_json", is_flag=True, help="Print {ok, entries, files, problems} as JSON.")
@click.pass_context
def check(ctx: click.Context, base: str | None, as_json: bool) -> None:
    """Check the ledger; exit 1 on any problem (each printed as file:line: message).

    Finds unreadable entries, duplicate ids, supersedes of unknown ids and, with --base, landed
    entries that were edited or deleted (entries are append-only).
    """
    ledger = _ledger()
    parsed = ledger.parse()
    problems = ledger.check(base, parsed=parsed)
    n_files = len(ledger.files())
    if as_json:
        payload = {
            "ok": not problems,
            "entries": len(parsed.entries),
            "files": n_files,
            "problems": [p.to_dict() for p in problems],
        }
        click.echo(json.dumps(payload, indent=2))
    elif problems:
        for problem in problems:
            click.echo(str(problem))
        click.echo(f"{len(problems)} problem(s)", err=True)
    else:
        click.echo(f"ok: {len(parsed.entries)} entries in {n_files} files")
    if problems:
        ctx.exit(1)
