"""Plan validation in code (squad.domain.plan), and the one retry with the errors fed back to the planner."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from conftest import git

from squad.agents.context import ContextPack
from squad.agents.tools import default_toolbox
from squad.config import Charter, Settings, Team
from squad.domain.events import Event
from squad.domain.ids import new_run_id, slugify
from squad.domain.plan import PlanTask, find_cycle, validate_plan
from squad.errors import RunError
from squad.infra.workspace import Workspace
from squad.models.base import ModelRequest, ModelResponse, TextBlock, ToolResultBlock, ToolUseBlock, Usage
from squad.orchestration import Coordinator, RunConfig
from squad.orchestration.planner import make_plan


def _team() -> Team:
    return Team(
        agents={
            "lead": Charter(name="lead", role="tech lead"),
            "backend": Charter(name="backend", role="backend engineer", owns=["src/**"]),
            "tester": Charter(name="tester", role="test engineer", owns=["tests/**"]),
            "reviewer": Charter(name="reviewer", role="code reviewer", reviewer=True),
        }
    )


def _task(tid: str, agent: str = "backend", deps: list[str] | None = None, **kw: Any) -> dict[str, Any]:
    return {"id": tid, "agent": agent, "goal": f"do {tid}", "files": [], "depends_on": deps or [], **kw}


def test_valid_plan_keeps_order_and_fields() -> None:
    api = _task("api", files=["src/app.py"], interfaces=[" def health() -> str in src/app.py "])
    plan, errors = validate_plan({"tasks": [api, _task("tests", "tester", ["api"])]}, _team())
    assert errors == []
    assert plan is not None
    assert [t.id for t in plan.tasks] == ["api", "tests"]
    assert plan.get("tests").depends_on == ("api",) and plan.get("api").files == ("src/app.py",)
    assert plan.get("api").interfaces == ("def health() -> str in src/app.py",)
    assert PlanTask.from_dict(plan.get("api").to_dict()) == plan.get("api")  # journaled and read back whole


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"tasks": []}, "no tasks"),
        ({}, "no tasks"),
        ({"tasks": [_task("a", "frontend")]}, "unknown agent 'frontend'"),
        ({"tasks": [_task("a", "reviewer")]}, "'reviewer' is a reviewer"),
        ({"tasks": [_task("a"), _task("a")]}, "duplicate id"),
        ({"tasks": [_task("Bad_ID")]}, "id must match"),
        ({"tasks": [_task("x" * 37)]}, "id must match"),
        ({"tasks": [_task("a", deps=["nope"])]}, "depends_on 'nope', which is not a task id"),
        ({"tasks": [_task("a", deps=["a"])]}, "depends on itself"),
        ({"tasks": [_task("a", files=["/etc/passwd"])]}, "is absolute"),
        ({"tasks": [_task("a", files=["../x.py"])]}, "leaves the repository"),
        ({"tasks": [_task("a", files=[".git/config"])]}, "inside .git"),
        ({"tasks": [{"id": "a", "agent": "backend"}]}, "goal is missing"),
        ({"tasks": ["just a string"]}, "must be an object"),
        ({"tasks": [_task("a", interfaces="def f()")]}, "interfaces must be a list"),
        ({"tasks": [_task("a", interfaces=[""])]}, "interfaces must be a list"),
        ({"tasks": [_task("a", owner="me")]}, "unknown field(s) owner"),
    ],
)
def test_invalid_plans_are_explained(data: dict[str, Any], expected: str) -> None:
    plan, errors = validate_plan(data, _team())
    assert plan is None
    assert any(expected in e for e in errors), errors


def test_cycle_is_reported_with_its_path() -> None:
    plan, errors = validate_plan(
        {"tasks": [_task("a", deps=["c"]), _task("b", deps=["a"]), _task("c", deps=["b"]), _task("d")]}, _team()
    )
    assert plan is None
    assert errors == ["dependency cycle: a -> c -> b -> a; remove one of these dependencies"]
    assert find_cycle({"a": ["b"], "b": []}) is None


def test_slugify() -> None:
    assert slugify("Add a /health endpoint!") == "add-a-health-endpoint"
    assert slugify("!!!") == "task"
    assert len(slugify("word " * 40)) <= 36


class _PlannerModel:
    """A Model that answers planning calls from a list and keeps every request it got.

    An answer is a plan (a submit_plan call), a `("read", path)` read_file call, or None (text, no tool call).
    """

    def __init__(self, answers: list[Any]) -> None:
        self.name = "test-planner"
        self.answers = answers
        self.requests: list[ModelRequest] = []

    async def complete(self, request: ModelRequest, on_event: Any = None) -> ModelResponse:
        self.requests.append(request)
        answer = self.answers[len(self.requests) - 1]
        n = len(self.requests)
        content: tuple[Any, ...]
        if answer is None:
            content = (TextBlock("I think we should..."),)
        elif isinstance(answer, tuple):
            content = (ToolUseBlock(id=f"toolu_{n}", name="read_file", input={"path": answer[1]}),)
        else:
            content = (ToolUseBlock(id=f"toolu_{n}", name="submit_plan", input=answer),)
        stop = "end_turn" if answer is None else "tool_use"  # as the API says it: no tool call, no tool_use
        return ModelResponse(content=content, stop_reason=stop, usage=Usage(10, 10), model=self.name)


def _plan(repo: Path, model: _PlannerModel, emit: Any, plan_turns: int = 8) -> Any:
    settings = Settings.model_validate({"budgets": {"plan_turns": plan_turns}})
    return make_plan(
        RunConfig.build(repo, settings, _team()),
        task_text="build it",
        model=model,
        pack=ContextPack.build(repo, settings),
        workspace=Workspace(repo),
        run_id=new_run_id(),
        ledger_file=None,
        emit=emit,
    )


def test_invalid_plan_is_sent_back_once_with_errors_then_accepted(repo: Path) -> None:
    model = _PlannerModel([{"tasks": [_task("a", "frontend")]}, {"tasks": [_task("a")]}])
    events: list[Event] = []
    plan = asyncio.run(_plan(repo, model, events.append))
    assert [t.agent for t in plan.tasks] == ["backend"]
    first, second = model.requests
    assert first.tool_choice is None and first.task == "plan"  # free to read first; forced only at the end
    # The planner sends the specialists' exact tool list, so its call warms their shared prompt cache.
    assert first.tools == default_toolbox().specs() and "submit_plan" in [t.name for t in first.tools]
    assert first.agent == "lead"
    assert "- backend: backend engineer (owns: src/**" in first.system[-1].text
    assert "reviewer" not in first.system[-1].text.split("## Roster")[1]  # reviewers are not offered work
    feedback = second.messages[-1].content[0]
    assert isinstance(feedback, ToolResultBlock) and feedback.is_error and feedback.tool_use_id == "toolu_1"
    assert "unknown agent 'frontend'" in feedback.content
    assert [e.type for e in events if e.type.startswith("plan")] == ["plan_invalid"]


def test_still_invalid_after_retry_raises_run_error_with_errors(repo: Path) -> None:
    model = _PlannerModel([None, {"tasks": [_task("a", deps=["b"]), _task("b", deps=["a"])]}])
    with pytest.raises(RunError) as info:
        asyncio.run(_plan(repo, model, lambda e: None))
    assert "dependency cycle: a -> b -> a" in str(info.value)
    assert len(model.requests) == 2  # exactly one retry
    # no tool call the first time: the feedback is a plain user message saying so, and the retry is forced
    assert "did not call submit_plan" in model.requests[1].messages[-1].content[0].text  # type: ignore[union-attr]
    assert model.requests[1].tool_choice == "submit_plan"


def test_submit_plan_is_forced_on_the_last_turn_and_once_more_to_fix_it(repo: Path) -> None:
    reads = [("read", "README.md")] * 2
    model = _PlannerModel([*reads, {"tasks": [_task("a", "frontend")]}, {"tasks": [_task("a")]}])
    events: list[Event] = []
    plan = asyncio.run(_plan(repo, model, events.append, plan_turns=3))
    assert plan.ids == ["a"]
    assert [r.tool_choice for r in model.requests] == [None, None, "submit_plan", "submit_plan"]
    read = model.requests[1].messages[-1].content[0]
    assert isinstance(read, ToolResultBlock) and "# demo" in read.content  # it read the file at the commit
    kinds = [(e.type, getattr(e, "name", None)) for e in events if e.type in ("agent.tool_call", "plan_invalid")]
    assert kinds == [
        ("agent.tool_call", "read_file"),
        ("agent.tool_call", "read_file"),
        ("plan_invalid", None),
        ("agent.tool_call", "submit_plan"),
        ("agent.tool_call", "submit_plan"),
    ]
    assert {e.task for e in events if e.type.startswith("agent.")} == {"plan"}
    assert git(repo, "worktree", "list").count("\n") == 1  # the lead's view is gone
    assert "squad/" not in git(repo, "branch", "--list")  # and it never made a branch


def test_coordinator_model_setting_wins_for_planning(repo: Path) -> None:
    seen: list[str] = []
    model = _PlannerModel([{"tasks": [_task("a")]}])
    settings = Settings.model_validate({"models": {"coordinator": "claude-opus-x"}})
    coord = Coordinator(RunConfig.build(repo, settings, _team()), model_factory=lambda n, r: seen.append(n) or model)
    asyncio.run(coord.plan("x"))
    assert seen == ["claude-opus-x"]


def test_plan_waves_group_tasks_by_dependency_level() -> None:
    plan, errors = validate_plan(
        {"tasks": [_task("a"), _task("b", deps=["a"]), _task("c"), _task("d", deps=["b", "c"])]}, _team()
    )
    assert plan is not None, errors
    assert plan.waves() == [["a", "c"], ["b"], ["d"]]


def test_unlimited_plan_turns_force_nothing(repo: Path) -> None:
    model = _PlannerModel([("read", "README.md")] * 9 + [{"tasks": [_task("a")]}])
    plan = asyncio.run(_plan(repo, model, lambda e: None, plan_turns=0))
    assert plan.ids == ["a"] and len(model.requests) == 10  # past the default 8: 0 means unlimited
    assert {r.tool_choice for r in model.requests} == {None}
    assert "no fixed number of turns" in model.requests[0].system[-1].text
