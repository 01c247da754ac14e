"""The agent loop against test doubles of the Model protocol and the squad.agents.tools Toolbox interface.

The doubles stand in for modules built in parallel (squad.agents.tools, the scripted model); an integration test
with the real ones comes with the integration. They are small on purpose: the loop is what is under test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from squad.agents.loop import MAX_EVENT_ARGS_CHARS, MAX_EVENT_RESULT_CHARS, AgentLimits, AgentResult, run_agent
from squad.domain.events import AgentEvent
from squad.errors import BudgetExceededError, ModelError
from squad.models.base import (
    Message,
    ModelRequest,
    ModelResponse,
    SystemBlock,
    TextBlock,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
    Usage,
)


@dataclass
class Ctx:
    """Same fields the loop reads from squad.agents.tools.ToolContext."""

    worktree: Path = Path(".")
    run_id: str = "20261122-063107-a1b2"
    agent: str = "backend"
    task: str = "add-api"
    allowed: frozenset[str] = frozenset({"echo", "finish", "slow"})


@dataclass
class Result:
    """Same shape as squad.agents.tools.ToolResult."""

    content: str
    is_error: bool = False
    finished: bool = False
    data: dict[str, Any] | None = None


class FakeToolbox:
    """The squad.agents.tools.Toolbox interface: sorted specs, and `call` that never raises."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def specs(self) -> tuple[ToolSpec, ...]:
        schema = {"type": "object", "properties": {}}
        return tuple(ToolSpec(n, f"{n} tool", schema) for n in ("echo", "finish", "slow"))

    async def call(self, name: str, args: dict[str, Any], ctx: Any) -> Result:
        self.calls.append((name, args))
        if name not in ctx.allowed:
            return Result(f"unknown tool {name!r}; use one of: echo, finish, slow", is_error=True)
        if name == "echo":
            return Result(f"echo:{args.get('text', '')}")
        if name == "slow":
            await asyncio.sleep(args["seconds"])
            return Result("slept")
        return Result("finished", finished=True, data={"summary": args["summary"], "extra": 1})


Step = ModelResponse | BaseException | Callable[[ModelRequest], Any]


@dataclass
class FakeModel:
    """The Model protocol: replies from a list of steps (a response, an exception to raise, or a coroutine fn)."""

    steps: list[Step]
    name: str = "fake-model"
    requests: list[ModelRequest] = field(default_factory=list)

    async def complete(self, request: ModelRequest, on_event: Any = None) -> ModelResponse:
        self.requests.append(request)
        step = self.steps[min(len(self.requests), len(self.steps)) - 1]
        if isinstance(step, BaseException):
            raise step
        if callable(step):
            return await step(request)
        return step


def reply(*tools: tuple[str, dict[str, Any]], text: str = "", tokens: int = 10, cost: float = 0.01) -> ModelResponse:
    content: list[Any] = [TextBlock(text)] if text else []
    content += [ToolUseBlock(id=f"tu_{i}_{name}", name=name, input=args) for i, (name, args) in enumerate(tools)]
    return ModelResponse(
        content=tuple(content),
        stop_reason="tool_use" if tools else "end_turn",
        usage=Usage(input_tokens=tokens, output_tokens=tokens // 2, cache_read_input_tokens=3),
        model="fake-model",
        latency_s=0.5,
        ttft_s=0.1,
        request_id=f"req_{tokens}",
        cost_usd=cost,
    )


SYSTEM = (SystemBlock("shared context", cache=True), SystemBlock("you are backend"))
LIMITS = AgentLimits(max_turns=5, timeout_s=10.0, max_tokens=1234)


async def go(
    model: FakeModel, *, limits: AgentLimits = LIMITS, **kwargs: Any
) -> tuple[AgentResult, list[dict[str, Any]], FakeToolbox]:
    events: list[dict[str, Any]] = []
    toolbox = kwargs.pop("toolbox", FakeToolbox())
    result = await run_agent(
        model=model,
        toolbox=toolbox,
        ctx=kwargs.pop("ctx", Ctx()),
        system=SYSTEM,
        prompt=kwargs.pop("prompt", "Add a /health endpoint"),
        limits=limits,
        emit=lambda e: events.append(_plain(e)),
        **kwargs,
    )
    return result, events, toolbox


def _plain(event: AgentEvent) -> dict[str, Any]:
    """An agent event as a dict with its kind (`tool_call`, ...) as `type`, for compact asserts."""
    return {**event.model_dump(), "type": event.type.removeprefix("agent.")}


def test_finished_with_two_tools_in_one_turn() -> None:
    model = FakeModel(
        [
            reply(("echo", {"text": "a"}), ("echo", {"text": "b"}), text="Looking.", tokens=100, cost=0.25),
            reply(("finish", {"summary": "Added /health"}), tokens=40, cost=0.5),
        ]
    )
    result, events, toolbox = asyncio.run(go(model))

    assert result.stop_reason == "finished"
    assert result.summary == "Added /health"
    assert result.data == {"summary": "Added /health", "extra": 1}
    assert result.turns == 2 and result.error is None
    assert result.usage == Usage(input_tokens=140, output_tokens=70, cache_read_input_tokens=6)
    assert result.cost_usd == pytest.approx(0.75)
    assert toolbox.calls == [("echo", {"text": "a"}), ("echo", {"text": "b"}), ("finish", {"summary": "Added /health"})]

    first, second = model.requests
    assert first.system == SYSTEM and first.tools == FakeToolbox().specs()
    assert (first.max_tokens, first.agent, first.task) == (1234, "backend", "add-api")
    assert first.messages == (Message("user", (TextBlock("Add a /health endpoint"),)),)
    # Turn 2 sees the assistant turn, then ONE user message answering both tool calls in order.
    assert second.messages[1].role == "assistant"
    assert second.messages[2] == Message(
        "user",
        (ToolResultBlock("tu_0_echo", "echo:a"), ToolResultBlock("tu_1_echo", "echo:b")),
    )
    assert len(second.messages) == 3
    assert result.messages[-1] == Message("user", (ToolResultBlock("tu_0_finish", "finished"),))

    # Model calls are journaled once, priced, by the model layer's recorder, not by the loop.
    assert [e["type"] for e in events] == [
        "turn_start",
        "tool_call",
        "tool_call",
        "turn_start",
        "tool_call",
        "agent_stop",
    ]
    assert all(e["agent"] == "backend" and e["task"] == "add-api" and isinstance(e["ts"], float) for e in events)
    tool = events[1]
    assert (tool["name"], tool["args"], tool["result_chars"], tool["is_error"]) == ("echo", {"text": "a"}, 6, False)
    assert tool["duration_s"] >= 0
    stop = events[-1]
    assert stop["stop_reason"] == "finished" and stop["turns"] == 2 and stop["summary"] == "Added /health"
    assert stop["usage"]["input_tokens"] == 140 and stop["cost_usd"] == pytest.approx(0.75)


def test_tool_errors_go_back_to_the_model_and_the_loop_goes_on() -> None:
    model = FakeModel([reply(("rm_rf", {"path": "/"})), reply(text="I could not do it: no such tool.")])
    result, events, _ = asyncio.run(go(model))
    assert result.stop_reason == "end_turn"
    assert result.summary == "I could not do it: no such tool."
    answer = model.requests[1].messages[-1].content[0]
    assert isinstance(answer, ToolResultBlock)
    assert answer.is_error and "unknown tool 'rm_rf'" in answer.content
    assert [e["is_error"] for e in events if e["type"] == "tool_call"] == [True]


def test_max_turns() -> None:
    model = FakeModel([reply(("echo", {"text": "again"}), text="still working")])
    result, events, toolbox = asyncio.run(go(model, limits=AgentLimits(max_turns=3, timeout_s=10, max_tokens=100)))
    assert result.stop_reason == "max_turns"
    assert result.turns == 3 and len(model.requests) == 3 and len(toolbox.calls) == 3
    assert result.summary == "still working"
    assert result.error == "stopped after 3 turns without finishing"
    assert result.usage.input_tokens == 30
    # The last turn's tool results are kept, so a resumed run starts from a valid conversation.
    assert result.messages[-1].role == "user"
    assert [e["turn"] for e in events if e["type"] == "turn_start"] == [1, 2, 3]


def test_budget_stops_the_loop() -> None:
    model = FakeModel([reply(("echo", {"text": "x"}), text="first"), BudgetExceededError("run budget of $1.00 spent")])
    result, events, _ = asyncio.run(go(model))
    assert result.stop_reason == "budget"
    assert result.error == "run budget of $1.00 spent"
    assert result.turns == 2 and result.usage.input_tokens == 10 and result.summary == "first"
    assert events[-1]["stop_reason"] == "budget" and events[-1]["error"] == "run budget of $1.00 spent"


def test_model_error_stops_the_loop() -> None:
    model = FakeModel([ModelError("overloaded after 5 retries")])
    result, events, _ = asyncio.run(go(model))
    assert (result.stop_reason, result.error, result.turns) == ("model_error", "overloaded after 5 retries", 1)
    assert [e["type"] for e in events] == ["turn_start", "agent_stop"]


def test_timeout_during_a_tool() -> None:
    model = FakeModel([reply(("slow", {"seconds": 30}), text="sleeping")])
    limits = AgentLimits(max_turns=5, timeout_s=0.2, max_tokens=100)
    result, events, _ = asyncio.run(go(model, limits=limits))
    assert result.stop_reason == "timeout"
    assert result.error == "agent ran longer than 0.2s"
    assert result.summary == "sleeping"
    assert events[-1]["type"] == "agent_stop" and events[-1]["stop_reason"] == "timeout"


def test_timeout_during_a_model_call() -> None:
    async def hang(request: ModelRequest) -> ModelResponse:
        await asyncio.sleep(30)
        raise AssertionError("unreachable")

    result, _, _ = asyncio.run(go(FakeModel([hang]), limits=AgentLimits(max_turns=5, timeout_s=0.1, max_tokens=10)))
    assert result.stop_reason == "timeout" and result.turns == 1


def test_a_timeout_error_that_is_not_ours_propagates() -> None:
    with pytest.raises(TimeoutError, match="socket"):
        asyncio.run(go(FakeModel([TimeoutError("socket read timed out")])))


def test_cancel_records_an_event_and_reraises() -> None:
    started = asyncio.Event()

    async def hang(request: ModelRequest) -> ModelResponse:
        started.set()
        await asyncio.sleep(30)
        raise AssertionError("unreachable")

    async def scenario() -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        task = asyncio.create_task(
            run_agent(
                model=FakeModel([hang]),
                toolbox=FakeToolbox(),
                ctx=Ctx(),
                system=SYSTEM,
                prompt="go",
                limits=LIMITS,
                emit=lambda e: events.append(_plain(e)),
            )
        )
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return events

    events = asyncio.run(scenario())
    assert events[-1]["type"] == "agent_stop"
    assert events[-1]["stop_reason"] == "cancelled" and events[-1]["turns"] == 1


def test_history_resume_and_empty_prompt() -> None:
    history = [
        Message("user", (TextBlock("Add a /health endpoint"),)),
        Message("assistant", (ToolUseBlock("tu_old", "echo", {"text": "x"}),)),
        Message("user", (ToolResultBlock("tu_old", "echo:x"),)),
    ]
    kept = list(history)
    model = FakeModel([reply(text="Done already.")])
    result, _, _ = asyncio.run(go(model, history=history, prompt=""))
    assert model.requests[0].messages == tuple(history)
    assert history == kept, "the caller's history is not modified"
    assert result.messages == [*history, Message("assistant", (TextBlock("Done already."),))]


def test_huge_tool_args_are_truncated_in_events_not_in_the_call() -> None:
    big = "x" * 50_000
    model = FakeModel([reply(("echo", {"text": big})), reply(text="ok")])
    _, events, toolbox = asyncio.run(go(model))
    shown = next(e for e in events if e["type"] == "tool_call")["args"]
    assert isinstance(shown, str) and len(shown) < MAX_EVENT_ARGS_CHARS + 100 and "more chars" in shown
    assert toolbox.calls[0] == ("echo", {"text": big})


def test_tool_results_are_kept_in_events_up_to_a_bound() -> None:
    big = "y" * 50_000
    model = FakeModel([reply(("echo", {"text": "short"})), reply(("echo", {"text": big})), reply(text="ok")])
    _, events, _ = asyncio.run(go(model))
    small, large = [e for e in events if e["type"] == "tool_call"]
    assert small["result"] == "echo:short" and small["result_chars"] == len("echo:short")
    assert large["result_chars"] > MAX_EVENT_RESULT_CHARS
    assert large["result"].startswith("echo:" + "y" * (MAX_EVENT_RESULT_CHARS - 5)) and "more chars]" in large["result"]
    assert len(large["result"]) < MAX_EVENT_RESULT_CHARS + 40


def test_empty_reply_ends_the_turn_without_storing_an_empty_message() -> None:
    empty = ModelResponse(content=(), stop_reason="end_turn", usage=Usage(), model="fake-model")
    result, _, _ = asyncio.run(go(FakeModel([empty])))
    assert result.stop_reason == "end_turn" and result.summary == ""
    assert [m.role for m in result.messages] == ["user"]
