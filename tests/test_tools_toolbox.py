"""Toolbox: stable sorted specs, permission checks, argument validation, never raising, result caps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from tools_support import call, make_ctx

from squad.agents.tools import Args, BaseTool, Tool, Toolbox, ToolContext, ToolResult, allowed_tools, default_toolbox
from squad.config import Charter

EXPECTED = [
    "diff",
    "edit_file",
    "finish",
    "list_files",
    "read_decisions",
    "read_file",
    "record_decision",
    "run",
    "search",
    "submit_plan",
    "submit_verdict",
    "write_file",
]

SPECS_JSON = (
    "import json; from dataclasses import asdict; from squad.agents.tools import default_toolbox; "
    "print(json.dumps([asdict(s) for s in default_toolbox().specs()]))"
)


def walk(node: Any) -> Any:
    """Every schema node (not the name maps under `properties`, where 'title' is a legit argument name)."""
    if isinstance(node, dict):
        yield node
        for key, value in node.items():
            children = value.values() if key == "properties" else [value]
            for child in children:
                yield from walk(child)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def test_specs_are_sorted_complete_and_clean() -> None:
    specs = default_toolbox().specs()
    assert [s.name for s in specs] == EXPECTED
    for spec in specs:
        schema = spec.input_schema
        assert schema["type"] == "object" and schema["additionalProperties"] is False
        assert spec.description and len(spec.description) < 400
        for node in walk(schema):
            assert not {"$ref", "$defs", "title"} & set(node), (spec.name, node)
            assert {"type": "null"} not in node.get("anyOf", [])
    record = next(s for s in specs if s.name == "record_decision").input_schema
    assert record["properties"]["title"]["type"] == "string"  # an argument called `title` survives the cleaning
    verdict = next(s for s in specs if s.name == "submit_verdict").input_schema
    finding = verdict["properties"]["findings"]["items"]
    assert finding["properties"]["severity"]["enum"] == ["blocking", "major", "minor"]
    assert finding["additionalProperties"] is False and finding["required"] == ["file", "severity", "message"]


def test_specs_are_byte_stable_across_processes() -> None:
    """The tool list is part of the cached prompt prefix: it must serialize identically every time."""
    here = json.dumps([asdict(s) for s in default_toolbox().specs()])
    assert here == json.dumps([asdict(s) for s in default_toolbox().specs()])
    outputs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        proc = subprocess.run([sys.executable, "-c", SPECS_JSON], capture_output=True, text=True, env=env, check=True)
        outputs.add(proc.stdout.strip())
    assert outputs == {here}


def test_every_tool_satisfies_the_protocol() -> None:
    for spec in default_toolbox().specs():
        assert spec.name in EXPECTED
    assert all(isinstance(t, Tool) for t in [*default_toolbox()._tools.values()])


def test_allowed_tools_from_charters() -> None:
    worker = Charter(name="backend", role="builds", tools=["read", "write"])
    assert allowed_tools(worker) == frozenset(
        ["diff", "edit_file", "finish", "list_files", "read_decisions", "read_file", "search", "write_file"]
    )
    reviewer = Charter(name="reviewer", role="reviews", tools=["read"], reviewer=True)
    assert "submit_verdict" in allowed_tools(reviewer) and "write_file" not in allowed_tools(reviewer)
    # a charter that names no tools (a reviewer's, say) gets read-only tools and the team tools, nothing more
    default = allowed_tools(Charter(name="reviewer", role="reviews", reviewer=True))
    assert default == frozenset(
        ["diff", "finish", "list_files", "read_decisions", "read_file", "record_decision", "search", "submit_verdict"]
    )


def test_a_tool_outside_the_charter_is_refused_and_not_run(repo: Path) -> None:
    ctx = make_ctx(repo, allowed=allowed_tools(Charter(name="reader", role="reads", tools=["read"])))
    result = call(ctx, "write_file", {"path": "x.txt", "content": "x"})
    assert result.is_error and "not allowed for agent 'backend'" in result.content
    assert "read_file" in result.content and "write_file" not in result.content.split("your tools are:")[1]
    assert not (repo / "x.txt").exists()
    unknown = call(ctx, "rm_rf", {})
    assert unknown.is_error and "unknown tool 'rm_rf'" in unknown.content and "list_files" in unknown.content


@pytest.mark.parametrize(
    ("name", "args", "expected"),
    [
        ("read_file", {}, "- path: required argument is missing"),
        ("read_file", {"path": 3}, "- path: Input should be a valid string (got 3)"),
        ("read_file", {"path": "a", "start_line": "two"}, "- start_line: Input should be a valid integer"),
        ("read_file", {"path": "a", "lines": "1-5"}, "- lines: unknown argument"),
        ("run", {"command": 42}, "- command"),
        ("submit_verdict", {"verdict": "maybe", "summary": "s"}, "- verdict: Input should be 'approve' or 'reject'"),
        (
            "submit_verdict",
            {"verdict": "reject", "summary": "s", "findings": [{"file": "a", "severity": "huge", "message": "m"}]},
            "- findings.0.severity:",
        ),
        ("edit_file", {"path": "a", "old": "", "new": "x"}, "- old: String should have at least 1 character"),
    ],
)
def test_invalid_arguments_come_back_as_tool_errors(repo: Path, name: str, args: dict, expected: str) -> None:
    result = call(make_ctx(repo), name, args)
    assert result.is_error
    assert result.content.startswith(f"invalid arguments for {name}:")
    assert expected in result.content


def test_non_object_arguments_are_a_tool_error(repo: Path) -> None:
    result = call(make_ctx(repo), "read_file", ["README.md"])
    assert result.is_error and "must be a JSON object" in result.content


class _Boom(BaseTool):
    name = "boom"
    description = "Raises."

    class Args(Args):
        pass

    def run(self, args: Any, ctx: ToolContext) -> ToolResult:
        raise RuntimeError("kaput")


class _Chatty(BaseTool):
    name = "chatty"
    description = "Returns a lot."

    class Args(Args):
        size: int

    def run(self, args: Any, ctx: ToolContext) -> ToolResult:
        return ToolResult("H" * 100 + "x" * args.size + "T" * 100, data={"kept": True})


def test_call_never_raises_on_a_tool_bug(repo: Path) -> None:
    toolbox = Toolbox([_Boom()])
    result = call(make_ctx(repo, allowed=frozenset({"boom"})), "boom", {}, toolbox)
    assert result.is_error and result.content == "boom failed: RuntimeError: kaput"


def test_long_results_are_cut_with_a_notice(repo: Path) -> None:
    toolbox = Toolbox([_Chatty()], max_result_chars=1000)
    ctx = make_ctx(repo, allowed=frozenset({"chatty"}))
    short = call(ctx, "chatty", {"size": 10}, toolbox)
    assert short.content == "H" * 100 + "x" * 10 + "T" * 100
    long = call(ctx, "chatty", {"size": 50_000}, toolbox)
    assert long.content.startswith("H" * 100) and long.content.endswith("T" * 100)
    assert "characters omitted" in long.content and "start_line/end_line" in long.content
    assert len(long.content) < 1000 + 400 and long.data == {"kept": True}


def test_duplicate_tool_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="two tools named 'boom'"):
        Toolbox([_Boom(), _Boom()])


def test_finish_and_submit_verdict_end_the_session(repo: Path) -> None:
    ctx = make_ctx(repo)
    done = call(ctx, "finish", {"summary": "Added /health"})
    assert done.finished and done.data == {"summary": "Added /health"} and not done.is_error
    verdict = call(
        ctx,
        "submit_verdict",
        {
            "verdict": "reject",
            "summary": "Missing tests",
            "findings": [{"file": "app.py", "line": 3, "severity": "blocking", "message": "no test"}],
        },
    )
    assert verdict.finished and verdict.data == {
        "verdict": "reject",
        "summary": "Missing tests",
        "findings": [{"file": "app.py", "line": 3, "severity": "blocking", "message": "no test"}],
    }
    no_ledger = call(ctx, "record_decision", {"title": "t", "decision": "d"})
    assert no_ledger.is_error and "no decisions ledger" in no_ledger.content


def test_replacing_keeps_the_offered_specs_and_refuses_a_different_one() -> None:
    from squad.agents.tools import SubmitPlan

    class Quiet(SubmitPlan):
        async def execute(self, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
            return ToolResult("mine", finished=True)

    box = default_toolbox()
    replaced = box.replacing(Quiet())
    assert replaced.specs() == box.specs()  # the shared prefix does not move

    class Other(BaseTool):
        name = "submit_plan"
        description = "something else"
        Args = Args

    with pytest.raises(ValueError, match="same spec"):
        box.replacing(Other())
