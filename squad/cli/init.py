"""`squad init`: scaffold .squad/ (settings, team), AGENTS.md and decisions/README.md in the current repo."""

from __future__ import annotations

import json

import click


@click.command()
@click.option(
    "--force",
    "force",
    multiple=True,
    metavar="PATH",
    help="Restore the default content of PATH (as printed, e.g. .squad/agents/lead.md). Repeatable.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the files and their status as JSON.")
def init(force: tuple[str, ...], as_json: bool) -> None:
    """Scaffold squad in the git repository containing the current directory.

    \b
    Creates, at the top of the work tree:
      .squad/squad.toml      every setting, with its default and what it does
      .squad/agents/*.md     charters of the default team: lead, backend, tester, reviewer
      AGENTS.md              repo norms every agent reads (only if missing)
      decisions/README.md    how to read the decisions ledger
      .gitignore             gains `.squad/runs/` unless git already ignores it

    Safe to run again: a file equal to the default is "unchanged", a missing one is "created", and a
    file you edited is "kept" — never overwritten unless you name it with --force.
    """
    from squad.infra.git import find_repo_root
    from squad.infra.scaffold import scaffold

    root = find_repo_root()
    outcomes = scaffold(root, force=force)
    if as_json:
        click.echo(json.dumps([o.to_dict() for o in outcomes], indent=2))
        return
    width = max(len(o.status) for o in outcomes)
    for o in outcomes:
        note = f"  ({o.note})" if o.note else ""
        click.echo(f"{o.status:<{width}}  {o.path}{note}")
    changed = [o for o in outcomes if o.status in ("created", "restored", "updated")]
    if changed:
        click.echo(f"squad init: {len(changed)} file(s) written in {root}. Next: edit .squad/, then `squad doctor`.")
    else:
        click.echo("squad init: nothing changed; everything is already in place.")
