"""Scheduling a plan's tasks as a DAG: each starts as soon as all its dependencies are approved.

Pure asyncio bookkeeping, tested on its own: what a task does is the `run_one` callable (the executor).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from squad.domain.plan import PlanTask
from squad.domain.task import APPROVED, Phase


async def schedule(
    tasks: Sequence[PlanTask],
    run_one: Callable[[PlanTask], Coroutine[Any, Any, Phase]],
    max_parallel: int,
    done: Mapping[str, Phase] | None = None,
) -> dict[str, Phase]:
    """Run tasks as a DAG: each starts as soon as all its dependencies are approved (not in waves).

    `run_one` returns the phase the task settled in. Tasks whose dependencies settle in any phase but an
    approved one are `blocked` and never start. `done` holds phases known before (a resumed run). At most
    `max_parallel` run at once. Cancelling the caller cancels every running task and waits for them.
    """
    outcome: dict[str, Phase] = dict(done or {})
    pending = [t for t in tasks if t.id not in outcome]
    running: dict[asyncio.Task[Phase], str] = {}
    try:
        while pending or running:
            progressed = True
            while progressed:  # blocking one task can block its dependents: repeat until stable
                progressed = False
                for t in list(pending):
                    if any(outcome[d] not in APPROVED for d in t.depends_on if d in outcome):
                        outcome[t.id] = Phase.BLOCKED
                        pending.remove(t)
                        progressed = True
            for t in list(pending):
                if len(running) >= max_parallel:
                    break
                if all(outcome.get(d) in APPROVED for d in t.depends_on):
                    pending.remove(t)
                    running[asyncio.create_task(run_one(t), name=f"task:{t.id}")] = t.id
            if not running:
                for t in pending:  # unreachable with a validated plan (no cycles); never spin
                    outcome[t.id] = Phase.BLOCKED
                break
            finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for fut in finished:
                outcome[running.pop(fut)] = fut.result()
    finally:
        for fut in running:
            fut.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
    return outcome
