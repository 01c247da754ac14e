"""The `squad` command line: a click group whose subcommands are imported only when used.

Each subcommand lives in its own module under `squad.cli`; `COMMANDS` maps the command name to
`module:attribute` plus a one-line help shown by `squad --help` without importing the module.
That keeps `squad --help` and `squad --version` free of anthropic, git and pydantic imports.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

import click

from squad import __version__

#: name -> (module path, attribute, short help). Order here is the order in `squad --help`.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "init": ("squad.cli.init", "init", "Scaffold .squad/, AGENTS.md and decisions/ in this repo."),
    "team": ("squad.cli.team", "team", "Show the team roster from .squad/agents/."),
    "doctor": ("squad.cli.doctor", "doctor", "Check settings, charters, git and the API key."),
    "decisions": ("squad.cli.decisions", "decisions", "Add, list, show, search and check decisions."),
    "plan": ("squad.cli.matrix", "plan", "Show the plan for a task, or start a run spread over CI jobs (--out)."),
    "run": ("squad.cli.run", "run", "Plan a task and run the team on it."),
    "task": ("squad.cli.matrix", "task", "Run one task of a run spread over CI jobs (after `squad plan --out`)."),
    "integrate": ("squad.cli.matrix", "integrate", "Merge a run's approved tasks into squad/<run>, test, push."),
    "approve": ("squad.cli.people", "approve", "Accept a task's rejected work as a person's verdict."),
    "reject": ("squad.cli.people", "reject", "Send a task's approved work back, with a note."),
    "runs": ("squad.cli.journal", "runs", "List the runs recorded in .squad/runs/."),
    "log": ("squad.cli.journal", "log", "Show what happened in a run."),
    "cost": ("squad.cli.journal", "cost", "Tokens and dollars of a run, per agent and model."),
    "report": ("squad.cli.report", "report", "Write a run's HTML report: timeline, cost, tasks, decisions."),
    "gc": ("squad.cli.gc", "gc", "Remove worktrees and branches of finished runs."),
    "demo": ("squad.cli.demo", "demo", "Run the offline demo: a scripted team on an example project."),
    "github": ("squad.cli.github", "github", "Entry point of the GitHub Action (reads GITHUB_* env)."),
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when that subcommand runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if _available(name)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = COMMANDS.get(cmd_name)
        if spec is None or not _available(cmd_name):
            return None
        module, attr, _ = spec
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _available(name: str) -> bool:
    """True when the subcommand's module exists (lets commands land one at a time)."""
    module = COMMANDS[name][0]
    return importlib.util.find_spec(module) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="squad")
def cli() -> None:
    """Run a team of AI specialists on a git repository.

    \b
    Quick start:
      squad demo            offline demo with a scripted team (no API key)
      squad init            scaffold .squad/ in the current repo
      squad run "<task>"    plan, run in parallel, review, merge into squad/<run>

    Exit codes: 0 success, 1 the work failed or was rejected, 2 usage or configuration error.
    """


def main(argv: list[str] | None = None) -> Any:
    """Console-script and `python -m squad` entry: run the CLI, turn SquadError into a clean message + exit code,
    and exit with the code a command gave `ctx.exit` (click returns it when not standalone)."""
    from squad.errors import SquadError  # light module, no heavy imports

    try:
        result = cli.main(args=argv, prog_name="squad", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except SquadError as exc:
        click.echo(exc.render(), err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    if isinstance(result, int) and result:  # a command's ctx.exit(code): click hands the code back, not exits
        sys.exit(result)
    return result
