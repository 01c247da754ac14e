"""`squad integrate RUN [--from DIR...]`: the last job of a run spread over CI jobs (or of a local run).

With `--from`, the jobs' fragments become the run's journal (`.squad/runs/<run>/`), in a fixed order
(`squad.infra.fragments.merge_records`), and their decisions the run's ledger (one entry per id, in ULID order).
Then the local run's integration runs on it: approved branches merged in plan order (fetched from the remote),
the ledger committed, the tests run. `squad/<run>` is pushed, and the total spend reported against the budget
the plan split. Without `--from` it integrates a run recorded in this checkout (a local `squad run`).

Reruns are idempotent: the same fragments are not merged twice (a marker names them), the remote's `squad/<run>`
is continued (merges of commits it has are no-ops), and the ledger commit is decided by the branch's tree. The
branch is a function of the fragments: one that merged a task's earlier commit (the task redone since) is built
again from the run's base, never merged into twice; one that also holds commits squad did not make is refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from squad.agents.context import ContextPack
from squad.domain.events import Event, FragmentsMerged, JobStarted, RunBranchRebuilt, RunFinished, TaskStatus
from squad.domain.ids import check_run, run_branch, task_branch
from squad.domain.plan import PlanTask
from squad.domain.state import RunState
from squad.domain.task import Phase
from squad.domain.usage import Limits, Spend
from squad.errors import SquadError, UsageError, WorkspaceError
from squad.infra.fragments import Fragment, FragmentError, built_on, find_fragments, merge_records
from squad.infra.journal import Journal
from squad.infra.jsonl import encode_line
from squad.infra.ledger import Ledger, merge_entries, render_run_ledger
from squad.infra.merging import survey_run_branch
from squad.infra.remote import Remote, check_remote, fetch_commit, is_ancestor, push_branch, remote_tip
from squad.orchestration.config import RunConfig
from squad.orchestration.context import ModelFactory, RunContext
from squad.orchestration.executor import task_spec
from squad.orchestration.flow import LocalExecutor
from squad.orchestration.integrate import Integration, integrate_settled
from squad.orchestration.jobs import job_context, plan_fragment, release_leases, run_fragments
from squad.orchestration.report import RunReport, build_report, run_decisions

MERGED = "merged.json"


async def integrate_job(
    config: RunConfig,
    run: str,
    sources: Sequence[Path] = (),
    *,
    remote: Remote,
    model_factory: ModelFactory | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> RunReport:
    """Merge the fragments in `sources` (if any) into the run's journal, integrate the run, push `squad/<run>`.

    Everything is checked before anything is written (the run's journal, a worktree).

    Raises:
        UsageError: no such run here (without `sources`), a local journal that is not from these fragments, an
            unknown remote, HEAD no commit.
        ConfigError: a model a conflict round would call cannot be called (`RunConfig.preflight`).
        FragmentError: no plan fragment of `run` in `sources`, damaged or conflicting fragments.
        WorkspaceError: a task's approved commit cannot be fetched, or the push is refused.
    """
    check_run(run)
    journal = Journal(config.root, run)
    fragments: list[Fragment] = []
    if sources:
        fragments = find_fragments(sources, run)
        budget = plan_fragment(fragments, run)[1].budget  # none of this run's: "no plan fragment of run X"
    elif journal.exists:
        budget = journal.state().budget
    else:
        raise UsageError(
            f"no run {run!r} in {journal.dir.parent}",
            hint="`squad runs` lists the runs recorded here; for a run spread over CI jobs pass its fragments "
            "with --from DIR",
        )
    if remote.push:
        check_remote(config.root, remote)
    run_limits = Limits.from_dict(budget.run) if budget is not None else config.limits
    replace(config, limits=run_limits).preflight(planning=False, models=model_factory is None)
    with journal.lock():
        merged = await asyncio.to_thread(_merge, journal, fragments) if fragments else None
        state = journal.state()
        if state.plan is None:
            raise UsageError(f"run {run} has no plan, so there is nothing to integrate", hint=f"squad log {run}")
        unsettled = [f"{t} ({ts.phase.value})" for t, ts in state.tasks.items() if not ts.phase.settled]
        if unsettled and not fragments:  # a local run with work in progress: the run's to finish
            raise UsageError(
                f"run {run} has tasks that have not settled: {', '.join(unsettled)}",
                hint=f"finish them with: squad run --resume {run}",
            )
        limits = Limits.from_dict(state.budget.run) if state.budget is not None else config.limits
        async with job_context(
            config,
            journal,
            state,
            limits=limits,
            spent=state.spend_totals(),
            model_factory=model_factory,
            on_event=on_event,
        ) as rc:
            if merged is not None:
                rc.emit(merged)
            rc.emit(JobStarted(job="integrate"))
            _built_on_moved(rc, fragments)
            try:
                report = await _integrate(rc, remote, from_fragments=bool(fragments))
            except SquadError as exc:
                rc.emit(RunFinished(status="failed", error=str(exc)))
                raise
            finally:
                await rc.in_thread(release_leases, rc)
    return report


def _built_on_moved(rc: RunContext, fragments: Sequence[Fragment]) -> None:
    """An approved task whose job worked on a dependency commit that is no longer the dependency's approved one
    (the dependency was done again since) is not merged: its work never met the dependency's current work.
    It is blocked with the reason; rerunning its job (or `squad run --resume RUN --retry TASK`) does it again."""
    state = rc.state
    for fragment in fragments:
        recorded = built_on(fragment) if fragment.kind == "task" and fragment.task else None
        ts = state.tasks.get(fragment.task or "")
        if recorded is None or ts is None or ts.phase is not Phase.APPROVED:
            continue
        moved = []
        for dep, was in sorted(recorded[1].items()):
            now = state.tasks[dep].commit if dep in state.tasks and state.tasks[dep].approved else None
            if now is not None and now != was:  # a dependency not approved now is the merge rules' to handle
                moved.append(f"{dep} ({(was or 'not approved')[:12]}, now {now[:12]})")
        if moved:
            why = f"built on earlier work of {', '.join(moved)}: rerun its job so it builds on the approved work"
            rc.emit(TaskStatus(task=ts.id, status=Phase.BLOCKED.value, reason=why))


async def _settle(rc: RunContext) -> None:
    """Every task of a run built from fragments settled before merging: a task whose job left no fragment failed;
    one an earlier attempt of this job left in a conflict round finishes it here."""
    state = rc.state
    assert state.plan is not None
    unsettled = [pt for pt in state.plan.tasks if not state.tasks[pt.id].phase.settled]
    executor = LocalExecutor(rc)
    for pt in unsettled:
        if state.tasks[pt.id].phase is Phase.PENDING:  # a task job's fragment only ever holds a settled task
            why = "its job left no fragment in --from (the job failed, or its artifact is missing)"
            rc.emit(TaskStatus(task=pt.id, status=Phase.FAILED.value, reason=why))
        else:
            await executor.run_task(task_spec(state, pt))


async def _integrate(rc: RunContext, remote: Remote, *, from_fragments: bool) -> RunReport:
    state, root, run = rc.state, rc.config.root, rc.run_id
    assert state.plan is not None
    target, seen = run_branch(run), None
    if remote.push:
        seen = await rc.in_thread(remote_tip, root, remote, target)
        if seen is not None:  # an earlier attempt pushed it: continue from there (its merges are not redone)
            await rc.in_thread(fetch_commit, root, remote, seen, target)
    local = await rc.in_thread(rc.workspace.tip, target)
    forward = await rc.in_thread(_moved_on, root, remote, target, local, seen)
    continued = forward or local or seen
    tips = {f"{target} in this clone": local} if local else {}
    if seen is not None and seen != local:  # the push would replace it: it must not hold anyone else's commits
        tips[f"{remote.name}'s {target}"] = seen
    rebuild = await rc.in_thread(_stale_merges, rc, tips)
    for pt in state.plan.tasks:
        ts = state.tasks[pt.id]
        if ts.approved and not ts.merged and ts.commit:
            await rc.in_thread(fetch_commit, root, remote, ts.commit, task_branch(run, pt.id))
    start = state.base_commit if rebuild else continued
    lease = await rc.in_thread(rc.workspace.integration, run, start or state.base_commit or "HEAD")
    rc.leases["_integration"] = lease
    if rebuild and state.base_commit and continued:
        await rc.in_thread(rc.workspace.reset, lease, state.base_commit)
        rc.emit(RunBranchRebuilt(branch=target, tip=continued, base=state.base_commit, dropped=rebuild))
    elif forward:  # the remote's branch went on from this clone's (a follow-up pushed): continue it, drop nothing
        await rc.in_thread(rc.workspace.reset, lease, forward)
    rc.pack = await rc.in_thread(ContextPack.build, root, rc.config.settings, state.context_commit or lease.base_commit)
    if from_fragments:
        await _settle(rc)
    result = await _merge_settled(rc)
    head = await rc.in_thread(rc.workspace.head, lease.path)
    if remote.push and (rebuild or any(state.tasks[t].merged for t in state.tasks)) and head != seen:
        await rc.in_thread(push_branch, root, remote, head, target, expect=seen)
    decisions = run_decisions(rc.journal.ledger_path)
    report = build_report(
        state, result.status, conflicts=result.conflicts, decisions=decisions, not_merged=result.not_merged
    )
    rc.emit(RunFinished(status=result.status, error=report.error, cost_usd=report.cost_usd))
    report.usage = state.usage_report()
    report.budget = budget_report(state, rc.runtime.book.limits)
    rc.journal.write_report(report.to_dict())
    return report


def _moved_on(root: Path, remote: Remote, target: str, local: str | None, seen: str | None) -> str | None:
    """The remote's tip of the run branch when it went on from this clone's (someone pushed to it since this clone
    integrated), so integration continues it; None when the two are the same, or this clone's is ahead.

    Raises:
        WorkspaceError: the two have diverged: neither holds the other, so continuing either drops commits.
    """
    if local is None or seen is None or local == seen:
        return None
    if is_ancestor(root, local, seen):
        return seen
    if is_ancestor(root, seen, local):
        return None  # this clone's merges were not pushed yet: the push fast-forwards the remote's
    raise WorkspaceError(
        f"{target} in this clone ({local[:12]}) and {remote.name}'s ({seen[:12]}) have diverged: integrating "
        "either would drop the other's commits",
        hint=f"integrate in a fresh checkout (it continues {remote.name}'s), or merge the two yourself and push",
    )


def _stale_merges(rc: RunContext, tips: dict[str, str]) -> list[str]:
    """The merges on the run branch of work the fragments no longer approve ([] when none): then the branch is
    built again from the run's base, each task merged once at its approved commit. `tips` are the branch's tips,
    by where they are: the first the one integration continues, the other (the remote's, when it differs) the
    one the push would replace. Neither may hold a commit squad did not make.

    Raises:
        WorkspaceError: there are such merges, but the branch also holds commits squad did not make (a rebuild
            would drop them), or this checkout's journal records merges into it.
    """
    state, run, root = rc.state, rc.run_id, rc.config.root
    if state.base_commit is None or not tips:
        return []
    approved = {ts.commit for ts in state.tasks.values() if ts.commit and (ts.approved or ts.round_kind == "conflict")}
    ledger_file = Ledger(root).run_file(run).relative_to(root.resolve()).as_posix()
    surveys = {
        where: survey_run_branch(root, state.base_commit, tip, approved, ledger_file) for where, tip in tips.items()
    }
    where, survey = next(iter(surveys.items()))
    if not survey.stale:
        return []
    stale = "; ".join(survey.stale)
    for other, found in surveys.items():
        if found.foreign:
            raise WorkspaceError(
                f"{where} merged work the fragments no longer approve ({stale}), so it must be built again from the "
                f"run's base, but {other} also holds commits squad did not make, which that would drop: "
                + "; ".join(found.foreign),
                hint=f"keep those commits on another branch, put {other} back at {(found.keep or '')[:12]} (its "
                "last commit before them), rerun squad integrate (it builds the branch again with the approved "
                "work), then apply them on top again",
            )
    if any(ts.merged for ts in state.tasks.values()):
        raise WorkspaceError(
            f"{where} merged work the fragments no longer approve ({stale}), but this checkout's journal of run "
            f"{run} records merges into it",
            hint="integrate the fragments in a fresh checkout",
        )
    # A task with no fragment may be one whose artifact expired: its merge must not be dropped as if it were redone.
    missing = [t for t, ts in state.tasks.items() if ts.phase is Phase.PENDING]
    if missing:
        raise WorkspaceError(
            f"{where} merged work the fragments do not approve ({stale}), and task(s) {', '.join(missing)} have no "
            "fragment in --from: a redone task and a lost artifact look the same, so nothing is rebuilt",
            hint="pass every task's fragment (rerun the job of a task whose artifact is gone), then integrate again",
        )
    return survey.stale


async def _merge_settled(rc: RunContext) -> Integration:
    """The local run's integration step, with conflict rounds run here by the local executor."""
    executor = LocalExecutor(rc)

    async def resolve(pt: PlanTask) -> Phase:
        return (await executor.run_task(task_spec(rc.state, pt))).phase

    return await integrate_settled(rc, resolve)


def budget_report(state: RunState, limits: Limits) -> dict[str, Any]:
    """What the run spent against what it was allowed (the run limits the plan split among the jobs)."""
    spent: Spend = state.spend
    out: dict[str, Any] = {"spent_usd": round(spent.usd, 6), "limit_usd": limits.run_usd}
    out["input_tokens"], out["limit_input_tokens"] = spent.input_tokens, limits.run_input_tokens
    out["output_tokens"], out["limit_output_tokens"] = spent.output_tokens, limits.run_output_tokens
    if state.budget is not None:
        out["jobs"], out["task_limits"] = state.budget.shares, state.budget.task
    return out


def _merge(journal: Journal, fragments: list[Fragment]) -> FragmentsMerged | None:
    """Write the run's journal, responses, transcripts and ledger from the fragments, unless the journal was
    built from these very fragments already (a rerun continues it). The event that records the merge, or None.

    Raises:
        UsageError: the run folder holds a journal that did not come from these fragments.
        FragmentError: a fragment's decisions cannot be read.
    """
    plan, tasks = run_fragments(fragments, journal.run)
    key = [plan.digest, *(f.digest for f in tasks)]
    marker = journal.dir / MERGED
    if marker.is_file():
        if json.loads(marker.read_text(encoding="utf-8")).get("fragments") == key and journal.exists:
            return None
    elif journal.exists and _digest(journal.events_path) != plan.digest:
        raise UsageError(
            f"run {journal.run} already has a journal in {journal.dir} that is not the plan fragment's",
            hint="integrate it without --from, or integrate the fragments in another checkout",
        )
    entries, problems = merge_entries((f.path / "ledger.md", f.ledger) for f in [plan, *tasks])
    if problems:
        raise FragmentError(f"unreadable decisions in a fragment: {problems[0]}")
    journal.create()
    records = merge_records(plan, tasks, [f.task or "" for f in tasks])
    _replace(journal.events_path, b"".join(encode_line(r) for r in records))
    _replace(journal.responses_path, b"".join(encode_line(r) for f in [plan, *tasks] for r in f.responses))
    _replace(journal.ledger_path, render_run_ledger(journal.run, entries).encode("utf-8"))
    shutil.rmtree(journal.transcripts_dir, ignore_errors=True)
    journal.transcripts_dir.mkdir(parents=True)
    for fragment in [plan, *tasks]:
        for name, lines in fragment.transcripts.items():
            with (journal.transcripts_dir / f"{name}.jsonl").open("ab") as fh:
                fh.write(b"".join(encode_line(r) for r in lines))
    journal.report_path.unlink(missing_ok=True)
    _replace(marker, (json.dumps({"fragments": key}) + "\n").encode("utf-8"))
    return FragmentsMerged(fragments=[f.summary() for f in [plan, *tasks]])


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _replace(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
