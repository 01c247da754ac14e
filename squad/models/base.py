"""The `Model` protocol and the request/response types everything above the model layer depends on.

Our own small types (not the SDK's) so the agent loop and coordinator never import anthropic, and
so a scripted model and a replay model are first-class. Requests and responses convert to and from
plain JSON dicts (`to_dict`/`from_dict`) for the run journal and for replay.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from squad.domain.text import clean_json, clean_text, find_surrogate
from squad.domain.usage import Usage

StopReason = Literal[
    "end_turn", "tool_use", "max_tokens", "stop_sequence", "refusal", "pause_turn", "model_context_window_exceeded"
]


@dataclass(frozen=True, slots=True)
class TextBlock:
    text: str
    type: Literal["text"] = "text"


@dataclass(frozen=True, slots=True)
class ToolUseBlock:
    """A tool call. `input` is always a JSON object (what the API accepts back in the history); when the
    model sent something else, `input` is `{}` and `input_error` says what it sent (see `tool_use`)."""

    id: str
    name: str
    input: dict[str, Any]
    type: Literal["tool_use"] = "tool_use"
    input_error: str | None = None


def tool_use(id: str, name: str, raw: Any) -> ToolUseBlock:
    """A ToolUseBlock from a tool call's input as it arrived (from the API, a gateway, a script).

    A JSON object of valid Unicode is the input (None counts as `{}`). Anything else, a list, a string,
    a number, or strings with lone surrogates (which nothing can encode as UTF-8), becomes `input={}`
    plus an `input_error` the agent loop answers as a tool error, so the model reads what went wrong
    and retries, instead of the run dying on a traceback.
    """
    if raw is None:
        return ToolUseBlock(id=str(id), name=clean_text(str(name)), input={})
    if not isinstance(raw, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}.get(
            type(raw), type(raw).__name__
        )
        return ToolUseBlock(
            id=str(id),
            name=clean_text(str(name)),
            input={},
            input_error=f"the input of {clean_text(str(name))} must be a JSON object of named arguments, but it "
            f'was {kind}: {_preview(raw)}; call the tool again with an object, e.g. {{"path": "..."}}',
        )
    where = find_surrogate(raw)
    if where is not None:
        return ToolUseBlock(
            id=str(id),
            name=clean_text(str(name)),
            input=clean_json(raw),
            input_error=f"argument {where} of {clean_text(str(name))} is not valid Unicode (it holds a lone "
            "surrogate, half of a UTF-16 pair, which cannot be written as UTF-8); call the tool again with "
            "valid text",
        )
    return ToolUseBlock(id=str(id), name=clean_text(str(name)), input=raw)


def _preview(value: Any) -> str:
    text = clean_text(repr(value))
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass(frozen=True, slots=True)
class ToolResultBlock:
    tool_use_id: str
    content: str
    is_error: bool = False
    type: Literal["tool_result"] = "tool_result"


ContentBlock = TextBlock | ToolUseBlock | ToolResultBlock


@dataclass(frozen=True, slots=True)
class Message:
    role: Literal["user", "assistant"]
    content: tuple[ContentBlock, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "content": [asdict(b) for b in self.content]}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Message:
        return Message(role=data["role"], content=tuple(block_from_dict(b) for b in data["content"]))


def block_from_dict(data: dict[str, Any]) -> ContentBlock:
    kind = data.get("type")
    if kind == "text":
        return TextBlock(text=data["text"])
    if kind == "tool_use":
        block = tool_use(data["id"], data["name"], data.get("input"))
        if data.get("input_error") and block.input_error is None:  # recorded as refused: replay the same
            return ToolUseBlock(block.id, block.name, block.input, input_error=str(data["input_error"]))
        return block
    if kind == "tool_result":
        return ToolResultBlock(
            tool_use_id=data["tool_use_id"], content=str(data.get("content", "")), is_error=bool(data.get("is_error"))
        )
    raise ValueError(f"unknown content block type {kind!r}")


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool offered to the model: name, description, JSON schema of its input."""

    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SystemBlock:
    """One system prompt block. `cache=True` puts a cache breakpoint at the end of this block."""

    text: str
    cache: bool = False


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """One model call.

    The shared prefix (tools, then the system blocks up to and including the last `cache=True`
    block) must be byte-identical across the specialists of a run so they share one cache entry.
    `agent` and `task` are routing metadata (budgets, rate fairness, scripted replies); they are
    never part of the prompt.
    """

    system: tuple[SystemBlock, ...]
    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...] = ()
    max_tokens: int = 8192
    agent: str = ""
    task: str = ""
    tool_choice: str | None = None  # None = auto; otherwise the name of a tool the model must call

    def to_dict(self) -> dict[str, Any]:
        return {
            "system": [asdict(s) for s in self.system],
            "messages": [m.to_dict() for m in self.messages],
            "tools": [asdict(t) for t in self.tools],
            "max_tokens": self.max_tokens,
            "agent": self.agent,
            "task": self.task,
            "tool_choice": self.tool_choice,
        }


@dataclass(slots=True)
class ModelResponse:
    """One completed call: content, why it stopped (`stop_detail`: what the API said about it, e.g. a
    refusal's category and explanation), usage and timing."""

    content: tuple[ContentBlock, ...]
    stop_reason: str
    usage: Usage
    model: str
    latency_s: float = 0.0
    ttft_s: float | None = None
    request_id: str | None = None
    cost_usd: float = 0.0
    stop_detail: str | None = None

    @property
    def tool_uses(self) -> list[ToolUseBlock]:
        return [b for b in self.content if isinstance(b, ToolUseBlock)]

    @property
    def text(self) -> str:
        return "".join(b.text for b in self.content if isinstance(b, TextBlock))

    def to_dict(self) -> dict[str, Any]:
        return {
            "content": [asdict(b) for b in self.content],
            "stop_reason": self.stop_reason,
            "usage": self.usage.to_dict(),
            "model": self.model,
            "latency_s": self.latency_s,
            "ttft_s": self.ttft_s,
            "request_id": self.request_id,
            "cost_usd": self.cost_usd,
            "stop_detail": self.stop_detail,
        }

    @staticmethod
    def from_dict(data: dict[str, Any]) -> ModelResponse:
        return ModelResponse(
            content=tuple(block_from_dict(b) for b in data["content"]),
            stop_reason=data["stop_reason"],
            usage=Usage.from_dict(data.get("usage")),
            model=data.get("model", ""),
            latency_s=data.get("latency_s", 0.0),
            ttft_s=data.get("ttft_s"),
            request_id=data.get("request_id"),
            cost_usd=data.get("cost_usd", 0.0),
            stop_detail=data.get("stop_detail"),
        )


#: Progress callback: receives small dicts such as {"type": "text_delta", "text": "..."}.
StreamCallback = Callable[[dict[str, Any]], Awaitable[None] | None]


async def emit(on_event: StreamCallback | None, event: dict[str, Any]) -> None:
    """Hand `event` to `on_event` (sync or async callback); nothing when there is none."""
    if on_event is None:
        return
    result = on_event(event)
    if inspect.isawaitable(result):
        await result


@runtime_checkable
class Model(Protocol):
    """Anything that can complete a ModelRequest. Implementations: AnthropicModel, ScriptedModel."""

    name: str

    async def complete(self, request: ModelRequest, on_event: StreamCallback | None = None) -> ModelResponse:
        """Run one call to completion (streaming internally where the backend streams)."""
        ...
