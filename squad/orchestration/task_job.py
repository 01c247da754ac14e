"""`squad task RUN TASK --from DIR --out DIR`: one task of a run spread over CI jobs, on its own checkout.

The job's journal (`<run folder>/jobs/<task>/`) starts from the fragments it is given: the plan's, and those of
the tasks it depends on (so the fold knows the plan, the budget split and their approved commits). Then the
local run's task flow runs through the executor seam, unchanged: workspace setup, the specialist, the review
gate with its revision rounds and lockout. The task's commit is pushed to `squad/<run>--<task>`, and the job's
own events, responses and decisions are written to `--out` as its fragment.

Reruns: a job whose own earlier fragment is among its sources, approved, built on the same base and dependency
commits its dependencies' fragments give now, and whose commit the remote's task branch still points at, reuses
it (`_reusable`): it hands on that fragment as it is, calls no model and writes no journal. (GitHub's "Re-run
failed jobs" reruns every job that needs a failed one, approved ones included.) Otherwise, on the same runner the
job resumes from its journal as a local `--resume` does (`recover`: an interrupted attempt starts over from its
round's base commit, the decisions it had not committed dropped); on a fresh runner it does the task again and
replaces the branch a killed attempt may have pushed (`push_branch`'s lease).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from squad.agents.context import ContextPack
from squad.domain.events import Event, JobStarted, TaskStarted, TaskStatus, parse_event
from squad.domain.ids import check_run, check_task, lease_id, task_branch
from squad.domain.state import RunState, fold
from squad.domain.task import APPROVED, Phase
from squad.domain.usage import Spend
from squad.errors import UsageError
from squad.infra.fragments import (
    Fragment,
    FragmentError,
    built_on,
    check_out,
    copy_fragment,
    find_fragments,
    merge_records,
    write_fragment,
)
from squad.infra.journal import Journal
from squad.infra.jsonl import encode_line, read_jsonl
from squad.infra.ledger import merge_entries, render_run_ledger
from squad.infra.remote import Remote, check_remote, fetch_commit, has_commit, push_branch, remote_tip
from squad.infra.workspace import Lease, Workspace
from squad.orchestration.config import RunConfig
from squad.orchestration.context import ModelFactory, RunContext
from squad.orchestration.executor import task_spec
from squad.orchestration.flow import LocalExecutor
from squad.orchestration.jobs import job_config, job_context, plan_fragment, release_leases

SEED = "seed.json"


@dataclass
class TaskJobOutcome:
    """Where the task settled, what was pushed, what the job spent, and where its fragment is."""

    run: str
    task: str
    phase: Phase
    fragment: Path
    commit: str | None = None
    pushed: str | None = None
    reason: str | None = None
    spend: Spend = field(default_factory=Spend)
    reused: bool = False  # the job's earlier fragment was handed on: nothing done again, nothing spent

    @property
    def ok(self) -> bool:
        return self.phase in APPROVED

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "task": self.task,
            "status": self.phase.value,
            "commit": self.commit,
            "pushed": self.pushed,
            "reason": self.reason,
            "fragment": str(self.fragment),
            "spend": self.spend.to_dict(),
            "reused": self.reused,
        }


async def task_job(
    config: RunConfig,
    run: str,
    task: str,
    sources: Sequence[Path],
    out: Path,
    *,
    remote: Remote,
    model_factory: ModelFactory | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> TaskJobOutcome:
    """Carry `task` of `run` to a settled phase on this checkout; push its branch; write its fragment to `out`.

    Commits it lacks (the base, its dependencies' approved work) are fetched from `remote`; the task's commit is
    pushed there unless `remote.push` is off (jobs that share one repository).

    Everything is checked before anything is written (no journal, no worktree, no fragment). A rerun whose
    earlier approved fragment still holds (`_reusable`) writes only that fragment to `out`, unchanged.

    Raises:
        UsageError: a bad run or task id, a task the plan does not have, an unknown remote, `out` holding
            something else than this task's fragment, HEAD no commit.
        ConfigError: a model the job would call cannot be called (`RunConfig.preflight`, with the job's budget).
        FragmentError: no usable plan fragment in `sources`.
        WorkspaceError: a commit it needs cannot be fetched, or the push is refused.
    """
    check_run(run)
    check_task(task)
    check_out(Path(out), kind="task", run=run, task=task)  # only this task's earlier fragment may be replaced
    fragments = find_fragments(sources, run)
    plan_frag, plan_state = plan_fragment(fragments, run)
    assert plan_state.plan is not None and plan_state.budget is not None
    if task not in plan_state.plan.ids:
        raise UsageError(f"run {run} has no task {task!r}", hint=f"its tasks: {', '.join(plan_state.plan.ids)}")
    pt = plan_state.plan.get(task)
    deps = [f for f in fragments if f.kind == "task" and f.task in pt.depends_on]
    job_config(config, plan_state.budget).preflight(planning=False, models=model_factory is None)
    if remote.push:
        check_remote(config.root, remote)
    earlier = await asyncio.to_thread(
        _reusable, config.root, remote, fragments, plan_frag, deps, task, plan_state.plan.ids
    )
    if earlier is not None:
        return await asyncio.to_thread(_reuse, earlier, Path(out))
    journal = Journal(config.root, run, job=task)
    with journal.lock():
        seed, fresh = await asyncio.to_thread(_seed, journal, plan_frag, deps, plan_state.plan.ids)
        state = journal.state()
        assert state.budget is not None
        cfg = job_config(config, state.budget)
        own = [parse_event(r) for r in read_jsonl(journal.events_path)[seed["events"] :]]
        if fresh:  # nothing of an earlier attempt survives here: its branches must not either
            await asyncio.to_thread(_discard, Workspace(config.root), run, task, config.settings.review.max_rounds)
        async with job_context(
            cfg,
            journal,
            state,
            limits=cfg.limits,
            spent=fold(run, own).spend_totals(),
            model_factory=model_factory,
            on_event=on_event,
        ) as rc:
            rc.emit(JobStarted(job="task", task=task))
            try:
                pushed = await _carry(rc, task, remote)
            finally:
                await rc.in_thread(release_leases, rc)
        ts = state.tasks[task]
        records = read_jsonl(journal.events_path)[seed["events"] :]
        _write(journal, out, task, records, set(seed["ledger_ids"]), ts.phase, pushed, _built_on(state, task))
    spend = fold(run, (parse_event(r) for r in records)).spend
    return TaskJobOutcome(run, task, ts.phase, Path(out), ts.commit, pushed, ts.reason, spend)


async def _carry(rc: RunContext, task: str, remote: Remote) -> str | None:
    """Work, review and revise the task (the local executor's flow); push its commit. The pushed branch or None."""
    state, root = rc.state, rc.config.root
    assert state.plan is not None and state.base_commit is not None
    pt, branch = state.plan.get(task), task_branch(rc.run_id, task)
    await rc.in_thread(fetch_commit, root, remote, state.base_commit)
    seen = await rc.in_thread(remote_tip, root, remote, branch) if remote.push else None
    rc.pack = await rc.in_thread(ContextPack.build, root, rc.config.settings, state.context_commit or state.base_commit)
    if not state.tasks[task].phase.settled:
        why = await _dependencies(rc, task, remote)
        if why:
            rc.emit(TaskStatus(task=task, status=Phase.BLOCKED.value, reason=why))
        else:
            await LocalExecutor(rc).run_task(task_spec(state, pt))
    commit = state.tasks[task].commit
    if not remote.push or commit is None:
        return None
    await rc.in_thread(push_branch, root, remote, commit, branch, expect=seen)
    return branch


async def _dependencies(rc: RunContext, task: str, remote: Remote) -> str | None:
    """Why the task cannot start (a dependency not approved, or without a fragment), else None once every
    dependency's approved commit is here."""
    state = rc.state
    assert state.plan is not None
    for dep in state.plan.get(task).depends_on:
        ts = state.tasks[dep]
        if ts.phase is Phase.PENDING:
            return f"no result of {dep}, which it depends on, in --from (its job failed or its artifact is missing)"
        if not ts.approved or ts.commit is None:
            return f"{dep}, which it depends on, was not approved ({ts.phase.value})"
        await rc.in_thread(fetch_commit, rc.config.root, remote, ts.commit, task_branch(rc.run_id, dep))
    return None


def _seed(journal: Journal, plan: Fragment, deps: list[Fragment], order: list[str]) -> tuple[dict[str, Any], bool]:
    """Start the job's journal from the fragments, unless it holds work on the task already (a rerun on the same
    runner resumes it). Returns the seed (how many events and which decisions came from the fragments) and
    whether the journal was started afresh."""
    seed_path = journal.dir / SEED
    if seed_path.is_file():
        seed: dict[str, Any] = json.loads(seed_path.read_text(encoding="utf-8"))
        own = read_jsonl(journal.events_path)[seed["events"] :]
        if any(r.get("type") == TaskStarted.model_fields["type"].default and r.get("task") == journal.job for r in own):
            return seed, False
    # Nothing worth keeping (no work on the task began): start from the fragments, which may be newer.
    records = merge_records(plan, deps, order)
    entries, problems = merge_entries((f.path / "ledger.md", f.ledger) for f in [plan, *deps])
    if problems:
        raise FragmentError(f"unreadable decisions in a fragment: {problems[0]}")
    digests = [f.digest for f in (plan, *deps)]
    seed = {"events": len(records), "ledger_ids": [e.id for e in entries], "fragments": digests}
    tmp = journal.dir.parent / f".{journal.dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / journal.events_path.name).write_bytes(b"".join(encode_line(r) for r in records))
    (tmp / journal.ledger_path.name).write_text(render_run_ledger(journal.run, entries), encoding="utf-8")
    (tmp / SEED).write_text(json.dumps(seed) + "\n", encoding="utf-8")
    shutil.rmtree(journal.dir, ignore_errors=True)
    os.replace(tmp, journal.dir)
    return seed, True


def _discard(ws: Workspace, run: str, task: str, max_rounds: int) -> None:
    """Remove this task's worktrees and branches left by an attempt whose journal is gone."""
    for n in range(2 * max_rounds + 3):  # revision and conflict rounds both add rounds
        lid, path = lease_id(task, n), ws.worktree_path(run, lease_id(task, n))
        branch = task_branch(run, lid)
        if path.exists() or has_commit(ws.root, f"refs/heads/{branch}"):
            ws.release(Lease(run, lid, path, branch, ""), delete_branch=True)


def _write(
    journal: Journal,
    out: Path,
    task: str,
    records: list[dict[str, Any]],
    seeded: set[str],
    phase: Phase,
    pushed: str | None,
    built: dict[str, Any],
) -> None:
    """The job's own part of the run (after the seed) as its fragment; `built` (what the work was built on) goes
    in its manifest, so a rerun can tell whether the fragment still holds."""
    ledger = journal.ledger_path
    entries, _ = merge_entries([(ledger, ledger.read_text(encoding="utf-8"))] if ledger.is_file() else [])
    write_fragment(
        out,
        kind="task",
        run=journal.run,
        task=task,
        records=records,
        responses=read_jsonl(journal.responses_path),
        ledger=render_run_ledger(journal.run, [e for e in entries if e.id not in seeded]),
        transcripts=journal.read_transcripts(),
        meta={"status": phase.value, "pushed": pushed, "built_on": built},
    )


def _built_on(state: RunState, task: str) -> dict[str, Any]:
    """The base commit and the dependencies' approved commits (None: not approved) the job worked from."""
    assert state.plan is not None
    deps = state.plan.get(task).depends_on
    return {
        "base": state.base_commit,
        "deps": {d: state.tasks[d].commit if state.tasks[d].approved else None for d in deps},
    }


def _reusable(
    root: Path,
    remote: Remote,
    fragments: Sequence[Fragment],
    plan: Fragment,
    deps: list[Fragment],
    task: str,
    order: list[str],
) -> tuple[Fragment, TaskJobOutcome] | None:
    """This task's earlier fragment among `fragments` with the outcome it gives, if it still holds: approved, built
    on the base and dependency commits the plan and the dependencies' fragments give now, and its commit still
    what the remote's task branch points at (without pushing: a commit of this repository). Else None: the job
    does the task again (a dependency redone at another commit, the branch moved or gone, a fragment that does not
    say what it was built on).

    Raises:
        WorkspaceError: the remote cannot be read.
    """
    own = next((f for f in fragments if f.kind == "task" and f.task == task), None)
    recorded = built_on(own) if own is not None else None
    if own is None or recorded is None or own.meta.get("status") != Phase.APPROVED.value:
        return None
    now = _built_on(fold(plan.run, (parse_event(r) for r in merge_records(plan, deps, order))), task)
    if recorded != (now["base"], now["deps"]) or None in now["deps"].values():
        return None
    then = fold(plan.run, (parse_event(r) for r in merge_records(plan, [*deps, own], order))).tasks[task]
    if not then.approved or then.commit is None:
        return None
    if remote.push:
        if remote_tip(root, remote, task_branch(plan.run, task)) != then.commit:
            return None
    elif not has_commit(root, then.commit):
        return None
    pushed = own.meta.get("pushed") if isinstance(own.meta.get("pushed"), str) else None
    return own, TaskJobOutcome(plan.run, task, then.phase, own.path, then.commit, pushed, None, Spend(), reused=True)


def _reuse(earlier: tuple[Fragment, TaskJobOutcome], out: Path) -> TaskJobOutcome:
    """Hand on the earlier fragment at `out` (unless it is that very folder) and return its outcome."""
    fragment, outcome = earlier
    if out.resolve() != Path(fragment.path).resolve():
        copy_fragment(fragment, out)
    return replace(outcome, fragment=out)
