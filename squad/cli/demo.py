"""`squad demo`: the real pipeline, offline, on a copy of examples/bookshelf with a scripted team.

Nothing is simulated but the model: the demo repo is a real git repo, `squad init` scaffolds it, the
coordinator validates the scripted plan, specialists work in parallel in real worktrees with the
jailed tools, the tester runs the example's real unittest suite, the reviewer rejects one task that a
different specialist then revises, decisions land in the run's ledger, and the approved branches
are merged into `squad/<run>`.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import click

DEMO_TASK = (
    "Add loans to bookshelf: lend a book with a due date, give it back, list overdue loans; test and document it."
)
EXAMPLE = "bookshelf"


def examples_dir() -> Path:
    """The `examples/` folder: beside the package in a source checkout, or bundled in the package."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package.parent / "examples", package / "examples"):
        if (candidate / EXAMPLE).is_dir() and (candidate / "demo" / "script.yaml").is_file():
            return candidate
    from squad.errors import UsageError

    raise UsageError(
        "the demo's example project was not found (examples/bookshelf and examples/demo/script.yaml)",
        hint="run the demo from a source checkout: git clone the squad repo, then `pip install -e .`",
    )


def make_demo_repo(target: Path) -> Path:
    """Copy the example project into `target`, make it a git repo with one commit, and `squad init` it."""
    from squad.errors import SquadError, UsageError
    from squad.infra.git import identity, run_git
    from squad.infra.scaffold import scaffold

    source = examples_dir() / EXAMPLE
    if target.exists() and any(target.iterdir()):
        raise UsageError(f"{target} exists and is not empty", hint="give --keep a new or empty directory")
    shutil.copytree(source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "runs"))

    def git(*args: str) -> None:
        proc = run_git(target, "-c", "commit.gpgsign=false", *args, env=identity("squad demo", "demo@squad.invalid"))
        if proc.returncode != 0:
            raise SquadError(f"git {' '.join(args)} failed in the demo repo {target}: {proc.stderr.strip()}")

    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "bookshelf: initial import"]):
        git(*args)
    scaffold(target)  # fills in the default team around the example's own charters; keeps theirs
    git("add", "-A")
    git("commit", "-q", "-m", "squad init")
    return target


@click.command("demo")
@click.option(
    "--keep",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Build the demo repo in DIR and keep it afterwards (default: a temp dir, removed at the end).",
)
@click.option("--json", "as_json", is_flag=True, help="Print only the final run report, as JSON.")
def demo(keep: Path | None, as_json: bool) -> None:
    """Run the offline demo: a scripted team adds a feature to a small example project.

    \b
    Copies examples/bookshelf into a fresh git repo, runs `squad init` there, then runs the real
    pipeline with the bundled scripted model (no API key, no network): a plan, specialists working
    in parallel in their own worktrees, a tester running the project's real tests, a rejected task
    revised by a different specialist, decisions recorded in the run's ledger, and every approved
    branch merged into squad/<run>. Exit codes as for `squad run`.
    """
    from squad.cli.run import execute_run
    from squad.config import load_settings, load_team
    from squad.orchestration import RunConfig

    script = examples_dir() / "demo" / "script.yaml"
    temp = None if keep else Path(tempfile.mkdtemp(prefix="squad-demo-"))
    root = make_demo_repo((keep or temp / EXAMPLE).resolve())  # type: ignore[operator]
    if not as_json:
        click.echo(f"demo repo: {root}\ntask: {DEMO_TASK}\n", err=True)
    try:
        config = RunConfig.build(root, load_settings(root), load_team(root), model=f"scripted:{script}")
        code = execute_run(
            config,
            DEMO_TASK,
            as_json=as_json,
            show_next=keep is not None,  # a temp demo repo is removed: no "next: git merge" into it
        )
        if not as_json:
            if keep:
                from squad.infra.journal import latest_run

                branch = f"squad/{latest_run(root)}"
                click.echo(
                    f"\nThe demo repo is kept in {root}. Look around:\n"
                    f"  cd {root}\n"
                    "  squad log && squad cost              # what happened, and what it cost\n"
                    f"  git log --oneline --graph {branch}   # the task branches merged into the run branch\n"
                    f"  git switch {branch} && squad decisions list   # the run's ledger lands on its branch",
                    err=True,
                )
            else:
                click.echo("\n(the demo repo was a temp dir and is removed; use --keep DIR to look around)", err=True)
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
    sys.exit(code)
