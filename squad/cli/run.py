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
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from squad.config import Settings, Team
    from squad.orchestration.coordinator import RunReport

T = TypeVar("T")


def _load(max_cost: float | None) -> tuple[Path, Settings, Team]:
    from squad.config import load_settings, load_team
    from squad.infra.git import find_repo_root

    root = find_repo_root()
    settings = load_settings(root)
    if max_cost is not None:
        settings.budgets.run_usd = max_cost
    team = load_team(root)
    return root, settings, team


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
    """A rich table of the team: each agent's state, turn, tokens, cost and last tool, from journal events."""

    def __init__(self, console: Any) -> None:
        from rich.live import Live

        self.rows: dict[str, dict[str, Any]] = {}
        self.status = "starting"
        self.started = time.monotonic()
        self.live = Live(self._render(), console=console, refresh_per_second=8, transient=False)

    def row(self, agent: str) -> dict[str, Any]:
        return self.rows.setdefault(
            agent, {"state": "idle", "task": "", "turn": 0, "in": 0, "out": 0, "cost": 0.0, "tool": ""}
        )

    def __call__(self, event: dict[str, Any]) -> None:
        kind = str(event.get("type", ""))
        agent = event.get("agent")
        if kind == "plan":
            self.status = f"plan: {len(event.get('tasks', []))} tasks"
            for t in event.get("tasks", []):
                self.row(t["agent"])
        elif kind == "task_started" and agent:
            self.row(agent).update(state=f"working (round {event.get('round', 0)})", task=event.get("task", ""))
        elif kind == "task_committed" and agent:
            self.row(agent).update(state="done, in review")
        elif kind in ("task_approved", "task_status"):
            done = "approved" if kind == "task_approved" else str(event.get("status"))
            for row in self.rows.values():
                if row["task"] == event.get("task") and row["state"].startswith(("working", "done")):
                    row["state"] = done
        elif kind == "review_started":
            self.row(event["reviewer"]).update(state="reviewing", task=event.get("task", ""))
        elif kind == "verdict":
            self.row(event["reviewer"]).update(state=f"{event.get('verdict')} {event.get('task', '')}")
        elif kind == "model_call" and agent:
            row = self.row(agent)
            usage = event.get("usage") or {}
            row["turn"] += 1
            row["in"] += sum(
                int(usage.get(k, 0)) for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
            )
            row["out"] += int(usage.get("output_tokens", 0))
            row["cost"] += float(event.get("cost_usd") or 0.0)
        elif kind.startswith("agent.") and agent:
            tool = event.get("tool") or event.get("name")
            if tool:
                self.row(agent)["tool"] = str(tool)
        elif kind in ("merged", "conflict", "tests", "run_finished", "interrupted", "task_status"):
            self.status = f"{kind} {event.get('task') or ''} {event.get('status') or ''}".strip()
        self.live.update(self._render())

    def _render(self) -> Any:
        from rich.table import Table

        table = Table(title=f"squad — {self.status} — {time.monotonic() - self.started:.0f}s", expand=False)
        for col in ("agent", "state", "task", "turn", "tokens in/out", "cost", "last tool"):
            table.add_column(col)
        for name, r in sorted(self.rows.items()):
            table.add_row(
                name, r["state"], r["task"], str(r["turn"]), f"{r['in']}/{r['out']}", f"${r['cost']:.4f}", r["tool"]
            )
        return table


def _print_report(report: RunReport, console: Any, *, show_next: bool = True) -> None:
    from rich.table import Table

    color = "green" if report.ok else "red"
    console.print(f"\n[bold {color}]run {report.run}: {report.status}[/]  {report.task}")
    table = Table()
    for col in ("task", "agent(s)", "status", "rounds", "verdicts"):
        table.add_column(col)
    for t in report.tasks:
        verdicts = ", ".join(str(v.get("verdict")) for v in t.verdicts)
        table.add_row(t.id, ", ".join(t.agents) or t.agent, t.status, str(t.rounds), verdicts)
    console.print(table)
    for line in report.needs_human:
        console.print(f"[yellow]needs a person:[/] {line}")
    if report.conflicts:
        console.print("[red]merge conflict in:[/] " + ", ".join(report.conflicts))
    if report.tests:
        passed = "passed" if report.tests.get("passed") else "FAILED"
        console.print(f"tests on the integrated result: `{report.tests.get('command')}` {passed}")
    if report.decisions:
        console.print(f"decisions recorded: {len(report.decisions)}")
        for d in report.decisions:
            console.print(f"  - {d['title']} ({d.get('agent') or '?'}, {d['id']})")
    if report.error:
        console.print(f"[red]error:[/] {report.error}")
    console.print(f"cost ${report.cost_usd:.4f}, cache hit rate {report.cache_hit_rate:.0%}; branch {report.branch}")
    if show_next:
        console.print(f"next: {report.next_command}")


@click.command("run")
@click.argument("task", required=False, default="")
@click.option("--agent", "agent", metavar="NAME", help="Skip planning: give the whole task to this specialist.")
@click.option("--resume", metavar="RUN", help="Resume an interrupted or failed run (see `squad runs`).")
@click.option("--apply", "apply_", is_flag=True, help="Merge squad/<run> into your branch when done (clean tree).")
@click.option("--json", "as_json", is_flag=True, help="Print only the final report, as JSON.")
@click.option(
    "--model",
    metavar="NAME",
    help="Use this model for every agent: claude-..., scripted:<script.yaml>, or replay:<run> "
    "(replay a recorded run's model responses offline; give the same task).",
)
@click.option("--max-cost", type=float, metavar="USD", help="Budget for the whole run in dollars (budgets.run_usd).")
def run(
    task: str,
    agent: str | None,
    resume: str | None,
    apply_: bool,
    as_json: bool,
    model: str | None,
    max_cost: float | None,
) -> None:
    """Plan TASK, run the team on it in parallel worktrees, review, and merge into squad/<run>.

    \b
    Examples:
      squad run "add a /health endpoint with a test"
      squad run "fix the flaky date test" --agent tester
      squad run --resume 20261122-063107-a1b2
      squad run --model replay:20261122-063107-a1b2   (the recorded task again, offline)
    Exit codes: 0 done and approved, 1 failed / rejected / needs a person, 2 usage or config error.
    """
    from squad.errors import UsageError

    replay = bool(model and model.startswith("replay:")) and not resume
    if not task.strip() and not resume and not replay:
        raise UsageError("give a task, or --resume RUN", hint='squad run "what the team should do"')
    if task.strip() and resume:
        raise UsageError("--resume continues a recorded task; do not give a new TASK with it")
    root, settings, team = _load(max_cost)
    if replay:
        task, agent = _replayed_task(root, str(model), task, agent)
    code = execute_run(
        root, settings, team, task, agent=agent, resume=resume, apply_=apply_, as_json=as_json, model=model
    )
    sys.exit(code)


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
    root: Path,
    settings: Settings,
    team: Team,
    task: str,
    *,
    agent: str | None = None,
    resume: str | None = None,
    apply_: bool = False,
    as_json: bool = False,
    model: str | None = None,
    show_next: bool = True,
) -> int:
    """Run the coordinator with the live view / plain lines / JSON output; return the exit code.

    Shared by `squad run` and `squad demo`, so both show a run the same way.
    """
    from rich.console import Console

    from squad.infra.journal import describe
    from squad.orchestration.coordinator import Coordinator

    tty = sys.stdout.isatty() and not as_json
    view: _LiveView | None = None
    on_event: Callable[[dict[str, Any]], None] | None = None
    if tty:
        view = _LiveView(Console())
        on_event = view
    elif not as_json:

        def on_event(event: dict[str, Any]) -> None:
            if not str(event.get("type", "")).startswith("agent."):  # agent chatter stays in `squad log`
                click.echo(f"{time.strftime('%H:%M:%S', time.localtime(event['ts']))} {describe(event)}")

    coord = Coordinator(root, settings, team, model_override=model, apply=apply_, on_event=on_event)

    def say(message: str) -> None:
        if not as_json:
            click.echo(message, err=True)

    if view is not None:
        with view.live:
            report = _run_until_done(lambda: coord.run(task, agent=agent, resume=resume), say)
    else:
        report = _run_until_done(lambda: coord.run(task, agent=agent, resume=resume), say)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        _print_report(report, Console(highlight=False), show_next=show_next)
    if report.status == "interrupted":
        if not as_json:
            say(f"Interrupted. Worktrees are kept; resume with: squad run --resume {report.run}")
        return 130
    return report.exit_code


@click.command("plan")
@click.argument("task")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON ({tasks: [...]}).")
@click.option(
    "--model",
    metavar="NAME",
    help="Use this model for planning: claude-..., scripted:<script.yaml> or replay:<run>.",
)
def plan(task: str, as_json: bool, model: str | None) -> None:
    """Show the plan the coordinator would run for TASK, without running it.

    The JSON form is data a CI system can fan out (one job per task).
    """
    from rich.console import Console
    from rich.table import Table

    from squad.orchestration.coordinator import Coordinator

    root, settings, team = _load(None)
    result = asyncio.run(Coordinator(root, settings, team, model_override=model).plan(task))
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    table = Table(title=f"plan: {task}")
    for col in ("id", "agent", "depends on", "files", "goal"):
        table.add_column(col)
    for t in result.tasks:
        table.add_row(t.id, t.agent, ", ".join(t.depends_on), ", ".join(t.files), t.goal)
    Console().print(table)
