"""`squad plan --out`, `squad task`, `squad integrate`: the commands of a run spread over CI jobs.

Thin: parse, call `squad.orchestration.{plan_job,task_job,integrate_job}`, render. Each prints one plain line per
run event (agent chatter stays in `squad log`); `squad plan --matrix` prints only the matrix JSON on stdout (the
lines go to stderr) and appends it to `$GITHUB_OUTPUT` when that is set.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from squad.cli.options import fragment_sources, model_option

if TYPE_CHECKING:
    from squad.domain.events import Event
    from squad.infra.remote import Remote
    from squad.orchestration import RunConfig, RunReport
    from squad.orchestration.task_job import TaskJobOutcome


def _lines(to_stderr: bool = False) -> Callable[[Event], None]:
    """A journal listener printing one line per run event (not the agents' turns and tool calls)."""
    from squad.domain.events import AgentEvent, ModelCalled

    def on_event(event: Event) -> None:
        if not isinstance(event, AgentEvent | ModelCalled):
            stamp = time.strftime("%H:%M:%S", time.localtime(event.ts))
            click.echo(f"{stamp} {event.describe()}", err=to_stderr)

    return on_event


def _github_output(values: dict[str, str]) -> None:
    """Append `key=value` lines to the file `$GITHUB_OUTPUT` names (GitHub Actions step outputs), if set."""
    target = os.environ.get("GITHUB_OUTPUT", "").strip()
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            for key, value in values.items():
                fh.write(f"{key}={' '.join(value.split())}\n")


def _step_summary(text: str) -> None:
    target = os.environ.get("GITHUB_STEP_SUMMARY", "").strip()
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(text.rstrip() + "\n")


def _current_branch(root: Path) -> str:
    """The branch checked out at `root` (a pull request's default base); a UsageError on a detached checkout."""
    from squad.errors import UsageError
    from squad.github import gitrepo

    branch = gitrepo.git(root, "symbolic-ref", "--quiet", "--short", "HEAD", check=False).strip()
    if not branch:
        raise UsageError(
            "--pr on a detached checkout (as a CI job has) needs --base BRANCH, the branch the pull request goes into",
            hint="squad integrate RUN --from DIR --pr --base main",
        )
    return branch


def _remote(name: str, no_push: bool) -> Remote:
    """The remote the jobs share; its token (HTTPS) from $GITHUB_TOKEN, handed to git for one call at a time."""
    from squad.infra.remote import Remote

    return Remote(name, os.environ.get("GITHUB_TOKEN") or None, push=not no_push)


def plan_out(config: RunConfig, task: str, out: Path, *, matrix: bool, max_waves: int | None, agent: str | None) -> int:
    """`squad plan TASK --out DIR [--matrix]`: start a run, plan it, write the plan fragment; the exit code."""
    from squad.cli.run import _run_until_done
    from squad.orchestration.plan_job import plan_job

    def say(message: str) -> None:
        click.echo(message, err=True)

    outcome = _run_until_done(
        lambda: plan_job(config, task, out, agent=agent, max_waves=max_waves, on_event=_lines(to_stderr=matrix)),
        say,
    )
    if not outcome.ok:
        _github_output({"run": outcome.run})  # the workflow still uploads the journal, to show what happened
        say(f"error: {outcome.error}")
        say(f"the run's journal so far is in {outcome.fragment}; `squad log {outcome.run}` shows it here")
        return 1
    data = outcome.matrix()
    if matrix:
        text = json.dumps(data, separators=(",", ":"))
        click.echo(text)
        _github_output(
            {
                "matrix": text,
                "run": outcome.run,
                "waves": str(len(outcome.waves)),
                "max-parallel": str(outcome.max_parallel),
                "base": outcome.base_commit,
            }
        )
        return 0
    click.echo(f"run {outcome.run}: {len(data['include'])} tasks in {len(outcome.waves)} waves; plan in {out}")
    for n, wave in enumerate(outcome.waves, start=1):
        click.echo(f"  wave {n}: {', '.join(wave)}")
    click.echo(f"next, one job per task: squad task {outcome.run} <task> --from {out} --out <folder>")
    return 0


@click.command("plan")
@click.argument("task")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON ({tasks: [...]}) (without --out).")
@model_option
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    help="Start a run spread over CI jobs: write its plan fragment (the run's journal so far) to this folder.",
)
@click.option("--matrix", is_flag=True, help="With --out: print the CI matrix as JSON (also to $GITHUB_OUTPUT).")
@click.option(
    "--max-waves",
    type=click.IntRange(min=1),
    help="With --out: fail (exit 1) when the plan has more dependency waves than the workflow has wave jobs.",
)
@click.option("--agent", metavar="NAME", help="With --out: skip planning, give the whole task to this specialist.")
@click.option(
    "--max-cost",
    type=click.FloatRange(min=0, min_open=True),
    metavar="USD",
    help="With --out: budget of the whole run in dollars (replaces budgets.run_usd), split among the task jobs.",
)
@click.option("--allow-failing-baseline", is_flag=True, help="With --out: as for `squad run`.")
@click.pass_context
def plan(
    ctx: click.Context,
    task: str,
    as_json: bool,
    model: str | None,
    out: Path | None,
    matrix: bool,
    max_waves: int | None,
    agent: str | None,
    max_cost: float | None,
    allow_failing_baseline: bool,
) -> None:
    """Show the plan the coordinator would run for TASK, without running it.

    With --out DIR it starts a run spread over CI jobs instead: it plans once, writes the plan fragment to DIR,
    and (--matrix) prints the CI matrix; then `squad task` runs each task, `squad integrate` the rest.

    \b
    Examples:
      squad plan "add a /health endpoint"
      squad plan "add a /health endpoint" --out plan/ --matrix --max-waves 3
    Exit codes: 0 planned, 1 the baseline failed or the plan has too many waves, 2 usage or config error.
    """
    from squad.cli import run as run_cli
    from squad.errors import UsageError

    if out is None:
        if matrix or max_waves or agent or max_cost or allow_failing_baseline:
            raise UsageError("--matrix, --max-waves, --agent, --max-cost, --allow-failing-baseline go with --out DIR")
        ctx.invoke(run_cli.plan, task=task, as_json=as_json, model=model)
        return
    if as_json:
        raise UsageError("--json shows a plan without running it; with --out, --matrix prints the matrix as JSON")
    config = run_cli._load(model=model, max_cost=max_cost, allow_failing_baseline=allow_failing_baseline)
    _check_config_committed(config.root)
    sys.exit(plan_out(config, task, out, matrix=matrix, max_waves=max_waves, agent=agent))


def _check_config_committed(root: Path) -> None:
    """Refuse (exit 2) a run whose jobs would not get this checkout's `.squad/` config: each checks out the base
    commit on a fresh runner, and gets what is committed there."""
    from squad.errors import ConfigError
    from squad.infra.committed import config_not_at

    missing = config_not_at(root)
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ConfigError(
            f"the base commit (HEAD) does not hold the .squad/ config this plan would use: {shown}; every job checks "
            "out the base commit, so its runner would not have it",
            hint="commit .squad/ (git add .squad && git commit) and push it, then plan again",
        )


def _load_job(model: str | None) -> RunConfig:
    """The config of a task or integrate job; a missing team says what happened in CI: `.squad/` was in the plan's
    checkout (the plan needed it) but is not committed at the base commit this job checked out."""
    from squad.cli.run import _load
    from squad.config import agents_dir
    from squad.errors import ConfigError
    from squad.infra.committed import has_team_at
    from squad.infra.git import find_repo_root

    try:
        return _load(model=model)
    except ConfigError as exc:
        root = find_repo_root()
        if any(agents_dir(root).glob("*.md")) or has_team_at(root):
            raise
        raise ConfigError(
            f"{agents_dir(root)} not found: commit .squad/ (the plan's checkout had it but the base commit does not)",
            hint="`git add .squad && git commit`, push, then start the run again with `squad plan --out`",
        ) from exc


_REMOTE_HELP = "The git remote (name or URL) the jobs share branches through. Token for HTTPS: $GITHUB_TOKEN."


@click.command("task")
@click.argument("run")
@click.argument("task")
@fragment_sources(
    "Fragment folders, or folders of them (--from A B, or --from A --from B): the plan's, and those of the "
    "tasks this one builds on."
)
@click.option("--out", required=True, type=click.Path(path_type=Path, file_okay=False), help="Write the fragment here.")
@model_option
@click.option("--remote", default="origin", show_default=True, help=_REMOTE_HELP)
@click.option("--no-push", is_flag=True, help="Do not push the task's branch (commits it lacks are still fetched).")
@click.option("--json", "as_json", is_flag=True, help="Print only the outcome, as JSON.")
def task(
    run: str,
    task: str,
    more: tuple[Path, ...],
    sources: tuple[Path, ...],
    out: Path,
    model: str | None,
    remote: str,
    no_push: bool,
    as_json: bool,
) -> None:
    """Carry TASK of RUN through work, review and revision on this checkout, then push squad/<run>--<task>.

    A rerun whose own earlier fragment is in --from, approved on the dependency commits the other fragments give
    now, with its commit still on the remote's branch, reuses it: the same fragment to --out, no model called.

    \b
    Examples:
      squad task 20261122-063107-a1b2 api --from plan/ --out fragments/api
      squad task 20261122-063107-a1b2 check --from fragments/ --out out/check
    Exit codes: 0 approved, 1 not approved (needs a person, failed, blocked), 2 usage or config error.
    """
    from squad.cli.run import _run_until_done
    from squad.errors import UsageError
    from squad.orchestration.task_job import task_job

    if not sources and not more:
        raise UsageError("--from DIR is required: the plan's fragment (and those of the tasks this one builds on)")
    config = _load_job(model)
    outcome = _run_until_done(
        lambda: task_job(
            config,
            run,
            task,
            [*sources, *more],
            out,
            remote=_remote(remote, no_push),
            on_event=None if as_json else _lines(),
        ),
        lambda message: click.echo(message, err=True),
    )
    _step_summary(task_summary_markdown(outcome))
    if as_json:
        click.echo(json.dumps(outcome.to_dict(), indent=2))
    elif outcome.reused:
        where = f"still on {outcome.pushed}" if outcome.pushed else "still in this repository"
        click.echo(
            f"task {task}: {outcome.phase.value}, reused: the earlier attempt's fragment still holds (commit "
            f"{(outcome.commit or '')[:12]} {where}, built on the same dependencies); not done again, no model "
            f"called; ${outcome.spend.usd:.4f}; fragment {out}"
        )
    else:
        where = f", pushed to {outcome.pushed}" if outcome.pushed else ""
        reason = f": {outcome.reason}" if outcome.reason and not outcome.ok else ""
        click.echo(f"task {task}: {outcome.phase.value}{reason}{where}; ${outcome.spend.usd:.4f}; fragment {out}")
    sys.exit(0 if outcome.ok else 1)


@click.command("integrate")
@click.argument("run")
@fragment_sources(
    "Fragment folders, or folders of them (--from A B, or --from A --from B). Without: integrate the run "
    "recorded in this checkout."
)
@model_option
@click.option("--remote", default="origin", show_default=True, help=_REMOTE_HELP)
@click.option("--no-push", is_flag=True, help="Do not push squad/<run> (commits it lacks are still fetched).")
@click.option(
    "--pr",
    "open_pr",
    is_flag=True,
    help="Then open (or update) the run's pull request into the current branch, as `squad run --pr` does "
    "(token: GITHUB_TOKEN or GH_TOKEN).",
)
@click.option(
    "--base",
    metavar="BRANCH",
    help="With --pr: the branch the pull request goes into (default: the current branch; name it on a detached "
    "checkout, as CI jobs have).",
)
@click.option("--json", "as_json", is_flag=True, help="Print only the final report, as JSON.")
def integrate(
    run: str,
    more: tuple[Path, ...],
    sources: tuple[Path, ...],
    model: str | None,
    remote: str,
    no_push: bool,
    open_pr: bool,
    base: str | None,
    as_json: bool,
) -> None:
    """Merge RUN's approved task branches into squad/<run>, commit its decisions, test, and push squad/<run>.

    \b
    Examples:
      squad integrate 20261122-063107-a1b2 --from fragments/
      squad integrate 20261122-063107-a1b2 --no-push     (a run recorded in this checkout)
      squad integrate 20261122-063107-a1b2 --from fragments/ --pr --base main   (then its pull request)
    Exit codes: 0 done, 1 not every task merged or the tests failed, 2 usage or config error.
    """
    from squad.cli.run import _pr_target, _run_until_done, show_report
    from squad.errors import UsageError
    from squad.infra.remote import Remote
    from squad.orchestration.integrate_job import integrate_job

    if open_pr and no_push:
        raise UsageError("--pr pushes squad/<run> and opens its pull request: drop --no-push")
    if base is not None and (not open_pr or not base.strip()):
        raise UsageError("--base BRANCH names the branch the pull request goes into: it goes with --pr")
    shared, then = _remote(remote, no_push), None
    if open_pr:  # decided before anything runs (no token or repository: nothing done); the token leaves the env
        from squad.github.publish import publish_step

        target = _pr_target(remote)
        shared = Remote(remote, target.token)
    config = _load_job(model)
    if open_pr:
        then = publish_step(config.root, target, base or _current_branch(config.root))
    report = _run_until_done(
        lambda: integrate_job(config, run, [*sources, *more], remote=shared, on_event=None if as_json else _lines()),
        lambda message: click.echo(message, err=True),
    )
    _step_summary(summary_markdown(report))
    show_report(config.root, report, as_json=as_json, extra=[budget_line(report.budget)])
    failed = then(report) if then is not None else None
    sys.exit(failed or report.exit_code)


def budget_line(budget: dict[str, Any]) -> str:
    """`spent $X of the run's $Y (Z%)`, with tokens: the total of every job against the run's limits."""
    parts = []
    for what, spent, limit, fmt in (
        ("", budget.get("spent_usd", 0.0), budget.get("limit_usd"), "${:,.4f}"),
        ("input tokens ", budget.get("input_tokens", 0), budget.get("limit_input_tokens"), "{:,}"),
        ("output tokens ", budget.get("output_tokens", 0), budget.get("limit_output_tokens"), "{:,}"),
    ):
        text = what + fmt.format(spent)
        if limit:
            text += f" of {fmt.format(limit)} ({spent / limit:.0%})"
        parts.append(text)
    jobs = f" over {budget['jobs']} task jobs" if budget.get("jobs") else ""
    return f"spent{jobs}: " + "; ".join(parts)


def summary_markdown(report: RunReport) -> str:
    """The job summary of `squad integrate` (GitHub Actions shows it on the run's page)."""
    lines = [f"### squad run `{report.run}`: {report.status}", "", "| task | agent(s) | status | rounds |"]
    lines.append("|---|---|---|---|")
    for t in report.tasks:  # task ids and agent names are slugs: nothing to escape
        lines.append(f"| {t.id} | {', '.join(t.agents) or t.agent} | {t.status} | {t.rounds} |")
    lines += ["", budget_line(report.budget), "", f"branch `{report.branch}`"]
    return "\n".join(lines)


def task_summary_markdown(outcome: TaskJobOutcome) -> str:
    """The job summary of `squad task`: where the task settled, why when it was not approved, its branch, its spend."""
    from squad.github import markdown as md

    lines = [f"### squad task `{outcome.task}` of run `{outcome.run}`: {outcome.phase.value}", ""]
    if outcome.reason and not outcome.ok:  # a reviewer's or the loop's words: data
        lines += [md.model(outcome.reason, limit=2000, one_line=True), ""]
    if outcome.reused:
        lines += [
            "reused the fragment of an earlier attempt: approved on the same dependencies, its commit "
            f"{md.code((outcome.commit or '')[:12])} still on the branch; not done again, no model called",
            "",
        ]
    where = f"pushed to {md.code(outcome.pushed)}; " if outcome.pushed else ""
    lines.append(f"{where}spent ${outcome.spend.usd:.4f}")
    return "\n".join(lines)
