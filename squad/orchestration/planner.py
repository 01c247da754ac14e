"""Planning: the lead must call `submit_plan`; the plan is validated in code and sent back once with errors.

The planning call sends the specialists' own tool list and the shared context pack, so it writes the
one prompt-cache entry every specialist then reads.
"""

from __future__ import annotations

from collections.abc import Callable

from squad.agents import prompts
from squad.agents.context import ContextPack
from squad.agents.tools import default_toolbox
from squad.config import Team
from squad.domain.events import AgentEvent, Event, PlanInvalid, model_event
from squad.domain.plan import Plan, validate_plan
from squad.errors import RunError
from squad.models.base import Message, Model, ModelRequest, SystemBlock, TextBlock, ToolResultBlock


def roster(team: Team) -> str:
    """The specialists the lead may give work to (reviewers are not on it)."""
    lines = []
    for c in sorted(team.workers, key=lambda c: c.name):
        owns = ", ".join(c.owns) or "anything"
        lines.append(f"- {c.name}: {c.role} (owns: {owns}; tools: {', '.join(c.tool_names())})")
    return "\n".join(lines)


async def make_plan(
    *,
    task_text: str,
    team: Team,
    model: Model,
    agent: str,
    pack: ContextPack,
    max_tokens: int,
    emit: Callable[[Event], object],
) -> Plan:
    """Ask the lead (`agent` on `model`) for a plan via `submit_plan`; validate; send it back once with errors.

    Raises:
        RunError: the plan is still invalid after one retry (the message lists the errors).
    """

    def on_model_event(event: dict[str, object]) -> None:  # retries of the planning call, like an agent's
        details = {k: v for k, v in event.items() if k not in ("type", "ts", "agent", "task")}
        journaled: AgentEvent | None = model_event(str(event.get("type", "")), details)
        if journaled is not None:
            emit(journaled.model_copy(update={"agent": agent, "task": "plan"}))

    system = (*pack.system_blocks(), SystemBlock(prompts.render("planner", roster=roster(team))))
    messages: list[Message] = [Message("user", (TextBlock(f"## Request\n\n{task_text}"),))]
    errors: list[str] = []
    for attempt in (1, 2):
        request = ModelRequest(
            system=system,
            messages=tuple(messages),
            tools=default_toolbox().specs(),
            max_tokens=max_tokens,
            agent=agent,
            task="plan",
            tool_choice="submit_plan",
        )
        response = await model.complete(request, on_model_event)
        if response.stop_reason == "refusal":
            raise RunError(
                f"the coordinator's model refused to plan ({response.stop_detail or 'no reason given'})",
                hint="rephrase the task, or name one agent with --agent",
            )
        call = next((b for b in response.tool_uses if b.name == "submit_plan"), None)
        if call is None:
            errors = ["you did not call submit_plan; call it with the list of tasks"]
        elif response.stop_reason in ("max_tokens", "model_context_window_exceeded"):
            # The call's arguments stop halfway: a plan that parses could be missing its last tasks.
            errors = [
                f"your submit_plan call was cut at the output limit ({max_tokens} tokens) before it ended; "
                "send a shorter plan (fewer tasks, shorter goals)"
            ]
        else:
            plan, errors = validate_plan(call.input, team)
            if plan is not None:
                return plan
        emit(PlanInvalid(attempt=attempt, errors=errors))
        if attempt == 1:
            feedback = prompts.render("planner_retry", errors="\n".join(f"- {e}" for e in errors))
            messages.append(Message("assistant", response.content or (TextBlock("(no answer)"),)))
            if call is not None:
                messages.append(Message("user", (ToolResultBlock(call.id, feedback, is_error=True),)))
            else:
                messages.append(Message("user", (TextBlock(feedback),)))
    raise RunError(
        "the coordinator's plan is invalid after one retry:\n" + "\n".join(f"  - {e}" for e in errors),
        hint="try again, rephrase the task, or name one agent with --agent",
    )
