"""record_decision and read_decisions against the real ledger."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tools_support import call, make_ctx

from squad.agents.tools import default_toolbox
from squad.infra import ledger as decisions


@pytest.fixture
def ctx(repo: Path):  # type: ignore[no-untyped-def]
    ledger_file = repo / ".squad" / "runs" / "20261122-063000-abcd" / "ledger.md"
    ledger_file.parent.mkdir(parents=True)
    return make_ctx(repo, ledger_file=ledger_file)


def test_record_decision_appends_to_the_run_ledger_and_returns_the_id(ctx) -> None:  # type: ignore[no-untyped-def]
    result = call(
        ctx,
        "record_decision",
        {
            "title": "Use SQLite for the cache",
            "decision": "SQLite, one file per worktree.",
            "context": "We need a local cache.",
            "consequences": "No server to run.",
            "tags": ["cache"],
        },
    )
    assert not result.is_error, result.content
    assert result.data is not None
    entry_id = result.data["id"]
    assert decisions.is_ulid(entry_id) and entry_id in result.content
    parsed = decisions.parse_text(ctx.ledger_file.read_text(encoding="utf-8"), ctx.ledger_file)
    assert parsed.problems == []
    (entry,) = parsed.entries
    assert (entry.id, entry.title, entry.agent, entry.run) == (
        entry_id,
        "Use SQLite for the cache",
        "backend",
        "20261122-063000-abcd",
    )
    assert entry.decision == "SQLite, one file per worktree." and entry.tags == ("cache",)


def test_superseding_and_reading_back_with_filters(ctx) -> None:  # type: ignore[no-untyped-def]
    first = call(ctx, "record_decision", {"title": "Port 8000", "decision": "Serve on 8000."}).data
    assert first is not None
    second = call(
        ctx,
        "record_decision",
        {"title": "Port 8080", "decision": "Serve on 8080.", "supersedes": [first["id"]]},
    ).data
    assert second is not None
    other = make_ctx(ctx.worktree, ledger_file=ctx.ledger_file, agent="frontend")
    call(other, "record_decision", {"title": "Use htmx", "decision": "No SPA framework."})

    everything = call(ctx, "read_decisions", {})
    assert everything.content.startswith("3 of 3 decisions match (2 active in the ledger).")
    text = everything.content
    assert text.index("## Use htmx") < text.index("## Port 8080") < text.index("## Port 8000")  # active, newest first
    assert f"superseded by {second['id']}" in text and f"supersedes {first['id']}" in text

    active = call(ctx, "read_decisions", {"status": "active"}).content
    assert "## Port 8000" not in active and "## Port 8080" in active
    by_agent = call(ctx, "read_decisions", {"agent": "frontend"}).content
    assert "## Use htmx" in by_agent and "Port" not in by_agent
    query = call(ctx, "read_decisions", {"query": "8080"}).content
    assert query.startswith("1 of 3") and "Serve on 8080." in query
    limited = call(ctx, "read_decisions", {"limit": 1}).content
    assert "[2 more; raise limit" in limited


def test_read_decisions_includes_the_committed_ledger(ctx) -> None:  # type: ignore[no-untyped-def]
    ledger = decisions.Ledger(ctx.worktree)
    landed = ledger.append(ledger.run_file("20261101-120000-zzzz"), title="Old choice", decision="Kept.", agent="lead")
    result = call(ctx, "read_decisions", {"query": "old choice"})
    assert landed.id in result.content and "agent lead" in result.content


def test_bad_supersedes_is_a_tool_error_and_writes_nothing(ctx) -> None:  # type: ignore[no-untyped-def]
    result = call(ctx, "record_decision", {"title": "t", "decision": "d", "supersedes": ["01JD000000000000000000000X"]})
    assert result.is_error
    assert not ctx.ledger_file.exists() or "## t" not in ctx.ledger_file.read_text()


def test_concurrent_agents_record_without_losing_entries(ctx) -> None:  # type: ignore[no-untyped-def]
    toolbox = default_toolbox()

    async def many() -> list:
        calls = [
            toolbox.call("record_decision", {"title": f"Decision {i}", "decision": f"Body {i}."}, ctx) for i in range(8)
        ]
        return await asyncio.gather(*calls)

    results = asyncio.run(many())
    assert all(not r.is_error for r in results), [r.content for r in results]
    parsed = decisions.parse_text(ctx.ledger_file.read_text(encoding="utf-8"), ctx.ledger_file)
    assert sorted(e.title for e in parsed.entries) == sorted(f"Decision {i}" for i in range(8))
    assert parsed.problems == []
