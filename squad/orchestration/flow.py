"""One task's flow: ask the state machine for the next step, perform it, repeat until the task settles.

Each step emits journal events, the journal folds them into the run state, and the next step is read
from that state (`squad.domain.task.next_step`). So a task interrupted anywhere resumes from its
journal: an attempt that was working starts over from its round's base commit (worktree reset, untracked
files removed), a committed attempt goes to review, a rejection goes to the next reviser.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from squad.agents import prompts
from squad.agents.context import agent_system
from squad.agents.loop import AgentLimits, AgentResult, run_agent
from squad.agents.tools import ToolContext, allowed_tools
from squad.config import Charter
from squad.domain.events import (
    LockedOut,
    ReviewStarted,
    TaskApproved,
    TaskCommitted,
    TaskStarted,
    TaskStatus,
    VerdictGiven,
)
from squad.domain.ids import lease_id, run_branch
from squad.domain.review import Finding, TestResult, veto_on_tests
from squad.domain.task import Done, Phase, Review, Settle, Work, next_step
from squad.orchestration.executor import TaskOutcome, TaskSpec
from squad.orchestration.resume import keep_decisions
from squad.orchestration.review import ReviewSetup, joint_verdict, run_reviewers
from squad.orchestration.testing import baseline_result, baseline_text, test_worktree
from squad.orchestration.worktrees import make_ready

if TYPE_CHECKING:
    from squad.domain.state import TaskState
    from squad.infra.workspace import Lease
    from squad.orchestration.context import RunContext

#: Characters of diff put into a reviewer's prompt; the reviewer can read the rest with its tools.
MAX_REVIEW_DIFF_CHARS = 60_000


class LocalExecutor:
    """Runs each task in this process, in worktrees of this repository."""

    def __init__(self, rc: RunContext) -> None:
        self.rc = rc

    async def run_task(self, spec: TaskSpec) -> TaskOutcome:
        phase = await TaskFlow(self.rc, spec).run()
        ts = self.rc.state.tasks[spec.task.id]
        return TaskOutcome(spec.task.id, phase, ts.commit, ts.branch, [ts.reason] if ts.reason else [])


class TaskFlow:
    """Carries one task of a run to a settled phase."""

    def __init__(self, rc: RunContext, spec: TaskSpec) -> None:
        self.rc = rc
        self.spec = spec
        self.pt = spec.task

    @property
    def ts(self) -> TaskState:
        return self.rc.state.tasks[self.pt.id]

    async def run(self) -> Phase:
        settings = self.rc.config.settings
        while True:
            step = next_step(self.ts, self.rc.config.team, settings.review.max_rounds)
            match step:
                case Done(phase=phase):
                    return phase
                case Settle(phase=phase, reason=reason):
                    self.rc.emit(TaskStatus(task=self.pt.id, status=phase.value, reason=reason))
                case Work():
                    await self._work(step)
                case Review():
                    await self._review(step)

    # ------------------------------------------------------------------------------------------ work

    async def _lease(self, round_: int, start: str) -> Lease:
        lid = lease_id(self.pt.id, round_)
        lease = await self.rc.in_thread(self.rc.workspace.lease, self.rc.run_id, lid, start)
        self.rc.leases[lid] = lease
        self.rc.lease_tasks[lid] = self.pt.id
        return lease

    async def _work(self, step: Work) -> None:
        ts, ws = self.ts, self.rc.workspace
        deps = [d.commit for d in self.spec.dependencies]
        extra: list[str] = []
        conflicted: list[str] = []
        round_base: str | None = None  # where a conflict round starts: the run branch, not the task's base
        if step.kind == "conflict":
            round_base = (ts.round_base if step.restart else None) or ws.tip(run_branch(self.rc.run_id))
            start = round_base or self.spec.base_commit
        elif step.round == 0:
            start, extra = (deps[0], deps[1:]) if deps else (self.spec.base_commit, [])
        else:
            start = ts.commit or self.spec.base_commit
        lease = await self._lease(step.round, start)
        if step.restart:
            # An interrupted attempt starts over from its round's base, never on top of its leftovers.
            base = round_base if step.kind == "conflict" else ts.base_commit if step.round == 0 else ts.commit
            await self.rc.in_thread(ws.reset, lease, base or start)
        elif extra:
            conflicts = await self.rc.in_thread(ws.merge_commits, lease, extra)
            if conflicts:
                reason = "the approved work of its dependencies conflicts"
                self.rc.emit(TaskStatus(task=self.pt.id, status=Phase.CONFLICT.value, reason=reason, files=conflicts))
                return
        if step.kind == "conflict" and ts.commit:
            # The task's approved change, merged onto the run branch; git leaves the conflicts for the agent.
            conflicted = await self.rc.in_thread(ws.merge_commits, lease, [ts.commit], keep_conflicts=True)
        # A fresh or reset worktree gets its copies, links and setup; a failing setup fails the task, not the agent.
        failure = await make_ready(self.rc, lease, self.pt.id, setup_again=True)
        if failure:
            self.rc.emit(TaskStatus(task=self.pt.id, status=Phase.FAILED.value, reason=failure))
            return
        task_base = ts.base_commit
        if task_base is None:
            task_base = await self.rc.in_thread(ws.head, lease.path)
        self.rc.emit(
            TaskStarted(
                task=self.pt.id,
                agent=step.author,
                round=step.round,
                lease=lease.task,
                branch=lease.branch,
                base_commit=round_base or task_base,
                kind=step.kind,
            )
        )
        author = self.rc.config.team.get(step.author)
        diff_base = round_base or task_base
        result = await self._agent(author, lease, diff_base, step, conflicted)
        if result.stop_reason == "cancelled":  # Ctrl-C: the worktree stays as it is for a resume
            raise asyncio.CancelledError
        message = _commit_message(self.pt.id, self.pt.goal, result)
        sha = await self.rc.in_thread(ws.commit, lease, agent=author.name, message=message)
        tip = sha or await self.rc.in_thread(ws.head, lease.path)
        self.rc.emit(
            TaskCommitted(
                task=self.pt.id,
                agent=author.name,
                round=step.round,
                commit=tip,
                changed=sha is not None,
                summary=result.summary,
                stop_reason=result.stop_reason,
                turns=result.turns,
                cost_usd=result.cost_usd,
                error=result.error,
            )
        )
        await keep_decisions(self.rc, self.pt.id, step.round)  # the attempt's work is committed: its decisions count

    async def _agent(
        self, author: Charter, lease: Lease, task_base: str, step: Work, conflicted: list[str]
    ) -> AgentResult:
        rc = self.rc
        assert rc.pack is not None
        allowed = frozenset(allowed_tools(author)) - {"submit_verdict"}
        ctx = ToolContext(
            worktree=lease.path,
            run_id=rc.run_id,
            agent=author.name,
            task=lease.task,
            settings=rc.config.settings,
            base_commit=task_base,
            ledger_file=rc.journal.ledger_path,
            attempt_ledger=rc.journal.attempt_ledger(self.pt.id, step.round),
            allowed=allowed,
        )
        return await run_agent(
            model=rc.model(rc.config.model_for(author)),
            toolbox=rc.toolbox,
            ctx=ctx,
            system=agent_system(rc.pack, author, allowed),
            prompt=self._work_prompt(author, step, conflicted),
            limits=self._limits(),
            emit=rc.agent_emit(self.pt.id, lease.task),
        )

    def _limits(self) -> AgentLimits:
        return AgentLimits.from_limits(self.rc.config.limits, self.rc.config.settings.models.max_tokens)

    def _work_prompt(self, author: Charter, step: Work, conflicted: list[str]) -> str:
        ts, pt = self.ts, self.pt
        parts = [prompts.render("work", task=pt.id, goal=pt.goal)]
        if pt.files:
            parts.append(prompts.render("work_files", files=", ".join(pt.files)))
        if pt.interfaces:
            parts.append(prompts.render("work_interfaces", interfaces="\n".join(f"- {i}" for i in pt.interfaces)))
        if self.spec.dependencies:
            deps = [f"- {d.task} ({d.agent}): {d.summary or 'approved'}" for d in self.spec.dependencies]
            parts.append(prompts.render("work_dependencies", dependencies="\n".join(deps)))
        if step.kind == "conflict":
            files = ", ".join(conflicted) or prompts.render("work_conflict_clean")
            parts.append(prompts.render("work_conflict", round=step.round, files=files))
        elif step.round and ts.verdicts and not ts.verdicts[-1].approved:
            findings: tuple[Finding, ...] = ts.verdicts[-1].findings
            before = ", ".join(a for a in ts.authors if a != author.name) or "another specialist"
            parts.append(
                prompts.render(
                    "work_revision",
                    round=step.round,
                    before=before,
                    findings="\n".join(f.line_text() for f in findings),
                )
            )
        if ts.notes:
            parts.append(_people_notes(ts.notes))
        parts.append(prompts.render("work_end", request=self.spec.request))
        return "\n\n".join(parts)

    # ------------------------------------------------------------------------------------------ review

    async def _review(self, step: Review) -> None:
        rc, ts = self.rc, self.ts
        settings = rc.config.settings
        reviewers = sorted(rc.config.team.reviewers, key=lambda c: c.name)
        author = ts.authors[-1] if ts.authors else self.pt.agent
        lease = await self._lease(step.round, ts.commit or self.spec.base_commit)
        conflict_round = ts.round_kind == "conflict"
        task_base = (ts.round_base if conflict_round else ts.base_commit) or lease.base_commit
        rc.emit(ReviewStarted(task=self.pt.id, reviewer=", ".join(c.name for c in reviewers), round=step.round))
        tests: TestResult | None = None
        if settings.commands.test.strip():
            tests = await test_worktree(rc, lease, self.pt.id, lease.task)
        diff = await rc.in_thread(rc.workspace.diff, lease, task_base)
        if len(diff) > MAX_REVIEW_DIFF_CHARS:
            diff = diff[:MAX_REVIEW_DIFF_CHARS] + "\n" + prompts.render("review_diff_cut")
        if tests is None:
            test_text = prompts.render("review_no_tests")
        else:
            status = f"{tests.exit_code}{' (timed out)' if tests.timed_out else ''}"
            test_text = prompts.render(
                "review_tests", command=tests.command, status=status, output=tests.output.strip()
            )
        baseline = rc.state.baseline
        prompt = prompts.render(
            "review",
            task=self.pt.id,
            round=step.round,
            author=author,
            goal=self.pt.goal,
            summary=ts.summary or "(none)",
            tests=test_text,
            kind=_review_kind(ts.round_kind, ts.conflicts),
            notes=f"\n{_people_notes(ts.notes)}\n" if ts.notes else "",
            baseline=baseline_text(baseline),
            diff=diff.strip() or "(no changes)",
        )
        assert rc.pack is not None
        pack = rc.pack
        setup = ReviewSetup(
            worktree=lease.path,
            base_commit=task_base,
            run_id=rc.run_id,
            task=lease.task,
            system=lambda charter, allowed: agent_system(pack, charter, allowed),
            prompt=prompt,
            toolbox=rc.toolbox,
        )
        results = await run_reviewers(
            reviewers,
            setup,
            settings=settings,
            limits=self._limits(),
            model_for=lambda c: rc.model(rc.config.model_for(c)),
            emit_for=lambda c: rc.agent_emit(self.pt.id, lease.task),
            max_parallel=settings.concurrency.max_agents,
        )
        base = baseline_result(rc.state.baseline)
        verdict = veto_on_tests(joint_verdict(results), tests, settings.review.require_tests, base)
        newly_locked = [a for a in ts.authors if a not in ts.locked_out]
        rc.emit(VerdictGiven.of(self.pt.id, step.round, verdict))
        if verdict.approved:
            rc.emit(TaskApproved(task=self.pt.id, commit=ts.commit, branch=lease.branch, round=step.round))
        else:
            for name in newly_locked:
                rc.emit(LockedOut(task=self.pt.id, agent=name))


def _review_kind(kind: str, conflicts: list[str]) -> str:
    """What the reviewer should know about the round's kind (empty for ordinary work)."""
    if kind == "conflict":
        return (
            "\nThis is a conflict round: the task's approved change was re-applied on top of the run branch (where "
            f"other approved tasks were merged first) and its conflicts in {', '.join(conflicts) or '?'} resolved. "
            "The diff is against the run branch: judge that the resolution keeps both this task's change and "
            "the work already there, with no conflict markers left.\n"
        )
    if kind == "retry":
        return "\nA person reopened this task with guidance (below); judge the work against it too.\n"
    return ""


def _commit_message(task: str, goal: str, result: AgentResult) -> str:
    summary = (result.summary or goal).strip()
    first = summary.splitlines()[0][:72] if summary else task
    return f"{task}: {first}\n\n{summary}\n\nAgent stop reason: {result.stop_reason}"


def _people_notes(notes: list[str]) -> str:
    """The notes people gave with `--retry`/`squad reject`, for an author's or a reviewer's prompt."""
    return prompts.render("people_notes", notes="\n".join(f"- {n}" for n in notes))
