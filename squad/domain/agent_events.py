"""Events of an agent's session: turns, tool calls, its stop, and the model layer's retries and warnings.

Written as `agent.<kind>` to events.jsonl and to the task's transcript.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from squad.domain.event_base import AgentEvent
from squad.domain.usage import Usage


class TurnStarted(AgentEvent):
    type: Literal["agent.turn_start"] = "agent.turn_start"
    turn: int = 0


class ToolCalled(AgentEvent):
    type: Literal["agent.tool_call"] = "agent.tool_call"
    turn: int = 0
    name: str = ""
    args: Any = None
    result_chars: int = 0
    result: str | None = None  # the start of what the tool returned (bounded): what the agent saw
    is_error: bool = False
    duration_s: float = 0.0


class AgentModelCall(AgentEvent):
    """Schema 1 only: the agent loop's copy of a model call (schema 2 has the one `model_call`)."""

    type: Literal["agent.model_call"] = "agent.model_call"
    turn: int = 0
    model: str = ""


class AgentStopped(AgentEvent):
    type: Literal["agent.agent_stop"] = "agent.agent_stop"
    stop_reason: str
    turns: int = 0
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    summary: str = ""
    error: str | None = None

    @field_validator("usage", mode="before")
    @classmethod
    def _usage(cls, value: Any) -> Any:
        return Usage.from_dict(value) if isinstance(value, dict) or value is None else value


class ModelRetried(AgentEvent):
    type: Literal["agent.model_retry"] = "agent.model_retry"
    turn: int | None = None
    model: str = ""
    attempt: int = 0
    wait_s: float = 0.0
    error: str = ""


class ModelFellBack(AgentEvent):
    type: Literal["agent.model_fallback"] = "agent.model_fallback"
    turn: int | None = None
    model: str = ""
    after: str = ""
    reason: str = ""

    def describe(self) -> str:
        """Which model took over from which, and why (a refusal, retries used up, an open breaker)."""
        return " ".join(p for p in (self.type, self._who(), f"{self.after} -> {self.model}: {self.reason}") if p)


class AgentWarning(AgentEvent):
    type: Literal["agent.warning"] = "agent.warning"
    turn: int | None = None
    message: str = ""
    hint: str | None = None


#: Model-layer events (`on_event` dicts of Model.complete) that an agent session journals, by kind.
MODEL_EVENTS: dict[str, type[AgentEvent]] = {
    "model_retry": ModelRetried,
    "model_fallback": ModelFellBack,
    "warning": AgentWarning,
}


def model_event(kind: str, fields: dict[str, Any]) -> AgentEvent | None:
    """The journal event for a model-layer `on_event` dict (`model_retry`, `model_fallback`, `warning`), or None."""
    cls = MODEL_EVENTS.get(kind)
    return cls.model_validate(fields) if cls is not None else None
