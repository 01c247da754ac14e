"""`squad log --verbose`: a run's (or one task's) events as a readable transcript.

Every agent session is introduced by who worked where (author or reviewer, the round's worktree); tool calls
show their arguments and the start of what they returned (journaled bounded and secret-redacted), so a
failed edit's error message is on the page; model calls, retries, warnings and each session's stop follow
in order. Plain text: printed with click, never parsed as markup.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from squad.domain.events import AgentEvent, AgentStopped, Event, ModelCalled, ToolCalled, TurnStarted

#: Characters of a tool call's arguments shown on its line.
MAX_ARGS_CHARS = 600
_INDENT = " " * 12


def render(events: Iterable[Event], start: float) -> Iterator[str]:
    """The lines of the transcript of `events`, times relative to `start`."""
    session: tuple[str, str | None] | None = None
    for ev in events:
        at = f"{(ev.ts or start) - start:8.1f}s  "
        if isinstance(ev, AgentEvent | ModelCalled) and ev.agent:
            here = (ev.agent, ev.lease)
            if here != session:
                session = here
                yield f"{at}── {ev.agent}" + (f" in worktree {ev.lease}" if ev.lease else "") + " ──"
        else:
            session = None
        yield at + _line(ev)
        if isinstance(ev, ToolCalled) and ev.result:
            yield from (f"{_INDENT}| {line}" for line in ev.result.splitlines() or [""])
        if isinstance(ev, AgentStopped) and ev.error:
            yield f"{_INDENT}error: {ev.error}"


def _line(ev: Event) -> str:
    match ev:
        case TurnStarted(turn=turn):
            return f"  turn {turn}"
        case ToolCalled():
            outcome = "ERROR" if ev.is_error else "ok"
            return f"  tool {ev.name} {_args(ev.args)} -> {outcome} ({ev.result_chars} chars, {ev.duration_s:.1f}s)"
        case AgentStopped():
            summary = " ".join(ev.summary.split())
            return f"  stopped: {ev.stop_reason} after {ev.turns} turn(s), ${ev.cost_usd:.4f}" + (
                f": {summary}" if summary else ""
            )
        case ModelCalled():
            return "  " + ev.describe()
        case AgentEvent():
            return "  " + ev.describe()
    return ev.describe()


def _args(args: Any) -> str:
    text = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False, default=str)
    return text if len(text) <= MAX_ARGS_CHARS else text[:MAX_ARGS_CHARS] + f"… [{len(text) - MAX_ARGS_CHARS} more]"
