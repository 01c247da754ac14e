"""A run's report page as an artifact of the workflow run: written where action.yml's upload step finds it.

`squad github` writes the page outside the checkout, to `$RUNNER_TEMP/squad-report-<run>/report.html`: the
upload step skips paths through a hidden folder such as `.squad/`, and in review mode the checkout is a
pull request's, never a place squad writes to. The step outputs `report-path` and `report-artifact` tell
the upload step what to attach under which name, and the comments link the workflow run's page, where
GitHub lists the artifact by that name (its own URL exists only once the upload has happened, after squad).
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from squad.github.comment import report_line
from squad.github.env import ActionEnv, Report
from squad.orchestration.report_html import PAGE, try_write_report_page


@dataclass(frozen=True)
class ReportPage:
    """A written page: where it is, the artifact it becomes, and the comment line that links it."""

    path: Path
    artifact: str
    line: str

    def add_to(self, report: Report) -> Report:
        """`report` with the step outputs of the upload."""
        report.report_path, report.report_artifact = str(self.path), self.artifact
        return report


def scratch_dir(env: ActionEnv) -> Path:
    """The runner's temp dir (RUNNER_TEMP), or the system's outside Actions."""
    return env.scratch or Path(tempfile.gettempdir())


def publish_page(env: ActionEnv, run_dir: Path, run_id: str) -> ReportPage | None:
    """Write the page of the run in `run_dir` for upload; None (with a warning on stderr) when it cannot be."""
    artifact = f"squad-report-{run_id}"
    out = scratch_dir(env) / artifact / PAGE
    path = try_write_report_page(run_dir, out, warn=lambda line: print(line, file=sys.stderr))
    return ReportPage(path, artifact, report_line(artifact, env.workflow_run_url())) if path else None
