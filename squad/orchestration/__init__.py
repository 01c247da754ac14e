"""Orchestration: plan -> schedule -> each task's state machine (through an executor) -> review gate ->
integrate -> report. Everything here reads the run state, which is the fold of the run's journal.

Modules: `config` (RunConfig), `run` (Coordinator), `planner`, `scheduler`, `executor` (the seam),
`flow` (a task's steps, the local executor), `review` (the one review gate), `integrate`, `report`,
`testing` (the test command), `context` (what a run in progress shares).
"""

from squad.orchestration.config import RunConfig
from squad.orchestration.report import RunReport, TaskReport
from squad.orchestration.run import Coordinator

__all__ = ["Coordinator", "RunConfig", "RunReport", "TaskReport"]
