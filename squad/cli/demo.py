"""`squad demo`: the real pipeline, offline, on a copy of the bundled bookshelf example with a scripted team.

Nothing is simulated but the model: the demo repo is a real git repo, `squad init` scaffolds it, the
coordinator validates the scripted plan, specialists work in parallel in real worktrees with the
jailed tools, the tester runs the example's real unittest suite, the reviewer rejects one task that a
different specialist then revises, decisions land in the run's ledger, and the approved branches
are merged into `squad/<run>`. The example and the script are package data (squad/data/demo/), read
through importlib.resources, so the demo works from an installed wheel as well as from a checkout.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import click

DEMO_TASK = (
    "Add loans to bookshelf: lend a book with a due date, give it back, list overdue loans; test and document it."
)
EXAMPLE = "bookshelf"


def demo_data() -> Traversable:
    """The demo's bundled files (package data, so an installed wheel has them): `bookshelf/`, `script.yaml`."""
    data = resources.files("squad").joinpath("data", "demo")
    if not (data.joinpath(EXAMPLE, ".squad", "squad.toml").is_file() and data.joinpath("script.yaml").is_file()):
        from squad.errors import SquadError

        raise SquadError(
            "the demo's files are missing from the installed package (squad/data/demo)",
            hint="reinstall squad: pip install --force-reinstall squad-agents",
        )
    return data


def copy_tree(source: Traversable, target: Path) -> None:
    """Copy a package-data folder to `target` through importlib.resources (works for any loader, zips too).

    Byte-compiled caches that an installer may have written beside the example's modules are skipped.
    """
    target.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.name == "__pycache__" or item.name.endswith((".pyc", ".pyo")):
            continue
        if item.is_dir():
            copy_tree(item, target / item.name)
        else:
            (target / item.name).write_bytes(item.read_bytes())


def make_demo_repo(target: Path) -> Path:
    """Copy the example project into `target`, make it a git repo with one commit, and `squad init` it."""
    from squad.errors import SquadError, UsageError
    from squad.infra.git import identity, run_git
    from squad.infra.scaffold import scaffold

    source = demo_data().joinpath(EXAMPLE)
    if target.exists() and any(target.iterdir()):
        raise UsageError(f"{target} exists and is not empty", hint="give --keep a new or empty directory")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"cannot create {target}: {exc.strerror}", hint="give --keep a directory you can write to"
        ) from None
    copy_tree(source, target)

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
    Copies the bundled bookshelf example into a fresh git repo, runs `squad init` there, then runs the
    real pipeline with the bundled scripted model (no API key, no network): a plan, specialists working
    in parallel in their own worktrees, a tester running the project's real tests, a rejected task
    revised by a different specialist, decisions recorded in the run's ledger, and every approved
    branch merged into squad/<run>. Exit codes as for `squad run`.
    """
    temp: Path | None = None
    if keep is None:
        temp = Path(tempfile.mkdtemp(prefix="squad-demo-"))
        target = temp / EXAMPLE
    else:
        target = keep
    try:
        code = _run_demo(target.resolve(), keep=keep is not None, as_json=as_json)
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
    sys.exit(code)


def _run_demo(target: Path, *, keep: bool, as_json: bool) -> int:
    """Build the demo repo in `target`, run the scripted team there, and return the run's exit code."""
    from squad.cli.run import execute_run
    from squad.config import load_settings, load_team
    from squad.orchestration import RunConfig

    root = make_demo_repo(target)
    if not as_json:
        click.echo(f"demo repo: {root}\ntask: {DEMO_TASK}\n", err=True)
    # as_file: the scripted model needs a real path, even if the package is not plain files on disk.
    with resources.as_file(demo_data().joinpath("script.yaml")) as script:
        config = RunConfig.build(root, load_settings(root), load_team(root), model=f"scripted:{script}")
        code = execute_run(
            config,
            DEMO_TASK,
            as_json=as_json,
            show_next=keep,  # a temp demo repo is removed: no "next: git merge" into it
        )
    if as_json:
        return code
    if keep:
        from squad.infra.journal import latest_run

        branch = f"squad/{latest_run(root)}"
        click.echo(
            f"\nThe demo repo is kept in {root}. Look around:\n"
            f"  cd {root}\n"
            "  squad log && squad cost              # what happened, and what it cost\n"
            "  squad report --open                  # the same as one HTML page: timeline, cost, tasks\n"
            f"  git log --oneline --graph {branch}   # the task branches merged into the run branch\n"
            f"  git switch {branch} && squad decisions list   # the run's ledger lands on its branch",
            err=True,
        )
    else:
        click.echo("\n(the demo repo was a temp dir and is removed; use --keep DIR to look around)", err=True)
    return code
