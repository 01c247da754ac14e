"""The project's test command, run the way the `run` tool runs commands (one runner: squad.infra.process)."""

from __future__ import annotations

from pathlib import Path

from squad.agents.tools.shell import parse_command
from squad.config import Settings
from squad.domain.review import TestResult
from squad.errors import SquadError
from squad.infra.process import run_command

#: Characters of test output kept for the reviewer's prompt and the journal.
MAX_TEST_OUTPUT_CHARS = 12_000


async def run_tests(command: str, cwd: Path, settings: Settings) -> TestResult:
    """Run the test command in `cwd`: scrubbed of secrets, no stdin, its own process group (killed on timeout
    and on cancellation, so Ctrl-C never waits for it), bounded output. Never raises for the command's sake:
    a command that cannot start is a result with no exit code."""
    try:
        outcome = await run_command(
            parse_command(command),
            cwd=cwd,
            timeout_s=settings.commands.timeout_s,
            max_output_bytes=settings.commands.max_output_bytes,
        )
    except SquadError as exc:
        return TestResult(command=command, exit_code=None, output=f"could not run {command!r}: {exc.message}")
    text = outcome.output.text(MAX_TEST_OUTPUT_CHARS)
    if outcome.timed_out:
        note = f"\n(timed out after {settings.commands.timeout_s:g}s)"
        return TestResult(command=command, exit_code=None, output=text + note, timed_out=True)
    return TestResult(command=command, exit_code=outcome.exit_code, output=text)
