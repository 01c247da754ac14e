"""examples/workflows/squad-matrix.yml holds together: as many wave jobs as `squad plan --max-waves` allows, each
on its own wave of the matrix, least privilege per job, secrets only in the steps that run squad (through `exec`),
artifacts named so each job finds the run's fragments. (actionlint and zizmor: tests/test_workflow_lint.py.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

WORKFLOW = Path(__file__).resolve().parents[1] / "examples" / "workflows" / "squad-matrix.yml"


def _load() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return data


def _steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps", []))


def test_one_wave_job_per_wave_the_plan_allows_each_after_the_last() -> None:
    jobs = _load()["jobs"]
    plan_step = next(s for s in _steps(jobs["plan"]) if s.get("id") == "plan")
    max_waves = int(re.search(r"--max-waves (\d+)", plan_step["run"]).group(1))  # type: ignore[union-attr]
    waves = sorted(name for name in jobs if name.startswith("wave-"))
    assert waves == [f"wave-{n}" for n in range(1, max_waves + 1)]
    for n, name in enumerate(waves, start=1):
        job = jobs[name]
        assert job["strategy"]["matrix"]["task"] == f"${{{{ fromJSON(needs.plan.outputs.matrix).waves[{n - 1}] }}}}"
        assert job["strategy"]["fail-fast"] is False
        assert "needs.plan.outputs.max-parallel" in job["strategy"]["max-parallel"]
        needs = job["needs"] if isinstance(job["needs"], list) else [job["needs"]]
        assert needs == (["plan"] if n == 1 else ["plan", f"wave-{n - 1}"])
        if n > 1:
            assert f"fromJSON(needs.plan.outputs.waves) >= {n}" in job["if"] and "!cancelled()" in job["if"]
    assert jobs["integrate"]["needs"] == ["plan", *waves] and "!cancelled()" in jobs["integrate"]["if"]


def test_least_privilege_and_secrets_only_where_squad_runs() -> None:
    workflow = _load()
    assert workflow["permissions"] == {}
    assert "github.run_id" in workflow["concurrency"]["group"]
    jobs = workflow["jobs"]
    assert jobs["plan"]["permissions"] == {"contents": "read"}
    for name in (n for n in jobs if n.startswith("wave-")):
        assert jobs[name]["permissions"] == {"contents": "write"}
    assert jobs["integrate"]["permissions"] == {"contents": "write", "pull-requests": "write"}
    for name, job in jobs.items():
        assert "env" not in job, f"{name}: no job-wide env (secrets go to one step)"
        for step in _steps(job):
            env = step.get("env", {})
            secret = any("secrets." in str(v) or "github.token" in str(v) for v in env.values())
            if "ANTHROPIC_API_KEY" in env:
                assert step["run"].strip().splitlines()[-1].startswith("exec squad "), f"{name}: {step['run']}"
            if secret:
                assert "run" in step, f"{name}: a secret handed to an action"
            if "run" in step:
                assert "${{" not in step["run"], f"{name}: an expression inside a script"
            if "uses" in step:
                assert re.fullmatch(r"[\w./-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
                assert step.get("with", {}).get("persist-credentials", False) is False


def test_artifacts_carry_each_jobs_fragment_to_the_jobs_after_it() -> None:
    jobs = _load()["jobs"]
    uploads = {
        name: s["with"]["name"]
        for name, job in jobs.items()
        for s in _steps(job)
        if "upload-artifact" in s.get("uses", "")
    }
    assert uploads["plan"] == "squad-${{ steps.plan.outputs.run }}-plan"
    for name in (n for n in jobs if n.startswith("wave-")):
        assert uploads[name] == "squad-${{ needs.plan.outputs.run }}-task-${{ matrix.task }}"
        task = next(s for s in _steps(jobs[name]) if s.get("name") == "Task")
        assert '--out "out/$TASK"' in task["run"]
    for name in (n for n in jobs if n != "plan"):
        download = next(s for s in _steps(jobs[name]) if "download-artifact" in s.get("uses", ""))
        assert download["with"] == {"pattern": "squad-${{ needs.plan.outputs.run }}-*", "path": "fragments"}


COMMAND_WORKFLOW = WORKFLOW.with_name("squad-command.yml")


def _fires(condition: str, body: str, event: str = "issue_comment") -> bool:
    """Evaluate a job's `if:` made of startsWith on the comment body, the event name, !, && and ||, as Actions does
    (startsWith ignores case)."""

    def starts(m: re.Match[str]) -> str:
        return str(body.lower().startswith(m[1].lower()))

    expr = re.sub(r"startsWith\(github\.event\.comment\.body, '([^']*)'\)", starts, condition)
    expr = expr.replace("github.event_name == 'workflow_dispatch'", str(event == "workflow_dispatch"))
    expr = expr.replace("&&", " and ").replace("||", " or ").replace("!", " not ")
    assert set(re.findall(r"[^\s()]+", expr)) <= {"True", "False", "and", "or", "not"}, expr
    return bool(eval(expr))  # only booleans and operators left (asserted above)


def test_one_comment_starts_at_most_one_workflow_and_run_mode_never_takes_a_matrix_command() -> None:
    """`/squad --matrix X` fires squad-matrix.yml only; `/squad X` squad-command.yml only. A misspelled matrix
    command reaches only run mode, whose parser answers with the spelling that works instead of running it."""
    from squad.github.command import misspelled_matrix, parse_command

    matrix_if = _load()["jobs"]["plan"]["if"]
    command_jobs = yaml.safe_load(COMMAND_WORKFLOW.read_text())["jobs"]
    [command_if] = [job["if"] for job in command_jobs.values()]
    bodies = ["/squad --matrix add x", "/squad --MATRIX add x", "/squad --matrix\nadd x", "/squad add x"]
    bodies += ["/squad  --matrix add x", "/squad\t--matrix add x", "/squad add a --matrix flag", "hello /squad x"]
    for body in bodies:
        matrix, command = _fires(matrix_if, body), _fires(command_if, body)
        assert not (matrix and command), body
        if matrix:
            assert parse_command(body) is None and not misspelled_matrix(body), body
        if command:
            assert parse_command(body) is not None or misspelled_matrix(body), body
    assert _fires(matrix_if, "/squad --Matrix add x") and not _fires(command_if, "/squad --Matrix add x")
    assert _fires(command_if, "/squad add x") and not _fires(matrix_if, "/squad add x")
    assert _fires(matrix_if, "", event="workflow_dispatch")


def test_every_job_that_runs_tests_installs_the_projects_test_dependencies_before_any_secret() -> None:
    """squad runs `[commands] test` in the plan (baseline), task and integrate jobs, and in run mode: the project's
    test dependencies go into that Python first, in a step that runs the base commit's setup code with no secret."""
    command = yaml.safe_load(COMMAND_WORKFLOW.read_text())["jobs"]
    jobs = {**_load()["jobs"], **{f"command/{name}": job for name, job in command.items()}}
    for name, job in jobs.items():
        steps = _steps(job)
        names = [s.get("name", "") for s in steps]
        deps = names.index("Install your project's test dependencies into the same Python")
        python = max(i for i, s in enumerate(steps) if "setup-python" in s.get("uses", ""))
        secret = min(i for i, s in enumerate(steps) if "secrets." in str(s.get("env", {})) + str(s.get("with", {})))
        assert python < deps < secret, name
        assert "env" not in steps[deps] and "-e '.[test]' pytest" in steps[deps]["run"], name
        squad = next((s for s in steps if s.get("uses", "").startswith("your-org/squad@")), None)
        if squad is not None:  # the action sets up its own Python: the same version, so the same interpreter
            assert squad["with"]["python-version"] == steps[python]["with"]["python-version"], name


def test_integrate_opens_the_pr_in_the_same_step_and_keeps_the_report_page() -> None:
    """`squad integrate --pr` exits 1 on a partial run AFTER opening its draft PR, and updates it on a rerun: a
    separate `gh pr create` step would be skipped for the one and fail for the other. A CI checkout is detached, so
    the PR's branch is named. The report page is kept whatever happened."""
    steps = _steps(_load()["jobs"]["integrate"])
    runs = [s["run"] for s in steps if "run" in s]
    [integrate] = [r for r in runs if "squad integrate" in r]
    assert integrate == 'exec squad integrate "$RUN" --from fragments --pr --base "$BASE_REF"'
    assert not any("gh pr" in r for r in runs)
    [report] = [s for s in steps if "upload-artifact" in s.get("uses", "")]
    assert steps.index(report) == len(steps) - 1 and report["if"] == "always()"
    assert report["with"]["name"] == "squad-report-${{ needs.plan.outputs.run }}"
    assert report["with"]["path"] == ".squad/runs/${{ needs.plan.outputs.run }}/report.html"
    assert report["with"]["include-hidden-files"] is True  # upload-artifact skips dot-folders otherwise
