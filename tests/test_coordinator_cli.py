"""`squad log`, `squad cost`, `squad runs` on a recorded journal, and the live view's rendering."""

from __future__ import annotations

import io
import json
from pathlib import Path

from click.testing import CliRunner
from rich.console import Console

from squad.cli.journal import cost, log, runs
from squad.cli.run import _LiveView
from squad.domain.events import parse_event
from squad.infra.journal import Journal

RUN = "20261122-063107-a1b2"


class _Recorder:
    """Journals plain event dicts the way a run writes them (typed, through the journal)."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def emit(self, record: dict[str, object]) -> None:
        self.journal.emit(parse_event(record))


def _record(root: Path) -> Journal:
    journal = Journal(root, RUN).create()
    j = _Recorder(journal)
    j.emit({"type": "run_started", "run": RUN, "task_text": "add health", "base_commit": "abc123"})
    j.emit({"type": "plan", "tasks": [{"id": "api", "agent": "backend", "depends_on": []}]})
    j.emit({"type": "task_started", "task": "api", "agent": "backend", "round": 0, "branch": f"squad/{RUN}--api"})
    j.emit({"type": "agent.tool_call", "agent": "backend", "task": "api", "name": "write_file", "turn": 1})
    j.emit({"type": "task_committed", "task": "api", "agent": "backend", "commit": "c1"})
    j.emit({"type": "review_started", "task": "api", "reviewer": "reviewer"})
    for usage, cost_usd in (
        ({"input_tokens": 100, "output_tokens": 50, "cache_creation_input_tokens": 900}, 0.01),
        ({"input_tokens": 20, "output_tokens": 10, "cache_read_input_tokens": 900}, 0.002),
    ):
        j.emit(
            {
                "type": "model_call",
                "agent": "backend",
                "task": "api",
                "model": "claude-x",
                "usage": usage,
                "cost_usd": cost_usd,
            }
        )
    j.emit(
        {
            "type": "verdict",
            "task": "api",
            "reviewer": "reviewer",
            "round": 0,
            "verdict": "approve",
            "summary": "fine",
            "findings": [],
        }
    )
    j.emit({"type": "run_finished", "status": "done"})
    return journal


def test_log_cost_runs_read_the_journal(repo: Path) -> None:
    _record(repo)
    with (repo / ".squad" / "runs" / RUN / "events.jsonl").open("ab") as fh:
        fh.write(b'{"ts": 1, "type": "tor')  # a torn last line is reported, never fatal
    runner = CliRunner()
    out = runner.invoke(log, [])
    assert out.exit_code == 0, out.output
    assert f"run {RUN}" in out.output and "verdict reviewer api APPROVE round 0" in out.output
    assert "tool_call" not in out.output  # agent chatter only with --all
    assert "agent.tool_call backend api" in runner.invoke(log, [RUN, "--all"]).output
    assert "warning:" in out.output and "events.jsonl:11" in out.output

    data = json.loads(_json(runner, cost))
    total = data["total"]
    assert (total["calls"], total["input_tokens"], total["cache_read_tokens"]) == (2, 120, 900)
    assert total["cache_hit_rate"] == round(900 / (120 + 900 + 900), 4)
    table = runner.invoke(cost, [RUN]).output
    assert "backend" in table and "claude-x" in table and "$0.0120" in table

    listed = json.loads(_json(runner, runs))
    assert listed[0]["run"] == RUN and listed[0]["status"] == "done" and listed[0]["cost_usd"] == 0.012
    plain = runner.invoke(runs, []).stdout.splitlines()  # not a tty: one tab-separated line per run, nothing cut
    fields = plain[-1].split("\t")
    assert fields[0] == RUN and fields[2:4] == ["done", "$0.0120"]


def _json(runner: CliRunner, command: object) -> str:
    result = runner.invoke(command, ["--json"])  # type: ignore[arg-type]
    assert result.exit_code == 0, result.output
    # warnings go to stderr; CliRunner mixes them in only when asked, so stdout is pure JSON
    return result.stdout


def test_log_of_unknown_run_is_a_usage_error(repo: Path) -> None:
    out = CliRunner().invoke(log, ["20990101-000000-none"])
    assert out.exit_code != 0 and "no run" in str(out.exception)


def test_live_view_tracks_each_agent() -> None:
    buf = io.StringIO()
    view = _LiveView(Console(file=buf, width=140, force_terminal=False))
    for record in (
        {"type": "plan", "tasks": [{"id": "api", "agent": "backend"}]},
        {"type": "task_started", "task": "api", "agent": "backend", "round": 0},
        {"type": "model_call", "agent": "backend", "usage": {"input_tokens": 10, "output_tokens": 5}, "cost_usd": 0.5},
        {"type": "agent.tool_call", "agent": "backend", "name": "write_file"},
        {"type": "task_committed", "task": "api", "agent": "backend"},
        {"type": "review_started", "task": "api", "reviewer": "reviewer [bold]x[/]"},
    ):
        view(parse_event(record))
    row = view.state.agents["backend"]
    assert (row.state, row.task, row.turns, row.spend.input_tokens, row.spend.output_tokens, row.last_tool) == (
        "done, in review",
        "api",
        1,
        10,
        5,
        "write_file",
    )
    assert view.state.agents["reviewer [bold]x[/]"].state == "reviewing"
    Console(file=buf, width=140).print(view._render())
    text = buf.getvalue()
    assert "backend" in text and "write_file" in text and "$0.5000" in text
    assert "reviewer [bold]x[/]" in text  # names are data, not markup
