"""Planning: the lead reads the code, then submits a plan; the plan is validated in code, sent back once with errors.

The lead runs the ordinary agent loop (`run_agent`) in a read-only view of the run's base commit, with the
read tools (list_files, read_file, search, read_decisions) and record_decision, for at most
`[budgets] plan_turns` model calls (0: unlimited); on the last one `submit_plan` is forced. Its `submit_plan` runs
`validate_plan`: a valid plan ends the loop, an invalid one goes back to the model with the errors as the
tool's result, once; a second invalid plan fails the run. A turn without any tool call counts as an
attempt too ("you did not call submit_plan"), followed by one forced call.

Its requests carry the specialists' own tool list and the shared context pack before the cache breakpoint,
so the lead's first call writes the one prompt-cache entry every specialist then reads. Its turns and tool
calls are journaled as agent events of task `plan`; the decisions it records go to the run's ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from squad.agents import prompts
from squad.agents.context import ContextPack, charter_text
from squad.agents.loop import AgentLimits, AgentResult, run_agent
from squad.agents.tools import SubmitPlan, ToolContext, ToolResult, default_toolbox
from squad.config import Team
from squad.domain.events import AgentEvent, Event, PlanInvalid, PlanMade
from squad.domain.ids import slugify
from squad.domain.plan import Plan, PlanTask, validate_plan
from squad.errors import RunError, SquadError
from squad.infra.journal import PLAN_ATTEMPT
from squad.models.base import Message, Model, SystemBlock
from squad.orchestration.resume import keep_decisions

if TYPE_CHECKING:
    from squad.infra.workspace import Workspace
    from squad.orchestration.config import RunConfig
    from squad.orchestration.context import RunContext

#: What the lead may run while planning: it reads, records decisions, and submits the plan. Never writes.
PLAN_TOOLS = frozenset({"list_files", "read_file", "search", "read_decisions", "record_decision", "submit_plan"})
#: The plan may be submitted twice: the first invalid plan goes back to the lead with its errors.
ATTEMPTS = 2
NO_CALL = "you did not call submit_plan; call it with the list of tasks"


def roster(team: Team) -> str:
    """The specialists the lead may give work to (reviewers are not on it)."""
    lines = []
    for c in sorted(team.workers, key=lambda c: c.name):
        owns = ", ".join(c.owns) or "anything"
        lines.append(f"- {c.name}: {c.role} (owns: {owns}; tools: {', '.join(c.tool_names())})")
    return "\n".join(lines)


def planning_tools(team: Team, lead: str) -> frozenset[str]:
    """The tools the lead may execute: `PLAN_TOOLS`, narrowed by its charter's tools when it has one."""
    charter = team.agents.get(lead)
    if charter is None:
        return PLAN_TOOLS
    return (PLAN_TOOLS & frozenset(charter.tool_names())) | {"submit_plan"}


class PlanSubmission(SubmitPlan):
    """`submit_plan` as the lead's planning session runs it: offered exactly like the standard tool (same spec,
    so the same cached prefix), but it validates the plan with `validate_plan` and keeps the result.

    The raw arguments go to `validate_plan` (not through the pydantic schema first), so one validator words
    every error the model sees.
    """

    def __init__(self, team: Team, on_invalid: Callable[[int, list[str]], object]) -> None:
        self.team = team
        self.on_invalid = on_invalid
        self.plan: Plan | None = None
        self.attempts = 0
        self.errors: list[str] = []

    def invalid(self, errors: list[str]) -> str:
        """Count an attempt that gave no plan; the feedback the model gets for it."""
        self.attempts += 1
        self.errors = errors
        self.on_invalid(self.attempts, errors)
        return prompts.render("planner_retry", errors="\n".join(f"- {e}" for e in errors))

    async def execute(self, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        plan, errors = validate_plan(args, self.team)
        if plan is not None:
            self.plan = plan
            return ToolResult(f"plan accepted: {len(plan.tasks)} task(s)", finished=True)
        feedback = self.invalid(errors)
        return ToolResult(feedback, is_error=True, finished=self.attempts >= ATTEMPTS)


def _turns_text(turns: int | None) -> str:
    if turns is None:
        return "no fixed number of turns, but every turn costs; call submit_plan as soon as you can plan"
    return f"{turns} turns, and on the last one you must call submit_plan"


async def make_plan(
    config: RunConfig,
    *,
    task_text: str,
    model: Model,
    pack: ContextPack,
    workspace: Workspace,
    run_id: str,
    ledger_file: Path | None,
    emit: Callable[[Event], object],
    attempt_ledger: Path | None = None,
) -> Plan:
    """Let the lead read the code at `pack.commit` and submit a plan; validate it; send it back once with errors.

    Args:
        config: the run's configuration (team, settings, limits; `config.lead()` is who plans).
        task_text: the request.
        model: the lead's model.
        pack: the run's shared context; the lead reads the repository at `pack.commit`.
        workspace: makes (and removes) the lead's read-only view of `pack.commit`.
        run_id: the run the view and recorded decisions belong to.
        ledger_file: the run's ledger file for `record_decision` (None: recording is refused).
        attempt_ledger: where the lead's decisions wait until the plan is journaled (see ToolContext).
        emit: receives the lead's agent events (task `plan`) and `PlanInvalid`.

    Raises:
        RunError: the plan is still invalid after one retry (the message lists the errors), or the lead
            stopped without a plan (budget, model error, timeout).
    """
    agent = config.lead()[0]
    settings = config.settings
    turns = config.limits.plan_turns
    team = config.team
    allowed = planning_tools(team, agent)
    submission = PlanSubmission(team, lambda n, errors: emit(PlanInvalid(attempt=n, errors=errors)))
    toolbox = default_toolbox().replacing(submission)
    charter = team.agents.get(agent)
    system = (
        *pack.system_blocks(),
        *((SystemBlock(charter_text(charter, allowed)),) if charter is not None else ()),
        SystemBlock(prompts.render("planner", roster=roster(team), turns=_turns_text(turns))),
    )
    lease = await asyncio.to_thread(workspace.view, run_id, pack.commit)
    try:
        ctx = ToolContext(
            worktree=lease.path,
            run_id=run_id,
            agent=agent,
            task="plan",
            settings=settings,
            base_commit=pack.commit,
            ledger_file=ledger_file,
            attempt_ledger=attempt_ledger,
            allowed=allowed,
        )

        def send(event: AgentEvent) -> None:
            emit(event)

        async def session(prompt: str, history: list[Message] | None, max_turns: int | None, force: int) -> AgentResult:
            return await run_agent(
                model=model,
                toolbox=toolbox,
                ctx=ctx,
                system=system,
                prompt=prompt,
                limits=AgentLimits(max_turns, config.limits.task_timeout_s, settings.models.max_tokens),
                emit=send,
                history=history,
                tool_choice=lambda turn: "submit_plan" if force and turn >= force else None,
            )

        # One turn past `plan_turns` is there only for a plan first submitted, invalid, on the forced last turn.
        # Unlimited (0): no turn is forced; the lead plans until it submits (budgets and the timeout still hold).
        request = prompts.render("planner_request", request=task_text)
        result = await session(request, None, turns + 1 if turns else None, turns or 0)
        if submission.plan is None and result.stop_reason in ("end_turn", "max_turns"):
            feedback = submission.invalid([NO_CALL])
            if submission.attempts < ATTEMPTS:
                result = await session(feedback, result.messages, 1, 1)
                if submission.plan is None and result.stop_reason in ("end_turn", "max_turns"):
                    submission.invalid([NO_CALL])
    finally:
        with contextlib.suppress(SquadError):
            await asyncio.to_thread(workspace.release, lease)
    if submission.plan is not None:
        return submission.plan
    if submission.attempts >= ATTEMPTS:
        raise RunError(
            "the coordinator's plan is invalid after one retry:\n" + "\n".join(f"  - {e}" for e in submission.errors),
            hint="try again, rephrase the task, or name one agent with --agent",
        )
    raise RunError(
        f"the lead stopped planning ({result.stop_reason}) without a plan: {result.error or result.summary}",
        hint="the error says which limit or failure; raise it in .squad/squad.toml, or name one agent with --agent",
    )


async def plan_run(rc: RunContext, agent: str | None) -> Plan:
    """The run's plan, journaled as `plan`: the lead's (`make_plan`), or with `agent` the whole request as one task
    for that specialist. A run that has its plan already (a resume) keeps it. Used by `squad run` and by
    `squad plan --out` (the first job of a run spread over CI jobs) alike."""
    state = rc.state
    if state.plan is not None:
        return state.plan
    if agent is not None:
        plan = Plan((PlanTask(id=slugify(state.task_text), agent=agent, goal=state.task_text),))
    else:
        assert rc.pack is not None
        _lead, model = rc.config.lead()
        plan = await make_plan(
            rc.config,
            task_text=state.task_text,
            model=rc.model(model),
            pack=rc.pack,
            workspace=rc.workspace,
            run_id=rc.run_id,
            ledger_file=rc.journal.ledger_path,
            emit=rc.emit,
            attempt_ledger=rc.journal.attempt_ledger(PLAN_ATTEMPT, 0),  # kept once the plan is journaled
        )
    rc.emit(PlanMade(tasks=[t.to_dict() for t in plan.tasks]))
    await keep_decisions(rc, PLAN_ATTEMPT, 0)
    return plan
