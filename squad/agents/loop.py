"""The tool-use loop of one specialist: call the model, run the tools it asks for, repeat until a stop rule.

Stop rules, in the order they are checked: the `finish` (or `submit_verdict`) tool returns finished=True;
the model ends its turn without tool calls; `max_turns` model calls were made; the budget refuses a call
(BudgetExceededError); the whole loop ran longer than `timeout_s`; the model failed (ModelError).
Cancellation is recorded and re-raised, so a cancelled run stops at once but leaves a trace.

Every stop reason the Messages API documents is read (`_read_stop`), never assumed to be "done":
`end_turn`/`stop_sequence` end the session when there is no tool call; `tool_use` runs the calls (and is
nudged when it has none); `max_tokens` is a cut reply: none of its tool calls run (the last one may hold
half its arguments, e.g. half a file) and the model is asked to go on in smaller steps; `pause_turn` is
continued by sending the paused content back; `refusal` and `model_context_window_exceeded` end the
session (a refusal reaches the loop only when no `[models] fallback` model was left to ask: `Fallback`).
A model that keeps being cut (or paused, or nudged) more than `MAX_CONTINUATIONS` times in a row stops the
session, so the task fails with a reason instead of going to review half done.

Every step is reported through `emit` as a typed journal event (`TurnStarted`, `ToolCalled`,
`AgentStopped`) for the agent and task; model calls themselves are journaled once, priced, by the model
layer's recorder. The model layer's own events that explain a slow or odd call (model_retry,
model_fallback, warning) are forwarded as events too; streamed text deltas are not: one journal line per
few tokens would bloat events.jsonl for no reader.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from squad.agents import prompts
from squad.domain.events import AgentEvent, AgentStopped, AgentWarning, ToolCalled, TurnStarted, model_event
from squad.domain.usage import Limits
from squad.errors import BudgetExceededError, ModelConfigError, ModelError, SquadError
from squad.infra.env import redact
from squad.models.base import (
    ContentBlock,
    Message,
    Model,
    ModelRequest,
    ModelResponse,
    SystemBlock,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
)

if TYPE_CHECKING:
    from squad.agents.tools import Toolbox, ToolContext

StopReason = Literal[
    "finished",
    "end_turn",
    "max_turns",
    "budget",
    "timeout",
    "model_error",
    "cancelled",
    "cut",
    "paused",
    "refused",
    "context_full",
]
#: The model's stop reasons (Messages API `stop_reason`) this loop knows.
API_STOPS = frozenset(
    {"end_turn", "stop_sequence", "tool_use", "max_tokens", "pause_turn", "refusal", "model_context_window_exceeded"}
)
#: Consecutive replies the loop continues (cut at max_tokens, paused, tool_use without a tool call) before it
#: stops the session: a model that keeps running into the same wall will not get past it by retrying.
MAX_CONTINUATIONS = 2

#: Tool arguments larger than this (as JSON) are shown in events as a truncated repr.
MAX_EVENT_ARGS_CHARS = 2000
#: How much of a tool's result an event keeps (`result`), so a transcript shows what the agent saw without
#: copying every file it read into the journal; `result_chars` keeps the full length.
MAX_EVENT_RESULT_CHARS = 1000


@dataclass(frozen=True)
class AgentLimits:
    """Per-agent limits: model calls and wall-clock seconds for the whole loop (None: unlimited), and output
    tokens per call. Build them with `from_limits`, so "0 = unlimited" keeps one meaning."""

    max_turns: int | None
    timeout_s: float | None
    max_tokens: int

    @staticmethod
    def from_limits(limits: Limits, max_tokens: int) -> AgentLimits:
        return AgentLimits(max_turns=limits.agent_turns, timeout_s=limits.task_timeout_s, max_tokens=max_tokens)


@dataclass
class AgentResult:
    """How one agent's loop ended. `messages` is the whole conversation (history + this run), for resume."""

    agent: str
    task: str
    stop_reason: StopReason
    summary: str
    data: dict[str, Any] | None
    turns: int
    usage: Usage
    cost_usd: float
    error: str | None
    messages: list[Message] = field(default_factory=list)


@dataclass
class _Loop:
    """Mutable state of one run of the loop, so every exit path reports the same totals."""

    messages: list[Message]
    turns: int = 0
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    last_text: str = ""
    continuations: int = 0  # consecutive replies that had to be continued (cut, paused, no tool call)


def _read_stop(
    response: ModelResponse, limits: AgentLimits, state: _Loop
) -> tuple[StopReason, str | None] | Literal["run", "continue"]:
    """What a reply's `stop_reason` means for the session: "run" its tool calls, "continue" (after adding
    what the model needs to go on to the conversation), or `(reason, error)` when the session ends here."""
    why, calls = response.stop_reason, response.tool_uses
    if why in ("end_turn", "stop_sequence", "tool_use", "pause_turn") and calls:
        return "run"
    if why in ("end_turn", "stop_sequence"):
        return "end_turn", None
    if why == "refusal":
        detail = response.stop_detail or "no reason given"
        return "refused", f"{response.model} refused to continue ({detail})"
    if why == "model_context_window_exceeded":
        return "context_full", (
            f"the conversation filled {response.model}'s context window after {state.turns} turn(s); "
            "split the task into smaller ones, or lower the [context] token budgets in .squad/squad.toml"
        )
    if why not in API_STOPS:
        return "model_error", f"{response.model} stopped for a reason squad does not know: {why!r}"
    if state.continuations >= MAX_CONTINUATIONS:
        return _gave_up(why, limits, state.continuations + 1)
    state.continuations += 1
    if why == "max_tokens":
        note = prompts.render("continue_cut", max_tokens=limits.max_tokens)
        _continue(state, note, not_run=calls, why=prompts.render("continue_cut_call"))
    elif why == "tool_use":
        _continue(state, prompts.render("continue_no_tool"))
    # pause_turn: the paused reply is the last message already; sending it back lets the model go on.
    return "continue"


def _gave_up(why: str, limits: AgentLimits, times: int) -> tuple[StopReason, str]:
    """The stop of a session whose replies kept needing a continuation."""
    if why == "max_tokens":
        return "cut", (
            f"the model's reply was cut at max_tokens ({limits.max_tokens}) {times} times in a row; "
            "raise [models] max_tokens in .squad/squad.toml or split the task"
        )
    if why == "pause_turn":
        return "paused", f"the model paused its turn {times} times in a row (pause_turn)"
    return "model_error", f"the model stopped for tool_use without a tool call {times} times in a row"


def _continue(state: _Loop, note: str, *, not_run: list[ToolUseBlock] | tuple[()] = (), why: str = "") -> None:
    """Ask the model to go on: every tool call of the reply is answered (the API needs a result for each)
    with `why` instead of running it, followed by `note`; merged into a trailing user message if any."""
    blocks: list[ContentBlock] = [ToolResultBlock(tool_use_id=c.id, content=why, is_error=True) for c in not_run]
    blocks.append(TextBlock(note))
    last = state.messages[-1] if state.messages else None
    if last is not None and last.role == "user":  # an empty reply was not stored: never two user messages
        state.messages[-1] = Message(role="user", content=(*last.content, *blocks))
    else:
        state.messages.append(Message(role="user", content=tuple(blocks)))


def _with_hint(exc: SquadError) -> str:
    """The error and what to do about it (which budget key to raise, ...): the stop is often all a user sees."""
    return f"{exc}; {exc.hint}" if exc.hint else str(exc)


def _event_args(args: dict[str, Any]) -> Any:
    """Tool arguments for an event, secrets redacted: as is when small, else a truncated repr (a 50 kB
    write_file is noise)."""
    args = _redacted(args)
    try:
        size = len(json.dumps(args, default=str))
    except (TypeError, ValueError):
        size = MAX_EVENT_ARGS_CHARS + 1
    if size <= MAX_EVENT_ARGS_CHARS:
        return args
    text = repr(args)
    return f"{text[:MAX_EVENT_ARGS_CHARS]}... [{len(text) - MAX_EVENT_ARGS_CHARS} more chars]"


def _event_result(content: str) -> str:
    """The start of a tool result for an event (the transcript), with how much was cut. Secrets are redacted
    before the cut, so no secret is journaled in part either."""
    content = redact(content)
    if len(content) <= MAX_EVENT_RESULT_CHARS:
        return content
    return f"{content[:MAX_EVENT_RESULT_CHARS]}... [{len(content) - MAX_EVENT_RESULT_CHARS} more chars]"


def _redacted(value: Any) -> Any:
    """`value` (tool arguments: JSON data) with `redact` applied to every string in it."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


async def run_agent(
    *,
    model: Model,
    toolbox: Toolbox,
    ctx: ToolContext,
    system: tuple[SystemBlock, ...],
    prompt: str,
    limits: AgentLimits,
    emit: Callable[[AgentEvent], None],
    history: list[Message] | None = None,
    tool_choice: Callable[[int], str | None] | None = None,
) -> AgentResult:
    """Run one specialist until a stop rule fires and return how it ended.

    Args:
        model: the model to call (already wrapped with rate limits, budgets and retries).
        toolbox: the tools offered (the same sorted list for every agent of a run); `ctx.allowed` limits
            which of them this agent may execute.
        ctx: where the tools run (the task's worktree) and for whom.
        system: system blocks; the shared, cached prefix first.
        prompt: the task, sent as a user message after `history` (skipped when empty, e.g. on resume).
        limits: turns, wall-clock timeout and output tokens per call.
        emit: receives every event; it must not block.
        history: earlier messages of this agent's conversation (resume); not modified.
        tool_choice: the tool the model must call on turn n (1-based), or None to let it choose; e.g. the
            planner forces `submit_plan` on its last turn. Unset: the model always chooses.

    Raises:
        asyncio.CancelledError: after emitting an agent_stop event with stop_reason "cancelled".
    """
    state = _Loop(messages=list(history or []))
    if prompt:
        state.messages.append(Message(role="user", content=(TextBlock(prompt),)))

    def send(event: AgentEvent) -> None:
        emit(event.model_copy(update={"ts": time.time(), "agent": ctx.agent, "task": ctx.task}))

    def stop(
        reason: StopReason, summary: str, *, data: dict[str, Any] | None = None, error: str | None = None
    ) -> AgentResult:
        send(
            AgentStopped(
                stop_reason=reason,
                turns=state.turns,
                usage=state.usage,
                cost_usd=state.cost_usd,
                summary=summary,
                error=error,
            )
        )
        return AgentResult(
            agent=ctx.agent,
            task=ctx.task,
            stop_reason=reason,
            summary=summary,
            data=data,
            turns=state.turns,
            usage=state.usage,
            cost_usd=state.cost_usd,
            error=error,
            messages=state.messages,
        )

    deadline = asyncio.timeout(limits.timeout_s)
    try:
        async with deadline:
            return await _turns(model, toolbox, ctx, system, limits, state, send, stop, tool_choice)
    except TimeoutError:
        if not deadline.expired():
            raise  # a TimeoutError from below that is not ours: a bug to surface, not a stop rule
        return stop("timeout", state.last_text, error=f"agent ran longer than {limits.timeout_s or 0:g}s")
    except asyncio.CancelledError:
        stop("cancelled", state.last_text, error="cancelled")
        raise


async def _turns(
    model: Model,
    toolbox: Toolbox,
    ctx: ToolContext,
    system: tuple[SystemBlock, ...],
    limits: AgentLimits,
    state: _Loop,
    send: Callable[[AgentEvent], None],
    stop: Callable[..., AgentResult],
    tool_choice: Callable[[int], str | None] | None = None,
) -> AgentResult:
    """The loop proper: one model call per turn, then its tool calls, until a stop rule returns a result."""
    specs = toolbox.specs()

    def on_model_event(event: dict[str, Any]) -> None:
        details = {k: v for k, v in event.items() if k not in ("type", "ts", "agent", "task")}
        journaled = model_event(str(event.get("type", "")), {**details, "turn": state.turns})
        if journaled is not None:
            send(journaled)

    while limits.max_turns is None or state.turns < limits.max_turns:
        state.turns += 1
        send(TurnStarted(turn=state.turns))
        request = ModelRequest(
            system=system,
            messages=tuple(state.messages),
            tools=specs,
            max_tokens=limits.max_tokens,
            agent=ctx.agent,
            task=ctx.task,
            tool_choice=tool_choice(state.turns) if tool_choice is not None else None,
        )
        try:
            response = await model.complete(request, on_model_event)
        except ModelConfigError:
            raise  # a model name, key or price no agent can fix: the run stops as a configuration error (exit 2)
        except BudgetExceededError as exc:
            return stop("budget", state.last_text, error=_with_hint(exc))
        except ModelError as exc:
            return stop("model_error", state.last_text, error=_with_hint(exc))
        state.usage = state.usage + response.usage
        state.cost_usd += response.cost_usd
        if response.content:  # the API rejects an empty assistant message, so never store one
            state.messages.append(Message(role="assistant", content=tuple(response.content)))
        if response.text:
            state.last_text = response.text
        calls = response.tool_uses
        next_move = _read_stop(response, limits, state)
        if next_move == "continue":  # `_read_stop` added what the model needs to go on
            skipped = f"; its {len(calls)} tool call(s) were not run" if calls else ""
            message = f"the reply stopped with {response.stop_reason}{skipped}; asking the model to go on"
            send(AgentWarning(turn=state.turns, message=message))
            continue
        if next_move != "run":
            reason, error = next_move
            if reason == "end_turn":
                return stop("end_turn", response.text)
            return stop(reason, state.last_text, error=error)
        state.continuations = 0

        results: list[ToolResultBlock] = []
        finished = None
        for call in calls:
            started = time.monotonic()
            if call.input_error is not None:  # not a JSON object, or not valid Unicode: the model can retry
                from squad.agents.tools.base import ToolResult

                result = ToolResult(call.input_error, is_error=True)
            else:
                result = await toolbox.call(call.name, call.input, ctx)
            send(
                ToolCalled(
                    turn=state.turns,
                    name=call.name,
                    args=_event_args(call.input),
                    result_chars=len(result.content),
                    result=_event_result(result.content),
                    is_error=result.is_error,
                    duration_s=time.monotonic() - started,
                )
            )
            results.append(ToolResultBlock(tool_use_id=call.id, content=result.content, is_error=result.is_error))
            if result.finished and finished is None:
                finished = result
        # Every tool_use of a turn is answered in one user message, in the order the model asked.
        state.messages.append(Message(role="user", content=tuple(results)))
        if finished is not None:
            data = finished.data
            summary = str(data["summary"]) if data and "summary" in data else finished.content
            return stop("finished", summary, data=data)
    return stop("max_turns", state.last_text, error=f"stopped after {limits.max_turns} turns without finishing")
