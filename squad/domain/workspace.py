"""What making a worktree ready did: the `[workspace]` copy/link/submodule steps and the setup commands.

Pure values, no I/O. `squad.infra.worktree_env` produces them; the run journals them (`to_dict`) and,
when setup failed, fails the task with `SetupReport.failure_text()`, which names the command, how it
ended and the end of its output.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

PrepareAction = Literal["copied", "linked", "kept", "submodule", "excluded", "skipped"]


@dataclass(frozen=True, slots=True)
class PrepareStep:
    """One thing `prepare` did to a worktree.

    Attributes:
        action: copied / linked (placed now), kept (already in place from an earlier lease of the same
            worktree), submodule (checked out from the main checkout's objects), excluded (a linked path
            added to the local git excludes, see `squad.infra.worktree_env`), skipped (not done; `note`
            says why and how to fix it).
        path: the repo-relative path it concerns.
        note: a sentence for the journal and the user.
    """

    action: PrepareAction
    path: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class PrepareReport:
    """Everything `prepare` did, in order, and how long it took."""

    steps: tuple[PrepareStep, ...] = ()
    duration_s: float = 0.0

    @property
    def warnings(self) -> list[str]:
        """Things left undone that the user should hear about (e.g. a submodule the main checkout lacks)."""
        return [f"{s.path}: {s.note}" for s in self.steps if s.action == "skipped"]

    def to_dict(self) -> dict[str, Any]:
        return {"steps": [asdict(s) for s in self.steps], "duration_s": round(self.duration_s, 3)}


@dataclass(frozen=True, slots=True)
class SetupStep:
    """One `[workspace] setup` command and how it ended.

    Attributes:
        command: the command as configured.
        exit_code: its exit status; None when it timed out or could not start; negative: killed by signal.
        duration_s: wall-clock time.
        output_tail: the end of its combined stdout/stderr (where failures are), bounded.
        timed_out: killed because the setup time limit ran out.
        error: why it could not start (not found, not executable), else empty.
    """

    command: str
    exit_code: int | None
    duration_s: float
    output_tail: str = ""
    timed_out: bool = False
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def status(self) -> str:
        """How it ended, in words: `exit code 0`, `timed out after 12.0s`, `killed by signal 9`, ..."""
        if self.error:
            return self.error
        if self.timed_out:
            return f"timed out after {self.duration_s:.1f}s"
        if self.exit_code is not None and self.exit_code < 0:
            return f"killed by signal {-self.exit_code}"
        return f"exit code {self.exit_code}"


@dataclass(frozen=True, slots=True)
class SetupReport:
    """The setup commands of one worktree: run in order, stopping at the first that fails.

    `skipped` lists commands never started because an earlier one failed (or the time ran out).
    """

    steps: tuple[SetupStep, ...] = ()
    skipped: tuple[str, ...] = field(default_factory=tuple)
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps) and not self.skipped

    @property
    def failed(self) -> SetupStep | None:
        """The command that failed, if any."""
        return next((s for s in self.steps if not s.ok), None)

    def failure_text(self) -> str:
        """A message for a failed task: which command, how it ended, its output's end. Empty when ok."""
        step = self.failed
        if step is None:
            return "" if not self.skipped else f"setup stopped before: {', '.join(self.skipped)}"
        text = f"workspace setup command `{step.command}` failed ({step.status()}, {step.duration_s:.1f}s)"
        if step.output_tail:
            text += f"; the end of its output:\n{step.output_tail}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "duration_s": round(self.duration_s, 3),
            "steps": [{**asdict(s), "duration_s": round(s.duration_s, 3)} for s in self.steps],
            "skipped": list(self.skipped),
        }
