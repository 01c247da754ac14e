"""`squad team`: the roster from .squad/agents/, with each agent's resolved model."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

COLUMNS = ("name", "role", "model", "owns", "reviewer")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the roster as JSON (tools expanded).")
def team(as_json: bool) -> None:
    """Show the team: every charter in .squad/agents/ with its role, model, owned paths and reviewer flag.

    The model column is the one the agent will actually use: its charter's model, else the reviewer
    default for reviewers, else [models] default in .squad/squad.toml. A malformed squad.toml or
    charter is reported as file:line (exit 2).
    """
    from squad.config import load_settings, load_team
    from squad.infra.git import find_repo_root

    root = find_repo_root()
    settings = load_settings(root)
    roster = load_team(root)
    rows: list[dict[str, Any]] = [
        {
            "name": c.name,
            "role": c.role,
            "model": c.model_for(settings),
            "owns": list(c.owns),
            "reviewer": c.reviewer,
            "tools": c.tool_names(),
            "path": c.path.relative_to(root).as_posix() if c.path else None,
        }
        for c in roster.agents.values()
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif sys.stdout.isatty():
        _print_rich(rows)
    else:
        _print_plain(rows)


def _cells(row: dict[str, Any]) -> list[str]:
    return [row["name"], row["role"], row["model"], ", ".join(row["owns"]) or "-", "yes" if row["reviewer"] else "no"]


def _print_plain(rows: list[dict[str, Any]]) -> None:
    """Aligned columns without colour or box drawing: stable for pipes, grep and tests."""
    table = [list(COLUMNS), *(_cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    for line in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


def _print_rich(rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    from squad.cli.markup import console, escape

    table = Table(title="squad team")
    for col in COLUMNS:
        table.add_column(col, style="bold" if col == "name" else None, no_wrap=col in ("name", "model", "reviewer"))
    for row in rows:
        table.add_row(*(escape(c) for c in _cells(row)))  # roles and paths are text, not markup
    console().print(table)
