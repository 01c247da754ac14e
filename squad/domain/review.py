"""Review: one severity scale, one Finding, one Verdict, and the gate policy used by `squad run` and the Action.

Pure rules, no I/O. A reviewer submits a verdict with `submit_verdict` (whose schema is
`SubmittedVerdict`); `verdict_from_submission` turns how the reviewer's session ended into a `Verdict`,
`veto_on_tests` lets a failing test command overrule an approval, and `combine` decides for several
reviewers. The same rules hold for a task's review in a run and for a pull request's review.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Severity = Literal["blocking", "major", "minor"]
#: Lower is worse. The one ordering of severities.
SEVERITY_RANK: dict[str, int] = {"blocking": 0, "major": 1, "minor": 2}
Decision = Literal["approve", "reject"]
#: Who gave a verdict: a reviewer agent, a person (`squad approve` / `squad reject`), or the gate itself.
Source = Literal["reviewer", "human", "gate"]
#: Agent stop reasons that mean "the work is ready for review".
COMPLETED_STOPS = frozenset({"finished", "end_turn"})


# The `submit_verdict` schema's finding; the docstrings of these wire models are what the model reads.
class ReportedFinding(BaseModel):
    """One problem found in the work."""

    model_config = ConfigDict(extra="forbid")

    file: str = Field(description="File the finding is about, relative to the repository root.")
    line: int | None = Field(None, ge=1, description="Line number, if it is about a specific line.")
    severity: Severity = Field(
        description="'blocking' must be fixed before merging; 'major' should be; 'minor' is a suggestion."
    )
    message: str = Field(min_length=1, description="What is wrong and how to fix it.")
    suggestion: str | None = Field(
        None,
        max_length=5000,
        description="Optional, only with `line`: the exact text that should replace that whole line (several "
        "lines if needed), when the fix is concrete. Shown as a suggestion the author can commit.",
    )


class Finding(ReportedFinding):
    """A finding with who reported it (several reviewers joined by ", " after `merge_findings`)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    reviewer: str = ""

    def line_text(self) -> str:
        """`- [severity] file:line: message`, for prompts and logs."""
        where = self.file + (f":{self.line}" if self.file and self.line else "")
        return f"- [{self.severity}] {where + ': ' if where else ''}{self.message}"


class SubmittedVerdict(BaseModel):
    """Your verdict on the work."""

    model_config = ConfigDict(extra="forbid")

    verdict: Decision = Field(description="'approve' to merge the work, 'reject' to send it back.")
    summary: str = Field(min_length=1, description="The verdict's reasoning in a few sentences.")
    findings: list[ReportedFinding] = Field(default_factory=list, description="Specific problems found, if any.")


class Verdict(BaseModel):
    """One judgement of one piece of work. `complete` is False when the reviewer never submitted a verdict
    (ran out of turns or budget, failed): such a verdict never approves."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    reviewer: str
    verdict: Decision
    summary: str = ""
    findings: tuple[Finding, ...] = ()
    source: Source = "reviewer"
    complete: bool = True

    @property
    def approved(self) -> bool:
        return self.verdict == "approve"

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "blocking"]

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def verdict_from_submission(
    reviewer: str, *, stop_reason: str, data: dict[str, Any] | None, error: str | None = None
) -> Verdict:
    """The verdict of a reviewer's session. A session that did not end with a valid `submit_verdict` is an
    incomplete rejection; a rejection always carries at least one blocking finding (it blocks the merge)."""
    submitted: SubmittedVerdict | None = None
    if stop_reason == "finished" and data is not None:
        try:
            submitted = SubmittedVerdict.model_validate(data)
        except ValidationError:
            submitted = None
    if submitted is None:
        why = f"stopped: {stop_reason}" + (f", {error}" if error else "")
        return Verdict(
            reviewer=reviewer,
            verdict="reject",
            summary="no verdict",
            findings=(
                Finding(
                    reviewer=reviewer,
                    file="",
                    severity="blocking",
                    message=f"the reviewer did not submit a verdict ({why}); treated as a rejection",
                ),
            ),
            complete=False,
        )
    findings = [Finding(reviewer=reviewer, **f.model_dump()) for f in submitted.findings]
    if submitted.verdict == "reject" and not any(f.severity == "blocking" for f in findings):
        findings.append(
            Finding(
                reviewer=reviewer, file="", severity="blocking", message=f"{reviewer} rejected: {submitted.summary}"
            )
        )
    return Verdict(reviewer=reviewer, verdict=submitted.verdict, summary=submitted.summary, findings=tuple(findings))


def new_failures(tests: TestResult, baseline: TestResult | None) -> list[str] | None:
    """What fails now that did not fail on the base commit: failing test ids when both runs name them, else
    `[]` when the command fails the same way it did before (same exit code), `None` when that cannot be
    told (the base passed, or the exit codes differ: every failure counts)."""
    if baseline is None or baseline.passed or tests.passed:
        return None
    if tests.failures is not None and baseline.failures is not None:
        return sorted(set(tests.failures) - set(baseline.failures))
    return [] if tests.exit_code == baseline.exit_code else None


def veto_on_tests(
    verdict: Verdict, tests: TestResult | None, require_tests: bool, baseline: TestResult | None = None
) -> Verdict:
    """An approval with a failing test command becomes a rejection when `[review] require_tests` is on.

    When the base commit already failed (a run allowed to start on a failing baseline), only NEW failures
    veto: failing test ids compared for pytest (junit XML), the exit code for other runners.
    """
    if not verdict.approved or tests is None or tests.passed or not require_tests:
        return verdict
    new = new_failures(tests, baseline)
    if new == []:
        return verdict  # the same failures as before any change: not this work's doing
    what = f"the test command `{tests.command}` failed (exit {tests.exit_code})"
    if new:
        what += " with failures the base commit did not have: " + ", ".join(new[:20])
    finding = Finding(
        reviewer="gate",
        file="",
        severity="blocking",
        message=f"{what}; review.require_tests turns the approval into a rejection",
    )
    return verdict.model_copy(update={"verdict": "reject", "findings": (*verdict.findings, finding)})


def combine(verdicts: Sequence[Verdict]) -> Decision:
    """Several reviewers: approve only when there is at least one verdict and every one approves."""
    return "approve" if verdicts and all(v.approved for v in verdicts) else "reject"


def merge_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Deduplicate by (file, line, message) — whitespace/case-insensitive — the highest severity wins and
    the reviewers are joined; ordered by severity, file, line, message so reruns compare cleanly."""
    merged: dict[tuple[str, int | None, str], Finding] = {}
    for f in findings:
        key = (f.file, f.line, " ".join(f.message.split()).casefold())
        old = merged.get(key)
        if old is None:
            merged[key] = f
            continue
        severity = min(old.severity, f.severity, key=SEVERITY_RANK.__getitem__)
        names = sorted({*old.reviewer.split(", "), *f.reviewer.split(", ")} - {""})
        update = {"severity": severity, "reviewer": ", ".join(names), "suggestion": old.suggestion or f.suggestion}
        merged[key] = old.model_copy(update=update)
    return sorted(merged.values(), key=lambda f: (SEVERITY_RANK[f.severity], f.file, f.line or 0, f.message))


class TestResult(BaseModel):
    """The test command's outcome in one worktree. `exit_code` None: it could not run, or timed out."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    __test__ = False  # not a pytest class

    command: str
    exit_code: int | None
    output: str = ""
    timed_out: bool = False
    failures: tuple[str, ...] | None = None  # failing test ids, when the runner reports them

    @property
    def passed(self) -> bool:
        return self.exit_code == 0

    def summary(self) -> str:
        """One paragraph for a prompt: how the command ended and what failed."""
        ended = f"exited with {self.exit_code}" + (" (timed out)" if self.timed_out else "")
        failing = f"; failing: {', '.join(self.failures[:30])}" if self.failures else ""
        return f"`{self.command}` {ended}{failing}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "exit_code": self.exit_code,
            "passed": self.passed,
            "timed_out": self.timed_out,
            "output_tail": self.output[-2000:],
            "failures": list(self.failures) if self.failures is not None else None,
        }
