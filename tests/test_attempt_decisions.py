"""An attempt's decisions wait in its own file and join the run ledger only once its work is committed.

Against the real ledger and the real tools: record_decision during an attempt writes the attempt file, read_decisions
shows the run's kept decisions and the attempt's own, and `keep_attempt` is idempotent (a resume repeats it).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tools_support import call, make_ctx

from squad.agents.tools import ToolContext
from squad.infra import ledger as decisions

RUN = "20261122-063000-abcd"


@pytest.fixture
def ctx(repo: Path) -> ToolContext:
    run_dir = repo / ".squad" / "runs" / RUN
    (run_dir / "attempts").mkdir(parents=True)
    return make_ctx(repo, ledger_file=run_dir / "ledger.md", attempt_ledger=run_dir / "attempts" / "t1.r0.md")


def _record(ctx: ToolContext, title: str, **extra: object) -> str:
    result = call(ctx, "record_decision", {"title": title, "decision": f"{title}.", **extra})
    assert not result.is_error, result.content
    assert result.data is not None
    return str(result.data["id"])


def test_an_attempts_decisions_wait_in_its_own_file(ctx: ToolContext) -> None:
    assert ctx.attempt_ledger is not None and ctx.ledger_file is not None
    entry_id = _record(ctx, "Use SQLite")
    assert not ctx.ledger_file.exists()  # nothing counts until the attempt's work is committed
    (entry,) = decisions.attempt_entries(ctx.attempt_ledger)
    assert (entry.id, entry.title, entry.agent, entry.run) == (entry_id, "Use SQLite", "backend", RUN)
    shown = call(ctx, "read_decisions", {}).content
    assert entry_id in shown  # the agent sees what it recorded


def test_keeping_an_attempt_copies_its_entries_once_byte_for_byte(ctx: ToolContext, repo: Path) -> None:
    assert ctx.attempt_ledger is not None and ctx.ledger_file is not None
    first, second = _record(ctx, "Use SQLite"), _record(ctx, "Port 8080")
    attempt_text = ctx.attempt_ledger.read_text(encoding="utf-8")

    kept = decisions.keep_attempt(repo, ctx.attempt_ledger, ctx.ledger_file)
    assert [e.id for e in kept] == [first, second]
    assert not ctx.attempt_ledger.exists()
    assert ctx.ledger_file.read_text(encoding="utf-8") == attempt_text  # same header, entries, ids and dates

    # a resume repeats the keep (killed before the attempt file was removed): nothing is added twice
    ctx.attempt_ledger.write_text(attempt_text, encoding="utf-8")
    assert decisions.keep_attempt(repo, ctx.attempt_ledger, ctx.ledger_file) == []
    assert ctx.ledger_file.read_text(encoding="utf-8") == attempt_text
    assert not ctx.attempt_ledger.exists()
    assert decisions.keep_attempt(repo, ctx.attempt_ledger, ctx.ledger_file) == []  # no attempt file: nothing


def test_a_second_attempt_appends_after_the_kept_entries(ctx: ToolContext, repo: Path) -> None:
    assert ctx.attempt_ledger is not None and ctx.ledger_file is not None
    first = _record(ctx, "Use SQLite")
    decisions.keep_attempt(repo, ctx.attempt_ledger, ctx.ledger_file)
    other = make_ctx(repo, ledger_file=ctx.ledger_file, attempt_ledger=ctx.attempt_ledger.with_name("t2.r0.md"))
    # superseding a kept decision of the run from another attempt is allowed
    second = _record(other, "Use Postgres", supersedes=[first])
    assert other.attempt_ledger is not None
    decisions.keep_attempt(repo, other.attempt_ledger, ctx.ledger_file)
    parsed = decisions.parse_text(ctx.ledger_file.read_text(encoding="utf-8"), ctx.ledger_file)
    assert parsed.problems == []
    assert [(e.id, e.supersedes) for e in parsed.entries] == [(first, ()), (second, (first,))]
    assert ctx.ledger_file.read_text(encoding="utf-8").count("# Decisions — ") == 1


def test_a_dropped_attempts_decisions_are_gone_and_a_bad_supersedes_is_refused(ctx: ToolContext) -> None:
    assert ctx.attempt_ledger is not None and ctx.ledger_file is not None
    _record(ctx, "Half-made choice")
    result = call(ctx, "record_decision", {"title": "x", "decision": "y", "supersedes": ["01JD0000000000000000000009"]})
    assert result.is_error and "supersedes unknown id(s): 01JD0000000000000000000009" in result.content
    dropped = decisions.drop_attempt(ctx.attempt_ledger)
    assert [e.title for e in dropped] == ["Half-made choice"]
    assert not ctx.attempt_ledger.exists() and not ctx.ledger_file.exists()
    assert decisions.drop_attempt(ctx.attempt_ledger) == []
    # an append killed before its rename leaves only its temp file, removed on resume
    stale = ctx.attempt_ledger.with_name(f".{ctx.attempt_ledger.name}.k1ll3d.tmp")
    stale.write_text("## half", encoding="utf-8")
    decisions.remove_temp_files(ctx.attempt_ledger.parent)
    assert list(ctx.attempt_ledger.parent.iterdir()) == []
