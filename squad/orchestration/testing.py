"""The project's test command, run the way the `run` tool runs commands (one runner: squad.infra.process).

For pytest the run also asks for a junit XML report (written to the run folder, never the worktree), so a
failing run can say WHICH tests fail: that is how a run allowed to start on a failing baseline tells new
failures from old ones.
"""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

from squad.agents.tools.commands import parse_command
from squad.config import Settings
from squad.domain.events import TestsRan
from squad.domain.review import TestResult
from squad.errors import SquadError
from squad.infra.process import run_command
from squad.orchestration.worktrees import make_ready

if TYPE_CHECKING:
    from squad.infra.workspace import Lease
    from squad.orchestration.context import RunContext

#: Characters of test output kept for the reviewer's prompt and the journal.
MAX_TEST_OUTPUT_CHARS = 12_000


def is_pytest(argv: list[str]) -> bool:
    """`pytest ...`, `py.test ...` or `<python> [-flags] -m pytest ...`."""
    if not argv:
        return False
    if PurePath(argv[0]).name in ("pytest", "py.test"):
        return True
    rest = argv[1:]
    while rest and rest[0].startswith("-") and rest[0] != "-m":
        rest = rest[1:]
    return PurePath(argv[0]).name.startswith("python") and rest[:2] == ["-m", "pytest"]


def junit_failures(path: Path) -> tuple[str, ...] | None:
    """Failing test ids (`classname::name`) from a junit XML report, or None when there is no readable one."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    failed = []
    for case in root.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(f"{case.get('classname', '')}::{case.get('name', '')}")
    for suite in root.iter("testsuite"):  # collection errors have no testcase of their own
        if int(suite.get("errors") or 0) and not any(True for _ in suite.iter("testcase")):
            failed.append(f"{suite.get('name', 'pytest')}::<collection>")
    return tuple(sorted(set(failed)))


async def run_tests(command: str, cwd: Path, settings: Settings, *, junit: Path | None = None) -> TestResult:
    """Run the test command in `cwd`: scrubbed of secrets, no stdin, its own process group (killed on timeout and
    on cancellation, so Ctrl-C never waits for it), bounded output and file sizes. With `junit` and a pytest
    command, failing test ids come back too. Never raises for the command's sake: a command that cannot start
    is a result with no exit code."""
    try:
        argv = parse_command(command)
    except SquadError as exc:
        return TestResult(command=command, exit_code=None, output=f"could not run {command!r}: {exc.message}")
    report = junit if junit is not None and is_pytest(argv) else None
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            report.unlink()
        argv = [*argv, f"--junitxml={report}"]
    try:
        outcome = await run_command(
            argv,
            cwd=cwd,
            timeout_s=settings.commands.timeout_s,
            max_output_bytes=settings.commands.max_output_bytes,
            max_file_bytes=settings.commands.max_file_bytes,
        )
    except SquadError as exc:
        return TestResult(command=command, exit_code=None, output=f"could not run {command!r}: {exc.message}")
    text = outcome.output.text(MAX_TEST_OUTPUT_CHARS)
    if outcome.notes:
        text += "\n" + "\n".join(f"(squad: {note})" for note in outcome.notes)
    failures = junit_failures(report) if report is not None and outcome.exit_code not in (0, None) else None
    if report is not None and outcome.exit_code == 0:
        failures = ()
    if outcome.timed_out:
        note = f"\n(timed out after {settings.commands.timeout_s:g}s)"
        return TestResult(command=command, exit_code=None, output=text + note, timed_out=True)
    return TestResult(command=command, exit_code=outcome.exit_code, output=text, failures=failures)


async def test_worktree(rc: RunContext, lease: Lease, task: str | None, where: str) -> TestResult:
    """Run the test command in a leased worktree, made ready first (its setup is not run again), and journal the
    result as `TestsRan(task, where)`: a worktree that cannot be made ready is a failed run (exit code None), as
    the gate cannot approve what it cannot test. JUnit results go to the run folder's `junit/<where>.xml`, a
    run-wide `where` (no `task`) as `_<where>.xml`: no task id starts with `_`, so a task named `baseline` keeps
    its own."""
    settings = rc.config.settings
    failure = await make_ready(rc, lease, task, setup_again=False)
    if failure:
        tests = TestResult(command=settings.commands.test, exit_code=None, output=failure)
    else:
        junit = rc.journal.dir / "junit" / (f"{where}.xml" if task else f"_{where}.xml")
        tests = await run_tests(settings.commands.test, lease.path, settings, junit=junit)
    rc.emit(TestsRan(task=task, where=where, **tests.to_dict()))
    return tests


def baseline_result(event: TestsRan | None) -> TestResult | None:
    """The baseline run (a `tests` event with where="baseline") as a TestResult, or None without one."""
    if event is None:
        return None
    failures = tuple(event.failures) if event.failures is not None else None
    return TestResult(command=event.command, exit_code=event.exit_code, output=event.output_tail, failures=failures)


def baseline_text(event: TestsRan | None) -> str:
    """What reviewers are told about the tests on the base commit, before any change."""
    result = baseline_result(event)
    if result is None:
        return "(no baseline: the test command was not run on the base commit)"
    if result.passed:
        return f"{result.summary()}: the tests passed before any change."
    return (
        f"{result.summary()}: the tests already failed before any change. Judge only what this task changed; "
        "failures the base commit already had are not this work's doing."
    )
