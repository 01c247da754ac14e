"""Team tools: read_decisions, record_decision, finish, submit_verdict.

The ledger module is imported inside the tools, so the rest of the toolbox works (and imports fast)
without it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from squad.agents.tools.base import Args, BaseTool, ToolContext, ToolError, ToolResult
from squad.domain.plan import PlannedTask
from squad.domain.review import SubmittedVerdict

READ_DECISIONS_MAX = 100
DECISION_FIELD_CHARS = 1500


class ReadDecisionsArgs(Args):
    query: str | None = Field(None, description="Only decisions whose title, text, tags or id contain this text.")
    agent: str | None = Field(None, description="Only decisions recorded by this agent.")
    status: Literal["active", "superseded", "all"] = Field(
        "all", description="'active', 'superseded' (replaced by a later decision) or 'all'."
    )
    limit: int = Field(20, ge=1, le=READ_DECISIONS_MAX, description="Maximum number of decisions to show.")


class ReadDecisions(BaseTool):
    name = "read_decisions"
    description = (
        "Read the team's decisions ledger (the repository's decisions/ plus this run's new entries): "
        "active first, newest first, each with id, date, agent, status, context, decision and consequences."
    )
    Args = ReadDecisionsArgs
    blocking = True

    def run(self, args: ReadDecisionsArgs, ctx: ToolContext) -> ToolResult:
        from squad.infra.ledger import Ledger, parse_text

        ledger = Ledger(ctx.worktree)
        parsed = ledger.parse()
        by_id = {e.id: e for e in parsed.entries}
        problems = list(parsed.problems)
        if ctx.ledger_file is not None and ctx.ledger_file.is_file():
            run_parsed = parse_text(ctx.ledger_file.read_text(encoding="utf-8", errors="replace"), ctx.ledger_file)
            by_id.update({e.id: e for e in run_parsed.entries})
            problems.extend(run_parsed.problems)
        entries = list(by_id.values())
        status = ledger.status(entries)
        superseded_by: dict[str, list[str]] = {}
        for entry in entries:
            for old in entry.supersedes:
                superseded_by.setdefault(old, []).append(entry.id)

        wanted = []
        needle = (args.query or "").lower()
        for entry in entries:
            if args.status != "all" and status[entry.id] != args.status:
                continue
            if args.agent and entry.agent != args.agent:
                continue
            if needle:
                hay = " ".join([entry.id, entry.title, entry.context, entry.decision, entry.consequences, *entry.tags])
                if needle not in hay.lower():
                    continue
            wanted.append(entry)
        wanted.sort(key=lambda e: (e.date, e.id), reverse=True)
        wanted.sort(key=lambda e: status[e.id] != "active")

        n_active = sum(1 for s in status.values() if s == "active")
        lines = [f"{len(wanted)} of {len(entries)} decisions match ({n_active} active in the ledger)."]
        if problems:
            lines.append(f"({len(problems)} ledger problem(s) skipped, e.g. {problems[0]})")
        for entry in wanted[: args.limit]:
            meta = [entry.id, entry.date, f"agent {entry.agent or '-'}", status[entry.id]]
            if entry.id in superseded_by:
                meta.append("superseded by " + ", ".join(superseded_by[entry.id]))
            if entry.supersedes:
                meta.append("supersedes " + ", ".join(entry.supersedes))
            if entry.tags:
                meta.append("tags " + ", ".join(entry.tags))
            lines += ["", f"## {entry.title}", " · ".join(meta)]
            for label, text in (
                ("Context", entry.context),
                ("Decision", entry.decision),
                ("Consequences", entry.consequences),
            ):
                if text.strip():
                    lines.append(f"{label}: {_cut(text.strip())}")
        if len(wanted) > args.limit:
            lines += ["", f"[{len(wanted) - args.limit} more; raise limit or filter with query/agent/status]"]
        return ToolResult("\n".join(lines), data={"count": len(wanted)})


def _cut(text: str) -> str:
    return text if len(text) <= DECISION_FIELD_CHARS else text[:DECISION_FIELD_CHARS] + " [...]"


class RecordDecisionArgs(Args):
    title: str = Field(min_length=1, max_length=200, description="Short title of the decision.")
    decision: str = Field(min_length=1, description="What was decided.")
    context: str = Field("", description="Why it came up: the problem and forces at play.")
    consequences: str = Field("", description="What follows: trade-offs, follow-ups, what others must do.")
    supersedes: list[str] = Field(default_factory=list, description="Ids of earlier decisions this one replaces.")
    tags: list[str] = Field(default_factory=list, description="Short topic tags, e.g. ['api', 'auth'].")


class RecordDecision(BaseTool):
    name = "record_decision"
    description = (
        "Record a decision in the team's ledger so the other agents and the humans reviewing the work see it. "
        "To change an earlier decision, record a new one that supersedes its id. Returns the new id."
    )
    Args = RecordDecisionArgs
    blocking = True  # waits on the ledger's file lock

    def run(self, args: RecordDecisionArgs, ctx: ToolContext) -> ToolResult:
        if ctx.ledger_file is None:
            raise ToolError("this session has no decisions ledger to record into; mention the decision in finish")
        from squad.infra.ledger import Ledger

        entry = Ledger(ctx.worktree).append(
            ctx.ledger_file,
            title=args.title,
            decision=args.decision,
            context=args.context,
            consequences=args.consequences,
            agent=ctx.agent,
            run=ctx.run_id,
            supersedes=tuple(args.supersedes),
            tags=tuple(args.tags),
        )
        return ToolResult(f"recorded decision {entry.id}: {entry.title}", data={"id": entry.id})


class FinishArgs(Args):
    summary: str = Field(min_length=1, description="What you did, what changed, and anything left open.")


class Finish(BaseTool):
    name = "finish"
    description = "End your task with a summary of what you did. Call it once, when the work is complete."
    Args = FinishArgs

    def run(self, args: FinishArgs, ctx: ToolContext) -> ToolResult:
        return ToolResult("finished", finished=True, data={"summary": args.summary})


# The review domain's schema (one Finding shape, one severity scale); its docstring is what the model reads.
class SubmitVerdictArgs(SubmittedVerdict, Args):
    """Your verdict on the work."""


class SubmitVerdict(BaseTool):
    name = "submit_verdict"
    description = "Reviewers only: end the review with a verdict (approve or reject), a summary and findings."
    Args = SubmitVerdictArgs

    def run(self, args: SubmitVerdictArgs, ctx: ToolContext) -> ToolResult:
        data: dict[str, Any] = {
            "verdict": args.verdict,
            "summary": args.summary,
            "findings": [f.model_dump(exclude_none=True) for f in args.findings],
        }
        return ToolResult(f"verdict submitted: {args.verdict}", finished=True, data=data)


class SubmitPlanArgs(Args):
    tasks: list[PlannedTask] = Field(min_length=1, description="The tasks; independent ones run in parallel.")


class SubmitPlan(BaseTool):
    """The lead's planning tool. It is in every agent's tool list only so the planning call sends the same
    cached prefix (tools + context pack) as the specialists and warms the prompt cache for all of them; the
    coordinator reads the call itself, and no agent may execute it (it is never in `allowed`)."""

    name = "submit_plan"
    description = (
        "Submit the plan: the tasks the team will do. Each task goes to one specialist (by name) and may "
        "depend on other tasks by id; independent tasks run in parallel. Only the lead uses this, when planning."
    )
    Args = SubmitPlanArgs

    def run(self, args: SubmitPlanArgs, ctx: ToolContext) -> ToolResult:
        return ToolResult("submit_plan is only for the lead's planning step; finish your own task instead.", True)
