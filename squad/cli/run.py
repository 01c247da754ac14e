"""`squad run` and `squad plan`: thin wrappers over squad.orchestration.coordinator.

Output modes of `squad run`: on a terminal a live view of the team fed by journal events, then the
report; otherwise one plain line per event, then the report; with `--json` exactly one JSON document
(the report) on stdout and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from squad.cli.markup import escape
from squad.cli.options import model_option

if TYPE_CHECKING:
    from squad.domain.events import Event
    from squad.orchestration import RunConfig, RunReport

T = TypeVar("T")


def _load(
    *,
    model: str | None = None,
    max_cost: float | None = None,
    apply: bool = False,
    allow_failing_baseline: bool = False,
) -> RunConfig:
    from squad.config import load_settings, load_team
    from squad.infra.git import find_repo_root
    from squad.orchestration import RunConfig

    root = find_repo_root()
    return RunConfig.build(
        root,
        load_settings(root),
        load_team(root),
        model=model,
        max_cost=max_cost,
        apply=apply,
        allow_failing_baseline=allow_failing_baseline,
    )


def _run_until_done(make: Callable[[], Awaitable[T]], say: Callable[[str], None]) -> T:
    """Run a coroutine; the first Ctrl-C cancels it (it cleans up and returns), a second exits at once."""

    async def main() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        presses = 0

        def on_sigint() -> None:
            nonlocal presses
            presses += 1
            if presses == 1 and task is not None:
                say("Stopping: cancelling the agents (Ctrl-C again to exit at once)…")
                task.cancel()
            else:
                os._exit(130)

        # Fails off the main thread (e.g. under a test runner); Ctrl-C then raises KeyboardInterrupt as usual.
        # Not removed when `make` returns: asyncio.run then waits for worker threads (a test command still
        # running after the first Ctrl-C), and the second Ctrl-C must still exit at once. Closing the loop
        # removes the handler.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, on_sigint)
        return await make()

    return asyncio.run(main())


class _LiveView:
    """A rich table of the team: each agent's state, turn, tokens, cost and last tool.

    It folds the events it is handed with the run state's own fold (`squad.domain.state`), so it shows
    what `squad log` and a resume would read.
    """

    def __init__(self, console: Any) -> None:
        from rich.live import Live

        from squad.domain.state import RunState

        self.state = RunState(run="")
        self.status = "starting"
        self.started = time.monotonic()
        self.live = Live(self._render(), console=console, refresh_per_second=8, transient=False)

    def __call__(self, event: Event) -> None:
        self.state.apply(event)
        if event.type == "plan" and self.state.plan is not None:
            self.status = f"plan: {len(self.state.plan.tasks)} tasks"
            for t in self.state.plan.tasks:
                self.state.activity(t.agent)
        elif event.type in ("merged", "conflict", "tests", "run_finished", "interrupted", "task_status"):
            self.status = " ".join(
                str(v) for v in (event.type, getattr(event, "task", None), getattr(event, "status", None)) if v
            )
        self.live.update(self._render())

    def _render(self) -> Any:
        from rich.table import Table

        table = Table(title=f"squad — {escape(self.status)} — {time.monotonic() - self.started:.0f}s", expand=False)
        for col in ("agent", "state", "task", "turn", "tokens in/out", "cost", "last tool"):
            table.add_column(col)
        for name, a in sorted(self.state.agents.items()):
            spend = a.spend
            table.add_row(
                escape(name),
                escape(a.state),
                escape(a.task),
                str(a.turns),
                f"{spend.input_tokens}/{spend.output_tokens}",
                f"${spend.usd:.4f}",
                escape(a.last_tool),
            )
        return table


def _print_report(report: RunReport, console: Any, *, show_next: bool = True) -> None:
    from rich.table import Table

    color = "green" if report.ok else "red"
    console.print(f"\n[bold {color}]run {escape(report.run)}: {escape(report.status)}[/]  {escape(report.task)}")
    table = Table()
    for col in ("task", "agent(s)", "status", "rounds", "verdicts"):
        table.add_column(col)
    for t in report.tasks:
        verdicts = ", ".join(str(v.get("verdict")) for v in t.verdicts)
        cells = (t.id, ", ".join(t.agents) or t.agent, t.status, t.rounds, verdicts)
        table.add_row(*(escape(c) for c in cells))
    console.print(table)
    for line in report.needs_human:
        console.print(f"[yellow]needs a person:[/] {escape(line)}")
    if report.conflicts:
        console.print("[red]merge conflict in:[/] " + escape(", ".join(report.conflicts)))
    if report.not_merged:
        merged = ", ".join(report.merged) or "nothing"
        console.print(f"merged into {escape(report.branch or 'no branch')}: {escape(merged)}")
        for task, why in report.not_merged.items():
            console.print(f"[yellow]not merged:[/] {escape(task)}: {escape(why)}")
    if report.tests:
        passed = "passed" if report.tests.get("passed") else "FAILED"
        console.print(f"tests on the integrated result: `{escape(report.tests.get('command'))}` {passed}")
    if report.decisions:
        console.print(f"decisions recorded: {len(report.decisions)}")
        for d in report.decisions:
            console.print(f"  - {escape(d['title'])} ({escape(d.get('agent') or '?')}, {escape(d['id'])})")
    if report.error:
        console.print(f"[red]error:[/] {escape(report.error)}")
    where = f"; branch {escape(report.branch)}" if report.branch else "; nothing was merged"
    console.print(f"cost ${report.cost_usd:.4f}, cache hit rate {report.cache_hit_rate:.0%}{where}")
    if show_next:
        console.print(f"next: {escape(report.next_command)}")


@click.command("run")
@click.argument("task", required=False, default="")
@click.option("--agent", "agent", metavar="NAME", help="Skip planning: give the whole task to this specialist.")
@click.option("--resume", metavar="RUN", help="Resume an interrupted or failed run (see `squad runs`).")
@click.option(
    "--retry",
    metavar="TASK",
    help="With --resume: reopen TASK (it needs a person, failed, or conflicts); its lockout starts afresh.",
)
@click.option("--note", metavar="TEXT", help="With --retry: guidance for the agent and the reviewer.")
@click.option("--apply", "apply_", is_flag=True, help="Merge squad/<run> into your branch when done (clean tree).")
@click.option("--json", "as_json", is_flag=True, help="Print only the final report, as JSON.")
@click.option(
    "--allow-failing-baseline",
    is_flag=True,
    help="Start even when the tests fail on the base commit; then only NEW failures veto an approval.",
)
@model_option
@click.option(
    "--max-cost",
    type=click.FloatRange(min=0, min_open=True),
    metavar="USD",
    help="Budget for the whole run in dollars, more than 0 (replaces budgets.run_usd).",
)
@click.option(
    "--pr",
    "open_pr",
    is_flag=True,
    help="Then push squad/<run> to --remote and open (or update) its pull request (token: GITHUB_TOKEN or GH_TOKEN).",
)
@click.option("--remote", default="origin", show_default=True, help="The git remote --pr pushes to.")
def run(
    task: str,
    agent: str | None,
    resume: str | None,
    retry: str | None,
    note: str | None,
    apply_: bool,
    as_json: bool,
    allow_failing_baseline: bool,
    model: str | None,
    max_cost: float | None,
    open_pr: bool,
    remote: str,
) -> None:
    """Plan TASK, run the team on it in parallel worktrees, review, and merge into squad/<run>.

    \b
    Examples:
      squad run "add a /health endpoint with a test"
      squad run "fix the flaky date test" --agent tester
      squad run --resume 20261122-063107-a1b2
      squad run --resume 20261122-063107-a1b2 --retry docs --note "the README example must run"
      squad run --model replay:20261122-063107-a1b2   (the recorded task again, offline)
      squad run "add a changelog" --pr                   (then a pull request; --resume RUN --pr updates it)
    Exit codes: 0 done and approved, 1 failed / rejected / needs a person, 2 usage or config error.
    """
    from squad.errors import UsageError

    publish_to = _pr_target(remote) if open_pr else None  # before any model call: no token, no run

    replay = bool(model and model.startswith("replay:")) and not resume
    if not task.strip() and not resume and not replay:
        raise UsageError("give a task, or --resume RUN", hint='squad run "what the team should do"')
    if task.strip() and resume:
        raise UsageError("--resume continues a recorded task; do not give a new TASK with it")
    if retry and not resume:
        raise UsageError("--retry reopens a task of a recorded run: give --resume RUN too")
    if note and not retry:
        raise UsageError("--note goes with --retry TASK (for a person's verdict: squad approve/reject --note)")
    config = _load(model=model, max_cost=max_cost, apply=apply_, allow_failing_baseline=allow_failing_baseline)
    if replay:
        task, agent = _replayed_task(config.root, str(model), task, agent)
    config.preflight(planning=agent is None and not resume)  # a config error first, before any warning or view
    if not resume:
        _warn_before_new_run(config.root)
    then = None
    if publish_to is not None:
        from squad.github.publish import publish_step

        then = publish_step(config.root, publish_to)
        if resume and (done := _finished_report(config.root, resume)) is not None:
            sys.exit(then(done) or done.exit_code)  # a finished run: publish it again, no model call
    sys.exit(execute_run(config, task, agent=agent, resume=resume, retry=retry, note=note, as_json=as_json, then=then))


def _pr_target(remote: str) -> Any:
    """`--pr`'s target (token, repository, API), or a UsageError before anything runs; the token then leaves
    squad's environment, so no agent subprocess can inherit it."""
    from squad.github.publish import resolve_target
    from squad.infra.git import find_repo_root

    target = resolve_target(find_repo_root(), remote)
    for name in ("GITHUB_TOKEN", "GH_TOKEN"):
        os.environ.pop(name, None)
    return target


def _finished_report(root: Path, run_id: str) -> RunReport | None:
    """The report of run `run_id` when it finished `done` (its report.json), else None."""
    from squad.infra.journal import Journal
    from squad.orchestration import RunReport

    journal = Journal(root, run_id)
    if not journal.report_path.is_file():
        return None
    report = RunReport.from_dict(json.loads(journal.report_path.read_text(encoding="utf-8")))
    return report if report.status == "done" else None


def _warn_before_new_run(root: Path) -> None:
    """Say on stderr (never in --json stdout) what a person starting a run may not expect: another run of this
    repository still at work (both spend), and changes the team will not see (it works from HEAD)."""
    from squad.infra.journal import active_runs
    from squad.infra.workspace import Workspace

    for other, pid in active_runs(root):
        who = f" by process {pid}" if pid else ""
        click.echo(
            f"warning: run {other} is still running in this repository{who}; this run works beside it and "
            "spends as much again (`squad runs` lists them)",
            err=True,
        )
    # Settings and charters are read from the work tree, so changes under .squad/ do take effect.
    changed = [p for p in Workspace(root).uncommitted() if not p.startswith(".squad/")]
    if changed:
        shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
        click.echo(
            f"warning: uncommitted changes ({shown}): the team works from HEAD and will not see them; "
            "commit them first if the task needs them",
            err=True,
        )


def _replayed_task(root: Path, model: str, task: str, agent: str | None) -> tuple[str, str | None]:
    """The task and `--agent` of a replay: the recorded run's unless given. The recorded responses answer
    the recorded task whatever is asked, so a different task gets a warning."""
    from squad.errors import UsageError
    from squad.infra.journal import EVENTS
    from squad.infra.jsonl import read_jsonl
    from squad.models.registry import replay_dir

    folder = replay_dir(model.removeprefix("replay:"), root)
    started = next((e for e in read_jsonl(folder / EVENTS) if e.get("type") == "run_started"), None)
    if started is None:
        if not task.strip():
            raise UsageError(f"{folder} records no task to replay", hint='give it: squad run "<task>" --model ...')
        return task, agent
    recorded = str(started.get("task_text") or "")
    if task.strip() and task != recorded:
        click.echo(
            f"warning: run {folder.name} was recorded for {recorded!r}; its recorded responses will not follow "
            f"the new task {task!r}",
            err=True,
        )
    return task if task.strip() else recorded, agent or started.get("agent")


def execute_run(
    config: RunConfig,
    task: str,
    *,
    agent: str | None = None,
    resume: str | None = None,
    retry: str | None = None,
    note: str | None = None,
    as_json: bool = False,
    show_next: bool = True,
    then: Callable[[RunReport], int | None] | None = None,
) -> int:
    """Run the coordinator with the live view / plain lines / JSON output; return the exit code.

    Shared by `squad run` and `squad demo`, so both show a run the same way.
    """
    from squad.cli.markup import console
    from squad.domain.events import AgentEvent, ModelCalled
    from squad.orchestration import Coordinator

    tty = sys.stdout.isatty() and not as_json
    view: _LiveView | None = None
    on_event: Callable[[Event], None] | None = None
    if tty:
        view = _LiveView(console())
        on_event = view
    elif not as_json:

        def on_event(event: Event) -> None:
            if not isinstance(event, AgentEvent | ModelCalled):  # agent chatter stays in `squad log`
                click.echo(f"{time.strftime('%H:%M:%S', time.localtime(event.ts))} {event.describe()}")

    coord = Coordinator(config, on_event=on_event)

    def say(message: str) -> None:
        if not as_json:
            click.echo(message, err=True)

    if view is not None:
        with view.live:
            report = _run_until_done(lambda: coord.run(task, agent=agent, resume=resume, retry=retry, note=note), say)
    else:
        report = _run_until_done(lambda: coord.run(task, agent=agent, resume=resume, retry=retry, note=note), say)
    show_report(config.root, report, as_json=as_json, show_next=show_next)
    if report.status == "interrupted":
        if not as_json:
            say(f"Interrupted. Worktrees are kept; resume with: squad run --resume {report.run}")
        return 130
    if then is not None:
        return then(report) or report.exit_code
    return report.exit_code


def show_report(
    root: Path, report: RunReport, *, as_json: bool, show_next: bool = True, extra: Sequence[str] = ()
) -> None:
    """Write the run's report page, then show the report: one JSON document (with `report_html`, the page's path),
    or the table, the `extra` lines and the page's path. How `squad run` and `squad integrate` end alike."""
    from squad.cli.markup import console

    page = write_page(root, report.run)
    if as_json:
        data = report.to_dict()
        data["report_html"] = str(page) if page else None
        click.echo(json.dumps(data, indent=2, default=str))
        return
    _print_report(report, console(highlight=False), show_next=show_next)
    for line in extra:
        click.echo(line)
    if page is not None and show_next:  # show_next False: the repo is a temp dir about to go
        click.echo(f"report: {page}")


def write_page(root: Path, run: str) -> Path | None:
    """Write the run's report page (`squad report`) beside its journal; None, with a warning, when that fails."""
    from squad.infra.journal import Journal
    from squad.orchestration.report_html import try_write_report_page

    return try_write_report_page(Journal(root, run).dir, warn=lambda line: click.echo(line, err=True))


@click.command("plan")
@click.argument("task")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON ({tasks: [...]}).")
@model_option
def plan(task: str, as_json: bool, model: str | None) -> None:
    """Show the plan the coordinator would run for TASK, without running it.

    The JSON form is data a CI system can fan out (one job per task).
    """
    from rich.table import Table

    from squad.cli.markup import console
    from squad.orchestration import Coordinator

    result = asyncio.run(Coordinator(_load(model=model)).plan(task))
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    table = Table(title=f"plan: {escape(task)}")
    for col in ("id", "agent", "depends on", "files", "goal", "interfaces"):
        table.add_column(col)
    for t in result.tasks:
        row = (t.id, t.agent, ", ".join(t.depends_on), ", ".join(t.files), t.goal, "\n".join(t.interfaces))
        table.add_row(*(escape(v) for v in row))
    console().print(table)
