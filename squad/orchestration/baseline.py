"""The baseline: the test command on the run's base commit, before anyone is paid to work.

Run by `squad run` and by `squad plan --out` (a run spread over CI jobs) the same way: in the run's integration
worktree after its setup, journaled as `tests` with `where="baseline"`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from squad.domain.events import TestsRan
from squad.domain.review import TestResult
from squad.orchestration.testing import run_tests
from squad.orchestration.worktrees import make_ready

if TYPE_CHECKING:
    from squad.orchestration.context import RunContext


async def run_baseline(rc: RunContext) -> bool:
    """Run the test command once on the base commit (unless it passed already, or baselines are off).

    Returns False when it fails and the run may not start on a failing baseline (`--allow-failing-baseline`).
    """
    settings = rc.config.settings
    if not settings.commands.baseline or not settings.commands.test.strip():
        return True
    done = rc.state.baseline
    if done is None or not done.passed:
        lease = await rc.in_thread(rc.workspace.integration, rc.run_id, rc.state.base_commit or "HEAD")
        rc.leases["_integration"] = lease
        failure = await make_ready(rc, lease, None, setup_again=False)
        if failure:
            tests = TestResult(command=settings.commands.test, exit_code=None, output=failure)
        else:
            junit = rc.journal.dir / "junit" / "baseline.xml"
            tests = await run_tests(settings.commands.test, lease.path, settings, junit=junit)
        rc.emit(TestsRan(task=None, where="baseline", **tests.to_dict()))
    assert rc.state.baseline is not None
    return rc.state.baseline.passed or rc.config.allow_failing_baseline


def baseline_error(rc: RunContext) -> str:
    """Why a run stopped on its baseline, with the tail of the test output."""
    tests = rc.state.baseline
    assert tests is not None
    tail = "\n".join(tests.output_tail.strip().splitlines()[-15:])
    return (
        f"the tests fail on the base commit, before any change: `{tests.command}` exited with {tests.exit_code}; "
        f"no specialist was started.\n{tail}"
    )
