"""Making a worktree ready to work and test in: `[workspace]` copies, links, submodules, and setup commands.

Both steps are journaled (`squad log` shows what was placed, each setup command's exit code and time). A
worktree whose setup already passed is not set up again, unless its files were reset (an attempt that
starts over removes untracked files, setup's output included).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

from squad.domain.events import SetupDone, SetupRan, WorkspacePrepared
from squad.errors import WorkspaceError
from squad.infra.worktree_env import prepare, run_setup

if TYPE_CHECKING:
    from squad.domain.workspace import SetupStep
    from squad.infra.workspace import Lease
    from squad.orchestration.context import RunContext


async def make_ready(rc: RunContext, lease: Lease, task: str | None, *, setup_again: bool) -> str | None:
    """Prepare `lease`'s worktree and run the setup commands; None when it is ready, else why not.

    Raises:
        ConfigError: a `[workspace]` path is wrong (a configuration problem: the run stops).
    """
    settings = rc.config.settings
    try:
        prep = await rc.in_thread(prepare, lease.path, rc.workspace.root, settings)
    except WorkspaceError as exc:
        return f"the worktree could not be prepared: {exc.message}"
    if prep.steps:
        data = prep.to_dict()
        rc.emit(WorkspacePrepared(task=task, lease=lease.task, steps=data["steps"], duration_s=data["duration_s"]))
    if not settings.workspace.setup or (not setup_again and lease.task in rc.state.ready_leases):
        return None

    def journal(step: SetupStep) -> None:
        rc.emit(SetupRan(task=task, lease=lease.task, **asdict(step)))

    report = await run_setup(lease.path, settings, on_step=journal)
    failure = report.failure_text() or None
    rc.emit(SetupDone(task=task, lease=lease.task, ok=report.ok, duration_s=report.duration_s, failure=failure))
    return failure
