"""The baseline: the test command on the run's base commit, before anyone is paid to work.

Run by `squad run` and by `squad plan --out` (a run spread over CI jobs) the same way: in the run's integration
worktree after its setup, journaled as `tests` with `where="baseline"`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from squad.orchestration.testing import test_worktree

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
        await test_worktree(rc, lease, None, "baseline")
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
