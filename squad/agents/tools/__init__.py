"""The tools agents use: jailed file access, search, allow-listed commands, the ledger, finish/verdict.

Public interface (see BRIEF "squad.agents.tools"): `ToolContext`, `ToolResult`, `Tool`, `Toolbox`,
`default_toolbox()`, `allowed_tools(charter)`, plus `scrubbed_env()` for any subprocess an agent
can influence and the jail (`resolve`, `JailError`) for code that takes model-supplied paths.
"""

from __future__ import annotations

from squad.agents.tools.base import (
    MAX_RESULT_CHARS,
    Args,
    BaseTool,
    Tool,
    Toolbox,
    ToolContext,
    ToolError,
    ToolResult,
    clean_schema,
)
from squad.agents.tools.fs import Diff, EditFile, ListFiles, ReadFile, WriteFile
from squad.agents.tools.jail import JailedPath, JailError, resolve
from squad.agents.tools.search import Search
from squad.agents.tools.shell import Run
from squad.agents.tools.team import Finish, ReadDecisions, RecordDecision, SubmitPlan, SubmitVerdict
from squad.config import TOOL_GROUPS, Charter
from squad.infra.env import scrubbed_env

#: Only reviewers may end their session with a verdict.
REVIEWER_TOOLS = frozenset({"submit_verdict"})
#: The tools that only read: all a reviewer may run besides its verdict.
READ_TOOLS = frozenset(TOOL_GROUPS["read"])


def default_toolbox() -> Toolbox:
    """Every standard tool. The same toolbox (and so the same sorted specs) serves every agent of a run."""
    return Toolbox(
        [
            Diff(),
            EditFile(),
            Finish(),
            ListFiles(),
            ReadDecisions(),
            ReadFile(),
            RecordDecision(),
            Run(),
            Search(),
            SubmitPlan(),
            SubmitVerdict(),
            WriteFile(),
        ]
    )


def allowed_tools(charter: Charter) -> frozenset[str]:
    """The tools this agent may execute: its charter's (groups expanded, finish always), + submit_verdict
    for reviewers."""
    names = frozenset(charter.tool_names())
    return names | REVIEWER_TOOLS if charter.reviewer else names


def review_tools(charter: Charter) -> frozenset[str]:
    """What a reviewer may execute, in a run and in the Action alike: the read tools its charter has, and
    `submit_verdict`. Never a writing tool, whatever the charter says."""
    return (frozenset(charter.tool_names()) & READ_TOOLS) | REVIEWER_TOOLS


__all__ = [
    "MAX_RESULT_CHARS",
    "READ_TOOLS",
    "REVIEWER_TOOLS",
    "Args",
    "BaseTool",
    "Diff",
    "EditFile",
    "Finish",
    "JailError",
    "JailedPath",
    "ListFiles",
    "ReadDecisions",
    "ReadFile",
    "RecordDecision",
    "Run",
    "Search",
    "SubmitPlan",
    "SubmitVerdict",
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolResult",
    "Toolbox",
    "WriteFile",
    "allowed_tools",
    "clean_schema",
    "default_toolbox",
    "resolve",
    "review_tools",
    "scrubbed_env",
]
